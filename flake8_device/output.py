"""Machine-readable output of the ``flake8-device`` command.

``--output-format`` picks one of the writers below.  Each takes the
:class:`Item` list of a run (one per reported diagnostic, in report order)
and returns the whole text to print:

* ``json`` -- a JSON array, one object per diagnostic, laid out like Ruff's
  JSON output (``code``, ``message``, ``filename``, ``location``,
  ``end_location``, ``fix`` with ``applicability``, ``message`` and
  ``edits``, ``noqa_row``, ``url``);
* ``json-lines`` -- the same objects, one per line;
* ``sarif`` -- a SARIF 2.1.0 log whose rules carry each code's short and
  full description and a link to its section of ``docs/rules.md``;
* ``github`` -- GitHub Actions workflow commands (``::error file=...``), which
  the runner turns into annotations on the pull request;
* ``gitlab`` -- GitLab's code quality report (a JSON array);
* ``pylint`` -- ``path:line: [CODE] message`` lines.

Lines and columns of every format but the text one follow Ruff: both
1-based, columns counted in characters (the text format counts UTF-8 bytes,
as flake8 does).  An end position is exclusive.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

from flake8_device_fixers.positions import LineIndex

from .diagnostics import Diagnostic
from .lines import split_lines

FORMATS = ("text", "json", "json-lines", "sarif", "github", "gitlab", "pylint")

TOOL_NAME = "flake8-device"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

_PACKAGE_DIR = Path(__file__).resolve().parent
# docs/rules.md ships in the wheel as flake8_device/bundled/rules.md (see
# pyproject.toml); in a checkout it is read from docs/.
_RULES_DOC_CANDIDATES = (
    _PACKAGE_DIR / "bundled" / "rules.md",
    _PACKAGE_DIR.parent / "docs" / "rules.md",
)


# --- what is reported -------------------------------------------------------


@dataclass
class Edit:
    """Replace ``[start, end)`` (1-based line, 1-based character column) with ``content``."""

    start: Tuple[int, int]
    end: Tuple[int, int]
    content: str


@dataclass
class Item:
    """One reported diagnostic and what the writers need to know about it."""

    path: str  # as shown: relative to the current folder when under it
    diag: Diagnostic
    text: str  # the source the span refers to
    fixable: bool  # --fix applies it with the flags given
    edits: Optional[List[Edit]] = None  # the fix as text edits; None: no fix can be applied
    noqa_row: Optional[int] = None
    # a notebook's cell (1-based, counting every cell); the span, edits and noqa_row are then
    # lines of the cell and ``text`` is the cell's source
    cell: Optional[int] = None


PROBLEM_CODE = "DEV000"
PROBLEM_NAME = "a file flake8-device could not check or write"

_WHERE = re.compile(r"^:(\d+)(?::(\d+))?: (.*)\Z", re.DOTALL)


def problem_item(path: str, rest: str) -> Item:
    """A file that could not be read, parsed, checked or written, as a record the writers print
    like a diagnostic: code DEV000 (the flake8 plugin's code for a file it could not check),
    ``rest`` is the error after the path (``:LINE:COL: REASON``, ``:LINE: REASON`` or
    ``: REASON``), the message is the reason; no fix."""
    from .diagnostics import Span

    line, col, message = 1, 0, rest[2:] if rest.startswith(": ") else rest
    m = _WHERE.match(rest)
    if m is not None:
        line = int(m.group(1))
        col = int(m.group(2)) - 1 if m.group(2) else 0
        message = m.group(3)
    line, col = max(line, 1), max(col, 0)
    return Item(path=path, diag=Diagnostic(PROBLEM_CODE, message, Span(line, col, line, col)),
                text="", fixable=False)


def version() -> str:
    try:
        from importlib.metadata import version as _version

        return _version("flake8-device")
    except Exception:  # not installed: the checkout's own number
        from . import __version__

        return __version__


def char_position(index: LineIndex, line: int, byte_col: int) -> Tuple[int, int]:
    """(line, 1-based character column) of an ``ast`` position (1-based line, byte column)."""
    if not 1 <= line <= index.line_count:
        return max(line, 1), byte_col + 1
    offset = index.offset(line, byte_col)
    if offset is None:  # not on a character boundary: count the whole characters before it
        raw = index.line_text(line).encode("utf-8", "surrogatepass")[:byte_col]
        return line, len(raw.decode("utf-8", "ignore")) + 1
    return line, offset - index.line_start(line) + 1


def _offset_position(index: LineIndex, offset: int) -> Tuple[int, int]:
    line, _ = index.position(offset)
    return line, offset - index.line_start(line) + 1


def _common_prefix(x: str, y: str) -> int:
    """The length of the longest common prefix of ``x`` and ``y`` (slices compared by halves)."""
    lo, hi = 0, min(len(x), len(y))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if x[lo:mid] == y[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(x: str, y: str, limit: int) -> int:
    """The length (at most ``limit``) of the longest common suffix of ``x`` and ``y``."""
    lo, hi = 0, min(len(x), len(y), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if x[len(x) - mid:len(x) - lo] == y[len(y) - mid:len(y) - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


# (old text, its lines, their start offsets, its LineIndex): the edits of one file's fixes are
# all computed against one text
_OLD: List = [None, None, None, None]


def text_edits(old: str, new: str) -> List[Edit]:
    """The edits that turn ``old`` into ``new``, each as small as the lines allow.

    Changed runs of lines are found with difflib; within each run the common
    leading and trailing characters are left out of the edit.
    """
    if old == new:
        return []
    if _OLD[0] is not old:
        lines = split_lines(old)  # the lines LineIndex counts (not str.splitlines)
        ends = list(accumulate(len(line) for line in lines))
        _OLD[:] = [old, lines, [0] + ends, LineIndex(old)]
    _, a, starts, index = _OLD
    b = split_lines(new)
    edits: List[Edit] = []
    # The lines before the first change and after the last one need no matching.  The lines
    # of ``old`` ending before the first character that differs are the same in ``new``, and so
    # are those starting after the last (a line ending there may join the next one, so it is
    # compared like the others).
    common = min(len(a), len(b))
    head = min(bisect_left(starts, _common_prefix(old, new)) - 1, common)
    head = max(head, 0)
    while head < common and a[head] == b[head]:
        head += 1
    first_same = len(old) - _common_suffix(old, new, len(old) - starts[head])
    tail = min(len(a) - bisect_right(starts, first_same, 0, len(a)), common - head)
    tail = max(tail, 0)
    while tail < common - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    matcher = difflib.SequenceMatcher(None, a[head:len(a) - tail], b[head:len(b) - tail], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        i1, i2, j1, j2 = i1 + head, i2 + head, j1 + head, j2 + head
        before = "".join(a[i1:i2])
        after = "".join(b[j1:j2])
        lead = 0
        limit = min(len(before), len(after))
        while lead < limit and before[lead] == after[lead]:
            lead += 1
        trail = 0
        while trail < limit - lead and before[len(before) - 1 - trail] == after[len(after) - 1 - trail]:
            trail += 1
        start = starts[i1] + lead
        end = starts[i1] + len(before) - trail
        content = after[lead : len(after) - trail]
        edits.append(Edit(_offset_position(index, start), _offset_position(index, end), content))
    return edits


def fix_edits(
    text: str,
    diag: Diagnostic,
    others: Sequence[Diagnostic],
    filename: str,
    apply: Optional[Callable[[str, List[Diagnostic]], object]] = None,
    plan: Optional[object] = None,
) -> Optional[List[Edit]]:
    """The text edits of ``diag``'s fix, as the fixer makes them on ``text``.

    The fix is applied alone (with the other members of its group, which are
    applied together or not at all), so the edits include whatever the
    fixer adds for it, such as an ``import torch`` the fix text needs.
    ``plan`` is the fixer's :class:`~flake8_device_fixers.FilePlan` of ``text``
    with the post-conditions of the run (the command passes its Runner's): each
    fix is then planned and checked once per file, whichever diagnostic asks.
    Without it, ``apply(text, diagnostics)`` applies fixes, unsafe ones
    included (by default :func:`flake8_device_fixers.apply_fixes`).  None when
    the fixer would not apply the fix on its own.
    """
    if diag.fix is None:
        return None
    if plan is not None:
        result = plan.alone(diag, others)
    else:
        if apply is None:
            from flake8_device_fixers import apply_fixes

            def apply(t, ds):
                return apply_fixes(t, ds, unsafe=True, filename=filename)

        members = [diag]
        group = diag.fix.group
        if group is not None:
            members += [d for d in others if d is not diag and d.fix is not None and d.fix.group == group]
        result = apply(text, members)
    if not any(d is diag for d in result.applied):
        return None
    if _EDITS[0] is not text:
        _EDITS[:] = [text, {}]
    known = _EDITS[1]
    edits = known.get(id(result.text))
    if edits is None or edits[0] is not result.text:
        old = text[1:] if text.startswith("\ufeff") else text
        new = result.text[1:] if result.text.startswith("\ufeff") else result.text
        edits = known[id(result.text)] = (result.text, text_edits(old, new))
    return list(edits[1])


# (text, {id(fixed text): (fixed text, its edits)}): the diagnostics of one fix, and the
# members of one group, share their fixed text; its edits are computed once
_EDITS: List = [None, {}]


# --- rule documentation -----------------------------------------------------


@lru_cache(maxsize=1)
def rules_doc_path() -> Optional[Path]:
    for candidate in _RULES_DOC_CANDIDATES:
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=1)
def _rule_sections() -> Dict[str, str]:
    """``## DEVxxx`` sections of docs/rules.md, by code (markdown, heading left out)."""
    path = rules_doc_path()
    if path is None:
        return {}
    sections: Dict[str, str] = {}
    current: Optional[str] = None
    lines: List[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^##\s+(DEV\d+)\b", line)
        if m or line.startswith("## ") or line.strip() == "---":
            if current is not None:
                sections[current] = "\n".join(lines).strip()
            current = m.group(1) if m else None
            lines = []
            continue
        if current is not None:
            lines.append(line)
    if current is not None:
        sections[current] = "\n".join(lines).strip()
    return sections


def known_codes() -> Dict[str, str]:
    """Every rule code with its one-line description."""
    from .rules import CODES

    codes = dict(CODES)
    codes.setdefault(PROBLEM_CODE, PROBLEM_NAME)
    return codes


@lru_cache(maxsize=1)
def _docs_base() -> Optional[str]:
    """Where docs/rules.md is read: the project's documentation URL, else the local copy."""
    try:
        from importlib.metadata import metadata

        for entry in metadata("flake8-device").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("documentation", "docs"):
                return url.strip().rstrip("/") + "/rules.md"
    except Exception:
        pass
    path = rules_doc_path()
    return path.as_uri() if path is not None else None


def rule_url(code: str) -> Optional[str]:
    """Link to the code's section of docs/rules.md (anchor ``#dev001``)."""
    base = _docs_base()
    return f"{base}#{code.lower()}" if base else None


def rule_info(code: str) -> Tuple[str, str]:
    """(short description, full description) of a code."""
    short = known_codes().get(code, code)
    full = _rule_sections().get(code) or short
    return short, full


def level(code: str) -> str:
    """SARIF level: DEV0xx (code that fails off its device) is an error, DEV1xx a warning."""
    return "warning" if code.startswith("DEV1") else "error"


# --- the writers -------------------------------------------------------------


def _location(row: int, col: int) -> Dict[str, int]:
    return {"column": col, "row": row}


_INDEX: List[object] = [None, None]  # (text, its LineIndex): items come file by file


def _index(text: str) -> LineIndex:
    if _INDEX[0] is not text:
        _INDEX[:] = [text, LineIndex(text)]
    return _INDEX[1]  # type: ignore[return-value]


def _span_chars(item: Item) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    index = _index(item.text)
    s = item.diag.span
    return char_position(index, s.line, s.col), char_position(index, s.end_line, s.end_col)


def json_object(item: Item) -> Dict[str, object]:
    (sl, sc), (el, ec) = _span_chars(item)
    d = item.diag
    fix = None
    if d.fix is not None and item.edits is not None:
        fix = {
            "applicability": "safe" if d.fix.safe else "unsafe",
            "edits": [
                {
                    "content": e.content,
                    "end_location": _location(*e.end),
                    "location": _location(*e.start),
                }
                for e in item.edits
            ],
            "message": d.fix.description,
        }
    return {
        "cell": item.cell,
        "code": d.code,
        "end_location": _location(el, ec),
        "filename": item.path,
        "fix": fix,
        "location": _location(sl, sc),
        "message": d.message,
        "noqa_row": item.noqa_row,
        "url": rule_url(d.code),
    }


def write_json(items: Sequence[Item], **_: object) -> str:
    return json.dumps([json_object(i) for i in items], indent=2, ensure_ascii=False) + "\n"


def write_json_lines(items: Sequence[Item], **_: object) -> str:
    return "".join(json.dumps(json_object(i), ensure_ascii=False) + "\n" for i in items)


def _gh_property(value: str) -> str:
    return (value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            .replace(":", "%3A").replace(",", "%2C"))


def _gh_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def write_github(items: Sequence[Item], **_: object) -> str:
    out = []
    for item in items:
        (sl, sc), (el, ec) = _span_chars(item)
        d = item.diag
        props = ",".join([
            f"file={_gh_property(item.path)}",
            f"line={sl}", f"col={sc}", f"endLine={el}", f"endColumn={ec}",
            f"title={_gh_property(d.code)}",
        ])
        where = f"{item.path}:cell {item.cell}" if item.cell is not None else item.path
        body = f"{where}:{sl}:{sc}: {d.code} {d.message}"
        out.append(f"::{level(d.code)} {props}::{_gh_data(body)}\n")
    return "".join(out)


def write_pylint(items: Sequence[Item], **_: object) -> str:
    return "".join(f"{i.path}{'' if i.cell is None else f':cell {i.cell}'}:{i.diag.span.line}: "
                   f"[{i.diag.code}] {i.diag.message}\n" for i in items)


def write_gitlab(items: Sequence[Item], **_: object) -> str:
    seen: Dict[str, int] = {}
    report = []
    for item in items:
        d = item.diag
        index = _index(item.text)
        line_text = index.line_text(d.span.line).strip() if 1 <= d.span.line <= index.line_count else ""
        # stable across unrelated edits that move the line: no line number in it
        key = "\0".join((item.path.replace(os.sep, "/"), d.code, d.message, line_text))
        seen[key] = seen.get(key, 0) + 1
        fingerprint = hashlib.sha256(f"{key}\0{seen[key]}".encode("utf-8", "surrogatepass")).hexdigest()
        report.append({
            "check_name": d.code,
            "description": f"{d.code} {d.message}" + ("" if item.cell is None else f" (cell {item.cell})"),
            "fingerprint": fingerprint,
            "location": {
                "lines": {"begin": d.span.line, "end": d.span.end_line},
                "path": item.path.replace(os.sep, "/"),
            },
            "severity": "minor" if level(d.code) == "warning" else "major",
        })
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def _artifact_location(path: str) -> Dict[str, str]:
    p = Path(path)
    if p.is_absolute():
        return {"uri": p.as_uri()}
    return {"uri": quote(path.replace(os.sep, "/")), "uriBaseId": "%SRCROOT%"}


def _region(start: Tuple[int, int], end: Tuple[int, int]) -> Dict[str, int]:
    return {"startLine": start[0], "startColumn": start[1], "endLine": end[0], "endColumn": end[1]}


def sarif_log(items: Sequence[Item], errors: Sequence[str] = ()) -> Dict[str, object]:
    codes = sorted(set(known_codes()) | {i.diag.code for i in items})
    rule_index = {code: n for n, code in enumerate(codes)}
    rules = []
    for code in codes:
        short, full = rule_info(code)
        rule: Dict[str, object] = {
            "id": code,
            "shortDescription": {"text": short},
            "fullDescription": {"text": full, "markdown": full},
            "help": {"text": full, "markdown": full},
            "defaultConfiguration": {"level": level(code)},
            "properties": {"tags": ["portability" if code.startswith("DEV0") else "efficiency"]},
        }
        url = rule_url(code)
        if url:
            rule["helpUri"] = url
        rules.append(rule)
    results = []
    for item in items:
        d = item.diag
        start, end = _span_chars(item)
        result: Dict[str, object] = {
            "ruleId": d.code,
            "ruleIndex": rule_index[d.code],
            "level": level(d.code),
            "message": {"text": d.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": _artifact_location(item.path),
                    "region": _region(start, end),
                },
            }],
        }
        if item.cell is not None:
            result["properties"] = {"cell": item.cell}  # the region's lines are the cell's
        if d.fix is not None and item.edits:
            result["fixes"] = [{
                "description": {"text": d.fix.description},
                "artifactChanges": [{
                    "artifactLocation": _artifact_location(item.path),
                    "replacements": [
                        {"deletedRegion": _region(e.start, e.end), "insertedContent": {"text": e.content}}
                        for e in item.edits
                    ],
                }],
            }]
        results.append(result)
    driver: Dict[str, object] = {
        "name": TOOL_NAME,
        "version": version(),
        "semanticVersion": version(),
        "rules": rules,
    }
    doc = rules_doc_path()
    if doc is not None:
        driver["informationUri"] = _docs_base() or doc.as_uri()
    run: Dict[str, object] = {
        "tool": {"driver": driver},
        "columnKind": "unicodeCodePoints",
        "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
        "results": results,
        "invocations": [{
            "executionSuccessful": not errors,
            "toolExecutionNotifications": [
                {"level": "error", "message": {"text": e}} for e in errors
            ],
        }],
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def write_sarif(items: Sequence[Item], errors: Sequence[str] = (), **_: object) -> str:
    return json.dumps(sarif_log(items, errors), indent=2, ensure_ascii=False) + "\n"


WRITERS: Dict[str, Callable[..., str]] = {
    "json": write_json,
    "json-lines": write_json_lines,
    "sarif": write_sarif,
    "github": write_github,
    "gitlab": write_gitlab,
    "pylint": write_pylint,
}

# Formats whose diagnostics need the fix's text edits.
NEEDS_EDITS = frozenset({"json", "json-lines", "sarif"})


# --- --statistics ------------------------------------------------------------


def statistics(items: Sequence[Item]) -> List[Dict[str, object]]:
    """Per code: how many were reported and how many of those --fix would fix."""
    counts: Dict[str, List[int]] = {}
    for item in items:
        c = counts.setdefault(item.diag.code, [0, 0])
        c[0] += 1
        c[1] += 1 if item.fixable else 0
    rows = []
    for code, (count, fixable) in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0])):
        rows.append({
            "code": code,
            "name": known_codes().get(code, code),
            "count": count,
            "fixable": fixable == count,
            "fixable_count": fixable,
        })
    return rows


def write_statistics(items: Sequence[Item], fmt: str) -> str:
    rows = statistics(items)
    if fmt in ("json", "json-lines", "sarif", "gitlab"):
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return ""
    width = max(len(str(r["count"])) for r in rows)
    cwidth = max(len(str(r["code"])) for r in rows)
    out = []
    for r in rows:
        mark = "[*]" if r["fixable"] else ("[-]" if r["fixable_count"] else "[ ]")
        out.append(f"{r['count']:>{width}}\t{r['code']:<{cwidth}}\t{mark} {r['name']}\n")
    return "".join(out)
