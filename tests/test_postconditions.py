"""Post-conditions every fix passes before a file is written.

The fixed text parses, adds no undefined name (pyflakes, before/after), binds
every module a fix needs (``Fix.needs``: ``import torch`` is added once),
applies the fixes of one ``Fix.group`` all or none, and applies a fix shared
by two diagnostics once.  A fix that fails is dropped with the reason, never
counted as fixed, and the other fixes of the file still apply.
"""

from __future__ import annotations

import ast
import io
import re
from collections import Counter

import pytest

from flake8_device_fixers import apply_fixes
from flake8_device_fixers.postconditions import ABSENT, BOUND, OTHER, import_insertion, module_binding, undefined_names
from flake8_device_fixers.testing import span_of
from flake8_device import cli
from flake8_device.diagnostics import Diagnostic, Fix, ReplaceNode, Span


def undefined(text: str) -> Counter:
    found = undefined_names(text)
    assert found is not None
    return Counter(n for n, _, _ in found)


# A stand-in linter driven by markers in the source, so each post-condition
# can be exercised alone.  Every string literal "cuda" is a DEV001 whose fix
# is the text after the marker comment on its line:
#   x = "cuda"  # -> torch.device("cpu") [needs torch] [group g1] [unsafe] [code DEV005] [twin]
_MARK = re.compile(r"#\s*->\s*(?P<fix>[^\[]*?)\s*(?P<opts>(\[[^\]]*\]\s*)*)$")


def marker_linter(source: str, filename: str = "<string>", options=None):
    tree = ast.parse(source, filename)
    lines = source.splitlines()
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and node.value == "cuda"):
            continue
        m = _MARK.search(lines[node.lineno - 1])
        if m is None:
            continue
        opts = re.findall(r"\[([^\]]*)\]", m.group("opts"))
        needs = tuple(o.split()[1] for o in opts if o.startswith("needs "))
        group = next((o.split()[1] for o in opts if o.startswith("group ")), None)
        code = next((o.split()[1] for o in opts if o.startswith("code ")), "DEV001")
        span = Span.of(node)
        fix = Fix((ReplaceNode(span, m.group("fix")),), "unsafe" not in opts, "marker fix",
                  group=group, needs=needs)
        out.append(Diagnostic(code, "hardcoded", span, fix))
        if "twin" in opts:
            out.append(Diagnostic("DEV101", "same site", span, fix))
    return out


def run(tmp_path, text: str, *argv: str, name: str = "m.py"):
    path = tmp_path / name
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--isolated", *argv, str(path)], stdout=out, stderr=err, linter=marker_linter)
    return code, path.read_text(), out.getvalue(), err.getvalue()


# --- undefined names ----------------------------------------------------------


def test_fix_leaving_self_undefined_is_dropped_and_others_apply(tmp_path):
    src = (
        "import torch\n\n"
        'X = "cuda"  # -> self.device\n\n'
        "class M:\n"
        "    def f(self):\n"
        '        return "cuda"  # -> self.device\n'
    )
    code, text, out, _ = run(tmp_path, src, "--fix", "--summary")
    assert 'X = "cuda"' in text  # module level: no self there
    assert "return self.device" in text  # inside the method: fine
    assert undefined(text) == Counter()
    assert "dropped: would leave undefined name 'self' (F821)" in out
    assert re.search(r"DEV001\s+2\s+1\s+1", out), out  # found 2, fixed 1, left 1


def test_undefined_name_introduced_by_a_configured_device_expr_is_dropped(tmp_path):
    src = 'def f():\n    return "cuda"  # -> args.device\n'
    _, text, out, _ = run(tmp_path, src, "--fix")
    assert text == src
    assert "would leave undefined name 'args'" in out


def test_name_undefined_before_the_fix_does_not_block_it(tmp_path):
    # `t` is undefined in the original too: the fix adds nothing undefined
    src = 'x = t.to("cuda")  # -> "cpu"\n'
    _, text, _, _ = run(tmp_path, src, "--fix")
    assert text == 'x = t.to("cpu")  # -> "cpu"\n'


def test_apply_fixes_reports_the_culprit_only():
    src = 'a = "cuda"\nb = "cuda"\n'
    d1 = Diagnostic("DEV001", "m", Span(1, 4, 1, 10), Fix((ReplaceNode(Span(1, 4, 1, 10), "nowhere"),), True, "x"))
    d2 = Diagnostic("DEV004", "m", Span(2, 4, 2, 10), Fix((ReplaceNode(Span(2, 4, 2, 10), "a"),), True, "x"))
    res = apply_fixes(src, [d1, d2], check_names=True)
    assert res.text == 'a = "cuda"\nb = a\n'
    assert res.applied == [d2]
    assert res.skipped == [(d1, "dropped: would leave undefined name 'nowhere' (F821)")]
    # without the check (the low-level default) both apply
    assert apply_fixes(src, [d1, d2]).applied == [d1, d2]


# --- needed modules -------------------------------------------------------------


def test_needed_torch_is_imported_once_after_the_opening_imports(tmp_path):
    src = (
        '"""Doc."""\n'
        "from __future__ import annotations\n"
        "import os\n"
        "from typing import List\n\n"
        'A = "cuda"  # -> torch.device("cpu") [needs torch]\n'
        'B = "cuda"  # -> torch.device("cpu") [needs torch]\n'
    )
    _, text, _, _ = run(tmp_path, src, "--fix")
    assert text.count("import torch\n") == 1
    assert text.startswith('"""Doc."""\nfrom __future__ import annotations\nimport os\n'
                           "from typing import List\nimport torch\n\n")
    assert undefined(text) == Counter()
    ns: dict = {}
    exec(compile(text, "m.py", "exec"), ns)
    assert str(ns["A"]) == "cpu"


def test_needed_import_in_a_module_without_imports(tmp_path):
    src = '#!/usr/bin/env python\n# a comment\nA = "cuda"  # -> torch.device("cpu") [needs torch]\n'
    _, text, _, _ = run(tmp_path, src, "--fix")
    assert text == ('#!/usr/bin/env python\n# a comment\nimport torch\n'
                    'A = torch.device("cpu")  # -> torch.device("cpu") [needs torch]\n')


def test_needed_module_already_imported_is_not_imported_again(tmp_path):
    src = 'import torch.nn\nA = "cuda"  # -> torch.device("cpu") [needs torch]\n'
    _, text, _, _ = run(tmp_path, src, "--fix")
    assert text.count("import torch") == 1 and 'A = torch.device("cpu")' in text


@pytest.mark.parametrize("binding", ["torch = None\n", "from mylib import torch\n", "import numpy as torch\n",
                                     "def f(torch):\n    return torch\n"])
def test_needed_name_bound_to_something_else_drops_the_fix(tmp_path, binding):
    src = binding + 'A = "cuda"  # -> torch.device("cpu") [needs torch]\nB = "cuda"  # -> "cpu"\n'
    _, text, out, _ = run(tmp_path, src, "--fix")
    assert 'A = "cuda"' in text and text.startswith(binding)  # nothing added
    assert 'B = "cpu"' in text  # the other fix of the file still applies
    assert "needs module 'torch', but this module binds 'torch' to something else" in out


def test_module_binding_kinds():
    def kind(src):
        return module_binding(ast.parse(src), "torch")

    assert kind("import torch\n") == BOUND
    assert kind("import torch.nn.functional as F\n") == ABSENT
    assert kind("def f():\n    import torch\n") == ABSENT
    assert kind("from torch import nn\n") == ABSENT
    assert kind("try:\n    import torch\nexcept ImportError:\n    torch = None\n") == OTHER
    assert kind("for torch in x:\n    pass\n") == OTHER
    # a type checker's import binds nothing when the module runs
    assert kind("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n") == ABSENT
    assert kind("import typing\nif typing.TYPE_CHECKING:\n    import torch\nelse:\n    import torch\n") == BOUND


def test_needed_torch_imported_only_for_type_checkers_is_imported_for_real(tmp_path):
    src = ("from typing import TYPE_CHECKING\n"
           "if TYPE_CHECKING:\n"
           "    import torch\n"
           'A = "cuda"  # -> torch.device("cpu") [needs torch]\n')
    _, text, _, _ = run(tmp_path, src, "--fix")
    assert text.count("import torch\n") == 2, text
    ns: dict = {}
    exec(compile(text, "m.py", "exec"), ns)
    assert str(ns["A"]) == "cpu"


def test_import_insertion_points():
    assert import_insertion(ast.parse("")) == (0, False)
    assert import_insertion(ast.parse('"""d"""\nx = 1\n')) == (1, True)
    assert import_insertion(ast.parse("from a import (\n    b,\n)\nx = 1\n")) == (3, True)
    assert import_insertion(ast.parse("# c\n@dec\ndef f():\n    pass\n")) == (2, False)


# --- groups ----------------------------------------------------------------------


GROUP_SRC = (
    'import torch\n'
    'A = "cuda"  # -> "cpu" [group amp]\n'
    'B = "cuda"{noqa}  # -> "cpu" [group amp]{mark}\n'
    'C = "cuda"  # -> "cpu"\n'
)


def test_group_member_under_noqa_drops_the_whole_group(tmp_path):
    src = GROUP_SRC.format(noqa="  # noqa: DEV001", mark="")
    _, text, out, _ = run(tmp_path, src, "--fix", "--summary")
    assert 'A = "cuda"' in text and 'B = "cuda"' in text  # neither member applied
    assert 'C = "cpu"' in text  # the rest of the file still applies
    assert "its group 'amp' is not applied whole (DEV001 on line 3 is suppressed by # noqa)" in out
    assert "did not settle" not in out


def test_group_member_unsafe_drops_the_group_unless_unsafe_fixes(tmp_path):
    src = GROUP_SRC.format(noqa="", mark=" [unsafe]")
    _, text, out, _ = run(tmp_path, src, "--fix")
    assert 'A = "cuda"' in text and 'B = "cuda"' in text and 'C = "cpu"' in text
    assert "is an unsafe fix" in out
    _, text, _, _ = run(tmp_path, src, "--fix", "--unsafe-fixes")
    assert 'A = "cpu"' in text and 'B = "cpu"' in text


def test_group_member_not_selected_drops_the_group(tmp_path):
    src = (
        'A = "cuda"  # -> "cpu" [group amp] [code DEV005]\n'
        'B = "cuda"  # -> "cpu" [group amp]\n'
    )
    _, text, out, _ = run(tmp_path, src, "--fix", "--extend-ignore", "DEV005")
    assert text == src
    assert "DEV005 on line 1 is not selected" in out


def test_group_member_failing_the_name_check_drops_the_group(tmp_path):
    src = 'A = "cuda"  # -> "cpu" [group g]\nB = "cuda"  # -> self.device [group g]\n'
    _, text, out, _ = run(tmp_path, src, "--fix")
    assert text == src
    assert "would leave 'self' undefined" in out


# --- one fix carried by two diagnostics -------------------------------------------


def test_shared_fix_is_applied_once_and_both_count_as_fixed(tmp_path):
    src = 'X = "cuda"  # -> "cpu" [twin]\n'
    code, text, out, _ = run(tmp_path, src, "--fix", "--summary")
    assert text == 'X = "cpu"  # -> "cpu" [twin]\n'
    assert re.search(r"DEV001\s+1\s+1\s+0", out) and re.search(r"DEV101\s+1\s+1\s+0", out), out
    assert "Fixed 2 diagnostic(s) in 1 file(s); 0 left." in out
    assert code == 0


# --- rounds -------------------------------------------------------------------------


def growing_linter(source, filename="<string>", options=None):
    """A broken rule: its fix output is reported again, forever."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == "cuda":
            span = Span.of(node)
            return [Diagnostic("DEV001", "again", span, Fix((ReplaceNode(span, '("cuda")'),), True, "loop"))]
    return []


def test_fixes_that_do_not_settle_are_reported_with_the_real_reason(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('x = "cuda"\ny = "cuda"  # noqa\n')
    out = io.StringIO()
    code = cli.main(["--isolated", "--fix", "--max-rounds", "3", str(path)], stdout=out, stderr=io.StringIO(),
                    linter=growing_linter)
    assert path.read_text().startswith('x = ((("cuda")))\n')
    text = out.getvalue()
    assert "(left: fixes did not settle within 3 rounds)" in text
    assert code == 1


# --- the real engine ------------------------------------------------------------------


@pytest.mark.parametrize("src", [
    # a default written into a file that never imports torch
    'def run(to_store="cuda"):\n    return to_store\n',
    # module-level and __main__ code with device-expr = self.device
    'import torch\nx = torch.zeros(3).to("cuda")\nif __name__ == "__main__":\n    y = torch.ones(2).cuda()\n',
    # autocast import with its call; the import under noqa
    'from torch.cuda.amp import autocast  # noqa: DEV005\n\ndef f(x):\n    with autocast():\n        return x\n',
])
@pytest.mark.parametrize("extra", [(), ("--unsafe-fixes",), ("--device-expr", "self.device")])
def test_real_engine_fixes_add_no_undefined_name(tmp_path, src, extra):
    path = tmp_path / "m.py"
    path.write_text(src)
    cli.main(["--isolated", "--fix", *extra, str(path)], stdout=io.StringIO(), stderr=io.StringIO())
    text = path.read_text()
    ast.parse(text)
    assert undefined(text) - undefined(src) == Counter(), text


def test_needed_import_and_an_insertion_at_the_same_place():
    from flake8_device.diagnostics import InsertBefore

    src = "import os\nx = f()\n"
    stmt = Span(2, 0, 2, 7)
    ins = Diagnostic("DEV004", "m", stmt, Fix((InsertBefore(stmt, 'DEVICE = torch.device("cpu")\n'),
                                               ReplaceNode(Span(2, 4, 2, 5), "g")), True, "x", needs=("torch",)))
    res = apply_fixes(src, [ins], check_names=True, builtins=("f", "g"))
    assert res.text == 'import os\nimport torch\nDEVICE = torch.device("cpu")\nx = g()\n'
    assert undefined(res.text) == Counter({"g": 1})  # only the name this test leaves to the caller


def test_needed_import_at_the_end_of_a_file_without_final_newline():
    src = "import os"
    d = Diagnostic("DEV001", "m", Span(1, 7, 1, 9),
                   Fix((ReplaceNode(Span(1, 7, 1, 9), "os"),), True, "x", needs=("torch",)))
    res = apply_fixes(src, [d], check_names=True)
    assert res.text == "import os\nimport torch"


def test_noqa_on_the_amp_import_keeps_its_call_sites_and_the_count_honest(tmp_path):
    """The real engine: the torch.cuda.amp import under noqa, its call sites in
    the same group.  Before, the calls were rewritten (a TypeError at run time)
    and the summary said "5 fixed, 1 left (fixes did not settle within 5 rounds)"."""
    src = ("import torch\nfrom torch.cuda.amp import autocast  # noqa: DEV005\n\n\n"
           "def f(x):\n    with autocast():\n        return x * 2\n")
    path = tmp_path / "amp.py"
    path.write_text(src)
    out = io.StringIO()
    cli.main(["--isolated", "--fix", "--summary", str(path)], stdout=out, stderr=io.StringIO())
    assert path.read_text() == src
    text = out.getvalue()
    assert "did not settle" not in text
    assert re.search(r"DEV005\s+1\s+0\s+1", text), text
    assert "is not applied whole (DEV005 on line 2 is suppressed by # noqa)" in text


# --- f-string replacement fields -------------------------------------------------

from flake8_device.diagnostics import RewriteCall  # noqa: E402
from flake8_device_fixers.syntax import REASON_FSTRING, REASON_FSTRING_DEBUG  # noqa: E402


@pytest.mark.parametrize("quote", ['"', "'", '"""', "'''"])
def test_literal_written_into_an_fstring_field_takes_the_other_quote(quote):
    src = f"s = f{quote}{{load(p)}} {{x}}{quote}\n"
    sp = span_of(src, "load(p)")
    d = Diagnostic("DEV006", "m", sp, Fix((RewriteCall(sp, sp, (("map_location", '"cpu"'),)),), True, "x"))
    res = apply_fixes(src, [d])
    assert res.applied == [d]
    other = "'" if quote[0] == '"' else '"'
    assert res.text == f"s = f{quote}{{load(p, map_location={other}cpu{other})}} {{x}}{quote}\n"
    compile(res.text, "<fixed>", "exec")


def test_replacement_outside_an_fstring_keeps_its_quotes():
    src = "s = load(p)\n"
    sp = span_of(src, "load(p)")
    d = Diagnostic("DEV006", "m", sp, Fix((ReplaceNode(sp, 'load(p, "cpu")'),), True, "x"))
    assert apply_fixes(src, [d]).text == 's = load(p, "cpu")\n'


@pytest.mark.parametrize("src,segment,reason", [
    ("s = f\"{f'{load(p)}'}\"\n", "load(p)", REASON_FSTRING),  # both quotes taken
    ('s = f"{load(p)=}"\n', "load(p)", REASON_FSTRING_DEBUG),  # the field's text is printed
])
def test_fix_that_cannot_be_written_into_an_fstring_is_left_with_its_reason(src, segment, reason):
    sp = span_of(src, segment)
    d = Diagnostic("DEV006", "m", sp, Fix((ReplaceNode(sp, 'load(p, "cpu")'),), True, "x"))
    res = apply_fixes(src, [d])
    assert res.text == src and res.applied == []
    assert res.skipped == [(d, reason)]
