"""The harness on a whole detectron2 project (``flake8-device-harness --project DIR --config FILE``).

Two copies of the project's source tree go into the output folder; the fixed
one is fixed file by file with the same loop as ``flake8-device --fix``. Each
model run happens in a process of its own (:mod:`flake8_device.harness.d2`),
so each copy has its own detectron2 registries; runs exchange tensors through
``torch.save`` files and this module compares them:

==========  =====================  ===========================  ==========
process     copy                   ``MODEL.DEVICE``             check
==========  =====================  ===========================  ==========
fixed_cpu   fixed                  cpu (writes the weights)     2, 3, 4
orig_cpu    original               cpu                          1
orig_virt   original               cuda, virtual accelerator    3
fixed_virt  fixed                  cuda, virtual accelerator    4
orig_gpu    original               cuda (real GPU only)         5
fixed_gpu   fixed                  cuda (real GPU only)         5
==========  =====================  ===========================  ==========
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, TextIO

from . import workspace
from .runner import ATOL, DEVICE_ERROR, FAIL, PASS, RTOL, SKIP, CheckResult, HarnessReport, _environment, _Progress

# Sections of a run's result, in report order, and what they hold.
SECTION_TITLES = {
    "state": "state dict (weights and buffers; SHA-256 of each tensor)",
    "train": "training losses and their sum",
    "train_grads": "parameter gradients of the training objective",
    "train_input_grads": "input-frame gradients of the training objective",
    "infer": "inference outputs",
    "captured": "tensors built on the inference path (captured)",
    "saliency": "saliency: d(captured objective)/d(input frame)",
}
COMPARED = ("state", "train", "train_grads", "train_input_grads", "infer", "captured", "saliency")
# Fixes the original copy gets too: DEV009 lets a module import without its compiled
# extension (Mask2Former's MultiScaleDeformableAttention); where the extension is
# built and the tensors are on CUDA, the fixed code runs the original op unchanged.
ORIGINAL_FIXES = ("DEV009",)
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".mypy_cache", ".pytest_cache", "*.egg-info")


@dataclass
class ProjectConfig:
    """What a project run needs; the command line fills it."""

    project: str
    config: str
    out: str = os.path.join("out", "harness")
    unsafe: bool = True
    setup: Optional[List[str]] = None  # module:function; None: read from the training script
    setup_script: Optional[str] = None  # relative to the project; None: train_net*.py
    imports: Optional[List[str]] = None  # modules that register the model; None: the script's imports
    opts: List[str] = field(default_factory=list)
    frames: Optional[int] = None  # None: the config's INPUT.SAMPLING_FRAME_NUM (video) or one image
    input_format: str = "auto"  # auto (from the config's datasets and mapper), image, video
    saliency: bool = True  # the optional gradient pass (input gradients, saliency)
    height: int = 64
    width: int = 96
    seed: int = 0
    threads: int = 1
    jobs: int = 2
    capture: List[str] = field(default_factory=list)
    original_fixes: List[str] = field(default_factory=lambda: list(ORIGINAL_FIXES))  # also fixed in the original
    device_type: str = "cuda"  # noqa: DEV004 - the accelerator to virtualise, not a placement
    rtol: float = RTOL
    atol: float = ATOL
    timeout: float = 900.0
    figure: bool = True
    progress: Optional[TextIO] = None


def _copy_tree(src: str, dest: str, out: str) -> None:
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    out_abs = os.path.abspath(out)

    def ignore(folder, names):
        skip = set(_IGNORE(folder, names))
        for n in names:
            if os.path.abspath(os.path.join(folder, n)) == out_abs:
                skip.add(n)  # an output folder inside the project is not part of it
        return skip

    shutil.copytree(src, dest, ignore=ignore, symlinks=True)
    _make_writable(dest)


def _make_writable(root: str) -> None:
    """Give the owner write permission on a copy (a read-only source tree stays read-only)."""
    import stat

    for folder, dirs, files in os.walk(root):
        for name in [folder] + [os.path.join(folder, f) for f in files]:
            if os.path.islink(name):
                continue
            mode = os.stat(name).st_mode
            if not mode & stat.S_IWUSR:
                os.chmod(name, mode | stat.S_IWUSR)


def _rel_config(project: str, config: str) -> str:
    """The config file relative to the project root (it is read in each copy)."""
    if os.path.isabs(config):
        rel = os.path.relpath(config, project)
        if rel.startswith(".."):
            raise ValueError(f"--config {config} is not inside the project {project}")
        return rel
    if os.path.isfile(os.path.join(project, config)):
        return config
    if os.path.isfile(config):
        return _rel_config(project, os.path.abspath(config))
    raise ValueError(f"--config {config}: no such file in {project}")


def _missing(why: str, where: str, tail: str) -> Dict[str, Any]:
    return {"sections": {}, "errors": {"process": {"type": "ProcessError", "text": why, "where": where,
                                                   "traceback": tail}},
            "facts": {}, "model": {}, "mismatches": {}, "seconds": {}}


def _worker(spec: Dict[str, Any], log: str, timeout: float) -> Dict[str, Dict[str, Any]]:
    """Run one process (one copy, its runs in order); return each run's result by role."""
    import torch

    spec_file = os.path.splitext(log)[0] + ".json"
    with open(spec_file, "w", encoding="utf-8") as fh:
        json.dump(spec, fh, indent=1)
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    env.pop("PYTHONPATH", None)  # each copy is found through its own root only
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        try:
            proc = subprocess.run([sys.executable, "-m", "flake8_device.harness.d2", spec_file],
                                  stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, env=env,
                                  cwd=os.path.dirname(log))
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    wall = time.perf_counter() - t0
    out: Dict[str, Dict[str, Any]] = {}
    for one in spec["runs"]:
        if os.path.isfile(one["out"]):
            res = torch.load(one["out"], map_location="cpu", weights_only=False)
        else:
            with open(log, encoding="utf-8", errors="replace") as fh:
                tail = fh.read()[-2000:]
            why = "timed out" if rc is None else f"exited with status {rc}"
            res = _missing(f"worker process {why} before this run finished", log, tail)
        res["process_seconds"] = wall
        res["log"] = log
        out[one["role"]] = res
    return out


def run_project(cfg: ProjectConfig) -> HarnessReport:
    """Copy, fix, run every process, compare; never raises for a model failure."""
    import torch

    from .tensors import all_finite, compare

    progress = _Progress(cfg.progress)
    t_all = time.perf_counter()
    project = os.path.abspath(cfg.project)
    out = os.path.abspath(cfg.out)
    report = HarnessReport(
        config={
            "mode": "project", "project": project, "config_file": cfg.config, "out": out,
            "unsafe_fixes": cfg.unsafe, "opts": list(cfg.opts), "seed": cfg.seed, "threads": cfg.threads,
            "jobs": cfg.jobs, "device_type": cfg.device_type, "capture": list(cfg.capture),
            "original_fixes": list(cfg.original_fixes), "weights": "random (seeded), MODEL.WEIGHTS empty",
            "tolerances": {"bitwise": "torch.equal (checks 3 and 4)", "rtol": cfg.rtol, "atol": cfg.atol},
            # fields the bundled-model report reads
            "package": project, "builder": "detectron2 build_model(cfg)", "inputs": "synthetic video",
            "objective": "sum of the loss dict", "frames": None, "mutate_fix": None,
        },
        environment=_environment(),
    )
    checks = {i: CheckResult(i, name) for i, name in (
        (1, "original fails on CPU with a device error"),
        (2, "fixed trains (backward) and infers on CPU, gradients finite"),
        (3, "original (virtual accelerator) == fixed (CPU), bitwise"),
        (4, "fixed under the virtual accelerator: no device mismatch"),
        (5, "real GPU: original vs fixed, fixed CPU vs GPU (tolerance)"),
    )}
    if not os.path.isdir(project):
        report.setup_error = f"--project {project}: not a folder"
        return report
    try:
        config_rel = _rel_config(project, cfg.config)
    except ValueError as exc:
        report.setup_error = str(exc)
        return report
    report.config["config_file"] = config_rel

    # ---- copies ----------------------------------------------------------------
    t0 = time.perf_counter()
    copies = os.path.join(out, "project")
    orig_dir, fixed_dir = os.path.join(copies, "original"), os.path.join(copies, "fixed")
    progress(f"copying {project} to {orig_dir} and {fixed_dir}")
    os.makedirs(copies, exist_ok=True)
    _copy_tree(project, orig_dir, out)
    _copy_tree(project, fixed_dir, out)
    if cfg.original_fixes:
        progress(f"fixing the original copy with {', '.join(cfg.original_fixes)} only (--original-fixes)")
        orig_fix = workspace.fix_package(orig_dir, unsafe=cfg.unsafe, select=list(cfg.original_fixes))
        report.config["original_fix"] = orig_fix.to_json()
    report.seconds["copy"] = time.perf_counter() - t0

    # ---- how the project sets its config up ----------------------------------
    try:
        candidates, script_notes = _setup_candidates(cfg, orig_dir)
    except ValueError as exc:
        report.setup_error = str(exc)
        return report
    report.config["setup_candidates"] = [{"script": c["script"], "setup": c["setup"]} for c in candidates]
    report.config["setup_scripts_unreadable"] = script_notes
    report.config["setup_functions"] = list(candidates[0]["setup"])
    report.config["registering_imports"] = list(candidates[0]["imports"])
    report.config["setup_from"] = candidates[0]["script"]

    runs_dir = os.path.join(out, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    state = os.path.join(runs_dir, "weights.pt")
    failed_marker = state + ".failed"
    for old in (state, failed_marker):
        if os.path.exists(old):
            os.remove(old)

    vt = cfg.device_type
    gpu = vt == "cuda" and torch.cuda.is_available()

    def one(role: str, device: str, virtual: Optional[str], **extra) -> Dict[str, Any]:
        d = {"role": role, "device": device, "virtual": virtual, "out": os.path.join(runs_dir, role + ".pt")}
        d.update(extra)
        if os.path.exists(d["out"]):
            os.remove(d["out"])  # never read a result of an earlier run
        return d

    def process(name: str, root: str, runs: List[Dict[str, Any]]) -> Dict[str, Any]:
        return {
            "process": name, "root": root, "config": os.path.join(root, config_rel), "candidates": candidates,
            "opts": list(cfg.opts), "state": state, "seed": cfg.seed, "frames": cfg.frames, "height": cfg.height,
            "width": cfg.width, "threads": cfg.threads, "capture": list(cfg.capture),
            "input_format": cfg.input_format, "saliency": cfg.saliency, "paths": ["train", "infer"], "runs": runs,
        }

    # One process per copy (its own registries). The original one starts while the
    # fixed copy is being fixed and writes the weights as soon as its first model is
    # built; every run of the fixed one loads that file.
    wait = {"state_wait": cfg.timeout}
    fixed_runs = [one("fixed_cpu", "cpu", None, **wait), one("fixed_virt", vt, vt, **wait)]
    orig_runs = [one("orig_virt", vt, vt), one("orig_cpu", "cpu", None, state=None)]
    if gpu:
        fixed_runs.append(one("fixed_gpu", "cuda", None, **wait))
        orig_runs.append(one("orig_gpu", "cuda", None, **wait))
    procs = [process("original", orig_dir, orig_runs), process("fixed", fixed_dir, fixed_runs)]

    def run_process(p: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        progress(f"process {p['process']} ({os.path.basename(p['root'])} copy): "
                 + ", ".join(f"{r['role']} (MODEL.DEVICE={r['device']}"
                             + (f", virtual_device({r['virtual']!r})" if r["virtual"] else "") + ")"
                             for r in p["runs"]))
        res = _worker(p, os.path.join(runs_dir, p["process"] + ".log"), cfg.timeout)
        if p["process"] == "original" and not os.path.isfile(state):
            # the weights will never come: release the runs waiting for them
            with open(failed_marker, "w", encoding="utf-8") as fh:
                fh.write("the original process ended without writing the weights\n")
        return res

    results: Dict[str, Dict[str, Any]] = {}
    t_runs = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(cfg.jobs, len(procs)))) as pool:
        first = pool.submit(run_process, procs[0])
        # ---- fixes (while the original process imports and builds) ----------
        t0 = time.perf_counter()
        progress("fixing every file of the fixed copy (--fix" + (" --unsafe-fixes)" if cfg.unsafe else ")"))
        try:
            report.fix = workspace.fix_package(fixed_dir, unsafe=cfg.unsafe)
        except Exception as exc:
            report.setup_error = f"fixing the fixed copy failed: {type(exc).__name__}: {exc}"
            first.result()
            return report
        report.seconds["fix"] = time.perf_counter() - t0
        progress(f"fixed {report.fix.total('fixed')} of {report.fix.total('found')} diagnostics "
                 f"({report.fix.unsafe_count()} by unsafe fixes) in {len(report.fix.files_changed)} files; "
                 f"{report.fix.total('left')} left")
        second = pool.submit(run_process, procs[1])
        results.update(first.result())
        results.update(second.result())
    t0 = t_runs
    for role, r in results.items():
        errs = "; ".join(f"{k}: {v['text']}" for k, v in r["errors"].items()) or "no error"
        progress(f"{role}: {r['seconds'].get('total', 0):.1f}s ({_short(errs)})")
    report.seconds["runs"] = time.perf_counter() - t0
    report.files["runs"] = runs_dir
    fx = results["fixed_cpu"]
    used = fx.get("facts", {}) if fx.get("facts", {}).get("setup_functions") else results["orig_virt"].get("facts", {})
    if used.get("setup_functions"):
        report.config["setup_functions"] = used["setup_functions"]
        report.config["registering_imports"] = used.get("registering_imports", [])
        report.config["setup_from"] = used.get("setup_from")
        report.config["setups_rejected"] = used.get("setups_rejected", [])
    report.config["input_format"] = used.get("input_format")
    report.config["input_format_from"] = used.get("input_format_from")
    report.config["model"] = dict(fx.get("model") or results["orig_virt"].get("model") or {})
    report.config["inputs_detail"] = (fx.get("facts") or {}).get("size")
    report.config["facts"] = {role: r.get("facts", {}) for role, r in results.items()}
    report.config["process_seconds"] = {p["process"]: round(results[p["runs"][0]["role"]]["process_seconds"], 1)
                                        for p in procs}
    report.config["run_seconds"] = {role: {k: round(v, 1) for k, v in r["seconds"].items()}
                                    for role, r in results.items()}

    harness_problem = _harness_problem(results)
    not_run = {} if harness_problem else _paths_not_run(results)
    report.config["paths_not_run"] = not_run
    _check1(checks[1], results["orig_cpu"], results.get("orig_virt"))
    _check2(checks[2], fx, all_finite)
    _check3(checks[3], results["orig_virt"], fx, compare)
    _check4(checks[4], results["fixed_virt"], fx, compare)
    _check5(checks[5], results, fx, cfg, gpu, compare)
    if harness_problem:
        # both copies fail the same way: nothing here is about the fix
        report.setup_error = harness_problem
        for cid in (1, 2, 3, 4):
            checks[cid].status = SKIP
            checks[cid].message = "not judged: the harness could not run the model (see the setup failure)"
    else:
        _weak_evidence(checks[3], fx)
    for c in checks.values():
        c.seconds = _check_seconds(c.id, results)
        report.checks.append(c)
        progress(f"check {c.id}: {c.status} {c.message}")

    if cfg.figure:
        t0 = time.perf_counter()
        try:
            from .saliency import project_saliency_figure

            png = os.path.join(out, "saliency.png")
            info = project_saliency_figure(fx, results["orig_virt"], png)
            if info:
                report.files["saliency"] = png
                report.config["saliency"] = info
        except Exception as exc:  # a missing matplotlib must not hide the checks
            report.config["saliency"] = {"error": f"{type(exc).__name__}: {exc}"}
        report.seconds["figure"] = time.perf_counter() - t0
    report.seconds["total"] = time.perf_counter() - t_all
    return report


def _setup_candidates(cfg: ProjectConfig, orig_dir: str):
    """The set-ups the processes try in order, each ``{script, path, setup, imports}``,
    and the training scripts that could not be read (with why)."""
    from .d2 import read_setup, training_scripts

    notes: List[str] = []
    if cfg.setup is not None and cfg.imports is not None:
        return [{"script": "--setup", "path": "", "setup": list(cfg.setup), "imports": list(cfg.imports)}], notes
    if cfg.setup_script:
        scripts = [os.path.join(orig_dir, cfg.setup_script)]
        if not os.path.isfile(scripts[0]):
            raise ValueError(f"--setup-script {cfg.setup_script}: no such file in the project")
    else:
        scripts = training_scripts(orig_dir)
    if not scripts:
        raise ValueError("no training script (train*.py at the project root, under projects/*/ or tools/) to read "
                         "setup() from; give --setup-script FILE or --setup MODULE:FUNC (with --register MODULE)")
    cands = []
    for script in scripts:
        rel = os.path.relpath(script, orig_dir)
        folder = os.path.dirname(script)
        try:
            found = read_setup(script, folder)
        except (ValueError, SyntaxError, UnicodeDecodeError) as exc:
            notes.append(f"{rel}: {exc}")
            continue
        cands.append({"script": rel, "path": os.path.relpath(folder, orig_dir) if folder != orig_dir else "",
                      "setup": list(cfg.setup) if cfg.setup is not None else found["setup"],
                      "imports": list(cfg.imports) if cfg.imports is not None else found["imports"]})
    if not cands:
        raise ValueError("no training script has a setup() to read: " + "; ".join(notes)
                         + "; give --setup-script FILE or --setup MODULE:FUNC")
    return cands, notes


def _file_of(e: Dict[str, str]) -> str:
    return (e.get("where") or "").split(":")[0]


def _same_failure(a: Dict[str, Any], b: Dict[str, Any], keys) -> Optional[Dict[str, str]]:
    for key in keys:
        ea, eb = a["errors"].get(key), b["errors"].get(key)
        # the same error in the same file (a fix may move lines, so not the line number)
        if ea and eb and ea["type"] == eb["type"] and ea["text"] == eb["text"] and _file_of(ea) == _file_of(eb) \
                and not DEVICE_ERROR.search(ea["text"] if ea["type"] != "ModuleNotFoundError" else ""):
            return dict(ea, stage=key)
    return None


def _harness_problem(results: Dict[str, Dict[str, Any]]) -> Optional[str]:
    """Why the harness could not run the model, when the original (virtual
    accelerator) and the fixed copy (CPU) fail in the same way at the same place:
    a set-up problem (a missing package, a config the set-up rejects, inputs
    the model does not take), not a finding about the fix."""
    ref, fx = results.get("orig_virt"), results.get("fixed_cpu")
    if not ref or not fx:
        return None
    for r in (ref, fx):
        if "process" in r["errors"]:
            e = r["errors"]["process"]
            return f"the harness could not run the model: {e['text']} (log: {r.get('log')})"
    e = _same_failure(ref, fx, ("setup", "build", "train", "infer"))
    if e is None:
        return None
    if e["stage"] in ("train", "infer"):
        other = "infer" if e["stage"] == "train" else "train"
        if other not in ref["errors"] and other not in fx["errors"]:
            return None  # the other path runs in both: only this one is left out (_paths_not_run)
    hint = e.get("hint") or {
        "setup": "the config or the set-up functions (--setup-script, --setup, --register, --opts)",
        "build": "the model's construction from this config (--opts)",
    }.get(e["stage"], "the inputs or the way the harness runs this path (--input-format, --num-frames, --size)")
    return (f"the harness could not run the model: the original and the fixed copy both fail at {e['stage']} with "
            f"{e['text']} at {e['where']}; this says nothing about the fix. Look at: {hint}")


def _paths_not_run(results: Dict[str, Dict[str, Any]]) -> Dict[str, str]:
    """The path (train or infer) that the original (virtual accelerator) and the fixed
    copy (CPU) both fail in the same way while the other path runs in both: the
    harness cannot run it with its inputs, and it is left out of every check (each
    run's identical error on it is taken off), with the reason."""
    ref, fx = results.get("orig_virt"), results.get("fixed_cpu")
    if not ref or not fx or _fatal(ref) or _fatal(fx):
        return {}
    out: Dict[str, str] = {}
    for path, other in (("train", "infer"), ("infer", "train")):
        e = _same_failure(ref, fx, (path,))
        if e and other not in ref["errors"] and other not in fx["errors"]:
            out[path] = f"{e['text']} at {e['where']}"
    if len(out) != 1:
        return {}
    path = next(iter(out))
    want = (ref["errors"][path]["type"], ref["errors"][path]["text"])
    for r in results.values():
        e = r["errors"].get(path)
        if e and (e["type"], e["text"]) == want:
            del r["errors"][path]
        r.setdefault("facts", {})["paths_not_run"] = dict(out)
    return out


def _weak_evidence(check: CheckResult, fx: Dict[str, Any]) -> None:
    """Flag an inference comparison that saw little of the model: capture hooks that
    never fired (a forward reached through another method) and few compared tensors."""
    facts = fx.get("facts", {})
    silent = facts.get("captured_silent") or []
    names = facts.get("captured_from") or []
    n_infer = len(fx.get("sections", {}).get("infer", []))
    n_cap = len(fx.get("sections", {}).get("captured", []))
    down = facts.get("captured_one_level_down") or {}
    reasons = [f"the {p} path was not compared: the harness could not run it (both copies fail the same way: {why})"
               for p, why in (facts.get("paths_not_run") or {}).items()]
    if "infer" in (facts.get("paths_not_run") or {}):
        names = []  # nothing to say about captures on a path that did not run
    if names and len(silent) == len(names) and not down:
        reasons.append(f"none of the capture hooks fired ({', '.join(names)}, nor the submodules one level down):"
                       " the model reaches its submodules through other methods than forward; name the modules or"
                       " methods that build its outputs with --capture")
    if down:
        check.figures["captured_one_level_down"] = dict(down)  # parents reached through other methods
    if silent:
        check.figures["capture_hooks_not_fired"] = list(silent)  # e.g. a loss module, unused in inference
    if "infer" in (facts.get("paths_not_run") or {}):
        pass
    elif n_cap == 0 and not reasons:
        reasons.append("no tensor built inside the model was captured on the inference path; only its"
                       f" {n_infer} output tensor(s) were compared")
    elif n_infer + n_cap < 3:
        reasons.append(f"only {n_infer + n_cap} tensor(s) compared on the inference path")
    if reasons:
        check.figures["weak_evidence"] = reasons
        if check.status == PASS:
            check.message += "; WEAK EVIDENCE on the inference path: " + "; ".join(reasons)


_CHECK_ROLES = {1: ("orig_cpu",), 2: ("fixed_cpu",), 3: ("orig_virt",), 4: ("fixed_virt",),
                5: ("orig_gpu", "fixed_gpu")}


def _check_seconds(cid: int, results: Dict[str, Dict[str, Any]]) -> float:
    """Seconds of the runs a check reads (in their processes, imports not counted)."""
    return sum(results[r]["seconds"].get("total", 0.0) - results[r]["seconds"].get("import", 0.0)
               for r in _CHECK_ROLES[cid] if r in results)


def _short(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _err_line(r: Dict[str, Any], key: str) -> str:
    e = r["errors"].get(key)
    if not e:
        return ""
    return f"{e['text']} at {e['where']}" + (f" ({e['hint']})" if e.get("hint") else "")


def _fatal(r: Dict[str, Any]) -> Optional[str]:
    for key in ("process", "setup", "build"):
        if key in r["errors"]:
            return f"{key}: {_err_line(r, key)}"
    return None


def _check1(check: CheckResult, r: Dict[str, Any], ref: Optional[Dict[str, Any]] = None) -> None:
    """PASS: a path of the original fails on the CPU with a device error (or with
    an error that the same code does not raise under the virtual accelerator, where
    only the device differs); SKIP: the original already runs on the CPU (nothing
    device-specific to fix on these paths); FAIL: it fails with another error."""
    fatal = _fatal(r)
    ref_ok = {p: bool(ref) and not _fatal(ref) and p not in ref["errors"] for p in ("train", "infer")}
    if fatal and "process" not in r["errors"] and not DEVICE_ERROR.search(fatal) and ref and not _fatal(ref):
        # it builds under the virtual accelerator and not on the CPU: the device is the difference
        fatal_key = [k for k in ("setup", "build") if k in r["errors"]]
        if fatal_key == ["build"]:
            e = r["errors"]["build"]
            check.status = PASS
            check.message = (f"build: {e['text']} (at {e['where']}); the same code builds under the virtual"
                             " accelerator, so the failure is the device's")
            check.figures["build"] = {"error": e["text"], "where": e["where"], "device_error": False}
            return
    problems, seen = [], {}
    if fatal and "process" in r["errors"] or (fatal and not DEVICE_ERROR.search(fatal)):
        check.status, check.message = FAIL, f"the original did not get to run: {fatal}"
        check.figures["error"] = fatal
        return
    ran = []
    skip = (r.get("facts") or {}).get("paths_not_run") or {}
    for path in ("train", "infer"):
        if path in skip:
            seen[path] = {"error": None, "not_run": skip[path]}
            continue
        if fatal:
            e = r["errors"][[k for k in ("setup", "build") if k in r["errors"]][0]]
        else:
            e = r["errors"].get(path)
        if e is None:
            ran.append(path)
            seen[path] = {"error": None}
            continue
        is_device = bool(DEVICE_ERROR.search(e["text"]))
        by_difference = not is_device and not fatal and ref_ok[path]
        seen[path] = {"error": e["text"], "where": e["where"], "device_error": is_device,
                      "runs_under_virtual_accelerator": ref_ok[path]}
        if by_difference:
            seen[path]["note"] = "runs under the virtual accelerator: the device is the difference"
        elif not is_device:
            problems.append(f"{path}: failed, but not with a device error: {e['text']} at {e['where']}")
    check.figures.update(seen)
    check.figures["ran_on_cpu"] = ran
    if problems:
        check.status, check.message = FAIL, "; ".join(problems)
    elif len(ran) + len(skip) == 2:
        check.status = SKIP
        check.message = (f"the original already runs on the CPU on {'both paths (train, infer)' if not skip else ran[0] if ran else 'no path'}:"
                         " nothing device-specific to fix on these paths; checks 2-4 still show that the fixed copy"
                         " computes the same")
        check.figures["reason"] = check.message
    else:
        check.status = PASS
        check.message = "; ".join(
            f"{p}: {seen[p]['error']} (at {seen[p]['where']})" if seen[p]["error"] else
            f"{p}: not run by the harness" if seen[p].get("not_run") else f"{p}: runs on the CPU"
            for p in ("train", "infer"))


def _nonzero(t) -> bool:
    return bool((t != 0).any())


def _check2(check: CheckResult, r: Dict[str, Any], all_finite) -> None:
    fatal = _fatal(r)
    if fatal:
        check.status, check.message = FAIL, f"the fixed model did not get to run: {fatal}"
        return
    s, facts, problems = r["sections"], r["facts"], []
    skip = facts.get("paths_not_run") or {}
    for path in ("train", "infer"):
        if path in r["errors"]:
            problems.append(f"{path}: {_err_line(r, path)}")
    if "train" not in r["errors"] and "train" not in skip:
        obj = facts.get("train_objective")
        grads = s.get("train_grads", [])
        fin, bad = all_finite(s.get("train", []) + grads)
        zero = [n for n, g in grads if not _nonzero(g)]
        in_grads = s.get("train_input_grads", [])
        check.figures["train"] = {
            "objective": obj, "losses": facts.get("losses"), "parameter_gradients": len(grads),
            "parameter_gradients_all_zero": len(zero), "parameter_gradients_all_zero_examples": zero[:10],
            "parameters_without_gradient": facts.get("params_without_grad"),
            "input_frames_with_gradient": len(in_grads),
            "input_frames_with_nonzero_gradient": sum(1 for _, g in in_grads if _nonzero(g)),
            "input_gradient_note": facts.get("train_input_grad_note"),
        }
        if obj is None or not math.isfinite(obj):
            problems.append(f"train: objective is not finite ({obj})")
        if not fin:
            problems.append(f"train: non-finite losses or gradients: {bad[:5]}")
        if not grads or len(zero) == len(grads):
            problems.append("train: no non-zero parameter gradient")
    if "infer" not in r["errors"] and "infer" not in skip:
        out = s.get("infer", [])
        sal = s.get("saliency", [])
        fin_o, bad_o = all_finite(out)
        fin_s, bad_s = all_finite(sal)
        zero_frames = [n for n, g in sal if not _nonzero(g)]
        check.figures["infer"] = {
            "output_tensors": len(out), "captured_tensors": len(s.get("captured", [])),
            "captured_from": facts.get("captured_from"), "saliency_frames": len(sal),
            "saliency_frames_all_zero": len(zero_frames), "saliency_objective": facts.get("saliency_objective"),
        }
        if not fin_o:
            problems.append(f"infer: non-finite outputs: {bad_o[:5]}")
        check.figures["infer"]["saliency_note"] = None if sal else facts.get(
            "saliency", "not available: the gradient pass was not run (--no-saliency)")
        if not sal:
            pass  # optional: reported as not available, with why
        elif not fin_s:
            problems.append(f"infer: non-finite saliency: {bad_s[:5]}")
        elif len(zero_frames) == len(sal):
            problems.append("infer: the saliency is zero on every frame")
    check.status = FAIL if problems else PASS
    if problems:
        check.message = "; ".join(problems)
        return
    if skip:
        check.figures["paths_not_run"] = dict(skip)
        done = [p for p in ("train", "infer") if p not in skip]
        if not done:
            check.status, check.message = FAIL, "no path ran"
            return
        if "train" in skip:
            i = check.figures["infer"]
            sal = (f"saliency finite and non-zero on {i['saliency_frames'] - i['saliency_frames_all_zero']} of"
                   f" {i['saliency_frames']} frames" if i["saliency_frames"] else f"saliency {i['saliency_note']}")
            check.message = (f"infer: {i['output_tensors']} output tensors finite, {sal}; train: not run (the harness"
                             f" could not run it: {skip['train']})")
        else:
            t = check.figures["train"]
            check.message = (f"train: {t['losses']} losses, objective {t['objective']:.6g}, {t['parameter_gradients']}"
                             f" parameter gradients finite; infer: not run (the harness could not run it:"
                             f" {skip['infer']})")
        return
    t, i = check.figures["train"], check.figures["infer"]
    train_in = (f"input frames get a gradient on {t['input_frames_with_nonzero_gradient']} frame(s)"
                if t["input_frames_with_gradient"] else "input frames get no gradient in training")
    sal_text = (f"saliency finite and non-zero on {i['saliency_frames'] - i['saliency_frames_all_zero']}"
                f" of {i['saliency_frames']} frames" if i["saliency_frames"] else f"saliency {i['saliency_note']}")
    check.message = (
        f"train: {t['losses']} losses, objective {t['objective']:.6g}, {t['parameter_gradients']} parameter "
        f"gradients finite ({t['parameter_gradients'] - t['parameter_gradients_all_zero']} non-zero, "
        f"{t['parameter_gradients_all_zero']} all zero), {train_in}; infer: {i['output_tensors']} output "
        f"tensors finite, {sal_text}"
    )


def _compare_sections(a: Dict[str, Any], b: Dict[str, Any], compare, **tol) -> Dict[str, Any]:
    figs: Dict[str, Any] = {}
    for sec in COMPARED:
        xa, xb = a["sections"].get(sec, []), b["sections"].get(sec, [])
        if not xa and not xb:
            continue
        figs[sec] = compare(xa, xb, **tol).to_json()
    return figs


def _sum_figs(figs: Dict[str, Any]):
    total = sum(f["compared_tensors"] for f in figs.values())
    mad = max((f["max_abs_diff"] for f in figs.values()), default=0.0)
    problems = [f"{sec}: {p}" for sec, f in figs.items() for p in f["problems"]]
    return total, mad, problems


def _check3(check: CheckResult, ref: Dict[str, Any], fx: Dict[str, Any], compare) -> None:
    fatal = _fatal(ref)
    problems = []
    if fatal:
        check.status, check.message = FAIL, f"the original did not run under the virtual accelerator: {fatal}"
        return
    for path in ("train", "infer"):
        if path in ref["errors"]:
            problems.append(f"{path}: the original failed under the virtual accelerator: {_err_line(ref, path)}")
    if _fatal(fx) or any(p in fx["errors"] for p in ("train", "infer")):
        problems.append("no complete fixed CPU result to compare (check 2 failed)")
        check.status, check.message = FAIL, "; ".join(problems)
        return
    figs = _compare_sections(ref, fx, compare)
    total, mad, diffs = _sum_figs(figs)
    problems += diffs
    mism = sum(len(v) for v in ref.get("mismatches", {}).values())
    check.figures.update(sections=figs, compared_tensors=total, max_abs_diff=mad, reference_mismatch_places=mism,
                         reference_mismatches=[m for v in ref.get("mismatches", {}).values() for m in v][:20])
    check.status = FAIL if problems else PASS
    per = ", ".join(f"{sec} {f['compared_tensors']}" for sec, f in figs.items())
    check.message = "; ".join(problems[:8]) if problems else (
        f"{total} tensors bitwise equal ({per}), max abs diff {mad:g}"
    )


def _check4(check: CheckResult, r: Dict[str, Any], fx: Dict[str, Any], compare) -> None:
    fatal = _fatal(r)
    if fatal:
        check.status, check.message = FAIL, f"the fixed model did not run under the virtual accelerator: {fatal}"
        return
    problems = []
    places = [m for v in r.get("mismatches", {}).values() for m in v]
    count = sum(m["count"] for m in places)
    for path in ("train", "infer"):
        if path in r["errors"]:
            problems.append(f"{path}: failed under the virtual accelerator: {_err_line(r, path)}")
    if places:
        problems.append(f"{count} device mismatch(es) at {len(places)} place(s): " + "; ".join(
            f"{m['file']}:{m['line']}: {m['op']} [{', '.join(m['devices'])}]" for m in places[:5]))
    figs = _compare_sections(r, fx, compare) if not _fatal(fx) else {}
    total, mad, diffs = _sum_figs(figs)
    check.figures.update(mismatches=count, places=places[:20], equal_to_fixed_cpu=not diffs, compared_tensors=total,
                         max_abs_diff=mad, sections=figs)
    problems += [f"differs from the fixed CPU run: {d}" for d in diffs[:3]]
    check.status = FAIL if problems else PASS
    check.message = "; ".join(problems) if problems else (
        f"0 device mismatches (build, train, infer); {total} tensors bitwise equal to the fixed CPU run"
    )


def _check5(check: CheckResult, results, fx, cfg: ProjectConfig, gpu: bool, compare) -> None:
    if not gpu:
        check.status = SKIP
        check.message = ("torch.cuda.is_available() is False: no GPU here, so nothing was run on real hardware; "
                         "checks 3 and 4 model the accelerator on the CPU")
        check.figures["reason"] = check.message
        return
    og, fg = results["orig_gpu"], results["fixed_gpu"]
    problems = []
    for label, r in (("original GPU", og), ("fixed GPU", fg)):
        f = _fatal(r) or "; ".join(_err_line(r, p) for p in ("train", "infer") if p in r["errors"])
        if f:
            problems.append(f"{label}: {f}")
    tol = {"rtol": cfg.rtol, "atol": cfg.atol}
    a = _compare_sections(og, fg, compare, **tol)
    # the weights are loaded from one file and the inputs are the same: gradients and
    # outputs may differ within float tolerance (different kernels), never structurally
    b = _compare_sections(fx, fg, compare, **tol)
    ta, ma, pa = _sum_figs(a)
    tb, mb, pb = _sum_figs(b)
    problems += [f"original GPU vs fixed GPU: {p}" for p in pa[:4]]
    # CPU vs GPU is reported, not judged: random ops draw from another generator
    # on the GPU, so losses with random point sampling differ by design
    check.figures.update(tolerance=tol, original_gpu_vs_fixed_gpu=a, fixed_cpu_vs_fixed_gpu=b,
                         compared_tensors=ta, max_abs_diff=ma, fixed_cpu_vs_gpu_outside_tolerance=len(pb),
                         fixed_cpu_vs_gpu_max_abs_diff=mb, fixed_cpu_vs_gpu_compared=tb)
    check.status = FAIL if problems else PASS
    check.message = "; ".join(problems[:8]) if problems else (
        f"original GPU vs fixed GPU: {ta} tensors within rtol={cfg.rtol:g}, atol={cfg.atol:g}, max abs diff "
        f"{ma:.3g}; fixed CPU vs fixed GPU (reported only): {tb} tensors, {len(pb)} outside tolerance, "
        f"max abs diff {mb:.3g}"
    )
