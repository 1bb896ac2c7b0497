"""Linting and fixing one file: the rounds of ``--fix``, what is left and why.

:class:`Runner` lints a file with the run's settings (selection, ``# noqa``),
applies the fixes with every post-condition checked, re-lints until the fixes
settle and keeps, for each diagnostic left, the reason it was left.
:func:`write_checked` writes a fixed file back, refusing a path that leaves the
folders given.  The command (:mod:`flake8_device.cli`) and the harness drive it.
"""

from __future__ import annotations

import ast
import dataclasses
import gc
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from flake8_device_fixers import (
    REASON_NO_FIX,
    FilePlan,
    SourceError,
    SourceFile,
    read_source,
    write_source,
)

from . import add_noqa, output
from .config import Settings
from .diagnostics import Diagnostic
from .noqa import NoqaMap
from .options import Options

DEFAULT_MAX_ROUNDS = 5
REASON_ROUNDS = "fixes did not settle within {n} rounds"


def write_checked(source: SourceFile, text: str, roots: Sequence[str]) -> None:
    """:func:`flake8_device_fixers.write_source`, refusing a file whose real path, through a
    symlink, lies outside every one of ``roots``."""
    real = os.path.realpath(source.path)
    if roots and not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        raise SourceError(f"not written: it is a symlink to {real}, outside the paths given")
    write_source(source, text)


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
        # names a stand-in linter's fixes may use without defining them (tests)
        self.assumed_names = tuple(getattr(self.linter, "assumed_names", ()))
        # groups of the last lint with a member filtered out -> why
        self.blocked_groups: Dict[str, str] = {}
        self._tree: Optional[Tuple[str, ast.Module]] = None  # the last text linted, its tree
        self._plan: Optional[FilePlan] = None  # the plan of the last text planned
        self._noqa: Optional[Tuple[str, NoqaMap]] = None  # the last text linted, its # noqa map
        # id of a diagnostic whose fix the fixer refuses -> (the diagnostic, why)
        self._refused: Dict[int, Tuple[Diagnostic, str]] = {}

    def lint(self, text: str, path: str) -> List[Diagnostic]:
        if self.linter is _default_linter:
            # the engine's tree is kept: the fixer's plan of this text reuses it
            from . import engine

            tree = ast.parse(text, filename=path)
            self._tree = (text, tree)
            diags = engine.check_source(text, path, self.options, tree=tree)
        else:
            self._tree = None
            diags = self.linter(text, path, self.options)
        noqa = NoqaMap(text)
        self._noqa = (text, noqa)
        out = []
        blocked: Dict[str, str] = {}
        for d in diags:
            why = None
            if not self.settings.is_selected(d.code, path):
                why = f"{d.code} on line {d.span.line} is not selected"
            elif not self.disable_noqa and noqa.suppresses(d.span.line, d.code):
                why = f"{d.code} on line {d.span.line} is suppressed by # noqa"
            if why is None:
                out.append(d)
            elif d.fix is not None and d.fix.group is not None:
                blocked.setdefault(d.fix.group, why)
        self.blocked_groups = blocked
        out.sort(key=lambda d: (d.span, d.code))
        return out

    def plan(self, text: str, path: str) -> FilePlan:
        """The fixer's plan of ``text`` with the run's post-conditions (undefined names checked,
        the groups the last lint of ``text`` blocked); one per text, reused until another text
        is planned."""
        plan = self._plan
        if plan is None or plan.source is not text or plan.filename != path or plan.blocked != self.blocked_groups:
            tree = self._tree[1] if self._tree is not None and self._tree[0] is text else None
            plan = self._plan = FilePlan(text, path, check_names=True, builtins=self.assumed_names,
                                         blocked_groups=self.blocked_groups, tree=tree)
        return plan

    def apply(self, text: str, diags: List[Diagnostic], path: str, unsafe: Optional[bool] = None):
        """Apply ``diags``' fixes to ``text`` with every post-condition checked.

        ``unsafe`` overrides the run's --unsafe-fixes (the JSON and SARIF
        outputs show the edits of unsafe fixes too).
        """
        unsafe = self.unsafe if unsafe is None else unsafe
        return self.plan(text, path).apply(diags, unsafe=unsafe)

    def run_file(self, path: str, source: Optional[SourceFile] = None) -> Tuple[FileReport, Optional[object]]:
        """Lint (and fix) one file; ``source`` is given when the text was read already (stdin)."""
        # The cyclic collector is paused while one file is processed: its full
        # passes walk every live object (the trees of a big file), which made
        # --fix time grow faster than the number of fixes.  Reference counting
        # still frees everything that is not a cycle.
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._run_file(path, source)
        finally:
            if paused:
                gc.enable()

    def _run_file(self, path: str, source: Optional[SourceFile]) -> Tuple[FileReport, Optional[object]]:
        report = FileReport(path)
        if source is None:
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
            self._plan_refusals(text, path, diags)
            report.left = [(d, self._why_not(d)) for d in diags]
            return report, source

        reasons: Dict[Tuple, str] = {}
        settled = False
        for _round in range(self.max_rounds):
            result = self.apply(text, diags, path)
            for d, why in result.skipped:
                reasons[(d.code, d.span)] = why
            if not result.applied:
                settled = True
                break
            try:
                new_diags = self.lint(result.text, path)
            except (SyntaxError, RecursionError):
                # never keep a text the engine cannot read
                for d in result.applied:
                    reasons[(d.code, d.span)] = "fix would not parse"
                settled = True
                break
            report.fixed.extend(result.applied)
            text = result.text
            diags = new_diags
        if not settled and diags:
            # Still changing after the last round (ruff keeps the progress too):
            # the diagnostics a further round would fix say so.
            again = {(d.code, d.span) for d in self.apply(text, diags, path).applied}
            for d in diags:
                if (d.code, d.span) in again:
                    reasons[(d.code, d.span)] = REASON_ROUNDS.format(n=self.max_rounds)
        report.text = text
        report.left = [(d, reasons.get((d.code, d.span)) or self._why_not(d)) for d in diags]
        return report, source

    def _plan_refusals(self, text: str, path: str, diags: List[Diagnostic]) -> None:
        """Plan the fixes of ``diags`` (without --fix) and keep the reason of each one the fixer
        refuses while planning it, so that it is not reported as fixable."""
        if not any(d.fix is not None for d in diags):
            return
        plan = self.plan(text, path)
        for d in diags:
            why = plan.refusal(d) if d.fix is not None else None
            if why is not None:
                self._refused[id(d)] = (d, why)

    def refusal(self, d: Diagnostic) -> Optional[str]:
        """Why the fixer refuses ``d``'s fix on the text it was reported on (known from planning
        it in a run without --fix), or None."""
        got = self._refused.get(id(d))
        return got[1] if got is not None and got[0] is d else None

    def noqa_rows(self, text: str, lines: Iterable[int]) -> Dict[int, Optional[int]]:
        """:func:`flake8_device.add_noqa.noqa_rows`, read from the ``# noqa`` map the lint of
        ``text`` built when it has one (the file is then not tokenized again): a line's group of
        joined lines ends where the map's shared text for it ends."""
        noqa = self._noqa[1] if self._noqa is not None and self._noqa[0] is text else None
        mapping = getattr(noqa, "_mapping", None)
        if not isinstance(mapping, dict):
            return add_noqa.noqa_rows(text, lines)
        rows: Dict[int, Optional[int]] = {}
        for n in lines:
            joined = mapping.get(n)
            last = n
            if joined is not None:
                # the lines of one group share one joined text (a one-line group: that line)
                while len(joined) > 1 and mapping.get(last + 1) is joined:
                    last += 1
            rows[n] = last if joined is not None else None
        return rows

    def _why_not(self, d: Diagnostic) -> str:
        if d.fix is None:
            return d.no_fix_reason or REASON_NO_FIX
        refused = self.refusal(d)
        if refused is not None:
            return refused
        if not d.fix.safe and not self.unsafe:
            return "unsafe fix; use --unsafe-fixes"
        return "fixable with --fix"

    def fixable(self, d: Diagnostic) -> bool:
        """Whether --fix, with this run's flags, applies ``d``'s fix as far as planning it tells
        (the ``[*]`` marker and the count of the report)."""
        return d.fix is not None and (d.fix.safe or self.unsafe) and self.refusal(d) is None


def left_fixes(report: FileReport) -> FileReport:
    """``report`` with only the diagnostics whose fix was left (withheld, refused, dropped by a
    post-condition), each with why: what ``--diff`` prints on standard error, as ``--fix``
    prints it, while standard output holds the diff alone."""
    return dataclasses.replace(report, left=[(d, why) for d, why in report.left if d.fix is not None])


def report_items(report: FileReport, path: str, runner: Runner, fixing: bool, fmt: str) -> List[output.Item]:
    """The records a structured ``fmt`` prints for the diagnostics left in ``report`` (``path``
    as shown), with each fix's text edits where ``fmt`` shows them."""
    diags = [d for d, _ in report.left]
    if not diags:
        return []
    rows = runner.noqa_rows(report.text, {d.span.line for d in diags}) if fmt in output.NEEDS_EDITS else {}
    items = []
    for d in diags:
        edits = None
        if fmt in output.NEEDS_EDITS and d.fix is not None:
            try:
                edits = output.fix_edits(report.text, d, diags, path, plan=runner.plan(report.text, report.path))
            except Exception:  # a fix the fixer cannot plan: report it without edits
                edits = None
        items.append(output.Item(path=path, diag=d, text=report.text,
                                 fixable=runner.fixable(d) and not fixing,
                                 edits=edits, noqa_row=rows.get(d.span.line)))
    return items
