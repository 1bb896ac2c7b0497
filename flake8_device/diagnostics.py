"""Data model shared by the rule engine, the flake8 plugin, the fixers and the CLI.

Coordinates follow Python's ``ast`` module: ``line``/``end_line`` are 1-based,
``col``/``end_col`` are 0-based UTF-8 *byte* offsets into the line.  A span
always covers exactly one syntax node (an expression or a statement), so a
fixer can find that node again in a concrete syntax tree.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Optional, Tuple, Union


@dataclass(frozen=True, order=True)
class Span:
    line: int
    col: int
    end_line: int
    end_col: int

    @classmethod
    def of(cls, node: ast.AST) -> "Span":
        return cls(node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)

    def contains(self, other: "Span") -> bool:
        return (self.line, self.col) <= (other.line, other.col) and (
            other.end_line,
            other.end_col,
        ) <= (self.end_line, self.end_col)

    def overlaps(self, other: "Span") -> bool:
        return (self.line, self.col) < (other.end_line, other.end_col) and (
            other.line,
            other.col,
        ) < (self.end_line, self.end_col)


# --- fix operations -------------------------------------------------------
# Each operation names a syntax node by its span and says what to do with it.
# The fixers package turns operations into text edits on a concrete syntax
# tree; everything outside the edited nodes is kept byte for byte.


@dataclass(frozen=True)
class ReplaceNode:
    """Replace the node at ``span`` with ``text``."""

    span: Span
    text: str


@dataclass(frozen=True)
class RewriteCall:
    """Replace the node at ``span`` with the call found at ``call``, edited.

    ``call`` lies inside ``span`` (or equals it).  The call keeps its callee
    (or takes ``func`` when given), its positional and keyword arguments and
    their formatting; each ``(name, value)`` in ``keywords`` replaces the value
    of an existing keyword argument of that name, or is appended as a new
    keyword argument.  Names in ``drop_keywords`` are removed.
    Example: span=``torch.ones(n).to(torch.float32).to("cuda")``,
    call=``torch.ones(n)``, keywords=(("dtype", "torch.float32"),
    ("device", "x.device")) gives ``torch.ones(n, dtype=torch.float32,
    device=x.device)``.
    """

    span: Span
    call: Span
    keywords: Tuple[Tuple[str, str], ...] = ()
    func: Optional[str] = None
    drop_keywords: Tuple[str, ...] = ()


@dataclass(frozen=True)
class InsertBefore:
    """Insert ``text`` immediately before the statement at ``span``.

    ``text`` is inserted verbatim at the start of the statement's first line
    (column 0), so it must carry its own indentation and trailing newline.
    """

    span: Span
    text: str


FixOp = Union[ReplaceNode, RewriteCall, InsertBefore]


@dataclass(frozen=True)
class Fix:
    ops: Tuple[FixOp, ...]
    safe: bool
    # Human-readable description, e.g. "use self.device: the enclosing class Meta has `self.device`".
    description: str
    # Fixes of one file that share a group are applied together or not at all
    # (an import rewrite and the call sites that depend on it).  When any member
    # is dropped (noqa, not selected, unsafe, overlap, a failed post-condition),
    # every member is dropped with it.
    group: Optional[str] = None
    # Top-level module names the fix's text refers to (``("torch",)``).  The
    # fixer binds each one the module does not bind yet (``import torch``) in
    # the same edit, or drops the fix.
    needs: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    fix: Optional[Fix] = None
    # When ``fix`` is None: why no fix is offered (shown by the CLI summary).
    no_fix_reason: Optional[str] = None
    extra: Tuple[Tuple[str, str], ...] = field(default=())

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def col(self) -> int:
        return self.span.col

    def flake8_text(self) -> str:
        return f"{self.code} {self.message}"
