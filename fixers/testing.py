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
