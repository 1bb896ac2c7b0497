"""Fix semantics: fixed code must run and compute what the original computes.

Each case runs the fixed text (on this CPU-only torch) instead of only parsing
it: names a fix needs, ``--device-expr`` only where its root name is bound,
fix groups, AMP numerics, legacy-constructor sizes, tensor evidence, and the
module device introduced for code that has none in scope.
"""

from __future__ import annotations

import io
import pathlib
import shutil
import textwrap
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flake8_device_fixers.postconditions import undefined_names
from flake8_device.cli import main
from flake8_device.engine import check_source
from flake8_device.inference import MODULE_DEVICE_GROUP
from flake8_device.options import Options

REALWORLD = pathlib.Path(__file__).resolve().parents[2] / "shared" / "realworld" / "DVIS_DAQ"


def _fix_text(tmp_path, source: str, *extra: str, name: str = "mod.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    main(["--isolated", "--fix", "--select", "DEV", *extra, str(path)], stdout=io.StringIO(), stderr=io.StringIO())
    return path.read_text()


def _run(text: str, **env) -> dict:
    scope = {"__name__": "fixed_module", **env}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(text, "<fixed>", "exec"), scope)
    return scope


def _new_undefined(before: str, after: str):
    old = {n for n, _, _ in undefined_names(before) or []}
    return [n for n, _, _ in undefined_names(after) or [] if n not in old]


def _diags(source: str, **opts):
    return check_source(textwrap.dedent(source), options=Options(**opts))


# ---------------------------------------------------------------- names a fix needs

NO_TORCH_IMPORT = """\
from torch.cuda.amp import autocast

DEFAULT_DEVICE = "cuda"


def run(x):
    with autocast():
        return x * 2
"""


def test_fix_text_naming_torch_declares_it(tmp_path):
    diags = _diags(NO_TORCH_IMPORT)
    # (an import statement's ``torch.amp`` is a module path, not a name the fix reads)
    writes_torch = [d for d in diags if d.fix is not None and any(
        ("torch." in getattr(op, "text", "") and not getattr(op, "text", "").startswith("from "))
        or any("torch." in v for _, v in getattr(op, "keywords", ()))
        for op in d.fix.ops)]
    assert len(writes_torch) == 2, "the availability fallback and the autocast call spell torch"
    assert all("torch" in d.fix.needs for d in writes_torch)
    fixed = _fix_text(tmp_path, NO_TORCH_IMPORT)
    assert fixed != NO_TORCH_IMPORT
    assert _new_undefined(NO_TORCH_IMPORT, fixed) == []
    scope = _run(fixed)
    assert scope["DEFAULT_DEVICE"] == "cpu"  # no CUDA here
    assert scope["run"](torch.ones(2)).dtype == torch.float32


def test_fix_text_uses_the_module_alias(tmp_path):
    src = """\
    import torch as T

    DEVICE = "cuda"
    ids = T.IntTensor([1, 2, 3])
    """
    diags = _diags(src)
    assert diags and all(d.fix is not None for d in diags)
    for d in diags:
        assert "torch" not in d.fix.needs
    fixed = _fix_text(tmp_path, src)
    assert "torch." not in fixed.replace("import torch as T", "")
    assert _new_undefined(src, fixed) == []
    scope = _run(fixed)
    assert scope["ids"].dtype == torch.int32 and scope["ids"].tolist() == [1, 2, 3]
    assert scope["DEVICE"] == "cpu"


@pytest.mark.skipif(not (REALWORLD / "demo_video" / "demo.py").exists(), reason="real-world DVIS-DAQ copy absent")
def test_dvis_demo_fixed_without_undefined_names(tmp_path):
    original = (REALWORLD / "demo_video" / "demo.py").read_text()
    for extra in ((), ("--unsafe-fixes",)):
        work = tmp_path / "demo.py"
        shutil.copyfile(REALWORLD / "demo_video" / "demo.py", work)
        main(["--isolated", "--fix", "--select", "DEV", *extra, str(work)], stdout=io.StringIO(),
             stderr=io.StringIO())
        fixed = work.read_text()
        assert fixed != original
        assert _new_undefined(original, fixed) == []


def test_detectron2_defaults_still_import_after_the_fix(tmp_path):
    d2 = pytest.importorskip("detectron2.config.defaults")
    original = pathlib.Path(d2.__file__).read_text()
    fixed = _fix_text(tmp_path, original, name="defaults.py")
    assert fixed != original and "import torch" in fixed
    scope = {"__name__": "detectron2.config.defaults_fixed", "__package__": "detectron2.config"}
    exec(compile(fixed, "defaults.py", "exec"), scope)  # NameError before: torch was never imported
    assert scope["_C"].MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------- --device-expr

SELF_PLACES = """\
import torch

x = torch.zeros(3, device="cuda")


def helper(t):
    return t.to("cuda")


class Model(torch.nn.Module):
    def forward(self, t):
        return t + torch.ones(3, device="cuda")

    @classmethod
    def build(cls):
        return torch.zeros(1).to("cuda")

    @staticmethod
    def make(n):
        return torch.ones(n, device="cuda")

    def scaled(self, t, scale=torch.ones(1, device="cuda")):
        return t * scale


if __name__ == "__main__":
    y = torch.ones(2).cuda()
"""


def test_device_expr_self_only_inside_methods(tmp_path):
    diags = _diags(SELF_PLACES, device_expr="self.device")
    by_line = {}
    for d in diags:
        by_line.setdefault(d.span.line, []).append(d)
    forward_line = SELF_PLACES.splitlines().index("        return t + torch.ones(3, device=\"cuda\")") + 1
    assert any(d.fix is not None and "self.device" in repr(d.fix.ops) for d in by_line[forward_line])
    refused = [d for line, ds in by_line.items() if line != forward_line for d in ds]
    assert refused
    for d in refused:
        assert d.fix is None, (d.span.line, d.fix)
        assert d.no_fix_reason.startswith(d.code) and "self" in d.no_fix_reason
    fixed = _fix_text(tmp_path, SELF_PLACES, "--device-expr", "self.device", "--unsafe-fixes")
    assert _new_undefined(SELF_PLACES, fixed) == []


def test_device_expr_root_must_be_bound():
    src = """\
    import torch

    def with_dev(x, dev):
        return torch.zeros(3, device="cuda")

    def without(x):
        return torch.zeros(3, device="cuda")

    def bound_later(x):
        y = torch.zeros(3, device="cuda")
        dev = x.device
        return y, torch.ones(3, device="cuda")
    """
    first, second, third, fourth = _diags(src, device_expr="dev")
    assert first.fix is not None and "dev" in repr(first.fix.ops)
    assert fourth.fix is not None and "dev" in repr(fourth.fix.ops)
    for d in (second, third):
        assert d.fix is None and "DEV003" in d.no_fix_reason and "`dev`" in d.no_fix_reason


# ---------------------------------------------------------------- groups

AMP_IMPORT = """\
import torch
from torch.cuda.amp import autocast{noqa}


def run(x):
    with autocast():
        y = x @ x
    with autocast(enabled=False):
        z = x @ x
    return y, z
"""


def test_amp_import_and_call_sites_share_a_group():
    diags = [d for d in _diags(AMP_IMPORT.format(noqa="")) if d.code == "DEV005"]
    groups = {d.fix.group for d in diags}
    assert len(diags) == 3 and len(groups) == 1 and None not in groups


def test_noqa_on_the_amp_import_leaves_call_sites_alone(tmp_path):
    src = AMP_IMPORT.format(noqa="  # noqa: DEV005")
    assert _fix_text(tmp_path, src) == src


def test_amp_import_not_rewritten_when_a_use_cannot_follow(tmp_path):
    src = """\
    import torch
    from torch.cuda.amp import autocast

    def run(x, flag):
        with autocast(flag):
            y = x @ x
        with autocast():
            return y, x @ x
    """
    fixed = _fix_text(tmp_path, src)
    assert "from torch.cuda.amp import autocast" in fixed
    assert "with autocast(flag):" in fixed
    assert 'with torch.amp.autocast(device_type="cuda", enabled=torch.cuda.is_available()):' in fixed
    y, z = _run(fixed)["run"](torch.ones(2, 2), True)
    assert y.dtype == z.dtype == torch.float32


# ---------------------------------------------------------------- AMP numerics


def _probe_original_and_fixed(tmp_path, body: str, outer_cpu_autocast: bool = False):
    src = "import torch\nfrom torch.cuda.amp import autocast, GradScaler\n\n\n" + textwrap.dedent(body)
    fixed = _fix_text(tmp_path, src, "--unsafe-fixes")
    assert fixed != src
    results = []
    a = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    for text in (src, fixed):
        probe = _run(text)["probe"]
        if outer_cpu_autocast:
            with torch.autocast("cpu"):
                results.append(probe(a))
        else:
            results.append(probe(a))
    return src, fixed, results


AMP_CASES = {
    "autocast()": """
        def probe(a):
            with autocast():
                return (a @ a).dtype, torch.is_autocast_enabled("cpu")
    """,
    "autocast(enabled=True)": """
        def probe(a):
            with autocast(enabled=True):
                return (a @ a).dtype, torch.is_autocast_enabled("cpu")
    """,
    "autocast(enabled=flag)": """
        def probe(a, flag=True):
            with autocast(enabled=flag):
                return (a @ a).dtype, torch.is_autocast_enabled("cpu")
    """,
    "autocast(enabled=False)": """
        def probe(a):
            with autocast(enabled=False):
                return (a @ a).dtype, torch.is_autocast_enabled("cpu")
    """,
    "torch.cuda.amp.autocast(dtype=)": """
        def probe(a):
            with torch.cuda.amp.autocast(dtype=torch.bfloat16):
                return (a @ a).dtype, torch.is_autocast_enabled("cpu")
    """,
    "torch.autocast('cuda')": """
        def probe(a):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return (a @ a).dtype, torch.is_autocast_enabled("cpu")
    """,
    "torch.autocast(device_type='cuda') in a method": """
        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.ones(4, 4))

            def forward(self, a):
                with torch.autocast(device_type="cuda"):
                    return (a @ self.w).dtype, torch.is_autocast_enabled("cpu")


        def probe(a):
            return M()(a)
    """,
}


@pytest.mark.parametrize("outer", [False, True], ids=["plain", "inside-cpu-autocast"])
@pytest.mark.parametrize("case", sorted(AMP_CASES))
def test_autocast_fix_keeps_cpu_numerics(tmp_path, case, outer):
    src, fixed, (orig, new) = _probe_original_and_fixed(tmp_path, AMP_CASES[case], outer)
    assert orig == new, fixed
    if not outer:
        assert orig[0] == torch.float32  # CUDA autocast is off without CUDA
    assert not [d for d in check_source(fixed) if d.code == "DEV005" and d.fix is not None]


def test_autocast_fixes_are_safe():
    for body in AMP_CASES.values():
        src = "import torch\nfrom torch.cuda.amp import autocast, GradScaler\n\n\n" + textwrap.dedent(body)
        for d in check_source(src):
            if d.code == "DEV005" and d.fix is not None:
                assert d.fix.safe


@pytest.mark.parametrize("ctor", ["GradScaler()", "torch.cuda.amp.GradScaler(init_scale=1024.0)",
                                  "GradScaler(enabled=True)"])
def test_grad_scaler_fix_keeps_cpu_behaviour(tmp_path, ctor):
    body = f"""
        def probe(a):
            scaler = {ctor}
            loss = (a * 2).sum()
            return scaler.is_enabled(), scaler.scale(loss).item()
    """
    _, fixed, (orig, new) = _probe_original_and_fixed(tmp_path, body)
    assert orig == new, fixed
    assert orig[0] is False


# ---------------------------------------------------------------- legacy constructors

LEGACY_SIZES = """\
import torch
from torch import nn


class DeformConv(nn.Module):
    def __init__(self, in_channels, out_channels, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.Tensor(out_channels, in_channels, 3, 3))
        if bias:
            self.bias = nn.Parameter(torch.Tensor(out_channels))


def noise(num_boxes):
    return torch.FloatTensor(num_boxes).uniform_()


def values(boxes):
    data = [b * 2 for b in boxes]
    return torch.Tensor(data)


def counted(x):
    n = len(x)
    return torch.LongTensor(n).zero_()
"""


def test_integer_variable_to_legacy_constructor_is_a_size(tmp_path):
    fixed = _fix_text(tmp_path, LEGACY_SIZES, "--unsafe-fixes", "--extend-select", "DEV104")
    assert "torch.Tensor(" not in fixed and "FloatTensor" not in fixed
    orig, new = _run(LEGACY_SIZES), _run(fixed)
    for scope in (orig, new):
        m = scope["DeformConv"](4, 16)
        assert m.bias.shape == (16,) and m.weight.shape == (16, 4, 3, 3)
        assert m.bias.dtype == torch.float32
        assert scope["noise"](7).shape == (7,)
        assert scope["values"]([1, 2]).tolist() == [2.0, 4.0]
        assert scope["counted"]([5, 6, 7]).shape == (3,)
    # evidence makes the size reading safe; no evidence leaves it unsafe
    by_text = {d.message: d for d in check_source(LEGACY_SIZES) if d.code in ("DEV103", "DEV104")}
    counted = next(d for d in check_source(LEGACY_SIZES) if d.code in ("DEV103", "DEV104") and d.span.line == 24)
    assert counted.fix is not None and counted.fix.safe
    assert by_text


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=0, max_value=6), data=st.lists(st.integers(-5, 5), min_size=1, max_size=5),
       ctor=st.sampled_from(["Tensor", "FloatTensor", "LongTensor", "IntTensor", "DoubleTensor"]))
def test_legacy_constructor_fix_keeps_shape_and_values(tmp_path_factory, n, data, ctor):
    src = textwrap.dedent(f"""\
        import torch


        def sized(n):
            return torch.{ctor}(n)


        def listed(values):
            items = list(values)
            return torch.{ctor}(items)
        """)
    fixed = _fix_text(tmp_path_factory.mktemp("legacy"), src, "--unsafe-fixes", "--extend-select", "DEV104")
    assert f"torch.{ctor}(" not in fixed
    orig, new = _run(src), _run(fixed)
    a, b = orig["sized"](n), new["sized"](n)
    assert a.shape == b.shape and a.dtype == b.dtype
    a, b = orig["listed"](data), new["listed"](data)
    assert a.dtype == b.dtype and torch.equal(a, b)


# ---------------------------------------------------------------- tensor evidence


def test_config_object_is_not_a_tensor():
    src = """\
    import torch

    class Predictor:
        def __init__(self, cfg):
            self.cfg = cfg.clone()
            checkpoint = torch.load(cfg.MODEL.WEIGHTS)
    """
    [d] = _diags(src)
    assert d.code == "DEV006"
    assert "cfg.device" not in repr(d.fix.ops if d.fix else ())


def test_numpy_like_use_is_not_tensor_evidence():
    src = """\
    import torch

    def f(arr, x):
        total = arr.sum() + arr.shape[0]
        return torch.zeros(3).to("cuda") + arr
    """
    for d in _diags(src):
        assert d.fix is None or "arr.device" not in repr(d.fix.ops)


def test_tensor_only_evidence_still_followed():
    src = """\
    import torch

    def f(mask):
        keep = mask.sigmoid() > 0.5
        return mask + torch.zeros(3).to("cuda")
    """
    [d] = [x for x in _diags(src) if x.code.startswith("DEV1")]  # its DEV001/DEV002 shares the fix
    assert d.fix is not None and "mask.device" in repr(d.fix.ops)


# ---------------------------------------------------------------- module device

SCRIPT = """\
\"\"\"A training script with no device anywhere.\"\"\"
import argparse

import torch
from torch import nn

model = nn.Linear(3, 2).cuda()


def batch(n):
    return torch.randn(n, 3).to("cuda")


def run():
    x = batch(4)
    return model(x)


if __name__ == "__main__":
    run()
"""


def test_module_device_introduced_once_as_one_unsafe_group(tmp_path):
    diags = [d for d in check_source(SCRIPT) if d.code in ("DEV001", "DEV002", "DEV101")]
    assert diags and all(d.fix is not None for d in diags)
    assert {d.fix.group for d in diags} == {MODULE_DEVICE_GROUP}
    assert not any(d.fix.safe for d in diags)
    assert _fix_text(tmp_path, SCRIPT) == SCRIPT  # unsafe: nothing without --unsafe-fixes
    fixed = _fix_text(tmp_path, SCRIPT, "--unsafe-fixes")
    assert fixed.count("DEVICE = torch.device(") == 1
    lines = fixed.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("DEVICE = "))
    # right after the imports, separated from the code that follows
    assert lines[at - 2:at] == ["from torch import nn", ""]
    assert lines[at + 1:at + 3] == ["", "model = nn.Linear(3, 2).to(DEVICE)"]
    assert _new_undefined(SCRIPT, fixed) == []
    scope = _run(fixed)
    assert scope["run"]().shape == (4, 2)
    assert check_source(fixed) == []
    # a second run changes nothing
    assert _fix_text(tmp_path, fixed, "--unsafe-fixes", name="again.py") == fixed


def test_existing_module_device_is_reused():
    src = """\
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def f(n):
        return torch.zeros(n).to("cuda")
    """
    [d] = [x for x in _diags(src) if x.code.startswith("DEV1")]  # its DEV001/DEV002 shares the fix
    assert d.fix is not None and d.fix.safe and d.fix.group is None
    assert "device" in repr(d.fix.ops) and "DEVICE" not in repr(d.fix.ops)


def test_module_device_not_used_before_its_definition():
    src = """\
    import torch
    x = torch.ones(2).cuda()
    device = torch.device("cpu")
    """
    [d] = [x for x in _diags(src) if x.code.startswith("DEV1")]  # its DEV001/DEV002 shares the fix
    assert d.fix is not None
    assert "to(device)" not in repr(d.fix.ops) and "('device', 'device')" not in repr(d.fix.ops)


# ---------------------------------------------------------------- device property

PROPERTY = """\
import torch
from torch import nn


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 3)

    def forward(self, x):
        return self.proj(x) + torch.zeros(3).to("cuda"){noqa}

    def bias(self):
        return torch.ones(3).to("cuda")
"""


def test_fixes_relying_on_an_added_property_share_its_group(tmp_path):
    diags = [d for d in check_source(PROPERTY.format(noqa="")) if d.fix is not None]
    assert len(diags) >= 2
    assert len({d.fix.group for d in diags}) == 1 and diags[0].fix.group is not None
    fixed = _fix_text(tmp_path, PROPERTY.format(noqa=""), "--unsafe-fixes")
    assert fixed.count("def device(self)") == 1
    head = _run(fixed)["Head"]()
    assert head.bias().device == head.forward(torch.ones(3)).device == torch.device("cpu")
    # the property comes with the first fix: without it, the others would read a missing self.device
    src = PROPERTY.format(noqa="  # noqa: DEV101, DEV001")
    fixed = _fix_text(tmp_path, src, "--unsafe-fixes", name="noqa.py")
    assert "self.device" not in fixed


# ---------------------------------------------------------------- property: device-expr scope

# Places a hardcoded device can sit in; each snippet defines ``run_<i>()`` returning a tensor.
# The modules' classes have ``self.device`` (``--device-expr self.device`` asserts that they do).
_PROP = "    @property\n    def device(self):\n        return torch.device(\"cpu\")\n\n"
_PLACES = [
    "x_{i} = torch.ones(2).to(\"cuda\")\n\n\ndef run_{i}():\n    return x_{i}\n",
    "def run_{i}():\n    return torch.ones(2).to(\"cuda\")\n",
    "class C{i}(torch.nn.Module):\n" + _PROP + "    def get(self):\n        return torch.ones(2, device=\"cuda\")\n\n\n"
    "def run_{i}():\n    return C{i}().get()\n",
    "class C{i}:\n    @classmethod\n    def get(cls):\n        return torch.ones(2).cuda()\n\n\n"
    "def run_{i}():\n    return C{i}.get()\n",
    "class C{i}:\n    @staticmethod\n    def get():\n        return torch.zeros(2).to(\"cuda\")\n\n\n"
    "def run_{i}():\n    return C{i}.get()\n",
    "class C{i}(torch.nn.Module):\n" + _PROP + "    def get(self, t=torch.ones(2, device=\"cuda\")):\n"
    "        return t\n\n\n"
    "def run_{i}():\n    return C{i}().get()\n",
    "class C{i}(torch.nn.Module):\n" + _PROP + "    def get(self):\n        def inner():\n"
    "            return torch.ones(2).to(\"cuda\")\n"
    "        return inner()\n\n\ndef run_{i}():\n    return C{i}().get()\n",
    "class C{i}:\n    made = torch.ones(2).to(\"cuda\")\n\n\ndef run_{i}():\n    return C{i}.made\n",
]


@settings(max_examples=30, deadline=None)
@given(places=st.lists(st.sampled_from(range(len(_PLACES))), min_size=1, max_size=4),
       expr=st.sampled_from(["self.device", "device", "torch.device('cpu')"]),
       unsafe=st.booleans(), module_device=st.booleans(), alias=st.booleans())
def test_device_expr_fixes_leave_no_undefined_name_and_run(tmp_path_factory, places, expr, unsafe, module_device,
                                                            alias):
    head = "import torch\n\n" + ("device = torch.device(\"cpu\")\n" if module_device else "") + "\n"
    parts = [head] + [_PLACES[p].format(i=i) + "\n\n" for i, p in enumerate(places)]
    src = "".join(parts)
    if alias:
        src = src.replace("import torch\n", "import torch as T\n").replace("torch.", "T.")
    extra = ["--device-expr", expr] + (["--unsafe-fixes"] if unsafe else [])
    fixed = _fix_text(tmp_path_factory.mktemp("expr"), src, *extra)
    assert _new_undefined(src, fixed) == []
    # run the fixed module on the CPU, with the accelerator mapped to it by the fixes (or left as is,
    # where the fix was refused: those sites still name "cuda" and are skipped)
    if '"cuda"' in fixed or ".cuda()" in fixed:
        return
    scope = _run(fixed)
    for i in range(len(places)):
        assert scope[f"run_{i}"]().device.type == "cpu"


def test_alias_module_with_amp_and_legacy_constructors_runs(tmp_path):
    src = """\
    import torch as T
    from torch.cuda.amp import autocast, GradScaler

    x = T.FloatTensor(3).cuda()


    def run(a, n):
        scaler = GradScaler()
        with autocast():
            y = a @ a
        return T.LongTensor(n).to("cuda"), y, scaler.is_enabled()
    """
    fixed = _fix_text(tmp_path, src, "--unsafe-fixes")
    assert "from torch.amp import autocast, GradScaler" in fixed  # a module path, never respelled
    assert "torch." not in fixed.replace("import torch as T", "").replace("from torch.amp", "")
    assert _new_undefined(src, fixed) == []
    scope = _run(fixed)
    ids, y, enabled = scope["run"](torch.ones(2, 2), 4)
    assert scope["x"].shape == (3,) and ids.shape == (4,) and ids.dtype == torch.int64
    assert y.dtype == torch.float32 and enabled is False
