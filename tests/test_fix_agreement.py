"""What the report calls fixable is what --fix fixes, and --diff says why a fix was left.

The ``[*]`` marker, the "N fixable with --fix" count, the JSON ``fix`` field
and ``--fix`` answer from one source: the fixer's plan of the file.  A fix the
fixer refuses while planning it (f-string text older Pythons cannot read, a
self-documenting ``{x=}`` field) is never marked fixable.
"""

from __future__ import annotations

import io
import json

import pytest

from flake8_device import cli

# Two torch.load() calls the real rules fix (DEV006, map_location=...), inside f-string fields
# the fix cannot be written into: both quote kinds taken, and a `{...=}` field that prints its text.
BOTH_QUOTES = "import torch\n\n\ndef f(p):\n    return f\"{f'{torch.load(p)}'}\"\n"
DEBUG_FIELD = "import torch\n\n\ndef f(p):\n    return f\"{torch.load(p)=}\"\n"
PLAIN = "import torch\n\n\ndef f(p):\n    return torch.load(p)\n"


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--isolated", *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("source", [BOTH_QUOTES, DEBUG_FIELD], ids=["both-quotes", "debug-field"])
def test_a_fix_the_fixer_refuses_is_not_marked_fixable(project, source):
    (project / "m.py").write_text(source)
    code, out, _ = run("m.py")
    assert code == 1
    assert "DEV006" in out
    assert "[*]" not in out  # neither on the diagnostic nor in the count
    assert "fixable with --fix" not in out
    _, summary, _ = run("--summary", "m.py")
    assert "fixable with --fix" not in summary
    assert "f-string" in summary  # the reason it is left
    _, js, _ = run("--output-format", "json", "m.py")
    assert [r["fix"] for r in json.loads(js) if r["code"] == "DEV006"] == [None]
    _, stats, _ = run("--statistics", "m.py")
    assert "[*]" not in stats and "DEV006" in stats
    run("--fix", "m.py")
    assert (project / "m.py").read_text() == source


def test_the_same_fix_outside_an_fstring_is_marked_and_applied(project):
    (project / "m.py").write_text(PLAIN)
    _, out, _ = run("m.py")
    assert "DEV006 [*]" in out and "[*] 1 fixable with --fix." in out
    run("--fix", "m.py")
    assert "map_location" in (project / "m.py").read_text()


def test_the_count_counts_only_the_fixes_the_fixer_takes(project):
    (project / "a.py").write_text(PLAIN)
    (project / "b.py").write_text(BOTH_QUOTES)
    (project / "c.py").write_text(DEBUG_FIELD)
    _, out, _ = run("a.py", "b.py", "c.py")
    assert out.count("[*] ") == 2  # a.py's diagnostic and the count
    assert "[*] 1 fixable with --fix." in out


# --- --diff gives the reasons --fix gives --------------------------------------------

BOTH = "import torch\n\n\ndef f(p):\n    x = torch.load(p)\n    return x, f\"{torch.load(p)=}\"\n"


def _reason_lines(out):
    return [line for line in out.splitlines() if "(left: " in line]


def test_left_fixes_are_what_fix_explains(project):
    from flake8_device.config import load_settings
    from flake8_device.runner import Runner, left_fixes
    from flake8_device_fixers.syntax import REASON_FSTRING_DEBUG

    (project / "m.py").write_text(BOTH)
    _, fixed_out, _ = run("--fix", "m.py")
    (project / "m.py").write_text(BOTH)
    runner = Runner(load_settings(None, True), fix=True, unsafe=False, max_file_size=0)
    report, _ = runner.run_file("m.py")
    left = left_fixes(report)
    assert [(d.code, d.span.line, why) for d, why in left.left] == [("DEV006", 6, REASON_FSTRING_DEBUG)]
    args = cli.build_parser().parse_args(["--diff", "m.py"])
    lines = cli._text_lines(left, "m.py", runner, args, True)
    assert _reason_lines("\n".join(lines)) == _reason_lines(fixed_out) != []


def test_diff_prints_the_reasons_on_stderr_and_only_the_diff_on_stdout(project):
    (project / "m.py").write_text(BOTH)
    _, fixed_out, _ = run("--fix", "m.py")
    (project / "m.py").write_text(BOTH)
    code, out, err = run("--diff", "m.py")
    assert code == 1
    assert out.startswith("--- a/m.py\n+++ b/m.py\n") and "(left: " not in out
    assert _reason_lines(err) == _reason_lines(fixed_out) != []


def test_an_unsafe_fix_the_fixer_refuses_is_not_counted_for_unsafe_fixes(project):
    # .cuda() inside a `{...=}` field: DEV002 and DEV101 offer an unsafe fix that --fix
    # --unsafe-fixes refuses, so the summary must not promise it
    (project / "m.py").write_text("import torch\n\n\ndef f():\n    return f\"{torch.zeros(3).cuda()=}\"\n")
    code, out, _ = run("m.py")
    assert code == 1 and "DEV002" in out
    assert "more fixable with --fix --unsafe-fixes" not in out
    before = (project / "m.py").read_bytes()
    run("--fix", "--unsafe-fixes", "m.py")
    assert (project / "m.py").read_bytes() == before
    (project / "m.py").write_text(PLAIN.replace("torch.load(p)", "torch.zeros(3).cuda()"))
    _, out, _ = run("m.py")
    assert "2 more fixable with --fix --unsafe-fixes." in out
