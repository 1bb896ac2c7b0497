"""Which files the command checks: .gitignore as git reads it, virtual
environments and third-party folders skipped, named paths always checked,
each file once."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from flake8_device import cli
from flake8_device.discovery import GitIgnore, parse_line
from flake8_device_fixers.testing import toy_linter

HAVE_GIT = shutil.which("git") is not None
needs_git = pytest.mark.skipif(not HAVE_GIT, reason="needs git")

GIT_ENV = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, HOME=os.devnull)


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, env=GIT_ENV, timeout=60)


def git_listing(root: Path):
    """The files git does not ignore (no commit: every file is untracked)."""
    out = git("ls-files", "-o", "--exclude-standard", "-z", cwd=root).stdout.decode()
    return sorted(p for p in out.split("\0") if p)


def our_listing(root: Path):
    ignore = GitIgnore()
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not ignore.ignored(os.path.join(folder, d), True)]
        for name in files:
            full = os.path.join(folder, name)
            if not ignore.ignored(full, False):
                found.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return sorted(found)


def make_repo(root: Path, files, ignores, exclude=""):
    root.mkdir(parents=True, exist_ok=True)
    assert git("init", "-q", cwd=root).returncode == 0
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            path.write_text("x = 1\n")
    for rel, text in ignores.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if exclude:
        (root / ".git" / "info").mkdir(parents=True, exist_ok=True)
        (root / ".git" / "info" / "exclude").write_text(exclude)


TREE = ["a.py", "b.txt", "build/x.py", "src/build/y.py", "src/a.py", "src/deep/er/z.py", "src/deep/keep.py",
        "doc/a.py", "doc/b/c.py", ".hidden.py", "#hash.py", "!bang.py", "sp ace.py", "tr ", "x[1].py",
        "log/a.log", "log/keep.log", "foo/bar/baz.py", "a/foo/bar/q.py", "a/b/c/d.py", "abc/x.py", "ab/x.py"]

TABLE = [
    "*.txt",
    "build/",
    "/build/",
    "/a.py",
    "src/**/z.py",
    "**/deep",
    "src/**",
    "doc/*\n!doc/b/",
    "log/\n!log/keep.log",  # no re-inclusion inside an ignored folder
    "log/*\n!log/keep.log",
    "\\#hash.py",
    "\\!bang.py",
    "# a comment\n",
    "sp\\ ace.py",
    "tr\\ ",
    "tr  ",
    "x\\[1\\].py",
    "x[0-9].py",
    "[!a]*.py",
    "a?.py\n?b",
    "foo/bar",
    "**/foo/bar",
    "a/**/d.py",
    "ab*",
    "*.py\n!src/*.py",
    "*\n!*/\n!*.py",
]


@needs_git
@pytest.mark.parametrize("patterns", TABLE)
def test_gitignore_table_matches_git(tmp_path, patterns):
    make_repo(tmp_path, TREE, {".gitignore": patterns + "\n"})
    assert our_listing(tmp_path) == git_listing(tmp_path)


@needs_git
def test_nested_gitignore_and_info_exclude_match_git(tmp_path):
    make_repo(tmp_path, TREE, {".gitignore": "*.py\n!src/\n", "src/.gitignore": "!a.py\ndeep/er/\n",
                                "doc/.gitignore": "!*.py\n", "a/b/.gitignore": "/c/\n"},
              exclude="b.txt\nabc/\n")
    assert our_listing(tmp_path) == git_listing(tmp_path)


SEGMENTS = ["a", "b", "*", "?", "**", "[ab]", "[!a]", "*.py", "a*", "c", "x.py", "[a-c]", "\\*"]
NAMES = ["a", "b", "c", "x.py", "ab", "a.py", "*"]


@st.composite
def patterns(draw):
    segs = draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3))
    text = "/".join(segs)
    if draw(st.booleans()):
        text = "/" + text
    if draw(st.booleans()):
        text += "/"
    if draw(st.integers(0, 3)) == 0:
        text = "!" + text
    return text


@needs_git
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join),
                      min_size=1, max_size=8, unique=True),
       top=st.lists(patterns(), max_size=4),
       nested=st.lists(patterns(), max_size=3))
def test_gitignore_property_matches_git(tmp_path_factory, files, top, nested):
    root = tmp_path_factory.mktemp("repo")
    # a path cannot be both a file and a folder
    files = [f for f in files if f != "a" and not any(g.startswith(f + "/") for g in files)]
    make_repo(root, files, {".gitignore": "\n".join(top) + "\n", "a/.gitignore": "\n".join(nested) + "\n"})
    assert our_listing(root) == git_listing(root), (top, nested)


def test_parse_line_comments_blank_and_escapes():
    assert parse_line("# c") is None and parse_line("") is None and parse_line("   ") is None
    assert parse_line("\\#x").regex.fullmatch("#x")
    rule = parse_line("!keep")
    assert rule.negated and rule.regex.fullmatch("d/keep")
    assert parse_line("dir/").dir_only


# --- the command -------------------------------------------------------------------


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--isolated", *argv], stdout=out, stderr=err, linter=toy_linter)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def put(path: Path, text: str = 'x = "cuda"\n') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def reported(out: str):
    return sorted({line.split(":")[0] for line in out.splitlines() if ":" in line and not line.startswith(" ")})


def test_gitignored_folders_are_skipped_in_a_work_tree(project):
    (project / ".git").mkdir()
    put(project / ".gitignore", "gen/\n*_pb2.py\n")
    put(project / "gen" / "a.py")
    put(project / "m_pb2.py")
    put(project / "ok.py")
    code, out, _ = run(["."])
    assert reported(out) == ["ok.py"]
    code, out, _ = run(["--no-respect-gitignore", "."])
    assert reported(out) == ["gen/a.py", "m_pb2.py", "ok.py"]


def test_gitignore_outside_a_work_tree_is_not_read(project):
    put(project / ".gitignore", "gen/\n")
    put(project / "gen" / "a.py")
    assert reported(run(["."])[1]) == ["gen/a.py"]


def test_virtualenvs_site_packages_and_node_modules_are_skipped(project):
    put(project / "env3" / "pyvenv.cfg", "home = /usr/bin\n")
    put(project / "env3" / "lib" / "m.py")
    put(project / "lib" / "python3.11" / "site-packages" / "pkg" / "m.py")
    put(project / "web" / "node_modules" / "pkg" / "m.py")
    put(project / "ok.py")
    assert reported(run(["."])[1]) == ["ok.py"]


def test_fix_dot_leaves_third_party_code_alone(project):
    (project / ".git").mkdir()
    put(project / ".gitignore", "third_party/\n")
    third = [put(project / "third_party" / "m.py"), put(project / "myenv" / "lib" / "m.py"),
             put(project / "x" / "site-packages" / "m.py"), put(project / "node_modules" / "m.py")]
    put(project / "myenv" / "pyvenv.cfg", "")
    mine = put(project / "src" / "m.py")
    code, _, err = run(["--fix", "."])
    assert code == 0, err
    assert mine.read_text() == "x = dev\n"
    assert all(p.read_text() == 'x = "cuda"\n' for p in third)


def test_named_paths_are_checked_even_when_excluded_or_ignored(project):
    (project / ".git").mkdir()
    put(project / ".gitignore", "gen/\nskip.py\n")
    put(project / "gen" / "a.py")
    put(project / "skip.py")
    put(project / "build" / "b.py")
    put(project / "venv" / "v.py")
    code, out, _ = run(["gen", "skip.py", "build", "venv/v.py"])
    assert reported(out) == ["build/b.py", "gen/a.py", "skip.py", "venv/v.py"]
    # inside a named folder the excludes still apply
    put(project / "build" / "__pycache__" / "c.py")
    assert reported(run(["build"])[1]) == ["build/b.py"]


def test_force_exclude_applies_excludes_to_named_paths(project):
    (project / ".git").mkdir()
    put(project / ".gitignore", "skip.py\n")
    put(project / "skip.py")
    put(project / "build" / "b.py")
    put(project / "ok.py")
    code, out, _ = run(["--force-exclude", "skip.py", "build", "build/b.py", "ok.py"])
    assert reported(out) == ["ok.py"]


def test_each_file_is_reported_once(project):
    put(project / "dir" / "a.py")
    put(project / "a.py")
    code, out, _ = run(["a.py", "a.py", "./a.py", str(project / "a.py"), "dir", "dir/a.py", "."])
    lines = [line for line in out.splitlines() if "DEV001" in line]
    assert sorted(lines) == sorted(set(lines)) and len(lines) == 2, out


def test_fix_twice_named_file_fixes_once(project):
    a = put(project / "a.py")
    code, out, err = run(["--fix", "a.py", "./a.py"])
    assert code == 0 and not err, err
    assert a.read_text() == "x = dev\n"
    assert "in 1 file(s)" in out


def test_pyi_files_are_checked_in_folders_and_when_named(project):
    put(project / "pkg" / "m.pyi")
    put(project / "n.pyi")
    assert reported(run(["."])[1]) == ["n.pyi", "pkg/m.pyi"]
    assert reported(run(["n.pyi"])[1]) == ["n.pyi"]


def test_config_keys_respect_gitignore_and_force_exclude(project):
    (project / ".git").mkdir()
    put(project / ".gitignore", "gen/\n")
    put(project / "gen" / "a.py")
    put(project / "build" / "b.py")
    put(project / "ok.py")
    put(project / "setup.cfg", "[flake8]\nrespect-gitignore = false\nforce_exclude = true\n")
    out = io.StringIO()
    cli.main([".", "build/b.py"], stdout=out, stderr=io.StringIO(), linter=toy_linter)
    assert reported(out.getvalue()) == ["gen/a.py", "ok.py"]
    out = io.StringIO()
    cli.main(["--respect-gitignore", "--no-force-exclude", ".", "build/b.py"], stdout=out, stderr=io.StringIO(),
             linter=toy_linter)
    assert reported(out.getvalue()) == ["build/b.py", "ok.py"]
    put(project / "setup.cfg", "[flake8]\nforce-exclude = maybe\n")
    err = io.StringIO()
    assert cli.main(["."], stdout=io.StringIO(), stderr=err, linter=toy_linter) == 2
    assert "force-exclude = 'maybe'" in err.getvalue()


def test_notebooks_are_found_in_folders_but_not_their_checkpoints(project):
    settings = cli.Settings()
    for rel in ["nb/demo.ipynb", "nb/.ipynb_checkpoints/demo-checkpoint.ipynb", "nb/m.py", "nb/notes.json",
                ".venv/lib/x.ipynb", "top.ipynb"]:
        put(project / rel)
    found = sorted(os.path.relpath(p, project) for p in cli.iter_python_files([str(project)], settings))
    assert found == ["nb/demo.ipynb", "nb/m.py", "top.ipynb"]
    # a checkpoint named on the command line is checked, unless --force-exclude applies the excludes
    named = str(project / "nb" / ".ipynb_checkpoints" / "demo-checkpoint.ipynb")
    assert list(cli.iter_python_files([named], settings)) == [named]
    assert list(cli.iter_python_files([named], settings, force_exclude=True)) == []
