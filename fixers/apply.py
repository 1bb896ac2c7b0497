"""Apply the fixes carried by diagnostics to a source text.

The source is parsed with ast-grep-py (tree-sitter).  Every fix operation
names a syntax node by its ``ast`` span; the node with exactly that range is
looked up in the concrete syntax tree and edited with ``node.replace``.  The
edits are committed together with ``commit_edits``, so all text outside the
edited nodes is kept byte for byte.  A span that names no node (the text
changed since it was linted) is never guessed at: the diagnostic is skipped.
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_left, bisect_right, insort
from collections import Counter
import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ast_grep_py import SgNode, SgRoot

from flake8_device.diagnostics import (
    Diagnostic,
    Fix,
    FixOp,
    InsertBefore,
    ReplaceNode,
    RewriteCall,
    Span,
)
from flake8_device.lines import for_tokenize

from . import postconditions
from .positions import LineIndex
from .syntax import REASON_FSTRING, REASON_FSTRING_DEBUG, fstring_field_text

BOM = "\ufeff"
_ANY_NEWLINE = re.compile(r"\r\n|\r|\n")

# Reasons a diagnostic is left unfixed.  The CLI summary prints them.
REASON_NO_FIX = "no fix available"
REASON_UNSAFE = "unsafe fix; use --unsafe-fixes"
REASON_OVERLAP = "overlaps another fix"
REASON_NOT_PARSE = "fix would not parse"
REASON_STALE = "stale span: no syntax node at {span}"
REASON_COMMENT = "fix would remove a comment"
# Post-conditions: a fix that fails one is dropped, never counted as fixed.
REASON_DROPPED = "dropped: "
REASON_UNDEFINED = REASON_DROPPED + "would leave undefined name {name!r} (F821)"
REASON_NEEDS_OTHER = REASON_DROPPED + "needs module {name!r}, but this module binds {name!r} to something else"
REASON_GROUP = REASON_DROPPED + "its group {group!r} is not applied whole ({why})"


@dataclass
class FixResult:
    """Outcome of :func:`apply_fixes`.

    ``text`` is the new source (the original when nothing was applied);
    ``applied`` lists the diagnostics whose fixes are in ``text``;
    ``skipped`` pairs every other diagnostic with the reason it was left.
    """

    text: str
    applied: List[Diagnostic] = field(default_factory=list)
    skipped: List[Tuple[Diagnostic, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied)


class _Skip(Exception):
    """Raised while planning one diagnostic's edits: leave it unfixed."""


# An edit in character offsets of the (BOM-less) text: replace [start, end)
# with ``text``.  ``start == end`` is an insertion.
@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str
    # edits at one position are spliced in this order (a new import goes first)
    order: int = 1


def _span_text(span: Span) -> str:
    return f"{span.line}:{span.col}-{span.end_line}:{span.end_col}"


def _overlap(a: _Edit, b: _Edit) -> bool:
    if a.start == a.end and b.start == b.end:
        return a.start == b.start
    if a.start == a.end:
        return b.start < a.start < b.end
    if b.start == b.end:
        return a.start < b.start < a.end
    return a.start < b.end and b.start < a.end


class _Planner:
    """Turns fix operations into character edits on one parsed text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.index = LineIndex(text)
        # tree-sitter ends a comment at "\n" only: a comment before a lone "\r" would run on to
        # the next "\n" (in a file of lone "\r" line ends, to the end of the file) and hide the
        # code after it.  The tree is built on the text with each lone "\r" read as "\n": every
        # offset and node stays where it is, and edits are cut from the text itself.
        self.root: SgNode = SgRoot(for_tokenize(text) if "\r" in text else text, "python").root()
        self._comments: Optional[List[Tuple[int, int, str]]] = None
        self._comment_starts: List[int] = []
        # node -> (starts, ends, children): a node's children are listed once,
        # then searched by bisection (a module of 20,000 statements would
        # otherwise be listed again for every fix)
        self._kids: Dict[SgNode, Tuple[List[int], List[int], List[SgNode]]] = {}

    def children(self, node: SgNode) -> Tuple[List[int], List[int], List[SgNode]]:
        got = self._kids.get(node)
        if got is None:
            kids = node.children()
            ranges = [k.range() for k in kids]
            got = ([r.start.index for r in ranges], [r.end.index for r in ranges], kids)
            self._kids[node] = got
        return got

    # --- node lookup ---------------------------------------------------
    def offsets(self, span: Span) -> Tuple[int, int]:
        start = self.index.offset(span.line, span.col)
        end = self.index.offset(span.end_line, span.end_col)
        if start is None or end is None or end < start:
            raise _Skip(REASON_STALE.format(span=_span_text(span)))
        return start, end

    def find(self, span: Span, kind: Optional[str] = None) -> SgNode:
        """The node whose range is exactly ``span`` (of ``kind`` when given)."""
        start, end = self.offsets(span)
        node: Optional[SgNode] = self.root
        while node is not None:
            rng = node.range()
            if rng.start.index == start and rng.end.index == end:
                if kind is None or node.kind() == kind:
                    return node
            nxt = None
            starts, ends, kids = self.children(node)
            # siblings do not overlap: those that can contain the span form a run
            for i in range(bisect_left(ends, end), bisect_right(starts, start)):
                if starts[i] <= start and end <= ends[i]:
                    # prefer a child that is not a zero-width token
                    if starts[i] == ends[i] and start != end:
                        continue
                    nxt = kids[i]
                    break
            node = nxt
        raise _Skip(REASON_STALE.format(span=_span_text(span)))

    def comments_in(self, start: int, end: int) -> List[str]:
        if self._comments is None:
            self._comments = sorted(
                (n.range().start.index, n.range().end.index, n.text().rstrip("\r\n"))
                for n in self.root.find_all(kind="comment")
            )
            self._comment_starts = [c[0] for c in self._comments]
        out = []
        for i in range(bisect_left(self._comment_starts, start), len(self._comments)):
            s, e, t = self._comments[i]
            if s > end:
                break
            if e <= end:
                out.append(t)
        return out

    def keeps_comments(self, edit: _Edit) -> None:
        if edit.start == edit.end:
            return
        for comment in self.comments_in(edit.start, edit.end):
            if comment not in edit.text:
                raise _Skip(REASON_COMMENT)

    def newlines(self, text: str, offset: int) -> str:
        """``text`` with its line terminators in the style used at ``offset``."""
        if "\n" not in text and "\r" not in text:
            return text
        return _ANY_NEWLINE.sub(lambda _m: self._newline_at(offset), text)

    # --- operations ------------------------------------------------------
    def plan(self, op: FixOp) -> List[_Edit]:
        if isinstance(op, ReplaceNode):
            node = self.find(op.span)
            rng = node.range()
            edit = _Edit(rng.start.index, rng.end.index, self.newlines(op.text, rng.start.index))
            self.keeps_comments(edit)
            return [self._fstring_safe(node, edit)]
        if isinstance(op, InsertBefore):
            return [self._insert_before(op)]
        if isinstance(op, RewriteCall):
            return [self._fstring_safe(self.find(op.span), self._rewrite_call(op))]
        raise _Skip(f"unknown fix operation {type(op).__name__}")

    def _fstring_safe(self, node: SgNode, edit: _Edit) -> _Edit:
        """``edit`` with its text valid inside the f-string fields around ``node`` on every
        supported Python (see :func:`fixers.syntax.fstring_field_text`)."""
        delimiters: List[str] = []
        for anc in node.ancestors():
            if anc.kind() != "interpolation":
                continue
            if any(c.kind() == "=" for c in anc.children()):
                raise _Skip(REASON_FSTRING_DEBUG)
            string = anc.parent()
            start = string.field("string_start") if string is not None else None
            if start is None:
                start = next((c for c in string.children() if c.kind() == "string_start"), None) if string else None
            if start is None:
                raise _Skip(REASON_FSTRING)
            delimiters.append(start.text().lstrip("rRfFbBuU"))
        if not delimiters:
            return edit
        text = fstring_field_text(edit.text, delimiters[::-1])
        if text is None:
            raise _Skip(REASON_FSTRING)
        return dataclasses.replace(edit, text=text)

    def _insert_before(self, op: InsertBefore) -> _Edit:
        try:
            node = self.find(op.span)
        except _Skip:
            # Compound statements: tree-sitter may end the node elsewhere
            # (trailing comments); the start is what matters here.
            start, _ = self.offsets(op.span)
            node = self._statement_starting_at(start)
        parent = node.parent()
        while parent is not None and parent.kind() == "decorated_definition":
            # ``ast`` starts a decorated def at ``def``; insert above the
            # decorators instead of between them and the definition.
            node = parent
            parent = node.parent()
        pos = self.index.line_start(self._line_of(node.range().start.index))
        return _Edit(pos, pos, self.newlines(op.text, pos))

    def _statement_starting_at(self, start: int) -> SgNode:
        node: Optional[SgNode] = self.root
        while node is not None:
            nxt = None
            starts, ends, kids = self.children(node)
            for i in range(bisect_left(ends, start), bisect_right(starts, start)):
                if starts[i] == start or starts[i] <= start < ends[i]:
                    nxt = kids[i]
                    break
            if nxt is None:
                break
            if nxt.range().start.index == start and (
                nxt.kind().endswith("statement") or nxt.kind().endswith("definition")
            ):
                return nxt
            node = nxt
        raise _Skip(f"stale span: no statement starts at {start}")

    def _rewrite_call(self, op: RewriteCall) -> _Edit:
        outer = self.find(op.span)
        call = self.find(op.call, kind="call")
        orng, crng = outer.range(), call.range()
        if not (orng.start.index <= crng.start.index and crng.end.index <= orng.end.index):
            raise _Skip("call is not inside the rewritten expression")
        func = call.field("function")
        args = call.field("arguments")
        if func is None or args is None:
            raise _Skip(REASON_STALE.format(span=_span_text(op.call)))
        if args.kind() != "argument_list":
            raise _Skip("call takes a bare generator expression; cannot add arguments")
        text = self.text
        if op.func is not None:
            prefix = op.func + text[func.range().end.index : args.range().start.index]
        else:
            prefix = text[crng.start.index : args.range().start.index]
        new_call = prefix + self._edit_arguments(args, op)
        edit = _Edit(orng.start.index, orng.end.index, new_call)
        self.keeps_comments(edit)
        return edit

    # --- argument list editing ------------------------------------------
    def _line_of(self, offset: int) -> int:
        return self.index.line_of(offset)

    def _first_on_line(self, offset: int) -> bool:
        line = self._line_of(offset)
        return self.text[self.index.line_start(line) : offset].strip(" \t\f") == ""

    def _indent_of(self, offset: int) -> str:
        line = self._line_of(offset)
        start = self.index.line_start(line)
        prefix = self.text[start:offset]
        return prefix[: len(prefix) - len(prefix.lstrip(" \t\f"))]

    def _newline_at(self, offset: int) -> str:
        line = self._line_of(offset)
        ending = self.index.line_ending(line)
        if ending:
            return ending
        # last line of the file: use the first terminator found anywhere
        for cand in ("\r\n", "\n", "\r"):
            if cand in self.text:
                return cand
        return "\n"

    def _line_end(self, offset: int) -> int:
        """Offset of the line terminator (or end of text) at/after ``offset``."""
        line = self._line_of(offset)
        return self.index.line_start(line) + len(self.index.line_text(line))

    def _edit_arguments(self, args: SgNode, op: RewriteCall) -> str:
        """The argument list ``args`` with ``op``'s keywords set, added and dropped."""
        arng = args.range()
        children = args.children()
        items, close = _argument_items(children)
        edits, append = self._keyword_edits(items, op)
        dropped = [i for i, (n, _) in enumerate(items) if _kw_name(n) in op.drop_keywords]
        kept = [i for i in range(len(items)) if i not in dropped]
        tail, tail_keeps_comma, dropped = self._dropped_tail(items, kept, dropped, bool(append), edits)
        edits.extend(self._dropped_edits(items, dropped, arng.end.index))
        if append:
            if not kept:
                if tail is not None:
                    edits.append(_Edit(tail[0], tail[1], ", ".join(append)))
                    tail = None
                else:
                    # no argument is left: the keywords go right after "("
                    # (the whole list collapses to them when nothing else is left)
                    pos = children[0].range().end.index
                    edits.append(_Edit(pos, pos, ", ".join(append)))
            else:
                tail = self._append_after(items[kept[-1]], close, append, tail, tail_keeps_comma, edits)
        if tail is not None:
            edits.append(_Edit(tail[0], tail[1], ""))
        return self._spliced_arguments(arng.start.index, arng.end.index, edits, bool(kept), append)

    def _keyword_edits(self, items: List[Tuple[SgNode, Optional[SgNode]]], op: RewriteCall):
        """The edits setting the keywords ``op`` gives that the call has, and the ``name=value``
        texts of those it lacks (to append)."""
        edits: List[_Edit] = []
        append: List[str] = []
        for name, value in op.keywords:
            target = next((n for n, _ in items if _kw_name(n) == name), None)
            if target is not None and name not in op.drop_keywords:
                vnode = target.field("value")
                if vnode is None:
                    raise _Skip(f"keyword argument {name} has no value")
                vr = vnode.range()
                edits.append(_Edit(vr.start.index, vr.end.index, self.newlines(value, vr.start.index)))
            else:
                append.append(f"{name}={value}")
        return edits, append

    def _dropped_tail(self, items, kept: List[int], dropped: List[int], appending: bool,
                      edits: List[_Edit]):
        """``(tail, tail_keeps_comma, dropped)``: the region removed at the end of the list when
        its last arguments go and the last has no trailing comma (None otherwise), whether
        comments keep the comma before it, and the dropped arguments left to remove one by one."""
        tail: Optional[Tuple[int, int]] = None
        tail_keeps_comma = False
        if not (dropped and dropped[-1] == len(items) - 1 and items[-1][1] is None):
            return tail, tail_keeps_comma, dropped
        first_tail = len(items) - 1
        while kept and first_tail - 1 in dropped:
            first_tail -= 1
        t_end = items[-1][0].range().end.index
        d_start = items[first_tail][0].range().start.index
        if not kept:
            tail = (d_start, t_end)
        else:
            k_node, k_comma = items[kept[-1]]
            k_end = k_node.range().end.index
            if not self.comments_in(k_end, d_start):
                tail = (k_end, t_end)
            else:
                # keep the comments after the last kept argument
                assert k_comma is not None
                tail_keeps_comma = True
                tail = (d_start, t_end)
                if not appending:
                    cr = k_comma.range()
                    edits.append(_Edit(cr.start.index, cr.end.index, ""))
                    if self._first_on_line(d_start):
                        line = self._line_of(d_start)
                        prev_end = self.index.line_start(line) - len(self.index.line_ending(line - 1))
                        tail = (prev_end, t_end)
        return tail, tail_keeps_comma, [i for i in dropped if i < first_tail]

    def _dropped_edits(self, items, dropped: List[int], a_end: int) -> List[_Edit]:
        """The removal of each dropped argument with its comma (its whole line when it had one)."""
        text = self.text
        edits = []
        for i in dropped:
            node, comma = items[i]
            assert comma is not None
            start = node.range().start.index
            end = comma.range().end.index
            while end < a_end and text[end] in " \t":
                end += 1
            if text[end] in "\r\n" and self._first_on_line(start):
                # the argument had its own line: remove the line entirely
                start = self.index.line_start(self._line_of(start))
                end += 2 if text.startswith("\r\n", end) else 1
            edits.append(_Edit(start, end, ""))
        return edits

    def _append_after(self, last_item: Tuple[SgNode, Optional[SgNode]], close: SgNode, append: List[str],
                      tail: Optional[Tuple[int, int]], tail_keeps_comma: bool,
                      edits: List[_Edit]) -> Optional[Tuple[int, int]]:
        """Add the ``append`` keywords after the last kept argument, in the list's layout (one per
        line or inline); returns the tail still to remove."""
        joined_inline = ", ".join(append)
        last, comma = last_item
        lr = last.range()
        one_per_line = self._first_on_line(lr.start.index) and self._line_of(
            close.range().start.index
        ) > self._line_of(lr.end.index)
        nl = self._newline_at(lr.end.index)
        indent = self._indent_of(lr.start.index)
        if tail is not None and tail_keeps_comma:
            sep = f",{nl}{indent}" if one_per_line else ", "
            edits.append(_Edit(tail[0], tail[1], sep.join(append)))
            return None
        if tail is not None:
            if one_per_line:
                new = "," + "".join(f"{nl}{indent}{a}," for a in append)[:-1]
            else:
                new = ", " + joined_inline
            edits.append(_Edit(tail[0], tail[1], new))
            return None
        if comma is not None:
            cr = comma.range()
            if self._line_of(close.range().start.index) > self._line_of(cr.end.index):
                pos = self._line_end(cr.end.index)
                edits.append(_Edit(pos, pos, "".join(f"{nl}{indent}{a}," for a in append)))
            else:
                pos = cr.end.index
                edits.append(_Edit(pos, pos, " " + ", ".join(append) + ","))
        elif one_per_line:
            pos = self._line_end(lr.end.index)
            rest = self.text[lr.end.index : pos]
            body = "".join(f",{nl}{indent}{a}" for a in append)
            if rest.strip() == "":
                edits.append(_Edit(lr.end.index, lr.end.index, body))
            else:
                # a comment follows the last argument: keep it there
                edits.append(_Edit(lr.end.index, lr.end.index, ","))
                edits.append(_Edit(pos, pos, body[1:]))
        else:
            edits.append(_Edit(lr.end.index, lr.end.index, ", " + joined_inline))
        return tail

    def _spliced_arguments(self, a_start: int, a_end: int, edits: List[_Edit], kept: bool,
                           append: List[str]) -> str:
        """The argument list's text with ``edits`` (which must not overlap) applied."""
        text = self.text
        edits.sort(key=lambda e: (e.start, e.end))
        for a, b in zip(edits, edits[1:]):
            if _overlap(a, b):
                raise _Skip("conflicting argument edits")
        out = []
        pos = a_start
        for e in edits:
            out.append(text[pos : e.start])
            out.append(e.text)
            pos = e.end
        out.append(text[pos:a_end])
        result = "".join(out)
        if not kept and result[1:-1].strip() in ("", ", ".join(append)):
            result = "(" + ", ".join(append) + ")"
        return result


def _argument_items(children: List[SgNode]) -> Tuple[List[Tuple[SgNode, Optional[SgNode]]], SgNode]:
    """The argument nodes of an argument list, each with the comma that follows it (or None),
    and its closing parenthesis."""
    items: List[Tuple[SgNode, Optional[SgNode]]] = []
    close: Optional[SgNode] = None
    for child in children:
        kind = child.kind()
        if kind == "(" or kind == "comment":
            continue
        if kind == ")":
            close = child
            continue
        if kind == ",":
            if items and items[-1][1] is None:
                items[-1] = (items[-1][0], child)
            continue
        items.append((child, None))
    if close is None:
        raise _Skip("unterminated argument list")
    return items, close


def _kw_name(node: SgNode) -> Optional[str]:
    if node.kind() != "keyword_argument":
        return None
    name = node.field("name")
    return name.text() if name is not None else None


def _compiles(text: str, filename: str) -> bool:
    try:
        compile(text, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _splice(text: str, edits: Iterable[_Edit]) -> str:
    """``text`` with non-overlapping ``edits`` applied (linear in text and edits)."""
    out: List[str] = []
    pos = 0
    for e in sorted(edits, key=lambda e: (e.start, e.end, e.order)):
        out.append(text[pos : e.start])
        out.append(e.text)
        pos = max(pos, e.end)
    out.append(text[pos:])
    return "".join(out)


class _Taken:
    """Edits already chosen, sorted, for overlap queries in O(log n)."""

    def __init__(self) -> None:
        self.keys: List[Tuple[int, int]] = []

    def overlaps(self, e: _Edit) -> bool:
        keys = self.keys
        i = bisect_left(keys, (e.start, e.end))
        # chosen edits do not overlap each other: only neighbours can overlap e
        j = i - 1
        while j >= 0 and keys[j][1] >= e.start:
            if _overlap(_Edit(keys[j][0], keys[j][1], ""), e):
                return True
            j -= 1
        j = i
        while j < len(keys) and keys[j][0] <= e.end:
            if _overlap(_Edit(keys[j][0], keys[j][1], ""), e):
                return True
            j += 1
        return False

    def add(self, e: _Edit) -> None:
        insort(self.keys, (e.start, e.end))


@dataclass
class _Candidate:
    diag: Diagnostic
    edits: List[_Edit]
    imports: Tuple[str, ...] = ()  # needed modules the fixer must import
    twins: List[Diagnostic] = field(default_factory=list)  # same fix, other diagnostics
    groups: Set[str] = field(default_factory=set)

    @property
    def diags(self) -> List[Diagnostic]:
        return [self.diag, *self.twins]


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _sort_key(d: Diagnostic) -> Tuple[int, int, int, int, str]:
    s = d.span
    return (s.line, s.col, s.end_line, s.end_col, d.code)


def apply_fixes(
    source: str,
    diagnostics: Iterable[Diagnostic],
    unsafe: bool = False,
    filename: str = "<fixed>",
    *,
    check_names: bool = False,
    builtins: Iterable[str] = (),
    blocked_groups: Optional[Mapping[str, str]] = None,
) -> FixResult:
    """Apply the fixes of ``diagnostics`` to ``source``.

    Diagnostics are taken in source order.  A diagnostic is skipped (with the
    reason) when it has no fix, when its fix is unsafe and ``unsafe`` is
    false, when one of its spans names no syntax node, when it would remove a
    comment, or when it overlaps a fix already taken; its fix is applied
    whole or not at all.  Two diagnostics carrying the same operations share
    one fix: it is applied once and both count as applied.

    Post-conditions, each dropping the fixes that fail it (the others still
    apply):

    * the result parses (fixes that break it on their own are dropped; when
      only the combination fails, none is applied);
    * every module a fix needs (``Fix.needs``) is bound: a missing
      ``import torch`` is added once, after the docstring and the imports
      that open the module; a fix whose needed name the module binds to
      something else is dropped;
    * fixes sharing a ``Fix.group`` are applied all or none (a group listed
      in ``blocked_groups``, name -> why, has a member that was filtered out
      before this call, e.g. by ``# noqa``);
    * with ``check_names``: the result has no undefined name (pyflakes) that
      the original did not have; ``builtins`` are names to treat as defined.

    A leading BOM is kept.  :class:`FilePlan` does the same work and keeps
    what it learnt about the text for the next question about it.
    """
    plan = FilePlan(source, filename, check_names=check_names, builtins=builtins,
                    blocked_groups=blocked_groups)
    return plan.apply(diagnostics, unsafe=unsafe)


# A fix's planned operations: its edits, sorted, or why it cannot be planned.
_Planned = Union[List[_Edit], str]
REASON_OPS_OVERLAP = "fix operations overlap each other"


class FilePlan:
    """The fixes of one text, planned once.

    Everything :func:`apply_fixes` learns about the text is kept: the syntax
    tree the edits are planned on, each fix's edits (or why it has none), the
    module's bindings of the names fixes need, whether the text compiles and
    its undefined names.  :meth:`apply` applies a set of fixes with every
    post-condition (what ``--fix`` does); :meth:`alone` applies one fix as if
    it were the only one (with the rest of its group), which is what the JSON
    and SARIF outputs show as that fix's edits; :meth:`refusal` says, from the
    planning alone, why a fix can never apply here.

    ``tree``, when given, is the ``ast`` tree of ``source`` (the linter's:
    it saves parsing the text again); it is used only for a text without BOM.
    """

    def __init__(self, source: str, filename: str = "<fixed>", *, check_names: bool = False,
                 builtins: Iterable[str] = (), blocked_groups: Optional[Mapping[str, str]] = None,
                 tree: Optional[ast.Module] = None) -> None:
        self.source = source
        self.bom = BOM if source.startswith(BOM) else ""
        self.text = source[len(self.bom):]
        self.filename = filename
        self.check_names = check_names
        self.builtins = tuple(builtins)
        self.blocked = dict(blocked_groups or {})
        self._tree: Optional[ast.Module] = tree if not self.bom else None
        self._tree_known = self._tree is not None
        self._planner: Optional[_Planner] = None
        self._planned: Dict[Tuple, _Planned] = {}
        self._bindings: Dict[str, str] = {}
        self._strict: Optional[bool] = None
        self._before: Optional[Counter] = None
        self._before_known = False
        self._alone: Dict[Tuple, FixResult] = {}
        self._batched: Optional[Sequence[Diagnostic]] = None

    # --- what is learnt once -------------------------------------------------
    @property
    def planner(self) -> _Planner:
        if self._planner is None:
            self._planner = _Planner(self.text)
        return self._planner

    @property
    def tree(self) -> Optional[ast.Module]:
        if not self._tree_known:
            self._tree = postconditions.parse(self.text, self.filename)
            self._tree_known = True
        return self._tree

    def ok(self, new_text: str) -> bool:
        """Whether a fixed text passes the syntax check: it compiles when the original does, else
        it parses."""
        return self.checked(new_text)[0]

    def checked(self, new_text: str) -> Tuple[bool, Optional[ast.Module]]:
        """:meth:`ok`, and the tree of ``new_text`` when it parses (parsed once, then compiled;
        the original is compiled only when the fixed text does not compile)."""
        tree = postconditions.parse(new_text, self.filename)
        if tree is None:
            return False, None
        try:
            compile(tree, self.filename, "exec", dont_inherit=True)
            return True, tree
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            if self._strict is None:
                self._strict = _compiles(self.text, self.filename)
            return not self._strict, tree

    def before(self) -> Optional[Counter]:
        """How often each name is undefined in the original text (None: it cannot be analysed)."""
        if not self._before_known:
            found = postconditions.undefined_names(self.text, self.filename, self.builtins,
                                                   tree=self._tree if self._tree_known else None)
            self._before = Counter(n for n, _, _ in found) if found is not None else None
            self._before_known = True
        return self._before

    def planned(self, fix: Fix) -> _Planned:
        """``fix``'s edits on this text, sorted, or why it has none."""
        got = self._planned.get(fix.ops)
        if got is None:
            try:
                edits: List[_Edit] = []
                for op in fix.ops:
                    edits.extend(self.planner.plan(op))
            except _Skip as skip:
                got = str(skip)
            else:
                got = sorted(edits, key=lambda e: (e.start, e.end))
                if any(_overlap(a, b) for a, b in zip(got, got[1:])):
                    got = REASON_OPS_OVERLAP
            self._planned[fix.ops] = got
        return got

    def binding(self, name: str) -> str:
        """How the module binds a name a fix needs (see :func:`postconditions.module_binding`)."""
        if name not in self._bindings:
            tree = self.tree
            self._bindings[name] = (
                postconditions.module_binding(tree, name, postconditions.word_lines(self.text, name))
                if tree is not None else postconditions.OTHER
            )
        return self._bindings[name]

    def refusal(self, diag: Diagnostic) -> Optional[str]:
        """Why ``diag``'s fix can never be applied to this text, known from planning it (a span
        naming no node, a comment it would remove, f-string text older Pythons cannot read, a needed
        module bound to something else), or None.  The checks of the fixed text (it parses, no
        undefined name) and conflicts with other fixes are not looked at."""
        fix = diag.fix
        if fix is None:
            return None
        planned = self.planned(fix)
        if isinstance(planned, str):
            return planned
        other = next((n for n in fix.needs if self.binding(n) == postconditions.OTHER), None)
        return REASON_NEEDS_OTHER.format(name=other) if other is not None else None

    # --- applying --------------------------------------------------------------
    def apply(self, diagnostics: Iterable[Diagnostic], unsafe: bool = False) -> FixResult:
        """The fixes of ``diagnostics`` applied together, as :func:`apply_fixes` does."""
        result = FixResult(text=self.source)
        failed: Dict[str, str] = {}  # groups with a member that cannot be applied -> why
        cands = self._candidates(sorted(diagnostics, key=_sort_key), unsafe, result, failed)
        if not cands:
            return result
        chosen, overlapped, dropped, new_text = self._choose(cands, failed)
        for k, why in dropped.items():
            result.skipped.extend((d, why) for d in cands[k].diags)
        for k in overlapped:
            result.skipped.extend((d, REASON_OVERLAP) for d in cands[k].diags)
        result.applied = [d for k in chosen for d in cands[k].diags]
        result.applied.sort(key=_sort_key)
        result.text = self.bom + new_text if chosen else self.source
        result.skipped.sort(key=lambda p: _sort_key(p[0]))
        return result

    def alone(self, diag: Diagnostic, others: Sequence[Diagnostic] = ()) -> FixResult:
        """``diag``'s fix applied as if it were the only one, unsafe or not, with the members of
        its group among ``others`` (a group applies whole or not at all); the result is shared
        by every diagnostic that asks the same question.

        The first question about a list ``others`` answers it for every fix in it: the fixes
        that change no binding are checked together (see :meth:`_together`), the others one by
        one, as :meth:`apply` would check each alone."""
        if self._batched is not others:
            self._batched = others
            self._together([self._unit(d, others) for d in others if d.fix is not None])
        key, members = self._unit(diag, others)
        got = self._alone.get(key)
        if got is None:
            got = self._alone[key] = self.apply(members, unsafe=True)
        if len(members) == 1:
            # an equal fix of another diagnostic may have asked first: the same answer, for this one
            if got.applied:
                return FixResult(got.text, [diag], [])
            return FixResult(got.text, [], [(diag, got.skipped[0][1])] if got.skipped else [])
        return got

    @staticmethod
    def _unit(diag: Diagnostic, others: Sequence[Diagnostic]) -> Tuple[Tuple, List[Diagnostic]]:
        """What :meth:`alone` applies for ``diag``: its key and the diagnostics applied."""
        fix = diag.fix
        if fix is not None and fix.group is not None:
            members = [diag] + [d for d in others if d is not diag and d.fix is not None and d.fix.group == fix.group]
            return ("group", fix.group, frozenset(id(d) for d in members)), members
        return ("fix", fix), [diag]

    def _together(self, units: List[Tuple[Tuple, List[Diagnostic]]]) -> None:
        """Answer :meth:`alone` for many fixes with one check of the text holding them all.

        Taken together are the fixes (or whole groups) whose every edit replaces an expression
        with an expression, neither holding anything that binds a name (no ``:=``, lambda or
        comprehension), and that overlap no other such fix.  Such edits leave every binding of
        the module where it was, so a name inside one fix's new text is defined in the text
        holding all of them exactly when it is in the text holding that fix alone (unless it is
        a module another fix imports: that fix is checked alone).  A fix is answered here
        when the text holding them all passes the syntax check and none of the names in its new
        text is undefined; every other fix is left to :meth:`apply`, alone.
        """
        chosen: List[Tuple[Tuple, List[Diagnostic], List[_Edit], Tuple[str, ...], Set[str]]] = []
        taken = _Taken()
        seen: Set[Tuple] = set()
        for key, members in units:
            if key in self._alone or key in seen:
                continue
            seen.add(key)
            unit = self._neutral(members)
            if unit is None or any(taken.overlaps(e) for e in unit[0]):
                continue
            for e in unit[0]:
                taken.add(e)
            chosen.append((key, members, *unit))
        if not chosen:
            return
        modules = sorted({m for *_, imports, _names in chosen for m in imports})
        import_edit = _import_edit(self.planner, self.tree, modules, self.filename) if modules else None
        edits = [e for _k, _m, es, _i, _n in chosen for e in es]
        new_text = _splice(self.text, edits + ([import_edit] if import_edit is not None else []))
        tree = postconditions.parse(new_text, self.filename)
        groups = [es for _k, _m, es, _i, _n in chosen]
        lines = _new_lines(new_text, groups, import_edit)
        if tree is None or not self._tree_compiles(tree, new_text, lines):
            return
        undefined: Set[int] = set()  # the chosen fixes with an undefined name in their new text
        if self.check_names:
            _prune(tree, new_text, lines)
            found = postconditions.undefined_names(new_text, self.filename, self.builtins, tree=tree)
            if found is None:
                return
            undefined = _owners(new_text, found, groups, import_edit)
        for i, (key, members, es, imports, names) in enumerate(chosen):
            if i in undefined or names & (set(modules) - set(imports)):
                continue
            own_import = _import_edit(self.planner, self.tree, list(imports), self.filename) if imports else None
            text = _splice(self.text, es + ([own_import] if own_import is not None else []))
            self._alone[key] = FixResult(self.bom + text, sorted(members, key=_sort_key), [])

    def _tree_compiles(self, tree: ast.Module, new_text: str, lines: List[Tuple[int, int]]) -> bool:
        """:meth:`ok` for a text whose edits (on ``lines``) change no binding, already parsed to
        ``tree``.  Only the top-level statements holding an edit are compiled (with the
        ``__future__`` imports): what the compiler checks beyond the parse (``await``,
        ``yield``, ``return`` where they may not be, a keyword given twice, ...) lies within
        one statement, unless the module declares ``global`` names (then all of it is)."""
        body = tree.body
        if postconditions.word_lines(new_text, "global") != []:
            part = tree
        else:
            future = [s for s in body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
            held = [s for s in body if s not in future and any(
                a <= (getattr(s, "end_lineno", None) or s.lineno)
                and b >= min([s.lineno] + [d.lineno for d in getattr(s, "decorator_list", ())])
                for a, b in lines)]
            part = ast.Module(body=future + held, type_ignores=[])
        try:
            compile(part, self.filename, "exec", dont_inherit=True)
            return True
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            if self._strict is None:
                self._strict = _compiles(self.text, self.filename)
            return not self._strict

    def _neutral(self, members: List[Diagnostic]):
        """``(edits, imports, names used)`` of a fix (or group) whose edits change no binding and
        need no other check than the text's, or None."""
        edits: List[_Edit] = []
        imports: Set[str] = set()
        names: Set[str] = set()
        by_ops: Set[Tuple] = set()
        for d in members:
            fix = d.fix
            if fix is None or (fix.group is not None and fix.group in self.blocked):
                return None
            if fix.ops in by_ops:
                continue
            by_ops.add(fix.ops)
            planned = self.planned(fix)
            if isinstance(planned, str):
                return None
            for name in fix.needs:
                binding = self.binding(name)
                if binding == postconditions.OTHER:
                    return None
                if binding == postconditions.ABSENT:
                    imports.add(name)
            for e in planned:
                used = _expression_names(self.text[e.start:e.end], e.text)
                if used is None:
                    return None
                names |= used
            edits.extend(planned)
        edits.sort(key=lambda e: (e.start, e.end))
        if any(_overlap(a, b) for a, b in zip(edits, edits[1:])):
            return None
        return edits, tuple(sorted(imports)), names

    def _candidates(self, diags: List[Diagnostic], unsafe: bool, result: FixResult,
                    failed: Dict[str, str]) -> List[_Candidate]:
        """The fixes that can be planned, one per set of operations (twins join it); the others go
        to ``result.skipped`` and fail their group."""
        cands: List[_Candidate] = []
        by_ops: Dict[Tuple, _Candidate] = {}

        def fail_group(fix: Fix, why: str) -> None:
            if fix.group is not None:
                failed.setdefault(fix.group, why)

        for diag in diags:
            fix = diag.fix
            if fix is None:
                result.skipped.append((diag, diag.no_fix_reason or REASON_NO_FIX))
                continue
            if fix.group is not None and fix.group in self.blocked:
                result.skipped.append((diag, REASON_GROUP.format(group=fix.group, why=self.blocked[fix.group])))
                continue
            if not fix.safe and not unsafe:
                result.skipped.append((diag, REASON_UNSAFE))
                fail_group(fix, f"{diag.code} on line {diag.span.line} is an unsafe fix")
                continue
            twin = by_ops.get(fix.ops)
            if twin is not None:
                twin.twins.append(diag)
                if fix.group is not None:
                    twin.groups.add(fix.group)
                continue
            planned = self.planned(fix)
            if isinstance(planned, str):
                result.skipped.append((diag, planned))
                if planned == REASON_OPS_OVERLAP:
                    fail_group(fix, f"{diag.code} on line {diag.span.line}: its operations overlap")
                else:
                    fail_group(fix, f"{diag.code} on line {diag.span.line}: {planned}")
                continue
            imports: List[str] = []
            other: Optional[str] = None
            for name in fix.needs:
                binding = self.binding(name)
                if binding == postconditions.OTHER:
                    other = name
                    break
                if binding == postconditions.ABSENT:
                    imports.append(name)
            if other is not None:
                result.skipped.append((diag, REASON_NEEDS_OTHER.format(name=other)))
                fail_group(fix, f"{diag.code} on line {diag.span.line} needs {other!r}")
                continue
            cand = _Candidate(diag, planned, tuple(imports), groups={fix.group} if fix.group else set())
            cands.append(cand)
            by_ops[fix.ops] = cand
        return cands

    def _choose(self, cands: List[_Candidate], failed: Dict[str, str]):
        """The candidates to apply: ``(chosen, overlapped, dropped, new text)``; repeated until the
        post-conditions hold (a failure drops candidates and fails their groups)."""
        text, filename = self.text, self.filename
        dropped: Dict[int, str] = {}
        while True:
            chosen, overlapped = _pick(cands, failed, dropped)
            regroup = False
            for k in overlapped:
                for g in cands[k].groups:
                    if g not in failed:
                        d = cands[k].diag
                        failed[g] = f"{d.code} on line {d.span.line} overlaps another fix"
                        regroup = True
            if regroup:
                continue
            modules = sorted({m for k in chosen for m in cands[k].imports})
            import_edit = _import_edit(self.planner, self.tree, modules, filename) if modules else None

            def edits_of(ks: Iterable[int]) -> List[_Edit]:
                out = [e for k in ks for e in cands[k].edits]
                if import_edit is not None:
                    out.append(import_edit)
                return out

            new_text = _splice(text, edits_of(chosen))
            passed, new_tree = self.checked(new_text)
            if not passed:
                alone_bad = [k for k in chosen if not self.ok(_splice(text, edits_of([k])))]
                for k in alone_bad or chosen:
                    _drop(cands, k, REASON_NOT_PARSE, "would not parse", dropped, failed)
                continue
            # the names are compared only when the fixed text has undefined names at all (the
            # original's are counted then, once per plan)
            after = postconditions.undefined_names(new_text, filename, self.builtins, tree=new_tree) \
                if self.check_names and chosen else None
            before = self.before() if after else None
            if before is not None and after:
                culprits = _undefined_culprits(text, new_text, after, before, cands, chosen,
                                               edits_of(chosen), import_edit)
                if culprits:
                    for k, name in culprits.items():
                        _drop(cands, k, REASON_UNDEFINED.format(name=name), f"would leave {name!r} undefined",
                              dropped, failed)
                    continue
            return chosen, overlapped, dropped, new_text


def _pick(cands: List[_Candidate], failed: Mapping[str, str], dropped: Dict[int, str]):
    """One pass over the candidates in order: those that fit (``chosen``) and those that overlap a
    fix taken before them; a candidate of a failed group is dropped."""
    taken = _Taken()
    chosen: List[int] = []
    overlapped: List[int] = []
    for k, cand in enumerate(cands):
        if k in dropped:
            continue
        bad = next((g for g in sorted(cand.groups) if g in failed), None)
        if bad is not None:
            dropped[k] = REASON_GROUP.format(group=bad, why=failed[bad])
            continue
        if any(taken.overlaps(e) for e in cand.edits):
            overlapped.append(k)
            continue
        for e in cand.edits:
            taken.add(e)
        chosen.append(k)
    return chosen, overlapped


def _drop(cands: List[_Candidate], k: int, why: str, group_why: str, dropped: Dict[int, str],
          failed: Dict[str, str]) -> None:
    """Drop candidate ``k`` for ``why``; its groups fail (``group_why`` says how)."""
    dropped[k] = why
    d = cands[k].diag
    for g in cands[k].groups:
        failed.setdefault(g, f"{d.code} on line {d.span.line} {group_why}")


_BINDS = (ast.NamedExpr, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _expression_names(old: str, new: str) -> Optional[Set[str]]:
    """The names ``new`` uses when an edit replaces the expression ``old`` with the expression
    ``new`` and neither binds a name; None for any other edit (an insertion, a statement, a
    deletion, something that binds)."""
    names: Set[str] = set()
    for part in (old, new):
        if not part.strip():
            return None
        try:
            tree = ast.parse("(" + part + "\n)", mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        for node in ast.walk(tree):
            if isinstance(node, _BINDS):
                return None
            if isinstance(node, ast.Name) and part is new:
                names.add(node.id)
    return names


def _new_spans(groups: List[List[_Edit]], import_edit: Optional[_Edit]) -> List[Tuple[int, int, int]]:
    """``(start, end, group)`` in the fixed text of each edit of ``groups``, in order."""
    owner = {id(e): i for i, es in enumerate(groups) for e in es}
    spans: List[Tuple[int, int, int]] = []
    delta = 0
    every = [e for es in groups for e in es] + ([import_edit] if import_edit is not None else [])
    for e in sorted(every, key=lambda e: (e.start, e.end, e.order)):
        start = e.start + delta
        if e is not import_edit:
            spans.append((start, start + len(e.text), owner[id(e)]))
        delta += len(e.text) - (e.end - e.start)
    return spans


def _new_lines(new_text: str, groups: List[List[_Edit]], import_edit: Optional[_Edit]) -> List[Tuple[int, int]]:
    """The line ranges (first, last) the edits of ``groups`` occupy in the fixed text."""
    index = LineIndex(new_text)
    return [(index.line_of(s), index.line_of(max(s, e - 1))) for s, e, _ in _new_spans(groups, import_edit)]


_MATCH_CASE = getattr(ast, "match_case", ())  # Python 3.10+


def _prune(tree: ast.Module, text: str, lines: List[Tuple[int, int]]) -> None:
    """Empty the body of every function of ``tree`` (the tree of ``text``) that holds none of
    ``lines`` and declares no ``global`` or ``nonlocal`` name: its names are its own, so what
    pyflakes says about names elsewhere does not change, and it is not walked."""
    declared = postconditions.word_lines(text, "global", "nonlocal")
    lines = list(lines) + [(n, n) for n in declared or ()]
    starts = sorted(a for a, _ in lines)
    ends = sorted(b for _, b in lines)

    def holds(first: int, last: int) -> bool:
        # some range [a, b] with a <= last and b >= first: those ending before ``first`` all
        # start before ``last``, so they are fewer than those starting by ``last`` exactly then
        return bisect_right(starts, last) > bisect_left(ends, first)

    stack: List[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                last = getattr(child, "end_lineno", None) or child.lineno
                if not holds(child.lineno, last) and (declared is not None or not any(
                        isinstance(n, (ast.Global, ast.Nonlocal)) for n in ast.walk(child))):
                    child.body = [ast.Pass(lineno=child.lineno, col_offset=child.col_offset)]
                    continue
            if isinstance(child, (ast.stmt, ast.excepthandler, _MATCH_CASE)):
                stack.append(child)


def _owners(new_text: str, found: List[Tuple[str, int, int]], groups: List[List[_Edit]],
            import_edit: Optional[_Edit]) -> Set[int]:
    """Which of ``groups`` (edits spliced into ``new_text``) hold one of the undefined names
    ``found`` in their new text."""
    spans = _new_spans(groups, import_edit)
    starts = [s for s, _, _ in spans]
    index = LineIndex(new_text)
    out: Set[int] = set()
    for _name, line, col in found:
        off = index.offset(line, col)
        if off is None:  # a position the text does not have: every fix is suspect
            return set(range(len(groups)))
        i = bisect_right(starts, off) - 1
        if i >= 0 and spans[i][0] <= off < spans[i][1]:
            out.add(spans[i][2])
    return out


def _import_edit(planner: _Planner, tree: Optional[ast.Module], modules: Sequence[str],
                 filename: str) -> Optional[_Edit]:
    """One edit adding ``import M`` for every needed module, where imports go."""
    if tree is None:
        tree = postconditions.parse(planner.text, filename)
        if tree is None:
            return None
    line, after = postconditions.import_insertion(tree)
    text, index = planner.text, planner.index
    body = "".join(f"import {m}\n" for m in modules)
    if line == 0:  # empty module
        pos = len(text)
        prefix = "" if not text or text.endswith(("\n", "\r")) else "\n"
        return _Edit(pos, pos, planner.newlines(prefix + body, pos), order=0)
    if after:
        if line < index.line_count:
            pos = index.line_start(line + 1)
            return _Edit(pos, pos, planner.newlines(body, pos - 1), order=0)
        pos = len(text)  # the opening block is the whole file
        return _Edit(pos, pos, planner.newlines("\n" + body.rstrip("\n"), max(pos - 1, 0)), order=0)
    pos = index.line_start(line)
    return _Edit(pos, pos, planner.newlines(body, pos), order=0)


def _undefined_culprits(text: str, new_text: str, after: List[Tuple[str, int, int]], before: Counter,
                        cands: List[_Candidate], chosen: List[int], edits: List[_Edit],
                        import_edit: Optional[_Edit]) -> Dict[int, str]:
    """Chosen candidates that add an undefined name (``after`` lists those of ``new_text``) ->
    that name ({} when none)."""
    counts = Counter(n for n, _, _ in after)
    new_names = {n for n, c in counts.items() if c > before.get(n, 0)}
    if not new_names:
        return {}
    # where each edit lies in the new text
    owner: Dict[int, int] = {id(e): k for k in chosen for e in cands[k].edits}
    spans: List[Tuple[int, int, int]] = []  # (new start, new end, candidate)
    delta = 0
    for e in sorted(edits, key=lambda e: (e.start, e.end, e.order)):
        start = e.start + delta
        if e is not import_edit:
            spans.append((start, start + len(e.text), owner[id(e)]))
        delta += len(e.text) - (e.end - e.start)
    starts = [s for s, _, _ in spans]
    index = LineIndex(new_text)
    culprits: Dict[int, str] = {}
    unplaced: Set[str] = set()
    for name, line, col in after:
        if name not in new_names:
            continue
        off = index.offset(line, col)
        i = bisect_right(starts, off) - 1 if off is not None else -1
        if i >= 0 and spans[i][0] <= off < spans[i][1]:
            culprits.setdefault(spans[i][2], name)
        else:
            unplaced.add(name)
    for name in sorted(unplaced):
        # the name is undefined outside every edit: an edit removed its binding
        guilty = [k for k in chosen if any(
            name in _IDENT.findall(text[e.start:e.end]) or name in _IDENT.findall(e.text)
            for e in cands[k].edits)]
        for k in guilty or chosen:
            culprits.setdefault(k, name)
    return culprits
