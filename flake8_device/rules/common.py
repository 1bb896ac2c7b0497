"""Helpers shared by the rule modules."""

from __future__ import annotations

import ast
from typing import Optional, Set

from ..diagnostics import Fix, ReplaceNode, Span
from ..names import DEVICE_KEYWORDS


def is_device_like_name(name: str) -> bool:
    """Parameter and keyword names that carry a device: ``to_store``, ``map_location``, ``*_device``..."""
    low = name.lower()
    return low in DEVICE_KEYWORDS or "device" in low or low.endswith("_store") or low.endswith("_location")


def names_in(node: ast.AST) -> Set[str]:
    """Root names read by an expression (``mask[:, a].sigmoid()`` -> {"mask", "a"})."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def receiver_roots(node: ast.AST) -> Set[str]:
    """The names whose own device a receiver expression already has.

    ``self.device`` is excluded only when the receiver is ``self`` itself:
    ``self.buf.to("cuda")`` should follow the module, ``self.to("cuda")`` cannot.
    """
    roots = names_in(node)
    if not (isinstance(node, ast.Name) and node.id == "self"):
        roots.discard("self")
    return roots


def device_type_expr(expr: str) -> str:
    """``self.device`` -> ``self.device.type``: a string, like the literal it replaces.

    A device variable is kept as it is: it already holds what the code passes around.
    """
    return f"{expr}.type" if expr.endswith(".device") else expr


def device_fix(ck, node: ast.AST, literal: ast.AST, plain: bool, exclude: Set[str],
               as_string: bool = False, allow_new_device: bool = False) -> tuple:
    """A fix that replaces the hardcoded ``literal`` by an inferred device expression.

    With ``as_string`` the replacement is the device's type, a string like the
    literal it replaces: code that compares the value with ``"cpu"`` or
    ``"cuda"`` keeps working (``torch.device("cpu") == "cpu"`` is False).
    With ``allow_new_device`` a module without any device in scope gets one
    (an unsafe fix; see :func:`flake8_device.inference.new_module_device`).
    Returns ``(fix, no_fix_reason, choice)``: ``choice`` is what inference decided, for ``ck.report``.
    """
    choice = ck.infer_device(node, exclude_roots=exclude, allow_new_device=allow_new_device)
    if not choice:
        return None, "no device source in scope (no self.device, device variable or tensor to follow)", choice
    # ``self.device`` set to a string is one already: no ``.type``.
    string = getattr(choice.evidence, "name", None) == "DEVICE_STRING"
    expr = device_type_expr(choice.expr) if as_string and not string else choice.expr
    ops = [ReplaceNode(Span.of(literal), expr)]
    safe = choice.safe and plain
    desc = f"use {expr}: {choice.reason}"
    if expr != choice.expr:
        desc += " (its type, a string like the literal)"
    if not plain:
        desc += "; the literal names a specific accelerator index, so following another device is unsafe"
    ops = with_property(ck, choice, ops)
    if ops is None:
        return None, NO_PROPERTY, choice
    return Fix(tuple(ops), safe, desc), None, choice


def availability_fix(ck, literal: ast.AST, dev_type: str, no_fix_reason: str, because: Optional[str] = None):
    """``(fix, no_fix_reason)``: the safe fix keeping ``literal``'s accelerator where it is available and
    falling back to the CPU elsewhere; ``because`` (why no device was followed) opens its description."""
    expr = ck.availability_expr(literal, dev_type)
    if expr is None:
        return None, no_fix_reason
    if ".accelerator." in expr:  # --torch-version 2.6 or later
        desc = f"use the current accelerator's type (torch.accelerator: {dev_type} on a {dev_type} machine), " \
               "else the CPU"
    else:
        desc = f"fall back to the CPU when no {dev_type} device is available"
    return Fix((ReplaceNode(Span.of(literal), expr),), True, f"{because}: {desc}" if because else desc), None


def safe_fallback_wins(fix, why, fallback):
    """A safe availability fallback wins over an unsafe (or absent) inferred device fix.

    ``fix, why``: the fix following an inferred device; ``fallback()`` builds the availability fix
    ``(fix, no_fix_reason)`` (called only when the inferred fix is absent or unsafe).  Without an
    inferred fix the fallback (or its reason) is the answer; an unsafe inferred fix stays when no safe
    fallback exists.
    """
    if fix is not None and fix.safe:
        return fix, why
    other, other_why = fallback()
    if (other is not None and other.safe) or fix is None:
        return other, other_why
    return fix, why


NO_PROPERTY = "cannot add a device property to this class automatically"


def with_property(ck, choice, ops):
    """``ops`` preceded by the op that adds the device property ``choice`` relies on.

    None when that property cannot be added; ``ops`` unchanged when the choice
    needs no property or another diagnostic of this run already adds it.
    """
    if choice.add_property_to is None:
        return list(ops)
    op = property_op(ck, choice)
    if op is None:
        return None
    return ([op] if op is not False else []) + list(ops)


def property_op(ck, choice):
    """The InsertBefore op adding a device property, False if already added this run, None if impossible."""
    cls = choice.add_property_to
    if ck.property_added(cls):
        return False
    op = ck.property_insertion(cls)
    if op is not None:
        ck.claim_property(cls)
    return op


def kw(node: ast.Call, name: str) -> Optional[ast.keyword]:
    for k in node.keywords:
        if k.arg == name:
            return k
    return None


def has_star(node: ast.Call) -> bool:
    return any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args)
