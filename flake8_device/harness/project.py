"""The harness on a whole project: a detectron2 one (``flake8-device-harness --project DIR
--config FILE``) or a plain PyTorch one (``--project DIR --entry pkg.module:function``).

Two copies of the project's source tree go into the output folder; the fixed
one is fixed file by file with the same loop as ``flake8-device --fix``. Each
model run happens in a process of its own (:mod:`flake8_device.harness.d2` for
a config, :mod:`flake8_device.harness.entry` for an entry function), so each
copy has its own imports and registries; runs exchange tensors through
``torch.save`` files and :mod:`flake8_device.harness.checks` judges them:

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
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, TextIO

from . import workspace
from .checks import (  # noqa: F401  (the checks were defined here; importable from here too)
    COMPARED, SECTION_TITLES, _check1, _check2, _check3, _check4, _check5, _fatal, _harness_problem,
    _paths_not_run, _short, _weak_evidence, judge,
)
from .runner import ATOL, FAIL, PASS, RTOL, SKIP, CheckResult, HarnessReport, _environment, _Progress  # noqa: F401

# Fixes the original copy gets too: DEV009 lets a module import without its compiled
# extension (Mask2Former's MultiScaleDeformableAttention); where the extension is
# built and the tensors are on CUDA, the fixed code runs the original op unchanged.
ORIGINAL_FIXES = ("DEV009",)
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".mypy_cache", ".pytest_cache", "*.egg-info")


@dataclass
class ProjectConfig:
    """What a project run needs; the command line fills it."""

    project: str
    config: Optional[str] = None  # a detectron2 config file (detectron2 mode)
    entry: Optional[str] = None  # pkg.module:function (plain PyTorch mode); see entry.py for its contract
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
            proc = subprocess.run([sys.executable, "-m", spec.get("module", "flake8_device.harness.d2"), spec_file],
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


def _new_report(cfg: ProjectConfig, project: str, out: str) -> HarnessReport:
    common = {
        "mode": "project", "project": project, "out": out, "unsafe_fixes": cfg.unsafe, "seed": cfg.seed,
        "threads": cfg.threads, "jobs": cfg.jobs, "device_type": cfg.device_type, "capture": list(cfg.capture),
        "original_fixes": list(cfg.original_fixes),
        "tolerances": {"bitwise": "torch.equal (checks 3 and 4)", "rtol": cfg.rtol, "atol": cfg.atol},
        "package": project, "frames": None, "mutate_fix": None,  # fields the bundled-model report reads
    }
    if cfg.entry:
        common.update(entry=cfg.entry, config_file=None, opts=[], weights="random (seeded by the entry), shared",
                      builder=f"entry function {cfg.entry}", inputs="the entry's inputs",
                      objective="the entry's objective (default: sum of the floating-point outputs)")
    else:
        common.update(config_file=cfg.config, opts=list(cfg.opts), weights="random (seeded), MODEL.WEIGHTS empty",
                      builder="detectron2 build_model(cfg)", inputs="synthetic video",
                      objective="sum of the loss dict")
    return HarnessReport(config=common, environment=_environment())


def _prepare(cfg: ProjectConfig, report: HarnessReport, progress) -> Optional[Dict[str, Any]]:
    """Copies, the original's own fixes, the set-up candidates; None (``report.setup_error`` set) on a problem."""
    project, out = report.config["project"], report.config["out"]
    if not os.path.isdir(project):
        report.setup_error = f"--project {project}: not a folder"
        return None
    if bool(cfg.entry) == bool(cfg.config):
        report.setup_error = "--project needs either --config FILE (detectron2) or --entry MODULE:FUNCTION"
        return None
    prep: Dict[str, Any] = {"config_rel": None, "candidates": None}
    if cfg.config:
        try:
            prep["config_rel"] = report.config["config_file"] = _rel_config(project, cfg.config)
        except ValueError as exc:
            report.setup_error = str(exc)
            return None
    elif ":" not in cfg.entry:
        report.setup_error = f"--entry {cfg.entry!r}: expected MODULE:FUNCTION, e.g. mypkg.harness_entry:build"
        return None
    t0 = time.perf_counter()
    copies = os.path.join(out, "project")
    prep["orig_dir"], prep["fixed_dir"] = os.path.join(copies, "original"), os.path.join(copies, "fixed")
    progress(f"copying {project} to {prep['orig_dir']} and {prep['fixed_dir']}")
    os.makedirs(copies, exist_ok=True)
    _copy_tree(project, prep["orig_dir"], out)
    _copy_tree(project, prep["fixed_dir"], out)
    if cfg.original_fixes:
        progress(f"fixing the original copy with {', '.join(cfg.original_fixes)} only (--original-fixes)")
        orig_fix = workspace.fix_package(prep["orig_dir"], unsafe=cfg.unsafe, select=list(cfg.original_fixes))
        report.config["original_fix"] = orig_fix.to_json()
    report.seconds["copy"] = time.perf_counter() - t0
    if cfg.config:
        try:
            candidates, script_notes = _setup_candidates(cfg, prep["orig_dir"])
        except ValueError as exc:
            report.setup_error = str(exc)
            return None
        prep["candidates"] = candidates
        report.config["setup_candidates"] = [{"script": c["script"], "setup": c["setup"]} for c in candidates]
        report.config["setup_scripts_unreadable"] = script_notes
        report.config["setup_functions"] = list(candidates[0]["setup"])
        report.config["registering_imports"] = list(candidates[0]["imports"])
        report.config["setup_from"] = candidates[0]["script"]
    return prep


def _plan(cfg: ProjectConfig, prep: Dict[str, Any], runs_dir: str, gpu: bool) -> List[Dict[str, Any]]:
    """The two processes (original, fixed copy) and the runs of each, in order.

    The original process starts while the fixed copy is being fixed and writes the
    weights as soon as its first model is built; every run of the fixed one loads them."""
    state = os.path.join(runs_dir, "weights.pt")
    for old in (state, state + ".failed"):
        if os.path.exists(old):
            os.remove(old)
    vt = cfg.device_type

    def one(role: str, device: str, virtual: Optional[str], **extra) -> Dict[str, Any]:
        d = {"role": role, "device": device, "virtual": virtual, "out": os.path.join(runs_dir, role + ".pt")}
        d.update(extra)
        if os.path.exists(d["out"]):
            os.remove(d["out"])  # never read a result of an earlier run
        return d

    def process(name: str, root: str, runs: List[Dict[str, Any]]) -> Dict[str, Any]:
        p = {"process": name, "root": root, "state": state, "seed": cfg.seed, "threads": cfg.threads,
             "capture": list(cfg.capture), "saliency": cfg.saliency, "runs": runs}
        if cfg.entry:
            p.update(module="flake8_device.harness.entry", entry=cfg.entry)
        else:
            p.update(config=os.path.join(root, prep["config_rel"]), candidates=prep["candidates"],
                     opts=list(cfg.opts), frames=cfg.frames, height=cfg.height, width=cfg.width,
                     input_format=cfg.input_format, paths=["train", "infer"])
        return p

    wait = {"state_wait": cfg.timeout}
    fixed_runs = [one("fixed_cpu", "cpu", None, **wait), one("fixed_virt", vt, vt, **wait)]
    orig_runs = [one("orig_virt", vt, vt), one("orig_cpu", "cpu", None, state=None)]
    if gpu:
        fixed_runs.append(one("fixed_gpu", "cuda", None, **wait))
        orig_runs.append(one("orig_gpu", "cuda", None, **wait))
    return [process("original", prep["orig_dir"], orig_runs), process("fixed", prep["fixed_dir"], fixed_runs)]


def _run_processes(cfg: ProjectConfig, report: HarnessReport, prep: Dict[str, Any], procs, progress):
    """Run both processes, fixing the fixed copy while the original one starts; the results by role,
    or None when the fixing failed (``report.setup_error``)."""
    state = procs[0]["state"]
    runs_dir = os.path.dirname(state)

    def run_process(p: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        progress(f"process {p['process']} ({os.path.basename(p['root'])} copy): "
                 + ", ".join(f"{r['role']} ({'MODEL.DEVICE=' if not cfg.entry else 'device '}{r['device']}"
                             + (f", virtual_device({r['virtual']!r})" if r["virtual"] else "") + ")"
                             for r in p["runs"]))
        res = _worker(p, os.path.join(runs_dir, p["process"] + ".log"), cfg.timeout)
        if p["process"] == "original" and not os.path.isfile(state):
            # the weights will never come: release the runs waiting for them
            with open(state + ".failed", "w", encoding="utf-8") as fh:
                fh.write("the original process ended without writing the weights\n")
        return res

    results: Dict[str, Dict[str, Any]] = {}
    t_runs = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(cfg.jobs, len(procs)))) as pool:
        first = pool.submit(run_process, procs[0])
        t0 = time.perf_counter()
        progress("fixing every file of the fixed copy (--fix" + (" --unsafe-fixes)" if cfg.unsafe else ")"))
        try:
            report.fix = workspace.fix_package(prep["fixed_dir"], unsafe=cfg.unsafe)
        except Exception as exc:
            report.setup_error = f"fixing the fixed copy failed: {type(exc).__name__}: {exc}"
            first.result()
            return None
        report.seconds["fix"] = time.perf_counter() - t0
        progress(f"fixed {report.fix.total('fixed')} of {report.fix.total('found')} diagnostics "
                 f"({report.fix.unsafe_count()} by unsafe fixes) in {len(report.fix.files_changed)} files; "
                 f"{report.fix.total('left')} left")
        second = pool.submit(run_process, procs[1])
        results.update(first.result())
        results.update(second.result())
    for role, r in results.items():
        errs = "; ".join(f"{k}: {v['text']}" for k, v in r["errors"].items()) or "no error"
        progress(f"{role}: {r['seconds'].get('total', 0):.1f}s ({_short(errs)})")
    report.seconds["runs"] = time.perf_counter() - t_runs
    report.files["runs"] = runs_dir
    return results


def _record(report: HarnessReport, results: Dict[str, Dict[str, Any]], procs) -> None:
    """What the runs say about the set-up, the model and the inputs, into the report's config."""
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


def run_project(cfg: ProjectConfig) -> HarnessReport:
    """Copy, fix, run every process, judge; never raises for a model failure."""
    import torch

    progress = _Progress(cfg.progress)
    t_all = time.perf_counter()
    out = os.path.abspath(cfg.out)
    report = _new_report(cfg, os.path.abspath(cfg.project), out)
    prep = _prepare(cfg, report, progress)
    if prep is None:
        return report
    runs_dir = os.path.join(out, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    gpu = cfg.device_type == "cuda" and torch.cuda.is_available()
    procs = _plan(cfg, prep, runs_dir, gpu)
    results = _run_processes(cfg, report, prep, procs, progress)
    if results is None:
        return report
    _record(report, results, procs)
    checks, problem = judge(results, gpu=gpu, rtol=cfg.rtol, atol=cfg.atol)
    report.config["paths_not_run"] = (results["fixed_cpu"].get("facts") or {}).get("paths_not_run") or {}
    if problem:
        report.setup_error = problem  # both copies fail the same way: nothing here is about the fix
    for c in checks.values():
        report.checks.append(c)
        progress(f"check {c.id}: {c.status} {c.message}")
    if cfg.figure:
        _figure(report, results, out)
    report.seconds["total"] = time.perf_counter() - t_all
    return report


def _figure(report: HarnessReport, results: Dict[str, Dict[str, Any]], out: str) -> None:
    t0 = time.perf_counter()
    try:
        from .saliency import project_saliency_figure

        png = os.path.join(out, "saliency.png")
        info = project_saliency_figure(results["fixed_cpu"], results["orig_virt"], png)
        if info:
            report.files["saliency"] = png
            report.config["saliency"] = info
    except Exception as exc:  # a missing matplotlib must not hide the checks
        report.config["saliency"] = {"error": f"{type(exc).__name__}: {exc}"}
    report.seconds["figure"] = time.perf_counter() - t0


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
