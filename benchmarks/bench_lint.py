"""Lint and fix throughput of flake8-device, side by side with its references.

Usage::

    python benchmarks/bench_lint.py                 # default corpus, 60-file sample
    python benchmarks/bench_lint.py --limit 0       # every file (slow: minutes)
    python benchmarks/bench_lint.py some/dir x.py   # your own files
    python benchmarks/bench_lint.py --torchfix-python /tmp/torchfix-venv/bin/python

Default corpus: the .py files of the installed torch, torchvision and
detectron2 packages plus the repository's corpus/.  ``--limit N`` keeps N
files spread evenly over the sorted list, so every package is represented.

Measured in one run, repetitions interleaved (medians reported):

(a)  ``ast.parse`` of every file, in process: the floor.
(b)  the DEV engine on those trees as the flake8 plugin runs it
     (``Checker(tree, lines, options, fixes=False).run()``: report only);
(b+) the same with fixes built (what ``flake8-device --fix``/``--diff`` runs).
(b0) one bare ``ast.walk`` over the same trees: what any Python visitor pays.
(c)  flake8 end to end, single process (-j1), with and without the plugin
     loaded: ``--select E,F,W,DEV`` vs ``--select E,F,W``, and
     ``--select DEV`` vs ``--select E999``.  flake8 runs every loaded plugin
     whatever ``--select`` says, so "without" means the plugin is not loaded
     (this script drops it from flake8's plugin discovery).
(c') flake8 with no pyflakes/pycodestyle: only our plugin vs no plugin, which
     isolates the plugin's own cost per file.
(c'') the plugin's share of a flake8 run: (b) over flake8's own E,F,W CPU time
     on the same files (target: at most 2%).
(d)  TorchFix (``--select TOR``) the same way, in its own interpreter
     (``--torchfix-python``), as the nearest peer (one run: it is ~100x slower).
(e)  ``flake8-device --diff`` over the files (lint + fixes computed).

Child processes are timed by wall clock and by CPU time (user+sys from
``os.wait4``); ratios use CPU time, which a noisy shared machine disturbs less.
Peak memory: ``ru_maxrss`` of each child; tracemalloc peaks in process.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

DEFAULT_PACKAGES = ("torch", "torchvision", "detectron2")
DEFAULT_TORCHFIX_PYTHON = "/tmp/torchfix-venv/bin/python"

# Runs flake8 with some distributions removed from plugin discovery.
# argv[1]: comma-separated distribution names to drop; the rest: flake8 args.
FLAKE8_WRAPPER = r"""
import sys
from flake8.plugins import finder
drop = {d.lower() for d in sys.argv[1].split(',') if d}
_orig = finder._find_importlib_plugins
def _only():
    for p in _orig():
        if p.package.lower() not in drop:
            yield p
finder._find_importlib_plugins = _only
from flake8.main.cli import main
sys.exit(main(sys.argv[2:]))
"""

OURS = "flake8-device"
TORCHFIX = "torchfix"
DEFAULT_CHECKERS = "pyflakes,pycodestyle"


# --- corpus -------------------------------------------------------------------


def package_dir(name: str) -> Optional[str]:
    """The folder of an installed package, without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def default_roots() -> List[str]:
    roots = [d for d in (package_dir(p) for p in DEFAULT_PACKAGES) if d]
    roots.append(os.path.join(REPO, "corpus"))
    return roots


def python_files(paths: Sequence[str]) -> List[str]:
    out: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                out.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".py"))
        elif path.endswith(".py") and os.path.isfile(path):
            out.append(path)
    return out


def spread(files: Sequence[str], limit: int) -> List[str]:
    """``limit`` files evenly spaced over ``files`` (all when limit <= 0)."""
    if limit <= 0 or len(files) <= limit:
        return list(files)
    n = len(files)
    return [files[i * n // limit] for i in range(limit)]


def corpus(paths: Sequence[str], limit: int) -> List[str]:
    return spread(python_files(paths or default_roots()), limit)


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


# --- in process -----------------------------------------------------------------


@dataclass
class InProcess:
    parse: List[float] = field(default_factory=list)
    engine: List[float] = field(default_factory=list)
    walk: List[float] = field(default_factory=list)
    fixes: List[float] = field(default_factory=list)
    unparsable: List[str] = field(default_factory=list)
    crashes: List[Tuple[str, str]] = field(default_factory=list)
    diagnostics: int = 0
    peak_parse: int = 0
    peak_engine: int = 0
    peak_file: str = ""


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def bench_in_process(files: Sequence[str], repeat: int, memory: bool = True) -> InProcess:
    from flake8_device.engine import Checker
    from flake8_device.options import Options

    options = Options()
    res = InProcess()
    sources = []
    for path in files:
        with open(path, "rb") as fh:
            data = fh.read()
        sources.append((path, data, _decode(data).splitlines(keepends=True)))

    for rnd in range(repeat):
        t_parse = t_engine = t_walk = t_fixes = 0.0
        for path, data, lines in sources:
            t0 = time.perf_counter()
            try:
                tree = ast.parse(data, filename=path)
            except (SyntaxError, ValueError):
                if rnd == 0:
                    res.unparsable.append(path)
                continue
            t1 = time.perf_counter()
            try:
                Checker(tree, lines, options, path, fixes=False).run()
            except Exception as exc:  # recorded, never fatal
                if rnd == 0:
                    res.crashes.append((path, f"{type(exc).__name__}: {exc}"))
            t2 = time.perf_counter()
            for _node in ast.walk(tree):
                pass
            t3 = time.perf_counter()
            try:
                diags = Checker(tree, lines, options, path).run()
            except Exception as exc:
                diags = []
                if rnd == 0:
                    res.crashes.append((path, f"{type(exc).__name__} (with fixes): {exc}"))
            t4 = time.perf_counter()
            t_parse += t1 - t0
            t_engine += t2 - t1
            t_walk += t3 - t2
            t_fixes += t4 - t3
            if rnd == 0:
                res.diagnostics += len(diags)
        res.parse.append(t_parse)
        res.engine.append(t_engine)
        res.walk.append(t_walk)
        res.fixes.append(t_fixes)

    if memory:
        # Untimed pass: peak bytes allocated by the parse, and by the engine on
        # top of the tree, per file (the largest of each is reported).
        tracemalloc.start()
        for path, data, lines in sources:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            try:
                tree = ast.parse(data, filename=path)
            except (SyntaxError, ValueError):
                continue
            peak_parse = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            try:
                Checker(tree, lines, options, path).run()
            except Exception:
                pass
            peak_engine = tracemalloc.get_traced_memory()[1] - base
            res.peak_parse = max(res.peak_parse, peak_parse)
            if peak_engine > res.peak_engine:
                res.peak_engine, res.peak_file = peak_engine, path
            del tree
        tracemalloc.stop()
    return res


# --- child processes ------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    maxrss_kb: int
    rc: int
    out_lines: int


def run_child(argv: Sequence[str], cwd: str) -> Run:
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        n = sum(1 for _ in out)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, proc.returncode, n)


def flake8_argv(python: str, drop: str, select: str, files: Sequence[str]) -> List[str]:
    return [python, "-c", FLAKE8_WRAPPER, drop, "--isolated", "-j1", f"--select={select}", *files]


@dataclass
class Config:
    key: str
    label: str
    argv: List[str]
    once: bool = False
    runs: List[Run] = field(default_factory=list)

    def med(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    @property
    def maxrss_mb(self) -> float:
        return max(r.maxrss_kb for r in self.runs) / 1024


def child_configs(files: Sequence[str], torchfix_python: Optional[str], skip_flake8: bool) -> List[Config]:
    py = sys.executable
    cfgs: List[Config] = []
    if not skip_flake8:
        cfgs += [
            Config("efw_dev", "flake8 --select E,F,W,DEV (plugin loaded)", flake8_argv(py, "", "E,F,W,DEV", files)),
            Config("efw", "flake8 --select E,F,W (plugin not loaded)", flake8_argv(py, OURS, "E,F,W", files)),
            Config("dev", "flake8 --select DEV (plugin loaded)", flake8_argv(py, "", "DEV", files)),
            Config("e999", "flake8 --select E999 (plugin not loaded)", flake8_argv(py, OURS, "E999", files)),
            Config("bare_dev", "flake8, only DEV loaded, --select DEV",
                   flake8_argv(py, DEFAULT_CHECKERS, "DEV", files)),
            Config("bare_none", "flake8, no checker loaded, --select E999",
                   flake8_argv(py, DEFAULT_CHECKERS + "," + OURS, "E999", files)),
        ]
        if torchfix_python:
            cfgs += [
                Config("bare_tor", "TorchFix: flake8, only TOR loaded, --select TOR",
                       flake8_argv(torchfix_python, DEFAULT_CHECKERS, "TOR", files), once=True),
                Config("bare_none_tf", "TorchFix venv: flake8, no checker loaded",
                       flake8_argv(torchfix_python, DEFAULT_CHECKERS + "," + TORCHFIX, "E999", files), once=True),
            ]
    cli = os.path.join(os.path.dirname(sys.executable), "flake8-device")
    cmd = [cli] if os.path.exists(cli) else [py, "-m", "flake8_device.cli"]
    cfgs.append(Config("diff", "flake8-device --diff", [*cmd, "--isolated", "--diff", "-q", *files]))
    return cfgs


def torchfix_usable(python: Optional[str]) -> Tuple[Optional[str], str]:
    if not python:
        return None, "disabled (--torchfix-python '')"
    if not os.path.exists(python):
        return None, f"not found: {python} (pip install torchfix flake8 into a venv there)"
    probe = subprocess.run(
        [python, "-c", "import torchfix, flake8"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        return None, f"does not import: {probe.stderr.strip().splitlines()[-1:]}"
    ver = subprocess.run([python, "-m", "flake8", "--version"], capture_output=True, text=True).stdout.split()
    return python, "TorchFix via " + python + " (flake8 " + " ".join(ver[:1]) + ")"


# --- report -------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "n/a"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="files or folders (default: torch, torchvision, detectron2, corpus/)")
    ap.add_argument("--limit", type=int, default=60, help="files kept, spread evenly (0 = all; default 60)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions (default 3)")
    ap.add_argument("--torchfix-python", default=DEFAULT_TORCHFIX_PYTHON,
                    help="interpreter with torchfix + flake8 ('' to skip; default %(default)s)")
    ap.add_argument("--skip-flake8", action="store_true", help="only the in-process figures and (e)")
    ap.add_argument("--in-process-only", action="store_true", help="only (a), (b), (b0)")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    args = ap.parse_args(argv)

    files = [os.path.abspath(f) for f in corpus(args.paths, args.limit)]
    if not files:
        print("no .py files found", file=sys.stderr)
        return 2
    total_bytes = total_lines = 0
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        total_bytes += len(data)
        total_lines += count_lines(data)
    print(f"corpus: {len(files)} files, {total_lines} lines, {total_bytes / 1e6:.1f} MB"
          f" (limit {args.limit or 'none'}; roots: {', '.join(args.paths) or ', '.join(default_roots())})")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, repeat {args.repeat} (medians)")

    if args.skip_flake8 or args.in_process_only:
        tf_python, tf_note = None, "skipped"
    else:
        tf_python, tf_note = torchfix_usable(args.torchfix_python)
    cfgs = [] if args.in_process_only else child_configs(files, tf_python, args.skip_flake8)
    # Children run first, while this process is small: Linux starts a child's
    # ru_maxrss from the parent's high-water mark at spawn.
    floor_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for rnd in range(args.repeat):
        # rotate the order each round so no configuration always runs first
        k = rnd % max(1, len(cfgs))
        order = cfgs[k:] + cfgs[:k]
        for cfg in order:
            # TorchFix is ~100x slower than everything else: one run is enough
            # for a ratio that large, and keeps the default run within minutes.
            if cfg.once and cfg.runs:
                continue
            cfg.runs.append(run_child(cfg.argv, REPO))
    inp = bench_in_process(files, args.repeat, memory=not args.no_memory)
    a, b, w, bf = (statistics.median(x) for x in (inp.parse, inp.engine, inp.walk, inp.fixes))
    print()
    print("in process (seconds, median of rounds)")
    print(f"  (a)  ast.parse            {a:8.3f}   {total_lines / a:10.0f} lines/s")
    print(f"  (b)  DEV engine           {b:8.3f}   {total_lines / b:10.0f} lines/s   (b)/(a) = {ratio(b, a)}")
    print(f"  (b+) engine, fixes built  {bf:8.3f}   {total_lines / bf:10.0f} lines/s   (b+)/(a) = {ratio(bf, a)}")
    print(f"  (b0) one ast.walk         {w:8.3f}                      (b0)/(a) = {ratio(w, a)}")
    print(f"  diagnostics {inp.diagnostics}, unparsable {len(inp.unparsable)}, engine crashes {len(inp.crashes)}")
    for path, why in inp.crashes:
        print(f"    CRASH {path}: {why}")
    if not args.no_memory:
        print(f"  peak allocation per file: parse {inp.peak_parse / 1e6:.1f} MB, engine on top"
              f" {inp.peak_engine / 1e6:.1f} MB ({os.path.relpath(inp.peak_file) if inp.peak_file else '-'})")

    if args.in_process_only:
        print()
        print(f"targets: (b)/(a) <= 0.5 {verdict(b / a <= 0.5)}; zero crashes {verdict(not inp.crashes)}")
        return 0

    by = {c.key: c for c in cfgs}
    n = len(files)

    print()
    print("child processes (median wall s, median CPU s, peak RSS MB, output lines, exit code)")
    for c in cfgs:
        print(f"  {c.label:<52}{c.med('wall'):8.2f}{c.med('cpu'):8.2f}{c.maxrss_mb:8.0f}"
              f"{c.runs[0].out_lines:8d}{c.runs[0].rc:4d}")
    print(f"  TorchFix: {tf_note}")
    print(f"  (peak RSS floor: this process at spawn, {floor_mb:.0f} MB)")

    print()
    print("ratios (CPU time)")
    results: Dict[str, Tuple[float, bool]] = {"(b)/(a)": (b / a, b / a <= 0.5)}
    if "efw_dev" in by:
        r1 = by["efw_dev"].med("cpu") / by["efw"].med("cpu")
        r2 = by["dev"].med("cpu") / by["e999"].med("cpu")
        plugin = (by["bare_dev"].med("cpu") - by["bare_none"].med("cpu")) / n
        print(f"  (c)  E,F,W,DEV / E,F,W                 {r1:6.3f}   (target <= 1.15: {verdict(r1 <= 1.15)})")
        print(f"  (c)  DEV / E999 (plugin not loaded)    {r2:6.3f}")
        bare = ratio(by["bare_dev"].med("cpu"), by["bare_none"].med("cpu"))
        print(f"  (c') only DEV / no checker             {bare:>6}"
              f"   plugin cost {plugin * 1e3:.2f} ms/file")
        # The with/without pair differs by less than run-to-run noise on a busy
        # machine; the plugin's own cost (c') over flake8's E,F,W time is steadier.
        derived = 1 + plugin * n / by["efw"].med("cpu")
        print(f"  (c)  1 + plugin cost / E,F,W time      {derived:6.3f}   (same target: {verdict(derived <= 1.15)})")
        # The plugin's share of a flake8 run: the engine as the plugin runs it
        # (report only, in process, so no interpreter start-up noise) over
        # flake8's own E,F,W time on the same files.
        share = b / by["efw"].med("cpu")
        print(f"  (c'') (b) / E,F,W time: plugin cost    {share * 100:5.1f}%"
              f"   (target <= 2%: {verdict(share <= 0.02)})")
        results["(c) with/without"] = (r1, r1 <= 1.15)
        results["(c) derived"] = (derived, derived <= 1.15)
        results["(c'') plugin share"] = (share, share <= 0.02)
        if "bare_tor" in by:
            tor = (by["bare_tor"].med("cpu") - by["bare_none_tf"].med("cpu")) / n
            speed = tor / plugin if plugin > 0 else float("inf")
            print(f"  (d)  TorchFix plugin cost {tor * 1e3:.2f} ms/file; TorchFix/ours = {speed:.1f}x"
                  f"   (target >= 10: {verdict(speed >= 10)})")
            results["(d) torchfix/ours"] = (speed, speed >= 10)
        re = by["diff"].med("cpu") / by["dev"].med("cpu")
        print(f"  (e)/(c) flake8-device --diff / flake8 --select DEV  {re:6.3f}   (target <= 3: {verdict(re <= 3)})")
        results["(e)/(c)"] = (re, re <= 3)
    crashes = len(inp.crashes)
    internal = by["diff"].runs[0].rc not in (0, 1)
    print(f"  crashes: engine {crashes}; flake8-device --diff exit {by['diff'].runs[0].rc}"
          f"{' (errors reported)' if internal else ''}")
    results["zero crashes"] = (crashes, crashes == 0)
    print()
    print("targets: " + "; ".join(f"{k} {v:.3g} {verdict(ok)}" for k, (v, ok) in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
