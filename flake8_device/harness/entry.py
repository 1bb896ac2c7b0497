"""One run of a plain PyTorch project's model, in a process of its own.

The project harness starts this module as ``python -m flake8_device.harness.entry
SPEC.json`` for a project given with ``--entry pkg.module:function``; it plays
the part :mod:`flake8_device.harness.d2` plays for a detectron2 project and
writes its results in the same form, so the same checks read them.

The entry function takes no argument and returns what to run, either a dict

==================  ==========================================================
``model``           the ``torch.nn.Module``, built on the CPU (required)
``inputs``          the forward's argument on the CPU; a tuple is spread into
                    several positional arguments (``model(*inputs)``) (required)
``train_inputs``    the argument(s) of the training path, in the same form
                    (default: ``inputs``); e.g. ``(images, targets)``
``objective``       ``objective(outputs) -> scalar tensor`` to call backward on
                    (default: the sum of every floating-point output tensor;
                    for a dict of losses, the sum of the losses)
``paths``           which of ``"train"`` and ``"infer"`` to run (default both)
==================  ==========================================================

or a tuple ``(model, inputs)`` or ``(model, inputs, objective)``. It is called
after seeding Python, NumPy and torch with the run's seed, in every process,
and the first run's weights are shared with the others through a state dict
file (with its ``_metadata``), so every process holds the same weights.

Paths: **train** is ``train()``, forward, the objective, backward (the outputs,
the objective and every parameter gradient are recorded); **infer** is
``eval()`` under ``torch.no_grad()`` (the outputs and the forward outputs of the
top-level submodules, or of the ``capture`` names); **grad** (optional) makes
every floating-point input tensor require grad and records the input gradients
of the training objective and of the objective on the inference outputs (the
saliency), or why they are not available.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from .d2 import _Capture, _error, _finish, _load_state, _mismatches, _seed

SECTIONS = ("state", "inputs", "train", "train_grads", "train_input_grads", "infer", "captured", "saliency")
KEYS = ("model", "inputs", "train_inputs", "objective", "paths")


def resolve(spec: str) -> Callable:
    """``pkg.module:function`` (a dotted attribute path after the colon) -> the callable."""
    if ":" not in spec:
        raise ValueError(f"--entry {spec!r}: expected MODULE:FUNCTION, e.g. mypkg.harness_entry:build")
    mod, attr = spec.split(":", 1)
    obj: Any = importlib.import_module(mod.strip())
    for part in attr.strip().split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"--entry {spec!r} is not callable")
    return obj


def default_objective(outputs):
    """The sum of every floating-point tensor of the outputs (a loss dict: the sum of the losses)."""
    from .tensors import flatten

    floats = [t.float().sum() for _, t in flatten(outputs, "out") if t.is_floating_point()]
    if not floats:
        raise TypeError("the outputs hold no floating-point tensor: give an 'objective' in the entry's result")
    return sum(floats)


def normalise(got: Any) -> Dict[str, Any]:
    """The entry's result as a dict of :data:`KEYS`; a wrong shape raises ``TypeError`` naming the contract."""
    import torch

    if isinstance(got, (tuple, list)) and 2 <= len(got) <= 3:
        got = dict(zip(("model", "inputs", "objective"), got))
    if not isinstance(got, dict) or "model" not in got or "inputs" not in got:
        raise TypeError("the entry function must return {'model': nn.Module, 'inputs': ..., ['train_inputs': ...,"
                        " 'objective': callable, 'paths': ('train', 'infer')]} or (model, inputs[, objective]),"
                        f" not {type(got).__name__}")
    unknown = sorted(set(got) - set(KEYS))
    if unknown:
        raise TypeError(f"the entry's result has unknown keys {unknown}; known: {list(KEYS)}")
    if not isinstance(got["model"], torch.nn.Module):
        raise TypeError(f"the entry's 'model' is a {type(got['model']).__name__}, not a torch.nn.Module")
    out = dict(got)
    out.setdefault("train_inputs", got["inputs"])
    out["objective"] = got.get("objective") or default_objective
    paths = list(got.get("paths") or ("train", "infer"))
    bad = [p for p in paths if p not in ("train", "infer")]
    if bad:
        raise TypeError(f"the entry's 'paths' may hold 'train' and 'infer', not {bad}")
    out["paths"] = paths
    return out


def _args(inputs) -> tuple:
    return tuple(inputs) if isinstance(inputs, tuple) else (inputs,)


def _float_leaves(inputs) -> List[Any]:
    from .tensors import flatten

    return [t for _, t in flatten(inputs, "in") if t.is_floating_point() and t.is_leaf]


def run(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one copy as ``spec`` says (``root``, ``entry``, ``device``, ``virtual``,
    ``state``, ``state_wait``, ``seed``, ``threads``, ``capture``, ``saliency``,
    ``out``); return the result (also saved to ``spec['out']``)."""
    import torch

    t_start = time.perf_counter()
    root = os.path.abspath(spec["root"])
    torch.set_num_threads(int(spec.get("threads") or 1))
    torch._C._set_graph_executor_optimize(False)  # the same kernels in every call (see d2.run)
    result: Dict[str, Any] = {"spec": spec, "sections": {s: [] for s in SECTIONS}, "errors": {}, "model": {},
                              "mismatches": {}, "seconds": {}, "facts": {"entry": spec["entry"]}}
    sys.path.insert(0, root)
    vd = None
    try:
        t0 = time.perf_counter()
        try:
            fn = resolve(spec["entry"])
        except Exception as exc:
            result["errors"]["setup"] = _error(exc, root)
            return _finish(result, spec, t_start)
        result["seconds"]["import"] = time.perf_counter() - t0
        if spec.get("virtual"):
            from ..virtual import virtual_device

            vd = virtual_device(spec["virtual"], mode="report")
        ctx = vd if vd is not None else contextlib.nullcontext()
        t0 = time.perf_counter()
        made = _build(fn, spec, result, ctx, root)
        result["seconds"]["build"] = time.perf_counter() - t0
        if made is None:
            return _finish(result, spec, t_start)
        result["mismatches"]["build"] = _mismatches(vd, root)
        if vd is not None:
            vd.mismatches.clear()
        _run_paths(fn, made, spec, result, ctx, vd, root)
    finally:
        if root in sys.path:
            sys.path.remove(root)
    return _finish(result, spec, t_start)


def _build(fn, spec, result, ctx, root) -> Optional[Dict[str, Any]]:
    """Call the entry, load the shared weights, move the model; None (and an error) when it fails."""
    from .tensors import detach_all, flatten

    with ctx:
        try:
            _seed(int(spec["seed"]))
            made = normalise(fn())
            made["pristine"] = {k: copy.deepcopy(made[k]) for k in ("inputs", "train_inputs")}
            _load_state(made["model"], spec, result)
        except Exception as exc:
            result["errors"]["build"] = _error(exc, root)
            return None
        result["facts"]["paths"] = list(made["paths"])
        result["facts"]["objective"] = getattr(made["objective"], "__qualname__", repr(made["objective"]))
        result["sections"]["inputs"] = detach_all(flatten(made["inputs"], "in", scalars=True))
        if spec["device"] != "cpu":
            try:
                made["model"].to(spec["device"])
            except Exception as exc:
                result["errors"]["build"] = _error(exc, root)
                return None
    return made


def _fresh(made, spec, key: str):
    """A fresh copy of the inputs of one path (as the entry built them, never given to the model
    itself), moved to the run's device."""
    from .tensors import move

    inputs = copy.deepcopy(made["pristine"][key])
    return move(inputs, spec["device"]) if spec["device"] != "cpu" else inputs


def _run_paths(fn, made, spec, result, ctx, vd, root) -> None:
    paths = [p for p in ("train", "infer") if p in made["paths"]]
    not_run = {p: "the entry's 'paths' leaves it out" for p in ("train", "infer") if p not in paths}
    if not_run:
        result["facts"]["paths_skipped_by_entry"] = not_run
    if spec.get("saliency", True):
        paths.append("grad")
    for path in paths:
        t0 = time.perf_counter()
        with ctx:
            try:
                if path == "train":
                    _train(fn, made, spec, result)
                elif path == "infer":
                    _infer(fn, made, spec, result)
                else:
                    _grad_pass(fn, made, spec, result, root)
            except Exception as exc:
                result["errors"][path] = _error(exc, root)
        if path != "grad":
            result["mismatches"][path] = _mismatches(vd, root)
        if vd is not None:
            vd.mismatches.clear()
        result["seconds"][path] = time.perf_counter() - t0


def _train(fn, made, spec, result) -> None:
    import torch

    from .tensors import detach_all, flatten

    model = made["model"]
    inputs = _fresh(made, spec, "train_inputs")
    model.train()
    model.zero_grad(set_to_none=True)
    _seed(int(spec["seed"]) + 1)
    outputs = model(*_args(inputs))
    objective = made["objective"](outputs)
    if not isinstance(objective, torch.Tensor) or objective.dim() != 0:
        raise TypeError(f"the objective returned {type(objective).__name__}, not a scalar tensor")
    objective.backward()
    grads, none = [], []
    for name, p in model.named_parameters():
        if p.grad is not None:
            grads.append((name, p.grad))
        elif p.requires_grad:
            none.append(name)
    result["facts"].update(train_objective=float(objective.detach()), params_without_grad=len(none),
                           params_without_grad_examples=none[:10],
                           losses=len(outputs) if isinstance(outputs, dict) else None)
    result["sections"]["train"] = detach_all(flatten(outputs, "out", scalars=True) + [("objective", objective)])
    result["sections"]["train_grads"] = detach_all(grads)
    model.zero_grad(set_to_none=True)


def _infer(fn, made, spec, result) -> None:
    import torch

    from .tensors import detach_all, flatten

    model = made["model"]
    inputs = _fresh(made, spec, "inputs")
    model.eval()
    _seed(int(spec["seed"]) + 2)
    cap = _Capture(model, spec.get("capture") or [])
    result["facts"]["captured_from"] = cap.names
    try:
        with torch.no_grad():
            outputs = model(*_args(inputs))
    finally:
        cap.close()
    result["sections"]["infer"] = detach_all(flatten(outputs, "out", scalars=True))
    result["frames"] = [f.detach().to("cpu", copy=True) for f in _float_leaves(inputs) if f.dim() >= 2]
    result["facts"].update(captured_tensors=len(cap.items), captured_calls=dict(cap.calls),
                           captured_silent=[n for n in cap.names if not cap.calls.get(n)],
                           captured_one_level_down=dict(cap.fallback_used))
    result["sections"]["captured"] = detach_all(cap.items)


def _grad_pass(fn, made, spec, result, root) -> None:
    """Input gradients of the training objective and of the objective on the inference
    outputs (the saliency); what cannot be taken is reported, never a failure."""
    import torch

    from .tensors import detach_all

    model = made["model"]
    if "train" in made["paths"]:
        try:
            inputs = _fresh(made, spec, "train_inputs")
            leaves = [t.requires_grad_(True) for t in _float_leaves(inputs)]
            model.train()
            model.zero_grad(set_to_none=True)
            _seed(int(spec["seed"]) + 1)
            made["objective"](model(*_args(inputs))).backward()
            got = [(f"d_objective/d_input[{i}]", t.grad) for i, t in enumerate(leaves) if t.grad is not None]
            if not got:
                result["facts"]["train_input_grad_note"] = "no gradient reaches the floating-point inputs"
            result["sections"]["train_input_grads"] = detach_all(got)
        except Exception as exc:
            e = _error(exc, root)
            result["facts"]["train_input_grad_note"] = f"not available: {e['text']} at {e['where']}"
        finally:
            model.zero_grad(set_to_none=True)
    if "infer" not in made["paths"]:
        return
    try:
        inputs = _fresh(made, spec, "inputs")
        leaves = [t.requires_grad_(True) for t in _float_leaves(inputs)]
        model.eval()
        _seed(int(spec["seed"]) + 2)
        with torch.enable_grad():
            objective = made["objective"](model(*_args(inputs)))
        if not leaves or not objective.requires_grad:
            result["facts"]["saliency"] = "not available: the inference objective does not depend on the inputs"
            return
        grads = torch.autograd.grad(objective, leaves, allow_unused=True)
        result["facts"]["saliency_objective"] = float(objective.detach())
        result["sections"]["saliency"] = detach_all(
            [(f"d_objective/d_input[{i}]", g if g is not None else torch.zeros_like(t))
             for i, (t, g) in enumerate(zip(leaves, grads))])
    except Exception as exc:
        e = _error(exc, root)
        result["facts"]["saliency"] = f"not available: {e['text']} at {e['where']}"


def run_all(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The runs of ``spec['runs']`` (each overriding the shared keys) one after the other."""
    shared = {k: v for k, v in spec.items() if k != "runs"}
    results = []
    for one in spec.get("runs") or [{}]:
        merged = dict(shared, **one)
        try:
            results.append(run(merged))
        except Exception as exc:  # a harness bug: still leave a result that says so
            result = {"spec": merged, "sections": {}, "errors": {"process": _error(exc, merged["root"])},
                      "facts": {}, "model": {}, "mismatches": {}, "seconds": {}}
            results.append(_finish(result, merged, time.perf_counter()))
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m flake8_device.harness.entry SPEC.json", file=sys.stderr)
        return 2
    import warnings

    warnings.simplefilter("ignore")
    with open(args[0], encoding="utf-8") as fh:
        run_all(json.load(fh))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
