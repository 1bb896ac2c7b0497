"""The rule registry: rules are units, docs/rules.md agrees with them, relations are declared."""

from __future__ import annotations

import ast
import pathlib

import pytest

from flake8_device import rules
from flake8_device.engine import Checker, check_source
from flake8_device.options import Options
from flake8_device.rules import REGISTRY, registry

ROOT = pathlib.Path(__file__).resolve().parents[1]
RULE_MODULES = sorted(p for p in (ROOT / "flake8_device" / "rules").glob("*.py")
                      if p.stem not in ("__init__", "__main__", "registry", "common"))


def test_codes_come_from_the_registry():
    assert rules.CODES == {c: u.summary for c, u in sorted(REGISTRY.items())}
    assert rules.DEFAULT_IGNORED == tuple(c for c, u in sorted(REGISTRY.items()) if u.default_ignored)
    assert "DEV102" in rules.DEFAULT_IGNORED and "DEV001" not in rules.DEFAULT_IGNORED
    assert all(u.hooks for u in REGISTRY.values()), [c for c, u in REGISTRY.items() if not u.hooks]


def _functions(path):
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


@pytest.mark.parametrize("path", RULE_MODULES, ids=lambda p: p.name)
def test_no_rule_tests_guarded_first(path):
    """``if ck.guarded: return`` at the top of a hook is the hook's ``skip_guarded=True``."""
    bad = []
    for fn in _functions(path):
        first = next((s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))),
                     None)
        if isinstance(first, ast.If) and ast.unparse(first.test) == "ck.guarded" \
                and isinstance(first.body[0], ast.Return):
            bad.append(f"{path.name}:{fn.name}")
    assert bad == []


@pytest.mark.parametrize("path", RULE_MODULES, ids=lambda p: p.name)
def test_no_shared_mutable_rule_state(path):
    """Rules meet only through declared claims (``ck.claim`` / ``ck.claimed``) and their own ``ck.state``."""
    used = {n.attr for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "ck"}
    assert not used & {"handled", "rule_state", "inference_cache"}


def test_hooks_of_runs_a_rule_after_the_rules_it_yields_to():
    for kind in registry.KINDS:
        order = [h.rule.code for h in registry.hooks_of(kind)]
        for i, code in enumerate(order):
            for other in REGISTRY[code].yields_to:
                assert other not in order[i + 1:], (kind, code, other)


def test_a_hook_cannot_report_an_undeclared_code():
    unit = registry.Rule("DEV999", summary="s", finds="f", fix_safety="none", message="m")
    hook = registry.Hook(unit, "module", lambda ck, tree: ck.report("DEV001", tree.body[0], "x"))
    ck = Checker(ast.parse("x = 1\n"), ["x = 1\n"], Options())
    with pytest.raises(ValueError, match="DEV999 reports DEV001"):
        ck._call_hook(hook, ck.tree)


def test_claims_are_seen_only_by_the_claimant_and_the_rules_that_yield_to_it():
    ck = Checker(ast.parse("x = 1\n"), ["x = 1\n"], Options())
    node = ck.tree.body[0]
    seen = {}

    def claimer(ck, tree):
        ck.claim(node)

    def asker(ck, tree):
        seen[ck._rule.code] = ck.claimed(node)

    a = registry.Rule("DEV990", summary="", finds="", fix_safety="", message="")
    b = registry.Rule("DEV991", summary="", finds="", fix_safety="", message="", yields_to=("DEV990",))
    c = registry.Rule("DEV992", summary="", finds="", fix_safety="", message="")
    ck._call_hook(registry.Hook(a, "module", claimer), ck.tree)
    for unit in (a, b, c):
        ck._call_hook(registry.Hook(unit, "module", asker), ck.tree)
    assert seen == {"DEV990": True, "DEV991": True, "DEV992": False}


def test_each_rule_keeps_its_own_state():
    ck = Checker(ast.parse("x = 1\n"), ["x = 1\n"], Options())
    a = registry.Rule("DEV990", summary="", finds="", fix_safety="", message="")
    b = registry.Rule("DEV991", summary="", finds="", fix_safety="", message="")
    ck._call_hook(registry.Hook(a, "module", lambda ck, t: ck.state.__setitem__("k", 1)), ck.tree)
    got = []
    ck._call_hook(registry.Hook(b, "module", lambda ck, t: got.append(ck.state.get("k"))), ck.tree)
    assert got == [None]


def test_skip_guarded_hooks_do_not_run_under_a_guard():
    src = "import torch\nif torch.cuda.is_available():\n    x = y.to('cuda')\nz = y.to('cuda')\n"
    assert [d.span.line for d in check_source(src) if d.code == "DEV001"] == [4]
