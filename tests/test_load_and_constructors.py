"""``torch.load`` map_location fixes, legacy constructors and fix text inside f-strings.

A ``map_location`` fix must keep every load on a CUDA machine exactly as
before (``None`` there: tensors restore where they were saved) and load on
the CPU elsewhere; a ``map_location`` callable stays a callable.  Fix text
written inside an f-string's replacement field must parse on Python 3.9-3.11
too, where the field cannot reuse the f-string's quote.
"""

from __future__ import annotations

import ast
import io
import textwrap
import tokenize
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flake8_device.cli import main
from flake8_device.engine import check_source
from flake8_device_fixers.syntax import fstring_field_text


def _fix(tmp_path, source: str, *extra: str):
    path = tmp_path / "mod.py"
    path.write_text(textwrap.dedent(source))
    out, err = io.StringIO(), io.StringIO()
    main(["--isolated", "--fix", "--select", "DEV", "--extend-select", "DEV104", *extra, str(path)], stdout=out,
         stderr=err)
    return path.read_text(), out.getvalue() + err.getvalue()


def _load_calls(text: str):
    return [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Call) and ast.unparse(n.func) == "torch.load"]


def _location(call: ast.Call) -> ast.AST:
    (k,) = [k for k in call.keywords if k.arg == "map_location"]
    return k.value


def _eval(node: ast.AST, cuda: bool):
    with mock.patch.object(torch.cuda, "is_available", lambda: cuda):
        return eval(compile(ast.Expression(node), "<map_location>", "eval"), {"torch": torch})


# ------------------------------------------------------------------ DEV006

LOAD_SITES = [
    # (enclosing code, the load expression); {load} is replaced by the load call
    "def f(path):\n    return {load}\n",
    "def f(path, device):\n    x = torch.ones(1, device=device)\n    return {load}, x\n",
    "class Net(torch.nn.Module):\n    @property\n    def device(self):\n        return self.w.device\n\n"
    "    def restore(self, path):\n        self.load_state_dict({load})\n",
    "import io\nimport torch.distributed as dist\n\n\ndef all_gather(data, group, device):\n"
    "    buffer = io.BytesIO()\n    torch.save(data, buffer)\n    dist.broadcast(torch.ones(1, device=device), 0)\n"
    "    path = io.BytesIO(buffer.getvalue())\n    return [{load}]\n",
    "def f(path):\n    return f\"{{{load}}}\"\n",
    "def f(path):\n    return f'{{{load}}}'\n",
]
LOADS = ["torch.load(path)", "torch.load(path, weights_only=True)", "torch.load(f=path)"]


@settings(max_examples=25, deadline=None)
@given(site=st.sampled_from(LOAD_SITES), load=st.sampled_from(LOADS))
def test_load_fix_keeps_the_gpu_load_and_loads_on_the_cpu_elsewhere(tmp_path_factory, site, load):
    """On a CUDA machine the fixed map_location is None (restore where saved: the original);
    without CUDA it is "cpu".  Never a device, which would move every loaded tensor."""
    src = "import torch\n\n\n" + site.format(load=load)
    (diag,) = [d for d in check_source(src) if d.code == "DEV006"]
    assert diag.fix is not None and diag.fix.safe, diag
    assert "restores every tensor where it was saved" in diag.fix.description
    fixed, _ = _fix(tmp_path_factory.mktemp("load"), src)
    (call,) = _load_calls(fixed)
    loc = _location(call)
    assert _eval(loc, cuda=True) is None
    assert _eval(loc, cuda=False) == "cpu"


def test_gathered_cpu_tensors_stay_on_the_cpu(tmp_path):
    src = """\
    import io
    import torch


    def gather(tensors, device):
        out = []
        for t in tensors:
            buffer = io.BytesIO()
            torch.save(t, buffer)
            out.append(torch.load(io.BytesIO(buffer.getvalue())))
        return out
    """
    fixed, _ = _fix(tmp_path, src)
    assert "map_location=device" not in fixed
    scope: dict = {}
    exec(compile(fixed, "<fixed>", "exec"), scope)
    got = scope["gather"]([torch.arange(3.0), torch.tensor(True)], "cuda")
    assert [t.device.type for t in got] == ["cpu", "cpu"]
    assert torch.equal(got[0], torch.arange(3.0))


class _Storage:
    def __init__(self):
        self.moved = []

    def cuda(self, *args, **kwargs):
        self.moved.append((args, kwargs))
        return ("on cuda", args, tuple(kwargs.items()))


@pytest.mark.parametrize("body", ["storage.cuda()", "storage.cuda(0)", "storage.cuda(device=1)"])
@pytest.mark.parametrize("positional", [False, True])
def test_callable_map_location_stays_a_callable(tmp_path, body, positional):
    arg = f"lambda storage, loc: {body}"
    call = f"torch.load(path, {arg})" if positional else f"torch.load(path, map_location={arg})"
    src = f"import torch\n\n\ndef f(path):\n    return {call}\n"
    diags = [d for d in check_source(src) if d.fix is not None]
    assert len(diags) == 1 and diags[0].fix.safe and "stays a callable" in diags[0].fix.description
    fixed, _ = _fix(tmp_path, src)
    assert ".to(" not in fixed
    (load,) = _load_calls(fixed)
    fn = load.args[1] if positional else _location(load)
    assert isinstance(fn, ast.Lambda)
    orig_fn = eval(arg, {"torch": torch})
    for cuda in (True, False):
        new_fn = _eval(fn, cuda)
        s_orig, s_new = _Storage(), _Storage()
        with mock.patch.object(torch.cuda, "is_available", lambda: cuda):
            got = new_fn(s_new, "cuda:0")
        if cuda:
            assert got == orig_fn(s_orig, "cuda:0") and s_new.moved == s_orig.moved
        else:
            assert got is s_new and s_new.moved == []
    # and it loads on this CPU-only machine
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(3)}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, map_location=_eval(fn, torch.cuda.is_available()))
    assert torch.equal(loaded["w"], torch.arange(3))


def test_callable_map_location_of_another_shape_gets_no_to_device_fix():
    src = "import torch\n\n\ndef f(p):\n    return torch.load(p, map_location=lambda s, loc: s.cuda().pin_memory())\n"
    (diag,) = [d for d in check_source(src) if d.code == "DEV002"]
    assert diag.fix is None and "no .to(device)" in diag.no_fix_reason


def test_cuda_string_map_location_stays_cuda_where_available(tmp_path):
    fixed, _ = _fix(tmp_path, 'import torch\n\n\ndef f(p):\n    return torch.load(p, map_location="cuda")\n')
    (call,) = _load_calls(fixed)
    assert _eval(_location(call), cuda=True) == "cuda"
    assert _eval(_location(call), cuda=False) == "cpu"


@pytest.mark.parametrize("mapping", ['{"cuda:1": "cuda:0"}', '{"cuda:0": "cuda"}'])
def test_dict_map_location_to_cuda_is_kept_where_cuda_is_available(tmp_path, mapping):
    src = f"import torch\n\n\ndef f(p):\n    return torch.load(p, map_location={mapping})\n"
    (diag,) = [d for d in check_source(src) if d.fix is not None]
    assert diag.code == "DEV006" and diag.fix.safe
    fixed, _ = _fix(tmp_path, src)
    (call,) = _load_calls(fixed)
    assert _eval(_location(call), cuda=True) == eval(mapping)
    assert _eval(_location(call), cuda=False) == "cpu"


def test_dict_map_location_to_the_cpu_is_not_reported():
    src = 'import torch\n\n\ndef f(p):\n    return torch.load(p, map_location={"cuda:0": "cpu"})\n'
    assert [d for d in check_source(src) if d.code == "DEV006"] == []


# --------------------------------------------------------- f-string fields

def _literals(text: str):
    return [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.STRING]


_VALUES = st.text(alphabet="abc:0 '\"", max_size=6)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.tuples(_VALUES, st.sampled_from(['"', "'", '"""'])), min_size=1, max_size=3),
       delimiters=st.lists(st.sampled_from(['"', "'", '"""', "'''"]), min_size=1, max_size=2))
def test_fstring_field_text_never_reuses_an_enclosing_quote(values, delimiters):
    lits = []
    for value, q in values:
        if q[0] in value or (len(q) == 3 and value.endswith(q[0])):
            value = value.replace(q[0], "")
        lits.append(f"{q}{value}{q}")
    text = f"torch.load(p, map_location={lits[0]}, extra=[{', '.join(lits[1:])}])"
    got = fstring_field_text(text, delimiters)
    if got is None:
        return
    taken = {d[0] for d in delimiters}
    new = _literals(got)
    assert all(t.string.lstrip("rbuRBU")[0] not in taken for t in new), got
    assert [ast.literal_eval(t.string) for t in new] == [ast.literal_eval(t.string) for t in _literals(text)]
    # the innermost field: on this interpreter (3.11 here) it parses inside the f-string
    inner = delimiters[-1]
    if len(delimiters) == 1:
        compile(f"f{inner}{{{got}}}{inner}", "<f>", "eval")


def test_fstring_field_text_refuses_what_cannot_be_requoted():
    assert fstring_field_text('x["a\'b"]', ['"']) is None  # the other quote is in the body
    assert fstring_field_text('x["a"]', ['"', "'"]) is None  # both quotes taken
    assert fstring_field_text("x # note", ['"']) is None  # a comment
    assert fstring_field_text('x["\\n"]', ["'"]) is None  # a backslash
    assert fstring_field_text('x["a"]', []) == 'x["a"]'


def test_load_inside_an_fstring_is_fixed_with_the_other_quote(tmp_path):
    fixed, _ = _fix(tmp_path, 'import torch\n\n\ndef f(p):\n    return f"{torch.load(p)}"\n')
    assert "else 'cpu')}\"" in fixed
    (call,) = _load_calls(fixed)
    assert _eval(_location(call), cuda=False) == "cpu"


def test_fix_left_inside_an_fstring_is_reported_with_its_reason(tmp_path):
    src = "import torch\n\n\ndef f(p):\n    return f\"{torch.load(p)=}\", f\"{f'{torch.load(p)}'}\"\n"
    fixed, out = _fix(tmp_path, src)
    assert fixed == src
    assert "self-documenting f-string field" in out
    assert "Python 3.9-3.11 cannot parse" in out
    assert out.count("(left: ") == 2


# ------------------------------------------------------ legacy constructors

import numpy as np  # noqa: E402

from flake8_device.names import LEGACY_CTORS  # noqa: E402

LEGACY_ARGS = [
    "", "3", "0", "2, 3", "n, 2", "[1, 2, 3]", "[[1, 2], [3, 4]]", "[]", "[1.5, -2.0]", "(2, 3)", "(1,)",
    "[True, False]", "torch.Size([2, 3])", "torch.Size([])", "x.shape", "x.size()", "x", "y", "seq",
    "np.array([1, 2])", "np.array([1.0, 2.0], dtype=np.float32)", "np.asarray(a)", "n", "len(seq)",
    "list(range(4))", "x.tolist()",
]
LEGACY_SRC = """\
import numpy as np
import torch


def make(n, a):
    x = torch.ones(2, 3)
    y = x.double()
    seq = [1, 2, 3]
    out = torch.{name}({arg})
    return out, (x, y, a)
"""


def _run_make(text: str, default_dtype=torch.float32):
    scope: dict = {}
    exec(compile(text, "<legacy>", "exec"), scope)
    a = np.array([1.0, 2.0], dtype=np.float32)
    saved = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        return scope["make"](3, a)
    finally:
        torch.set_default_dtype(saved)


def _shares(t: torch.Tensor, inputs) -> list:
    if t.numel() == 0:
        return []
    p = t.untyped_storage().data_ptr()
    out = []
    for i, v in enumerate(inputs):
        ptr = v.untyped_storage().data_ptr() if isinstance(v, torch.Tensor) else v.__array_interface__["data"][0]
        out.append(ptr == p)
    return out


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(LEGACY_CTORS)), arg=st.sampled_from(LEGACY_ARGS),
       default_dtype=st.sampled_from([torch.float32, torch.float64]))
def test_safe_legacy_constructor_fix_keeps_dtype_shape_values_and_aliasing(tmp_path_factory, name, arg,
                                                                            default_dtype):
    """Also under another default dtype, which torch.Tensor follows (torch.FloatTensor does not)."""
    src = LEGACY_SRC.format(name=name, arg=arg)
    (diag,) = [d for d in check_source(src) if d.code in ("DEV103", "DEV104")]
    try:
        want, inputs = _run_make(src, default_dtype)
    except (TypeError, RuntimeError, ValueError):
        return  # the original fails: nothing to keep
    if diag.fix is None:
        assert diag.no_fix_reason
        return
    if not diag.fix.safe:
        assert diag.fix.description  # an unsafe fix says why
        return
    fixed, _ = _fix(tmp_path_factory.mktemp("legacy"), src)
    assert fixed != src
    got, _ = _run_make(fixed, default_dtype)
    assert got.dtype == want.dtype and got.shape == want.shape, (arg, fixed)
    if "torch.empty(" not in fixed:
        assert torch.equal(got, want), (arg, fixed)
    assert _shares(got, inputs) == _shares(want, inputs), (arg, fixed)
    assert got.requires_grad == want.requires_grad


@pytest.mark.parametrize("name", sorted(LEGACY_CTORS))
def test_no_argument_legacy_constructor_is_an_empty_1d_tensor(tmp_path, name):
    src = f"import torch\n\n\ndef f():\n    return torch.{name}()\n"
    fixed, _ = _fix(tmp_path, src)
    assert ("torch.empty(0)" if name == "Tensor" else f"torch.empty(0, dtype={LEGACY_CTORS[name]})") in fixed
    scope: dict = {}
    exec(compile(fixed, "<fixed>", "exec"), scope)
    got, want = scope["f"](), getattr(torch, name)()
    assert (got.dtype, got.shape) == (want.dtype, want.shape)


def test_legacy_constructor_of_a_tensor_is_an_alias_and_gets_no_fix():
    src = "import torch\n\n\ndef f():\n    x = torch.ones(2)\n    return torch.Tensor(x)\n"
    (diag,) = [d for d in check_source(src) if d.code in ("DEV103", "DEV104")]
    assert diag.fix is None and "alias" in diag.no_fix_reason


def test_guessed_data_argument_says_it_may_be_an_alias():
    src = "import torch\n\n\ndef f(g):\n    return torch.Tensor(g())\n"
    (diag,) = [d for d in check_source(src) if d.code in ("DEV103", "DEV104")]
    assert not diag.fix.safe and "alias" in diag.fix.description


@pytest.mark.parametrize("arg", ["torch.Size([2, 3])", "x.shape", "x.size()"])
def test_legacy_constructor_of_a_shape_keeps_the_shape(tmp_path, arg):
    src = f"import torch\n\n\ndef f():\n    x = torch.ones(2, 3)\n    return torch.Tensor({arg}).to('cuda')\n"
    (diag,) = [d for d in check_source(src) if d.code in ("DEV103", "DEV104")]
    assert diag.fix is not None
    fixed, _ = _fix(tmp_path, src, "--unsafe-fixes")
    assert f"torch.empty({arg}" in fixed
    scope: dict = {}
    exec(compile(fixed, "<fixed>", "exec"), scope)
    assert scope["f"]().shape == (2, 3)


def test_cuda_typed_constructor_without_arguments(tmp_path):
    src = "import torch\n\n\ndef f(device):\n    x = torch.ones(1, device=device)\n    return torch.cuda.LongTensor(), x\n"
    fixed, _ = _fix(tmp_path, src, "--unsafe-fixes")
    assert "torch.empty(0, dtype=torch.int64, device=" in fixed
    scope: dict = {}
    exec(compile(fixed, "<fixed>", "exec"), scope)
    got, _ = scope["f"]("cpu")
    assert (got.dtype, got.shape) == (torch.int64, (0,))


_NAMED = """\
import torch


def to_gpu(storage, loc):
    {body}


def load(path):
    return torch.load(path, {how}to_gpu)
"""


@pytest.mark.parametrize("body", ["return storage.cuda()", "return storage.cuda(0)",
                                  '"""On the GPU."""\n    return storage.cuda(device=1)'])
@pytest.mark.parametrize("how", ["map_location=", ""])
def test_named_map_location_function_stays_a_storage_function(tmp_path, body, how):
    """``def to_gpu(storage, loc): return storage.cuda()`` passed by name gets the lambda's fix, never
    ``storage.to(<device>)`` (a storage has no ``.to``)."""
    src = _NAMED.format(body=body, how=how)
    (diag,) = [d for d in check_source(src) if d.code == "DEV002"]
    assert diag.fix is not None and diag.fix.safe and "stays a callable" in diag.fix.description
    fixed, _ = _fix(tmp_path, src)
    assert ".to(" not in fixed
    orig, new = {}, {}
    exec(compile(src, "<orig>", "exec"), orig)
    exec(compile(fixed, "<fixed>", "exec"), new)
    for cuda in (True, False):
        s_orig, s_new = _Storage(), _Storage()
        with mock.patch.object(torch.cuda, "is_available", lambda: cuda):
            got = new["to_gpu"](s_new, "cuda:0")
        if cuda:
            assert got == orig["to_gpu"](s_orig, "cuda:0") and s_new.moved == s_orig.moved
        else:
            assert got is s_new and s_new.moved == []
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(3)}, buffer)
    buffer.seek(0)
    assert torch.equal(new["load"](buffer)["w"], torch.arange(3))


def test_named_map_location_function_of_another_shape_gets_no_to_device_fix():
    src = _NAMED.format(body="s = storage.cuda()\n    return s.pin_memory()", how="map_location=")
    (diag,) = [d for d in check_source(src) if d.code == "DEV002"]
    assert diag.fix is None and "no .to(device)" in diag.no_fix_reason


def test_function_not_used_as_map_location_keeps_the_usual_fix():
    src = "import torch\n\n\ndef to_gpu(x, device):\n    return x.cuda()\n\n\ndef f(p):\n    return torch.load(p)\n"
    (diag,) = [d for d in check_source(src) if d.code == "DEV002"]
    assert "stays a callable" not in (diag.fix.description if diag.fix else "")
