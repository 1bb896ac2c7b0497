"""Executable oracle for the fix goldens: fixed code computes what the original computes.

For every ``corpus/fixes/<CODE>.in.py`` (and the seed file) the original runs
with its accelerator mapped to the CPU -- the project's virtual device,
``virtual_device("cuda", mode="report", report_available=False)``: every
``"cuda"`` placement stays on the CPU, and ``torch.cuda.is_available()`` is
False as on a CPU-only machine, so CUDA autocast and GradScaler disable
themselves as they do there; ``torch.load`` with an accelerator
``map_location`` loads on the CPU -- and each fixed text runs on the CPU:

* the committed goldens ``<CODE>.out.py`` and ``<CODE>.unsafe.out.py``;
* what ``flake8-device --fix`` (and ``--fix --unsafe-fixes``) writes for the
  input today, through the command, post-conditions included.

With ``--unsafe-fixes`` the fixed code runs on the plain CPU.  Safe fixes leave
the unsafe ones in place by design (a ``"cuda:1"``, a guessed tensor), so the
safe variants run with the placements they still hardcode mapped the same way.

Each fixed text also runs where its author meant it to, on the virtual
accelerator with ``DEV`` the accelerator, and must give the original's results
there with no mismatch (an operand on the wrong device); a safe variant may keep
a mismatch the original has at the same op of the same function (the unsafe
sites it leaves), an unsafe variant none.

Each must give equal results: tensors with the same dtype, shape and values
(NaN equal to NaN), devices and device strings equal once the accelerator is
read as the CPU, numbers, strings and containers equal.

Convention (how a golden is made executable): :data:`CALLS` maps the golden's
code to calls, each a small program run after the golden in the golden's own
namespace; its last line is an expression, the value compared.  In a call,
``DEV`` is the device the author meant (``"cuda"`` for the original, ``"cpu"``
for the fixed code), ``PATHS`` holds files saved with ``torch.save`` and
``shape_only(t)`` marks an uninitialised tensor (``torch.empty``) whose values
are not compared; the random generator is seeded before every call.  :data:`STUBS` provides modules a golden imports but the
test machine lacks (a compiled op, a base class from another package).  Every
golden must have calls: a new golden without them fails
:func:`test_every_golden_has_calls`.
"""

from __future__ import annotations

import io
import math
import pathlib
import shutil
import sys
import types
import warnings
from collections import Counter
from typing import Any, Callable, Dict, List

import pytest

torch = pytest.importorskip("torch")

from flake8_device import cli  # noqa: E402
from flake8_device.virtual import virtual_device  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXES = ROOT / "corpus" / "fixes"
SEED = ROOT / "corpus" / "seed" / "dvis_daq_seed.py"

CALLS: Dict[str, List[str]] = {
    "DEV001": [
        'm = Meta(); m.register_buffer("pixel_mean", torch.zeros(3, device=DEV))\n'
        'm.preprocess([{"image": torch.arange(4.0), "mask": torch.ones(2, dtype=torch.bool)}])',
        "step(torch.arange(3.0), torch.device(DEV))",
        "chunked(torch.rand(2, 3, device=DEV), torch.rand(3, 4, device=DEV))",
        "nothing_to_follow(torch.ones(2))",
    ],
    "DEV002": [
        "run(torch.nn.Linear(3, 2), torch.ones(4, 3), torch.device(DEV))",
    ],
    "DEV003": [
        'h = Head(); h.register_buffer("weight", torch.ones(1, device=DEV))\n'
        "a, b, c = h(3)\n(a, b, c)",
        "make(2)",
        'b = Buffers(); b.register_buffer("weight", torch.ones(1, device=DEV))\n'
        "e, s = b.fresh()\n(e, shape_only(s))",
    ],
    "DEV004": [
        'm = Model(); m.register_buffer("pixel_mean", torch.zeros(1, device=DEV))\n'
        "m.forward_offline_mode(torch.arange(3.0))",
        'm = Model(); m.register_buffer("pixel_mean", torch.zeros(1, device=DEV))\n'
        "m.common_inference(torch.ones(2))",
        'load(PATHS["tensor"])',
    ],
    "DEV005": [
        "torch.manual_seed(0)\nMatcher()(torch.rand(2, 3), torch.rand(4, 3))",
        "torch.manual_seed(0)\nscaler, loss = train(torch.nn.Linear(3, 1), torch.rand(2, 3))\n"
        "(loss, loss.dtype, scaler.scale(loss), scaler.is_enabled())",
    ],
    "DEV006": [
        'n = Net(); n.register_buffer("w", torch.zeros(2, device=DEV))\n'
        'n.load_weights(PATHS["state"])\nn.w',
        'read(PATHS["tensor"])',
        # all_gather-style: tensors pickled through torch.save come back where they were
        'gather([torch.arange(3.0), torch.ones(2, dtype=torch.bool), torch.tensor(7)])',
        'load_on_gpu(PATHS["tensor"])',
        'load_on_gpu0(PATHS["state"])',
        'load_cuda(PATHS["state"])',
        'describe(PATHS["tensor"])',
        'load_remapped(PATHS["state"])',
    ],
    "DEV001_branches": [
        "p = Pair().to(DEV)\np(torch.arange(3.0, device=DEV), True)",
        "p = Pair().to(DEV)\np(torch.arange(3.0, device=DEV), False)",
    ],
    "DEV003_types": [
        "(convert(torch.arange(3.0)), convert(torch.arange(3.0), half=True))",
        "(as_long(torch.ones(2, 2)), as_long(torch.arange(3.0)))",
    ],
    "DEV004_built": [
        'load(PATHS["tensor"])',
        "place(torch.arange(3.0))",
        "place_concatenated(torch.arange(3.0))",
    ],
    "DEV004_scripts": [
        "place(torch.arange(3.0))",
        "run_main()",
    ],
    "DEV004_conditional": [
        "place(torch.arange(3.0))",
        "buffer(4)",
        "kept_on_the_cpu(torch.arange(3.0))",
    ],
    "DEV004_fields": [
        "c = Config()\n(torch.arange(3.0).to(c.device) * 2, torch.arange(3.0).to(c.eval_device), c.label)",
    ],
    "DEV007": [
        "timed_forward(torch.nn.Linear(3, 2).to(DEV), torch.ones(4, 3, device=DEV))",
        "setup(0)",
    ],
    "DEV011": [
        "buffer(3)",
        "place(torch.arange(3.0))",
        "evaluate(torch.arange(3.0))",
    ],
    "DEV008": [
        # the backend follows the device: NCCL with CUDA, gloo on the CPU
        '{"nccl": "cuda", "gloo": "cpu"}[parse([]).dist_backend]',
        '{"nccl": "cuda", "gloo": "cpu"}[Config.dist_backend]',
    ],
    "DEV010": [
        # the wrapper is recorded, not built (no process group here): ids mean the accelerator, None the CPU
        'DistributedDataParallel = lambda m, device_ids=None, output_device=None: "cuda" if device_ids else "cpu"\n'
        'wrap(None, 0)',
    ],
    "DEV009": [
        "torch.manual_seed(0)\n"
        "shapes = torch.tensor([[2, 2], [1, 1]], device=DEV)\n"
        "starts = torch.tensor([0, 4], device=DEV)\n"
        "value = torch.rand(1, 5, 2, 4, device=DEV)\n"
        "locations = torch.rand(1, 3, 2, 2, 2, 2, device=DEV)\n"
        "weights = torch.rand(1, 3, 2, 2, 2, device=DEV).softmax(-1)\n"
        "MSDeformAttnFunction.apply(value, shapes, starts, locations, weights, 64)",
    ],
    "DEV101": [
        "torch.manual_seed(0)\nt = Tracker()\nt.readout(torch.zeros(2, 8, device=DEV), 3)",
        "Tracker().assign(1, [1.0, 2.0, 3.0, 4.0])",
        "o = Offline()\no.run(torch.ones(2, 3), 2, 2, 3)",
        "torch.manual_seed(0)\no = Offline()\n"
        "o.assign(torch.rand(3, 4, device=DEV), (torch.tensor([0, 1]), [2, 3]))",
    ],
    "DEV102": [
        'h = Head(); h.register_buffer("w", torch.zeros(1, device=DEV))\nh(torch.ones(2, 3, device=DEV))',
    ],
    "DEV103": [
        'o = Offline(); o.register_buffer("pixel_mean", torch.zeros(1, device=DEV))\n(o.ids([]), o.ids([3, 1]))',
        "upsample_kernel(torch.ones(2, 2, device=DEV), 2)",
        "shifted(torch.arange(5.0, device=DEV), [4, 0, 2])",
    ],
    "DEV104": [
        "a, b = legacy(3)\n(a, shape_only(b))",
        "e, s, k, d, a = legacy_forms(torch.arange(6.0).reshape(2, 3))\n"
        "(e, shape_only(s), shape_only(k), d, a)",
    ],
    "seed": [
        "torch.manual_seed(0)\nc = VideoInstanceCutter().to(DEV)\n"
        "(c.readout(), c.readout_pos(torch.zeros(2, 32, device=DEV)),"
        " c.readout_ids(torch.zeros(2, 32, device=DEV)))",
        "c = VideoInstanceCutter()\nc.disappear_mask(torch.zeros(4, 32, device=DEV), [1, 3])",
        "c = VideoInstanceCutter()\nc.stage_targets(torch.zeros(1, 5, device=DEV), [(0, 2), (3, 1)], stage=2)",
        "torch.manual_seed(0)\nc = VideoInstanceCutter()\n"
        "c.mask_pool(torch.randn(3, 4, 2, 2, device=DEV), torch.randn(3, 6, device=DEV))",
        "m = DVIS_DAQ_offline().to(DEV)\nm.full_logits(3)",
        "torch.manual_seed(0)\nm = DVIS_DAQ_offline().to(DEV)\n"
        "(m.inference_video(torch.rand(4, 5, device=DEV), None, [], 2, 1, 3),"
        " m.inference_video(torch.rand(4, 5, device=DEV), None, [3, 1, 2], 2, 1, 3))",
    ],
}


def _msda_stub(ns: Dict[str, Any]) -> types.ModuleType:
    """The compiled op, computed by the golden's own PyTorch twin (what the op computes)."""
    mod = types.ModuleType("MultiScaleDeformableAttention")

    def forward(value, shapes, starts, locations, weights, step):
        return ns["ms_deform_attn_core_pytorch"](value, shapes, locations, weights)

    mod.ms_deform_attn_forward = forward
    return mod


def _elsewhere_stub(ns: Dict[str, Any], dev: str) -> types.ModuleType:
    mod = types.ModuleType("elsewhere")

    class Base(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("anchor", torch.zeros(1, device=dev))

        @property
        def device(self):
            return self.anchor.device

    mod.Base = Base
    return mod


STUBS: Dict[str, Dict[str, Callable[[Dict[str, Any], str], types.ModuleType]]] = {
    "DEV009": {"MultiScaleDeformableAttention": lambda ns, dev: _msda_stub(ns)},
    "DEV101": {"elsewhere": _elsewhere_stub},
    # a dataclass looks its (string) annotations up in its module, which exec does not register
    "DEV004_fields": {"golden_DEV004_fields": lambda ns, dev: types.ModuleType("golden_DEV004_fields")},
}


class ShapeOnly:
    def __init__(self, t):
        self.dtype, self.shape = t.dtype, tuple(t.shape)

    def __repr__(self):
        return f"ShapeOnly({self.dtype}, {self.shape})"


def normalize(x: Any) -> Any:
    """A value comparable across the two runs (the accelerator read as the CPU)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        return ("tensor", t.dtype, tuple(t.shape), t.cpu().clone())
    if isinstance(x, ShapeOnly):
        return ("shape", x.dtype, x.shape)
    if isinstance(x, torch.device):
        return ("device", "cpu" if x.type in ("cuda", "cpu") else x.type)
    if isinstance(x, str) and x.split(":")[0] in ("cuda", "cpu"):
        return ("device", "cpu")
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [normalize(v) for v in x])
    if isinstance(x, dict):
        return ("dict", {k: normalize(v) for k, v in x.items()})
    if x is None or isinstance(x, (bool, int, float, str, torch.dtype)):
        return x
    raise AssertionError(f"the oracle cannot compare a {type(x).__name__}; return tensors or plain values")


def assert_same(got: Any, want: Any, where: str = "result") -> None:
    if isinstance(want, tuple) and want and want[0] == "tensor":
        assert isinstance(got, tuple) and got and got[0] == "tensor", f"{where}: {got!r} is not a tensor"
        _, dtype, shape, values = got
        _, wdtype, wshape, wvalues = want
        assert dtype == wdtype, f"{where}: dtype {dtype} != {wdtype}"
        assert shape == wshape, f"{where}: shape {shape} != {wshape}"
        same = torch.equal(values, wvalues) or (
            values.is_floating_point() and bool(torch.allclose(values, wvalues, rtol=0, atol=0, equal_nan=True)))
        assert same, f"{where}: values differ\n{values}\n!=\n{wvalues}"
        return
    if isinstance(want, tuple) and len(want) == 2 and want[0] in ("list", "tuple"):
        assert isinstance(got, tuple) and got[0] == want[0] and len(got[1]) == len(want[1]), f"{where}: {got!r}"
        for i, (g, w) in enumerate(zip(got[1], want[1])):
            assert_same(g, w, f"{where}[{i}]")
        return
    if isinstance(want, tuple) and len(want) == 2 and want[0] == "dict":
        assert isinstance(got, tuple) and got[0] == "dict" and got[1].keys() == want[1].keys(), f"{where}"
        for k in want[1]:
            assert_same(got[1][k], want[1][k], f"{where}[{k!r}]")
        return
    if isinstance(want, float) and math.isnan(want):
        assert isinstance(got, float) and math.isnan(got), f"{where}"
        return
    assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> Dict[str, str]:
    d = tmp_path_factory.mktemp("oracle-files")
    out = {"tensor": str(d / "t.pt"), "state": str(d / "state.pt")}
    torch.save(torch.arange(5), out["tensor"])
    torch.save({"w": torch.tensor([1.5, -2.0])}, out["state"])
    return out


def run_text(text: str, code: str, call: str, dev: str, paths: Dict[str, str]) -> Any:
    """Run golden ``text`` then ``call`` in one namespace; the normalized value of its last line."""
    ns: Dict[str, Any] = {"__name__": f"golden_{code}", "DEV": dev, "PATHS": paths, "shape_only": ShapeOnly}
    stubs = {name: make(ns, dev) for name, make in STUBS.get(code, {}).items()}
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CUDA autocast/GradScaler warn that they disable themselves
            exec(compile(text, f"<{code}>", "exec"), ns)
            torch.manual_seed(0)  # every call starts from one random state
            *body, last = call.strip().split("\n")
            exec(compile("\n".join(body), f"<{code} call>", "exec"), ns)
            value = eval(compile(last, f"<{code} call>", "eval"), ns)
            return normalize(value)
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def _load_on_cpu(real_load):
    """torch.load with an accelerator ``map_location`` read as the CPU (the
    virtual device does not cover deserialisation); in a ``map_location``
    callable, ``storage.cuda(...)`` gives the CPU storage back."""

    def load(f, map_location=None, *args, **kwargs):
        loc = map_location
        if isinstance(loc, torch.device):
            loc = loc.type
        if isinstance(loc, str) and loc.split(":")[0] == "cuda":
            map_location = "cpu"
        if not callable(loc):
            return real_load(f, map_location, *args, **kwargs)
        real_cuda = torch.UntypedStorage.cuda
        torch.UntypedStorage.cuda = lambda self, *a, **k: self
        try:
            return real_load(f, map_location, *args, **kwargs)
        finally:
            torch.UntypedStorage.cuda = real_cuda

    return load


def run_virtual(text: str, code: str, call: str, paths: Dict[str, str]):
    """``text`` and ``call`` on the virtual accelerator, ``DEV`` the accelerator: (value, mismatches)."""
    real_load = torch.load
    torch.load = _load_on_cpu(real_load)
    try:
        with virtual_device("cuda", mode="report", report_available=False) as vd:
            value = run_text(text, code, call, "cuda", paths)
        return value, list(vd.mismatches)
    finally:
        torch.load = real_load


def run_original(text: str, code: str, call: str, paths: Dict[str, str]) -> Any:
    return run_virtual(text, code, call, paths)[0]


def run_mapped(text: str, code: str, call: str, paths: Dict[str, str]) -> Any:
    """The fixed code on the CPU, with whatever accelerator placement it still has mapped to the CPU."""
    with virtual_device("cuda", mode="report", report_available=False):
        return run_text(text, code, call, "cpu", paths)


def _input(code: str) -> pathlib.Path:
    return SEED if code == "seed" else FIXES / f"{code}.in.py"


def _fixed_now(code: str, unsafe: bool, tmp_path: pathlib.Path) -> str:
    work = tmp_path / ("seed.py" if code == "seed" else f"{code}.py")
    shutil.copyfile(_input(code), work)
    argv = ["--isolated", "--fix", "--select", "DEV", "--extend-select", "DEV102,DEV104", str(work)]
    cli.main(argv + (["--unsafe-fixes"] if unsafe else []), stdout=io.StringIO(), stderr=io.StringIO())
    return work.read_text()


CODES = sorted(p.name.split(".")[0] for p in FIXES.glob("*.in.py")) + ["seed"]
CASES = [(code, i) for code in CODES for i in range(len(CALLS.get(code, [])))]
VARIANTS = ["golden", "golden-unsafe", "fix", "fix-unsafe"]


def test_every_golden_has_calls():
    missing = [code for code in CODES if not CALLS.get(code)]
    assert missing == [], f"add calls for {missing} to CALLS in tests/test_fix_oracle.py"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("code,i", CASES, ids=[f"{c}-{i}" for c, i in CASES])
def test_fixed_code_computes_what_the_original_computes(code, i, variant, paths, tmp_path):
    call = CALLS[code][i]
    original = _input(code).read_text()
    if variant.startswith("golden"):
        if code == "seed":
            name = "dvis_daq_seed.fixed.py"
            if variant == "golden":
                pytest.skip("the seed has one golden, fixed with --unsafe-fixes")
            fixed_path = SEED.with_name(name)
        else:
            fixed_path = FIXES / f"{code}.{'unsafe.' if variant.endswith('unsafe') else ''}out.py"
        fixed = fixed_path.read_text()
    else:
        fixed = _fixed_now(code, variant.endswith("unsafe"), tmp_path)
    want = run_original(original, code, call, paths)
    if variant.endswith("unsafe"):
        got = run_text(fixed, code, call, "cpu", paths)
    else:
        # Safe fixes leave the unsafe ones (a "cuda:1", a guessed tensor) in
        # place by design: those sites still need the accelerator mapped.
        got = run_mapped(fixed, code, call, paths)
    assert_same(got, want, f"{code} call {i} ({variant})")


def _fixed_text(code: str, variant: str, tmp_path: pathlib.Path) -> str:
    if variant.startswith("golden"):
        if code == "seed":
            return SEED.with_name("dvis_daq_seed.fixed.py").read_text()
        return (FIXES / f"{code}.{'unsafe.' if variant.endswith('unsafe') else ''}out.py").read_text()
    return _fixed_now(code, variant.endswith("unsafe"), tmp_path)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("code,i", CASES, ids=[f"{c}-{i}" for c, i in CASES])
def test_fixed_code_on_the_virtual_accelerator_equals_the_original_without_mismatches(
        code, i, variant, paths, tmp_path):
    """The fixed code where its author meant it to run (``DEV`` the accelerator, here the
    virtual one): the same results as the original, and no operand ever on the wrong device."""
    if code == "seed" and variant == "golden":
        pytest.skip("the seed has one golden, fixed with --unsafe-fixes")
    call = CALLS[code][i]
    want, before = run_virtual(_input(code).read_text(), code, call, paths)
    got, mismatches = run_virtual(_fixed_text(code, variant, tmp_path), code, call, paths)
    if variant.endswith("unsafe"):
        left = mismatches
    else:
        # Safe fixes leave the unsafe ones in place by design (DEV102 is always unsafe): a
        # mismatch the original has at the same op of the same function may stay, no new one.
        left = list((Counter(_where(m) for m in mismatches) - Counter(_where(m) for m in before)).elements())
    assert left == [], f"{code} call {i} ({variant}): " + "; ".join(map(str, mismatches))
    assert_same(got, want, f"{code} call {i} ({variant}, virtual accelerator)")


def _where(m) -> tuple:
    return (m.op, m.kind, m.function)


def test_oracle_catches_a_fix_that_changes_numbers(paths):
    """The oracle itself: a 'fix' that turns CUDA autocast (off on a CPU-only
    machine) into CPU autocast (bfloat16) is caught."""
    original = (FIXES / "DEV005.in.py").read_text()
    wrong = original.replace("with torch.cuda.amp.autocast():", 'with torch.autocast("cpu"):')
    call = "torch.manual_seed(0)\nscaler, loss = train(torch.nn.Linear(3, 1), torch.rand(2, 3))\nloss"
    want = run_original(original, "DEV005", call, paths)
    with pytest.raises(AssertionError, match="dtype"):
        assert_same(run_text(wrong, "DEV005", call, "cpu", paths), want)


def test_oracle_catches_a_size_read_as_data(paths):
    """torch.Tensor(n) with an integer variable is a size: reading it as data changes the shape."""
    src = "import torch\n\ndef bias(n):\n    return torch.Tensor(n).zero_()\n"
    wrong = src.replace("torch.Tensor(n)", "torch.tensor(n, dtype=torch.float32)")
    want = run_original(src, "x", "bias(4)", paths)
    with pytest.raises(AssertionError, match="shape"):
        assert_same(run_text(wrong, "x", "bias(4)", "cpu", paths), want)


def test_oracle_catches_a_fix_that_leaves_a_host_tensor_on_the_accelerator_path(paths):
    """On the virtual accelerator a 'fix' that drops a move (a CPU tensor meeting the
    accelerator input) is a mismatch, though on the CPU alone it computes the same."""
    src = 'import torch\n\ndef f(x):\n    return x + torch.ones(2).to("cuda")\n'
    wrong = src.replace('.to("cuda")', "")
    call = "f(torch.ones(2, device=DEV))"
    assert_same(run_text(wrong, "x", call, "cpu", paths), run_original(src, "x", call, paths))
    _, mismatches = run_virtual(wrong, "x", call, paths)
    assert [m.kind for m in mismatches] == ["mixed-devices"]
