"""FilePlan answers what applying each fix alone answers, once per file.

The JSON and SARIF outputs show, for each diagnostic, the edits of its fix
applied alone (with its group).  ``FilePlan.alone`` computes them for a whole
file with one check of the text holding every fix that changes no binding;
these tests compare it with applying each fix on its own, the way the
outputs did it before, on the rule fixtures and on generated modules that mix
fixes that pass, fixes that would leave a name undefined, groups, fixes that
remove a binding and functions that declare ``global`` names.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flake8_device import engine, output
from flake8_device.options import Options
from flake8_device_fixers import FilePlan, apply_fixes
from flake8_device_fixers import postconditions

ROOT = Path(__file__).resolve().parents[1]


def one_by_one(text, diags, path):
    """The edits of every fix, each applied alone with its group: the old way."""
    def apply(t, ds):
        return apply_fixes(t, ds, unsafe=True, filename=path, check_names=True)

    return [output.fix_edits(text, d, diags, path, apply=apply) for d in diags]


def planned(text, diags, path, tree=None):
    plan = FilePlan(text, path, check_names=True, tree=tree)
    return [output.fix_edits(text, d, diags, path, plan=plan) for d in diags]


def lint(text, path="m.py"):
    return engine.check_source(text, path, Options())


def test_every_fixture_gets_the_edits_of_its_fix_alone():
    files = sorted((ROOT / "corpus").rglob("*.py"))
    assert len(files) > 30
    compared = 0
    for file in files:
        text = file.read_text(encoding="utf-8")
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        diags = engine.check_source(text, str(file), Options(), tree=tree)
        if not any(d.fix for d in diags):
            continue
        expected = one_by_one(text, diags, str(file))
        assert planned(text, diags, str(file)) == expected, file
        # the linter's own tree, pyflakes' marks left on it, gives the same answers
        assert planned(text, diags, str(file), tree=tree) == expected, file
        compared += sum(1 for e in expected if e is not None)
    assert compared > 50


# Statements of a generated module.  Each is complete on its line(s) at module level or in a
# function; several carry fixes of the real rules.
MODULE_PIECES = [
    "x = torch.zeros(3).cuda()\n",
    "y = torch.ones(2, device='cuda')\n",
    "w = torch.randn(4).to('cuda')\n",
    "from torch.cuda.amp import autocast\n",
    "q = 1\n",
]
BODY_PIECES = [
    "a = torch.zeros(3).cuda()\n",
    "b = undefined_thing.cuda()\n",
    "c = torch.ones(2).to('cuda') + q\n",
    "with autocast():\n        pass\n",
    "global q\n    q = torch.zeros(1).cuda()\n",
    "d = [torch.zeros(1).cuda() for _ in range(2)]\n",
    "e = f'{torch.zeros(1).cuda()}'\n",
    "return torch.tensor([1.0]).cuda()\n",
]
CLASS_BODY = (
    "class M(torch.nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.w = torch.nn.Parameter(torch.zeros(1))\n"
    "    def forward(self, x):\n"
    "        return x + torch.zeros(3).cuda()\n"
)


@st.composite
def modules(draw):
    out = [draw(st.sampled_from(["import torch\n", "import torch\nimport os\n", ""]))]
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            out.append(draw(st.sampled_from(MODULE_PIECES)))
        elif kind == 1:
            body = draw(st.lists(st.sampled_from(BODY_PIECES), min_size=1, max_size=3))
            out.append("def f%d():\n" % len(out) + "".join("    " + b for b in body))
        else:
            out.append(CLASS_BODY)
    return "".join(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules())
def test_generated_modules_get_the_edits_of_each_fix_alone(text):
    try:
        diags = lint(text)
    except SyntaxError:
        return
    assert planned(text, diags, "m.py") == one_by_one(text, diags, "m.py")


def test_a_fix_whose_new_text_names_something_undefined_is_still_refused():
    text = "import torch\n\ndef f(t):\n    return t.cuda()\n\nx = torch.zeros(3).cuda()\n"
    diags = lint(text)
    fixes = [d for d in diags if d.fix is not None]
    assert fixes
    # forge one fix that would use an undefined name, next to the real ones
    from dataclasses import replace
    from flake8_device.diagnostics import ReplaceNode

    bad = replace(fixes[0], fix=replace(fixes[0].fix, ops=(ReplaceNode(fixes[0].span, "nowhere_defined"),)))
    mixed = [bad] + [d for d in diags if d is not fixes[0]]
    got = planned(text, mixed, "m.py")
    assert got == one_by_one(text, mixed, "m.py")
    assert got[0] is None


def test_equal_fixes_of_two_diagnostics_both_get_the_edits():
    text = "import torch\nx = torch.zeros(3).cuda()\n"
    diags = lint(text)
    plan = FilePlan(text, "m.py", check_names=True)
    same = [d for d in diags if d.fix is not None]
    assert len(same) >= 2 and len({d.fix for d in same}) == 1  # DEV001 and DEV101 share the fix
    for d in same:
        assert output.fix_edits(text, d, diags, "m.py", plan=plan)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["import torch\n", "torch = 1\n", "def f():\n    torch.x()\n", "# torch\n",
                                 "s = 'torch'\n", "from a import torch\n", "if TYPE_CHECKING:\n    import torch\n",
                                 "class torch: pass\n", "def g(torch): pass\n", "x = 1\n", "import torch.nn\n",
                                 "import numpy as torch\n", "try:\n    pass\nexcept E as torch:\n    pass\n"]),
                max_size=6),
       st.sampled_from(["\n", "\r\n", "\r"]))
def test_binding_lookup_skipping_statements_answers_the_same(pieces, newline):
    text = "".join(pieces).replace("\n", newline)
    tree = postconditions.parse(text)
    assert tree is not None
    lines = postconditions.word_lines(text, "torch")
    assert postconditions.module_binding(tree, "torch", lines) == postconditions.module_binding(tree, "torch")


def test_the_real_folders_get_the_edits_of_each_fix_alone():
    """On the real DVIS-DAQ and Mask2Former sources (skipped where they are absent)."""
    base = ROOT.parent / "shared" / "realworld"
    if not base.is_dir():
        import pytest

        pytest.skip("../shared/realworld is absent (a clone of the project alone)")
    compared = 0
    for name in ("DVIS_DAQ", "Mask2Former"):
        for file in sorted((base / name).rglob("*.py")):
            text = file.read_text(encoding="utf-8", errors="surrogateescape")
            if "cuda" not in text:
                continue
            try:
                diags = lint(text, os.fspath(file))
            except SyntaxError:
                continue
            if any(d.fix for d in diags):
                assert planned(text, diags, os.fspath(file)) == one_by_one(text, diags, os.fspath(file)), file
                compared += 1
    assert compared > 10
