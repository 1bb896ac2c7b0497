"""The five checks, one implementation for every way of running a model.

Each check is a pure function over captured results: one dict per run, as
:mod:`flake8_device.harness.d2` and :mod:`flake8_device.harness.entry` write them
(and as package mode builds them from its in-process runs)::

    {"sections": {"state": [(name, tensor)], "train": [...], "train_grads": [...],
                  "train_input_grads": [...], "infer": [...], "captured": [...], "saliency": [...]},
     "errors": {"setup" | "build" | "train" | "infer" | "process": {"type", "text", "where", ["hint"]}},
     "facts": {...}, "mismatches": {"build" | "train" | "infer": [{"file", "line", "op", "devices", "count"}]},
     "seconds": {...}}

Roles: ``orig_cpu`` (check 1), ``fixed_cpu`` (2, and the reference of 3 and 4),
``orig_virt`` (3), ``fixed_virt`` (4), ``orig_gpu`` and ``fixed_gpu`` (5).
:func:`judge` runs all five; the ``_checkN`` functions are each check on its own.
"""

from __future__ import annotations

import math
import os
import re
import traceback
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

# What PyTorch says when accelerator code meets a machine (or tensors) without it.
DEVICE_ERROR = re.compile(
    r"NVIDIA driver|not compiled with CUDA|CUDA|cuda|Expected all tensors to be on the same device"
    r"|device|HIP|XPU|MPS",
)


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


# Sections of a run's result, in report order, and what they hold.
SECTION_TITLES = {
    "state": "state dict (weights and buffers; SHA-256 of each tensor)",
    "inputs": "model inputs as the entry function built them",
    "train": "training losses and their sum",
    "train_grads": "parameter gradients of the training objective",
    "train_input_grads": "input-frame gradients of the training objective",
    "infer": "inference outputs",
    "captured": "tensors built on the inference path (captured)",
    "saliency": "saliency: d(captured objective)/d(input frame)",
}
COMPARED = tuple(SECTION_TITLES)

CHECK_NAMES = {
    1: "original fails on CPU with a device error",
    2: "fixed trains (backward) and infers on CPU, gradients finite",
    3: "original (virtual accelerator) == fixed (CPU), bitwise",
    4: "fixed under the virtual accelerator: no device mismatch",
    5: "real GPU: original vs fixed, fixed CPU vs GPU (tolerance)",
}


def where(exc: BaseException, roots: Sequence[str], relative_to: Optional[str] = None) -> str:
    """``file:line: source`` of the innermost frame of ``exc`` inside one of ``roots``
    (the path relative to ``relative_to``, by default that root); else of the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(frames):
        fn = os.path.abspath(fr.filename)
        for r in roots:
            r = os.path.abspath(r)
            if fn.startswith(r + os.sep):
                base = os.path.abspath(relative_to) if relative_to else r
                return f"{os.path.relpath(fn, base)}:{fr.lineno}: {(fr.line or '').strip()}"
    if frames:
        fr = frames[-1]
        return f"{fr.filename}:{fr.lineno}: {(fr.line or '').strip()}"
    return ""


def judge(results: Dict[str, Dict[str, Any]], *, gpu: bool, rtol: float, atol: float,
          weak_evidence: bool = True) -> tuple:
    """Every check over the results by role: ``({id: CheckResult}, harness_problem or None)``.

    ``harness_problem``: the original (virtual accelerator) and the fixed copy (CPU) fail
    alike, so nothing is about the fix and checks 1-4 are SKIP, not judged.
    """
    from .tensors import all_finite, compare

    checks = {i: CheckResult(i, name) for i, name in CHECK_NAMES.items()}
    problem = _harness_problem(results)
    if not problem:
        _paths_not_run(results)
    _check1(checks[1], results["orig_cpu"], results.get("orig_virt"))
    _check2(checks[2], results["fixed_cpu"], all_finite)
    _check3(checks[3], results["orig_virt"], results["fixed_cpu"], compare)
    _check4(checks[4], results["fixed_virt"], results["fixed_cpu"], compare)
    _check5(checks[5], results, results["fixed_cpu"], {"rtol": rtol, "atol": atol}, gpu, compare)
    if problem:
        for cid in (1, 2, 3, 4):
            checks[cid].status = SKIP
            checks[cid].message = "not judged: the harness could not run the model (see the setup failure)"
    elif weak_evidence:
        _weak_evidence(checks[3], results["fixed_cpu"])
    for c in checks.values():
        c.seconds = _check_seconds(c.id, results)
    return checks, problem


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


def _losses(t: Dict[str, Any]) -> str:
    return f"{t['losses']} losses, " if t.get("losses") is not None else ""


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
        fin, bad = all_finite(s.get("train", []) + grads + s.get("train_input_grads", []))
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
            problems.append(f"train: non-finite losses or gradients (parameters, inputs): {bad[:5]}")
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
            check.message = (f"train: {_losses(t)}objective {t['objective']:.6g}, {t['parameter_gradients']}"
                             f" parameter gradients finite; infer: not run (the harness could not run it:"
                             f" {skip['infer']})")
        return
    t, i = check.figures["train"], check.figures["infer"]
    train_in = (f"input frames get a gradient on {t['input_frames_with_nonzero_gradient']} frame(s)"
                if t["input_frames_with_gradient"] else "input frames get no gradient in training")
    sal_text = (f"saliency finite and non-zero on {i['saliency_frames'] - i['saliency_frames_all_zero']}"
                f" of {i['saliency_frames']} frames" if i["saliency_frames"] else f"saliency {i['saliency_note']}")
    check.message = (
        f"train: {_losses(t)}objective {t['objective']:.6g}, {t['parameter_gradients']} parameter "
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
    # a fixed CPU run that failed (check 2) has nothing to compare with: say so, not "different structure"
    fx_failed = bool(_fatal(fx)) or any(p in fx["errors"] for p in ("train", "infer"))
    figs = {} if fx_failed else _compare_sections(r, fx, compare)
    total, mad, diffs = _sum_figs(figs)
    check.figures.update(mismatches=count, places=places[:20], equal_to_fixed_cpu=None if fx_failed else not diffs,
                         compared_tensors=total, max_abs_diff=mad, sections=figs)
    problems += [f"differs from the fixed CPU run: {d}" for d in diffs[:3]]
    check.status = FAIL if problems else PASS
    compared = ("not compared with the fixed CPU run, which failed (check 2)" if fx_failed
                else f"{total} tensors bitwise equal to the fixed CPU run")
    check.message = "; ".join(problems) if problems else f"0 device mismatches (build, train, infer); {compared}"


def _check5(check: CheckResult, results, fx, tol: Dict[str, float], gpu: bool, compare) -> None:
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
        f"original GPU vs fixed GPU: {ta} tensors within rtol={tol['rtol']:g}, atol={tol['atol']:g}, max abs diff "
        f"{ma:.3g}; fixed CPU vs fixed GPU (reported only): {tb} tensors, {len(pb)} outside tolerance, "
        f"max abs diff {mb:.3g}"
    )
