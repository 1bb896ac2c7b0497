"""Awkward files: each gets a clear message, the run goes on, nothing is lost."""

from __future__ import annotations

import builtins
import io
import os
import stat

import pytest

from fixers import SourceError, read_source, write_source
from fixers.testing import toy_linter
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
