"""Awkward files: each gets a clear message, the run goes on, nothing is lost."""

from __future__ import annotations

import builtins
import io
import os
import stat

import pytest

from flake8_device_fixers import SourceError, read_source, write_source
from flake8_device_fixers.testing import toy_linter
from flake8_device import cli


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--isolated", *argv], stdout=out, stderr=err, linter=toy_linter)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_syntax_error_reported_like_flake8_and_run_goes_on(here):
    (here / "bad.py").write_bytes(b"def f(:\n    pass\n")
    (here / "good.py").write_bytes(b'x = "cuda"\n')
    code, _, err = run(["--fix", "bad.py", "good.py"])
    assert code == 2
    assert err.startswith("bad.py:1:7: E999 SyntaxError: ")
    assert (here / "bad.py").read_bytes() == b"def f(:\n    pass\n"
    assert (here / "good.py").read_bytes() == b"x = dev\n"


def test_latin1_without_cookie_is_not_decoded(here):
    raw = b'name = "caf\xe9"\nx = "cuda"\n'
    (here / "l1.py").write_bytes(raw)
    code, _, err = run(["--fix", "l1.py"])
    assert code == 2
    assert err.startswith("l1.py: cannot decode as utf-8: ")
    assert (here / "l1.py").read_bytes() == raw


def test_latin1_with_cookie_is_fixed_and_stays_latin1(here):
    raw = b'# -*- coding: latin-1 -*-\nname = "caf\xe9"\nx = "cuda"\n'
    (here / "l1.py").write_bytes(raw)
    code, _, _ = run(["--fix", "l1.py"])
    assert code == 0
    assert (here / "l1.py").read_bytes() == raw.replace(b'"cuda"', b"dev")


def test_unknown_encoding_cookie(here):
    raw = b"# coding: no-such-codec\nx = 1\n"
    (here / "c.py").write_bytes(raw)
    code, _, err = run(["c.py"])
    assert code == 2 and "c.py: cannot detect encoding" in err
    assert (here / "c.py").read_bytes() == raw


def test_bom_and_crlf_kept(here):
    raw = b'\xef\xbb\xbfimport torch\r\nx = t.to("cuda")  # \xc3\xa9\r\ny = 1'
    (here / "b.py").write_bytes(raw)
    code, _, _ = run(["--fix", "b.py"])
    assert code == 0
    # BOM, CRLF, the missing final newline and the non-ASCII comment are kept
    assert (here / "b.py").read_bytes() == raw.replace(b'"cuda"', b"dev")


def test_file_mode_kept(here):
    p = here / "run.py"
    p.write_bytes(b'#!/usr/bin/env python\nx = "cuda"\n')
    os.chmod(p, 0o751)
    run(["--fix", "run.py"])
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o751
    assert p.read_bytes() == b"#!/usr/bin/env python\nx = dev\n"
    assert [n for n in os.listdir(here) if n.endswith(".tmp")] == []


def test_fix_through_symlink_edits_the_target(here):
    target = here / "real.py"
    target.write_bytes(b'x = "cuda"\n')
    (here / "link.py").symlink_to(target)
    run(["--fix", "link.py"])
    assert (here / "link.py").is_symlink()
    assert target.read_bytes() == b"x = dev\n"


def test_broken_symlink_is_unreadable(here):
    # Tests run as root, where chmod 000 does not stop reading; a dangling
    # symlink stands in for a file that cannot be opened.
    (here / "gone.py").symlink_to(here / "missing-target.py")
    (here / "ok.py").write_bytes(b'x = "cuda"\n')
    code, _, err = run(["--fix", "gone.py", "ok.py"])
    assert code == 2 and "gone.py: cannot read: " in err
    assert (here / "ok.py").read_bytes() == b"x = dev\n"


def test_permission_denied_is_reported(here, monkeypatch):
    # Simulate EACCES (root can read chmod-000 files) by failing open().
    p = here / "secret.py"
    p.write_bytes(b'x = "cuda"\n')
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if str(file).endswith("secret.py"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    code, _, err = run(["--fix", "secret.py"])
    assert code == 2 and "secret.py: cannot read: Permission denied" in err
    monkeypatch.undo()
    assert p.read_bytes() == b'x = "cuda"\n'


def test_empty_file(here):
    (here / "empty.py").write_bytes(b"")
    assert run(["--fix", "empty.py"]) == (0, "", "")
    assert (here / "empty.py").read_bytes() == b""


def _big_source(size: int) -> bytes:
    line = b'value_%07d = "%s"  # padding padding padding padding padding\n'
    out, i = [], 0
    total = 0
    while total < size:
        chunk = line % (i, b"cuda" if i % 50000 == 0 else b"cpu")
        out.append(chunk)
        total += len(chunk)
        i += 1
    return b"".join(out)


@pytest.mark.slow
def test_five_megabyte_file_is_scanned_and_fixed(here):
    raw = _big_source(5 * 1024 * 1024)
    (here / "big.py").write_bytes(raw)
    code, _, err = run(["--fix", "big.py"])
    assert code == 0, err
    assert (here / "big.py").read_bytes() == raw.replace(b'"cuda"', b"dev")


def test_file_over_the_limit_is_skipped_untouched(here):
    raw = _big_source(300 * 1024)
    (here / "big.py").write_bytes(raw)
    code, _, err = run(["--fix", "--max-file-size", "100K", "big.py"])
    assert code == 2
    assert "big.py: skipped: " in err and "over the size limit of 102400 bytes" in err
    assert (here / "big.py").read_bytes() == raw


def test_write_refuses_text_that_does_not_parse(here):
    p = here / "m.py"
    p.write_bytes(b"x = 1\n")
    src = read_source(str(p))
    with pytest.raises(SourceError, match="does not parse"):
        write_source(src, "x = (\n")
    assert p.read_bytes() == b"x = 1\n"


def test_write_refuses_text_the_encoding_cannot_hold(here):
    p = here / "m.py"
    p.write_bytes(b"# coding: ascii\nx = 1\n")
    src = read_source(str(p))
    with pytest.raises(SourceError, match="cannot encode"):
        write_source(src, "# coding: ascii\nx = '日本'\n")
    assert p.read_bytes() == b"# coding: ascii\nx = 1\n"


def test_directory_given_as_file_is_not_read(here):
    (here / "pkg.py").mkdir()
    (here / "pkg.py" / "inner.py").write_bytes(b"x = 1\n")
    assert run(["pkg.py"])[0] == 0


# --- writes that must not happen --------------------------------------------------


def test_file_changed_between_read_and_write_is_not_overwritten(here, monkeypatch):
    p = here / "m.py"
    p.write_bytes(b'x = "cuda"\n')
    real_run_file = cli.Runner.run_file

    def run_file_then_someone_edits(self, path, *args):
        got = real_run_file(self, path, *args)
        with open(path, "wb") as fh:  # an editor saves while the fixes are computed
            fh.write(b'x = "cuda"\ny = 2\n')
        return got

    monkeypatch.setattr(cli.Runner, "run_file", run_file_then_someone_edits)
    code, _, err = run(["--fix", "m.py"])
    assert code == 2
    assert "m.py: not written: the file changed on disk since it was read" in err
    assert p.read_bytes() == b'x = "cuda"\ny = 2\n'  # the concurrent edit survives
    assert [n for n in os.listdir(here) if n.endswith(".tmp")] == []


def test_read_only_file_is_reported_and_left_alone(here):
    # tests run as root, where os.access says every file is writable: the
    # fixer goes by the mode bits
    p = here / "ro.py"
    p.write_bytes(b'x = "cuda"\n')
    os.chmod(p, 0o444)
    (here / "ok.py").write_bytes(b'x = "cuda"\n')
    code, out, err = run(["--fix", "--summary", "ro.py", "ok.py"])
    assert code == 2 and "ro.py: not written: the file is read-only" in err
    assert p.read_bytes() == b'x = "cuda"\n'
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o444
    assert (here / "ok.py").read_bytes() == b"x = dev\n"


def test_symlink_leaving_the_given_folder_is_not_written(here):
    outside = here / "outside"
    outside.mkdir()
    target = outside / "real.py"
    target.write_bytes(b'x = "cuda"\n')
    proj = here / "proj"
    proj.mkdir()
    (proj / "link.py").symlink_to(target)
    (proj / "own.py").write_bytes(b'x = "cuda"\n')
    code, _, err = run(["--fix", "proj"])
    assert code == 2
    assert "link.py: not written: it is a symlink to " in err and "outside the paths given" in err
    assert target.read_bytes() == b'x = "cuda"\n'
    assert (proj / "own.py").read_bytes() == b"x = dev\n"
    # named explicitly, the same link is refused too; the outside folder given is fine
    assert run(["--fix", "proj/link.py"])[0] == 2 and target.read_bytes() == b'x = "cuda"\n'
    assert run(["--fix", "proj", "outside"])[0] == 0 and target.read_bytes() == b"x = dev\n"


def test_symlinked_folder_is_not_followed(here):
    outside = here / "outside"
    outside.mkdir()
    (outside / "real.py").write_bytes(b'x = "cuda"\n')
    proj = here / "proj"
    proj.mkdir()
    (proj / "sub").symlink_to(outside, target_is_directory=True)
    assert run(["--fix", "proj"])[0] == 0
    assert (outside / "real.py").read_bytes() == b'x = "cuda"\n'


def test_unreadable_directory_is_an_error(here, monkeypatch):
    # as root chmod 000 does not stop listing a folder: fail the listing instead
    (here / "pkg" / "locked").mkdir(parents=True)
    (here / "pkg" / "locked" / "a.py").write_bytes(b'x = "cuda"\n')
    (here / "pkg" / "b.py").write_bytes(b'x = "cuda"\n')
    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, _, err = run(["--fix", "pkg"])
    assert code == 2
    assert os.path.join("pkg", "locked") + ": cannot read directory: Permission denied" in err
    assert (here / "pkg" / "b.py").read_bytes() == b"x = dev\n"  # the rest is still fixed


# --- characters str.splitlines treats as line breaks -----------------------------

SEPARATORS = ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("sep", SEPARATORS, ids=lambda s: f"U+{ord(s):04X}")
def test_line_separators_do_not_shift_lines(here, sep):
    # the separator sits in a comment and in a string: one physical line each
    src = (f"import torch\n# a{sep}b\ns = 'x{sep}y'\n"
           "def f(x: torch.Tensor, z: torch.Tensor):\n"
           "    y = x.to('cuda')  # noqa: DEV001\n"
           "    return torch.zeros(3).to('cuda')\n")
    p = here / "sep.py"
    p.write_text(src, encoding="utf-8", newline="")
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["--isolated", "--show-source", "sep.py"], stdout=out, stderr=err) == 1, err.getvalue()
    lines = out.getvalue().splitlines()
    reports = [ln for ln in lines if ln.startswith("sep.py:")]
    # only line 6 is reported (line 5 carries the noqa), with its own source line
    assert reports and all(r.startswith("sep.py:6:") for r in reports), reports
    assert "    return torch.zeros(3).to('cuda')" in lines
    diff = io.StringIO()
    cli.main(["--isolated", "--diff", "sep.py"], stdout=diff, stderr=io.StringIO())
    assert "@@ -6 +6 @@" in diff.getvalue() or "@@ -3,4 +3,4 @@" in diff.getvalue(), diff.getvalue()
    assert cli.main(["--isolated", "--fix", "sep.py"], stdout=io.StringIO(), stderr=io.StringIO()) == 0
    fixed = p.read_bytes().decode("utf-8")
    # (``x`` is moved by the function itself, so it is not the target device: ``z`` is)
    assert fixed == src.replace("torch.zeros(3).to('cuda')", "torch.zeros(3, device=z.device)")


@pytest.mark.parametrize("sep", SEPARATORS, ids=lambda s: f"U+{ord(s):04X}")
def test_engine_lines_match_the_tokenizer(sep):
    from flake8_device.engine import check_source

    src = f"import torch\ndef f(x: torch.Tensor):\n    s = '{sep}'  # {sep} here\n    return torch.zeros(2).cuda()\n"
    d, portability = [d for d in check_source(src) if d.code in ("DEV002", "DEV101")]
    assert portability.fix is d.fix  # one fix for the chain's DEV101 and its DEV002
    assert d.span.line == 4
    assert d.fix is not None and "x.device" in str(d.fix.ops)


# --- the flake8 plugin never aborts a flake8 run -------------------------------------


def test_plugin_contains_a_recursion_error(here):
    import subprocess
    import sys

    (here / "deep.py").write_text("f = " + "lambda: " * 1200 + "0\n")
    (here / "ok.py").write_text('import torch\nx = torch.zeros(2).to("cuda")\n')
    proc = subprocess.run([sys.executable, "-m", "flake8", "--isolated", "--select", "DEV,E9", "deep.py", "ok.py"],
                          capture_output=True, text=True, cwd=here, timeout=120)
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr.replace("(RecursionError)", "")
    assert proc.returncode == 1
    assert "deep.py:1:1: DEV000 flake8-device could not check this file: it nests too deeply" in proc.stdout
    assert "ok.py:2:" in proc.stdout  # the other file is still checked
