"""The ``flake8-device`` command: report, fix, diff or check device issues.

Usage: ``flake8-device [options] [PATH ...]``; see docs/cli.md.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from fixers import (
    DEFAULT_MAX_FILE_SIZE,
    REASON_NO_FIX,
    SourceError,
    apply_fixes,
    read_source,
    write_source,
)

from fixers.positions import LineIndex

from .config import ConfigError, Settings, load_settings, normalize_pattern, split_list
from .diagnostics import Diagnostic
from .noqa import NoqaMap
from .options import Options

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_ERROR = 2

DEFAULT_MAX_ROUNDS = 5
REASON_ROUNDS = "fixes did not settle within {n} rounds"


# --- discovering files ----------------------------------------------------


def iter_python_files(paths: Sequence[str], settings: Settings) -> Iterator[str]:
    """Files named on the command line, and *.py files under named folders.

    Folders and files matching the exclude patterns are skipped while
    walking; a file named explicitly is skipped too when it matches (as
    flake8 does).
    """
    for path in paths:
        if os.path.isdir(path):
            if settings.is_excluded(path) and os.path.abspath(path) != os.path.abspath("."):
                continue
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not settings.is_excluded(os.path.join(root, d)))
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if name.endswith(".py") and not settings.is_excluded(full):
                        yield full
        else:
            if not settings.is_excluded(path):
                yield path


# --- one file ---------------------------------------------------------------


@dataclass
class FileReport:
    path: str
    found: List[Diagnostic] = field(default_factory=list)
    fixed: List[Diagnostic] = field(default_factory=list)
    left: List[Tuple[Diagnostic, str]] = field(default_factory=list)
    original: str = ""
    text: str = ""
    error: Optional[str] = None

    @property
    def changed(self) -> bool:
        return self.text != self.original


Linter = Callable[[str, str, Options], List[Diagnostic]]


def _default_linter(text: str, filename: str, options: Options) -> List[Diagnostic]:
    from . import engine

    return list(engine.check_source(text, filename, options))


class Runner:
    def __init__(
        self,
        settings: Settings,
        *,
        fix: bool,
        unsafe: bool,
        max_file_size: int,
        disable_noqa: bool = False,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        linter: Optional[Linter] = None,
    ) -> None:
        self.settings = settings
        self.options = settings.options()
        self.fix = fix
        self.unsafe = unsafe
        self.max_file_size = max_file_size
        self.disable_noqa = disable_noqa
        self.max_rounds = max_rounds
        self.linter = linter or _default_linter

    def lint(self, text: str, path: str) -> List[Diagnostic]:
        diags = self.linter(text, path, self.options)
        noqa = NoqaMap(text)
        out = []
        for d in diags:
            if not self.settings.is_selected(d.code, path):
                continue
            if not self.disable_noqa and noqa.suppresses(d.span.line, d.code):
                continue
            out.append(d)
        out.sort(key=lambda d: (d.span, d.code))
        return out

    def run_file(self, path: str) -> Tuple[FileReport, Optional[object]]:
        report = FileReport(path)
        try:
            source = read_source(path, self.max_file_size)
        except SourceError as exc:
            report.error = f"{path}: {exc}"
            return report, None
        text = source.text
        report.original = report.text = text
        if not self.disable_noqa and NoqaMap(text).file_ignored:
            return report, source
        try:
            diags = self.lint(text, path)
        except SyntaxError as exc:
            line = exc.lineno or 1
            col = (exc.offset or 1)
            report.error = f"{path}:{line}:{col}: E999 SyntaxError: {exc.msg}"
            return report, source
        except RecursionError:
            report.error = f"{path}:1:1: E902 RecursionError: the file nests too deeply to analyse"
            return report, source
        report.found = diags
        if not self.fix:
            report.left = [(d, self._why_not(d)) for d in diags]
            return report, source

        reasons: Dict[Tuple, str] = {}
        for _round in range(self.max_rounds):
            result = apply_fixes(text, diags, unsafe=self.unsafe, filename=path)
            for d, why in result.skipped:
                reasons[(d.code, d.span)] = why
            if not result.applied:
                break
            try:
                new_diags = self.lint(result.text, path)
            except SyntaxError:
                # never keep a text the engine cannot read
                for d in result.applied:
                    reasons[(d.code, d.span)] = "fix would not parse"
                break
            report.fixed.extend(result.applied)
            text = result.text
            diags = new_diags
        else:
            if diags and apply_fixes(text, diags, unsafe=self.unsafe, filename=path).applied:
                for d in diags:
                    reasons.setdefault((d.code, d.span), REASON_ROUNDS.format(n=self.max_rounds))
        report.text = text
        report.left = [(d, reasons.get((d.code, d.span)) or self._why_not(d)) for d in diags]
        return report, source

    def _why_not(self, d: Diagnostic) -> str:
        if d.fix is None:
            return d.no_fix_reason or REASON_NO_FIX
        if not d.fix.safe and not self.unsafe:
            return "unsafe fix; use --unsafe-fixes"
        return "fixable with --fix"

    def fixable(self, d: Diagnostic) -> bool:
        return d.fix is not None and (d.fix.safe or self.unsafe)


# --- output -------------------------------------------------------------


def _format(d: Diagnostic, path: str, marker: bool) -> str:
    mark = "[*] " if marker else ""
    return f"{path}:{d.span.line}:{d.span.col + 1}: {d.code} {mark}{d.message}"


def _explain(d: Diagnostic, why: Optional[str], fixing: bool) -> str:
    """The indented line under a diagnostic: the device its fix chose and why, or why there is none."""
    if d.fix is None:
        return f"    no fix: {d.no_fix_reason or why or 'no automatic fix'}"
    kind = "fix" if d.fix.safe else "unsafe fix"
    line = f"    {kind}: {d.fix.description}"
    if fixing and why:
        line += f" (left: {why})"
    return line


def _source_lines(text: str, d: Diagnostic) -> List[str]:
    index = LineIndex(text)
    if not 1 <= d.span.line <= index.line_count:
        return []
    line = index.line_text(d.span.line)
    raw = line.encode("utf-8", "surrogatepass")
    prefix = raw[: d.span.col].decode("utf-8", "replace")
    caret = "".join(c if c == "\t" else " " for c in prefix) + "^"
    return [line, caret]


def _diff(report: FileReport) -> str:
    a = report.original.splitlines(True)
    b = report.text.splitlines(True)
    out = []
    for line in difflib.unified_diff(a, b, fromfile="a/" + report.path, tofile="b/" + report.path):
        out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(out)


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
    text = value.strip().upper()
    scale = 1
    for suffix, mult in (("K", 1024), ("M", 1024 ** 2), ("G", 1024 ** 3)):
        if text.endswith(suffix + "B") or text.endswith(suffix):
            text = text[: -len(suffix + "B")] if text.endswith(suffix + "B") else text[:-1]
            scale = mult
            break
    try:
        n = int(float(text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("size must be >= 0")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flake8-device",
        description="Find and fix hardcoded accelerator devices in PyTorch code.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: .)")
    mode = p.add_argument_group("modes")
    mode.add_argument("--fix", action="store_true", help="rewrite files in place")
    mode.add_argument("--diff", action="store_true", help="print a unified diff of the fixes; change nothing")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if fixing would change a file; change nothing")
    mode.add_argument("--unsafe-fixes", action="store_true", help="also apply fixes marked unsafe")
    sel = p.add_argument_group("selection")
    for name in ("select", "ignore", "extend-select", "extend-ignore"):
        sel.add_argument(f"--{name}", metavar="CODES",
                         help=f"comma-separated code prefixes ({name} in flake8's sense)")
    sel.add_argument("--per-file-ignores", metavar="MAP", help="'pattern:CODES ...' pairs, as in flake8")
    sel.add_argument("--exclude", metavar="PATTERNS", help="replace the exclude patterns")
    sel.add_argument("--extend-exclude", metavar="PATTERNS", help="add exclude patterns")
    sel.add_argument("--disable-noqa", action="store_true", help="ignore # noqa comments")
    dev = p.add_argument_group("devices")
    dev.add_argument("--device-expr", metavar="EXPR",
                     help="device expression every fix uses first, e.g. self.device")
    dev.add_argument("--accelerators", "--device-accelerators", dest="accelerators", metavar="NAMES",
                     help="comma-separated device types treated as hardcoded accelerators")
    out = p.add_argument_group("output")
    out.add_argument("--no-explain", action="store_true",
                     help="do not print, under each diagnostic, which device its fix uses and why")
    out.add_argument("--show-source", action="store_true", help="show the source line of each diagnostic")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="print nothing but errors, --diff output and the summary")
    out.add_argument("--summary", action="store_true",
                     help="print per-code counts found/fixed/left at the end")
    cfg = p.add_argument_group("configuration")
    cfg.add_argument("--config", metavar="FILE", help="read this flake8 config file instead of searching")
    cfg.add_argument("--isolated", action="store_true", help="read no config file")
    cfg.add_argument("--max-file-size", type=_size, default=DEFAULT_MAX_FILE_SIZE, metavar="BYTES",
                     help="skip larger files (default 10M; 0 = no limit; K/M/G suffixes allowed)")
    cfg.add_argument("--max-rounds", type=int, default=DEFAULT_MAX_ROUNDS, metavar="N",
                     help="lint-and-fix rounds per file (default 5)")
    return p


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
    return settings


def main(
    argv: Optional[Sequence[str]] = None,
    *,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
    linter: Optional[Linter] = None,
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_ERROR if exc.code not in (0, None) else EXIT_OK
    if args.max_rounds < 1:
        print("flake8-device: --max-rounds must be at least 1", file=err)
        return EXIT_ERROR
    try:
        settings = _apply_flags(load_settings(args.config, args.isolated), args)
    except ConfigError as exc:
        print(f"flake8-device: {exc}", file=err)
        return EXIT_ERROR

    fixing = args.fix or args.diff or args.check
    runner = Runner(
        settings,
        fix=fixing,
        unsafe=args.unsafe_fixes,
        max_file_size=args.max_file_size,
        disable_noqa=args.disable_noqa,
        max_rounds=args.max_rounds,
        linter=linter,
    )
    paths = args.paths or ["."]
    errors = 0
    reports: List[FileReport] = []
    for path in paths:
        if not os.path.lexists(path):
            print(f"{path}: no such file or directory", file=err)
            errors += 1
    would_change = 0
    for path in iter_python_files([p for p in paths if os.path.lexists(p)], settings):
        try:
            report, source = runner.run_file(path)
        except Exception as exc:  # a bug must not stop the run or lose a file
            print(f"{path}: internal error: {type(exc).__name__}: {exc}", file=err)
            errors += 1
            continue
        reports.append(report)
        if report.error:
            print(report.error, file=err)
            errors += 1
            continue
        if report.changed:
            would_change += 1
            if args.diff:
                out.write(_diff(report))
            if args.fix and not args.diff and not args.check:
                try:
                    write_source(source, report.text)
                except SourceError as exc:
                    print(f"{path}: {exc}", file=err)
                    errors += 1
                    report.left.extend((d, f"not written: {exc}") for d in report.fixed)
                    report.fixed = []
                    continue
            elif args.check and not args.quiet:
                print(f"would fix {path}", file=out)
        if not args.quiet and not args.diff:
            shown = report.left
            for d, why in shown:
                print(_format(d, path, runner.fixable(d) and not fixing), file=out)
                if not args.no_explain:
                    print(_explain(d, why, fixing), file=out)
                if args.show_source:
                    for line in _source_lines(report.text, d):
                        print(line, file=out)

    left = sum(len(r.left) for r in reports)
    fixed = sum(len(r.fixed) for r in reports)
    if not args.quiet:
        if args.fix and not args.diff and not args.check and fixed:
            print(f"Fixed {fixed} diagnostic(s) in {would_change} file(s); {left} left.", file=out)
        elif not fixing:
            n_fix = sum(1 for r in reports for d, _ in r.left if runner.fixable(d))
            n_unsafe = sum(
                1 for r in reports for d, _ in r.left
                if d.fix is not None and not d.fix.safe and not args.unsafe_fixes
            )
            if n_fix:
                print(f"[*] {n_fix} fixable with --fix.", file=out)
            if n_unsafe:
                print(f"{n_unsafe} more fixable with --fix --unsafe-fixes.", file=out)
    if args.summary:
        _summary(reports, out)

    if errors:
        return EXIT_ERROR
    if args.check or args.diff:
        return EXIT_FOUND if would_change else EXIT_OK
    return EXIT_FOUND if left else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
