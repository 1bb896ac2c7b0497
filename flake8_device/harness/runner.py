"""The harness proper: prepare the two copies, run the model, run the checks."""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from . import workspace
from .workspace import FixSummary

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PACKAGE = os.path.join(REPO_ROOT, "corpus", "dvis_daq")

# What PyTorch says when accelerator code meets a machine (or tensors) without it.
DEVICE_ERROR = re.compile(
    r"NVIDIA driver|not compiled with CUDA|CUDA|cuda|Expected all tensors to be on the same device"
    r"|device|HIP|XPU|MPS",
)

# Tolerances of the real-GPU comparisons (float32), check 5.
RTOL = 1e-4
ATOL = 1e-5

PATHS = ("train", "infer")


@dataclass
class HarnessConfig:
    """Everything a harness run needs; the command line fills it from its options."""

    package: str = DEFAULT_PACKAGE
    out: str = os.path.join("out", "harness")
    unsafe: bool = True
    builder: str = "api:build"
    inputs: str = "api:make_inputs"
    objective: str = "api:scalar_objective"
    frames: Optional[str] = "api:input_frames"
    device_type: str = "cuda"  # noqa: DEV004 - the accelerator to virtualise, not a placement
    mutate: Optional[str] = None
    rtol: float = RTOL
    atol: float = ATOL
    figure: bool = True
    progress: Optional[TextIO] = None


@dataclass
class CheckResult:
    id: int
    name: str
    status: str = SKIP
    message: str = ""
    seconds: float = 0.0
    figures: Dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status, "message": self.message,
                "seconds": round(self.seconds, 3), "figures": self.figures}


@dataclass
class HarnessReport:
    config: Dict[str, Any]
    environment: Dict[str, Any]
    fix: Optional[FixSummary] = None
    checks: List[CheckResult] = field(default_factory=list)
    setup_error: Optional[str] = None
    seconds: Dict[str, float] = field(default_factory=dict)
    files: Dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> List[CheckResult]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def ok(self) -> bool:
        return self.setup_error is None and not self.failures and bool(self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> Dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "config": self.config,
            "environment": self.environment,
            "setup_error": self.setup_error,
            "fix": self.fix.to_json() if self.fix else None,
            "checks": [c.to_json() for c in self.checks],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "files": self.files,
        }


# --------------------------------------------------------------------------
# Loading the two copies
# --------------------------------------------------------------------------


class ModelAPI:
    """The user's entry points, looked up in one copy of the package."""

    def __init__(self, package: str, cfg: HarnessConfig):
        self.package = package
        self.module = importlib.import_module(package)
        self.build_fn = self._resolve(cfg.builder, "--builder")
        self.inputs_fn = self._resolve(cfg.inputs, "--inputs")
        self.objective_fn = self._resolve(cfg.objective, "--objective")
        self.frames_fn = None
        if cfg.frames:
            try:
                self.frames_fn = self._resolve(cfg.frames, "--frames")
            except (ImportError, AttributeError):
                self.frames_fn = None  # fall back to every floating-point leaf of the inputs

    def _resolve(self, spec: str, option: str) -> Callable:
        if ":" not in spec:
            raise ValueError(f"{option} must be 'module:function' (module relative to the package), not {spec!r}")
        mod_name, func = spec.split(":", 1)
        mod_name = mod_name.strip().lstrip(".")
        full = self.package + ("." + mod_name if mod_name else "")
        module = importlib.import_module(full)
        obj = module
        for part in func.strip().split("."):
            obj = getattr(obj, part)
        if not callable(obj):
            raise TypeError(f"{option} {spec!r}: {full}.{func} is not callable")
        return obj

    def build(self, train: bool):
        return self.build_fn(train=train)

    def frames(self, inputs) -> List[Any]:
        if self.frames_fn is not None:
            return list(self.frames_fn(inputs))
        from .tensors import flatten

        return [t for _, t in flatten(inputs) if t.is_floating_point() and t.is_leaf]


def _purge_modules(names: List[str]) -> None:
    for mod in list(sys.modules):
        if any(mod == n or mod.startswith(n + ".") for n in names):
            del sys.modules[mod]


# --------------------------------------------------------------------------
# One model run
# --------------------------------------------------------------------------


@dataclass
class RunResult:
    outputs: List[Tuple[str, Any]] = field(default_factory=list)
    grads: List[Tuple[str, Any]] = field(default_factory=list)
    objective: Optional[float] = None
    error: Optional[BaseException] = None
    error_text: str = ""
    error_where: str = ""
    mismatches: List[Any] = field(default_factory=list)
    mismatch_summary: List[Any] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _where(exc: BaseException, roots: List[str]) -> str:
    """``file:line: text`` of the innermost frame inside one of ``roots``."""
    frames = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(frames):
        fn = os.path.abspath(fr.filename)
        if any(fn.startswith(os.path.abspath(r) + os.sep) for r in roots):
            root = next(r for r in roots if fn.startswith(os.path.abspath(r) + os.sep))
            rel = os.path.relpath(fn, os.path.dirname(os.path.abspath(root)))
            return f"{rel}:{fr.lineno}: {(fr.line or '').strip()}"
    if frames:
        fr = frames[-1]
        return f"{fr.filename}:{fr.lineno}: {(fr.line or '').strip()}"
    return ""


def run_model(api: ModelAPI, inputs_api: ModelAPI, train: bool, *, state_dict=None,
              place: Optional[str] = None, virtual: Optional[str] = None,
              roots: Optional[List[str]] = None) -> RunResult:
    """Build, forward, reduce to a scalar, backward; collect outputs and input gradients.

    ``place``: device the model and inputs are moved to (None: stay on the CPU).
    ``virtual``: run under ``virtual_device(virtual, mode="report")``; the move
    to ``place`` then happens inside the context, as user code would do it.
    Inputs always come from ``inputs_api`` on the CPU, so every run sees the
    same values.
    """
    import torch

    from ..virtual import to_real, virtual_device
    from .tensors import detach_all, flatten, move

    res = RunResult()
    t0 = time.perf_counter()
    model = api.build(train)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    inputs = inputs_api.inputs_fn()
    vd = virtual_device(virtual, mode="report") if virtual else None
    outputs = frames = None
    try:
        with (vd if vd is not None else contextlib.nullcontext()):
            if place is not None:
                model.to(place)
                inputs = move(inputs, place)
            frames = api.frames(inputs)
            for f in frames:
                f.requires_grad_(True)
            outputs = model(inputs)
            objective = api.objective_fn(outputs)
            if isinstance(objective, torch.Tensor) and objective.requires_grad:
                objective.backward()
            res.objective = float(objective.detach()) if isinstance(objective, torch.Tensor) else float(objective)
    except Exception as exc:  # the error is the finding
        res.error = exc
        res.error_text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        res.error_where = _where(exc, roots or [])
    finally:
        if vd is not None:
            res.mismatches = list(vd.mismatches)
            res.mismatch_summary = vd.summary()
    if res.error is None:
        if vd is not None:
            to_real(outputs)
            to_real(frames)
            to_real([f.grad for f in frames])
        res.outputs = detach_all(flatten(outputs, "out"))
        grads = []
        for i, f in enumerate(frames):
            g = f.grad if f.grad is not None else torch.zeros_like(f)
            grads.append((f"grad[{i}]", g))
        res.grads = detach_all(grads)
    res.seconds = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


class _Progress:
    def __init__(self, stream: Optional[TextIO]):
        self.stream = stream
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.stream is not None:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", file=self.stream, flush=True)


def _environment() -> Dict[str, Any]:
    import torch

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": bool(torch.cuda.is_available()),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    try:
        import detectron2

        env["detectron2"] = detectron2.__version__
    except Exception:
        pass
    return env


_PKGS_ROOT: List[str] = []


def _short_path(file: str) -> str:
    for root in _PKGS_ROOT:
        if os.path.abspath(file).startswith(root + os.sep):
            return os.path.relpath(file, root)
    return file


def _mismatch_lines(summary, limit: int = 20) -> List[str]:
    return [f"{_short_path(m.file)}:{m.line}: {m.op} [{', '.join(m.devices)}] x{m.count}: {m.message}"
            for m in summary[:limit]]


def run_harness(cfg: HarnessConfig) -> HarnessReport:
    """Run every step and check; never raises for a model failure (it is reported)."""
    import torch

    progress = _Progress(cfg.progress)
    out = os.path.abspath(cfg.out)
    package_dir = os.path.abspath(cfg.package)
    report = HarnessReport(
        config={
            "package": package_dir, "out": out, "unsafe_fixes": cfg.unsafe, "builder": cfg.builder,
            "inputs": cfg.inputs, "objective": cfg.objective, "frames": cfg.frames,
            "device_type": cfg.device_type, "mutate_fix": cfg.mutate,
            "tolerances": {"bitwise": "torch.equal (checks 3)", "rtol": cfg.rtol, "atol": cfg.atol},
        },
        environment=_environment(),
    )
    checks = {i: CheckResult(i, name) for i, name in (
        (1, "original fails on CPU with a device error"),
        (2, "fixed runs forward+backward on CPU"),
        (3, "original (virtual accelerator) == fixed (CPU), bitwise"),
        (4, "fixed under the virtual accelerator: no device mismatch"),
        (5, "real GPU: original vs fixed, fixed CPU vs GPU (tolerance)"),
    )}

    # ---- prepare the copies ------------------------------------------------
    t0 = time.perf_counter()
    if not os.path.isfile(os.path.join(package_dir, "__init__.py")):
        report.setup_error = f"{package_dir}: not a Python package (no __init__.py); give --package"
        return report
    pkgs_root = os.path.join(out, "packages")
    os.makedirs(pkgs_root, exist_ok=True)
    orig_name, fixed_name = workspace.package_names(package_dir)
    progress(f"copying {package_dir} to {pkgs_root} as {orig_name} and {fixed_name}")
    orig_dir = workspace.copy_package(package_dir, pkgs_root, orig_name)
    fixed_dir = workspace.copy_package(package_dir, pkgs_root, fixed_name)
    progress("fixing the fixed copy (--fix" + (" --unsafe-fixes)" if cfg.unsafe else ")"))
    report.fix = workspace.fix_package(fixed_dir, unsafe=cfg.unsafe)
    if cfg.mutate:
        try:
            report.fix.mutation = workspace.mutate_fix(fixed_dir, cfg.mutate)
        except ValueError as exc:
            report.setup_error = f"--mutate-fix: {exc}"
            return report
        m = report.fix.mutation
        progress(f"mutated the fix ({m['kind']}): {m['file']}:{m['line']}: {m['text']}")
    report.seconds["fix"] = time.perf_counter() - t0
    progress(
        f"fixed {report.fix.total('fixed')} of {report.fix.total('found')} diagnostics; "
        f"{report.fix.total('left')} left"
    )

    # ---- import side by side -----------------------------------------------
    t0 = time.perf_counter()
    _purge_modules([orig_name, fixed_name])
    sys.path.insert(0, pkgs_root)
    _PKGS_ROOT[:] = [pkgs_root]
    roots = [orig_dir, fixed_dir]
    try:
        try:
            orig = ModelAPI(orig_name, cfg)
            fixed = ModelAPI(fixed_name, cfg)
        except Exception as exc:
            report.setup_error = f"importing the copies failed: {type(exc).__name__}: {exc} ({_where(exc, roots)})"
            return report
        # Same weights: the original's state_dict goes into the fixed model.
        ref_models = {}
        for path in PATHS:
            ref_models[path] = orig.build(path == "train").state_dict()
        fixed_probe = fixed.build(False).state_dict()
        same_before = list(fixed_probe) == list(ref_models["infer"]) and all(
            torch.equal(fixed_probe[k], ref_models["infer"][k]) for k in fixed_probe
        )
        a = orig.inputs_fn()
        b = orig.inputs_fn()
        from .tensors import compare, flatten

        inputs_repeat = compare(flatten(a, "in"), flatten(b, "in"))
        report.seconds["import_and_build"] = time.perf_counter() - t0
        progress(f"built both copies; seeded weights equal before loading: {same_before}")

        def run(api, path, **kw):
            return run_model(api, orig, path == "train", state_dict=ref_models[path], roots=roots, **kw)

        results: Dict[str, RunResult] = {}
        _check1(checks[1], orig, run, progress, results)
        _check2(checks[2], fixed, run, progress, results)
        _check3(checks[3], orig, run, progress, results, cfg)
        _check4(checks[4], fixed, run, progress, results, cfg)
        _check5(checks[5], orig, fixed, run, progress, results, cfg)
        for c in checks.values():
            report.checks.append(c)
        checks[2].figures["weights_equal_before_load"] = same_before
        checks[2].figures["inputs_repeatable"] = inputs_repeat.ok
        report.seconds["checks"] = sum(c.seconds for c in report.checks)

        if cfg.figure:
            t0 = time.perf_counter()
            try:
                from .saliency import saliency_figure

                png = os.path.join(out, "saliency.png")
                fig_info = saliency_figure(results, png, orig.inputs_fn(), orig)
                if fig_info:
                    report.files["saliency"] = png
                    report.config["saliency"] = fig_info
            except Exception as exc:  # a missing matplotlib must not hide the checks
                report.config["saliency"] = {"error": f"{type(exc).__name__}: {exc}"}
            report.seconds["figure"] = time.perf_counter() - t0
    finally:
        if pkgs_root in sys.path:
            sys.path.remove(pkgs_root)
    return report


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def _timed(check: CheckResult, progress):
    class _T:
        def __enter__(self):
            self.t0 = time.perf_counter()
            progress(f"check {check.id}: {check.name} ...")
            return self

        def __exit__(self, *exc):
            check.seconds = time.perf_counter() - self.t0
            progress(f"check {check.id}: {check.status} ({check.seconds:.1f}s) {check.message}")
            return False

    return _T()


def _check1(check, orig, run, progress, results):
    with _timed(check, progress):
        problems, seen = [], {}
        for path in PATHS:
            r = run(orig, path)
            results[f"orig_cpu_{path}"] = r
            if r.ok:
                problems.append(f"{path}: the original ran on the CPU without a device error")
                seen[path] = {"error": None}
                continue
            is_device = bool(DEVICE_ERROR.search(f"{type(r.error).__name__}: {r.error}"))
            seen[path] = {"error": r.error_text, "where": r.error_where, "device_error": is_device,
                          "seconds": round(r.seconds, 3)}
            if not is_device:
                problems.append(f"{path}: failed, but not with a device error: {r.error_text} at {r.error_where}")
        check.figures.update(seen)
        if problems:
            check.status, check.message = FAIL, "; ".join(problems)
        else:
            first = seen["train"]
            check.status = PASS
            check.message = f"{first['error']} (at {first['where']})"


def _check2(check, fixed, run, progress, results):
    import torch

    from .tensors import all_finite

    with _timed(check, progress):
        problems = []
        for path in PATHS:
            r = run(fixed, path)
            results[f"fixed_cpu_{path}"] = r
            if not r.ok:
                problems.append(f"{path}: {r.error_text} at {r.error_where}")
                check.figures[path] = {"error": r.error_text, "where": r.error_where}
                continue
            fin_out, bad_out = all_finite(r.outputs)
            fin_g, bad_g = all_finite(r.grads)
            grad_sum = float(sum(float(g.abs().sum()) for _, g in r.grads))
            zero_frames = [n for n, g in r.grads if float(g.abs().sum()) == 0.0]
            check.figures[path] = {
                "objective": r.objective, "output_tensors": len(r.outputs), "input_grad_abs_sum": grad_sum,
                "frames": len(r.grads), "frames_with_zero_grad": len(zero_frames), "seconds": round(r.seconds, 3),
            }
            if r.objective is None or not torch.isfinite(torch.tensor(r.objective)):
                problems.append(f"{path}: objective is not finite ({r.objective})")
            if not fin_out:
                problems.append(f"{path}: non-finite outputs: {bad_out[:5]}")
            if not fin_g:
                problems.append(f"{path}: non-finite input gradients: {bad_g[:5]}")
            if grad_sum == 0.0:
                problems.append(f"{path}: input gradients are all zero")
        check.status = FAIL if problems else PASS

        def frames_text(path: str) -> str:
            f = check.figures[path]
            nonzero = f["frames"] - f["frames_with_zero_grad"]
            return f"non-zero on {nonzero} of {f['frames']} input frame(s)"

        check.message = "; ".join(problems) if problems else (
            f"train objective {check.figures['train']['objective']:.6g}, "
            f"infer objective {check.figures['infer']['objective']:.6g}; input gradients finite, "
            f"{frames_text('train')} (train) and {frames_text('infer')} (infer)"
        )


def _check3(check, orig, run, progress, results, cfg):
    from .tensors import compare

    with _timed(check, progress):
        problems = []
        total, max_diff = 0, 0.0
        for path in PATHS:
            r = run(orig, path, place=cfg.device_type, virtual=cfg.device_type)
            results[f"orig_virtual_{path}"] = r
            fx = results.get(f"fixed_cpu_{path}")
            if not r.ok:
                problems.append(
                    f"{path}: the original failed under the virtual accelerator: {r.error_text} at {r.error_where}"
                )
                check.figures[path] = {"error": r.error_text, "where": r.error_where}
                continue
            if fx is None or not fx.ok:
                problems.append(f"{path}: no fixed CPU result to compare (check 2 failed)")
                continue
            c_out = compare(r.outputs, fx.outputs)
            c_grad = compare(r.grads, fx.grads)
            total += c_out.compared + c_grad.compared
            max_diff = max(max_diff, c_out.max_abs_diff, c_grad.max_abs_diff)
            check.figures[path] = {
                "outputs": c_out.to_json(), "input_grads": c_grad.to_json(),
                "reference_mismatches": len(r.mismatches),
                "reference_mismatch_places": _mismatch_lines(r.mismatch_summary),
                "seconds": round(r.seconds, 3),
            }
            for p in c_out.problems + c_grad.problems:
                problems.append(f"{path}: {p}")
        check.figures["compared_tensors"] = total
        check.figures["max_abs_diff"] = max_diff
        check.status = FAIL if problems else PASS
        check.message = "; ".join(problems[:8]) if problems else (
            f"{total} tensors bitwise equal (outputs and input gradients, train and infer), max abs diff {max_diff:g}"
        )


def _check4(check, fixed, run, progress, results, cfg):
    from .tensors import compare

    with _timed(check, progress):
        problems = []
        count = 0
        for path in PATHS:
            r = run(fixed, path, place=cfg.device_type, virtual=cfg.device_type)
            results[f"fixed_virtual_{path}"] = r
            places = _mismatch_lines(r.mismatch_summary)
            count += len(r.mismatches)
            fig = {"mismatches": len(r.mismatches), "places": places, "seconds": round(r.seconds, 3)}
            if not r.ok:
                fig.update(error=r.error_text, where=r.error_where)
                problems.append(f"{path}: failed under the virtual accelerator: {r.error_text} at {r.error_where}")
            else:
                fx = results.get(f"fixed_cpu_{path}")
                if fx is not None and fx.ok:
                    c = compare(r.outputs + r.grads, fx.outputs + fx.grads)
                    fig["equal_to_fixed_cpu"] = c.ok
                    fig["compared_tensors"] = c.compared
            if r.mismatches:
                problems.append(
                    f"{path}: {len(r.mismatches)} device mismatch(es) at {len(places)} place(s): "
                    + "; ".join(places[:5])
                )
            check.figures[path] = fig
        check.figures["mismatches"] = count
        check.status = FAIL if problems else PASS
        check.message = "; ".join(problems) if problems else "0 device mismatches (train and infer)"


def _check5(check, orig, fixed, run, progress, results, cfg):
    import torch

    from .tensors import compare

    with _timed(check, progress):
        if cfg.device_type != "cuda" or not torch.cuda.is_available():
            check.status = SKIP
            check.message = "torch.cuda.is_available() is False: no GPU to compare against"
            check.figures["reason"] = check.message
            return
        check.figures["tolerance"] = {"rtol": cfg.rtol, "atol": cfg.atol, "non_float": "exact"}
        problems = []
        for path in PATHS:
            og = run(orig, path, place="cuda")
            fg = run(fixed, path, place="cuda")
            fc = results.get(f"fixed_cpu_{path}")
            results[f"orig_gpu_{path}"], results[f"fixed_gpu_{path}"] = og, fg
            fig: Dict[str, Any] = {"seconds": round(og.seconds + fg.seconds, 3)}
            for label, r in (("original GPU", og), ("fixed GPU", fg)):
                if not r.ok:
                    problems.append(f"{path}: {label} failed: {r.error_text} at {r.error_where}")
            if og.ok and fg.ok:
                c = compare(og.outputs + og.grads, fg.outputs + fg.grads, rtol=cfg.rtol, atol=cfg.atol)
                fig["original_gpu_vs_fixed_gpu"] = c.to_json()
                problems += [f"{path}: original GPU vs fixed GPU: {p}" for p in c.problems]
            if fg.ok and fc is not None and fc.ok:
                c = compare(fc.outputs + fc.grads, fg.outputs + fg.grads, rtol=cfg.rtol, atol=cfg.atol)
                fig["fixed_cpu_vs_fixed_gpu"] = c.to_json()
                problems += [f"{path}: fixed CPU vs fixed GPU: {p}" for p in c.problems]
            check.figures[path] = fig
        check.status = FAIL if problems else PASS
        check.message = "; ".join(problems[:8]) if problems else (
            f"within rtol={cfg.rtol:g}, atol={cfg.atol:g} (train and infer)"
        )
