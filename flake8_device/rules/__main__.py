"""``python -m flake8_device.rules --markdown``: the rule table of docs/rules.md, from the registry.

``--messages`` prints each rule's example message as docs/rules.md gives it (``**Message:**``).
"""

from __future__ import annotations

import argparse
import sys

from . import REGISTRY

# DEV000 is reported by the front ends, not by a rule: its row follows the DEV0xx rules.
DEV000_ROW = ("| [DEV000](#dev000) | a file the plugin could not check (flake8; the command's structured outputs) "
              "| yes | none |")


def table_row(unit) -> str:
    on = "**no** (too noisy, see below)" if unit.default_ignored else "yes"
    return f"| [{unit.code}](#{unit.code.lower()}) | {unit.finds} | {on} | {unit.fix_safety} |"


def markdown_table() -> str:
    rows = ["| code | finds | on by default | fix |", "|---|---|---|---|"]
    codes = sorted(REGISTRY)
    rows += [table_row(REGISTRY[c]) for c in codes if c < "DEV100"]
    rows.append(DEV000_ROW)
    rows += [table_row(REGISTRY[c]) for c in codes if c >= "DEV100"]
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flake8_device.rules", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the rule table of docs/rules.md")
    parser.add_argument("--messages", action="store_true", help="print each rule's example message")
    args = parser.parse_args(argv)
    if args.messages:
        for code in sorted(REGISTRY):
            sys.stdout.write(f"{code}: {REGISTRY[code].message}\n")
    if args.markdown or not args.messages:
        sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
