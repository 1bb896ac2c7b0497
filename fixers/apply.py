"""Apply the fixes carried by diagnostics to a source text.

The source is parsed with ast-grep-py (tree-sitter).  Every fix operation
names a syntax node by its ``ast`` span; the node with exactly that range is
looked up in the concrete syntax tree and edited with ``node.replace``.  The
edits are committed together with ``commit_edits``, so all text outside the
edited nodes is kept byte for byte.  A span that names no node (the text
changed since it was linted) is never guessed at: the diagnostic is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence, Tuple

from ast_grep_py import SgNode, SgRoot

from flake8_device.diagnostics import (
    Diagnostic,
    FixOp,
    InsertBefore,
    ReplaceNode,
    RewriteCall,
    Span,
)

from .positions import LineIndex
from .syntax import parses

BOM = "\ufeff"
_ANY_NEWLINE = re.compile(r"\r\n|\r|\n")

# Reasons a diagnostic is left unfixed.  The CLI summary prints them.
REASON_NO_FIX = "no fix available"
REASON_UNSAFE = "unsafe fix; use --unsafe-fixes"
REASON_OVERLAP = "overlaps another fix"
REASON_NOT_PARSE = "fix would not parse"
REASON_STALE = "stale span: no syntax node at {span}"
REASON_COMMENT = "fix would remove a comment"


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
        self.root: SgNode = SgRoot(text, "python").root()
        self._comments: Optional[List[Tuple[int, int, str]]] = None

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
            for child in node.children():
                crng = child.range()
                if crng.start.index <= start and end <= crng.end.index:
                    # prefer a child that is not a zero-width token
                    if crng.start.index == crng.end.index and start != end:
                        continue
                    nxt = child
                    break
            node = nxt
        raise _Skip(REASON_STALE.format(span=_span_text(span)))

    def comments_in(self, start: int, end: int) -> List[str]:
        if self._comments is None:
            self._comments = [
                (n.range().start.index, n.range().end.index, n.text().rstrip("\r\n"))
                for n in self.root.find_all(kind="comment")
            ]
        return [t for s, e, t in self._comments if start <= s and e <= end]

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
            return [edit]
        if isinstance(op, InsertBefore):
            return [self._insert_before(op)]
        if isinstance(op, RewriteCall):
            return [self._rewrite_call(op)]
        raise _Skip(f"unknown fix operation {type(op).__name__}")

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
        line, _ = self.index.position(node.range().start.index)
        pos = self.index.line_start(line)
        return _Edit(pos, pos, self.newlines(op.text, pos))

    def _statement_starting_at(self, start: int) -> SgNode:
        node: Optional[SgNode] = self.root
        while node is not None:
            nxt = None
            for child in node.children():
                crng = child.range()
                if crng.start.index <= start < max(crng.end.index, start + 1):
                    nxt = child
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
        return self.index.position(offset)[0]

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
        text = self.text
        arng = args.range()
        a_start, a_end = arng.start.index, arng.end.index
        children = args.children()
        # argument nodes and the comma that follows each (or None)
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

        def kw_name(node: SgNode) -> Optional[str]:
            if node.kind() != "keyword_argument":
                return None
            name = node.field("name")
            return name.text() if name is not None else None

        edits: List[_Edit] = []
        append: List[str] = []
        for name, value in op.keywords:
            target = next((n for n, _ in items if kw_name(n) == name), None)
            if target is not None and name not in op.drop_keywords:
                vnode = target.field("value")
                if vnode is None:
                    raise _Skip(f"keyword argument {name} has no value")
                vr = vnode.range()
                edits.append(_Edit(vr.start.index, vr.end.index, self.newlines(value, vr.start.index)))
            else:
                append.append(f"{name}={value}")

        dropped = [i for i, (n, _) in enumerate(items) if kw_name(n) in op.drop_keywords]
        kept = [i for i in range(len(items)) if i not in dropped]
        tail: Optional[Tuple[int, int]] = None  # removed region ending the list
        tail_keeps_comma = False  # comments sit between the kept and the dropped tail
        if dropped and dropped[-1] == len(items) - 1 and items[-1][1] is None:
            # the last argument goes and has no trailing comma
            first_tail = len(items) - 1
            while kept and first_tail - 1 in dropped:
                first_tail -= 1
            last_kept = kept[-1] if kept else None
            t_end = items[-1][0].range().end.index
            d_start = items[first_tail][0].range().start.index
            if last_kept is None:
                tail = (d_start, t_end)
            else:
                k_node, k_comma = items[last_kept]
                k_end = k_node.range().end.index
                if not self.comments_in(k_end, d_start):
                    tail = (k_end, t_end)
                else:
                    # keep the comments after the last kept argument
                    assert k_comma is not None
                    tail_keeps_comma = True
                    tail = (d_start, t_end)
                    if not append:
                        cr = k_comma.range()
                        edits.append(_Edit(cr.start.index, cr.end.index, ""))
                        if self._first_on_line(d_start):
                            line = self._line_of(d_start)
                            prev_end = self.index.line_start(line) - len(
                                self.index.line_ending(line - 1)
                            )
                            tail = (prev_end, t_end)
            dropped = [i for i in dropped if i < first_tail]
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

        if append:
            joined_inline = ", ".join(append)
            if not kept:
                if tail is not None:
                    edits.append(_Edit(tail[0], tail[1], joined_inline))
                    tail = None
                else:
                    # no argument is left: the keywords go right after "("
                    # (the whole list collapses to them when nothing else is left)
                    pos = children[0].range().end.index
                    edits.append(_Edit(pos, pos, joined_inline))
            else:
                last, comma = items[kept[-1]]
                lr = last.range()
                one_per_line = self._first_on_line(lr.start.index) and self._line_of(
                    close.range().start.index
                ) > self._line_of(lr.end.index)
                nl = self._newline_at(lr.end.index)
                indent = self._indent_of(lr.start.index)
                if tail is not None and tail_keeps_comma:
                    sep = f",{nl}{indent}" if one_per_line else ", "
                    edits.append(_Edit(tail[0], tail[1], sep.join(append)))
                    tail = None
                elif tail is not None:
                    if one_per_line:
                        new = "," + "".join(f"{nl}{indent}{a}," for a in append)[:-1]
                    else:
                        new = ", " + joined_inline
                    edits.append(_Edit(tail[0], tail[1], new))
                    tail = None
                elif comma is not None:
                    cr = comma.range()
                    if self._line_of(close.range().start.index) > self._line_of(cr.end.index):
                        pos = self._line_end(cr.end.index)
                        edits.append(_Edit(pos, pos, "".join(f"{nl}{indent}{a}," for a in append)))
                    else:
                        pos = cr.end.index
                        edits.append(_Edit(pos, pos, " " + ", ".join(append) + ","))
                elif one_per_line:
                    pos = self._line_end(lr.end.index)
                    rest = text[lr.end.index : pos]
                    body = "".join(f",{nl}{indent}{a}" for a in append)
                    if rest.strip() == "":
                        edits.append(_Edit(lr.end.index, lr.end.index, body))
                    else:
                        # a comment follows the last argument: keep it there
                        edits.append(_Edit(lr.end.index, lr.end.index, ","))
                        edits.append(_Edit(pos, pos, body[1:]))
                else:
                    edits.append(_Edit(lr.end.index, lr.end.index, ", " + joined_inline))
        if tail is not None:
            edits.append(_Edit(tail[0], tail[1], ""))

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


def _compiles(text: str, filename: str) -> bool:
    try:
        compile(text, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _commit(planner: _Planner, edits: Sequence[_Edit]) -> str:
    if not edits:
        return planner.text
    sg_edits = []
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        sg = planner.root.replace(e.text)
        sg.start_pos = e.start
        sg.end_pos = e.end
        sg_edits.append(sg)
    return planner.root.commit_edits(sg_edits)


def _sort_key(d: Diagnostic) -> Tuple[int, int, int, int, str]:
    s = d.span
    return (s.line, s.col, s.end_line, s.end_col, d.code)


def apply_fixes(
    source: str,
    diagnostics: Iterable[Diagnostic],
    unsafe: bool = False,
    filename: str = "<fixed>",
) -> FixResult:
    """Apply the fixes of ``diagnostics`` to ``source``.

    Diagnostics are taken in source order.  A diagnostic is skipped (with the
    reason) when it has no fix, when its fix is unsafe and ``unsafe`` is
    false, when one of its spans names no syntax node, when it would remove a
    comment, or when it overlaps a fix already taken; its fix is applied
    whole or not at all.  If the result does not parse, the fixes that break
    it on their own are skipped with "fix would not parse"; when the
    combination still fails, the original text comes back and every fix is
    reported as skipped.  A leading BOM is kept.
    """
    diags = sorted(diagnostics, key=_sort_key)
    bom = BOM if source.startswith(BOM) else ""
    text = source[len(bom) :]
    result = FixResult(text=source)
    wanted: List[Tuple[Diagnostic, List[_Edit]]] = []
    planner: Optional[_Planner] = None
    taken: List[_Edit] = []
    for diag in diags:
        fix = diag.fix
        if fix is None:
            result.skipped.append((diag, diag.no_fix_reason or REASON_NO_FIX))
            continue
        if not fix.safe and not unsafe:
            result.skipped.append((diag, REASON_UNSAFE))
            continue
        if planner is None:
            planner = _Planner(text)
        try:
            edits: List[_Edit] = []
            for op in fix.ops:
                edits.extend(planner.plan(op))
        except _Skip as skip:
            result.skipped.append((diag, str(skip)))
            continue
        own = sorted(edits, key=lambda e: (e.start, e.end))
        if any(_overlap(a, b) for a, b in zip(own, own[1:])):
            result.skipped.append((diag, "fix operations overlap each other"))
            continue
        if any(_overlap(e, t) for e in edits for t in taken):
            result.skipped.append((diag, REASON_OVERLAP))
            continue
        taken.extend(edits)
        wanted.append((diag, edits))

    if not wanted:
        return result
    assert planner is not None
    strict = _compiles(text, filename)
    ok = _compiles if strict else parses

    new_text = _commit(planner, [e for _, es in wanted for e in es])
    if not ok(new_text, filename):
        good = []
        for diag, edits in wanted:
            if ok(_commit(planner, edits), filename):
                good.append((diag, edits))
            else:
                result.skipped.append((diag, REASON_NOT_PARSE))
        wanted = good
        new_text = _commit(planner, [e for _, es in wanted for e in es])
        if wanted and not ok(new_text, filename):
            result.skipped.extend((d, REASON_NOT_PARSE) for d, _ in wanted)
            wanted = []
            new_text = text
    result.applied = [d for d, _ in wanted]
    result.text = bom + new_text if wanted else source
    result.skipped.sort(key=lambda p: _sort_key(p[0]))
    return result
