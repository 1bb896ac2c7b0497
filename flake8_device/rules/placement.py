"""DEV001 (hardcoded device in ``.to``) and DEV002 (``.cuda()``)."""

from __future__ import annotations

import ast

from ..diagnostics import Fix, ReplaceNode, Span
from .common import NO_PROPERTY, device_fix, receiver_roots, with_property
from .registry import rule

DEV001 = rule(
    "DEV001",
    summary="hardcoded accelerator device in a placement call",
    finds="hardcoded accelerator in `.to(...)`",
    fix_safety="safe when the device source is certain",
    message='hardcoded accelerator device "cuda" in .to(); follow the device of the model or the data',
)
DEV002 = rule(
    "DEV002",
    summary=".cuda() call",
    finds="`.cuda()` / `.cuda(n)`",
    fix_safety="safe for `.cuda()`, unsafe for `.cuda(n)`",
    message=".cuda() hardcodes the CUDA device; use .to(<device>) with the device of the model or the data",
)


@DEV001.on("call.method", attrs={"to"}, skip_guarded=True)
def check_to(ck, node: ast.Call) -> None:
    candidates = list(node.args[:1])
    candidates += [k.value for k in node.keywords if k.arg == "device"]
    for arg in candidates:
        ck.claim(arg)
        lit = ck.device_literal(arg)
        if lit is None:
            continue
        dev_type, plain = lit
        exclude = receiver_roots(node.func.value)
        fix, why, choice = device_fix(ck, node, arg, plain, exclude, allow_new_device=True)
        ck.report("DEV001", arg, to_message(ck, arg), fix, why, choice=choice)


def to_message(ck, arg) -> str:
    return f"hardcoded accelerator device {ck.src(arg)} in .to(); follow the device of the model or the data"


def cuda_index(node: ast.Call):
    """The device index a ``.cuda(...)`` call names, or None for ``.cuda()``."""
    index = node.args[0] if node.args else None
    for k in node.keywords:
        if k.arg == "device":
            index = k.value
    return index


@DEV002.on("call.method", attrs={"cuda"}, skip_guarded=True)
def check_cuda(ck, node: ast.Call) -> None:
    recv = node.func.value
    # torch.cuda is a module, not a call target; ``x.cuda`` must be a call on a value.
    if ck.resolve(node.func) is not None and ck.resolve(node.func).startswith("torch."):
        return
    index = cuda_index(node)
    choice = ck.infer_device(node, exclude_roots=receiver_roots(recv), allow_new_device=True)
    if not choice:
        fix, why = None, "no device source in scope (no self.device, device variable or tensor to follow)"
    else:
        rest = [ck.src(k) for k in node.keywords if k.arg not in ("device",)]
        args = ", ".join([choice.expr, *rest])
        ops = [ReplaceNode(Span.of(node), f"{ck.src(recv)}.to({args})")]
        desc = f"use .to({choice.expr}): {choice.reason}"
        ops = with_property(ck, choice, ops)
        if ops is None:
            fix, why = None, NO_PROPERTY
        else:
            fix, why = Fix(tuple(ops), choice.safe and index is None, desc), None
    ck.report("DEV002", node, cuda_message(ck, index), fix, why, choice=choice)


def cuda_message(ck, index) -> str:
    where = f".cuda({ck.src(index)})" if index is not None else ".cuda()"
    return f"{where} hardcodes the CUDA device; use .to(<device>) with the device of the model or the data"
