"""What a fixed text must satisfy before it is kept, and the names a fix needs.

* :func:`undefined_names` runs pyflakes (installed with flake8) and lists the
  undefined names of a text (pyflakes' F821 and F823), with their positions,
  so that the names a set of fixes *adds* can be found by comparing the
  original with the fixed text;
* :func:`module_binding` says how a module binds a top-level name a fix needs
  (``torch``): by an import of that module, not at all, or as something else;
* :func:`import_insertion` says where a missing ``import torch`` goes: after
  the module docstring, ``from __future__`` imports and the other imports that
  open the module.
"""

from __future__ import annotations

import ast
import re
from typing import Iterable, List, Optional, Tuple

_LINE_END = re.compile(r"\r\n|\r|\n")  # the line ends Python reads

# A binding of a needed name, as :func:`module_binding` reports it.
BOUND = "bound"  # ``import torch`` (or ``import torch.nn``) binds it at module level
ABSENT = "absent"  # nothing binds it at module level: the fixer adds the import
OTHER = "other"  # something else binds that name: a fix that needs the module is dropped


def parse(text: str, filename: str = "<fixed>") -> Optional[ast.Module]:
    try:
        return compile(text, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def undefined_names(
    text: str, filename: str = "<fixed>", builtins: Iterable[str] = (), tree: Optional[ast.AST] = None
) -> Optional[List[Tuple[str, int, int]]]:
    """``(name, line, byte column)`` of every undefined name in ``text``, or None.

    None means the text could not be analysed (it does not parse, or nests
    too deeply for pyflakes); callers then cannot compare.
    """
    from pyflakes import checker, messages

    if tree is None:
        tree = parse(text, filename)
        if tree is None:
            return None
    try:
        found = checker.Checker(tree, filename=filename, builtins=set(builtins)).messages
    except (RecursionError, MemoryError):
        return None
    return [
        (m.message_args[0], m.lineno, m.col)
        for m in found
        if isinstance(m, (messages.UndefinedName, messages.UndefinedLocal))
    ]


def _imports_module(alias: ast.alias, name: str) -> Optional[bool]:
    """For ``import X [as Y]``: True if it binds ``name`` to module ``name``,
    False if it binds ``name`` to something else, None if it does not bind it."""
    bound = alias.asname or alias.name.split(".")[0]
    if bound != name:
        return None
    return alias.asname is None or alias.name == name


def word_lines(text: str, *names: str) -> Optional[List[int]]:
    """The lines (1-based, sorted) on which one of ``names`` occurs as a word, for
    :func:`module_binding`; None when the text is not ASCII (an identifier may
    then be spelled in another, NFKC-equivalent way)."""
    if not text.isascii():
        return None
    from bisect import bisect_right

    starts = [0] + [m.end() for m in _LINE_END.finditer(text)]
    word = re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9_])")
    return sorted({bisect_right(starts, m.start()) for m in word.finditer(text)})


def _mentions(stmt: ast.stmt, lines: List[int]) -> bool:
    """Whether one of ``lines`` lies within ``stmt`` (its decorators included)."""
    from bisect import bisect_left

    first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", ())])
    last = getattr(stmt, "end_lineno", None) or stmt.lineno
    i = bisect_left(lines, first)
    return i < len(lines) and lines[i] <= last


def module_binding(tree: ast.Module, name: str, lines: Optional[List[int]] = None) -> str:
    """How the module binds ``name``: :data:`BOUND`, :data:`ABSENT` or :data:`OTHER`.

    Any binding of ``name`` anywhere in the module other than an import of the
    module of that name (an assignment, a parameter, ``from x import name``,
    ``import numpy as name``...) makes it :data:`OTHER`: the fix's text would
    not mean the module there, so it is dropped rather than guessed at.

    ``lines`` (from :func:`word_lines`) lets the walk skip every statement in
    which the name does not occur: the answer is the same, found sooner.
    """
    top_level = False
    stack: List[Tuple[ast.AST, bool]] = [(tree, True)]
    while stack:
        node, at_module = stack.pop()
        if lines is not None and isinstance(node, ast.stmt) and not _mentions(node, lines):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                ok = _imports_module(alias, name)
                if ok is False:
                    return OTHER
                if ok and at_module:
                    top_level = True
        elif isinstance(node, ast.ImportFrom):
            if any((a.asname or a.name) == name for a in node.names):
                return OTHER
        elif isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load) and node.id == name:
                return OTHER
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                return OTHER
        elif isinstance(node, ast.arg):
            if node.arg == name:
                return OTHER
        elif isinstance(node, ast.ExceptHandler):
            if node.name == name:
                return OTHER
        elif type(node).__name__ in ("MatchAs", "MatchStar"):
            if getattr(node, "name", None) == name:
                return OTHER
        elif type(node).__name__ == "MatchMapping":
            if getattr(node, "rest", None) == name:
                return OTHER
        nested = at_module and not isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        )
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            # ``if TYPE_CHECKING: import torch`` binds nothing when the code runs.
            stack.extend((child, False) for child in node.body)
            stack.extend((child, nested) for child in node.orelse)
            continue
        for child in ast.iter_child_nodes(node):
            stack.append((child, nested))
    return BOUND if top_level else ABSENT


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``: true only for type checkers."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def import_insertion(tree: ast.Module) -> Tuple[int, bool]:
    """Where a new top-level import goes: ``(line, after)``.

    ``after`` true: on a new line after 1-based ``line`` (the last statement of
    the docstring/imports that open the module); false: at the start of
    ``line`` (before the first statement, after leading comments), or at the
    end of an empty module when ``line`` is 0.
    """
    body = tree.body
    last: Optional[ast.stmt] = None
    i = 0
    if body and _is_docstring(body[0]):
        last, i = body[0], 1
    while i < len(body) and isinstance(body[i], (ast.Import, ast.ImportFrom)):
        last, i = body[i], i + 1
    if last is not None:
        return last.end_lineno or last.lineno, True
    if not body:
        return 0, False
    first = body[0]
    decorators = getattr(first, "decorator_list", None) or []
    return min([first.lineno] + [d.lineno for d in decorators]), False
