"""Output formats, --add-noqa and the conventions of the command, in process.

tests/test_wheel.py runs the same conventions on the installed command; these
tests pin the details (edits, placement of noqa comments, exit codes) and
check the invariants with hypothesis.
"""

from __future__ import annotations

import ast
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flake8_device_fixers.testing import toy_linter
from flake8_device import cli, output
from flake8_device.add_noqa import add_noqa, noqa_rows
from flake8_device.noqa import NoqaMap


def run(argv, linter=toy_linter, stdin=None):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err, linter=linter,
                    stdin=io.BytesIO(stdin.encode()) if stdin is not None else None)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- text edits ------------------------------------------------------------------


def _apply(text, edits):
    lines = text.splitlines(True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def off(pos):
        return starts[pos[0] - 1] + pos[1] - 1 if pos[0] <= len(lines) else len(text)

    for e in sorted(edits, key=lambda e: off(e.start), reverse=True):
        text = text[: off(e.start)] + e.content + text[off(e.end):]
    return text


_line = st.text(alphabet="ab é\t()", max_size=6).map(lambda s: s + "\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=8), st.lists(_line, max_size=8))
def test_text_edits_turn_old_into_new(a, b):
    old, new = "".join(a), "".join(b)
    edits = output.text_edits(old, new)
    assert _apply(old, edits) == new
    assert (edits == []) == (old == new)


def _reference_text_edits(old, new):
    """text_edits as it was before it skipped the common head and tail by character slices: the
    lines compared one by one."""
    import difflib

    from flake8_device.lines import split_lines
    from flake8_device_fixers.positions import LineIndex

    if old == new:
        return []
    a, b = split_lines(old), split_lines(new)
    starts = [0]
    for line in a:
        starts.append(starts[-1] + len(line))
    index = LineIndex(old)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    out = []
    matcher = difflib.SequenceMatcher(None, a[head:len(a) - tail], b[head:len(b) - tail], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        i1, i2, j1, j2 = i1 + head, i2 + head, j1 + head, j2 + head
        before, after = "".join(a[i1:i2]), "".join(b[j1:j2])
        lead, limit = 0, min(len(before), len(after))
        while lead < limit and before[lead] == after[lead]:
            lead += 1
        trail = 0
        while trail < limit - lead and before[len(before) - 1 - trail] == after[len(after) - 1 - trail]:
            trail += 1
        start, end = starts[i1] + lead, starts[i1] + len(before) - trail
        out.append(output.Edit(output._offset_position(index, start), output._offset_position(index, end),
                               after[lead:len(after) - trail]))
    return out


_piece = st.sampled_from(["a", "b", "\n", "\r", "\r\n", " ", "é", "x = 1", "\n\n"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_piece, max_size=14), st.lists(_piece, max_size=14), st.lists(_piece, max_size=14),
       st.lists(_piece, max_size=4), st.lists(_piece, max_size=4))
def test_text_edits_equal_the_line_by_line_comparison(head, tail, middle, old_mid, new_mid):
    """Whatever the line ends around the change (a \\r the change turns into \\r\\n...)."""
    old = "".join(head + old_mid + middle + tail)
    new = "".join(head + new_mid + middle + tail)
    assert output.text_edits(old, new) == _reference_text_edits(old, new)
    assert output.text_edits(new, old) == _reference_text_edits(new, old)


def test_text_edits_are_minimal_within_a_line():
    (e,) = output.text_edits('x = t.to("cuda")\n', "x = t.to(dev)\n")
    assert (e.start, e.end, e.content) == ((1, 10), (1, 16), "dev")


def test_char_columns_count_characters():
    from flake8_device_fixers.positions import LineIndex

    idx = LineIndex('s = "é"; y = 1\n')
    assert output.char_position(idx, 1, len('s = "é"; '.encode())) == (1, 10)


# --- formats -----------------------------------------------------------------------


def test_json_fix_edits_and_locations(project):
    (project / "m.py").write_text('s = "é"; x = t.to("cuda")\ny = nofix\n', encoding="utf-8")
    code, out, err = run(["--isolated", "--output-format", "json", "m.py"])
    assert code == 1 and err == ""
    first, second = json.loads(out)
    assert first["code"] == "DEV001" and first["location"] == {"column": 19, "row": 1}
    assert first["end_location"] == {"column": 25, "row": 1}
    assert first["fix"]["applicability"] == "safe" and first["fix"]["message"] == "use dev"
    assert first["fix"]["edits"] == [{"content": "dev", "end_location": {"column": 25, "row": 1},
                                      "location": {"column": 19, "row": 1}}]
    assert first["noqa_row"] == 1 and first["filename"] == "m.py"
    assert second["code"] == "DEV003" and second["fix"] is None


def test_structured_output_keeps_stdout_clean(project):
    (project / "m.py").write_text('x = t.to("cuda")\n')
    (project / "bad.py").write_text("def (:\n")
    for fmt in ("json", "sarif", "gitlab"):
        code, out, err = run(["--isolated", "--output-format", fmt, "--summary", "."])
        assert code == 2
        json.loads(out)  # only the document on standard output
        assert "E999" in err and "Summary:" in err
    code, out, _ = run(["--isolated", "--output-format", "sarif", "."])
    inv = json.loads(out)["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    assert "E999" in inv["toolExecutionNotifications"][0]["message"]["text"]


def test_github_escapes_and_levels():
    from flake8_device.diagnostics import Diagnostic, Span

    item = output.Item(path="a,b:c.py", diag=Diagnostic("DEV101", "50% of\nit", Span(1, 0, 1, 1)),
                       text="x\n", fixable=False)
    line = output.write_github([item])
    assert line == "::warning file=a%2Cb%3Ac.py,line=1,col=1,endLine=1,endColumn=2,title=DEV101::" \
                   "a,b:c.py:1:1: DEV101 50%25 of%0Ait\n"


def test_gitlab_fingerprints_survive_moved_lines(project):
    (project / "m.py").write_text('x = t.to("cuda")\n')
    _, before, _ = run(["--isolated", "--output-format", "gitlab", "m.py"])
    (project / "m.py").write_text('import os\n\nx = t.to("cuda")\n')
    _, after, _ = run(["--isolated", "--output-format", "gitlab", "m.py"])
    assert json.loads(before)[0]["fingerprint"] == json.loads(after)[0]["fingerprint"]
    assert json.loads(after)[0]["location"]["lines"]["begin"] == 3


def test_statistics_counts_and_marks(project):
    (project / "m.py").write_text('a = "cuda"\nb = "cuda"\nc = nofix\nd = unsafe_call()\n')
    code, out, _ = run(["--isolated", "--statistics", "m.py"])
    assert code == 1
    assert out.splitlines() == [
        "2\tDEV001\t[*] hardcoded accelerator device in a placement call",
        "1\tDEV003\t[ ] hardcoded accelerator device in a constructor",
        "1\tDEV103\t[ ] legacy tensor constructor",
    ]
    _, out, _ = run(["--isolated", "--statistics", "--unsafe-fixes", "m.py"])
    assert "1\tDEV103\t[*]" in out


# --- exit codes ------------------------------------------------------------------


def test_exit_zero_and_exit_non_zero_on_fix(project):
    f = project / "m.py"
    f.write_text('x = "cuda"\n')
    assert run(["--isolated", "--exit-zero", "m.py"])[0] == 0
    code, _, _ = run(["--isolated", "--fix", "--exit-non-zero-on-fix", "m.py"], linter=_defined(toy_linter))
    assert code == 1 and f.read_text() == "x = dev\n"
    code, _, _ = run(["--isolated", "--fix", "--exit-non-zero-on-fix", "m.py"], linter=_defined(toy_linter))
    assert code == 0
    assert run(["--exit-zero", "--exit-non-zero-on-fix", "m.py"])[0] == 2  # exclusive


def _defined(linter):
    """The toy linter's fixes write the name ``dev``; tell the fixer it is defined."""
    def wrapped(source, filename, options):
        return linter(source, filename, options)

    wrapped.assumed_names = ("dev",)
    return wrapped


def test_version():
    code, out, _ = run(["--version"])
    assert code == 0 and out == f"flake8-device {output.version()}\n"


# --- standard input -----------------------------------------------------------------


def test_stdin_report_fix_and_config(project):
    (project / "setup.cfg").write_text("[flake8]\nper-file-ignores =\n    pkg/*: DEV003\n")
    src = 'x = "cuda"\ny = nofix\n'
    code, out, _ = run(["-", "--stdin-filename", "pkg/m.py"], stdin=src)
    assert code == 1 and 'pkg/m.py:1:5: DEV001' in out and "DEV003" not in out
    code, out, _ = run(["-"], stdin=src)
    assert code == 1 and "-:2:5: DEV003" in out
    code, out, err = run(["--fix", "--stdin-filename", "pkg/m.py"], stdin=src, linter=_defined(toy_linter))
    assert code == 0 and out == "x = dev\ny = nofix\n"
    assert "Fixed 1" in err
    assert not (project / "pkg").exists()
    code, out, _ = run(["--diff", "-", "--stdin-filename", "pkg/m.py"], stdin=src, linter=_defined(toy_linter))
    assert code == 1 and out.startswith("--- a/pkg/m.py\n+++ b/pkg/m.py\n")
    assert run(["-", "m.py"], stdin=src)[0] == 2


def test_stdin_excluded_name_passes_through(project):
    (project / "setup.cfg").write_text("[flake8]\nextend-exclude = gen\n")
    code, out, _ = run(["--fix", "-", "--stdin-filename", "gen/m.py"], stdin='x = "cuda"\n')
    assert code == 0 and out == 'x = "cuda"\n'


# --- --add-noqa -------------------------------------------------------------------------


def test_add_noqa_places_comments_where_flake8_reads_them():
    text = (
        'a = "cuda"\n'
        's = """x\n'
        'y""" + "cuda"\n'
        'b = "cuda" + \\\n'
        '    "x"\n'
        'c = "cuda"  # keep\n'
        'd = "cuda"  # noqa: E501 and a note\n'
        'e = f(\n'
        '    "cuda",\n'
        ')\r\n'
    )
    reports = [(1, "DEV001"), (2, "DEV001"), (4, "DEV001"), (6, "DEV001"), (7, "DEV001"), (9, "DEV001")]
    new, n, failed = add_noqa(text, reports)
    assert failed == [] and n == 6
    assert new.splitlines(True) == [
        'a = "cuda"  # noqa: DEV001\n',
        's = """x\n',
        'y""" + "cuda"  # noqa: DEV001\n',
        'b = "cuda" + \\\n',
        '    "x"  # noqa: DEV001\n',
        'c = "cuda"  # keep  # noqa: DEV001\n',
        'd = "cuda"  # noqa: E501, DEV001 and a note\n',
        'e = f(\n',
        '    "cuda",  # noqa: DEV001\n',
        ')\r\n',
    ]
    noqa = NoqaMap(new)
    assert all(noqa.suppresses(line, code) for line, code in reports)
    assert noqa_rows(text, [2, 4, 9]) == {2: 3, 4: 5, 9: 9}


def test_add_noqa_command(project):
    f = project / "m.py"
    f.write_text('x = "cuda"  # noqa: DEV003\ny = nofix\n')
    code, out, _ = run(["--isolated", "--add-noqa", "m.py"])
    assert code == 0 and "Added 2 noqa directive(s)." in out
    assert f.read_text() == 'x = "cuda"  # noqa: DEV003, DEV001\ny = nofix  # noqa: DEV003\n'
    assert run(["--isolated", "m.py"])[0] == 0
    assert run(["--isolated", "--add-noqa", "--fix", "m.py"])[0] == 2
    assert run(["--isolated", "--add-noqa", "--check", "m.py"])[0] == 2  # --check writes nothing


_PIECES = [
    'a = "cuda"\n',
    's = """one\ntwo "cuda"\n"""\n',
    'b = "cuda" + \\\n    "x"\n',
    'c = f(\n    "cuda",\n    k="cuda",\n)\n',
    'd = "cuda"  # a comment\n',
    'e = "cuda"  # noqa: E501\n',
    'if x:\n    g = "cuda"\n',
    "t = ('cuda'\n     'cuda')\n",
    'u = f"""{x}\n"cuda"\n"""\n',
    'w = "cuda"; v = "cuda"\n',
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6),
       st.lists(st.sampled_from(["DEV001", "DEV101", "DEV004"]), min_size=1, max_size=3),
       st.sampled_from(["\n", "\r\n", "\r"]))
def test_add_noqa_keeps_the_code_and_suppresses(pieces, codes, newline):
    text = "".join(pieces).replace("\n", newline)
    tree = ast.dump(ast.parse(text))
    reports = [(d.span.line, code) for d in toy_linter(text) for code in codes]
    new, _, failed = add_noqa(text, reports)
    assert failed == []
    assert ast.dump(ast.parse(new)) == tree  # only comments were added
    noqa = NoqaMap(new)
    assert all(noqa.suppresses(line, code) for line, code in reports)
    assert new.count("\r\n") == text.count("\r\n") and new.count("\r") == text.count("\r")
    assert add_noqa(new, reports)[0] == new  # a second run changes nothing


def test_diff_output_is_only_the_diff(project):
    (project / "m.py").write_text('x = "cuda"\n')
    for extra in ([], ["--output-format", "json"], ["--statistics"]):
        code, out, _ = run(["--isolated", "--diff", *extra, "m.py"])
        assert code == 1 and out.startswith("--- a/m.py\n") and out.endswith("+x = dev\n"), extra


def test_every_option_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    for action in cli.build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in doc, f"{flag} is not in docs/cli.md"
    for fmt in output.FORMATS:
        assert f"`{fmt}`" in doc, fmt
    for code in ("| 0 |", "| 1 |", "| 2 |"):
        assert code in doc


def test_add_noqa_on_stdin_prints_the_source(project):
    code, out, err = run(["--isolated", "--add-noqa", "-", "--stdin-filename", "m.py"], stdin='x = "cuda"\ny = 1\n')
    assert code == 0 and out == 'x = "cuda"  # noqa: DEV001\ny = 1\n'
    assert "Added 1 noqa directive(s)." in err and not (project / "m.py").exists()


def test_stdin_fix_hands_back_a_file_it_cannot_read(project):
    # an editor that pipes a broken buffer through --fix must get its text back untouched
    code, out, err = run(["--fix", "-", "--stdin-filename", "m.py"], stdin="def (:\n")
    assert code == 2 and out == "def (:\n" and "m.py:1:" in err and "E999" in err


def test_json_fix_is_null_when_the_fixer_would_refuse_it(project):
    """The edits come from the run's own fixer, post-conditions included (here: no new undefined name)."""
    (project / "m.py").write_text('x = t.to("cuda")\n')

    def plain(source, filename, options):  # no assumed names: the toy fix text `dev` is undefined
        return toy_linter(source, filename, options)

    _, out, _ = run(["--isolated", "--output-format", "json", "m.py"], linter=plain)
    assert json.loads(out)[0]["fix"] is None
    _, out, _ = run(["--isolated", "--output-format", "json", "m.py"])
    assert json.loads(out)[0]["fix"]["edits"][0]["content"] == "dev"


# --- files that cannot be read or parsed, in every format -------------------------


def _bad_project(project):
    (project / "bad.py").write_text("x = (\n")
    (project / "undecodable.py").write_bytes(b"x = '\xff'\n")
    (project / "ok.py").write_text('x = "cuda"\n')


def test_unreadable_and_unparsable_files_are_records_in_json(project):
    _bad_project(project)
    code, out, err = run(["--isolated", "--output-format", "json", "."])
    assert code == 2
    records = {r["filename"]: r for r in json.loads(out)}
    assert set(records) == {"bad.py", "undecodable.py", "ok.py"}
    bad = records["bad.py"]
    assert bad["code"] == "DEV000" and "SyntaxError" in bad["message"] and bad["fix"] is None
    assert bad["location"]["row"] == 1
    assert records["undecodable.py"]["code"] == "DEV000"
    assert "cannot decode" in records["undecodable.py"]["message"]
    assert records["ok.py"]["code"] == "DEV001"
    assert "bad.py" in err and "undecodable.py" in err  # still on standard error


@pytest.mark.parametrize("fmt", ["json-lines", "github", "gitlab", "pylint", "sarif"])
def test_unreadable_and_unparsable_files_appear_in_each_format(project, fmt):
    _bad_project(project)
    code, out, err = run(["--isolated", "--output-format", fmt, "."])
    assert code == 2
    if fmt == "json-lines":
        names = {json.loads(line)["filename"]: json.loads(line)["code"] for line in out.splitlines()}
        assert names == {"bad.py": "DEV000", "undecodable.py": "DEV000", "ok.py": "DEV001"}
    elif fmt == "github":
        assert "::error file=bad.py,line=1," in out and "title=DEV000::" in out
        assert "file=undecodable.py" in out
    elif fmt == "gitlab":
        report = json.loads(out)
        assert {(r["location"]["path"], r["check_name"]) for r in report} >= {
            ("bad.py", "DEV000"), ("undecodable.py", "DEV000")}
    elif fmt == "pylint":
        assert "bad.py:1: [DEV000] " in out and "undecodable.py:1: [DEV000] cannot decode" in out
    else:
        run_ = json.loads(out)["runs"][0]
        uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r["ruleId"]
                for r in run_["results"]}
        assert uris["bad.py"] == "DEV000" and uris["undecodable.py"] == "DEV000"
        assert not run_["invocations"][0]["executionSuccessful"]
        assert len(run_["invocations"][0]["toolExecutionNotifications"]) == 2
        assert "DEV000" in {r["id"] for r in run_["tool"]["driver"]["rules"]}


def test_sarif_with_unreadable_files_is_valid_sarif(project):
    validate = pytest.importorskip("sarif_kit.validate", reason="sarif-kit (the SARIF 2.1.0 validator) is missing")
    _bad_project(project)
    code, out, _ = run(["--isolated", "--output-format", "sarif", "."])
    assert code == 2
    assert validate.validation_errors(json.loads(out)) == []


def test_missing_path_is_a_record_too(project):
    code, out, _ = run(["--isolated", "--output-format", "json", "nope.py"])
    assert code == 2
    assert [(r["filename"], r["code"], r["message"]) for r in json.loads(out)] == [
        ("nope.py", "DEV000", "no such file or directory")]


def test_quiet_prints_the_diagnostics_and_nothing_else(project):
    (project / "m.py").write_text('x = "cuda"\ny = nofix\n')
    code, out, err = run(["--isolated", "-q", "m.py"])
    assert code == 1
    assert out.splitlines() == ['m.py:1:5: DEV001 [*] hardcoded device "cuda"', "m.py:2:5: DEV003 cannot be fixed"]
    code, out, err = run(["--isolated", "-q", "--fix", "m.py"], linter=_defined(toy_linter))
    assert out.splitlines() == ["m.py:2:5: DEV003 cannot be fixed"]  # no "Fixed ..." line
    assert run(["--isolated", "-q", "--fix", "m.py"], linter=_defined(toy_linter))[1] == "m.py:2:5: DEV003 cannot be fixed\n"


def test_fixed_total_counts_the_files_changed(project):
    import os

    for name in ("a.py", "b.py", "ro.py"):
        (project / name).write_text('x = "cuda"\n')
    for n in range(3):
        (project / f"clean{n}.py").write_text("x = 1\n")
    os.chmod(project / "ro.py", 0o444)
    code, out, err = run(["--isolated", "--fix", "."], linter=_defined(toy_linter))
    assert code == 2  # ro.py is read-only
    assert "Fixed 2 diagnostic(s) in 2 file(s); 1 left." in out, out


_ROW_PIECES = ["x = 1\n", "y = (1,\n     2)\n", "s = '''a\nb\n'''\n", "z = 1 + \\\n    2\n", "# c\n", "\n",
               "def f():\n    return [\n        1,  # one\n    ]\n", "t = f'{x}'\n", "u = 'open\n", "\n\n",
               "if x:\n    pass\n", "w = {\n}\n", "a = 1; b = 2\n", "\x0c\n"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_ROW_PIECES), max_size=8), st.sampled_from(["\n", "\r\n", "\r"]))
def test_noqa_rows_from_the_lint_map_equal_noqa_rows(pieces, newline):
    """The runner reads the noqa rows of the JSON output from the # noqa map its lint built:
    the same rows add_noqa.noqa_rows computes by tokenizing the file again."""
    from flake8_device.runner import Runner
    from flake8_device.config import load_settings

    text = "".join(pieces).replace("\n", newline)
    runner = Runner(load_settings(None, True), fix=False, unsafe=False, max_file_size=0,
                    linter=lambda t, p, o: [])
    noqa = NoqaMap(text)
    noqa.line_for(1)  # the lint builds it when it checks a diagnostic
    runner._noqa = (text, noqa)
    lines = range(0, text.count(newline) + 3)
    assert runner.noqa_rows(text, lines) == noqa_rows(text, lines)
