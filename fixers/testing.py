"""Helpers to build diagnostics by hand (tests, experiments): spans from ``ast`` nodes."""

from __future__ import annotations

import ast
from typing import Callable, Optional

from flake8_device.diagnostics import Diagnostic, Fix, Span


def node_span(source: str, pred: Callable[[ast.AST, str], bool]) -> Span:
    """Span of the first node (in walk order) for which ``pred(node, text)``."""
    tree = ast.parse(source.lstrip("\ufeff"))
    text = source.lstrip("\ufeff")
    for node in ast.walk(tree):
        if hasattr(node, "lineno") and hasattr(node, "end_lineno"):
            seg = ast.get_source_segment(text, node)
            if seg is not None and pred(node, seg):
                return Span.of(node)
    raise AssertionError("no such node")


def span_of(source: str, segment: str, kind: Optional[type] = None) -> Span:
    """Span of the outermost node whose source text is exactly ``segment``."""
    return node_span(
        source, lambda n, s: s == segment and (kind is None or isinstance(n, kind))
    )


def diag(*ops, safe: bool = True, code: str = "DEV001", span: Optional[Span] = None) -> Diagnostic:
    first = span or ops[0].span
    return Diagnostic(code, "test", first, Fix(tuple(ops), safe, "test fix"))


def toy_linter(source: str, filename: str = "<string>", options=None):
    """A tiny stand-in for the rule engine, with the same call signature.

    * every string literal ``"cuda"`` is DEV001 with a safe fix to ``dev``
      (or to ``options.device_expr`` when set);
    * every call ``unsafe_call(...)`` is DEV103 with an unsafe fix to
      ``safe_call(...)``;
    * every name ``nofix`` is DEV003 without a fix.
    Raises SyntaxError like the engine.
    """
    from flake8_device.diagnostics import Diagnostic, Fix, ReplaceNode

    tree = ast.parse(source, filename)
    replacement = getattr(options, "device_expr", None) or "dev"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == "cuda":
            span = Span.of(node)
            out.append(Diagnostic("DEV001", 'hardcoded device "cuda"', span,
                                  Fix((ReplaceNode(span, replacement),), True, f"use {replacement}")))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "unsafe_call":
            span = Span.of(node.func)
            out.append(Diagnostic("DEV103", "needs an unsafe fix", span,
                                  Fix((ReplaceNode(span, "safe_call"),), False, "rename")))
        elif isinstance(node, ast.Name) and node.id == "nofix":
            out.append(Diagnostic("DEV003", "cannot be fixed", Span.of(node), None,
                                  no_fix_reason="device cannot be inferred"))
    return out


# Names the toy linter's fixes write without defining them; the fixer's
# undefined-name post-condition treats them as defined (the toy snippets in
# tests are not real modules).
toy_linter.assumed_names = ("dev", "safe_call", "self")
