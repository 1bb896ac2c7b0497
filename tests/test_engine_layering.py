"""The engine's layering: engine -> rules -> facts/inference/context, and no cycle back."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

from flake8_device import context
from flake8_device.engine import Checker
from flake8_device.options import Options

PKG = pathlib.Path(__file__).resolve().parents[1] / "flake8_device"
RULES = sorted((PKG / "rules").glob("*.py"))
LOWER = [PKG / "facts.py", PKG / "inference.py", PKG / "context.py"]


def _imported_modules(path: pathlib.Path):
    """Absolute names of the project modules ``path`` imports (relative imports resolved)."""
    package = "flake8_device.rules" if path.parent.name == "rules" else "flake8_device"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_rules_do_not_import_the_engine(path):
    assert "flake8_device.engine" not in _imported_modules(path)


@pytest.mark.parametrize("path", LOWER, ids=lambda p: p.name)
def test_facts_and_inference_sit_below_the_rules(path):
    mods = _imported_modules(path)
    assert not {m for m in mods if m.startswith(("flake8_device.engine", "flake8_device.rules"))}


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_rules_use_only_the_public_context(path):
    private = [
        f"{path.name}:{n.lineno} ck.{n.attr}"
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "ck"
        and n.attr.startswith("_")
    ]
    assert private == []


def test_rules_import_alone():
    code = "import sys, flake8_device.rules; assert 'flake8_device.engine' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_checker_provides_the_whole_context():
    ck = Checker(ast.parse("x = 1\n"), ["x = 1\n"], Options())
    members = [n for n in vars(context.RuleContext) if not n.startswith("_")]
    members += list(context.RuleContext.__annotations__)
    assert members and [m for m in members if not hasattr(ck, m)] == []
