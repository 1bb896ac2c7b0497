"""The pre-commit hooks in .pre-commit-hooks.yaml, run by pre-commit itself.

``pre-commit try-repo`` installs this repository (its current working tree)
into a fresh environment, which needs flake8 and ast-grep-py from the
package registry, so the test is slow and skipped without pre-commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

BAD = '''\
import torch


def f(x, device):
    y = torch.zeros(3, device="cuda")
    return x.cuda() + y
'''

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("pre-commit") is None and not (
        Path(os.sys.executable).parent / "pre-commit").exists(), reason="pre-commit is not installed"),
]


def _pre_commit() -> str:
    local = Path(os.sys.executable).parent / "pre-commit"
    return str(local) if local.exists() else shutil.which("pre-commit")


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def sample_repo(tmp_path):
    repo = tmp_path / "sample"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "Dev")
    (repo / "model.py").write_text(BAD)
    (repo / "clean.py").write_text("x = 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "init")
    return repo


def _try_repo(repo, hook, home):
    env = dict(os.environ, PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never")
    return subprocess.run(
        [_pre_commit(), "try-repo", str(REPO), hook, "--all-files", "--verbose"],
        cwd=repo, capture_output=True, text=True, env=env, timeout=900,
    )


def test_hooks_file_lists_both_hooks():
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "- id: flake8-device\n" in text and "- id: flake8-device-fix\n" in text
    assert "entry: flake8-device --fix" in text


def test_check_hook_fails_and_fix_hook_rewrites(sample_repo, tmp_path):
    home = tmp_path / "pre-commit-home"
    check = _try_repo(sample_repo, "flake8-device", home)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "model.py:" in check.stdout and " DEV" in check.stdout
    assert (sample_repo / "model.py").read_text() == BAD

    fix = _try_repo(sample_repo, "flake8-device-fix", home)
    assert fix.returncode == 1, fix.stdout + fix.stderr  # files were modified
    fixed = (sample_repo / "model.py").read_text()
    # `device` is a bare parameter (no evidence it holds a torch device): the constructor keeps the
    # accelerator where it exists; the .cuda() follows the tensor of its statement.
    assert fixed == BAD.replace('device="cuda"', 'device="cuda" if torch.cuda.is_available() else "cpu"').replace(
        "x.cuda()", "x.to(y.device)")
    compile(fixed, "model.py", "exec")
    assert (sample_repo / "clean.py").read_text() == "x = 1\n"

    again = _try_repo(sample_repo, "flake8-device-fix", home)
    assert again.returncode == 0, again.stdout + again.stderr
