"""Robustness sweep: lint and fix every .py file of a corpus, on a copy.

Usage::

    python benchmarks/sweep.py                  # torch, torchvision, detectron2, corpus/
    python benchmarks/sweep.py --limit 300      # 300 files spread over that corpus
    python benchmarks/sweep.py some/dir x.py    # your own files

The files are copied to a temporary folder; ``flake8-device --fix
--unsafe-fixes`` (its ``main``, in process) runs on the copies.  Checked:

* the engine never raises (crashes), and the command reports no internal error;
* every file the fixes changed still parses;
* a second ``--fix --unsafe-fixes`` pass changes nothing (idempotence);
* no file without a (selected, not ``noqa``-ed) diagnostic is touched, byte for byte;
* a fix round the command had to reject because its output did not parse is
  listed too (the command keeps the file safe, but the fix is wrong).

Prints counts per code, files fixed, and every offender; exit 1 if any.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from bench_lint import default_roots, python_files, spread  # noqa: E402

from flake8_device import cli, engine  # noqa: E402
from flake8_device.config import load_settings  # noqa: E402
from flake8_device.noqa import NoqaMap  # noqa: E402


@dataclass
class SweepResult:
    files: int = 0
    unparsable_inputs: List[str] = field(default_factory=list)
    found: Counter = field(default_factory=Counter)  # selected diagnostics per code, original text
    fixed_files: List[str] = field(default_factory=list)
    crashes: List[Tuple[str, str]] = field(default_factory=list)  # (file, what)
    internal_errors: List[str] = field(default_factory=list)  # command's stderr lines
    unparsable_outputs: List[Tuple[str, str]] = field(default_factory=list)
    rejected_fixes: List[Tuple[str, str]] = field(default_factory=list)  # fix text that did not parse
    non_idempotent: List[Tuple[str, str]] = field(default_factory=list)
    touched_clean: List[str] = field(default_factory=list)
    summary: str = ""
    seconds: float = 0.0

    @property
    def offenders(self) -> int:
        return (len(self.crashes) + len(self.internal_errors) + len(self.unparsable_outputs)
                + len(self.rejected_fixes) + len(self.non_idempotent) + len(self.touched_clean))


def copy_tree(files: Sequence[str], roots: Sequence[str], dest: str) -> Dict[str, str]:
    """Copy ``files`` under ``dest``, keeping their path below their root; copy -> original."""
    roots = sorted((os.path.abspath(r) for r in roots), key=len, reverse=True)
    mapping: Dict[str, str] = {}
    for f in files:
        f = os.path.abspath(f)
        root = next((r for r in roots if f == r or f.startswith(r.rstrip(os.sep) + os.sep)), os.path.dirname(f))
        idx = roots.index(root) if root in roots else len(roots)
        rel = os.path.relpath(f, root) if f != root else os.path.basename(f)
        target = os.path.join(dest, f"{idx}_{os.path.basename(root.rstrip(os.sep)) or 'root'}", rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(f, target)
        mapping[target] = f
    return mapping


def _last_frame(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.relpath(tb[-1].filename, REPO)}:{tb[-1].lineno} ({tb[-1].name})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _line_diff(a: bytes, b: bytes) -> str:
    """The first differing line, for the report."""
    la, lb = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(la, lb), 1):
        if x != y:
            return f"line {i}: {x.decode('utf-8', 'replace').strip()!r} -> {y.decode('utf-8', 'replace').strip()!r}"
    return f"line {min(len(la), len(lb)) + 1}: length {len(la)} -> {len(lb)} lines"


def sweep(files: Sequence[str], roots: Sequence[str], workdir: Optional[str] = None) -> SweepResult:
    res = SweepResult(files=len(files))
    t0 = time.perf_counter()
    own_tmp = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="flake8-device-sweep-")
    try:
        mapping = copy_tree(files, roots, workdir)
        copies = sorted(mapping)
        before = {p: open(p, "rb").read() for p in copies}
        settings = load_settings(None, True)
        seen_first: Dict[str, List] = {}

        def linter(text: str, filename: str, options):
            first = filename not in seen_first
            try:
                diags = list(engine.check_source(text, filename, options))
            except SyntaxError as exc:
                if first:
                    res.unparsable_inputs.append(filename)
                else:
                    res.rejected_fixes.append((filename, f"fixed text does not parse: {exc.msg} (line {exc.lineno})"))
                seen_first.setdefault(filename, [])
                raise
            except RecursionError:
                seen_first.setdefault(filename, [])
                raise
            except Exception as exc:
                res.crashes.append((filename, ("" if first else "after a fix round: ") + _last_frame(exc)))
                seen_first.setdefault(filename, [])
                raise
            if first:
                noqa = NoqaMap(text)
                seen_first[filename] = [] if noqa.file_ignored else [
                    d for d in diags
                    if settings.is_selected(d.code, filename) and not noqa.suppresses(d.span.line, d.code)
                ]
            return diags

        out, err = io.StringIO(), io.StringIO()
        cli.main(["--isolated", "--fix", "--unsafe-fixes", "--summary", *copies],
                 stdout=out, stderr=err, linter=linter)
        res.summary = out.getvalue()[out.getvalue().find("Summary:"):]
        res.internal_errors = [ln for ln in err.getvalue().splitlines() if "internal error" in ln]

        after = {p: open(p, "rb").read() for p in copies}
        changed = [p for p in copies if after[p] != before[p]]
        for p in copies:
            res.found.update(d.code for d in seen_first.get(p, []))
        for p in changed:
            res.fixed_files.append(mapping[p])
            if not seen_first.get(p):
                res.touched_clean.append(f"{mapping[p]}: {_line_diff(before[p], after[p])}")
            try:
                ast.parse(after[p], filename=p)
            except SyntaxError as exc:
                res.unparsable_outputs.append((mapping[p], f"{exc.msg} (line {exc.lineno})"))

        if changed:
            err2 = io.StringIO()
            cli.main(["--isolated", "--fix", "--unsafe-fixes", "-q", *changed], stdout=io.StringIO(), stderr=err2)
            res.internal_errors += [ln for ln in err2.getvalue().splitlines() if "internal error" in ln]
            for p in changed:
                again = open(p, "rb").read()
                if again != after[p]:
                    res.non_idempotent.append((mapping[p], _line_diff(after[p], again)))
        # offenders are reported by original path
        res.crashes = [(mapping.get(f, f), why) for f, why in res.crashes]
        res.rejected_fixes = [(mapping.get(f, f), why) for f, why in res.rejected_fixes]
        res.unparsable_inputs = [mapping.get(f, f) for f in res.unparsable_inputs]
        res.internal_errors = [_unmap(ln, mapping) for ln in res.internal_errors]
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    res.seconds = time.perf_counter() - t0
    return res


def _unmap(line: str, mapping: Dict[str, str]) -> str:
    path = line.split(": ", 1)[0]
    return line.replace(path, mapping[path], 1) if path in mapping else line


def report(res: SweepResult, out=sys.stdout) -> None:
    def p(*a):
        print(*a, file=out)

    p(f"files {res.files}, {res.seconds:.1f} s; unparsable inputs (skipped) {len(res.unparsable_inputs)}")
    p("diagnostics per code (selected, on the original files):")
    for code, n in sorted(res.found.items()):
        p(f"  {code:<8}{n:6d}")
    p(f"  {'total':<8}{sum(res.found.values()):6d}")
    if res.summary:
        summary = res.summary.rstrip().replace("\n", "\n  ").replace("Summary:", "summary:", 1)
        p("flake8-device --fix --unsafe-fixes " + summary)
    p(f"files fixed {len(res.fixed_files)}")
    rows = [
        ("crashes", res.crashes),
        ("internal errors", res.internal_errors),
        ("unparsable outputs", res.unparsable_outputs),
        ("fix rounds rejected (output did not parse)", res.rejected_fixes),
        ("non-idempotent files", res.non_idempotent),
        ("files touched without diagnostics", res.touched_clean),
    ]
    for label, items in rows:
        p(f"{label}: {len(items)}")
        for item in items:
            p("    " + (": ".join(item) if isinstance(item, tuple) else item))
    if res.unparsable_inputs:
        p("unparsable inputs: " + ", ".join(os.path.relpath(f) for f in res.unparsable_inputs[:10]))


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="files or folders (default: torch, torchvision, detectron2, corpus/)")
    ap.add_argument("--limit", type=int, default=0, help="files kept, spread evenly (default 0 = all)")
    args = ap.parse_args(argv)
    roots = list(args.paths) or default_roots()
    files = spread(python_files(roots), args.limit)
    print(f"sweep over {len(files)} files from {', '.join(roots)}")
    res = sweep(files, roots)
    report(res)
    return 1 if res.offenders else 0


if __name__ == "__main__":
    sys.exit(main())
