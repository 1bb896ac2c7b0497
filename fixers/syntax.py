"""The one syntax check every fixer write goes through."""

from __future__ import annotations

import ast


def parses(text: str, filename: str = "<fixed>") -> bool:
    """Whether ``text`` is valid Python for this interpreter (no code is run)."""
    try:
        compile(text, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True
