"""``# noqa`` handling that matches flake8.

* ``# noqa`` (any case) anywhere on the line suppresses every code;
* ``# noqa: DEV001,E501`` (or ``#noqa:DEV001 E501``) suppresses the listed
  codes, each also matching as a prefix (``# noqa: DEV1`` covers DEV101);
* flake8 looks for the comment on the physical line of the report, except
  that lines joined without a line-break token -- a multi-line string, or
  lines continued with a backslash -- form one group: every line of the
  group maps to all of its lines joined, so a ``# noqa`` on any of them
  covers a report on any of them.  Lines inside brackets are *not* joined
  (the tokenizer emits a line break for each), so a report on the first line
  of a multi-line call needs its ``# noqa`` on that first line;
* a line that is only ``# flake8: noqa`` (or ``flake8=noqa``) skips the file.

The patterns are the ones flake8 uses.
"""

from __future__ import annotations

import io
import re
import tokenize
from typing import Dict, Iterable, List, Optional, Sequence

from .lines import for_tokenize
from .lines import split_lines as _split_lines

NOQA_INLINE = re.compile(
    r"# noqa(?::[\s]?(?P<codes>([A-Z]+[0-9]+(?:[,\s]+)?)+))?",
    re.IGNORECASE,
)
NOQA_FILE = re.compile(r"\s*# flake8[:=]\s*noqa", re.IGNORECASE)
_SPLIT = re.compile(r"[,\s]")


def split_lines(text: str) -> List[str]:
    """Physical lines of ``text`` with their terminators, as flake8 reads them
    (only ``\r\n``, ``\r`` and ``\n`` end a line; see :mod:`flake8_device.lines`)."""
    return _split_lines(text)


def file_is_ignored(lines: Sequence[str]) -> bool:
    """True when a line is exactly a ``# flake8: noqa`` comment."""
    return any(NOQA_FILE.match(line) for line in lines)


def codes_suppressed_by(line_text: str, code: str) -> bool:
    """Whether ``line_text`` holds a ``# noqa`` comment covering ``code``."""
    match = NOQA_INLINE.search(line_text)
    if match is None:
        return False
    codes_str = match.group("codes")
    if codes_str is None:
        return True
    codes = {c.strip() for c in _SPLIT.split(codes_str) if c.strip()}
    return code in codes or code.startswith(tuple(codes))


class NoqaMap:
    """Maps a 1-based line number to the text searched for ``# noqa``."""

    def __init__(self, text: str) -> None:
        self.lines = split_lines(text)
        self._mapping: Optional[Dict[int, str]] = None
        self._answers: Dict[tuple, bool] = {}
        self._text = text

    def _build(self) -> Dict[int, str]:
        ret: Dict[int, str] = {}
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(for_tokenize(self._text)).readline))
        except (tokenize.TokenError, SyntaxError):
            return ret
        big = len(self.lines) + 2
        min_line, max_line = big, -1
        for tok in tokens:
            if tok.type in (tokenize.ENDMARKER, tokenize.DEDENT):
                continue
            min_line = min(min_line, tok.start[0])
            max_line = max(max_line, tok.end[0])
            if tok.type in (tokenize.NL, tokenize.NEWLINE):
                joined = "".join(self.lines[min_line - 1 : max_line])
                for n in range(min_line, max_line + 1):
                    ret[n] = joined
                min_line, max_line = big, -1
        return ret

    def line_for(self, line: int) -> Optional[str]:
        if self._mapping is None:
            self._mapping = self._build()
        found = self._mapping.get(line)
        if found is None and 1 <= line <= len(self.lines):
            found = self.lines[line - 1]
        return found

    def suppresses(self, line: int, code: str) -> bool:
        # the comment is parsed once per line: K diagnostics on one long line
        # would otherwise search it K times
        key = (line, code)
        got = self._answers.get(key)
        if got is None:
            text = self.line_for(line)
            got = self._answers[key] = text is not None and codes_suppressed_by(text, code)
        return got

    @property
    def file_ignored(self) -> bool:
        return file_is_ignored(self.lines)


def filter_noqa(text: str, diagnostics: Iterable, disable_noqa: bool = False) -> tuple:
    """Split ``diagnostics`` into (kept, suppressed) by ``# noqa`` comments."""
    diagnostics = list(diagnostics)
    if disable_noqa:
        return diagnostics, []
    nmap = NoqaMap(text)
    kept, suppressed = [], []
    for d in diagnostics:
        (suppressed if nmap.suppresses(d.span.line, d.code) else kept).append(d)
    return kept, suppressed
