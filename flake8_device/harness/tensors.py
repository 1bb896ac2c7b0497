"""Walking model inputs and outputs: move, flatten, compare."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch


def move(obj: Any, device: Any) -> Any:
    """A copy of ``obj`` with every tensor moved to ``device``.

    Dicts, lists and tuples are rebuilt; other objects with a ``to`` method
    (detectron2's ``Instances``, ``BitMasks``...) are moved with it. Anything
    else is returned as it is.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return type(obj)((k, move(v, device)) for k, v in obj.items())
    if isinstance(obj, list):
        return [move(v, device) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(move(v, device) for v in obj)
    to = getattr(obj, "to", None)
    if callable(to) and not isinstance(obj, type):
        try:
            return to(device)
        except TypeError:
            return obj
    return obj


def flatten(obj: Any, prefix: str = "out", scalars: bool = False) -> List[Tuple[str, torch.Tensor]]:
    """Every tensor in ``obj`` with a path naming where it sits, in a stable order.

    With ``scalars``, Python numbers and NumPy arrays count too, as tensors
    (bool, int64, float64, the array's dtype); strings are always skipped.
    """
    items: List[Tuple[str, torch.Tensor]] = []

    def walk(o: Any, path: str) -> None:
        if isinstance(o, torch.Tensor):
            items.append((path, o))
        elif scalars and isinstance(o, bool):
            items.append((path, torch.tensor(o)))
        elif scalars and isinstance(o, (int, float)):
            items.append((path, torch.tensor(o, dtype=torch.float64 if isinstance(o, float) else torch.int64)))
        elif scalars and type(o).__module__ == "numpy" and hasattr(o, "shape"):
            import numpy

            try:
                items.append((path, torch.from_numpy(numpy.array(o))))
            except TypeError:  # object or string arrays (RLE-encoded masks...) are not tensors
                if getattr(o, "dtype", None) == object:
                    for i, v in enumerate(numpy.asarray(o).ravel().tolist()):
                        walk(v, f"{path}[{i}]")
        elif isinstance(o, dict):
            for k in sorted(o, key=str):
                walk(o[k], f"{path}[{k!r}]")
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o):
                walk(v, f"{path}[{i}]")
        elif hasattr(o, "get_fields") and callable(o.get_fields):  # detectron2 Instances
            walk(o.get_fields(), path)
        elif hasattr(o, "tensor") and isinstance(getattr(o, "tensor"), torch.Tensor):  # Boxes, BitMasks
            walk(o.tensor, path + ".tensor")

    walk(obj, prefix)
    return items


def detach_all(items: List[Tuple[str, torch.Tensor]]) -> List[Tuple[str, torch.Tensor]]:
    """Detached CPU copies (plain tensors, no autograd, no device marks)."""
    return [(name, t.detach().to("cpu", copy=True)) for name, t in items]


def all_finite(items: List[Tuple[str, torch.Tensor]]) -> Tuple[bool, List[str]]:
    bad = [n for n, t in items if (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all()]
    return not bad, bad


@dataclass
class Comparison:
    """Element-wise comparison of two flattened results."""

    compared: int = 0
    elements: int = 0
    equal: int = 0
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    problems: List[str] = field(default_factory=list)  # one line per tensor that differs

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> Dict[str, Any]:
        return {
            "compared_tensors": self.compared,
            "compared_elements": self.elements,
            "equal_tensors": self.equal,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "problems": self.problems[:20],
            "problem_count": len(self.problems),
        }


def compare(a: List[Tuple[str, torch.Tensor]], b: List[Tuple[str, torch.Tensor]], *,
            rtol: Optional[float] = None, atol: Optional[float] = None) -> Comparison:
    """Compare two flattened results tensor by tensor.

    Without tolerances every tensor must be ``torch.equal``; with them,
    floating-point tensors must satisfy ``|a - b| <= atol + rtol * |b|`` and
    the others (integers, booleans) must still be equal.
    """
    cmp = Comparison()
    names_a = [n for n, _ in a]
    names_b = [n for n, _ in b]
    if names_a != names_b:
        only_a = sorted(set(names_a) - set(names_b))
        only_b = sorted(set(names_b) - set(names_a))
        cmp.problems.append(
            f"different structure: {len(a)} vs {len(b)} tensors"
            + (f"; only in first: {only_a[:5]}" if only_a else "")
            + (f"; only in second: {only_b[:5]}" if only_b else "")
        )
    db = dict(b)
    for name, ta in a:
        tb = db.get(name)
        if tb is None:
            continue
        cmp.compared += 1
        ta = ta.detach().cpu()
        tb = tb.detach().cpu()
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            cmp.problems.append(f"{name}: shape/dtype {tuple(ta.shape)} {ta.dtype} vs {tuple(tb.shape)} {tb.dtype}")
            continue
        cmp.elements += ta.numel()
        if torch.equal(ta, tb):
            cmp.equal += 1
            continue
        if ta.is_floating_point():
            diff = (ta.double() - tb.double()).abs()
            nan_same = torch.isnan(ta) & torch.isnan(tb)
            diff = torch.where(nan_same, torch.zeros_like(diff), diff)
            mad = float(diff.max()) if diff.numel() else 0.0
            rel = diff / tb.double().abs().clamp_min(1e-30)
            mrd = float(rel.max()) if rel.numel() else 0.0
            if math.isnan(mad):
                mad = float("inf")
            cmp.max_abs_diff = max(cmp.max_abs_diff, mad)
            cmp.max_rel_diff = max(cmp.max_rel_diff, mrd)
            if rtol is not None and atol is not None:
                within = diff <= atol + rtol * tb.double().abs()
                if bool(within.all()):
                    continue
                n_out = int((~within).sum())
                cmp.problems.append(f"{name}: {n_out}/{ta.numel()} elements outside tolerance, max abs diff {mad:.3g}")
            else:
                cmp.problems.append(f"{name}: not bitwise equal, max abs diff {mad:.3g}")
        else:
            n_diff = int((ta != tb).sum())
            cmp.max_abs_diff = max(cmp.max_abs_diff, float((ta.double() - tb.double()).abs().max()))
            cmp.problems.append(f"{name}: {n_diff}/{ta.numel()} {ta.dtype} elements differ")
    return cmp
