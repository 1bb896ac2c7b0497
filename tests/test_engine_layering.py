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


# ---- the whole package: no import cycle, no oversized function or class ------------------------

def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _import_graph():
    """Module -> the package's modules it imports: every import statement, at any depth (functions,
    ``if TYPE_CHECKING:`` blocks included).  ``from . import x`` of a submodule imports ``x``."""
    graph = {}
    for mod, path in MODULES.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
                names = subs if len(subs) == len(node.names) else [target, *subs]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            out.update(n for n in names if n in MODULES and n != mod)
        graph[mod] = out
    return graph


def _cycles(graph):
    """The strongly connected components of more than one module (each a set)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# Import cycles still being taken apart, listed so that the list only shrinks: an entry that no
# longer is a cycle must be removed, and any cycle not listed fails.
CYCLES_BEING_REMOVED: frozenset = frozenset()


def test_no_import_cycle_between_modules():
    cycles = set(_cycles(_import_graph()))
    assert cycles - CYCLES_BEING_REMOVED == set()
    assert CYCLES_BEING_REMOVED - cycles == set(), "a listed cycle is gone: remove it from CYCLES_BEING_REMOVED"


def test_cycle_finder_sees_type_only_and_function_level_imports():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [frozenset({"a", "b"})]
    graph = _import_graph()
    # context.py imports inference only under ``if TYPE_CHECKING:``; the flake8 plugin's package
    # imports the engine inside a function
    assert "flake8_device.inference" in graph["flake8_device.context"]
    assert "flake8_device.engine" in graph["flake8_device"]


MAX_FUNCTION_LINES = 100
MAX_CLASS_LINES = 350
# Exactly the files still over the limits while they are being split (of cli.py, output.py, runner.py):
# this list only shrinks (an entry whose file is back within the limits fails the test, so it gets removed).
OVERSIZED_BEING_SPLIT = frozenset({"cli.py"})


def _oversized():
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.parts[0] in ("harness", "virtual"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > MAX_FUNCTION_LINES \
                    or isinstance(node, ast.ClassDef) and size > MAX_CLASS_LINES:
                out.setdefault(str(rel), []).append(f"{node.name} ({size} lines)")
    return out


def test_no_oversized_function_or_class():
    over = _oversized()
    assert {f: v for f, v in over.items() if f not in OVERSIZED_BEING_SPLIT} == {}
    assert OVERSIZED_BEING_SPLIT - set(over) == set(), "a listed file is within the limits: remove it"
