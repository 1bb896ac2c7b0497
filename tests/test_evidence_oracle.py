"""The executable oracle on the device-evidence cases: each fixed text computes what the original computes.

The original runs under the virtual accelerator (``"cuda"`` mapped to the CPU, availability False); the
safe fix runs there too (what it leaves hardcoded still needs the mapping), and the unsafe fix runs on
the plain CPU.  Equal results, zero mismatches (see ``tests/test_fix_oracle.py``).
"""

from __future__ import annotations

import io
import textwrap

import pytest

from flake8_device.cli import main
from test_fix_oracle import assert_same, paths, run_mapped, run_original, run_text  # noqa: F401  (fixture)

CASES = {
    "label": ("""\
import torch


class Predictor:
    def __init__(self, device="gpu"):
        self.device = device

    def run(self, img):
        if self.device == "gpu":
            img = img.cuda()
        return img * 2

    def load(self, f):
        return torch.load(f, map_location="cuda")
""", ['p = Predictor("gpu" if DEV == "cuda" else "cpu")\n(p.run(torch.arange(3.0)), p.load(PATHS["tensor"]))']),
    "int_index": ("""\
import torch

_cuda_device_index: int = 0


def load(f):
    return torch.load(f, map_location="cuda")
""", ['load(PATHS["tensor"])']),
    "int_device": ("""\
import torch

DEVICE = 1


def f(x):
    return x.cuda() + 1
""", ["f(torch.arange(3.0))"]),
    "tty": ("""\
import torch


def f(x, device="/dev/ttyUSB0"):
    return x.cuda() * 3
""", ["f(torch.arange(3.0))"]),
    "moves": ("""\
import torch
from torch import Tensor


def f(x: Tensor):
    y = x.cuda()
    mask = torch.ones(3).to("cuda")
    return y * mask
""", ["f(torch.arange(3.0))"]),
    "late": ("""\
import torch


def f(x):
    return x.cuda() - 1


device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
""", ["f(torch.arange(3.0))"]),
    "no_params": ("""\
import torch
from torch import nn


class Act(nn.Module):
    def forward(self, x):
        return x * torch.ones(3).cuda()
""", ["Act()(torch.arange(3.0, device=DEV))"]),
    "comment": ("""\
import torch

# fmt: off
SIZES = [1, 2,
         3]
# fmt: on


def f(x):
    return x.cuda() + torch.tensor(SIZES).cuda()
""", ["f(torch.arange(3))"]),
    "one_device": ("""\
import torch


def f(n):
    a = torch.zeros(n, device="cuda")
    b = torch.ones(n, device="cuda")
    c = torch.arange(n, device="cuda")
    e = torch.ones(n).cuda()
    return a + b + c + e, torch.load(PATHS["tensor"], map_location="cuda")
""", ["f(3)"]),
    "guessed": ("""\
import torch


def f(p):
    q = p.sigmoid()
    return q + torch.zeros(2).to("cuda")
""", ["f(torch.arange(2.0, device=DEV))"]),
}


def _fixed(tmp_path, name: str, source: str, unsafe: bool) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    argv = ["--isolated", "--fix", "--select", "DEV", str(path)] + (["--unsafe-fixes"] if unsafe else [])
    main(argv, stdout=io.StringIO(), stderr=io.StringIO())
    return path.read_text()


@pytest.mark.parametrize("unsafe", [False, True], ids=["safe", "unsafe"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_evidence_case_fixed_computes_what_the_original_computes(name, unsafe, paths, tmp_path):
    source, calls = CASES[name]
    fixed = _fixed(tmp_path, name, textwrap.dedent(source), unsafe)
    if unsafe:
        assert fixed != source, "the unsafe mode fixes every case"
    for i, call in enumerate(calls):
        want = run_original(source, name, call, paths)
        got = run_text(fixed, name, call, "cpu", paths) if unsafe else run_mapped(fixed, name, call, paths)
        assert_same(got, want, f"{name} call {i} ({'unsafe' if unsafe else 'safe'})")


def test_the_old_label_fix_is_caught(paths):
    """What the fix wrote before: ``img.to(self.device)`` with ``self.device == "gpu"`` raises."""
    source, calls = CASES["label"]
    wrong = source.replace("img = img.cuda()", "img = img.to(self.device)")
    run_original(source, "label", calls[0], paths)
    with pytest.raises(RuntimeError):
        run_original(wrong, "label", calls[0], paths)


def test_the_old_int_map_location_is_caught(paths):
    source, calls = CASES["int_index"]
    wrong = source.replace('map_location="cuda"', "map_location=_cuda_device_index")
    with pytest.raises((TypeError, RuntimeError)):
        run_text(wrong, "int_index", calls[0], "cpu", paths)
    assert_same(run_text(source.replace('"cuda"', '"cpu"'), "int_index", calls[0], "cpu", paths),
                run_original(source, "int_index", calls[0], paths))
