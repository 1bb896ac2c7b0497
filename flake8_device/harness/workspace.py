"""Work directory: two copies of the model package, one of them fixed.

The fixed copy goes through the same lint-and-fix loop as ``flake8-device
--fix`` (:class:`flake8_device.cli.Runner`), so the harness checks exactly the
text users get.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from flake8_device_fixers import read_source, write_source

from ..cli import Runner, iter_python_files
from ..config import load_settings

# Files and folders never copied into the work directory.
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".mypy_cache", ".pytest_cache")

MUTATIONS = ("wrong-device", "leftover-cuda")


@dataclass
class FixSummary:
    """What the fixer did to the fixed copy."""

    found: Dict[str, int] = field(default_factory=dict)
    fixed: Dict[str, int] = field(default_factory=dict)
    left: Dict[str, int] = field(default_factory=dict)
    left_items: List[Dict[str, object]] = field(default_factory=list)
    fixed_items: List[Dict[str, object]] = field(default_factory=list)
    files_changed: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    mutation: Optional[Dict[str, object]] = None

    def total(self, which: str) -> int:
        return sum(getattr(self, which).values())

    def unsafe_count(self) -> int:
        """How many of the applied fixes are unsafe ones."""
        return sum(1 for item in self.fixed_items if not item.get("safe", True))

    def to_json(self) -> Dict[str, object]:
        return {
            "found": dict(sorted(self.found.items())),
            "fixed": dict(sorted(self.fixed.items())),
            "left": dict(sorted(self.left.items())),
            "totals": {k: self.total(k) for k in ("found", "fixed", "left")},
            "left_items": self.left_items,
            "fixed_items": self.fixed_items,
            "unsafe_fixed": self.unsafe_count(),
            "files_changed": self.files_changed,
            "errors": self.errors,
            "mutation": self.mutation,
        }


def package_names(package_dir: str) -> Tuple[str, str]:
    """Importable names of the two copies of ``package_dir``."""
    base = re.sub(r"\W", "_", os.path.basename(os.path.normpath(package_dir))) or "model"
    if base[0].isdigit():
        base = "m_" + base
    return base + "_original", base + "_fixed"


def copy_package(src: str, root: str, name: str) -> str:
    """Copy the package folder ``src`` to ``root/name`` (replacing it); return the new path."""
    dest = os.path.join(root, name)
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=_IGNORE)
    return dest


def fix_package(path: str, *, unsafe: bool = True, select: Optional[List[str]] = None) -> FixSummary:
    """Fix every Python file under ``path`` in place, as ``flake8-device --fix`` does.

    The project's own flake8 configuration is not read (``--isolated``), so
    the result does not depend on the folder the harness runs from.
    ``select``: only these codes (or code prefixes), as ``--select``.
    """
    settings = load_settings(None, True)
    if select:
        settings.select = list(select)
    runner = Runner(settings, fix=True, unsafe=unsafe, max_file_size=0)
    found: Counter = Counter()
    fixed: Counter = Counter()
    left: Counter = Counter()
    summary = FixSummary()
    for file in iter_python_files([path], settings):
        rel = os.path.relpath(file, path)
        try:
            report, source = runner.run_file(file)
        except Exception as exc:  # report, never stop: the checks show what it means
            summary.errors.append(f"{rel}: internal error: {type(exc).__name__}: {exc}")
            continue
        if report.error:
            summary.errors.append(report.error)
        found.update(d.code for d in report.found)
        fixed.update(d.code for d in report.fixed)
        for d in report.fixed:
            summary.fixed_items.append({
                "file": rel, "line": d.span.line, "code": d.code,
                "safe": bool(d.fix.safe) if d.fix is not None else True,
                "description": d.fix.description if d.fix is not None else "",
            })
        for d, why in report.left:
            left[d.code] += 1
            summary.left_items.append(
                {"file": rel, "line": d.span.line, "code": d.code, "message": d.message, "reason": why}
            )
        if report.changed and source is not None:
            write_source(source, report.text)
            summary.files_changed.append(rel)
    summary.found, summary.fixed, summary.left = dict(found), dict(fixed), dict(left)
    return summary


_SELF_DEVICE = re.compile(r"device=self\.device\b")


def mutate_fix(path: str, kind: str) -> Dict[str, object]:
    """Break one fixed device expression in the fixed copy (a test of the harness itself).

    ``wrong-device`` turns the first ``device=self.device`` into
    ``device="cpu"``: correct on a CPU-only run, a device mismatch on an
    accelerator. ``leftover-cuda`` turns it into ``device="cuda"``, a
    hardcoded device the fixer is meant to remove.
    """
    if kind not in MUTATIONS:
        raise ValueError(f"unknown mutation {kind!r}; choose from {', '.join(MUTATIONS)}")
    replacement = 'device="cpu"' if kind == "wrong-device" else 'device="cuda"'
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            file = os.path.join(root, name)
            src = read_source(file, 0)
            m = _SELF_DEVICE.search(src.text)
            if m is None:
                continue
            text = src.text[: m.start()] + replacement + src.text[m.end():]
            write_source(src, text)
            line = src.text.count("\n", 0, m.start()) + 1
            return {
                "kind": kind,
                "file": os.path.relpath(file, path),
                "line": line,
                "before": m.group(0),
                "after": replacement,
                "text": text.splitlines()[line - 1].strip(),
            }
    raise ValueError("mutation found no 'device=self.device' in the fixed copy to rewrite")
