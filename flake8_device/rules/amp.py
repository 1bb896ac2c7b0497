"""DEV005 (CUDA-only autocast/AMP) and DEV006 (``torch.load`` without ``map_location``)."""

from __future__ import annotations

import ast

from ..diagnostics import Fix, ReplaceNode, RewriteCall, Span
from .common import has_star, kw

_AMP_NAMES = ("autocast", "GradScaler", "custom_fwd", "custom_bwd")


def _device_type_expr(ck, node) -> tuple:
    """A device-type expression for autocast/GradScaler: (expr, reason, safe)."""
    choice = ck.infer_device(node, allow_add_property=False)
    if choice is not None and choice.safe:
        expr = choice.expr
        if expr.endswith(".device"):
            return f"{expr}.type", choice.reason, True
        torch = ck.torch_name() or "torch"
        return f"{torch}.device({expr}).type", choice.reason, True
    torch = ck.torch_name()
    if torch is None:
        return None, None, False
    return (f'"cuda" if {torch}.cuda.is_available() else "cpu"',
            "no device source in scope: CUDA when available, else the CPU", True)


def check_import(ck, node) -> None:
    if ck.guarded:
        return
    if isinstance(node, ast.ImportFrom) and node.module == "torch.cuda.amp" and not node.level:
        names = [a.name for a in node.names]
        if all(n in _AMP_NAMES for n in names):
            text = ck.src(node).replace("torch.cuda.amp", "torch.amp", 1)
            fix, why = Fix((ReplaceNode(Span.of(node), text),), True,
                           "import from torch.amp; call sites get a device_type"), None
        else:
            fix, why = None, "imports names that torch.amp does not provide"
        ck.report("DEV005", node, "imports from torch.cuda.amp are CUDA-only (and deprecated); "
                                  "import from torch.amp and pass device_type", fix, why)
    elif isinstance(node, ast.Import):
        for a in node.names:
            if a.name == "torch.cuda.amp":
                ck.report("DEV005", node, "torch.cuda.amp is CUDA-only (and deprecated); use torch.amp",
                          None, "rewrite the module's uses by hand")


def check_amp_call(ck, node: ast.Call, qual: str) -> None:
    ck.handled.add(id(node.func))
    if ck.guarded:
        return
    if qual in ("torch.autocast", "torch.amp.autocast"):
        arg = node.args[0] if node.args else None
        k = kw(node, "device_type")
        if k is not None:
            arg = k.value
        lit = ck.device_literal(arg)
        if lit is None:
            return
        ck.handled.add(id(arg))
        expr, reason, safe = _device_type_expr(ck, node)
        fix = Fix((ReplaceNode(Span.of(arg), expr),), safe, f"device type {expr}: {reason}") if expr else None
        ck.report("DEV005", arg, f"autocast device_type {ck.src(arg)} is hardcoded; use the device type of "
                                 "the model or the data", fix, None if fix else "torch is not imported")
        return
    short = qual.rsplit(".", 1)[1]
    if short not in ("autocast", "GradScaler"):
        ck.report("DEV005", node, f"{qual} is CUDA-only; use torch.amp.{short} with device_type",
                  None, "torch.amp equivalent needs a device_type chosen by hand")
        return
    key = "device_type" if short == "autocast" else "device"
    expr, reason, safe = _device_type_expr(ck, node)
    if expr is None or node.args or has_star(node):
        fix, why = None, ("positional arguments change meaning in torch.amp; rewrite by hand"
                          if node.args else "torch is not imported")
    else:
        # A bare name imported from torch.cuda.amp keeps its name: the import is fixed too.
        func = None if isinstance(node.func, ast.Name) else f"{ck.torch_name() or 'torch'}.amp.{short}"
        op = RewriteCall(Span.of(node), Span.of(node), ((key, expr),), func)
        fix, why = Fix((op,), safe, f"torch.amp.{short} with {key}={expr}: {reason}"), None
    ck.report("DEV005", node, f"{qual}() is CUDA-only (and deprecated); use torch.amp.{short}({key}=...)",
              fix, why)


def check_amp_reference(ck, node: ast.Attribute, qual: str) -> None:
    if ck.guarded:
        return
    ck.report("DEV005", node, f"{qual} is CUDA-only (and deprecated); use torch.amp with a device_type",
              None, "a reference (not a call): rewrite by hand")


def check_load(ck, node: ast.Call) -> None:
    if kw(node, "map_location") is not None or has_star(node) or len(node.args) >= 2:
        return
    choice = ck.infer_device(node, allow_add_property=False)
    if choice is not None:
        op = RewriteCall(Span.of(node), Span.of(node), (("map_location", choice.expr),))
        fix = Fix((op,), choice.safe, f"map_location={choice.expr}: {choice.reason}")
    else:
        op = RewriteCall(Span.of(node), Span.of(node), (("map_location", '"cpu"'),))
        fix = Fix((op,), False, 'map_location="cpu": no device in scope; tensors saved on an accelerator '
                                "then load on the CPU instead")
    ck.report("DEV006", node, "torch.load() without map_location restores tensors to the device they were "
                              "saved from, which fails where that device does not exist", fix)
