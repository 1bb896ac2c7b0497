"""Per-code report counts on real code, and the DVIS-DAQ seed check.

Runs ``flake8 --select DEV`` (the plugin, as a user runs it) over

* ``../shared/realworld/DVIS_DAQ`` (the real DVIS-DAQ sources, when present),
* the installed torchvision and detectron2 sources,

and prints, per code, how many reports each tree gets.  For DVIS-DAQ it also checks the
user's analysis (``../shared/seed/dvis-daq-device-issue-analysis.md``): every hardcoded
line it lists must be reported with a portability (DEV0xx) code, and no DEV102 may appear
without being named.

    .venv/bin/python benchmarks/realworld_rules.py [--show CODE ...]

``--show DEV007`` prints every DEV007 report (to read them and judge precision).
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re
import subprocess
import sys
from typing import Dict, List, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "realworld" / "DVIS_DAQ"
ANALYSIS = ROOT.parent / "shared" / "seed" / "dvis-daq-device-issue-analysis.md"


def _site_packages() -> pathlib.Path:
    import torchvision  # noqa: F401  (located through the running interpreter)

    return pathlib.Path(sys.modules["torchvision"].__file__).resolve().parents[1]


def flake8(path: pathlib.Path, *extra: str) -> List[Tuple[str, int, str, str]]:
    """(file, line, code, message) of every report."""
    res = subprocess.run([sys.executable, "-m", "flake8", "--isolated", "--select", "DEV", *extra, str(path)],
                         capture_output=True, text=True)
    rows = []
    for line in res.stdout.splitlines():
        m = re.match(r"^(.*?):(\d+):\d+: (DEV\d+) (.*)$", line)
        if m:
            rows.append((m.group(1), int(m.group(2)), m.group(3), m.group(4)))
    return rows


def seed_lines() -> Dict[str, List[str]]:
    """The hardcoded source lines the analysis lists, by the file it names."""
    text = ANALYSIS.read_text(encoding="utf-8", errors="replace")
    out: Dict[str, List[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^#### \*\*In `(.+?)`:\*\*", line)
        if m:
            current = m.group(1)
            continue
        if line.startswith("## "):
            current = None
        if current and ('"cuda"' in line) and not line.lstrip().startswith("#"):
            out.setdefault(current, []).append(line.strip())
    return out


def check_seed(rows) -> int:
    by_file: Dict[str, Dict[int, List[str]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for f, line, code, _ in rows:
        by_file[pathlib.Path(f).name][line].append(code)
    missing = 0
    total = 0
    for name, needles in seed_lines().items():
        path = REAL / "dvis_daq" / name
        src = path.read_text().splitlines()
        for needle in needles:
            hits = [i + 1 for i, l in enumerate(src) if needle in l.strip()]
            if not hits:
                print(f"  not found in {name}: {needle}")
                missing += 1
                continue
            for h in hits:
                total += 1
                codes = by_file[name].get(h, []) + by_file[name].get(h - 1, [])
                ok = any(c.startswith("DEV0") for c in codes)
                missing += not ok
                print(f"  {'ok ' if ok else 'MISSING'} {name}:{h} {sorted(set(codes))}  {needle[:70]}")
    print(f"seed lines: {total - missing} of {total} reported with a DEV0xx code")
    return missing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--show", nargs="*", default=[], help="print every report of these codes")
    args = ap.parse_args(argv)
    site = _site_packages()
    trees = {"DVIS_DAQ": REAL, "torchvision": site / "torchvision", "detectron2": site / "detectron2"}
    counts: Dict[str, collections.Counter] = {}
    failed = 0
    for label, path in trees.items():
        if not path.is_dir():
            print(f"{label}: {path} not present, skipped")
            continue
        rows = flake8(path)
        counts[label] = collections.Counter(code for _, _, code, _ in rows)
        for f, line, code, msg in rows:
            if code in args.show:
                print(f"{label} {pathlib.Path(f).relative_to(path)}:{line}: {code} {msg[:100]}")
        if label == "DVIS_DAQ":
            failed += check_seed(rows)
            dev102 = counts[label].get("DEV102", 0)
            print(f"DEV102 reports with --select DEV: {dev102}")
            failed += dev102 > 0
    codes = sorted({c for cnt in counts.values() for c in cnt})
    print()
    print("| code | " + " | ".join(counts) + " |")
    print("|---|" + "---|" * len(counts))
    for code in codes:
        print(f"| {code} | " + " | ".join(str(counts[t].get(code, 0)) for t in counts) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
