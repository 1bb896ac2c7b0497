"""Every code block of README.md and docs/*.md works when pasted.

Blocks are found when the test is collected, so a block added to the docs is
tested without touching this file.  By the block's language:

* ``sh``/``bash``/``console`` (and unlabelled blocks that start with a command of
  the tool): each command of the project's tools (``flake8``, ``flake8-device``)
  and ``git`` runs, in order, in a small git project with a ``src/`` folder of
  model code; it must exit 0 or 1 (1: diagnostics reported) and print no error.
  Commands that set up or run the whole project (``make``, ``pip``, the harness,
  the benchmarks, the install scripts) are left to the tests of those parts.
* ``ini``: the snippet is the project's ``setup.cfg``; flake8 and flake8-device
  must accept it, the default-off DEV102 must stay off, and ``flake8-device
  --fix --unsafe-fixes`` under it must leave code with no undefined name.
* ``yaml``: a pre-commit configuration (``repos:``) names hooks of
  ``.pre-commit-hooks.yaml`` with arguments the command accepts, and runs:
  ``repo: local`` hooks through ``pre-commit run``, this repository's hooks
  through ``pre-commit try-repo`` (slow); a GitHub Actions workflow
  (``jobs:``) has its ``run:`` steps executed (the install step aside: the
  tool is installed here).
* ``python``: compiles; a block whose first line names a file (``# pkg/mod.py``)
  or that uses a ``path/to/`` placeholder is checked to compile only; any
  other block runs, with ``model`` and ``inputs`` provided when it uses them
  without defining them.  The blocks of docs/rules.md are fragments of
  flagged model code (some are single lines of a ``with``): their rules are
  tested through corpus/rules/ and corpus/fixes/.
* ``json``: parses.

Unlabelled blocks that are not commands are output samples and are not run.
"""

from __future__ import annotations

import ast
import builtins
import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$",
                    re.M | re.S)

RUN = {"flake8", "flake8-device", "git"}
# Plain shell commands a snippet may use around the tool's (exit 0 expected; grep and diff may say 1).
PLAIN = {"cd", "ls", "cat", "echo", "mkdir", "cp", "mv", "rm", "touch", "diff", "head", "tail", "grep", "patch"}
# Commands whose work is the whole set-up or a long job, tested elsewhere.
ELSEWHERE = {
    "make": "set-up and the whole suite (make test is CI)",
    "pip": "installation (tests/test_wheel.py installs the wheel)",
    "flake8-device-harness": "the harness (tests/test_harness.py, tests/test_wheel.py)",
    "pre-commit": "pre-commit (tests/test_precommit.py and the yaml snippets here)",
    ".venv/bin/python": "benchmarks and scripts, which print figures for minutes",
    "python": "benchmarks and scripts, which print figures for minutes",
    "bash": "the install scripts",
    "scripts/install_detectron2.sh": "the install scripts",
    "scripts/bootstrap.sh": "the install scripts",
}

MODEL = '''\
import torch
import torch.nn as nn

BIAS = torch.ones(3).to("cuda")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        y = torch.zeros(3).to("cuda")
        z = torch.arange(3)
        return self.lin(x.cuda() + y) + z


def load(path):
    return torch.load(path)
'''

PRELUDE = '''\
import torch as _torch


class _Model(_torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = _torch.nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(x.to("cuda")) + _torch.ones(3).to("cuda")


model = _Model()
inputs = _torch.ones(2, 3)
'''
PROVIDED = {"model", "inputs"}


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    body: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def _blocks() -> List[Block]:
    out = []
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for path in docs:
        text = path.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            body = textwrap.dedent(m.group("body"))
            line = text.count("\n", 0, m.start()) + 1
            out.append(Block(path.relative_to(REPO).as_posix(), line, m.group("lang").lower(), body))
    return out


BLOCKS = _blocks()


def _of(*langs):
    return [pytest.param(b, id=b.id) for b in BLOCKS if b.lang in langs]


def _env():
    env = dict(os.environ)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    env["PRE_COMMIT_COLOR"] = "never"
    return env


def _run(cmd, cwd, **kw):
    kw.setdefault("timeout", 600)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=kw.pop("env", _env()), **kw)


@pytest.fixture
def project(tmp_path) -> Path:
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "model.py").write_text(MODEL)
    (proj / "model.py").write_text(MODEL)
    (proj / "tests").mkdir()
    (proj / "tests" / "test_model.py").write_text('import torch\n\nX = torch.zeros(2).to("cuda")\n')
    for args in (["init", "-q"], ["config", "user.email", "dev@example.com"], ["config", "user.name", "Dev"],
                 ["add", "."], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=proj, check=True, capture_output=True)
    return proj


# --- shell ---------------------------------------------------------------------


def _commands(body: str) -> List[str]:
    """The commands of a shell block: continuation lines joined; with ``$ `` prompts, only those lines."""
    lines = [line.strip() for line in body.replace("\\\n", " ").splitlines()]
    if any(line.startswith("$ ") for line in lines):
        lines = [line[2:] for line in lines if line.startswith("$ ")]  # the rest is output
    return [line for line in lines if line and not line.startswith("#")]


def _first_word(command: str) -> str:
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # not shell (an output sample with an odd quote)
        return command.split()[0] if command.split() else ""
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):  # VAR=value prefixes
        words = words[1:]
    return words[0] if words else ""


def _is_command_block(block: Block) -> bool:
    cmds = [c for c in _commands(block.body) if _first_word(c)]
    return bool(cmds) and all(_first_word(c) in RUN | PLAIN or _first_word(c) in ELSEWHERE for c in cmds)


SHELL = [pytest.param(b, id=b.id) for b in BLOCKS
         if b.lang in ("sh", "bash", "shell", "console") or (b.lang == "" and _is_command_block(b))]


@pytest.mark.parametrize("block", SHELL)
def test_shell_snippet(block, project):
    ran = 0
    cwd = project
    assignments = ""  # VAR=value lines, kept for the commands after them
    for command in _commands(block.body):
        word = _first_word(command)
        if not word:
            assignments += command + "\n"
            continue
        if word in ELSEWHERE:
            continue
        if word == "git" and shlex.split(command)[1:2] in (["clone"], ["fetch"], ["pull"], ["push"]):
            continue  # needs the network; the rest of the block runs on the sample project
        assert word in RUN | PLAIN, (f"{block.id}: {command!r}: a command this test does not know; "
                                     "add it to RUN, PLAIN or ELSEWHERE")
        if word == "cd":
            cwd = (cwd / shlex.split(command)[1]).resolve()
            assert cwd.is_dir(), f"{block.id}: {command}: no such folder in the sample project"
            continue
        r = _run(["bash", "-c", assignments + command], cwd)
        ok = (0, 1) if word in RUN - {"git"} or word in ("grep", "diff") else (0,)
        assert r.returncode in ok, f"{block.id}: {command}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr and "unrecognized arguments" not in r.stderr, r.stderr
        ran += 1
    if not ran:
        pytest.skip("only commands tested elsewhere: " + ", ".join(sorted({
            ELSEWHERE[_first_word(c)] for c in _commands(block.body) if _first_word(c)})))


# --- configuration -------------------------------------------------------------


@pytest.mark.parametrize("block", _of("ini", "cfg"))
def test_config_snippet(block, project):
    parser = configparser.RawConfigParser()
    parser.read_string(block.body)
    assert parser.has_section("flake8"), f"{block.id}: no [flake8] section"
    (project / "setup.cfg").write_text(block.body)
    flake8 = _run([str(BIN / "flake8"), "."], project)
    assert flake8.returncode in (0, 1) and flake8.stderr == "", flake8.stdout + flake8.stderr
    assert "DEV102" not in flake8.stdout, f"{block.id} turns on the default-off DEV102:\n{flake8.stdout}"
    dev = _run([str(BIN / "flake8-device"), "."], project)
    assert dev.returncode in (0, 1) and dev.stderr == "", dev.stdout + dev.stderr
    fix = _run([str(BIN / "flake8-device"), "--fix", "--unsafe-fixes", "."], project)
    assert fix.returncode in (0, 1), fix.stdout + fix.stderr
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    undefined = _run([str(BIN / "flake8"), "--isolated", "--select", "F821", "."], project)
    assert undefined.stdout == "", f"{block.id}: fixes under this config leave undefined names:\n{undefined.stdout}"


# --- YAML: pre-commit and GitHub Actions -----------------------------------------


def _yaml(block):
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(block.body)


def _hook_ids():
    yaml = pytest.importorskip("yaml")
    return {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}


def _args_accepted(args):
    from flake8_device.cli import build_parser

    try:
        build_parser().parse_args(list(args) + ["x.py"])
    except SystemExit:
        return False
    return True


def _precommit_blocks(local: bool):
    out = []
    for b in BLOCKS:
        if b.lang not in ("yaml", "yml") or "repos:" not in b.body:
            continue
        is_local = re.search(r"repo:\s*local\b", b.body) is not None
        if is_local == local:
            out.append(pytest.param(b, id=b.id))
    return out


@pytest.mark.parametrize("block", _precommit_blocks(local=False))
def test_precommit_snippet_names_real_hooks(block):
    config = _yaml(block)
    hooks = _hook_ids()
    for repo in config["repos"]:
        for hook in repo["hooks"]:
            assert hook["id"] in hooks, f"{block.id}: no hook {hook['id']!r} in .pre-commit-hooks.yaml"
            entry = shlex.split(hooks[hook["id"]]["entry"])[1:]
            assert _args_accepted(entry + list(hook.get("args", []))), hook


def _precommit_ok():
    return (BIN / "pre-commit").exists() or shutil.which("pre-commit")


@pytest.mark.slow
@pytest.mark.skipif(not _precommit_ok(), reason="pre-commit is not installed")
@pytest.mark.parametrize("block", _precommit_blocks(local=False))
def test_precommit_snippet_hooks_run(block, project, tmp_path):
    """The hooks the snippet names, from this repository's working tree (pre-commit try-repo)."""
    config = _yaml(block)
    env = dict(_env(), PRE_COMMIT_HOME=str(tmp_path / "pc-home"))
    pre_commit = str(BIN / "pre-commit") if (BIN / "pre-commit").exists() else shutil.which("pre-commit")
    for repo in config["repos"]:
        for hook in repo["hooks"]:
            r = _run([pre_commit, "try-repo", str(REPO), hook["id"], "--all-files"], project, env=env, timeout=900)
            assert r.returncode == 1, r.stdout + r.stderr  # the project has diagnostics (or gets fixed)
            assert "DEV" in r.stdout or "files were modified" in r.stdout, r.stdout


@pytest.mark.skipif(not _precommit_ok(), reason="pre-commit is not installed")
@pytest.mark.parametrize("block", _precommit_blocks(local=True))
def test_precommit_local_snippet_runs(block, project, tmp_path):
    _yaml(block)
    (project / ".pre-commit-config.yaml").write_text(block.body)
    env = dict(_env(), PRE_COMMIT_HOME=str(tmp_path / "pc-home"))
    pre_commit = str(BIN / "pre-commit") if (BIN / "pre-commit").exists() else shutil.which("pre-commit")
    r = _run([pre_commit, "run", "--all-files"], project, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "src/model.py:" in r.stdout and "DEV" in r.stdout, r.stdout
    (project / "src" / "model.py").write_text("x = 1\n")
    (project / "model.py").write_text("x = 1\n")
    (project / "tests" / "test_model.py").write_text("x = 1\n")
    clean = _run([pre_commit, "run", "--all-files"], project, env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr


WORKFLOWS = [pytest.param(b, id=b.id) for b in BLOCKS if b.lang in ("yaml", "yml") and "jobs:" in b.body]


@pytest.mark.parametrize("block", WORKFLOWS)
def test_github_workflow_snippet_is_a_valid_workflow(block):
    """Against SchemaStore's GitHub workflow schema, as check-jsonschema ships it."""
    schemas = pytest.importorskip("check_jsonschema.builtin_schemas", reason="check-jsonschema is not installed")
    import jsonschema

    from ruamel.yaml import YAML  # a YAML 1.2 reader, as GitHub's: `on:` is a key, not True

    schema = schemas.get_builtin_schema("vendor.github-workflows")
    workflow = YAML(typ="safe").load(block.body)
    errors = [e.message for e in jsonschema.validators.validator_for(schema)(schema).iter_errors(workflow)]
    assert errors == [], f"{block.id}: {errors}"


@pytest.mark.parametrize("block", WORKFLOWS)
def test_github_workflow_snippet(block, project):
    workflow = _yaml(block)
    ran = 0
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            assert "uses" in step or "run" in step, step
            if "run" not in step:
                continue
            for command in _commands(step["run"]):
                if _first_word(command) == "pip":
                    assert "flake8-device" in command
                    continue  # installed in this environment already
                assert _first_word(command) in RUN, command
                r = _run(["bash", "-c", command], project)
                assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stdout + r.stderr
                if "--output-format github" in command:
                    lines = r.stdout.splitlines()
                    assert lines and all(line.startswith(("::error ", "::warning ")) for line in lines), r.stdout
                ran += 1
    assert ran, f"{block.id}: no step runs the tool"


# --- Python ----------------------------------------------------------------------


def _undefined(tree: ast.AST) -> set:
    bound, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, (ast.Store, ast.Del)) else used).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return used - bound - set(dir(builtins))


PYTHON = [pytest.param(b, id=b.id) for b in BLOCKS if b.lang in ("python", "py") and b.doc != "docs/rules.md"]


@pytest.mark.parametrize("block", PYTHON)
def test_python_snippet(block, project):
    tree = ast.parse(block.body, block.id)  # every block compiles
    first = block.body.lstrip().splitlines()[0] if block.body.strip() else ""
    if re.match(r"^#\s*[\w./-]+\.py\s*$", first):
        return  # the contents of a file of the reader's own package
    if "path/to/" in block.body:
        return  # a placeholder for the reader's own paths
    missing = _undefined(tree)
    assert missing <= PROVIDED, f"{block.id} uses {sorted(missing - PROVIDED)} without defining them"
    script = project / "snippet.py"
    needs_torch = bool(missing) or "torch" in block.body or "virtual" in block.body
    if needs_torch:
        pytest.importorskip("torch")
    script.write_text((PRELUDE if missing else "") + block.body)
    r = _run([sys.executable, str(script)], project, env=dict(_env(), PYTHONPATH=str(REPO)))
    assert r.returncode == 0, f"{block.id}\n{r.stdout}\n{r.stderr}"


@pytest.mark.parametrize("block", _of("json"))
def test_json_snippet(block):
    json.loads(block.body)


def test_snippets_are_found():
    langs = {b.lang for b in BLOCKS}
    assert {"sh", "ini", "yaml", "python"} <= langs
    assert SHELL and PYTHON and WORKFLOWS
