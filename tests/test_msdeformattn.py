"""DEV009 on the Mask2Former MSDeformAttn family: after ``--fix --unsafe-fixes`` the module imports
without the compiled ``MultiScaleDeformableAttention`` and gives the values of the original's PyTorch path.

Two sources: the corpus golden (always here) and the real DVIS-DAQ ``ops`` package from
``../shared/realworld`` (skipped when that folder is absent).
"""

from __future__ import annotations

import ast
import importlib
import io
import pathlib
import shutil
import sys
import types

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from flake8_device.cli import main  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "corpus" / "fixes" / "DEV009.in.py"
REAL_OPS = ROOT.parent / "shared" / "realworld" / "DVIS_DAQ" / "mask2former" / "modeling" / "pixel_decoder" / "ops"
EXT = "MultiScaleDeformableAttention"


def _fix(path: pathlib.Path) -> str:
    """Fix ``path`` with unsafe fixes; return what a lint of it reported before."""
    report = io.StringIO()
    main(["--isolated", "--select", "DEV", str(path)], stdout=report, stderr=io.StringIO())
    main(["--isolated", "--fix", "--unsafe-fixes", "--select", "DEV", str(path)], stdout=io.StringIO(),
         stderr=io.StringIO())
    return report.getvalue()


def _original_core(path: pathlib.Path):
    """``ms_deform_attn_core_pytorch`` of the unfixed file, without importing it (it cannot be imported)."""
    tree = ast.parse(path.read_text())
    [fn] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "ms_deform_attn_core_pytorch"]
    ns = {"torch": torch, "F": F}
    exec(compile(ast.Module([fn], []), str(path), "exec"), ns)
    return ns["ms_deform_attn_core_pytorch"]


def _inputs(seed=0, batch=2, heads=2, channels=4, queries=5, points=3, shapes=((6, 4), (3, 2))):
    g = torch.Generator().manual_seed(seed)
    shapes_t = torch.tensor(shapes, dtype=torch.long)
    starts = torch.cat([shapes_t.new_zeros(1), (shapes_t[:, 0] * shapes_t[:, 1]).cumsum(0)[:-1]])
    length = int((shapes_t[:, 0] * shapes_t[:, 1]).sum())
    levels = len(shapes)
    value = torch.randn(batch, length, heads, channels, generator=g, dtype=torch.float64, requires_grad=True)
    loc = torch.rand(batch, queries, heads, levels, points, 2, generator=g, dtype=torch.float64, requires_grad=True)
    attn = torch.rand(batch, queries, heads, levels, points, generator=g, dtype=torch.float64)
    attn = (attn / attn.sum((-1, -2), keepdim=True)).requires_grad_()
    return value, shapes_t, starts, loc, attn


@pytest.fixture
def no_extension(monkeypatch):
    """The compiled op is not importable (as on a machine that never built it)."""
    monkeypatch.setitem(sys.modules, EXT, None)  # ``import`` then raises ModuleNotFoundError


def _import_file(path: pathlib.Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check_function(func_cls, core_fixed, core_orig):
    value, shapes, starts, loc, attn = _inputs()
    out = func_cls.apply(value, shapes, starts, loc, attn, 64)
    ref_inputs = [t.detach().clone().requires_grad_() for t in (value, loc, attn)]
    ref = core_orig(ref_inputs[0], shapes, ref_inputs[1], ref_inputs[2])
    assert torch.equal(out, ref)
    assert torch.equal(out, core_fixed(value, shapes, loc, attn))
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    for got, want in zip((value, loc, attn), ref_inputs):
        assert got.grad is not None and torch.equal(got.grad, want.grad)


class _CudaLike(torch.Tensor):
    """A CPU tensor that says it is on CUDA: enough to take the compiled-op branch of the dispatch."""

    @property
    def is_cuda(self):
        return True


def _check_compiled_path_unchanged(mod, monkeypatch):
    """With the op built and CUDA tensors, ``apply`` reaches the original Function and its forward."""
    calls = []
    core = mod.ms_deform_attn_core_pytorch

    def forward(value, shapes, starts, loc, attn, step):
        calls.append(step)
        return core(value.as_subclass(torch.Tensor), shapes, loc.as_subclass(torch.Tensor),
                    attn.as_subclass(torch.Tensor))

    def backward(value, shapes, starts, loc, attn, grad, step):
        calls.append(("backward", step))
        return torch.zeros_like(value), torch.zeros_like(loc), torch.zeros_like(attn)

    monkeypatch.setattr(mod, "MSDA", types.SimpleNamespace(ms_deform_attn_forward=forward,
                                                           ms_deform_attn_backward=backward))
    value, shapes, starts, loc, attn = _inputs(seed=1)
    out = mod.MSDeformAttnFunction.apply(value.as_subclass(_CudaLike), shapes, starts, loc, attn, 32)
    assert calls == [32]
    assert out.grad_fn is not None and "MSDeformAttnFunction" in type(out.grad_fn).__name__
    out.sum().backward()
    assert calls == [32, ("backward", 32)]


def test_golden_fixed_module_imports_without_extension_and_matches_fallback(tmp_path, no_extension, monkeypatch):
    work = tmp_path / "ms_deform_attn_func.py"
    shutil.copyfile(GOLDEN, work)
    with pytest.raises(ModuleNotFoundError):
        _import_file(work, "golden_original")
    assert "DEV009" in _fix(work)
    mod = _import_file(work, "golden_fixed")
    assert mod.MSDA is None
    _check_function(mod.MSDeformAttnFunction, mod.ms_deform_attn_core_pytorch, _original_core(GOLDEN))
    _check_compiled_path_unchanged(mod, monkeypatch)


def test_fix_is_idempotent_and_leaves_no_dev009(tmp_path):
    work = tmp_path / "m.py"
    shutil.copyfile(GOLDEN, work)
    _fix(work)
    once = work.read_text()
    assert "DEV009" not in _fix(work)
    assert work.read_text() == once


@pytest.mark.skipif(not REAL_OPS.is_dir(),
                    reason="../shared/realworld/DVIS_DAQ is not present (a user's clone has no ../shared)")
def test_real_dvis_daq_msdeformattn_fixed(tmp_path, no_extension, monkeypatch):
    pkg = tmp_path / "msda_ops"
    shutil.copytree(REAL_OPS, pkg, ignore=shutil.ignore_patterns("src", "*.sh", "setup.py", "test.py"),
                    copy_function=shutil.copyfile)  # the shared sources are read-only; the copy is not
    for d in [pkg, *(p for p in pkg.rglob("*") if p.is_dir())]:
        d.chmod(0o755)
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("msda_ops.modules")
    for name in [m for m in sys.modules if m.startswith("msda_ops")]:
        monkeypatch.delitem(sys.modules, name)
    report = _fix(pkg)
    assert "ms_deform_attn_func.py" in report and "DEV009" in report
    modules = importlib.import_module("msda_ops.modules")
    funcs = importlib.import_module("msda_ops.functions.ms_deform_attn_func")
    assert funcs.MSDA is None
    _check_function(funcs.MSDeformAttnFunction, funcs.ms_deform_attn_core_pytorch,
                    _original_core(REAL_OPS / "functions" / "ms_deform_attn_func.py"))
    _check_compiled_path_unchanged(funcs, monkeypatch)
    monkeypatch.setattr(funcs, "MSDA", None)

    # The module runs forward and backward on the CPU, through the fallback, with the original's values.
    torch.manual_seed(0)
    attn = modules.MSDeformAttn(d_model=16, n_levels=2, n_heads=2, n_points=3).double()
    with torch.no_grad():  # non-trivial offsets and weights
        for p in attn.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    shapes = torch.tensor([(6, 4), (3, 2)], dtype=torch.long)
    starts = torch.tensor([0, 24], dtype=torch.long)
    query = torch.randn(2, 5, 16, dtype=torch.float64, requires_grad=True)
    ref_points = torch.rand(2, 5, 2, 2, dtype=torch.float64)
    flat = torch.randn(2, 30, 16, dtype=torch.float64, requires_grad=True)
    out = attn(query, ref_points, flat, shapes, starts)

    core = _original_core(REAL_OPS / "functions" / "ms_deform_attn_func.py")
    n, lq, _ = query.shape
    value = attn.value_proj(flat).view(n, 30, 2, 8)
    offsets = attn.sampling_offsets(query).view(n, lq, 2, 2, 3, 2)
    weights = F.softmax(attn.attention_weights(query).view(n, lq, 2, 6), -1).view(n, lq, 2, 2, 3)
    normalizer = torch.stack([shapes[..., 1], shapes[..., 0]], -1)
    locations = ref_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
    expected = attn.output_proj(core(value, shapes, locations, weights))
    assert torch.equal(out, expected)
    out.sum().backward()
    assert query.grad is not None and flat.grad is not None and torch.isfinite(flat.grad).all()
