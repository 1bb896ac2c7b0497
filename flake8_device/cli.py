"""The ``flake8-device`` command: report, fix, diff or check device issues.

Usage: ``flake8-device [options] [PATH ...]``; see docs/cli.md.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import os
import re
import sys
from collections import Counter, defaultdict
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from flake8_device_fixers import DEFAULT_MAX_FILE_SIZE, SourceError, SourceFile

from flake8_device_fixers.files import decode_source, read_source, write_data
from flake8_device_fixers.positions import LineIndex

from . import add_noqa, notebooks, output

from .config import ConfigError, Settings, load_settings, normalize_pattern, parse_size, split_list
from .diagnostics import Diagnostic
from .discovery import GitIgnore, is_virtualenv
from .lines import split_lines
from .noqa import NoqaMap
from .runner import (  # noqa: F401  (FileReport, Runner, write_checked: importable from here too)
    DEFAULT_MAX_ROUNDS,
    REASON_ROUNDS,
    FileReport,
    Linter,
    Runner,
    write_checked,
)
from .runner import left_fixes
from .runner import report_items as _items

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_ERROR = 2


# --- discovering files ----------------------------------------------------


PYTHON_SUFFIXES = (".py", ".pyi", notebooks.NOTEBOOK_SUFFIX)


def iter_python_files(
    paths: Sequence[str],
    settings: Settings,
    on_error: Optional[Callable[[str], None]] = None,
    *,
    respect_gitignore: bool = True,
    force_exclude: bool = False,
) -> Iterator[str]:
    """Files named on the command line, and ``*.py``/``*.pyi``/``*.ipynb`` files under named folders.

    Ruff's rules: while walking a folder, entries matching the exclude
    patterns, folders holding ``pyvenv.cfg`` (virtual environments) and,
    inside a git work tree, what git ignores (``respect_gitignore``) are
    skipped.  A path named on the command line, file or folder, is always
    checked (a named folder is walked), unless ``force_exclude`` applies the
    same tests to it and the folders above it.  Each file is yielded once
    (by its real path), under the first name it was reached by.  A folder
    that cannot be listed is passed to ``on_error`` as a one-line message
    (the command exits 2), never skipped silently.  Symlinked folders are
    not followed.
    """
    ignore = GitIgnore() if respect_gitignore else None
    seen = set()

    def walk_error(exc: OSError) -> None:
        if on_error is not None:
            on_error(f"{exc.filename or '?'}: cannot read directory: {exc.strerror or exc}")

    def skipped_folder(full: str) -> bool:
        return (settings.is_excluded(full) or is_virtualenv(full)
                or (ignore is not None and ignore.ignored(full, True)))

    def skipped_file(full: str) -> bool:
        return settings.is_excluded(full) or (ignore is not None and ignore.ignored(full, False))

    def forced_out(path: str) -> bool:
        if _excluded_name(path, settings):
            return True
        current = os.path.abspath(path)
        is_dir = os.path.isdir(current)
        while True:
            if (is_dir and is_virtualenv(current)) or (ignore is not None and ignore.ignored(current, is_dir)):
                return True
            parent = os.path.dirname(current)
            if parent == current:
                return False
            current, is_dir = parent, True

    def once(path: str) -> bool:
        key = os.path.realpath(path)
        if key in seen:
            return False
        seen.add(key)
        return True

    for path in paths:
        if force_exclude and forced_out(path):
            continue
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path, onerror=walk_error):
                dirs[:] = sorted(d for d in dirs if not skipped_folder(os.path.join(root, d)))
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if name.endswith(PYTHON_SUFFIXES) and not skipped_file(full) and once(full):
                        yield full
        elif once(path):
            yield path


def given_roots(paths: Sequence[str]) -> List[str]:
    """Real folders the files reached from ``paths`` may be written in: each
    folder given, and the folder each given file is named in."""
    roots = []
    for path in paths:
        if os.path.isdir(path):
            roots.append(os.path.realpath(path))
        else:
            roots.append(os.path.realpath(os.path.dirname(os.path.abspath(path))))
    return roots


# --- output -------------------------------------------------------------


def _format(d: Diagnostic, path: str, marker: bool, nb: Optional["notebooks.Notebook"] = None) -> str:
    mark = "[*] " if marker else ""
    line = d.span.line
    if nb is not None:
        cell, line = nb.cell_of(line)
        path = f"{path}:cell {cell.number if cell is not None else 1}"
    return f"{path}:{line}:{d.span.col + 1}: {d.code} {mark}{d.message}"


def _explain(d: Diagnostic, why: Optional[str], fixing: bool) -> str:
    """The indented line under a diagnostic: the device its fix chose and why, or why there is none."""
    if d.fix is None:
        return f"    no fix: {d.no_fix_reason or why or 'no automatic fix'}"
    kind = "fix" if d.fix.safe else "unsafe fix"
    line = f"    {kind}: {d.fix.description}"
    if fixing and why:
        line += f" (left: {why})"
    return line


_LAST_INDEX: List = [None, None]  # (text, its LineIndex): one index per file, not per diagnostic


def _source_lines(text: str, d: Diagnostic) -> List[str]:
    if _LAST_INDEX[0] is not text:
        _LAST_INDEX[:] = [text, LineIndex(text)]
    index = _LAST_INDEX[1]
    if not 1 <= d.span.line <= index.line_count:
        return []
    line = index.line_text(d.span.line)
    raw = line.encode("utf-8", "surrogatepass")
    prefix = raw[: d.span.col].decode("utf-8", "replace")
    caret = "".join(c if c == "\t" else " " for c in prefix) + "^"
    return [line, caret]


def _git_lines(data: bytes) -> List[bytes]:
    """``data`` cut where ``git apply`` and ``patch`` cut it: after each ``\\n`` (a
    ``\\r\\n`` line keeps its ``\\r``; a lone ``\\r`` is a byte inside a line)."""
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _diff(report: FileReport, shown: Optional[str] = None, source: Optional[SourceFile] = None) -> bytes:
    """A unified diff ``git apply`` takes: ``a/PATH`` and ``b/PATH``, PATH relative to the current folder.

    The diff is of the file's bytes, as ``--fix`` would write them (its
    encoding, its BOM, its line ends): applied, it gives the file ``--fix``
    writes, byte for byte.  Lines are cut at ``\\n`` only, as git cuts them,
    so a file with lone ``\\r`` line ends is one line to git and the patch
    replaces it whole.  Raises :class:`SourceError` when the fixed text
    cannot be encoded in the file's encoding.
    """
    if source is None:
        source = decode_source(report.path, report.original.encode("utf-8"))
    old = source.raw
    try:
        new = source.encode(report.text)
    except UnicodeEncodeError as exc:
        raise SourceError(f"cannot encode the fixed text as {source.encoding}: {exc}") from exc
    name = os.fsencode((shown or display_path(report.path)).replace(os.sep, "/"))
    out = []
    for line in difflib.diff_bytes(difflib.unified_diff, _git_lines(old), _git_lines(new),
                                   fromfile=b"a/" + name, tofile=b"b/" + name):
        out.append(line if line.endswith(b"\n") else line + b"\n\\ No newline at end of file\n")
    return b"".join(out)


def _summary(reports: List[FileReport], out: TextIO) -> None:
    found: Counter = Counter()
    fixed: Counter = Counter()
    left: Counter = Counter()
    reasons: Dict[str, Counter] = defaultdict(Counter)
    for r in reports:
        found.update(d.code for d in r.found)
        fixed.update(d.code for d in r.fixed)
        for d, why in r.left:
            left[d.code] += 1
            reasons[d.code][why] += 1
    codes = sorted(set(found) | set(fixed) | set(left))
    print("Summary:", file=out)
    if not codes:
        print("  no diagnostics", file=out)
        return
    print(f"  {'code':<8}{'found':>7}{'fixed':>7}{'left':>7}", file=out)
    for code in codes:
        print(f"  {code:<8}{found[code]:>7}{fixed[code]:>7}{left[code]:>7}", file=out)
        for why, n in reasons[code].most_common():
            print(f"      {n} left: {why}", file=out)
    print(
        f"  {'total':<8}{sum(found.values()):>7}{sum(fixed.values()):>7}{sum(left.values()):>7}",
        file=out,
    )


# --- command line -----------------------------------------------------------


def _size(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flake8-device",
        description="Find and fix hardcoded accelerator devices in PyTorch code.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files or folders (default: .); '-' reads standard input")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    mode = p.add_argument_group("modes")
    mode.add_argument("--fix", action="store_true", help="rewrite files in place")
    mode.add_argument("--diff", action="store_true",
                      help="print a unified diff of the fixes (for git apply); change nothing")
    mode.add_argument("--check", action="store_true",
                      help="report every diagnostic and exit 1 if there is any; change nothing (wins over --fix)")
    mode.add_argument("--unsafe-fixes", action="store_true", help="also apply fixes marked unsafe")
    mode.add_argument("--add-noqa", action="store_true",
                      help="add '# noqa: CODE' comments to the lines with diagnostics")
    mode.add_argument("--stdin-filename", metavar="PATH",
                      help="the name of the file read from standard input ('-'): config, per-file-ignores "
                           "and reports use it")
    status = p.add_argument_group("exit status").add_mutually_exclusive_group()
    status.add_argument("--exit-zero", action="store_true",
                        help="exit 0 even when diagnostics are reported (2 still means an error)")
    status.add_argument("--exit-non-zero-on-fix", action="store_true",
                        help="with --fix: exit 1 when a file was changed, even if nothing is left")
    sel = p.add_argument_group("selection")
    for name in ("select", "ignore", "extend-select", "extend-ignore"):
        sel.add_argument(f"--{name}", metavar="CODES",
                         help=f"comma-separated code prefixes ({name} in flake8's sense)")
    sel.add_argument("--per-file-ignores", metavar="MAP", help="'pattern:CODES ...' pairs, as in flake8")
    sel.add_argument("--exclude", metavar="PATTERNS", help="replace the exclude patterns")
    sel.add_argument("--extend-exclude", metavar="PATTERNS", help="add exclude patterns")
    sel.add_argument("--respect-gitignore", action=argparse.BooleanOptionalAction, default=None,
                     help="inside a git work tree, skip what .gitignore and .git/info/exclude ignore "
                          "(default; --no-respect-gitignore checks it too)")
    sel.add_argument("--force-exclude", action=argparse.BooleanOptionalAction, default=None,
                     help="apply the excludes and .gitignore to paths named on the command line too "
                          "(for pre-commit, which names every file)")
    sel.add_argument("--disable-noqa", action="store_true", help="ignore # noqa comments")
    dev = p.add_argument_group("devices")
    dev.add_argument("--device-expr", metavar="EXPR",
                     help="device expression every fix uses first, e.g. self.device")
    dev.add_argument("--torch-version", metavar="X.Y",
                     help="oldest torch the fixed code runs on; 2.6 or later spells fixes with torch.accelerator")
    dev.add_argument("--accelerators", "--device-accelerators", dest="accelerators", metavar="NAMES",
                     help="comma-separated device types treated as hardcoded accelerators")
    out = p.add_argument_group("output")
    out.add_argument("--output-format", choices=output.FORMATS, default="text",
                     help="how diagnostics are printed (default text)")
    out.add_argument("--statistics", action="store_true",
                     help="print the number of diagnostics per code instead of the diagnostics")
    out.add_argument("--show-fixes", action="store_true",
                     help="with --fix or --diff: list what was fixed, per file and code")
    out.add_argument("--no-explain", action="store_true",
                     help="do not print, under each diagnostic, which device its fix uses and why")
    out.add_argument("--show-source", action="store_true", help="show the source line of each diagnostic")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="print the diagnostics (or the --diff or format's output) and errors, nothing else: "
                          "no explanation lines, no totals")
    out.add_argument("--summary", action="store_true",
                     help="print per-code counts found/fixed/left at the end")
    cfg = p.add_argument_group("configuration")
    cfg.add_argument("--config", metavar="FILE",
                     help="read this config file instead of searching (a .toml file is read as a "
                          "pyproject.toml, with its [tool.flake8-device] table)")
    cfg.add_argument("--isolated", action="store_true", help="read no config file")
    cfg.add_argument("--max-file-size", type=_size, default=None, metavar="BYTES",
                     help="skip larger files (default 10M; 0 = no limit; K/M/G suffixes allowed)")
    cfg.add_argument("--max-rounds", type=int, default=DEFAULT_MAX_ROUNDS, metavar="N",
                     help="lint-and-fix rounds per file (default 5)")
    return p


def _check_selection(settings: Settings, args: argparse.Namespace) -> None:
    """Selectors that match no code are usage errors, as in Ruff (a typo must not pass CI).

    On the command line every selector must be a prefix of a code; in a config file, shared with
    flake8's other plugins, only selectors that start with ``DEV`` are checked. ``--device-expr``
    must be a Python expression.
    """
    from .rules import CODES

    known = set(CODES) | {"DEV000"}
    given = {
        name: split_list(getattr(args, name)) for name in ("select", "ignore", "extend_select", "extend_ignore")
    }
    from_flags = {sel for values in given.values() for sel in values}
    from_config = set(settings.select or []) | set(settings.ignore) | set(settings.extend_select)
    from_config |= set(settings.extend_ignore)
    for sel in sorted(from_flags | from_config):
        if any(code.startswith(sel) for code in known):
            continue
        if sel in from_flags or sel.startswith("DEV") or settings.own_config:
            where = "option" if sel in from_flags else f"configuration ({settings.config_path or 'config file'})"
            raise ConfigError(f"unknown rule selector {sel!r} in the {where}: it matches no code "
                              f"(codes: {', '.join(sorted(known))}; separate several with commas)")
    if settings.device_expr is not None:
        try:
            ast.parse(settings.device_expr, mode="eval")
        except SyntaxError:
            raise ConfigError(f"--device-expr {settings.device_expr!r} is not a Python expression") from None


def _apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    if args.select is not None:
        settings.select = split_list(args.select)
    if args.ignore is not None:
        settings.ignore = split_list(args.ignore)
    if args.extend_select is not None:
        settings.extend_select = settings.extend_select + split_list(args.extend_select)
    if args.extend_ignore is not None:
        settings.extend_ignore = settings.extend_ignore + split_list(args.extend_ignore)
    if args.per_file_ignores is not None:
        from .config import parse_per_file_ignores

        settings.per_file_ignores = parse_per_file_ignores(args.per_file_ignores, os.getcwd())
    if args.exclude is not None:
        settings.exclude = [normalize_pattern(x, os.getcwd()) for x in split_list(args.exclude)]
    if args.extend_exclude is not None:
        settings.extend_exclude = settings.extend_exclude + [
            normalize_pattern(x, os.getcwd()) for x in split_list(args.extend_exclude)
        ]
    if args.device_expr is not None:
        settings.device_expr = args.device_expr.strip() or None
    if args.accelerators is not None:
        settings.accelerators = frozenset(split_list(args.accelerators))
    if args.torch_version is not None:
        from .options import parse_torch_version

        try:
            settings.torch_version = parse_torch_version(args.torch_version)
        except ValueError as exc:
            raise ConfigError(f"--torch-version: {exc}") from None
    if args.respect_gitignore is not None:
        settings.respect_gitignore = args.respect_gitignore
    if args.force_exclude is not None:
        settings.force_exclude = args.force_exclude
    return settings


class _PipeGuard:
    """Standard output that goes quiet, instead of raising, once its reader has gone (``| head``).

    The run goes on (files are still fixed and the exit status still counts);
    the descriptor is pointed at the null device so the final flush at exit
    cannot fail either.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def _gone(self) -> None:
        self.gone = True
        try:
            fd = self.stream.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def write_bytes(self, data: bytes) -> None:
        """Write ``data`` as it is: to the stream's binary buffer, after what
        was written as text (a stream without one, such as a test's
        ``StringIO``, gets the bytes decoded as UTF-8, undecodable bytes kept
        as surrogates)."""
        if self.gone:
            return
        buffer = getattr(self.stream, "buffer", None)
        try:
            if buffer is None:
                self.stream.write(data.decode("utf-8", "surrogateescape"))
                return
            self.stream.flush()
            buffer.write(data)
            buffer.flush()
        except BrokenPipeError:
            self._gone()

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()


def display_path(path: str) -> str:
    """The path as reports show it: relative to the current folder when under it, without ``./``."""
    if path == "-":
        return path
    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path)
        except ValueError:  # another drive
            return path
        return path if rel.startswith(os.pardir) else rel
    return os.path.normpath(path)


def _text_lines(report: FileReport, path: str, runner: "Runner", args: argparse.Namespace,
                fixing: bool, nb: Optional["notebooks.Notebook"] = None) -> List[str]:
    lines = []
    for d, why in report.left:
        lines.append(_format(d, path, runner.fixable(d) and not fixing, nb))
        if not args.no_explain and not args.quiet:
            lines.append(_explain(d, why, fixing))
        if args.show_source:
            lines.extend(_source_lines(report.text, d))
    return lines


def _add_noqa(report: FileReport, runner: "Runner") -> Tuple[str, int, List[Tuple[int, str]]]:
    """The file's text with a ``# noqa`` for each diagnostic left; refuses a text that no longer parses."""
    from flake8_device_fixers.syntax import parses

    reports = [(d.span.line, d.code) for d, _ in report.left]
    new, edited, failed = add_noqa.add_noqa(report.text, reports)
    if new == report.text:
        return report.text, 0, failed
    if not parses(new, report.path):
        return report.text, 0, reports
    noqa = NoqaMap(new)
    failed += [(line, code) for line, code in reports
               if (line, code) not in failed and not noqa.suppresses(line, code)]
    return new, edited, failed


def _show_fixes(reports: List[FileReport], out: TextIO) -> None:
    fixed = [(r, Counter(d.code for d in r.fixed)) for r in reports if r.fixed and not r.error]
    total = sum(sum(c.values()) for _, c in fixed)
    if not total:
        print("No diagnostics fixed.", file=out)
        return
    print(f"Fixed {total} diagnostic(s):", file=out)
    from .rules import CODES

    for r, counts in fixed:
        print(f"- {display_path(r.path)}:", file=out)
        for code, n in sorted(counts.items()):
            print(f"    {n:>3} \N{MULTIPLICATION SIGN} {code} ({CODES.get(code, code)})", file=out)


def _excluded_name(name: str, settings: Settings) -> bool:
    """Whether a file of that name would be skipped by a walk: it or a folder above it is excluded."""
    path = os.path.normpath(name)
    while path and path not in (os.curdir, os.sep):
        if settings.is_excluded(path):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return False


def _stdin_back(out: "_PipeGuard", source: SourceFile, text: str, fail: Callable[..., None]) -> None:
    """Write ``text`` (the source of standard input, maybe fixed) back to standard output as
    bytes: the input bytes themselves when nothing changed, else encoded in the source's own
    encoding with its BOM (the line ends are the text's, which keep the source's)."""
    if text == source.text:
        out.write_bytes(source.raw)
        return
    try:
        out.write_bytes(source.encode(text))
    except UnicodeEncodeError as exc:
        fail(f"{source.path}: cannot encode the fixed text as {source.encoding}: {exc}; the input is "
             "handed back unchanged", source.path)
        out.write_bytes(source.raw)


def _read_stdin(stdin: Optional[BinaryIO], name: str) -> SourceFile:
    stream = stdin if stdin is not None else sys.stdin.buffer
    raw = stream.read()
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    return decode_source(name, raw)


# --- notebooks ------------------------------------------------------------------


def _read_notebook(path: str, max_size: int, source: Optional[SourceFile] = None
                   ) -> Tuple[SourceFile, "notebooks.Notebook", SourceFile]:
    """The notebook's file (read here unless given: standard input), the notebook, and its code
    cells as the Python source the runner checks."""
    if source is None:
        source = read_source(path, max_size)
    nb = notebooks.read(source.text, path)
    python = SourceFile(path=path, raw=nb.python.encode("utf-8", "surrogatepass"), encoding="utf-8",
                        text=nb.python)
    return source, nb, python


def _notebook_syntax_error(nb: "notebooks.Notebook", path: str) -> Optional[str]:
    """``PATH:cell N:LINE:COL: E999 ...`` for the first code cell that does not parse."""
    for cell in nb.cells:
        try:
            ast.parse(nb.cell_text(cell), filename=path)
        except SyntaxError as exc:
            return f"{path}:cell {cell.number}:{exc.lineno or 1}:{exc.offset or 1}: E999 SyntaxError: {exc.msg}"
        except (ValueError, RecursionError, MemoryError) as exc:
            return f"{path}:cell {cell.number}:1:1: E902 {type(exc).__name__}: {exc}"
    return None


def _notebook_items(items: List[output.Item], nb: "notebooks.Notebook") -> List[output.Item]:
    """Records of the notebook's Python text as records of its cells: lines of the cell, the
    cell's text, the cell number; a fix whose edits leave the cell is shown without edits."""
    from dataclasses import replace

    from .diagnostics import Span

    out = []
    for item in items:
        s = item.diag.span
        cell, line = nb.cell_of(s.line)
        if cell is None:
            out.append(item)
            continue
        top = cell.marker_line
        text = nb.cell_text(cell)
        last = len(split_lines(text))
        end_line = s.end_line - top
        diag = replace(item.diag, span=Span(line, s.col, end_line, s.end_col))
        edits = None
        if item.edits is not None:
            edits = []
            for e in item.edits:
                (sl, sc), (el, ec) = e.start, e.end
                if not (1 <= sl - top <= last and 1 <= el - top <= last + 1):
                    edits = None
                    break
                edits.append(output.Edit((sl - top, sc), (el - top, ec), e.content))
        row = item.noqa_row - top if item.noqa_row is not None else None
        out.append(replace(item, diag=diag, text=text, edits=edits, noqa_row=row, cell=cell.number))
    return out


def _notebook_back(out: "_PipeGuard", source: SourceFile, nb: "notebooks.Notebook", python: str,
                   fail: Callable[..., None]) -> None:
    """Standard input's notebook, with the cells of ``python``, back on standard output (unchanged,
    with an error, when it cannot be rendered exactly)."""
    try:
        out.write_bytes(source.encode(nb.render(python)))
    except notebooks.NotebookError as exc:
        fail(f"{source.path}: {exc}; the input is handed back unchanged", source.path)
        out.write_bytes(source.raw)


def _write_notebook(source: SourceFile, nb: "notebooks.Notebook", python: str, roots: Sequence[str]) -> None:
    """Write the notebook with the cells of ``python``: only the changed sources are new bytes.
    Raises :class:`SourceError` (nothing written) when that cannot be done exactly."""
    try:
        new = nb.render(python)
    except notebooks.NotebookError as exc:
        raise SourceError(str(exc)) from None
    if new == source.text:
        return
    real = os.path.realpath(source.path)
    if roots and not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        raise SourceError(f"not written: it is a symlink to {real}, outside the paths given")
    write_data(source, source.encode(new))


def main(
    argv: Optional[Sequence[str]] = None,
    *,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
    stdin: Optional[BinaryIO] = None,
    linter: Optional[Linter] = None,
) -> int:
    out: TextIO = _PipeGuard(stdout or sys.stdout)  # type: ignore[assignment]
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_ERROR if exc.code not in (0, None) else EXIT_OK
    if args.version:
        print(f"flake8-device {output.version()}", file=out)
        out.flush()
        return EXIT_OK
    if args.max_rounds < 1:
        print("flake8-device: --max-rounds must be at least 1", file=err)
        return EXIT_ERROR
    paths = args.paths or ["."]
    use_stdin = "-" in paths
    if use_stdin and len(paths) > 1:
        print("flake8-device: '-' (standard input) cannot be combined with other paths", file=err)
        return EXIT_ERROR
    if args.stdin_filename is not None and not use_stdin:
        if args.paths:
            print("flake8-device: --stdin-filename needs '-' as the only path", file=err)
            return EXIT_ERROR
        use_stdin = True  # Ruff's rule: --stdin-filename alone reads standard input
    if args.add_noqa and (args.fix or args.diff or args.check):
        print("flake8-device: --add-noqa cannot be combined with --fix, --diff or --check", file=err)
        return EXIT_ERROR
    try:
        settings = _apply_flags(load_settings(args.config, args.isolated), args)
        for warning in settings.warnings:
            print(f"flake8-device: warning: {warning}", file=err)
        _check_selection(settings, args)
    except ConfigError as exc:
        print(f"flake8-device: {exc}", file=err)
        return EXIT_ERROR

    max_file_size = (args.max_file_size if args.max_file_size is not None
                     else settings.max_file_size if settings.max_file_size is not None
                     else DEFAULT_MAX_FILE_SIZE)
    fmt = args.output_format
    text_format = fmt == "text"
    # --check reports and changes nothing; with --diff it also prints the diff.
    diff_mode = args.diff
    write_mode = args.fix and not args.diff and not args.check and not args.add_noqa
    fixing = write_mode or diff_mode
    runner = Runner(
        settings,
        fix=fixing,
        unsafe=args.unsafe_fixes,
        max_file_size=max_file_size,
        disable_noqa=args.disable_noqa,
        max_rounds=args.max_rounds,
        linter=linter,
    )
    # With --fix on standard input the fixed text owns standard output.
    report_out = err if (use_stdin and (write_mode or args.add_noqa)) else out
    errors: List[str] = []
    reports: List[FileReport] = []
    items: List[output.Item] = []
    would_change = 0
    noqa_added = 0

    def fail(message: str, path: Optional[str] = None) -> None:
        """Report an error on standard error; in a structured format it is also a DEV000 record
        of ``path`` (the message is ``PATH[:LINE[:COL]]: REASON``)."""
        print(message, file=err)
        errors.append(message)
        if path is not None and not text_format:
            rest = message[len(path):] if message.startswith(path) else ": " + message
            cell = re.match(r":cell (\d+)(?=:)", rest)  # a notebook's cell: the line is the cell's
            if cell is not None:
                rest = rest[cell.end():]
            item = output.problem_item(display_path(path), rest)
            if cell is not None:
                item.cell = int(cell.group(1))
            items.append(item)

    roots = given_roots([p for p in paths if os.path.lexists(p)])

    def jobs() -> Iterator[Tuple[str, Optional[SourceFile]]]:
        if use_stdin:
            name = args.stdin_filename or "-"
            try:
                source = _read_stdin(stdin, name)
            except SourceError as exc:
                fail(f"{name}: {exc}", name)
                return
            if args.stdin_filename is not None and _excluded_name(name, settings):
                if write_mode or args.add_noqa:
                    out.write_bytes(source.raw)  # excluded: hand the bytes back unchanged
                return
            yield name, source
            return
        for path in paths:
            if not os.path.lexists(path):
                fail(f"{path}: no such file or directory", path)
        def walk_failed(message: str) -> None:
            fail(message, message.rsplit(": cannot read directory", 1)[0])

        for path in iter_python_files([p for p in paths if os.path.lexists(p)], settings, on_error=walk_failed,
                                      respect_gitignore=settings.respect_gitignore,
                                      force_exclude=settings.force_exclude):
            yield path, None

    for path, given in jobs():
        nb = nb_file = None
        if notebooks.is_notebook(path):
            hand_back = given is not None and (write_mode or args.add_noqa)  # standard input goes back
            try:
                nb_file, nb, given = _read_notebook(path, max_file_size, given)
            except SourceError as exc:
                fail(f"{path}: {exc}", path)
                continue
            except notebooks.NotebookError as exc:
                fail(f"{path}:1:1: E902 {exc}", path)
                if hand_back:
                    out.write_bytes(given.raw)
                continue
            problem = None if nb.is_python else ""  # another kernel's language: not checked (as in Ruff)
            problem = _notebook_syntax_error(nb, path) if problem is None else problem
            if problem is not None:
                if problem:
                    fail(problem, path)
                if hand_back:
                    out.write_bytes(nb_file.raw)
                continue
        try:
            report, source = runner.run_file(path, given) if given is not None else runner.run_file(path)
        except Exception as exc:  # a bug must not stop the run or lose a file
            fail(f"{path}: internal error: {type(exc).__name__}: {exc}", path)
            continue
        reports.append(report)
        shown = display_path(path)
        if nb is not None:
            source = nb_file
        if report.error:
            if use_stdin and (write_mode or args.add_noqa):
                out.write_bytes(source.raw if source is not None else report.original.encode("utf-8"))
            fail(report.error, path)
            continue
        if args.add_noqa:
            new, edited, failed = _add_noqa(report, runner)
            for line, code in failed:
                where = shown
                if nb is not None:
                    cell, line = nb.cell_of(line)
                    where = f"{shown}:cell {cell.number if cell is not None else 1}"
                fail(f"{where}:{line}: {code}: no place for a # noqa comment", shown)
            if nb is not None and use_stdin:
                _notebook_back(out, source, nb, new, fail)
            elif nb is not None:
                if edited:
                    try:
                        _write_notebook(source, nb, new, roots)
                    except SourceError as exc:
                        fail(f"{path}: {exc}", path)
                        continue
            elif use_stdin:
                # the source, with the comments, goes back on standard output
                _stdin_back(out, source, new, fail)
            elif edited:
                try:
                    write_checked(source, new, roots)
                except SourceError as exc:
                    fail(f"{path}: {exc}", path)
                    continue
            noqa_added += edited
            continue
        if report.changed:
            would_change += 1
            if diff_mode and nb is not None:
                try:
                    nb.render(report.text)  # what --fix would write must be writable
                    out.write_bytes(notebooks.cell_diff(nb, report.text, shown).encode("utf-8", "surrogateescape"))
                except notebooks.NotebookError as exc:
                    fail(f"{path}: {exc}", path)
                    continue
            elif diff_mode:
                try:
                    out.write_bytes(_diff(report, shown, source))
                except SourceError as exc:
                    fail(f"{path}: {exc}", path)
                    continue
            elif write_mode and use_stdin:
                pass
            elif write_mode:
                try:
                    if nb is not None:
                        _write_notebook(source, nb, report.text, roots)
                    else:
                        write_checked(source, report.text, roots)
                except SourceError as exc:
                    fail(f"{path}: {exc}", path)
                    report.left.extend((d, f"not written: {exc}") for d in report.fixed)
                    report.fixed = []
                    report.text = report.original
                    continue
        if use_stdin and write_mode and nb is not None:
            _notebook_back(out, source, nb, report.text, fail)
        elif use_stdin and write_mode:
            _stdin_back(out, source, report.text, fail)
        if diff_mode:
            # the diff is the whole of standard output; the fixes it left, and why, go to
            # standard error as --fix prints them
            if text_format and not args.statistics and not args.quiet:
                for line in _text_lines(left_fixes(report), shown, runner, args, fixing, nb):
                    print(line, file=err)
            continue
        if args.statistics or not text_format:
            records = _items(report, shown, runner, fixing, fmt if not args.statistics else "text")
            items.extend(_notebook_items(records, nb) if nb is not None else records)
        else:
            for line in _text_lines(report, shown, runner, args, fixing, nb):
                print(line, file=report_out)

    left = sum(len(r.left) for r in reports)
    fixed = sum(len(r.fixed) for r in reports)
    # the files whose fixes were kept (written, or handed back on standard output)
    files_fixed = sum(1 for r in reports if r.fixed and r.changed and not r.error)
    found = sum(len(r.found) for r in reports)
    # What goes to standard output in a structured format is only that format.
    side = report_out if text_format else err
    if diff_mode:
        pass
    elif args.statistics:
        report_out.write(output.write_statistics(items, fmt))
    elif not text_format:
        report_out.write(output.WRITERS[fmt](items, errors=errors))
    if args.add_noqa:
        if not args.quiet:
            print(f"Added {noqa_added} noqa directive(s).", file=err if use_stdin else side)
    elif not args.quiet and text_format and not args.statistics:
        if write_mode and fixed:
            print(f"Fixed {fixed} diagnostic(s) in {files_fixed} file(s); {left} left.", file=report_out)
        elif not fixing:
            n_fix = sum(1 for r in reports for d, _ in r.left if runner.fixable(d))
            n_unsafe = sum(
                1 for r in reports for d, _ in r.left
                if d.fix is not None and not d.fix.safe and not args.unsafe_fixes and runner.refusal(d) is None
            )
            if n_fix:
                print(f"[*] {n_fix} fixable with --fix.", file=report_out)
            if n_unsafe:
                print(f"{n_unsafe} more fixable with --fix --unsafe-fixes.", file=report_out)
    if args.show_fixes and fixing:
        _show_fixes(reports, err if (diff_mode or use_stdin or not text_format) else out)
    if args.summary:
        _summary(reports, side)
    out.flush()

    if errors:
        return EXIT_ERROR
    if args.exit_zero or args.add_noqa:
        return EXIT_OK
    if diff_mode:
        return EXIT_FOUND if would_change or (args.check and found) else EXIT_OK
    if write_mode:
        return EXIT_FOUND if left or (args.exit_non_zero_on_fix and would_change) else EXIT_OK
    return EXIT_FOUND if left else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
