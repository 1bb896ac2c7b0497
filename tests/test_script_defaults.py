"""DEV004 on script defaults (argparse, click, dataclass fields) and on device strings chosen by a test that
is not an availability check."""

from __future__ import annotations

import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from flake8_device.engine import check_source

AVAIL = 'if torch.cuda.is_available() else "cpu"'
DEVICE_NAMES = ["--device", "--eval-device", "--train_device", "--map-location"]
OTHER_NAMES = ["--backend", "--name", "--mode"]
# (default source, an accelerator literal?)
DEFAULTS = [('"cuda"', True), ('"cuda:0"', True), ('"cpu"', False), (f'"cuda" {AVAIL}', False), ("None", False)]


def dev004(src: str):
    return [d for d in check_source(textwrap.dedent(src)) if d.code == "DEV004"]


def _declare(form: str, name: str, default: str) -> str:
    if form == "argparse":
        return f"import argparse\nimport torch\np = argparse.ArgumentParser()\np.add_argument({name!r}, default={default})\n"
    if form == "click":
        return f"import click\nimport torch\n\n\n@click.command()\n@click.option({name!r}, default={default})\n" \
               "def main(**kw):\n    pass\n"
    field = name.lstrip("-").replace("-", "_")
    return f"from dataclasses import dataclass, field\nimport torch\n\n\n@dataclass\nclass C:\n" \
           f"    {field}: str = field(default={default})\n"


@settings(max_examples=80, deadline=None)
@given(form=st.sampled_from(["argparse", "click", "dataclass"]), name=st.sampled_from(DEVICE_NAMES + OTHER_NAMES),
       default=st.sampled_from(DEFAULTS))
def test_reported_iff_a_device_option_defaults_to_an_accelerator(form, name, default):
    text, accelerator = default
    found = dev004(_declare(form, name, text))
    if not (accelerator and name in DEVICE_NAMES):
        assert found == []
        return
    (d,) = found
    assert d.fix is not None and d.fix.safe
    assert [op.text for op in d.fix.ops] == [f"{text} {AVAIL}"]


def test_dest_names_the_option():
    src = 'import argparse\np = argparse.ArgumentParser()\np.add_argument("-g", dest="device", default="cuda")\n'
    assert len(dev004(src)) == 1
    src = src.replace('dest="device"', 'dest="gpus"')
    assert dev004(src) == []


@settings(max_examples=60, deadline=None)
@given(test=st.sampled_from(["cpu_group is None", "rank == 0", "world_size > 1", "training"]),
       swap=st.booleans(), accel=st.sampled_from(['"cuda"', '"cuda:0"']))
def test_blind_conditional_is_reported_and_wrapped(test, swap, accel):
    body, orelse = (accel, '"cpu"') if not swap else ('"cpu"', accel)
    src = f"import torch\n\n\ndef f(cpu_group, rank, world_size, training):\n" \
          f"    device = {body} if {test} else {orelse}\n    return device\n"
    (d,) = dev004(src)
    assert d.fix.safe and [op.text for op in d.fix.ops] == [f"({accel} {AVAIL})"]


@given(test=st.sampled_from(["torch.cuda.is_available()", 'args.device == "gpu"', "args.use_gpu", "args.cpu",
                             "not args.no_cuda"]))
@settings(max_examples=20, deadline=None)
def test_choices_and_availability_checks_are_not_reported(test):
    src = f'import torch\n\n\ndef f(args):\n    device = "cuda" if {test} else "cpu"\n    return device\n'
    assert dev004(src) == []
