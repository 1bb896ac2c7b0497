"""Jupyter notebooks (``.ipynb``): their code cells as one Python text, and back.

A notebook is checked as Ruff checks it: the code cells, in order, make one
module (a name bound in an earlier cell is in scope in a later one).  Each
code cell is preceded in that text by a marker comment line, so that a
report's line is mapped back to its cell and line, and the fixed text is cut
back into cells whatever the fixes inserted.  IPython syntax is set aside the
way Ruff sets it aside:

* a cell that starts with a cell magic (``%%bash``, ``%%writefile``...) is
  skipped whole, unless the magic runs the rest of the cell as Python
  (``%%time``, ``%%timeit``, ``%%capture``, ``%%prun``, ``%%debug``,
  ``%%python``, ``%%python3``, ``%%pypy``); then only its first line is set
  aside;
* in a cell that does not parse as Python, the lines that start with ``%``
  (line magics), ``!`` (shell escapes) or ``?``, the lines that end with
  ``?`` (help) and the ``NAME = !cmd`` / ``NAME = %magic`` assignments are
  replaced by a placeholder statement of the same indentation on the same
  line, so every other line keeps its number; the placeholder is put back to
  the original line when the cells are written, never rewritten.

Cells are numbered from 1 counting every cell of the notebook (markdown and
raw cells too), as Ruff numbers them and as a notebook's editor shows them.

Writing edits the file's JSON text: only the ``source`` value of each cell
whose source changed is replaced, in the layout it had (a list of lines or
one string, the list's indentation, ``\\uXXXX`` escapes or UTF-8); the lines
of a list before and after the change keep their bytes.  The result is
decoded again and checked to differ from the original only in those
sources; with ``nbformat`` installed it is also validated.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from bisect import bisect_right
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .lines import split_lines

NOTEBOOK_SUFFIX = ".ipynb"

# cell magics whose body is Python (Ruff's list of "transparent" cell magics)
PYTHON_CELL_MAGICS = frozenset({"capture", "debug", "prun", "pypy", "python", "python3", "time", "timeit"})

_ASSIGNED_ESCAPE = re.compile(r"^\s*[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*[!%]")


class NotebookError(Exception):
    """The file is not a notebook this command can read or write; ``str()`` says why."""


def is_notebook(path: str) -> bool:
    return path.endswith(NOTEBOOK_SUFFIX)


# --- finding the source values in the JSON text -------------------------------

_DECODER = json.JSONDecoder()
_WS = " \t\n\r"


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _members(text: str, i: int):
    """(key, value start, value end) of the JSON object at ``text[i] == '{'``, and the end."""
    assert text[i] == "{"
    out = []
    i = _skip(text, i + 1)
    if text[i] == "}":
        return out, i + 1
    while True:
        key, i = json.decoder.scanstring(text, i + 1)
        i = _skip(text, i)
        i = _skip(text, i + 1)  # the colon
        _, end = _DECODER.raw_decode(text, i)
        out.append((key, i, end))
        i = _skip(text, end)
        if text[i] == "}":
            return out, i + 1
        i = _skip(text, i + 1)  # the comma


def _elements(text: str, i: int) -> Tuple[List[Tuple[int, int]], int]:
    """(start, end) of each element of the JSON array at ``text[i] == '['``, and the end."""
    assert text[i] == "["
    out = []
    i = _skip(text, i + 1)
    if text[i] == "]":
        return out, i + 1
    while True:
        _, end = _DECODER.raw_decode(text, i)
        out.append((i, end))
        i = _skip(text, end)
        if text[i] == "]":
            return out, i + 1
        i = _skip(text, i + 1)


def _source_spans(text: str) -> List[Tuple[int, int]]:
    """The (start, end) of every cell's ``source`` value in the notebook's JSON text, by cell."""
    i = _skip(text, 0)
    members, _ = _members(text, i)
    cells = [(s, e) for k, s, e in members if k == "cells"]
    spans = []
    for start, _end in cells[-1:]:  # the last "cells" key is the one json.loads keeps
        for cs, _ce in _elements(text, start)[0]:
            sources = [(s, e) for k, s, e in _members(text, cs)[0] if k == "source"]
            spans.append(sources[-1])
    return spans


# --- the Python text of the code cells ------------------------------------------


def _is_escape_line(line: str) -> bool:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return False
    return (stripped[0] in "%!?" or stripped.endswith("?") or _ASSIGNED_ESCAPE.match(line) is not None)


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


@dataclass
class Cell:
    number: int  # 1-based, counting every cell
    index: int  # 0-based position in the notebook's cells
    source: str  # the cell's source as stored (joined)
    as_list: bool  # stored as a list of lines
    marker_line: int = 0  # the marker's line in the Python text (1-based); the cell's line k is marker + k
    escapes: Dict[int, str] = None  # type: ignore[assignment]  # 0-based line -> the original line set aside
    added_newline: bool = False  # a "\n" was added after a source that had none


def _lines(text: str) -> List[str]:
    """Lines as Python ends them (``str.splitlines`` also ends them at a form feed, U+2028...)."""
    return split_lines(text)


class Notebook:
    """One notebook read from its text: its code cells as a Python text (:attr:`python`)."""

    def __init__(self, text: str, path: str = "notebook.ipynb") -> None:
        self.path = path
        self.text = text
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise NotebookError(f"not a notebook: invalid JSON: {exc}") from None
        _check_structure(data)
        self.data = data
        self.cells: List[Cell] = []
        self.skipped: List[int] = []  # numbers of code cells left out (cell magics)
        self.is_python = _is_python(data)
        self.token = secrets.token_hex(4)
        while self.token in text:
            self.token = secrets.token_hex(4)
        self._marker = re.compile(r"^# flake8-device cell (\d+) " + self.token + r"\r?\n?\Z")
        self._escape = re.compile(r"^(\s*)pass  # flake8-device escape " + self.token + r"(\r?\n)?\Z")
        for index, raw in enumerate(data["cells"]):
            if raw.get("cell_type") != "code":
                continue
            source = raw["source"]
            as_list = isinstance(source, list)
            joined = "".join(source) if as_list else source
            cell = Cell(number=index + 1, index=index, source=joined, as_list=as_list, escapes={})
            first = (_lines(joined.lstrip()) or [""])[0].rstrip("\r\n")
            if first.startswith("%%"):
                name = first[2:].split(None, 1)[0] if first[2:].strip() else ""
                if name not in PYTHON_CELL_MAGICS:
                    self.skipped.append(cell.number)
                    continue
            self.cells.append(cell)
        self.python = self._build()
        self._python_lines = _lines(self.python)
        self._starts = [c.marker_line for c in self.cells]

    # the Python text and its map
    def _placeholder(self, line: str) -> str:
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        end = "\r\n" if line.endswith("\r\n") else ("\n" if line.endswith("\n") else "")
        return f"{indent}pass  # flake8-device escape {self.token}{end}"

    def _code(self, cell: Cell) -> str:
        lines = _lines(cell.source)
        first = cell.source.lstrip().startswith("%%")
        if not first and _parses(cell.source):
            return cell.source
        out = []
        for k, line in enumerate(lines):
            if (first and k == 0 and line.lstrip().startswith("%%")) or (not first or k > 0) and _is_escape_line(line):
                cell.escapes[k] = line
                line = self._placeholder(line)
            out.append(line)
        return "".join(out)

    def _build(self) -> str:
        parts: List[str] = []
        line = 1
        for cell in self.cells:
            code = self._code(cell)
            cell.added_newline = bool(code) and not code.endswith(("\n", "\r"))
            if cell.added_newline:
                code += "\n"
            cell.marker_line = line
            parts.append(f"# flake8-device cell {cell.number} {self.token}\n")
            parts.append(code)
            line += 1 + len(_lines(code))
        return "".join(parts)

    def cell_of(self, line: int) -> Tuple[Optional[Cell], int]:
        """The cell holding line ``line`` of :attr:`python`, and the line in the cell (1-based)."""
        k = bisect_right(self._starts, line) - 1
        if k < 0:
            return None, line
        cell = self.cells[k]
        return cell, line - cell.marker_line

    def cell_text(self, cell: Cell) -> str:
        """The cell's lines as :attr:`python` holds them (placeholders in place of escapes)."""
        lines = self._python_lines
        k = self._starts.index(cell.marker_line)
        end = self.cells[k + 1].marker_line - 1 if k + 1 < len(self.cells) else len(lines)
        return "".join(lines[cell.marker_line:end])

    # back to cells
    def sources(self, python: str) -> Dict[int, str]:
        """The source of each code cell (by cell number) in a fixed :attr:`python`; raises
        :class:`NotebookError` when the markers are not all there, in order."""
        pieces: Dict[int, List[str]] = {}
        order: List[int] = []
        head: List[str] = []
        current: Optional[List[str]] = None
        for line in _lines(python):
            m = self._marker.match(line)
            if m:
                number = int(m.group(1))
                current = pieces.setdefault(number, [])
                order.append(number)
                continue
            (head if current is None else current).append(line)
        if order != [c.number for c in self.cells]:
            raise NotebookError("the fixed text lost its cell boundaries")
        out: Dict[int, str] = {}
        for n, cell in enumerate(self.cells):
            lines = pieces[cell.number]
            if n == 0 and head:
                lines = head + lines  # a line inserted above the first cell belongs to it
            restored = []
            for line in lines:
                m = self._escape.match(line)
                restored.append(line if m is None else None)
            # placeholders go back to the original lines, in order
            originals = [cell.escapes[k] for k in sorted(cell.escapes)]
            if sum(1 for r in restored if r is None) != len(originals):
                raise NotebookError(f"cell {cell.number}: the fixed text lost an IPython line")
            it = iter(originals)
            text = "".join(r if r is not None else next(it) for r in restored)
            if cell.added_newline and text.endswith("\n"):
                text = text[:-1]
            out[cell.number] = text
        return out

    def changed_sources(self, python: str) -> Dict[int, str]:
        by_number = {c.number: c for c in self.cells}
        return {n: s for n, s in self.sources(python).items() if s != by_number[n].source}

    def render(self, python: str) -> str:
        """The notebook's JSON text with the cell sources of the fixed ``python``; every byte
        outside the sources that changed is the original's."""
        changed = self.changed_sources(python)
        if not changed:
            return self.text
        spans = _source_spans(self.text)
        ensure_ascii = _escapes_non_ascii(self.text)
        out = []
        last = 0
        for cell in self.cells:
            if cell.number not in changed:
                continue
            start, end = spans[cell.index]
            out.append(self.text[last:start])
            out.append(_serialise(self.text, start, end, changed[cell.number], cell.as_list, ensure_ascii))
            last = end
        out.append(self.text[last:])
        new = "".join(out)
        self._verify(new, changed)
        return new

    def _verify(self, new: str, changed: Dict[int, str]) -> None:
        try:
            data = json.loads(new)
        except ValueError as exc:  # pragma: no cover - a bug in the writer
            raise NotebookError(f"refusing to write: the new notebook is not JSON: {exc}") from None
        expected = json.loads(self.text)
        for cell in self.cells:
            if cell.number in changed:
                raw = expected["cells"][cell.index]
                raw["source"] = _lines(changed[cell.number]) if cell.as_list else changed[cell.number]
        got = data
        for cell in self.cells:
            if cell.number in changed and cell.as_list:
                got["cells"][cell.index]["source"] = _lines("".join(got["cells"][cell.index]["source"]))
        if got != expected:
            raise NotebookError("refusing to write: the new notebook differs from the old one outside "
                                "the changed cell sources")
        validate(new)


def _serialise(text: str, start: int, end: int, new: str, as_list: bool, ensure_ascii: bool) -> str:
    """The JSON of the source ``new`` in the layout of the value at ``text[start:end]``."""
    if not as_list:
        return json.dumps(new, ensure_ascii=ensure_ascii)
    old_value = text[start:end]
    elements, _ = _elements(text, start)
    old_items = [text[s:e] for s, e in elements]
    old_lines = [json.loads(item) for item in old_items]
    new_lines = _lines(new)
    if elements:
        first_ws = text[start + 1:elements[0][0]]
        close_ws = text[elements[-1][1]:end - 1]
        seps = [text[elements[k][1]:elements[k + 1][0]] for k in range(len(elements) - 1)]
        sep = seps[0] if seps else "," + first_ws
    else:
        # an empty list: indent like the keys of the cell holding it
        line_start = text.rfind("\n", 0, start) + 1
        key_indent = re.match(r"[ \t]*", text[line_start:]).group(0)
        unit = _indent_unit(text)
        if "\n" in old_value or not unit:
            first_ws = "\n" + key_indent + unit if unit else ""
            close_ws = "\n" + key_indent if unit else ""
        else:
            first_ws, close_ws = "\n" + key_indent + unit, "\n" + key_indent
        sep = "," + first_ws if first_ws else ", " if _compact_sep(text) else ","
    # keep the elements before and after the change as they were written
    head = 0
    while head < min(len(old_lines), len(new_lines)) and old_lines[head] == new_lines[head]:
        head += 1
    tail = 0
    while (tail < min(len(old_lines), len(new_lines)) - head
           and old_lines[len(old_lines) - 1 - tail] == new_lines[len(new_lines) - 1 - tail]):
        tail += 1
    items = (old_items[:head]
             + [json.dumps(line, ensure_ascii=ensure_ascii) for line in new_lines[head:len(new_lines) - tail]]
             + old_items[len(old_items) - tail:])
    if not items:
        return "[]"
    return "[" + first_ws + sep.join(items) + close_ws + "]"


def _indent_unit(text: str) -> str:
    m = re.search(r"\{\n([ \t]+)\"", text)
    return m.group(1) if m else ""


def _compact_sep(text: str) -> bool:
    return ", " in text


def _escapes_non_ascii(text: str) -> bool:
    """Whether the file writes non-ASCII characters as ``\\uXXXX`` (``json.dumps``'s default)
    rather than as UTF-8 (nbformat's way): only when it has such escapes and no raw ones."""
    if any(ord(c) > 127 for c in text):
        return False
    return re.search(r"\\u(?:00[89a-fA-F][0-9a-fA-F]|0[1-9a-fA-F][0-9a-fA-F]{2}|[1-9a-fA-F][0-9a-fA-F]{3})",
                     text) is not None


def _check_structure(data: object) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError("not a notebook: no list of cells at the top level")
    major = data.get("nbformat")
    if not isinstance(major, int) or major < 4:
        raise NotebookError(f"not a notebook this command reads: nbformat {major!r} (4 is needed)")
    for n, cell in enumerate(data["cells"], 1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise NotebookError(f"not a notebook: cell {n} has no cell_type")
        source = cell.get("source")
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            raise NotebookError(f"not a notebook: the source of cell {n} is neither text nor a list of lines")


def _is_python(data: Dict) -> bool:
    """Ruff's test: the language of ``language_info`` or the kernel spec, Python when neither says."""
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    info = meta.get("language_info")
    if isinstance(info, dict) and isinstance(info.get("name"), str):
        return info["name"].lower() == "python"
    spec = meta.get("kernelspec")
    if isinstance(spec, dict) and isinstance(spec.get("language"), str):
        return spec["language"].lower() == "python"
    return True


def validate(text: str) -> None:
    """Validate the notebook with nbformat when it is installed (a no-op otherwise)."""
    try:
        import nbformat
    except ImportError:
        return
    import warnings

    try:
        with warnings.catch_warnings():
            # nbformat warns about what it will reject one day (cells without ids): not this run's business
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
            nbformat.validate(nb)
    except Exception as exc:  # nbformat raises its own ValidationError, or json's errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotebookError(f"not a valid notebook (nbformat): {first}") from None


def read(text: str, path: str) -> Notebook:
    """A :class:`Notebook` from its JSON text, validated (nbformat) when it can be."""
    nb = Notebook(text, path)
    validate(text)
    return nb


# --- reports --------------------------------------------------------------------


def cell_diff(nb: Notebook, python: str, shown: str) -> str:
    """A unified diff of each changed cell's source, headed ``a/PATH:cell N`` / ``b/PATH:cell N``."""
    import difflib

    out = []
    by_number = {c.number: c for c in nb.cells}
    for number, new in sorted(nb.changed_sources(python).items()):
        old = by_number[number].source
        a, b = _lines(old), _lines(new)
        name = shown.replace("\\", "/")
        for line in difflib.unified_diff(a, b, fromfile=f"a/{name}:cell {number}", tofile=f"b/{name}:cell {number}"):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of cell\n")
    return "".join(out)


__all__ = [
    "NOTEBOOK_SUFFIX",
    "Notebook",
    "NotebookError",
    "PYTHON_CELL_MAGICS",
    "cell_diff",
    "is_notebook",
    "read",
    "validate",
]

