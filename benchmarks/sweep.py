"""Robustness sweep: lint and fix every .py file of a corpus, on a copy.

Usage::

    python benchmarks/sweep.py                  # torch, torchvision, detectron2, corpus/
    python benchmarks/sweep.py --limit 300      # 300 files spread over that corpus
    python benchmarks/sweep.py some/dir x.py    # your own files
    python benchmarks/sweep.py --real-world     # DVIS_DAQ, torchvision, detectron2; --fix and
                                                # --fix --unsafe-fixes; imports checked

The files are copied to a temporary folder; ``flake8-device --fix`` (with
``--unsafe-fixes`` unless ``--safe``; its ``main``, in process) runs on the
copies.  Checked:

* the engine never raises (crashes), and the command reports no internal error;
* every file the fixes changed still parses;
* no fixed file has an undefined name (pyflakes F821/F823) its original did not have;
* a second pass with the same flags changes nothing (idempotence);
* no file without a (selected, not ``noqa``-ed) diagnostic is touched, byte for byte;
* a fix round the command had to reject because its output did not parse is
  listed too (the command keeps the file safe, but the fix is wrong);
* with ``--imports``: every fixed file whose original imports on this machine
  (CPU only) still imports (a subprocess per tree imports them all, original
  first, then the fixed copy placed first on ``sys.path``).

Prints, per code, the diagnostics found, fixed and dropped by a post-condition
(and why), files fixed, and every offender; exit 1 if any.
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
    # fixed and dropped-by-post-condition diagnostics per code, and why dropped
    fixed: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    dropped_why: Counter = field(default_factory=Counter)  # (code, reason) -> n
    new_undefined: List[Tuple[str, str]] = field(default_factory=list)  # (file, "name (+n)")
    imports_checked: int = 0  # fixed files whose original imports
    imports_broken: List[Tuple[str, str]] = field(default_factory=list)  # (file, error after the fix)
    imports_gained: List[str] = field(default_factory=list)  # import after the fix, not before
    imports_failing: List[Tuple[str, str]] = field(default_factory=list)  # neither before nor after
    unsafe: bool = True
    flags: List[str] = field(default_factory=list)
    summary: str = ""
    seconds: float = 0.0

    @property
    def offenders(self) -> int:
        return (len(self.crashes) + len(self.internal_errors) + len(self.unparsable_outputs)
                + len(self.rejected_fixes) + len(self.non_idempotent) + len(self.touched_clean)
                + len(self.new_undefined) + len(self.imports_broken))


def _copy_root(root: str, idx: int, dest: str) -> str:
    """Where a root is copied: ``dest/<idx>/<root's name>`` (a package keeps its name)."""
    return os.path.join(dest, str(idx), os.path.basename(root.rstrip(os.sep)) or "root")


def copy_tree(files: Sequence[str], roots: Sequence[str], dest: str, data: bool = False) -> Dict[str, str]:
    """Copy ``files`` under ``dest``, keeping their path below their root; copy -> original.

    With ``data``, every other file below a root is copied too (compiled
    extensions, configs), so that the copy imports as the original does.
    """
    roots = sorted((os.path.abspath(r) for r in roots), key=len, reverse=True)
    mapping: Dict[str, str] = {}
    if data:
        for idx, root in enumerate(roots):
            if os.path.isdir(root):
                shutil.copytree(root, _copy_root(root, idx, dest), symlinks=True, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.pyc"))
    for f in files:
        f = os.path.abspath(f)
        root = next((r for r in roots if f == r or f.startswith(r.rstrip(os.sep) + os.sep)), os.path.dirname(f))
        idx = roots.index(root) if root in roots else len(roots)
        rel = os.path.relpath(f, root) if f != root else os.path.basename(f)
        target = os.path.join(_copy_root(root, idx, dest), rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(f, target)
        mapping[target] = f
    return mapping


def undefined_counts(data: bytes, filename: str) -> Optional[Counter]:
    from flake8_device_fixers.postconditions import undefined_names

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    found = undefined_names(text, filename)
    return None if found is None else Counter(n for n, _, _ in found)


# --- can the fixed files still be imported? ------------------------------------

_IMPORTER = r"""
import importlib, json, sys, warnings
warnings.simplefilter("ignore")
out = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
        out[name] = None
    except BaseException as exc:  # SystemExit from a script counts as not importable
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        out[name] = f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"
print("\nIMPORT-RESULTS " + json.dumps(out))
"""


def module_of(path: str, root: str) -> Tuple[str, str]:
    """(sys.path entry, module name) of ``path`` below ``root``."""
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == "__init__":
        rel = rel[:-1]
    if os.path.isfile(os.path.join(root, "__init__.py")):  # root is a package: keep its name
        return os.path.dirname(root.rstrip(os.sep)), ".".join([os.path.basename(root.rstrip(os.sep))] + rel)
    return root, ".".join(rel)


def import_all(entry: Optional[str], names: Sequence[str], timeout: int = 900) -> Dict[str, Optional[str]]:
    """Import ``names`` in one fresh interpreter (``entry`` first on sys.path); name -> error or None."""
    import json
    import subprocess

    env = dict(os.environ)
    if entry:
        env["PYTHONPATH"] = entry + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["CUDA_VISIBLE_DEVICES"] = ""
    try:
        proc = subprocess.run([sys.executable, "-c", _IMPORTER, json.dumps(list(names))], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=entry or None)
    except subprocess.TimeoutExpired:
        return {n: "timeout" for n in names}
    marker = proc.stdout.rfind("IMPORT-RESULTS ")
    if marker < 0:
        return {n: f"importer died: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}" for n in names}
    return json.loads(proc.stdout[marker + len("IMPORT-RESULTS "):])


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


def sweep(files: Sequence[str], roots: Sequence[str], workdir: Optional[str] = None, *,
          unsafe: bool = True, imports: bool = False, extra: Sequence[str] = ()) -> SweepResult:
    res = SweepResult(files=len(files), unsafe=unsafe)
    flags = (["--fix", "--unsafe-fixes"] if unsafe else ["--fix"]) + list(extra)
    res.flags = flags
    t0 = time.perf_counter()
    own_tmp = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="flake8-device-sweep-")
    try:
        mapping = copy_tree(files, roots, workdir, data=imports)
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

        reports: List[cli.FileReport] = []
        real_run_file = cli.Runner.run_file

        def run_file(self, path, *args):
            got = real_run_file(self, path, *args)
            reports.append(got[0])
            return got

        out, err = io.StringIO(), io.StringIO()
        cli.Runner.run_file = run_file
        try:
            cli.main(["--isolated", *flags, "--summary", *copies], stdout=out, stderr=err, linter=linter)
        finally:
            cli.Runner.run_file = real_run_file
        for r in reports:
            res.fixed.update(d.code for d in r.fixed)
            for d, why in r.left:
                if why.startswith("dropped: "):
                    res.dropped[d.code] += 1
                    res.dropped_why[(d.code, why)] += 1
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
                continue
            old_names, new_names = undefined_counts(before[p], p), undefined_counts(after[p], p)
            if old_names is not None and new_names is not None:
                for name, n in sorted((new_names - old_names).items()):
                    res.new_undefined.append((mapping[p], f"{name!r} (+{n})"))

        if changed:
            err2 = io.StringIO()
            cli.main(["--isolated", *flags, "-q", *changed], stdout=io.StringIO(), stderr=err2)
            res.internal_errors += [ln for ln in err2.getvalue().splitlines() if "internal error" in ln]
            for p in changed:
                again = open(p, "rb").read()
                if again != after[p]:
                    res.non_idempotent.append((mapping[p], _line_diff(after[p], again)))
        if imports and changed:
            _check_imports(res, changed, mapping, roots, workdir)
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


def _check_imports(res: SweepResult, changed: Sequence[str], mapping: Dict[str, str], roots: Sequence[str],
                   workdir: str) -> None:
    """Import every changed file's module from the original, then from the fixed copy."""
    abs_roots = sorted((os.path.abspath(r) for r in roots), key=len, reverse=True)
    per_root: Dict[str, List[Tuple[str, str]]] = {}
    for copy in changed:
        orig = mapping[copy]
        root = next((r for r in abs_roots if orig.startswith(r.rstrip(os.sep) + os.sep)), None)
        if root is None:
            continue
        per_root.setdefault(root, []).append((copy, orig))
    for root, pairs in per_root.items():
        entry, _ = module_of(pairs[0][1], root)
        names = {module_of(orig, root)[1]: orig for _, orig in pairs}
        installed = os.path.isfile(os.path.join(root, "__init__.py")) and "site-packages" in root
        before = import_all(None if installed else entry, sorted(names))
        fine = [n for n, e in before.items() if e is None]
        res.imports_checked += len(fine)
        copy_entry, _ = module_of(pairs[0][0], _copy_root(root, abs_roots.index(root), workdir))
        after = import_all(copy_entry, sorted(names))
        for name in sorted(names):
            if before.get(name) is None and after.get(name) is not None:
                res.imports_broken.append((names[name], after[name]))
            elif before.get(name) is not None and after.get(name) is None:
                res.imports_gained.append(names[name])
            elif before.get(name) is not None:
                res.imports_failing.append((names[name], before[name]))


def _unmap(line: str, mapping: Dict[str, str]) -> str:
    path = line.split(": ", 1)[0]
    return line.replace(path, mapping[path], 1) if path in mapping else line


def report(res: SweepResult, out=sys.stdout) -> None:
    def p(*a):
        print(*a, file=out)

    mode = " ".join(res.flags)
    p(f"flake8-device {mode}: files {res.files}, {res.seconds:.1f} s; "
      f"unparsable inputs (skipped) {len(res.unparsable_inputs)}")
    p("per code: found (selected, original files), fixed, dropped by a post-condition:")
    p(f"  {'code':<8}{'found':>7}{'fixed':>7}{'dropped':>9}")
    for code in sorted(set(res.found) | set(res.fixed) | set(res.dropped)):
        p(f"  {code:<8}{res.found[code]:7d}{res.fixed[code]:7d}{res.dropped[code]:9d}")
    p(f"  {'total':<8}{sum(res.found.values()):7d}{sum(res.fixed.values()):7d}{sum(res.dropped.values()):9d}")
    if res.dropped_why:
        p("dropped, why:")
        for (code, why), n in sorted(res.dropped_why.items()):
            p(f"  {code} {n:4d}  {why}")
    p(f"files fixed {len(res.fixed_files)}")
    if res.imports_checked or res.imports_gained or res.imports_failing:
        p(f"fixed files whose original imports on this machine: {res.imports_checked}; "
          f"importable only after the fix: {len(res.imports_gained)}; "
          f"importable neither before nor after: {len(res.imports_failing)}")
        why = Counter(err for _, err in res.imports_failing)
        for err, n in why.most_common(5):
            p(f"    {n:4d}  {err}")
    rows = [
        ("crashes", res.crashes),
        ("internal errors", res.internal_errors),
        ("unparsable outputs", res.unparsable_outputs),
        ("fix rounds rejected (output did not parse)", res.rejected_fixes),
        ("non-idempotent files", res.non_idempotent),
        ("files touched without diagnostics", res.touched_clean),
        ("new undefined names (pyflakes, fixed vs original)", res.new_undefined),
        ("fixed files that no longer import", res.imports_broken),
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
    ap.add_argument("--safe", action="store_true", help="--fix without --unsafe-fixes")
    ap.add_argument("--imports", action="store_true", help="check that fixed files still import")
    ap.add_argument("--device-expr", metavar="EXPR", help="passed to flake8-device (e.g. self.device)")
    ap.add_argument("--real-world", action="store_true",
                    help="DVIS_DAQ (../shared/realworld), torchvision and detectron2, each with --fix and "
                         "--fix --unsafe-fixes, imports checked")
    args = ap.parse_args(argv)
    if args.real_world:
        roots = list(args.paths) or real_world_roots()
        runs = [(root, unsafe) for root in roots for unsafe in (False, True)]
        imports = True
    else:
        roots = list(args.paths) or default_roots()
        runs = [(None, not args.safe)]
        imports = args.imports
    offenders = 0
    for root, unsafe in runs:
        tree = [root] if root else roots
        files = spread(python_files(tree), args.limit)
        print(f"\n== sweep over {len(files)} files from {', '.join(tree)}", flush=True)
        extra = ["--device-expr", args.device_expr] if args.device_expr else []
        res = sweep(files, tree, unsafe=unsafe, imports=imports, extra=extra)
        report(res)
        offenders += res.offenders
    return 1 if offenders else 0


REAL_WORLD = os.path.join(os.path.dirname(REPO), "shared", "realworld", "DVIS_DAQ")


def real_world_roots() -> List[str]:
    from bench_lint import package_dir

    roots = [REAL_WORLD] if os.path.isdir(REAL_WORLD) else []
    return roots + [d for d in (package_dir(p) for p in ("torchvision", "detectron2")) if d]


if __name__ == "__main__":
    sys.exit(main())
