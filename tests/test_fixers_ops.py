"""Each fix operation, applied by the fixers package, gives exact text."""

from __future__ import annotations

import ast

import pytest

from flake8_device_fixers import REASON_NOT_PARSE, REASON_OVERLAP, REASON_UNSAFE, apply_fixes
from flake8_device_fixers.positions import LineIndex
from flake8_device_fixers.testing import diag, span_of
from flake8_device.diagnostics import Diagnostic, InsertBefore, ReplaceNode, RewriteCall, Span


def rewrite(src, outer, call=None, keywords=(), drop=(), func=None):
    span = span_of(src, outer)
    cspan = span_of(src, call, ast.Call) if call else span
    return apply_fixes(src, [diag(RewriteCall(span, cspan, tuple(keywords), func, tuple(drop)))])


# --- ReplaceNode -------------------------------------------------------------


def test_replace_node_string_literal():
    src = 'x = t.to("cuda")  # move\n'
    r = apply_fixes(src, [diag(ReplaceNode(span_of(src, '"cuda"'), "dev"))])
    assert r.text == "x = t.to(dev)  # move\n"
    assert len(r.applied) == 1 and r.skipped == []


def test_replace_node_after_non_ascii_on_same_line():
    src = 's = "héllo 日本"; y = a.cuda()\n'
    r = apply_fixes(src, [diag(ReplaceNode(span_of(src, "a.cuda()"), "a.to(d)"))])
    assert r.text == 's = "héllo 日本"; y = a.to(d)\n'


def test_replace_node_after_astral_character():
    src = 'e = "😀"; y = a.cuda()\n'
    r = apply_fixes(src, [diag(ReplaceNode(span_of(src, "a.cuda()"), "a.to(d)"))])
    assert r.text == 'e = "😀"; y = a.to(d)\n'


def test_replace_node_with_tabs_and_crlf():
    src = "def f(a):\r\n\tif a:\r\n\t\treturn a.cuda()\r\n"
    span = span_of(src.replace("\r\n", "\n"), "a.cuda()")
    r = apply_fixes(src, [diag(ReplaceNode(span, "a.to(d)"))])
    assert r.text == "def f(a):\r\n\tif a:\r\n\t\treturn a.to(d)\r\n"


def test_replace_node_with_lone_cr_line_endings():
    src = "a = 1\rb = x.cuda()\r"
    r = apply_fixes(src, [diag(ReplaceNode(Span(2, 4, 2, 12), "x.to(d)"))])
    assert r.text == "a = 1\rb = x.to(d)\r"


def test_bom_kept():
    src = '\ufeffx = t.to("cuda")\n'
    r = apply_fixes(src, [diag(ReplaceNode(Span(1, 9, 1, 15), "d"))])
    assert r.text == "\ufeffx = t.to(d)\n"


def test_stale_span_is_skipped_not_guessed():
    src = 'x = t.to("cuda")\n'
    # columns 4..8 are `t.to` -- an attribute, fine; 5..9 is no node at all
    r = apply_fixes(src, [diag(ReplaceNode(Span(1, 5, 1, 9), "zzz"))])
    assert r.text == src and r.applied == []
    assert r.skipped[0][1].startswith("stale span")


def test_span_inside_multibyte_character_is_stale():
    src = 'x = "é"\n'
    r = apply_fixes(src, [diag(ReplaceNode(Span(1, 6, 1, 7), "e"))])
    assert r.text == src and r.skipped[0][1].startswith("stale span")


def test_span_past_end_of_file_is_stale():
    src = "x = 1\n"
    r = apply_fixes(src, [diag(ReplaceNode(Span(9, 0, 9, 1), "e"))])
    assert r.text == src and r.skipped[0][1].startswith("stale span")


def test_replacement_dropping_a_comment_is_refused():
    src = "x = f(a,  # keep me\n      b)\n"
    r = apply_fixes(src, [diag(ReplaceNode(span_of(src, "f(a,  # keep me\n      b)"), "g()"))])
    assert r.text == src and r.skipped[0][1] == "fix would remove a comment"


# --- InsertBefore -----------------------------------------------------------


def test_insert_before_statement_keeps_indentation():
    src = "def f():\n    x = a.cuda()\n    return x\n"
    stmt = span_of(src, "x = a.cuda()", ast.Assign)
    r = apply_fixes(
        src,
        [diag(InsertBefore(stmt, "    d = a.device\n"), ReplaceNode(span_of(src, "a.cuda()"), "a.to(d)"))],
    )
    assert r.text == "def f():\n    d = a.device\n    x = a.to(d)\n    return x\n"


def test_insert_before_uses_file_newlines():
    src = "if c:\r\n    x = 1\r\n"
    stmt = span_of(src.replace("\r\n", "\n"), "x = 1", ast.Assign)
    r = apply_fixes(src, [diag(InsertBefore(stmt, "    y = 2\n"))])
    assert r.text == "if c:\r\n    y = 2\r\n    x = 1\r\n"


def test_insert_before_decorated_definition_goes_above_decorators():
    src = "class M:\n    @property\n    def device(self):\n        return 1\n"
    tree = ast.parse(src)
    fn = tree.body[0].body[0]
    r = apply_fixes(src, [diag(InsertBefore(Span.of(fn), "    x = 1\n"))])
    assert r.text == "class M:\n    x = 1\n    @property\n    def device(self):\n        return 1\n"


def test_insert_before_compound_statement():
    src = "for i in r:\n    pass\n# trailing\n"
    loop = ast.parse(src).body[0]
    r = apply_fixes(src, [diag(InsertBefore(Span.of(loop), "d = 0\n"))])
    assert r.text == "d = 0\nfor i in r:\n    pass\n# trailing\n"


# --- RewriteCall --------------------------------------------------------------


def test_rewrite_call_chain_to_keywords():
    src = 'x = torch.ones(n).to(torch.float32).to("cuda") * -1e4\n'
    r = rewrite(
        src,
        'torch.ones(n).to(torch.float32).to("cuda")',
        "torch.ones(n)",
        [("dtype", "torch.float32"), ("device", "self.device")],
    )
    assert r.text == "x = torch.ones(n, dtype=torch.float32, device=self.device) * -1e4\n"


def test_rewrite_call_seed_example():
    src = 'return torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32).to("cuda")\n'
    src = "def f(self):\n    " + src
    outer = 'torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32).to("cuda")'
    r = rewrite(src, outer, "torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32)",
                [("device", "self.device")])
    assert r.text == (
        "def f(self):\n"
        "    return torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32, device=self.device)\n"
    )


def test_rewrite_call_replaces_existing_keyword_value():
    src = 'y = torch.zeros(3, device="cuda", dtype=t)\n'
    r = rewrite(src, 'torch.zeros(3, device="cuda", dtype=t)', keywords=[("device", "d")])
    assert r.text == "y = torch.zeros(3, device=d, dtype=t)\n"


def test_rewrite_call_swaps_callee():
    src = "y = torch.IntTensor(ids).to('cuda')\n"
    r = rewrite(src, "torch.IntTensor(ids).to('cuda')", "torch.IntTensor(ids)",
                [("dtype", "torch.int32"), ("device", "d")], func="torch.tensor")
    assert r.text == "y = torch.tensor(ids, dtype=torch.int32, device=d)\n"


def test_rewrite_call_empty_arguments():
    src = "y = torch.IntTensor([]).to('cuda')\nz = f()\n"
    r = rewrite(src, "f()", keywords=[("device", "d")])
    assert r.text == "y = torch.IntTensor([]).to('cuda')\nz = f(device=d)\n"


@pytest.mark.parametrize(
    "call, keywords, drop, expected",
    [
        ('f(a, device="cuda")', [], ["device"], "f(a)"),
        ('f(a, device="cuda")', [("dtype", "t")], ["device"], "f(a, dtype=t)"),
        ('f(device="cuda")', [], ["device"], "f()"),
        ('f(device="cuda", b=1)', [], ["device"], "f(b=1)"),
        ('f(device="cuda", b=1)', [("dtype", "t")], ["device"], "f(b=1, dtype=t)"),
        ('f(\n    device="cuda",\n)', [], ["device"], "f()"),
        ('f(\n    device="cuda",\n)', [("dtype", "t")], ["device"], "f(dtype=t)"),
        ("f(a,)", [("device", "d")], [], "f(a, device=d,)"),
        ("f(*a, **k)", [("device", "d")], [], "f(*a, **k, device=d)"),
        ("f(a, b=2)", [], ["nothere"], "f(a, b=2)"),
    ],
)
def test_rewrite_call_keyword_edits(call, keywords, drop, expected):
    src = f"y = {call}\n"
    r = rewrite(src, call, keywords=keywords, drop=drop)
    assert r.text == f"y = {expected}\n", r.skipped


def test_rewrite_call_multiline_trailing_comma_and_comments():
    src = (
        "y = torch.zeros(\n"
        "    3,  # rows\n"
        "    # columns next\n"
        "    4,\n"
        ").to('cuda')\n"
    )
    outer = src[4:-1]
    call = "torch.zeros(\n    3,  # rows\n    # columns next\n    4,\n)"
    r = rewrite(src, outer, call, [("device", "d")])
    assert r.text == (
        "y = torch.zeros(\n"
        "    3,  # rows\n"
        "    # columns next\n"
        "    4,\n"
        "    device=d,\n"
        ")\n"
    )


def test_rewrite_call_multiline_without_trailing_comma():
    src = "y = f(\n    a,\n    b\n)\n"
    r = rewrite(src, "f(\n    a,\n    b\n)", keywords=[("device", "d")])
    assert r.text == "y = f(\n    a,\n    b,\n    device=d\n)\n"


def test_rewrite_call_multiline_comment_after_last_argument():
    src = "y = f(\n    a,\n    b  # the b\n)\n"
    r = rewrite(src, "f(\n    a,\n    b  # the b\n)", keywords=[("device", "d")])
    assert r.text == "y = f(\n    a,\n    b,  # the b\n    device=d\n)\n"


def test_rewrite_call_hanging_arguments_stay_inline():
    src = "y = f(a,\n      b)\n"
    r = rewrite(src, "f(a,\n      b)", keywords=[("device", "d")])
    assert r.text == "y = f(a,\n      b, device=d)\n"


def test_rewrite_call_drops_keyword_on_its_own_line():
    src = 'y = f(\n    a,\n    device="cuda",\n    b=1,\n)\n'
    r = rewrite(src, src[4:-1], drop=["device"])
    assert r.text == "y = f(\n    a,\n    b=1,\n)\n"


def test_rewrite_call_drops_last_keyword_keeping_comment():
    src = 'y = f(\n    3,\n    4,  # rows\n    device="cuda"\n)\n'
    r = rewrite(src, src[4:-1], drop=["device"])
    assert r.text == "y = f(\n    3,\n    4  # rows\n)\n"
    r = rewrite(src, src[4:-1], keywords=[("dtype", "t")], drop=["device"])
    assert r.text == "y = f(\n    3,\n    4,  # rows\n    dtype=t\n)\n"


def test_rewrite_call_keeps_crlf_layout():
    src = "y = f(\r\n    a,\r\n)\r\n"
    span = span_of(src.replace("\r\n", "\n"), "f(\n    a,\n)")
    r = apply_fixes(src, [diag(RewriteCall(span, span, (("device", "d"),)))])
    assert r.text == "y = f(\r\n    a,\r\n    device=d,\r\n)\r\n"


def test_rewrite_call_generator_argument_is_skipped():
    src = "y = f(x for x in r)\n"
    r = rewrite(src, "f(x for x in r)", keywords=[("device", "d")])
    assert r.text == src and "generator" in r.skipped[0][1]


def test_rewrite_call_chain_comment_outside_call_is_refused():
    src = 'y = (torch.ones(n)  # keep\n     .to("cuda"))\n'
    tree = ast.parse(src)
    outer = tree.body[0].value
    r = apply_fixes(src, [diag(RewriteCall(Span.of(outer), Span.of(outer.func.value), (("device", "d"),)))])
    assert r.text == src and r.skipped[0][1] == "fix would remove a comment"


# --- selection, overlap, parse check -------------------------------------


def test_unsafe_fix_needs_opt_in():
    src = 'r = torch.randn(3).to("cuda")\n'
    d = diag(RewriteCall(span_of(src, 'torch.randn(3).to("cuda")'), span_of(src, "torch.randn(3)"),
                         (("device", "d"),)), safe=False)
    r = apply_fixes(src, [d])
    assert r.text == src and r.skipped == [(d, REASON_UNSAFE)]
    r = apply_fixes(src, [d], unsafe=True)
    assert r.text == "r = torch.randn(3, device=d)\n" and r.applied == [d]


def test_no_fix_reports_reason():
    src = "x = 1\n"
    d = Diagnostic("DEV003", "m", Span(1, 4, 1, 5), None, no_fix_reason="cannot tell the device")
    r = apply_fixes(src, [d])
    assert r.skipped == [(d, "cannot tell the device")] and r.text == src


def test_overlapping_fixes_first_by_position_wins():
    src = 'x = a.to("cuda").to("cuda")\n'
    inner = diag(ReplaceNode(span_of(src, '"cuda"'), "d"), code="DEV001")
    outer = diag(ReplaceNode(span_of(src, 'a.to("cuda").to("cuda")'), "a"), code="DEV002")
    r = apply_fixes(src, [inner, outer])
    assert r.applied == [outer]
    assert r.skipped == [(inner, REASON_OVERLAP)]
    assert r.text == "x = a\n"


def test_non_overlapping_fixes_all_apply():
    src = 'x = a.to("cuda"); y = b.to("cuda")\n'
    first = diag(ReplaceNode(Span(1, 9, 1, 15), "d"))
    second = diag(ReplaceNode(Span(1, 27, 1, 33), "d"))
    r = apply_fixes(src, [second, first])
    assert r.text == "x = a.to(d); y = b.to(d)\n" and len(r.applied) == 2


def test_two_insertions_at_one_place_conflict():
    src = "x = 1\n"
    stmt = Span(1, 0, 1, 5)
    a, b = diag(InsertBefore(stmt, "a = 0\n")), diag(InsertBefore(stmt, "b = 0\n"))
    r = apply_fixes(src, [a, b])
    assert r.text == "a = 0\nx = 1\n" and r.skipped == [(b, REASON_OVERLAP)]


def test_unparsable_result_is_rejected():
    src = 'x = t.to("cuda")\n'
    bad = diag(ReplaceNode(span_of(src, '"cuda"'), "device=("))
    r = apply_fixes(src, [bad])
    assert r.text == src and r.applied == [] and r.skipped == [(bad, REASON_NOT_PARSE)]


def test_unparsable_fix_does_not_block_good_ones():
    src = 'x = t.to("cuda")\ny = u.to("cuda")\n'
    bad = diag(ReplaceNode(Span(1, 9, 1, 15), "(("))
    good = diag(ReplaceNode(Span(2, 9, 2, 15), "d"))
    r = apply_fixes(src, [bad, good])
    assert r.text == 'x = t.to("cuda")\ny = u.to(d)\n'
    assert r.applied == [good] and r.skipped == [(bad, REASON_NOT_PARSE)]


def test_fix_applies_whole_or_not_at_all():
    src = 'x = t.to("cuda")\n'
    d = diag(ReplaceNode(span_of(src, '"cuda"'), "d"), ReplaceNode(Span(3, 0, 3, 1), "z"))
    r = apply_fixes(src, [d])
    assert r.text == src and r.applied == []


def test_text_outside_span_is_byte_identical():
    src = "# -*- coding: utf-8 -*-\n\n\nx  =  t.to( 'cuda' )   # odd   spacing\t\n\n"
    r = apply_fixes(src, [diag(ReplaceNode(span_of(src, "'cuda'"), "d"))])
    assert r.text == src.replace("'cuda'", "d")


# --- position conversion -----------------------------------------------------


def test_line_index_round_trip():
    text = "a = 'é'\r\nb = '😀x'\rc\n"
    idx = LineIndex(text)
    assert idx.offset(1, 0) == 0
    assert idx.offset(2, 0) == text.index("b")
    assert idx.offset(2, 9) == text.index("x")  # 4 bytes for the emoji
    assert idx.offset(2, 6) is None  # inside the emoji
    assert idx.offset(3, 0) == text.index("c")
    assert idx.position(text.index("x")) == (2, 9)
