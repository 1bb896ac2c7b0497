"""The flake8-device command end to end (main(argv) with a toy linter, and
a few runs of the real engine through a subprocess)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flake8_device_fixers.testing import toy_linter
from flake8_device import cli


def run(argv, linter=toy_linter):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err, linter=linter)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def test_clean_file_exits_zero(project):
    write(project / "ok.py", "x = 1\n")
    assert run(["--isolated", "ok.py"]) == (0, "", "")


def test_report_format_marker_and_exit_one(project):
    write(project / "m.py", 's = "é"; x = t.to("cuda")\ny = nofix\n')
    code, out, err = run(["--isolated", "m.py"])
    assert code == 1 and err == ""
    lines = out.splitlines()
    # column is 1-based and counts UTF-8 bytes, like flake8
    assert lines[0] == 'm.py:1:20: DEV001 [*] hardcoded device "cuda"'
    assert lines[1].startswith("    fix: ")  # which device the fix uses, and why
    assert lines[2] == "m.py:2:5: DEV003 cannot be fixed"
    assert lines[3].startswith("    no fix: ")
    _, quiet, _ = run(["--isolated", "--no-explain", "m.py"])
    assert [l for l in quiet.splitlines() if l.startswith("    ")] == []
    assert "[*] 1 fixable with --fix." in out


def test_fix_rewrites_in_place(project):
    f = write(project / "m.py", 'x = t.to("cuda")  # keep\n')
    code, out, _ = run(["--isolated", "--fix", "m.py"])
    assert code == 0
    assert f.read_text() == "x = t.to(dev)  # keep\n"
    assert "Fixed 1 diagnostic(s) in 1 file(s); 0 left." in out


def test_fix_leaves_unfixable_and_exits_one(project):
    f = write(project / "m.py", 'x = t.to("cuda")\ny = nofix\n')
    code, out, _ = run(["--isolated", "--fix", "m.py"])
    assert code == 1
    assert f.read_text() == "x = t.to(dev)\ny = nofix\n"
    assert "m.py:2:5: DEV003 cannot be fixed" in out


def test_diff_prints_and_changes_nothing(project):
    f = write(project / "m.py", 'x = t.to("cuda")\n')
    code, out, _ = run(["--isolated", "--diff", "m.py"])
    assert code == 1
    assert f.read_text() == 'x = t.to("cuda")\n'
    assert "--- a/m.py\n+++ b/m.py\n" in out
    assert '-x = t.to("cuda")\n+x = t.to(dev)\n' in out


def test_check_reports_everything_and_changes_nothing(project):
    f = write(project / "m.py", 'x = t.to("cuda")\n')
    code, out, _ = run(["--isolated", "--check", "m.py"])
    assert code == 1 and 'm.py:1:10: DEV001 [*] hardcoded device "cuda"' in out
    assert f.read_text() == 'x = t.to("cuda")\n'
    # an unfixable diagnostic fails the check too (it is what CI must see)
    g = write(project / "nf.py", "x = nofix\n")
    code, out, _ = run(["--isolated", "--check", "nf.py"])
    assert code == 1 and "nf.py:1:5: DEV003 cannot be fixed" in out
    # --check wins over --fix: nothing is written
    code, _, _ = run(["--isolated", "--check", "--fix", "m.py"])
    assert code == 1 and f.read_text() == 'x = t.to("cuda")\n'
    write(project / "ok.py", "x = 1\n")
    assert run(["--isolated", "--check", "ok.py"])[0] == 0


def test_unsafe_fixes_need_flag(project):
    f = write(project / "m.py", "y = unsafe_call(1)\n")
    code, out, _ = run(["--isolated", "m.py"])
    assert "DEV103 needs an unsafe fix" in out and "[*]" not in out.splitlines()[0]
    assert "1 more fixable with --fix --unsafe-fixes." in out
    code, _, _ = run(["--isolated", "--fix", "m.py"])
    assert code == 1 and f.read_text() == "y = unsafe_call(1)\n"
    code, _, _ = run(["--isolated", "--fix", "--unsafe-fixes", "m.py"])
    assert code == 0 and f.read_text() == "y = safe_call(1)\n"


@pytest.mark.parametrize(
    "flags, codes",
    [
        ([], {"DEV001", "DEV003", "DEV103"}),
        (["--select", "DEV1"], {"DEV103"}),
        (["--select", "DEV0"], {"DEV001", "DEV003"}),
        (["--ignore", "DEV00"], {"DEV103"}),
        (["--extend-ignore", "DEV003"], {"DEV001", "DEV103"}),
        (["--select", "DEV0", "--extend-select", "DEV103"], {"DEV001", "DEV003", "DEV103"}),
        (["--select", "DEV", "--ignore", "DEV0", "--extend-select", "DEV001"], {"DEV001", "DEV103"}),
    ],
)
def test_select_and_ignore_prefixes(project, flags, codes):
    write(project / "m.py", 'x = t.to("cuda")\ny = nofix\nz = unsafe_call()\n')
    _, out, _ = run(["--isolated", *flags, "m.py"])
    found = {line.split()[1] for line in out.splitlines() if line.startswith("m.py:")}
    assert found == codes


def test_noqa_like_flake8(project):
    src = textwrap.dedent(
        '''\
        a = t.to("cuda")  # noqa
        b = t.to("cuda")  # noqa: DEV001
        c = t.to("cuda")  # noqa:DEV0,E501
        d = t.to("cuda")  # NOQA: E501
        e = t.to("cuda")  # noqa: DEV1
        f = t.to(
            "cuda")  # noqa
        g = t.to("cuda", x=1 + \\
                 2)  # noqa: DEV001
        '''
    )
    f = write(project / "m.py", src)
    code, out, _ = run(["--isolated", "m.py"])
    lines = [line.split(":")[1] for line in out.splitlines() if line.startswith("m.py:")]
    # d (other code listed), e (DEV1 does not cover DEV001) are reported;
    # the backslash-continued statement g shares its noqa across its lines
    assert lines == ["4", "5"]
    code, _, _ = run(["--isolated", "--fix", "m.py"])
    text = f.read_text()
    assert text.count('"cuda"') == 5  # suppressed ones are not fixed
    assert 'd = t.to(dev)  # NOQA: E501' in text and 'e = t.to(dev)  # noqa: DEV1' in text


def test_noqa_on_first_line_of_bracketed_call(project):
    # flake8 does not join bracketed lines for noqa: the comment must be on
    # the line of the report
    write(project / "m.py", 'x = f(  # noqa: DEV001\n    "cuda")\ny = f(\n    "cuda",  # noqa\n)\n')
    _, out, _ = run(["--isolated", "m.py"])
    assert [line.split(":")[1] for line in out.splitlines() if line.startswith("m.py:")] == ["2"]


def test_file_level_noqa_skips_file(project):
    f = write(project / "m.py", '# flake8: noqa\nx = t.to("cuda")\n')
    assert run(["--isolated", "--fix", "m.py"])[0] == 0
    assert f.read_text() == '# flake8: noqa\nx = t.to("cuda")\n'
    # on a line with code it does not count (flake8 warns and ignores it)
    write(project / "n.py", 'x = t.to("cuda")  # flake8: noqa\n')
    assert run(["--isolated", "n.py"])[0] == 1


def test_config_file_options(project):
    write(
        project / "setup.cfg",
        textwrap.dedent(
            """\
            [flake8]
            select = E,F,W
            extend-ignore = DEV003
            per-file-ignores =
                legacy/*.py: DEV001
            extend-exclude = generated
            device-expr = self.device
            device_accelerators = cuda, npu
            """
        ),
    )
    write(project / "a.py", 'x = t.to("cuda")\ny = nofix\n')
    write(project / "legacy" / "b.py", 'x = t.to("cuda")\n')
    write(project / "generated" / "c.py", 'x = t.to("cuda")\n')
    seen = {}

    def linter(source, filename, options):
        seen["options"] = options
        return toy_linter(source, filename, options)

    linter.assumed_names = toy_linter.assumed_names  # the toy's fix names count as defined
    code, out, _ = run(["--fix", "."], linter=linter)
    assert code == 0
    assert (project / "a.py").read_text() == "x = t.to(self.device)\ny = nofix\n"
    assert (project / "legacy" / "b.py").read_text() == 'x = t.to("cuda")\n'
    assert (project / "generated" / "c.py").read_text() == 'x = t.to("cuda")\n'
    assert seen["options"].device_expr == "self.device"
    assert seen["options"].accelerators == frozenset({"cuda", "npu"})


def test_command_line_overrides_config(project):
    write(project / "tox.ini", "[flake8]\nignore = DEV001\ndevice-expr = cfg_dev\n")
    f = write(project / "a.py", 't = 0\nx = t.to("cuda")\n')
    assert run(["a.py"])[0] == 0
    # (x.device would be dropped: x is not defined yet where the fix goes)
    code, _, _ = run(["--ignore", "", "--device-expr", "t.device", "--fix", "a.py"])
    assert code == 0 and f.read_text() == "t = 0\nx = t.to(t.device)\n"


def test_config_select_with_dev_codes_restricts(project):
    write(project / ".flake8", "[flake8]\nselect = E,DEV1\n")
    write(project / "a.py", 'x = t.to("cuda")\nz = unsafe_call()\n')
    _, out, _ = run(["a.py"])
    assert "DEV103" in out and "DEV001" not in out


def test_bad_config_is_a_usage_error(project):
    write(project / "setup.cfg", "[flake8\nbroken")
    write(project / "bad.cfg", "[flake8]\nper-file-ignores = : DEV001\n")
    write(project / "a.py", "x = 1\n")
    code, _, err = run(["--config", "bad.cfg", "a.py"])
    assert code == 2 and "per-file-ignores" in err
    code, _, err = run(["--config", "missing.cfg", "a.py"])
    assert code == 2 and "does not exist" in err


def test_directory_walk_and_excludes(project):
    for rel in ["pkg/a.py", "pkg/sub/b.py", ".venv/lib/c.py", "build/d.py", "pkg/__pycache__/e.py",
                ".git/f.py", "pkg/notes.txt", "skipme/g.py"]:
        write(project / rel, 'x = "cuda"\n')
    _, out, _ = run(["--isolated", "--extend-exclude", "skipme", "."])
    files = sorted({line.split(":")[0] for line in out.splitlines() if ":" in line and "DEV" in line})
    # shown relative to the current folder, without "./" (as Ruff shows them and as git apply reads them)
    assert files == [os.path.join("pkg", "a.py"), os.path.join("pkg", "sub", "b.py")]
    _, out, _ = run(["--isolated", "--exclude", "sub", "pkg"])
    assert "b.py" not in out and "a.py" in out


def test_missing_path_is_an_error_but_others_run(project):
    f = write(project / "a.py", 'x = "cuda"\n')
    code, _, err = run(["--isolated", "--fix", "nope.py", "a.py"])
    assert code == 2 and "nope.py: no such file or directory" in err
    assert f.read_text() == "x = dev\n"


def test_summary(project):
    write(project / "a.py", 'x = "cuda"\ny = nofix\nz = unsafe_call()\nw = "cuda"\n')
    code, out, _ = run(["--isolated", "--fix", "--summary", "a.py"])
    assert code == 1
    summary = out[out.index("Summary:"):]
    assert "DEV001        2      2      0" in summary
    assert "DEV003        1      0      1" in summary
    assert "1 left: device cannot be inferred" in summary
    assert "DEV103        1      0      1" in summary
    assert "1 left: unsafe fix; use --unsafe-fixes" in summary
    assert "total         4      2      2" in summary


def test_show_source_and_quiet(project):
    write(project / "a.py", '\tx = t.to("cuda")\n'.lstrip("\t"))
    _, out, _ = run(["--isolated", "--show-source", "a.py"])
    assert 'x = t.to("cuda")\n         ^\n' in out
    # Ruff's -q: the diagnostics, nothing else (no explanation, no totals)
    code, out, _ = run(["--isolated", "--quiet", "a.py"])
    assert code == 1 and out == 'a.py:1:10: DEV001 [*] hardcoded device "cuda"\n', out


def test_usage_error_exit_two(project, capsys):
    code, _, _ = run(["--max-file-size", "lots"])
    assert code == 2


def test_internal_error_does_not_stop_the_run(project):
    write(project / "a.py", "x = 1\n")
    b = write(project / "b.py", 'x = "cuda"\n')

    def linter(source, filename, options):
        if filename.endswith("a.py"):
            raise RuntimeError("boom")
        return toy_linter(source, filename, options)

    linter.assumed_names = toy_linter.assumed_names  # the toy's fix names count as defined
    code, _, err = run(["--isolated", "--fix", "a.py", "b.py"], linter=linter)
    assert code == 2 and "a.py: internal error: RuntimeError: boom" in err
    assert b.read_text() == "x = dev\n"


# --- the real engine -----------------------------------------------------


SEED = '''\
import torch


class Track(torch.nn.Module):
    def __init__(self, hidden_dim):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.proj = torch.nn.Linear(hidden_dim, hidden_dim)

    def empty(self):
        return torch.empty(size=(0, 1, self.hidden_dim), dtype=torch.float32).to("cuda")
'''


def _engine_available():
    try:
        from flake8_device import engine  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _engine_available(), reason="rule engine not importable")
def test_real_engine_end_to_end(tmp_path):
    f = tmp_path / "track.py"
    f.write_text(SEED)
    cmd = [sys.executable, "-m", "flake8_device.cli", "--isolated"]
    env = dict(os.environ, PYTHONPATH=str(Path(cli.__file__).resolve().parents[1]))
    lint = subprocess.run(cmd + [str(f)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert lint.returncode == 1, lint.stderr
    assert "DEV" in lint.stdout
    fix = subprocess.run(cmd + ["--fix", "--unsafe-fixes", "--summary", str(f)],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert fix.returncode in (0, 1), fix.stderr
    text = f.read_text()
    compile(text, str(f), "exec")
    assert '.to("cuda")' not in text
    again = subprocess.run(cmd + ["--diff", "--unsafe-fixes", str(f)],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == "", again.stdout  # fixing reached a fixed point


def _unwrap_linter(source, filename, options):
    """Each call wrap(x) is DEV005 with a safe fix that leaves just x."""
    import ast

    from flake8_device.diagnostics import Diagnostic, Fix, ReplaceNode, Span

    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "wrap":
            arg = ast.get_source_segment(source, node.args[0])
            span = Span.of(node)
            out.append(Diagnostic("DEV005", "wrapped", span, Fix((ReplaceNode(span, arg),), True, "unwrap")))
    return out


def test_overlapping_fixes_settle_over_rounds(project):
    f = write(project / "m.py", "y = wrap(wrap(wrap(x)))\n")
    code, out, _ = run(["--isolated", "--fix", "--summary", "m.py"], linter=_unwrap_linter)
    assert code == 0 and f.read_text() == "y = x\n"
    assert "DEV005        3      3      0" in out  # one per round: the fixes overlap


def test_round_limit_reported(project):
    f = write(project / "m.py", "y = wrap(wrap(wrap(x)))\n")
    code, out, _ = run(["--isolated", "--fix", "--max-rounds", "2", "--summary", "m.py"],
                       linter=_unwrap_linter)
    assert code == 1 and f.read_text() == "y = wrap(x)\n"
    assert "fixes did not settle within 2 rounds" in out


@pytest.mark.parametrize("argv", [
    ["--select", "FOO"],
    ["--select", "DEV001;DEV002"],
    ["--extend-select", "DEV999"],
    ["--ignore", "DEV9"],
    ["--device-expr", "1+"],
])
def test_selectors_that_match_no_code_are_usage_errors(project, argv):
    write(project / "m.py", "import torch\nx = torch.zeros(3).cuda()\n")
    code, out, err = run(["--isolated", *argv, "m.py"], linter=None)
    assert code == 2, (out, err)
    assert out == ""
    assert "flake8-device:" in err


def test_config_selectors_of_other_plugins_are_kept_but_unknown_dev_codes_are_errors(project):
    write(project / "m.py", "import torch\nx = torch.zeros(3).cuda()\n")
    write(project / "setup.cfg", "[flake8]\nselect = E,W,DEV\n")
    code, out, _ = run(["m.py"], linter=None)
    assert code == 1 and "DEV002" in out
    write(project / "setup.cfg", "[flake8]\nextend-select = DEV999\n")
    code, _, err = run(["m.py"], linter=None)
    assert code == 2 and "DEV999" in err and "setup.cfg" in err


def test_known_prefixes_select(project):
    write(project / "m.py", "import torch\nx = torch.zeros(3).cuda()\n")
    code, out, _ = run(["--isolated", "--select", "DEV0", "m.py"], linter=None)
    assert code == 1 and "DEV002" in out and "DEV101" not in out
