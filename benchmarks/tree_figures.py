"""Per-tree figures of the command on real code: reports per code and what their fixes are.

For each tree (the real DVIS-DAQ and Mask2Former under ``../shared/realworld``, the installed
torchvision and detectron2, torch's own ``nn``, ``optim``, ``utils`` and ``distributed``) this
runs ``flake8-device --isolated --output-format json`` and prints, per tree and per code, how
many reports there are and how many carry a safe fix, an unsafe fix or none.  ``--save DIR``
keeps every tree's JSON; ``--compare DIR`` prints the table side by side with a saved run and
lists every report that appears or disappears, or whose fix changed applicability, so each
difference can be read.

    .venv/bin/python benchmarks/tree_figures.py --save out/trees-now
    .venv/bin/python benchmarks/tree_figures.py --compare out/trees-before

``--python`` runs another interpreter (for example one whose ``PYTHONPATH`` holds an older
checkout) so that two versions are measured with the same trees.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "realworld"


def _site_packages() -> pathlib.Path:
    import flake8  # noqa: F401  (located through the running interpreter)

    return pathlib.Path(sys.modules["flake8"].__file__).resolve().parents[1]


def trees() -> Dict[str, pathlib.Path]:
    site = _site_packages()
    found = {
        "DVIS_DAQ": REAL / "DVIS_DAQ",
        "Mask2Former": REAL / "Mask2Former",
        "torchvision": site / "torchvision",
        "detectron2": site / "detectron2",
        "torch/nn": site / "torch" / "nn",
        "torch/optim": site / "torch" / "optim",
        "torch/utils": site / "torch" / "utils",
        "torch/distributed": site / "torch" / "distributed",
    }
    return {name: path for name, path in found.items() if path.is_dir()}


def run_json(python: str, tree: pathlib.Path) -> List[dict]:
    code = "import sys; from flake8_device.cli import main; sys.exit(main())"
    args = [python, "-c", code, "--isolated", "--output-format", "json", str(tree)]
    # the folder is given explicitly: site-packages trees are checked although they sit in one
    proc = subprocess.run(args, capture_output=True, text=True, cwd=str(tree))
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{tree}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout or "[]")


def key(item: dict) -> Tuple[str, int, int, str]:
    loc = item.get("location") or {}
    return (item.get("filename", ""), loc.get("row", 0), loc.get("column", 0), item.get("code", ""))


def applicability(item: dict) -> str:
    fix = item.get("fix")
    return fix.get("applicability", "?") if fix else "none"


def table(items: List[dict]) -> Dict[str, collections.Counter]:
    per: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for it in items:
        per[it["code"]][applicability(it)] += 1
    return per


def _cell(c: Optional[collections.Counter]) -> str:
    if not c:
        return "0"
    return f"{sum(c.values())} (s{c['safe']} u{c['unsafe']} n{c['none']})"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--save", type=pathlib.Path)
    ap.add_argument("--compare", type=pathlib.Path)
    ap.add_argument("--only", nargs="*", help="tree names to run")
    args = ap.parse_args(argv)
    totals: Dict[str, List[str]] = {}
    for name, path in trees().items():
        if args.only and name not in args.only:
            continue
        items = run_json(args.python, path)
        now = table(items)
        slug = name.replace("/", "_")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"{slug}.json").write_text(json.dumps(items, indent=1, sort_keys=True))
        before_items: Optional[List[dict]] = None
        if args.compare and (args.compare / f"{slug}.json").exists():
            before_items = json.loads((args.compare / f"{slug}.json").read_text())
        before = table(before_items) if before_items is not None else {}
        print(f"## {name} ({path})")
        for code in sorted(set(now) | set(before)):
            if before_items is not None:
                print(f"  {code}: {_cell(before.get(code))} -> {_cell(now.get(code))}")
            else:
                print(f"  {code}: {_cell(now.get(code))}")
        safe = sum(c["safe"] for c in now.values())
        totals[name] = [str(len(items)), str(safe)]
        if before_items is not None:
            old = {key(i): i for i in before_items}
            new = {key(i): i for i in items}
            for k in sorted(set(old) - set(new)):
                print(f"  - gone: {k[0]}:{k[1]}:{k[2]} {k[3]} {old[k]['message'][:90]}")
            for k in sorted(set(new) - set(old)):
                print(f"  + new:  {k[0]}:{k[1]}:{k[2]} {k[3]} {new[k]['message'][:90]}")
            for k in sorted(set(old) & set(new)):
                a, b = applicability(old[k]), applicability(new[k])
                ea = (old[k].get("fix") or {}).get("edits")
                eb = (new[k].get("fix") or {}).get("edits")
                if a != b:
                    print(f"  ~ fix:  {k[0]}:{k[1]}:{k[2]} {k[3]} {a} -> {b}")
                elif ea != eb:
                    print(f"  ~ edit: {k[0]}:{k[1]}:{k[2]} {k[3]} ({a}) edits differ")
    print("\n| tree | reports | safe fixes |\n|---|---:|---:|")
    for name, (n, s) in totals.items():
        print(f"| {name} | {n} | {s} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
