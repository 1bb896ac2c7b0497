"""Property tests for rules and fixes over generated snippets built from the rule patterns.

For every generated snippet: the fixed text parses; a second fix changes nothing;
no fixable diagnostic remains; the lines around the fixed statement are unchanged;
and for constant factories the fixed snippet, evaluated on the CPU, gives tensors
equal (values, dtype, shape) to the original evaluated with the accelerator
mapped to the CPU.
"""

from __future__ import annotations

import ast
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flake8_device_fixers import apply_fixes
from flake8_device.engine import check_source

torch = pytest.importorskip("torch")

DTYPES = ["torch.float32", "torch.float64", "torch.int64", "torch.int32", "torch.bool", "torch.float16"]
SIZES = st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=3)


@st.composite
def factory_expr(draw):
    kind = draw(st.sampled_from(["zeros", "ones", "full", "empty", "arange", "eye", "tensor", "IntTensor"]))
    sizes = draw(SIZES)
    size_txt = ", ".join(map(str, sizes))
    kw_dtype = draw(st.none() | st.sampled_from(DTYPES))
    if kind == "full":
        call = f"torch.full(({size_txt},), fill_value={draw(st.integers(-3, 3))}"
    elif kind == "arange":
        call = f"torch.arange({sizes[0]}"
        if kw_dtype and kw_dtype not in ("torch.int64", "torch.int32", "torch.float32", "torch.float64"):
            kw_dtype = None
    elif kind == "eye":
        call = f"torch.eye({sizes[0]}"
    elif kind == "tensor":
        call = f"torch.tensor({sizes}"
    elif kind == "IntTensor":
        call = f"torch.IntTensor({sizes}"
        kw_dtype = None
    elif draw(st.booleans()):
        call = f"torch.{kind}(size=({size_txt},)"
    else:
        call = f"torch.{kind}({size_txt}"
    if kw_dtype:
        call += f", dtype={kw_dtype}"
    call += ")"
    for _ in range(draw(st.integers(0, 2))):
        conv = draw(st.sampled_from([".to({})".format(draw(st.sampled_from(DTYPES))), ".float()", ".long()"]))
        call += conv
    move = draw(st.sampled_from(['.to("cuda")', ".cuda()", '.to(device="cuda")', '.to("cuda", non_blocking=True)']))
    return kind, call + move


@st.composite
def snippet(draw):
    kind, expr = draw(factory_expr())
    source_kind = draw(st.sampled_from(["device_param", "self_device", "tensor_param"]))
    multiline = draw(st.booleans())
    if multiline:
        # split after the first "(" of the factory call
        i = expr.index("(") + 1
        expr = expr[:i] + "\n            " + expr[i:]
    comment = draw(st.sampled_from(["", "  # keep me"]))
    if source_kind == "device_param":
        body = f"def f(device):\n    before = 1\n    x = {expr}{comment}\n    after = 2\n    return x\n"
        call = "f(torch.device('cpu'))"
    elif source_kind == "self_device":
        body = (
            "class M(torch.nn.Module):\n"
            "    @property\n"
            "    def device(self):\n"
            "        return torch.device('cpu')\n\n"
            f"    def f(self):\n        before = 1\n        x = {expr}{comment}\n        after = 2\n        return x\n"
        )
        call = "M().f()"
    else:
        body = f"def f(ref: torch.Tensor):\n    before = 1\n    x = {expr}{comment}\n    after = 2\n    return x\n"
        call = "f(torch.zeros(1))"
    return kind, "import torch\n\n" + body, call


def fix_until_stable(text: str, unsafe: bool = True, rounds: int = 5) -> str:
    for _ in range(rounds):
        res = apply_fixes(text, check_source(text), unsafe=unsafe)
        if not res.changed:
            return text
        text = res.text
    return text


def run(text: str, call: str):
    ns: dict = {}
    exec(compile(text, "<snippet>", "exec"), ns)
    return eval(call, ns)


# FLAKE8_DEVICE_EXAMPLES raises the number of examples for a deeper local run.
EXAMPLES = int(os.environ.get("FLAKE8_DEVICE_EXAMPLES", "150"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snippet())
def test_fixed_snippet_properties(case):
    kind, src, call = case
    diags = check_source(src)
    assert diags, src  # every generated snippet is a rule pattern
    fixed = fix_until_stable(src)
    ast.parse(fixed)
    # idempotent
    assert apply_fixes(fixed, check_source(fixed), unsafe=True).text == fixed
    # nothing fixable remains
    assert [d for d in check_source(fixed) if d.fix is not None] == []
    # text outside the fixed statement is unchanged
    before, after = src.split("before = 1")[0], src.split("after = 2")[1]
    assert fixed.startswith(before) or "def device" in fixed  # property insertion only adds lines
    assert fixed.endswith(after)
    assert "# keep me" in fixed or "# keep me" not in src
    # same tensors: original with the accelerator mapped to the CPU vs fixed on the CPU
    original = run(src.replace('"cuda"', '"cpu"').replace(".cuda()", ".cpu()"), call)
    result = run(fixed, call)
    assert result.dtype == original.dtype and result.shape == original.shape
    assert result.device.type == "cpu"
    if kind != "empty":
        assert torch.equal(result, original)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(['"cuda"', '"cuda:0"', 'torch.device("cuda")', '"mps"']),
       st.sampled_from(["if torch.cuda.is_available():\n        y = x.to({d})\n",
                        "y = x.to({d}) if torch.cuda.is_available() else x\n",
                        "if x.is_cuda:\n        y = x.to({d})\n",
                        "if x.device.type == 'cuda':\n        y = torch.zeros(3, device={d})\n"]))
def test_guarded_code_is_never_flagged(dev, shape):
    src = "import torch\n\ndef f(x):\n    y = None\n    " + shape.format(d=dev) + "    return y\n"
    assert check_source(src) == []


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="xyz()[].,:=\"'+ \ntorchcudato0123", max_size=80))
def test_engine_never_crashes_on_arbitrary_text(text):
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return
    check_source(text, tree=tree)


# --- whole modules through the command: post-conditions and the executable oracle ----------

from collections import Counter  # noqa: E402
import io  # noqa: E402
import tempfile  # noqa: E402

from flake8_device_fixers.postconditions import undefined_names  # noqa: E402
from flake8_device import cli  # noqa: E402

FACTORIES = ["zeros", "ones", "arange"]


@st.composite
def module_case(draw):
    """A module built from the shapes real code has: module-level tensors, plain
    functions with no device source, tensor parameters, device defaults, legacy
    constructors sized by a variable, methods of a class with a device; with or
    without ``import torch`` (a module that never imports torch gets only the
    code that does not need it, so a fix that writes ``torch`` must import it)."""
    with_torch = draw(st.booleans())
    header = draw(st.sampled_from(['"""Doc."""\n', "import os\n", "from __future__ import annotations\n", ""]))
    if with_torch:
        header += draw(st.sampled_from(["import torch\n", "import torch\nfrom torch import nn\n",
                                        "import torch.nn.functional as F\nimport torch\n"]))
    blocks, calls = [], []
    kinds = ["default"] + (["module", "plain", "tensor", "legacy", "method"] if with_torch else [])
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(kinds))
        n = draw(st.integers(1, 4))
        fac = draw(st.sampled_from(FACTORIES))
        move = draw(st.sampled_from(['.to("cuda")', ".cuda()", '.to(device="cuda")']))
        if kind == "module":
            blocks.append(f"T{i} = torch.{fac}({n}){move}\n")
            calls.append(f"T{i}")
        elif kind == "plain":
            blocks.append(f"def g{i}(n):\n    return torch.{fac}(n){move}\n")
            calls.append(f"g{i}({n})")
        elif kind == "tensor":
            blocks.append(f"def h{i}(x: torch.Tensor):\n    return x + torch.{fac}(x.shape[0]){move}\n")
            calls.append(f"h{i}(torch.ones({n}, device=DEV))")
        elif kind == "default":
            blocks.append(f'def d{i}(x, to_store="cuda"):\n    return (x, to_store)\n')
            calls.append(f"d{i}({n})")
        elif kind == "legacy":
            blocks.append(f"def l{i}(n):\n    return torch.Tensor(n).fill_(1.5){move}\n")
            calls.append(f"l{i}({n})")
        else:
            blocks.append(
                f"class M{i}(torch.nn.Module):\n"
                "    def __init__(self):\n        super().__init__()\n"
                '        self.register_buffer("anchor", torch.zeros(1))\n\n'
                "    @property\n    def device(self):\n        return self.anchor.device\n\n"
                f"    def make(self, n):\n        return torch.{fac}(n){move}\n")
            calls.append(f"M{i}().to(DEV).make({n})")
    return header + "\n\n".join(blocks), calls


def _undefined(text: str) -> Counter:
    found = undefined_names(text)
    assert found is not None
    return Counter(n for n, _, _ in found)


def _fix_file(text: str, unsafe: bool) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.py")
        with open(path, "w") as fh:
            fh.write(text)
        flags = ["--fix", "--unsafe-fixes"] if unsafe else ["--fix"]
        cli.main(["--isolated", *flags, path], stdout=io.StringIO(), stderr=io.StringIO())
        with open(path) as fh:
            fixed = fh.read()
        cli.main(["--isolated", *flags, path], stdout=io.StringIO(), stderr=io.StringIO())
        with open(path) as fh:
            assert fh.read() == fixed, "a second --fix changed the file"
    return fixed


@settings(max_examples=max(20, EXAMPLES // 3), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(module_case(), st.booleans())
def test_fixed_module_runs_like_the_original(case, unsafe):
    from test_fix_oracle import assert_same, run_mapped, run_original, run_text

    src, calls = case
    fixed = _fix_file(src, unsafe)
    ast.parse(fixed)
    assert _undefined(fixed) - _undefined(src) == Counter(), fixed
    for i, call in enumerate(calls):
        want = run_original(src, "gen", call, {})
        # with --unsafe-fixes every hardcoded site has a fix: the plain CPU must do
        got = run_text(fixed, "gen", call, "cpu", {}) if unsafe else run_mapped(fixed, "gen", call, {})
        assert_same(got, want, f"call {i}: {call}\n--- original\n{src}\n--- fixed\n{fixed}")
