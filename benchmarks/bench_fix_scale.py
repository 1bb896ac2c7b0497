"""How ``flake8-device`` scales with the number of fixes in one file.

Usage::

    python benchmarks/bench_fix_scale.py                 # default sizes
    python benchmarks/bench_fix_scale.py --sizes 1000,4000,20000 --line-sizes 500,2000
    python benchmarks/bench_fix_scale.py --profile 4000  # cProfile one --fix run, top 25 functions

Two generated files, run in process through ``flake8_device.cli.main`` on a
temporary copy, sizes side by side in one run:

* ``--fix`` on a function with N statements ``yI = torch.zeros(3).to("cuda")``
  (one DEV101 fix each), written to disk: total seconds, microseconds per fix,
  and the per-fix time relative to the smallest size (1.0 everywhere = linear);
* report mode (no ``--fix``, output to memory) on one line that carries K
  diagnostics ``(x.to("cuda"), x.to("cuda"), ...)``: seconds, microseconds per
  diagnostic and the same ratio.

Each figure is the run with the least CPU time of ``--repeat`` runs (default
3); the per-fix figure and the ratio use CPU time (``time.process_time``),
which other load on a shared machine disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from typing import Callable, List, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from flake8_device import cli  # noqa: E402


def many_fixes(n: int) -> str:
    body = "".join(f'    y{i} = torch.zeros(3).to("cuda")\n' for i in range(n))
    return "import torch\n\n\ndef f(x: torch.Tensor):\n" + body + "    return x\n"


def one_line(k: int) -> str:
    items = ", ".join('x.to("cuda")' for _ in range(k))
    return f"import torch\n\n\ndef f(x: torch.Tensor):\n    return ({items},)\n"


def _best(fn: Callable[[], None], repeat: int) -> Tuple[float, float]:
    """(wall seconds, CPU seconds) of the run with the least CPU time."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        run = (time.perf_counter() - w0, time.process_time() - c0)
        best = min(best, run, key=lambda r: r[1])
    return best


def time_fix(n: int, repeat: int, workdir: str) -> Tuple[float, float]:
    text = many_fixes(n)
    path = os.path.join(workdir, f"fix_{n}.py")

    def once() -> None:
        with open(path, "w") as fh:
            fh.write(text)
        rc = cli.main(["--isolated", "--fix", "-q", path], stdout=io.StringIO(), stderr=io.StringIO())
        assert rc == 0, f"--fix on {n} fixes exited {rc}"

    seconds = _best(once, repeat)
    with open(path) as fh:
        fixed = fh.read()
    assert fixed.count("device=x.device") == n, "not every fix was applied"
    return seconds


def time_report(k: int, repeat: int, workdir: str) -> Tuple[float, float]:
    path = os.path.join(workdir, f"line_{k}.py")
    with open(path, "w") as fh:
        fh.write(one_line(k))
    found = []

    def once() -> None:
        out = io.StringIO()
        cli.main(["--isolated", path], stdout=out, stderr=io.StringIO())
        found.append(out.getvalue().count(" DEV001 "))

    seconds = _best(once, repeat)
    assert found[-1] == k, f"expected {k} diagnostics, got {found[-1]}"
    return seconds


def table(title: str, unit: str, sizes: Sequence[int], timer: Callable[[int], Tuple[float, float]]) -> None:
    print(title)
    print(f"  {'N':>8}{'wall s':>9}{'CPU s':>9}{'CPU us/' + unit:>14}{'ratio':>8}")
    first = None
    for n in sizes:
        wall, cpu = timer(n)
        per = cpu / n * 1e6
        first = first or per
        print(f"  {n:>8}{wall:>9.2f}{cpu:>9.2f}{per:>14.1f}{per / first:>8.2f}", flush=True)


def _ints(text: str) -> List[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=_ints, default=[500, 1000, 2000, 4000, 8000])
    ap.add_argument("--line-sizes", type=_ints, default=[250, 500, 1000, 2000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="profile one --fix run with N fixes instead of timing")
    args = ap.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="flake8-device-scale-")
    try:
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(time_fix, args.profile, 1, workdir)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
            return 0
        print(f"python {sys.version.split()[0]}, best of {args.repeat}")
        table("--fix, N fixes in one file (DEV101, one per statement):", "fix", args.sizes,
              lambda n: time_fix(n, args.repeat, workdir))
        table("report, K diagnostics on one line (DEV001):", "diag", args.line_sizes,
              lambda k: time_report(k, args.repeat, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
