"""Convert ``ast`` coordinates into character offsets of the source text.

``ast`` reports 1-based line numbers and 0-based column offsets counted in
UTF-8 *bytes* of the line.  ast-grep-py (tree-sitter) reports positions as
character offsets into the Python string it was given.  The two agree only
for ASCII text, so every span goes through :class:`LineIndex` before it is
compared with a syntax node.

Python ends a line at ``\\r\\n``, ``\\r`` or ``\\n`` (nothing else: form
feeds, ``\\x1c`` or ``\\u2028`` do not end a line), so the index splits on
exactly those.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Dict, List, Optional

_LINE_END = re.compile(r"\r\n|\r|\n")


class LineIndex:
    """Character offsets of the start of every line of ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text
        starts = [0]
        for m in _LINE_END.finditer(text):
            starts.append(m.end())
        self._starts: List[int] = starts
        # non-ASCII lines: UTF-8 byte column -> character index, built on first use
        self._byte_cols: Dict[int, Dict[int, int]] = {}

    @property
    def line_count(self) -> int:
        return len(self._starts)

    def line_start(self, line: int) -> int:
        """Offset of the first character of 1-based ``line``."""
        return self._starts[line - 1]

    def line_text(self, line: int) -> str:
        """Text of 1-based ``line`` without its line terminator."""
        start = self._starts[line - 1]
        end = self._starts[line] if line < len(self._starts) else len(self.text)
        return self.text[start:end].rstrip("\r\n")

    def line_ending(self, line: int) -> str:
        """The terminator of 1-based ``line`` ('' for the last line)."""
        start = self._starts[line - 1]
        end = self._starts[line] if line < len(self._starts) else len(self.text)
        raw = self.text[start:end]
        return raw[len(raw.rstrip("\r\n")):]

    def offset(self, line: int, byte_col: int) -> Optional[int]:
        """Character offset of (1-based line, UTF-8 byte column), or None.

        None means the position does not exist in this text: the line is out
        of range, the column runs past the end of the line, or it falls in the
        middle of a multi-byte character.  Callers treat that as a stale span.
        """
        if line < 1 or line > len(self._starts) or byte_col < 0:
            return None
        cols = self._byte_cols.get(line)
        if cols is None:
            text = self.line_text(line)
            if text.isascii():
                cols = self._byte_cols[line] = {-1: len(text)}
        if cols is not None and -1 in cols:  # an ASCII line: bytes are characters
            if byte_col > cols[-1]:
                return None
            return self._starts[line - 1] + byte_col
        if cols is None:
            cols = {}
            consumed = 0
            for i, ch in enumerate(text):
                cols[consumed] = i
                consumed += len(ch.encode("utf-8", "surrogatepass"))
            cols[consumed] = len(text)
            self._byte_cols[line] = cols
        i = cols.get(byte_col)
        return None if i is None else self._starts[line - 1] + i

    def line_of(self, offset: int) -> int:
        """1-based line of a character offset."""
        return bisect_right(self._starts, offset)

    def position(self, offset: int) -> "tuple[int, int]":
        """(1-based line, UTF-8 byte column) of a character offset."""
        lo = self.line_of(offset) - 1
        start = self._starts[lo]
        col = len(self.text[start:offset].encode("utf-8", "surrogatepass"))
        return lo + 1, col
