"""DEV003: hardcoded accelerator in constructors, ``torch.device("cuda")``, CUDA tensor types."""

from __future__ import annotations

import ast

from ..diagnostics import Fix, ReplaceNode, RewriteCall, Span
from ..names import LEGACY_CTORS
from .common import device_fix, receiver_roots


def _fallback_fix(ck, literal: ast.AST, dev_type: str):
    """Keep the accelerator where it exists, fall back to the CPU elsewhere."""
    expr = ck.availability_expr(literal, dev_type)
    if expr is None:
        return None, f"no device source in scope and no availability check known for {dev_type!r}"
    return Fix((ReplaceNode(Span.of(literal), expr),), True,
               f"no device source in scope: fall back to the CPU when no {dev_type} device is available"), None


def _inferred_or_fallback(ck, node, literal, dev_type, plain, exclude=frozenset()):
    fix, why = device_fix(ck, node, literal, plain, set(exclude))
    if fix is None and plain and isinstance(literal, ast.Constant):
        fix, why = _fallback_fix(ck, literal, dev_type)
    return fix, why


def check_device_keyword(ck, node: ast.Call) -> None:
    """``torch.zeros(3, device="cuda")`` and any other call taking ``device=<accelerator>``."""
    if isinstance(node.func, ast.Attribute) and node.func.attr in ("to", "cuda"):
        return
    if ck.resolve(node.func) == "torch.device":
        return
    for k in node.keywords:
        if k.arg != "device":
            continue
        lit = ck.device_literal(k.value)
        ck.handled.add(id(k.value))
        if lit is None or ck.guarded:
            continue
        dev_type, plain = lit
        target = k.value
        if isinstance(target, ast.Call):  # device=torch.device("cuda")
            inner = target.args[0] if target.args else None
            fix, why = device_fix(ck, node, target, plain, set())
            if fix is None and plain and isinstance(inner, ast.Constant):
                fix, why = _fallback_fix(ck, inner, dev_type)
        else:
            fix, why = _inferred_or_fallback(ck, node, target, dev_type, plain)
        ck.report("DEV003", target, f"hardcoded accelerator device {ck.src(target)} in a constructor; "
                                    "pass the device of the model or the data", fix, why)


def check_torch_device(ck, node: ast.Call) -> None:
    """An unguarded ``torch.device("cuda")`` anywhere else."""
    lit = ck.device_literal(node)
    if lit is None or ck.guarded or id(node) in ck.handled:
        return
    dev_type, plain = lit
    fix, why = device_fix(ck, node, node, plain, set())
    inner = node.args[0] if node.args else None
    if fix is None and plain and isinstance(inner, ast.Constant):
        fix, why = _fallback_fix(ck, inner, dev_type)
    ck.report("DEV003", node, f"{ck.src(node)} hardcodes the accelerator; derive the device from the "
                              "model or the data, or check availability", fix, why)


def check_cuda_typed(ck, node: ast.Call, qual: str) -> None:
    """``torch.cuda.FloatTensor(...)``: a CUDA-only typed constructor."""
    from .factories import _legacy_target

    name = qual.rsplit(".", 1)[1]
    if name not in LEGACY_CTORS or ck.guarded:
        return
    dtype = LEGACY_CTORS[name]
    target = _legacy_target(ck, node, name)
    choice = ck.infer_device(node, allow_new_device=True)
    if target is None:
        fix, why = None, "typed constructor with keyword or unusual arguments; rewrite it by hand"
    elif choice is None:
        fix, why = None, "no device source in scope (no self.device, device variable or tensor to follow)"
    else:
        func, data_safe = target
        op = RewriteCall(Span.of(node), Span.of(node), (("dtype", dtype), ("device", choice.expr)), func)
        fix, why = Fix((op,), data_safe and choice.safe and choice.add_property_to is None,
                       f"use {func}(..., dtype={dtype}, device={choice.expr}): {choice.reason}"), None
    ck.report("DEV003", node, f"{qual}() only exists on CUDA; use torch.tensor(..., dtype={dtype}, "
                              "device=...)", fix, why)


def check_type_call(ck, node: ast.Call) -> None:
    """``x.type(torch.cuda.FloatTensor)`` or ``x.type("torch.cuda.FloatTensor")``."""
    if len(node.args) != 1 or ck.guarded:
        return
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        qual = arg.value
    else:
        qual = ck.resolve(arg)
    if not qual or not qual.startswith("torch.cuda.") or qual.rsplit(".", 1)[1] not in LEGACY_CTORS:
        return
    ck.handled.add(id(arg))
    dtype = LEGACY_CTORS[qual.rsplit(".", 1)[1]]
    recv = node.func.value
    choice = ck.infer_device(node, exclude_roots=receiver_roots(recv), allow_add_property=False)
    if choice is None:
        fix, why = None, "no device source in scope (no self.device, device variable or tensor to follow)"
    else:
        text = f"{ck.src(recv)}.to(device={choice.expr}, dtype={dtype})"
        fix, why = Fix((ReplaceNode(Span.of(node), text),), choice.safe,
                       f"use .to(device={choice.expr}, dtype={dtype}): {choice.reason}"), None
    ck.report("DEV003", node, f".type({ck.src(arg)}) converts to a CUDA-only type; use "
                              f".to(device=..., dtype={dtype})", fix, why)
