"""``[tool.flake8-device]`` in ``pyproject.toml``, through the installed command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from flake8_device.config import ConfigError, load_settings

COMMAND = Path(sys.executable).parent / "flake8-device"

BAD = 'import torch\n\ndef f(t):\n    return t.to("cuda")\n'


def run(args, cwd):
    env = dict(os.environ, HOME=os.devnull)  # no home folder above the project to stop the search
    p = subprocess.run([str(COMMAND), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    return root


def test_pyproject_only_project_is_configured(project):
    write(project / "pyproject.toml", textwrap.dedent("""\
        [project]
        name = "demo"

        [tool.flake8-device]
        select = ["DEV001", "DEV006"]
        ignore = "DEV006"
        extend-exclude = ["vendored"]
        per-file-ignores = { "legacy/*.py" = ["DEV001"] }
        """))
    write(project / "a.py", BAD)
    write(project / "e.py", "import torch\nm = torch.zeros(3).cuda()\n")  # DEV002, DEV101: not selected
    write(project / "legacy" / "b.py", BAD)
    write(project / "vendored" / "c.py", BAD)
    write(project / "d.py", "import torch\nx = torch.load('w.pt')\n")
    code, out, err = run(["--no-explain", "."], project)
    assert code == 1, err
    lines = [line for line in out.splitlines() if ": DEV" in line]
    assert len(lines) == 1 and lines[0].startswith("a.py:4:") and " DEV001 " in lines[0], out
    # and --fix through the same settings
    code, out, err = run(["--fix", "--unsafe-fixes", "."], project)
    assert code == 0, out + err
    assert 'to("cuda")' not in (project / "a.py").read_text()
    assert (project / "legacy" / "b.py").read_text() == BAD
    assert (project / "vendored" / "c.py").read_text() == BAD


def test_closest_pyproject_upwards_from_the_current_folder(project):
    write(project / "pyproject.toml", '[tool.flake8-device]\nignore = ["DEV001"]\n')
    write(project / "sub" / "pyproject.toml", '[project]\nname = "no table here"\n')
    write(project / "sub" / "deeper" / "a.py", BAD)
    assert run(["a.py"], project / "sub" / "deeper")[0] == 0
    # a closer pyproject.toml with the table wins
    write(project / "sub" / "pyproject.toml", '[tool.flake8-device]\nignore = []\n')
    assert run(["a.py"], project / "sub" / "deeper")[0] == 1


def test_precedence(project):
    # in one folder, pyproject.toml's table comes before the flake8 files
    write(project / "pyproject.toml", '[tool.flake8-device]\nignore = ["DEV001"]\n')
    write(project / "setup.cfg", "[flake8]\nignore = DEV002\n")
    write(project / "a.py", BAD)
    write(project / "b.py", "def f(t):\n    return t.cuda()\n")
    code, out, _ = run(["a.py", "b.py"], project)
    assert code == 1 and "DEV002" in out and "DEV001" not in out
    # a closer flake8 file wins over a pyproject.toml further up
    write(project / "sub" / ".flake8", "[flake8]\nignore = DEV002\n")
    write(project / "sub" / "a.py", BAD)
    code, out, _ = run(["a.py"], project / "sub")
    assert code == 1 and "DEV001" in out
    # the command line wins over the file
    code, out, _ = run(["--ignore", "", "a.py", "b.py"], project)
    assert "DEV001" in out and "DEV002" in out
    # --config names either kind of file
    code, out, _ = run(["--config", "setup.cfg", "a.py", "b.py"], project)
    assert "DEV001" in out and "DEV002" not in out
    code, out, _ = run(["--config", "pyproject.toml", "a.py", "b.py"], project)
    assert "DEV001" not in out and "DEV002" in out
    # --isolated reads neither
    code, out, _ = run(["--isolated", "a.py", "b.py"], project)
    assert "DEV001" in out and "DEV002" in out


def test_unknown_key_is_a_warning_naming_it_and_the_file(project):
    write(project / "pyproject.toml", '[tool.flake8-device]\nselct = ["DEV001"]\nignore = ["DEV001"]\n')
    write(project / "a.py", BAD)
    code, out, err = run(["a.py"], project)
    assert code == 0, out + err  # the known keys still apply
    assert "selct" in err and "pyproject.toml" in err and "unknown" in err


@pytest.mark.parametrize("body, key", [
    ("select = 3", "select"),
    ('ignore = [1, "DEV001"]', "ignore"),
    ("respect-gitignore = \"yes\"", "respect-gitignore"),
    ("device-expr = []", "device-expr"),
    ("per-file-ignores = 5", "per-file-ignores"),
    ('per-file-ignores = { "x.py" = 1 }', "per-file-ignores"),
    ("max-file-size = true", "max-file-size"),
])
def test_wrong_type_is_a_usage_error(project, body, key):
    write(project / "pyproject.toml", f"[tool.flake8-device]\n{body}\n")
    write(project / "a.py", "x = 1\n")
    code, _, err = run(["a.py"], project)
    assert code == 2 and key in err and "pyproject.toml" in err, err


def test_broken_toml_is_a_usage_error(project):
    write(project / "pyproject.toml", "[tool.flake8-device\nselect = [")
    write(project / "a.py", "x = 1\n")
    code, _, err = run(["a.py"], project)
    assert code == 2 and "pyproject.toml" in err


def test_unknown_selector_in_own_table_is_an_error(project):
    # the table is this tool's own: every selector must match a code (no other plugin shares it)
    write(project / "pyproject.toml", '[tool.flake8-device]\nselect = ["E", "DEV001"]\n')
    write(project / "a.py", "x = 1\n")
    code, _, err = run(["a.py"], project)
    assert code == 2 and "'E'" in err


def test_max_file_size_from_pyproject(project):
    write(project / "pyproject.toml", '[tool.flake8-device]\nmax-file-size = "1K"\n')
    write(project / "a.py", BAD + "#" * 2000 + "\n")
    code, _, err = run(["a.py"], project)
    assert code == 2 and "size limit of 1024 bytes" in err
    code, _, err = run(["--max-file-size", "0", "a.py"], project)
    assert code == 1, err


codes = st.lists(st.sampled_from(["DEV001", "DEV002", "DEV1", "DEV", "DEV103"]), max_size=4)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(select=codes, ignore=codes, as_string=st.booleans())
def test_arrays_and_comma_strings_mean_the_same(tmp_path_factory, select, ignore, as_string):
    root = tmp_path_factory.mktemp("p")

    def value(items):
        return '"' + ", ".join(items) + '"' if as_string else "[" + ", ".join(f'"{i}"' for i in items) + "]"

    (root / "pyproject.toml").write_text(
        f"[tool.flake8-device]\nselect = {value(select)}\nextend-ignore = {value(ignore)}\n")
    (root / "setup.cfg").write_text(
        f"[flake8]\nselect = {','.join(select)}\nextend-ignore = {','.join(ignore)}\n")
    toml = load_settings(str(root / "pyproject.toml"))
    ini = load_settings(str(root / "setup.cfg"))
    for code in ("DEV001", "DEV002", "DEV101", "DEV102", "DEV103"):
        assert toml.is_selected(code) == (ini.is_selected(code) if select else toml.is_selected(code))
    assert toml.extend_ignore == ini.extend_ignore
    if select:
        assert toml.select == ini.select


def test_load_settings_reports_key_and_file():
    with pytest.raises(ConfigError, match="exclude.*nowhere.toml|nowhere.toml.*exclude"):
        from flake8_device.config import settings_from_table

        settings_from_table({"exclude": 1}, "nowhere.toml")


REPO = Path(__file__).resolve().parents[1]


def _toml_blocks():
    import re

    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for n, m in enumerate(re.finditer(r"^```toml\n(.*?)^```", text, re.S | re.M)):
            yield pytest.param(m.group(1), id=f"{doc.name}-{n}")


@pytest.mark.parametrize("block", list(_toml_blocks()))
def test_docs_toml_snippets_configure_the_command(project, block):
    # each pyproject.toml snippet of the docs is read with no warning and takes effect
    write(project / "pyproject.toml", block)
    write(project / "tests" / "test_a.py", BAD)
    write(project / "third_party" / "m.py", BAD)
    write(project / "src" / "m.py", BAD)
    code, out, err = run(["--no-explain", "."], project)
    assert code == 1 and err == "", err
    reported = {line.split(":", 1)[0] for line in out.splitlines() if " DEV" in line}
    assert reported == {os.path.join("src", "m.py")}, out


def test_named_toml_without_the_table_warns(project):
    write(project / "other.toml", '[tool.ruff]\nline-length = 100\n')
    write(project / "a.py", BAD)
    code, _, err = run(["--config", "other.toml", "a.py"], project)
    assert code == 1 and "other.toml has no [tool.flake8-device] table" in err
