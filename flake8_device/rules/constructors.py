"""DEV003: hardcoded accelerator in constructors, ``torch.device("cuda")``, CUDA tensor types."""

from __future__ import annotations

import ast

from ..diagnostics import Fix, ReplaceNode, Span
from ..names import LEGACY_CTORS
from .common import availability_fix, device_fix, receiver_roots, safe_fallback_wins
from .registry import rule

DEV003 = rule(
    "DEV003",
    summary="hardcoded accelerator device in a constructor",
    finds='hardcoded accelerator in a constructor, `torch.device("cuda")`, `torch.cuda.*Tensor`',
    fix_safety="safe",
    message='hardcoded accelerator device "cuda" in a constructor; pass the device of the model or the data',
)


def _fallback_fix(ck, literal: ast.AST, dev_type: str, instead_of=None):
    """Keep the accelerator where it exists, fall back to the CPU elsewhere.

    ``instead_of`` is the unsafe fix this one replaces (a device in scope without evidence).
    """
    because = "no device source in scope"
    if instead_of is not None:
        because = f"no device in scope with evidence (the candidate: {instead_of.description})"
    return availability_fix(ck, literal, dev_type,
                            f"no device source in scope and no availability check known for {dev_type!r}", because)


def _inferred_or_fallback(ck, node, literal, dev_type, plain, exclude=frozenset()):
    fix, why, choice = device_fix(ck, node, literal, plain, set(exclude))
    if plain and isinstance(literal, ast.Constant):
        # a device without evidence (a bare parameter, a label): the availability test is safe
        fix, why = safe_fallback_wins(fix, why, lambda: _fallback_fix(ck, literal, dev_type, instead_of=fix))
    return fix, why, choice


@DEV003.on("call.keywords")
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
        if lit is None and isinstance(k.value, ast.IfExp):
            continue  # ``device="cuda" if rank == 0 else "cpu"``: one accelerator branch is DEV004's
        ck.claim(k.value)
        if lit is None or ck.guarded:
            continue
        dev_type, plain = lit
        target = k.value
        if isinstance(target, ast.Call):  # device=torch.device("cuda")
            inner = target.args[0] if target.args else None
            fix, why, choice = device_fix(ck, node, target, plain, set())
            if fix is None and plain and isinstance(inner, ast.Constant):
                fix, why = _fallback_fix(ck, inner, dev_type)
        else:
            fix, why, choice = _inferred_or_fallback(ck, node, target, dev_type, plain)
        ck.report("DEV003", target, f"hardcoded accelerator device {ck.src(target)} in a constructor; "
                                    "pass the device of the model or the data", fix, why, choice=choice)


@DEV003.on("call.torch", qual=("torch.device",), skip_guarded=True)
def check_torch_device(ck, node: ast.Call, qual: str) -> None:
    """An unguarded ``torch.device("cuda")`` anywhere else."""
    lit = ck.device_literal(node)
    if lit is None:
        return
    dev_type, plain = lit
    fix, why, choice = device_fix(ck, node, node, plain, set())
    inner = node.args[0] if node.args else None
    if fix is None and plain and isinstance(inner, ast.Constant):
        fix, why = _fallback_fix(ck, inner, dev_type)
    ck.report("DEV003", node, f"{ck.src(node)} hardcodes the accelerator; derive the device from the "
                              "model or the data, or check availability", fix, why, choice=choice)


@DEV003.on("call.torch", qual=("torch.cuda.",), skip_guarded=True)
def check_cuda_typed(ck, node: ast.Call, qual: str) -> None:
    """``torch.cuda.FloatTensor(...)``: a CUDA-only typed constructor."""
    from .factories import _legacy_target

    name = qual.rsplit(".", 1)[1]
    if name not in LEGACY_CTORS or not qual.endswith("Tensor") or qual.startswith("torch.cuda.amp."):
        return
    dtype = LEGACY_CTORS[name]
    target = _legacy_target(ck, node, name)
    choice = ck.infer_device(node, allow_new_device=True)
    if isinstance(target, str):
        fix, why = None, target
    elif not choice:
        fix, why = None, "no device source in scope (no self.device, device variable or tensor to follow)"
    else:
        op = target.op(node, node, (("dtype", dtype), ("device", choice.expr)))
        note = f"; {target.note}" if target.note else ""
        fix, why = Fix((op,), target.safe and choice.safe and choice.add_property_to is None,
                       f"use {target.func}(..., dtype={dtype}, device={choice.expr}): {choice.reason}{note}"), None
    ck.report("DEV003", node, f"{qual}() only exists on CUDA; use torch.tensor(..., dtype={dtype}, "
                              "device=...)", fix, why, choice=choice)


@DEV003.on("call.method", attrs={"type"}, skip_guarded=True)
def check_type_call(ck, node: ast.Call) -> None:
    """``x.type(torch.cuda.FloatTensor)`` or ``x.type("torch.cuda.FloatTensor")``."""
    if len(node.args) != 1:
        return
    arg = node.args[0]
    if isinstance(arg, ast.IfExp):  # ``x.type(torch.cuda.HalfTensor if half else torch.cuda.FloatTensor)``
        check_cuda_type_expr(ck, arg)
        return
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        qual = arg.value
    else:
        qual = ck.resolve(arg)
    if not qual or not qual.startswith("torch.cuda.") or qual.rsplit(".", 1)[1] not in LEGACY_CTORS:
        return
    ck.claim(arg)
    dtype = LEGACY_CTORS[qual.rsplit(".", 1)[1]]
    recv = node.func.value
    choice = ck.infer_device(node, exclude_roots=receiver_roots(recv), allow_add_property=False)
    if not choice:
        fix, why = None, "no device source in scope (no self.device, device variable or tensor to follow)"
    else:
        text = f"{ck.src(recv)}.to(device={choice.expr}, dtype={dtype})"
        fix, why = Fix((ReplaceNode(Span.of(node), text),), choice.safe,
                       f"use .to(device={choice.expr}, dtype={dtype}): {choice.reason}"), None
    ck.report("DEV003", node, f".type({ck.src(arg)}) converts to a CUDA-only type; use "
                              f".to(device=..., dtype={dtype})", fix, why, choice=choice)


@DEV003.on("assign", skip_guarded=True)
def check_cuda_type_value(ck, node) -> None:
    """``t = torch.cuda.HalfTensor if half else torch.cuda.FloatTensor``: a CUDA-only type used as a value.

    Converting with it later (``x.type(t)``, ``t(data)``) raises where CUDA is missing; comparisons and
    ``isinstance`` checks do not, and are not reported.
    """
    value = node.value
    if value.__class__ not in (ast.Attribute, ast.IfExp, ast.Tuple, ast.List):
        return
    check_cuda_type_expr(ck, value)


def check_cuda_type_expr(ck, expr: ast.AST) -> None:
    """Report each ``torch.cuda.<Type>Tensor`` that ``expr`` evaluates to (through conditionals, tuples)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.IfExp):
            pol = ck.guard_polarity(e.test)  # a branch taken only with an accelerator is guarded
            if pol <= 0:
                stack.append(e.body)
            if pol >= 0:
                stack.append(e.orelse)
            continue
        if isinstance(e, (ast.Tuple, ast.List)):
            stack.extend(e.elts)
            continue
        if not (isinstance(e, ast.Attribute) and e.attr in LEGACY_CTORS) or ck.claimed(e):
            continue
        qual = ck.resolve(e) or ""
        if not qual.startswith("torch.cuda."):
            continue
        ck.claim(e)
        torch = ck.torch_name() or "torch"
        text = f"({ck.src(e)} if {torch}.cuda.is_available() else {torch}.{e.attr})"
        fix = Fix((ReplaceNode(Span.of(e), text),), True,
                  f"the CUDA type where CUDA is available, else the CPU type {torch}.{e.attr}")
        ck.report("DEV003", e, f"{ck.src(e)} is a CUDA-only tensor type; converting with it fails where CUDA "
                               f"is missing: choose {torch}.{e.attr} there", fix, None)
