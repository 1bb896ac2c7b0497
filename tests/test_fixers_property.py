"""Property tests: fixes on generated call snippets keep everything else."""

from __future__ import annotations

import ast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flake8_device_fixers import REASON_COMMENT, apply_fixes
from flake8_device_fixers.positions import LineIndex
from flake8_device.diagnostics import Diagnostic, Fix, ReplaceNode, RewriteCall, Span

NAMES = ["device", "dtype", "size", "out", "layout"]
POSITIONAL = ["n", "3", "(0, 1, h)", "x.shape[0]", "'é'", "[]", "*args"]
PREFIXES = ["", "s = 'héllo 日本'; ", "e = '😀'; ", "if True: "]


@st.composite
def call_snippets(draw):
    positional = draw(st.lists(st.sampled_from(POSITIONAL), max_size=3))
    kw_names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3))
    kw_values = [draw(st.sampled_from(["'cuda'", "d", "torch.float32", "None"])) for _ in kw_names]
    args = positional + [f"{k}={v}" for k, v in zip(kw_names, kw_values)]
    layout = draw(st.sampled_from(["inline", "one-per-line", "hanging"]))
    trailing = draw(st.booleans()) and bool(args)
    comments = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    indent = "    "
    if layout == "inline" or not args:
        inner = ", ".join(args) + ("," if trailing else "")
        call = f"torch.zeros({inner})"
    elif layout == "one-per-line":
        lines = []
        for i, a in enumerate(args):
            last = i == len(args) - 1
            comma = "," if (not last or trailing) else ""
            note = f"  # note {i}" if comments else ""
            lines.append(f"{indent}{a}{comma}{note}")
        call = "torch.zeros(" + newline + newline.join(lines) + newline + ")"
    else:
        pad = " " * len("torch.zeros(")
        call = "torch.zeros(" + ("," + newline + pad).join(args) + ("," if trailing else "") + ")"
    chain = draw(st.sampled_from(["", ".to('cuda')", ".to(torch.float32).to('cuda')"]))
    prefix = draw(st.sampled_from(PREFIXES))
    before = draw(st.sampled_from(["", "import torch" + newline, "# 日本語 comment" + newline]))
    after = draw(st.sampled_from(["", newline + "z = 1", newline + "# end"]))
    src = before + prefix + "y = " + call + chain + "  # tail" + newline + after
    new_kws = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=2))
    new_vals = tuple((k, draw(st.sampled_from(["dev", "self.device", "torch.int64"]))) for k in new_kws)
    drop = tuple(draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=2)))
    drop = tuple(k for k in drop if k not in new_kws)
    return src, new_vals, drop


def _spans(src):
    tree = ast.parse(src)
    assign = next(
        n for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "y"
    )
    outer = assign.value
    inner = outer
    while isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute) and inner.func.attr == "to":
        inner = inner.func.value
    return outer, inner


def _offsets(src, span):
    idx = LineIndex(src)
    return idx.offset(span.line, span.col), idx.offset(span.end_line, span.end_col)


def _check_outside_kept(src, result_text, span):
    start, end = _offsets(src, span)
    assert result_text.startswith(src[:start])
    assert result_text.endswith(src[end:])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call_snippets())
def test_rewrite_call_keeps_outside_and_parses(case):
    src, keywords, drop = case
    outer, inner = _spans(src)
    span = Span.of(outer)
    op = RewriteCall(span, Span.of(inner), keywords, None, drop)
    d = Diagnostic("DEV101", "m", span, Fix((op,), True, "t"))
    r = apply_fixes(src, [d])
    ast.parse(r.text)
    if not r.applied:
        assert r.text == src
        # the one allowed refusal: dropping keywords would take a comment with them
        assert [why for _d, why in r.skipped] == [REASON_COMMENT], r.skipped
        assert drop
        return
    _check_outside_kept(src, r.text, span)
    new_outer, _ = _spans(r.text)
    assert isinstance(new_outer, ast.Call)
    old_kw = {k.arg: ast.dump(k.value) for k in inner.keywords if k.arg}
    expected = {k: v for k, v in old_kw.items() if k not in drop}
    for k, v in keywords:
        expected[k] = ast.dump(ast.parse(v, mode="eval").body)
    got = {k.arg: ast.dump(k.value) for k in new_outer.keywords if k.arg}
    assert got == expected
    assert [ast.dump(a) for a in new_outer.args] == [ast.dump(a) for a in inner.args]
    assert ast.dump(new_outer.func) == ast.dump(inner.func)
    # comments survive
    for line in src.splitlines():
        if "# note" in line:
            note = line[line.index("# note"):]
            assert note in r.text


@settings(max_examples=100, deadline=None)
@given(call_snippets(), st.sampled_from(["dev", "torch.zeros(1)", "(a if b else c)"]))
def test_replace_node_keeps_outside_and_parses(case, replacement):
    src, _, _ = case
    tree = ast.parse(src)
    # replace a keyword value or, failing that, the first positional argument
    _, inner = _spans(src)
    target = inner.keywords[0].value if inner.keywords else (inner.args[0] if inner.args else inner)
    span = Span.of(target)
    d = Diagnostic("DEV001", "m", span, Fix((ReplaceNode(span, replacement),), True, "t"))
    r = apply_fixes(src, [d])
    ast.parse(r.text)
    if r.applied:
        _check_outside_kept(src, r.text, span)
        start, _ = _offsets(src, span)
        assert r.text[start:start + len(replacement)] == replacement
    else:
        assert r.text == src
    assert tree is not None


# --- the linear-time structures agree with the plain definitions ---------------------

from flake8_device_fixers.apply import _Edit, _overlap, _splice, _Taken  # noqa: E402

EDITS = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 6)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(EDITS, st.tuples(st.integers(0, 30), st.integers(0, 6)))
def test_taken_overlap_matches_brute_force(chosen, probe):
    taken, kept = _Taken(), []
    for start, width in chosen:
        e = _Edit(start, start + width, "x")
        if any(_overlap(e, k) for k in kept):
            continue  # chosen edits never overlap each other
        kept.append(e)
        taken.add(e)
    p = _Edit(probe[0], probe[0] + probe[1], "y")
    assert taken.overlaps(p) == any(_overlap(p, k) for k in kept)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab \n\r\t\x0c\u2028é日😀", max_size=40), st.data())
def test_line_index_offset_matches_a_scan(text, data):
    index = LineIndex(text)
    line = data.draw(st.integers(1, index.line_count))
    line_text = index.line_text(line)
    expected = {}
    consumed = 0
    for i, ch in enumerate(line_text):
        expected[consumed] = i
        consumed += len(ch.encode("utf-8", "surrogatepass"))
    expected[consumed] = len(line_text)
    for col in range(consumed + 2):
        want = expected.get(col)
        got = index.offset(line, col)
        assert got == (None if want is None else index.line_start(line) + want)
        if got is not None:
            assert index.position(got) == (line, col)
            assert index.line_of(got) == line


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc", min_size=0, max_size=30), EDITS)
def test_splice_matches_sequential_replacement(text, spans):
    edits, kept = [], []
    for start, width in spans:
        start = min(start, len(text))
        e = _Edit(start, min(start + width, len(text)), f"<{start}>")
        if any(_overlap(e, k) for k in kept):
            continue
        kept.append(e)
    expected = text
    for e in sorted(kept, key=lambda e: (e.start, e.end), reverse=True):
        expected = expected[: e.start] + e.text + expected[e.end:]
    assert _splice(text, kept) == expected
