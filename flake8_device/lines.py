"""Physical lines as Python reads them.

Python ends a line at ``\\r\\n``, ``\\r`` or ``\\n`` and nowhere else.
``str.splitlines`` also splits at form feed, vertical tab, ``\\x1c``-``\\x1e``,
``\\x85``, U+2028 and U+2029, which may sit inside a Python file (a form feed
between sections, a U+2028 in a string or comment): with it every later line
number is off.  Everything that maps line numbers to text (the engine, noqa,
the fixers, the report, the diff) splits with :func:`split_lines`.
"""

from __future__ import annotations

import re
from typing import List

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(text: str, keepends: bool = True) -> List[str]:
    """The physical lines of ``text`` (with their terminators unless ``keepends`` is false)."""
    lines = _LINE.findall(text)
    if not keepends:
        lines = [line.rstrip("\r\n") for line in lines]
    return lines


_LONE_CR = re.compile(r"\r(?!\n)")


def for_tokenize(text: str) -> str:
    r"""``text`` with each lone ``\r`` read as ``\n``: :mod:`tokenize` ends lines at
    ``\n`` only, so its line numbers then match :func:`split_lines` (the length
    and every column stay the same)."""
    return _LONE_CR.sub("\n", text)
