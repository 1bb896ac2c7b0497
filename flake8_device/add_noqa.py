"""``--add-noqa``: write ``# noqa: CODE`` comments for the diagnostics of a file.

flake8 (and :class:`flake8_device.noqa.NoqaMap`) reads a ``# noqa`` on the
line of a report, or anywhere in the group of lines joined with it (a
multi-line string, lines continued with a backslash).  The comment is put on
the last line of that group: its end is outside any string and after any
backslash, so a comment there never changes what the code means.  A group
that already has a ``# noqa: CODES`` comment gets the new codes merged into
it; the text after the comment is kept.
"""

from __future__ import annotations

import io
import tokenize
from typing import Dict, Iterable, List, Optional, Tuple

from .lines import for_tokenize, split_lines
from .noqa import NOQA_INLINE, _SPLIT

_Group = Tuple[int, int]


def _groups(text: str) -> Tuple[Dict[int, _Group], Dict[int, List[tokenize.TokenInfo]]]:
    """For each line, (first, last) line of its group; and the comment tokens by line."""
    groups: Dict[int, _Group] = {}
    comments: Dict[int, List[tokenize.TokenInfo]] = {}
    tokens = tokenize.generate_tokens(io.StringIO(for_tokenize(text)).readline)
    first: Optional[int] = None
    last = -1
    for tok in tokens:
        if tok.type in (tokenize.ENDMARKER, tokenize.DEDENT, tokenize.INDENT):
            continue
        if tok.type == tokenize.COMMENT:
            comments.setdefault(tok.start[0], []).append(tok)
        first = tok.start[0] if first is None else min(first, tok.start[0])
        last = max(last, tok.end[0])
        if tok.type in (tokenize.NL, tokenize.NEWLINE):
            for n in range(first, last + 1):
                groups[n] = (first, last)
            first, last = None, -1
    return groups, comments


def noqa_rows(text: str, lines: Iterable[int]) -> Dict[int, Optional[int]]:
    """The line a ``# noqa`` for a report on each of ``lines`` goes on (None: nowhere safe)."""
    try:
        groups, _ = _groups(text)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return {n: None for n in lines}
    return {n: (groups[n][1] if n in groups else None) for n in lines}


def _merge_codes(existing: str, new: Iterable[str]) -> str:
    codes = [c for c in _SPLIT.split(existing) if c]
    for code in new:
        if not any(code == c or code.startswith(c) for c in codes):
            codes.append(code)
    return ", ".join(codes)


def add_noqa(text: str, reports: Iterable[Tuple[int, str]]) -> Tuple[str, int, List[Tuple[int, str]]]:
    """Add ``# noqa`` comments to ``text`` for ``(line, code)`` reports.

    Returns (new text, number of comments added or extended, reports that
    could not be given one).  The caller checks that the new text parses.
    """
    reports = list(reports)
    try:
        groups, comments = _groups(text)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return text, 0, reports
    # the physical lines the reports and the tokens count
    lines = split_lines(text)
    wanted: Dict[_Group, List[str]] = {}
    failed: List[Tuple[int, str]] = []
    for line, code in reports:
        group = groups.get(line)
        if group is None:
            failed.append((line, code))
            continue
        codes = wanted.setdefault(group, [])
        if code not in codes:
            codes.append(code)
    edited = 0
    for (first, last), codes in sorted(wanted.items()):
        codes = sorted(codes)
        # an existing "# noqa: CODES" comment in the group takes the new codes
        target = None
        for n in range(first, last + 1):
            for tok in comments.get(n, []):
                m = NOQA_INLINE.search(tok.string)
                if m is not None:
                    target = (n, tok, m)
                    break
            if target is not None:
                break
        if target is not None:
            n, tok, m = target
            if m.group("codes") is None:
                continue  # a bare "# noqa" covers every code already
            line_text = lines[n - 1]
            codes_str = m.group("codes").rstrip(", \t")
            # tokenize columns are character offsets into the line
            start = tok.start[1] + m.start()
            end = tok.start[1] + m.start("codes") + len(codes_str)
            merged = "# noqa: " + _merge_codes(codes_str, codes)
            new_line = line_text[:start] + merged + line_text[end:]
            if new_line != line_text:
                lines[n - 1] = new_line
                edited += 1
            continue
        line_text = lines[last - 1]
        body = line_text.rstrip("\r\n")
        ending = line_text[len(body):]
        stripped = body.rstrip(" \t")
        if not stripped.strip():
            failed.extend((first, c) for c in codes)
            continue
        lines[last - 1] = stripped + "  # noqa: " + ", ".join(codes) + ending
        edited += 1
    return "".join(lines), edited, failed

