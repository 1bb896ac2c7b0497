"""Cost of each --output-format, side by side with the text report.

The structured formats that carry fixes (json, json-lines, sarif) ask the
fixer's plan of each file for the text edits of every fix; the others only
format.
This script runs ``flake8-device --isolated --output-format F PATH`` in
process for every format, interleaved over ``--repeat`` rounds, and prints
the median wall time of each and its ratio to ``text``.

    .venv/bin/python benchmarks/bench_output.py                 # the real DVIS-DAQ sources when present
    .venv/bin/python benchmarks/bench_output.py corpus --repeat 5
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from flake8_device import cli, output  # noqa: E402

REAL = os.path.normpath(os.path.join(ROOT, "..", "shared", "realworld", "DVIS_DAQ"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", nargs="?", default=REAL if os.path.isdir(REAL) else os.path.join(ROOT, "corpus"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--formats", default=",".join(output.FORMATS))
    args = p.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    times = {f: [] for f in formats}
    counts = {}
    for _ in range(args.repeat):
        for fmt in formats:
            out, err = io.StringIO(), io.StringIO()
            start = time.perf_counter()
            cli.main(["--isolated", "--output-format", fmt, args.path], stdout=out, stderr=err)
            times[fmt].append(time.perf_counter() - start)
            counts[fmt] = len(out.getvalue())
    n_files = sum(1 for _ in cli.iter_python_files([args.path], cli.load_settings(None, True)))
    print(f"{args.path}: {n_files} files, median of {args.repeat} interleaved runs")
    base = statistics.median(times["text"]) if "text" in times else None
    print(f"{'format':<12}{'seconds':>9}{'vs text':>9}{'bytes out':>11}")
    for fmt in formats:
        med = statistics.median(times[fmt])
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"{fmt:<12}{med:>9.2f}{ratio:>9}{counts[fmt]:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
