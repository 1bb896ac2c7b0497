"""Device evidence: a fix writes a device expression only with evidence that it is a torch device.

Evidence: ``torch.device(...)``, the ``.device`` of a tensor or module, a literal device string
(``"cpu"``, ``"cuda:0"``), a ``torch.device`` annotation, or a name whose every binding is one of
those and comes before the site.  Not evidence: integers, strings torch rejects (``"gpu"``,
``"/dev/ttyUSB0"``), labels compared with ``== "gpu"``, bindings after the site, bare parameters
(unsafe at most) and tensor parameters the function moves itself.  Label tests are guards.
"""

from __future__ import annotations

import io
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flake8_device.cli import main
from flake8_device.engine import check_source
from flake8_device.inference import Evidence, is_device_string
from flake8_device.options import Options

AVAIL = '"cuda" if torch.cuda.is_available() else "cpu"'


def diags(source: str, **opts):
    return check_source(textwrap.dedent(source), options=Options(**opts))


def at(source: str, code: str, line: int, **opts):
    found = [d for d in diags(source, **opts) if d.code == code and d.span.line == line]
    assert len(found) == 1, [(d.code, d.span.line) for d in diags(source, **opts)]
    return found[0]


def texts(d):
    """The texts a fix writes (replacements, inserted statements, rewritten keywords)."""
    out = []
    for op in d.fix.ops:
        if hasattr(op, "keywords"):
            out += [f"{k}={v}" for k, v in op.keywords]
        else:
            out.append(op.text)
    return out


def fixed(tmp_path, source: str, unsafe: bool = False, *extra: str) -> str:
    path = tmp_path / "mod.py"
    path.write_text(textwrap.dedent(source))
    argv = ["--isolated", "--fix", "--select", "DEV", *extra, str(path)] + (["--unsafe-fixes"] if unsafe else [])
    main(argv, stdout=io.StringIO(), stderr=io.StringIO())
    return path.read_text()


# ---------------------------------------------------------------- labels

PREDICTOR = """\
import torch


class Predictor:
    def __init__(self):
        self.device = "gpu"

    def run(self, img):
        if self.device == "gpu":
            img = img.cuda()
        return img

    def load(self, f):
        return torch.load(f, map_location="cuda")

    def ones(self):
        return torch.ones(2, device="cuda")
"""


def test_label_test_guards_its_branch():
    assert [d.code for d in diags(PREDICTOR) if d.span.line == 10] == []


def test_a_label_attribute_is_not_a_device():
    load = at(PREDICTOR, "DEV004", 14)
    assert texts(load) == [AVAIL] and load.fix.safe
    ones = [d for d in diags(PREDICTOR) if d.span.line == 17]
    assert ones, "torch.ones(..., device='cuda') is reported"
    for d in ones:
        assert d.fix is None or not any("self.device" in t for t in texts(d)), texts(d)


def test_label_predictor_fixed_text(tmp_path):
    out = fixed(tmp_path, PREDICTOR)
    assert "img = img.cuda()" in out
    assert f"torch.load(f, map_location={AVAIL})" in out
    assert "self.device" not in out.split("def load")[1]


@pytest.mark.parametrize("test,reported", [
    ('args.device == "gpu"', False),
    ('args.device == "GPU"', False),
    ('self.device == "cuda"', False),
    ('device != "cpu"', False),
    ('device == "cpu"', True),
    ("args.cpu", True),
    ("not args.cuda", True),
    ("args.no_cuda", True),
    ("not args.cpu", False),
    ("args.cuda", False),
])
def test_label_tests_are_guards(test, reported):
    src = f"""\
    import torch


    def run(args, device, x):
        if {test}:
            x = x.cuda()
        else:
            x = x.float().cuda()
        return x
    """
    lines = sorted(d.span.line for d in diags(src) if d.code == "DEV002")
    # exactly one branch runs where there is no accelerator: that one is reported
    assert lines == ([6] if reported else [8]), (test, lines)


# ---------------------------------------------------------------- names that are not devices

def test_annotated_int_index_is_not_a_map_location():
    src = """\
    import torch

    _cuda_device_index: int = 0


    def load(f):
        return torch.load(f, map_location="cuda")
    """
    d = at(src, "DEV004", 7)
    assert texts(d) == [AVAIL] and d.fix.safe


def test_integer_module_device_is_not_used(tmp_path):
    src = """\
    import torch

    DEVICE = 1


    def f(x):
        return x.cuda()
    """
    d = at(src, "DEV002", 7)
    assert not d.fix.safe
    assert texts(d)[-1] == "x.to(DEFAULT_DEVICE)"
    assert fixed(tmp_path, src) == textwrap.dedent(src)
    out = fixed(tmp_path, src, True)
    assert "x.to(DEFAULT_DEVICE)" in out and "DEVICE = 1" in out


def test_non_device_string_default_is_not_a_device():
    src = """\
    import torch


    def f(x, device="/dev/ttyUSB0"):
        return x.cuda()
    """
    d = at(src, "DEV002", 5)
    assert texts(d)[-1] != "x.to(device)" and not d.fix.safe


def test_label_bound_after_the_function_is_not_used():
    src = """\
    import torch


    def f(x):
        return x.cuda()


    DEVICE = "gpu"
    """
    d = at(src, "DEV002", 5)
    assert "x.to(DEVICE)" not in texts(d) and not d.fix.safe


def test_device_bound_after_the_function_is_unsafe_but_preferred_to_a_new_one(tmp_path):
    src = """\
    import torch


    def f(x):
        return x.cuda()


    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    """
    d = at(src, "DEV002", 5)
    assert texts(d) == ["x.to(device)"] and not d.fix.safe
    assert "late binding" in d.fix.description
    assert fixed(tmp_path, src) == textwrap.dedent(src)
    assert "DEVICE" not in fixed(tmp_path, src, True)


def test_bare_device_parameter_is_unsafe_with_reason():
    src = """\
    import torch


    def f(x, device):
        return x.cuda()
    """
    d = at(src, "DEV002", 5)
    assert texts(d) == ["x.to(device)"] and not d.fix.safe
    assert "callers may pass anything" in d.fix.description


@pytest.mark.parametrize("param", ["device: torch.device", 'device="cpu"', "device=torch.device('cuda')",
                                   "device: Union[str, torch.device]"])
def test_device_parameter_with_evidence_is_safe(param):
    src = f"""\
    import torch
    from typing import Union


    def f(x, {param}):
        return x.cuda()
    """
    d = at(src, "DEV002", 6)
    assert texts(d) == ["x.to(device)"] and d.fix.safe


def test_every_binding_must_be_a_device():
    src = """\
    import torch


    def f(x, flag):
        device = torch.device("cuda")
        if flag:
            device = "gpu"
        return x.cuda()
    """
    d = at(src, "DEV002", 8)
    assert "x.to(device)" not in texts(d)


# Module-level bindings of ``DEVICE``: (source, verdict) -- "yes" is evidence, "maybe" unknown, "no" not a device.
VALUES = [
    ('torch.device("cuda")', "yes"), ('"cuda"', "yes"), ('"cpu"', "yes"), ("torch.device('cuda', 0)", "yes"),
    (AVAIL, "yes"), ("torch.zeros(1).device", "yes"), ("1", "no"), ("0", "no"), ('"gpu"', "no"),
    ('"/dev/ttyUSB0"', "no"), ("get_device()", "maybe"), ("None", "maybe"), ('"cuda" if a else "gpu"', "no"),
]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(VALUES), min_size=1, max_size=3), st.booleans())
def test_module_device_used_only_with_evidence(values, after):
    assigns = "\n".join(f"DEVICE = {v}" for v, _ in values)
    head, tail = ("", assigns) if after else (assigns, "")
    src = f"import torch\n\na = 1\n{head}\n\n\ndef f(x):\n    return x.cuda()\n\n\n{tail}\n"
    line = src.split("\n").index("    return x.cuda()") + 1
    d = [d for d in check_source(src, options=Options()) if d.code == "DEV002" and d.span.line == line][0]
    verdicts = {k for _, k in values}
    used = d.fix is not None and "x.to(DEVICE)" in texts(d)
    if "no" in verdicts:
        assert not used
    elif verdicts == {"yes"} and not after:
        assert used and d.fix.safe
    else:
        assert used and not d.fix.safe, (values, after, texts(d))


def test_device_strings():
    assert all(is_device_string(s) for s in ("cpu", "cuda", "cuda:0", "mps", "xpu:1", "meta"))
    assert not any(is_device_string(s) for s in ("gpu", "GPU", "/dev/ttyUSB0", "cuda0x", "", "tpu"))


# ---------------------------------------------------------------- parameters the function moves

MOVES = """\
import torch
from torch import Tensor


def f(x: Tensor):
    y = x.cuda()
    mask = torch.ones(3).to("cuda")
    return y * mask
"""


def test_a_parameter_the_function_moves_is_not_the_target_device(tmp_path):
    for d in diags(MOVES):
        assert d.fix is None or not any("x.device" in t for t in texts(d)), texts(d)
        assert d.fix is None or not d.fix.safe
    assert fixed(tmp_path, MOVES) == MOVES
    out = fixed(tmp_path, MOVES, True)
    # one device for the tensors that meet
    assert "y = x.to(DEVICE)" in out and "torch.ones(3, device=DEVICE)" in out


def test_a_value_computed_from_a_moved_parameter_is_not_the_target_device():
    src = """\
    import torch
    from torch import Tensor


    def f(x: Tensor):
        buf = torch.sum(x)
        return x.cuda() + buf
    """
    d = at(src, "DEV002", 7)
    assert "x.to(buf.device)" not in texts(d) and not d.fix.safe


def test_an_unmoved_tensor_parameter_is_still_followed():
    src = """\
    import torch


    def f(mask: torch.Tensor, embeds: torch.Tensor):
        seg = (mask.sigmoid() > 0.5).to("cuda")
        return seg @ embeds
    """
    d = at(src, "DEV001", 5)
    assert texts(d) == ["embeds.device"] and d.fix.safe


# ---------------------------------------------------------------- precedence pinned

def test_self_device_before_a_tensor_parameter():
    src = """\
    import torch
    from torch import nn


    class M(nn.Module):
        @property
        def device(self):
            return self.w.device

        def forward(self, x: torch.Tensor):
            m = torch.ones(3).to("cuda")
            return m
    """
    d = at(src, "DEV001", 11)
    assert texts(d) == ["device=self.device"] and d.fix.safe and d.fix.description.startswith("device self.device")


def test_device_variable_before_a_tensor_parameter():
    src = """\
    import torch


    def f(x: torch.Tensor, device: torch.device):
        m = torch.ones(3).to("cuda")
        return m
    """
    d = at(src, "DEV001", 5)
    assert texts(d) == ["device=device"] and d.fix.safe


def test_a_guessed_tensor_parameter_is_withheld_without_unsafe_fixes(tmp_path):
    src = """\
    import torch


    def f(p):
        q = p.sigmoid()
        return q, torch.zeros(2).to("cuda")
    """
    d = at(src, "DEV001", 6)
    assert texts(d) == ["device=p.device"] and not d.fix.safe and "guessed" in d.fix.description
    assert fixed(tmp_path, src) == textwrap.dedent(src)
    assert "torch.zeros(2, device=p.device)" in fixed(tmp_path, src, True)


# ---------------------------------------------------------------- --device-expr, properties, placement

def test_device_expr_self_device_refused_in_init(tmp_path):
    src = """\
    import torch
    from torch import nn


    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.ones(3).cuda()

        def forward(self, x):
            return x.cuda()
    """
    ds = diags(src, device_expr="self.device")
    init = [d for d in ds if d.span.line == 8][0]
    assert init.fix is None and "does not exist yet" in init.no_fix_reason
    fwd = [d for d in ds if d.span.line == 11][0]
    assert texts(fwd) == ["x.to(self.device)"]
    assert "self.w = torch.ones(3).cuda()" in fixed(tmp_path, src, False, "--device-expr", "self.device")


def test_device_expr_self_device_in_init_once_set():
    src = """\
    import torch


    class M:
        def __init__(self, device):
            self.device = device
            self.w = torch.ones(3).cuda()
    """
    d = at(src, "DEV002", 7, device_expr="self.device")
    assert texts(d) == ["device=self.device"]


def test_no_property_on_a_module_without_parameters_or_buffers():
    src = """\
    import torch
    from torch import nn


    class Act(nn.Module):
        def forward(self, x):
            return x * torch.ones(3).cuda()
    """
    for d in diags(src):
        assert d.fix is None or not any("def device" in t for t in texts(d)), texts(d)


def test_property_on_a_module_with_parameters():
    src = """\
    import torch
    from torch import nn


    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x) * torch.ones(3).cuda()
    """
    assert any(d.fix is not None and any("def device" in t for t in texts(d)) for d in diags(src))


def test_lightning_run_method_uses_self_device():
    src = """\
    import torch
    from lightning.fabric import LightningLite


    class Lite(LightningLite):
        def run(self):
            return torch.ones(3).cuda()
    """
    d = [d for d in diags(src) if d.span.line == 7 and d.code == "DEV002"][0]
    assert texts(d) == ["device=self.device"] and d.fix.safe


@pytest.mark.parametrize("above", ["# fmt: off\n", "# the table of sizes\n# (two lines)\n"])
def test_module_device_not_put_between_a_comment_and_its_statement(tmp_path, above):
    src = f"import torch\n\n{above}SIZES = [1, 2,\n         3]\n\n\ndef f(x):\n    return x.cuda()\n"
    out = fixed(tmp_path, src, True)
    assert f"{above}SIZES = [1, 2," in out
    assert out.index("DEVICE = torch.device") < out.index(above)
    compile(out, "fixed", "exec")


def test_record_stream_helper_of_the_users_class_is_not_the_tensor_method():
    src = """\
    import torch


    class Prefetcher:
        def record_stream(self, batch):
            for t in batch:
                t.record_stream(torch.cuda.current_stream())

        def next(self, batch):
            self.record_stream(batch)
            return batch
    """
    assert [(d.code, d.span.line) for d in diags(src)] == [("DEV007", 7)]


def test_choices_carry_their_evidence():
    assert {e.name for e in Evidence} >= {"TORCH_DEVICE", "DEVICE_ATTR", "DEVICE_STRING", "ANNOTATION", "GUESS"}


def test_string_keyword_falls_back_to_the_availability_test_without_evidence():
    src = """\
    import torch


    class P:
        def __init__(self, cfg):
            self.device = cfg.MODEL.DEVICE

        def load(self, f):
            return torch.load(f, map_location="cuda")


    def g(f, device):
        return torch.load(f, map_location="cuda")
    """
    for line in (9, 13):
        d = at(src, "DEV004", line)
        assert texts(d) == [AVAIL] and d.fix.safe


def test_self_device_set_to_a_device_string_is_not_given_type():
    src = """\
    import torch


    class P:
        def __init__(self):
            self.device = "cpu"

        def load(self, f):
            return torch.load(f, map_location="cuda")
    """
    d = at(src, "DEV004", 9)
    assert texts(d) == ["self.device"] and d.fix.safe


FOUR = """\
import torch


def f(n, flag):
    a = torch.zeros(n, device="cuda")
    b = torch.ones(n, device="cuda")
    c = torch.arange(n, device="cuda")
    if flag:
        g = torch.ones(n).cuda()
    e = torch.ones(n).cuda()
    return a + b + c + e
"""


def test_one_device_expression_per_function_once_a_tensor_is_built_there(tmp_path):
    for unsafe in (False, True):
        out = fixed(tmp_path, FOUR, unsafe)
        assert out.count("torch.cuda.is_available()") == 1, out
        assert "b = torch.ones(n, device=a.device)" in out and "c = torch.arange(n, device=a.device)" in out
        assert "e = torch.ones(n, device=a.device)" in out and "DEVICE" not in out


def test_a_tensor_built_on_one_path_only_is_not_followed():
    src = """\
    import torch


    def f(n, flag):
        if flag:
            a = torch.zeros(n, device="cuda")
        return torch.ones(n, device="cuda")
    """
    d = at(src, "DEV003", 7)
    assert texts(d) != ["a.device"]


def test_a_tensor_built_on_the_cpu_is_not_followed():
    src = """\
    import torch


    def f(n):
        a = torch.zeros(n)
        return a, torch.ones(n, device="cuda")
    """
    d = at(src, "DEV003", 6)
    assert texts(d) == [AVAIL]


def test_a_device_annotation_that_admits_an_integer_is_not_evidence():
    src = """\
    import torch
    from typing import Optional, Union


    def f(x, device: Optional[Union[int, torch.device]] = None):
        return x.cuda()
    """
    d = at(src, "DEV002", 6)
    assert texts(d) == ["x.to(device)"] and not d.fix.safe and "integer" in d.fix.description


SAFE_EVIDENCE = {Evidence.CONFIGURED, Evidence.TORCH_DEVICE, Evidence.DEVICE_ATTR, Evidence.DEVICE_STRING,
                 Evidence.ANNOTATION, Evidence.TENSOR}


def test_every_choice_carries_evidence_and_safe_ones_hold_it(monkeypatch):
    """Over the corpus: each device expression inference hands a fix names its evidence, and a safe one
    rests on evidence that it is a torch device (never a guess, a new property or a new module device)."""
    import pathlib

    from flake8_device import inference

    real = inference.infer_device
    seen = []

    def recording(*args, **kwargs):
        choice = real(*args, **kwargs)
        if choice is not None:
            seen.append(choice)
        return choice

    monkeypatch.setattr(inference, "infer_device", recording)
    root = pathlib.Path(__file__).resolve().parents[1] / "corpus"
    sources = sorted(root.glob("fixes/*.in.py")) + sorted(root.glob("rules/*.py")) + [root / "seed" / "dvis_daq_seed.py"]
    for path in sources:
        check_source(path.read_text(), filename=str(path), options=Options())
    check_source(textwrap.dedent(PREDICTOR), options=Options())
    check_source(MOVES, options=Options())
    assert len(seen) > 30
    for choice in seen:
        assert isinstance(choice.evidence, Evidence), choice
        if choice.safe:
            assert choice.evidence in SAFE_EVIDENCE, choice
        if choice.evidence in (Evidence.GUESS, Evidence.NEW_PROPERTY, Evidence.NEW_MODULE_DEVICE, Evidence.UNKNOWN):
            assert not choice.safe, choice


@pytest.mark.parametrize("value", ["args.device", "self.args.device", "self.cfg.device", "opt.device"])
def test_the_device_of_a_setting_is_not_evidence(value):
    src = f"""\
    import torch


    class Runner:
        def run(self, x, args, opt):
            device = {value}
            return x.cuda()
    """
    d = at(src, "DEV002", 7)
    assert texts(d) == ["x.to(device)"] and not d.fix.safe and "setting" in d.fix.description


@pytest.mark.parametrize("value", ["model.device", "next(model.parameters()).device", "images.tensor.device"])
def test_the_device_of_a_tensor_or_module_is_evidence(value):
    src = f"""\
    import torch


    def run(x, model, images):
        device = {value}
        return x.cuda()
    """
    d = at(src, "DEV002", 6)
    assert texts(d) == ["x.to(device)"] and d.fix.safe


@pytest.mark.parametrize("binding", ["device_ids = [0, 1]", "num_devices = torch.cuda.device_count()",
                                     "device_id = args.gpu", "device = torch.cuda.current_device()",
                                     "device = len(args.gpus)", "local_device_index = int(args.rank)"])
def test_indices_counts_and_lists_are_not_devices(binding):
    src = f"""\
    import torch


    def run(x, args):
        {binding}
        return x.cuda()
    """
    d = at(src, "DEV002", 6)
    name = binding.split(" = ")[0]
    assert f"x.to({name})" not in texts(d)


@pytest.mark.parametrize("init,safe", [
    ("def __init__(self, device):\n        self.device = device", False),
    ("def __init__(self, device: torch.device):\n        self.device = device", True),
    ("def __init__(self, name):\n        self.device = torch.device(name)", True),
    ("def __init__(self, cfg):\n        self.device = cfg.MODEL.DEVICE", False),
])
def test_self_device_follows_what_the_class_sets(init, safe):
    src = f"""\
import torch


class Runner:
    {init}

    def run(self, x):
        return x.cuda()
"""
    d = at(src, "DEV002", 9)
    assert texts(d) == ["x.to(self.device)"] and d.fix.safe is safe, d.fix.description


def test_constructor_device_string_falls_back_to_the_availability_test_over_a_bare_parameter():
    # `device` may hold anything; the literal "cuda" keeps its meaning where CUDA exists.
    src = """\
    import torch


    def f(x, device):
        y = torch.zeros(3, device="cuda")
        return y
    """
    d = at(src, "DEV003", 5)
    assert texts(d) == [AVAIL] and d.fix.safe
    assert "device" in d.fix.description and "evidence" in d.fix.description
