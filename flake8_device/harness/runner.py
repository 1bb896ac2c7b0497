"""The harness proper: prepare the two copies, run the model, run the checks."""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from . import workspace
from .checks import DEVICE_ERROR, FAIL, PASS, SKIP, CheckResult, judge, where  # noqa: F401  (importable from here too)
from .workspace import FixSummary

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PACKAGE = os.path.join(REPO_ROOT, "corpus", "dvis_daq")

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
    param_grads: List[Tuple[str, Any]] = field(default_factory=list)
    params_without_grad: int = 0
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
    """``file:line: text`` of the innermost frame inside one of ``roots`` (relative to the folder of the copies)."""
    return where(exc, roots, os.path.dirname(os.path.abspath(roots[0])) if roots else None)


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
        res.param_grads = detach_all([(n, p.grad) for n, p in model.named_parameters() if p.grad is not None])
        res.params_without_grad = sum(1 for p in model.parameters() if p.requires_grad and p.grad is None)
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


def _prepare_copies(cfg: HarnessConfig, report: HarnessReport, progress) -> Optional[Tuple[str, str, str, str]]:
    """Copy the package twice and fix one copy; ``(pkgs_root, orig_name, fixed_name, orig_dir)``, or None
    with ``report.setup_error`` set."""
    package_dir = report.config["package"]
    t0 = time.perf_counter()
    if not os.path.isfile(os.path.join(package_dir, "__init__.py")):
        report.setup_error = f"{package_dir}: not a Python package (no __init__.py); give --package"
        return None
    pkgs_root = os.path.join(report.config["out"], "packages")
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
            return None
        m = report.fix.mutation
        progress(f"mutated the fix ({m['kind']}): {m['file']}:{m['line']}: {m['text']}")
    report.seconds["fix"] = time.perf_counter() - t0
    progress(f"fixed {report.fix.total('fixed')} of {report.fix.total('found')} diagnostics; "
             f"{report.fix.total('left')} left")
    return pkgs_root, orig_name, fixed_name, orig_dir


def run_harness(cfg: HarnessConfig) -> HarnessReport:
    """Run every step and check; never raises for a model failure (it is reported)."""
    progress = _Progress(cfg.progress)
    out = os.path.abspath(cfg.out)
    report = HarnessReport(
        config={
            "package": os.path.abspath(cfg.package), "out": out, "unsafe_fixes": cfg.unsafe, "builder": cfg.builder,
            "inputs": cfg.inputs, "objective": cfg.objective, "frames": cfg.frames,
            "device_type": cfg.device_type, "mutate_fix": cfg.mutate,
            "tolerances": {"bitwise": "torch.equal (checks 3 and 4)", "rtol": cfg.rtol, "atol": cfg.atol},
        },
        environment=_environment(),
    )
    prepared = _prepare_copies(cfg, report, progress)
    if prepared is None:
        return report
    pkgs_root, orig_name, fixed_name, orig_dir = prepared
    t0 = time.perf_counter()
    _purge_modules([orig_name, fixed_name])
    sys.path.insert(0, pkgs_root)
    _PKGS_ROOT[:] = [pkgs_root]
    roots = [orig_dir, os.path.join(pkgs_root, fixed_name)]
    try:
        try:
            orig = ModelAPI(orig_name, cfg)
            fixed = ModelAPI(fixed_name, cfg)
        except Exception as exc:
            report.setup_error = f"importing the copies failed: {type(exc).__name__}: {exc} ({_where(exc, roots)})"
            return report
        _run_and_judge(cfg, report, orig, fixed, roots, progress, t0)
    finally:
        if pkgs_root in sys.path:
            sys.path.remove(pkgs_root)
    return report


# The in-process runs of package mode, by role of the shared checks.
_RUNS = (("orig_cpu", "orig", None, None), ("fixed_cpu", "fixed", None, None),
         ("orig_virt", "orig", "virtual", "virtual"), ("fixed_virt", "fixed", "virtual", "virtual"))


def _run_and_judge(cfg: HarnessConfig, report: HarnessReport, orig, fixed, roots, progress, t0) -> None:
    """Same weights (the original's state_dict goes into every model), every run, the shared checks."""
    import torch

    from .tensors import compare, flatten

    ref_models = {path: orig.build(path == "train").state_dict() for path in PATHS}
    fixed_probe = fixed.build(False).state_dict()
    same_before = list(fixed_probe) == list(ref_models["infer"]) and all(
        torch.equal(fixed_probe[k], ref_models["infer"][k]) for k in fixed_probe)
    inputs_repeat = compare(flatten(orig.inputs_fn(), "in"), flatten(orig.inputs_fn(), "in"))
    report.seconds["import_and_build"] = time.perf_counter() - t0
    progress(f"built both copies; seeded weights equal before loading: {same_before}")
    gpu = cfg.device_type == "cuda" and torch.cuda.is_available()
    plan = list(_RUNS) + ([("orig_gpu", "orig", "cuda", None), ("fixed_gpu", "fixed", "cuda", None)] if gpu else [])
    runs: Dict[str, RunResult] = {}
    results: Dict[str, Dict[str, Any]] = {}
    for role, which, place, virtual in plan:
        place = cfg.device_type if place == "virtual" else place
        virtual = cfg.device_type if virtual else None
        by_path = {}
        for path in PATHS:
            by_path[path] = run_model(orig if which == "orig" else fixed, orig, path == "train",
                                      state_dict=ref_models[path], roots=roots, place=place, virtual=virtual)
            runs[f"{role}_{path}"] = by_path[path]
        results[role] = as_result(by_path)
        progress(f"{role}: {results[role]['seconds']['total']:.1f}s"
                 f" ({'; '.join(e['text'] for e in results[role]['errors'].values()) or 'no error'})")
    checks, problem = judge(results, gpu=gpu, rtol=cfg.rtol, atol=cfg.atol, weak_evidence=False)
    checks[2].figures["weights_equal_before_load"] = same_before
    checks[2].figures["inputs_repeatable"] = inputs_repeat.ok
    for c in checks.values():
        report.checks.append(c)
        progress(f"check {c.id}: {c.status} ({c.seconds:.1f}s) {c.message}")
    report.seconds["checks"] = sum(c.seconds for c in report.checks)
    if cfg.figure:
        t1 = time.perf_counter()
        try:
            from .saliency import saliency_figure

            png = os.path.join(report.config["out"], "saliency.png")
            fig_info = saliency_figure(runs, png, orig.inputs_fn(), orig)
            if fig_info:
                report.files["saliency"] = png
                report.config["saliency"] = fig_info
        except Exception as exc:  # a missing matplotlib must not hide the checks
            report.config["saliency"] = {"error": f"{type(exc).__name__}: {exc}"}
        report.seconds["figure"] = time.perf_counter() - t1


def as_result(by_path: Dict[str, RunResult]) -> Dict[str, Any]:
    """The runs of one role (train and infer) in the form the shared checks read.

    train: the outputs and the objective (``train``), the parameter gradients
    (``train_grads``) and the input-frame gradients (``train_input_grads``); infer:
    the outputs (``infer``) and the input-frame gradients of its objective (``saliency``)."""
    import torch

    res: Dict[str, Any] = {"sections": {}, "errors": {}, "facts": {}, "model": {}, "mismatches": {}, "seconds": {}}
    for path, r in by_path.items():
        res["seconds"][path] = r.seconds
        res["mismatches"][path] = [
            {"file": _short_path(m.file), "line": m.line, "op": m.op, "devices": list(m.devices),
             "kind": getattr(m, "kind", ""), "message": m.message, "count": m.count} for m in r.mismatch_summary]
        if not r.ok:
            res["errors"][path] = {"type": type(r.error).__name__, "text": r.error_text, "where": r.error_where}
            continue
        objective = [("objective", torch.tensor(r.objective, dtype=torch.float64))]
        if path == "train":
            res["sections"].update(train=r.outputs + objective, train_grads=r.param_grads, train_input_grads=r.grads)
            res["facts"].update(train_objective=r.objective, losses=None, params_without_grad=r.params_without_grad)
        else:
            res["sections"].update(infer=r.outputs + objective, saliency=r.grads)
            res["facts"]["saliency_objective"] = r.objective
    res["seconds"]["total"] = sum(res["seconds"].values())
    return res
