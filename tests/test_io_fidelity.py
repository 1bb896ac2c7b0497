"""Byte-faithful input and output: standard input with --fix/--add-noqa,
--diff patches that ``git apply`` takes, and in-place writes that keep the
file's owner, group, mode and hard links and never leave a temporary file."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flake8_device_fixers import read_source, write_source

CMD = [sys.executable, "-m", "flake8_device.cli", "--isolated"]

FIXABLE = "import torch\n\n\ndef f(x):\n    return torch.zeros(3).to(x.device) + x\n"
FIXED = "import torch\n\n\ndef f(x):\n    return torch.zeros(3, device=x.device) + x\n"
CLEAN = "import torch\n\n\ndef f(x):\n    return x + 1\n"


def variants(text: str):
    """(name, bytes) of ``text`` with each encoding, BOM and line-ending style."""
    lf = text
    yield "lf", lf.encode()
    yield "crlf", lf.replace("\n", "\r\n").encode()
    yield "cr", lf.replace("\n", "\r").encode()
    yield "bom", b"\xef\xbb\xbf" + lf.encode()
    yield "bom_crlf", b"\xef\xbb\xbf" + lf.replace("\n", "\r\n").encode()
    yield "latin1", ("# -*- coding: latin-1 -*-\n" + lf + "s = '\xe9t\xe9'\n").encode("latin-1")
    yield "latin1_cr", ("# -*- coding: latin-1 -*-\n" + lf + "s = '\xe9'\n").replace("\n", "\r").encode("latin-1")
    yield "no_final_newline", lf.rstrip("\n").encode()
    yield "crlf_no_final_newline", lf.rstrip("\n").replace("\n", "\r\n").encode()
    yield "mixed", lf.replace("\n", "\r\n", 2).encode()


def run(args, data=None, cwd=None):
    return subprocess.run(CMD + list(args), input=data, capture_output=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("name,data", list(variants(CLEAN)))
def test_stdin_fix_hands_back_the_input_bytes_when_nothing_changes(name, data):
    for mode in ("--fix", "--add-noqa"):
        proc = run([mode, "-", "--stdin-filename", "m.py"], data)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == data, (mode, name)


@pytest.mark.parametrize("name,data", list(variants(FIXABLE)))
def test_stdin_fix_output_is_what_fix_writes(name, data, tmp_path):
    path = tmp_path / "m.py"
    path.write_bytes(data)
    proc = run(["--fix", "m.py"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    on_disk = path.read_bytes()
    assert on_disk != data  # the fix was applied
    proc = run(["--fix", "-", "--stdin-filename", "m.py"], data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == on_disk, name


def test_fixed_file_keeps_encoding_bom_and_line_ends(tmp_path):
    for name, data in variants(FIXABLE):
        path = tmp_path / f"{name}.py"
        path.write_bytes(data)
        src = read_source(str(path))
        expected = src.encode(src.text.replace("torch.zeros(3).to(x.device)", "torch.zeros(3, device=x.device)"))
        assert run(["--fix", str(path)]).returncode == 0
        assert path.read_bytes() == expected, name


def test_stdin_add_noqa_keeps_bytes_around_the_comment():
    data = ("# -*- coding: latin-1 -*-\r\nx = 'cuda'\r\ns = '\xe9'\r\n").encode("latin-1")
    proc = run(["--add-noqa", "-", "--stdin-filename", "m.py"], data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("# -*- coding: latin-1 -*-\r\nx = 'cuda'  # noqa: DEV004\r\ns = '\xe9'\r\n").encode("latin-1")


def test_lone_cr_file_starting_with_a_comment_is_fixed(tmp_path):
    path = tmp_path / "m.py"
    path.write_bytes(("# a comment\n" + FIXABLE).replace("\n", "\r").encode())
    assert run(["--fix", str(path)]).returncode == 0
    assert path.read_bytes() == ("# a comment\n" + FIXED).replace("\n", "\r").encode()


# Lines of a generated module (no line of it changes its count of lines when fixed): the fix of
# each ``.to(x.device)`` moves the device into the factory call.
_LEADS = ["", "# a comment", "", "#!/usr/bin/env python", "# -*- coding: utf-8 -*-"]
_BLOCK = [
    ["# before f{n}", None],
    ["def f{n}(x):", True],
    ["    # inside", None],
    ["    y = torch.zeros({n}).to(x.device)  # trailing", True],
    ["    z = torch.ones({n}).to(x.device)", None],
    ["", None],
    ["    return y", True],
]


@st.composite
def _module_lines(draw):
    lines = []
    lead = draw(st.lists(st.sampled_from(_LEADS), max_size=2))
    lines += lead
    lines.append("import torch")
    for n in range(1, draw(st.integers(1, 3)) + 1):
        for text, always in _BLOCK:
            if always or draw(st.booleans()):
                lines.append(text.format(n=n))
    return lines


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(_module_lines(), st.sampled_from(["\n", "\r\n", "\r", "mixed"]), st.booleans(), st.booleans(),
       st.data())
def test_fix_is_the_lf_fix_with_the_file_line_ends_kept(tmp_path, lines, style, bom, final, data):
    """Whatever the line ends (\\n, \\r\\n, lone \\r, mixed), a leading comment, blank line or
    BOM: --fix writes the fix of the \\n version, each line keeping its own line end, and no
    byte outside the edited lines changes."""
    from flake8_device import cli
    from flake8_device.lines import split_lines

    if style == "mixed":
        ends = [data.draw(st.sampled_from(["\n", "\r\n", "\r"])) for _ in lines]
    else:
        ends = [style] * len(lines)
    if not final:
        ends[-1] = ""
    text = "".join(line + end for line, end in zip(lines, ends))
    assume(len(split_lines(text)) == len(lines))  # a \r then an empty \n line would be one \r\n
    lf = "".join(line + ("\n" if end else "") for line, end in zip(lines, ends))

    def fix(name, content):
        path = tmp_path / name
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + content.encode())
        cli.main(["--isolated", "--fix", str(path)], stdout=io.StringIO(), stderr=io.StringIO())
        raw = path.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") == bom
        return raw[3 if bom else 0:].decode()

    fixed_lf = fix("lf.py", lf)
    assert fixed_lf != lf  # there is something to fix
    fixed = fix("styled.py", text)
    fixed_lines = split_lines(fixed_lf, keepends=False)
    assert len(fixed_lines) == len(lines)
    assert fixed == "".join(line + end for line, end in zip(fixed_lines, ends))
    for old, new, line in zip(split_lines(text), split_lines(fixed), lines):
        if ".to(x.device)" not in line:
            assert old == new


def test_coding_cookie_with_lone_cr_line_ends_is_honoured(tmp_path):
    path = tmp_path / "m.py"
    data = "# -*- coding: latin-1 -*-\rs = '\xe9'\r".encode("latin-1")
    path.write_bytes(data)
    src = read_source(str(path))
    assert (src.encoding, src.text) == ("iso-8859-1", data.decode("latin-1"))


# --- --diff and git apply -------------------------------------------------------


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=60)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_diff_applies_with_git_apply_for_every_encoding_and_line_end(tmp_path):
    repo = tmp_path / "repo"
    fixed = tmp_path / "fixed"
    repo.mkdir()
    assert git("init", "-q", cwd=repo).returncode == 0
    git("config", "core.autocrlf", "false", cwd=repo)
    for name, data in variants(FIXABLE):
        (repo / f"{name}.py").write_bytes(data)
    (repo / "clean.py").write_bytes(CLEAN.replace("\n", "\r\n").encode())
    shutil.copytree(repo, fixed)
    assert run(["--fix", "."], cwd=fixed).returncode == 0
    proc = run(["--diff", "."], cwd=repo)
    assert proc.returncode == 1, proc.stderr
    patch = tmp_path / "device.patch"
    patch.write_bytes(proc.stdout)
    check = git("apply", "--check", str(patch), cwd=repo)
    assert check.returncode == 0, check.stderr
    applied = git("apply", str(patch), cwd=repo)
    assert applied.returncode == 0, applied.stderr
    for name, _ in variants(FIXABLE):
        assert (repo / f"{name}.py").read_bytes() == (fixed / f"{name}.py").read_bytes(), name
    assert (repo / "clean.py").read_bytes() == (fixed / "clean.py").read_bytes()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("name,data", list(variants(FIXABLE)))
def test_stdin_diff_applies_with_git_apply(name, data, tmp_path):
    assert git("init", "-q", cwd=tmp_path).returncode == 0
    path = tmp_path / "m.py"
    path.write_bytes(data)
    proc = run(["--diff", "-", "--stdin-filename", "m.py"], data)
    assert proc.returncode == 1, proc.stderr
    (tmp_path / "p.patch").write_bytes(proc.stdout)
    applied = git("apply", "p.patch", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    fixed = run(["--fix", "-", "--stdin-filename", "m.py"], data).stdout
    assert path.read_bytes() == fixed, name


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch")
def test_diff_applies_with_patch_p1(tmp_path):
    for name, data in variants(FIXABLE):
        if "cr" in name.replace("crlf", ""):
            continue  # patch(1) reads lines at \n only, as git does, but rewrites lone \r ends
        (tmp_path / f"{name}.py").write_bytes(data)
    proc = run(["--diff", "."], cwd=tmp_path)
    fixed = tmp_path.parent / (tmp_path.name + "-fixed")
    shutil.copytree(tmp_path, fixed)
    assert run(["--fix", "."], cwd=fixed).returncode == 0
    applied = subprocess.run(["patch", "-p1", "--binary", "-s"], input=proc.stdout, cwd=tmp_path,
                             capture_output=True, timeout=60)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for path in fixed.glob("*.py"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


# --- in-place writes ------------------------------------------------------------


def _fix(path: Path):
    proc = run(["--fix", str(path)])
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes() == FIXED.encode()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_fix_as_root_keeps_owner_group_and_mode(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(FIXABLE)
    os.chown(path, 12345, 23456)
    os.chmod(path, 0o640)
    _fix(path)
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (12345, 23456, 0o640)


def test_fix_keeps_hard_links(tmp_path):
    path = tmp_path / "m.py"
    other = tmp_path / "other_name.txt"
    path.write_text(FIXABLE)
    os.link(path, other)
    inode = path.stat().st_ino
    _fix(path)
    assert path.stat().st_ino == inode
    assert other.read_bytes() == FIXED.encode()
    assert path.stat().st_nlink == 2


def test_write_never_creates_a_second_file(tmp_path, monkeypatch):
    """While the new bytes go to disk, the folder holds nothing but the file:
    a signal or a kill at any moment cannot leave a temporary file behind."""
    path = tmp_path / "m.py"
    path.write_text(FIXABLE)
    src = read_source(str(path))
    seen = []
    real_fsync = os.fsync

    def spy(fd):
        seen.append(sorted(os.listdir(tmp_path)))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_source(src, FIXED)
    assert seen, "the write is flushed to disk"
    assert all(listing == ["m.py"] for listing in seen), seen
    assert path.read_bytes() == FIXED.encode()


@pytest.mark.slow
def test_sigterm_and_sigint_during_fix_leave_no_temp_file_and_no_partial_file(tmp_path):
    originals = {}
    for n in range(150):
        text = FIXABLE + "".join(f"\n\ndef g{k}(x):\n    return torch.ones(2).to(x.device) * {k}\n" for k in range(n % 7))
        (tmp_path / f"m{n}.py").write_text(text)
        originals[f"m{n}.py"] = text
    fixed_copy = tmp_path.parent / (tmp_path.name + "-ref")
    shutil.copytree(tmp_path, fixed_copy)
    assert run(["--fix", "."], cwd=fixed_copy).returncode == 0
    for sig, delay in ((signal.SIGTERM, 1.5), (signal.SIGINT, 2.5), (signal.SIGTERM, 3.5)):
        proc = subprocess.Popen(CMD + ["--fix", "."], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        names = sorted(os.listdir(tmp_path))
        assert names == sorted(originals), [n for n in names if n not in originals]
        for name, text in originals.items():
            now = (tmp_path / name).read_bytes()
            assert now in (text.encode(), (fixed_copy / name).read_bytes()), name


@pytest.mark.parametrize("failing", ["posix_fallocate", "pwrite"])
def test_full_disk_leaves_the_file_as_it_was(tmp_path, monkeypatch, failing):
    import errno

    from flake8_device_fixers import SourceError

    if not hasattr(os, failing):
        pytest.skip(f"no os.{failing} here")
    path = tmp_path / "m.py"
    path.write_text(FIXABLE)
    src = read_source(str(path))
    real = getattr(os, failing)
    calls = []

    def full(*args):
        calls.append(args)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(os, failing, full)
    with pytest.raises(SourceError, match="No space left"):
        write_source(src, FIXED + "# longer than before\n")
    assert calls
    assert path.read_bytes() == FIXABLE.encode()
    assert sorted(os.listdir(tmp_path)) == ["m.py"]
