"""Read and write Python source files without losing anything.

Reading keeps the exact text: the encoding comes from PEP 263 (BOM or coding
cookie, else UTF-8), the bytes are decoded without newline translation so
``\\r\\n`` stays ``\\r\\n``, and a BOM is remembered and stripped from the text.
Writing encodes with the same encoding, restores the BOM, refuses a text that
does not parse, and writes the new bytes through the file's own inode, as
Black and Ruff do: the owner, group, mode, hard links, extended attributes
and ACLs stay those of the file, and no second file ever exists in the folder
(nothing is left behind whatever signal stops the process).  The bytes are
complete and checked in memory before the file is opened for writing; the
space they need is reserved first, and the signals that stop a run (SIGINT,
SIGTERM, SIGHUP, SIGQUIT) are held back while they are written.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import re
import signal
import stat
import threading
import tokenize
from dataclasses import dataclass

from .syntax import parses

DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024


class SourceError(Exception):
    """A file could not be read, decoded or written; ``str()`` says why."""


@dataclass(frozen=True)
class SourceFile:
    path: str
    raw: bytes
    encoding: str  # as returned by tokenize.detect_encoding ("utf-8-sig" with a BOM)
    text: str  # decoded, BOM stripped, newlines untouched

    @property
    def has_bom(self) -> bool:
        return self.encoding == "utf-8-sig"

    def encode(self, text: str) -> bytes:
        if self.has_bom:
            return codecs.BOM_UTF8 + text.encode("utf-8")
        return text.encode(self.encoding)


def read_source(path: str, max_size: int = DEFAULT_MAX_FILE_SIZE) -> SourceFile:
    """Read ``path``; raise :class:`SourceError` with a one-line reason."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise SourceError("not a regular file")
    if max_size and st.st_size > max_size:
        raise SourceError(
            f"skipped: {st.st_size} bytes is over the size limit of {max_size} bytes "
            "(see --max-file-size)"
        )
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from exc
    return decode_source(path, raw)


_FIRST_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def _line_reader(raw: bytes):
    """``readline`` over ``raw`` that ends lines at ``\\r\\n``, ``\\r`` or ``\\n``, as
    Python's own tokenizer does (a coding cookie in a file with lone ``\\r``
    line ends is honoured by Python; :func:`tokenize.detect_encoding` alone
    would read the whole file as its first line)."""
    lines = iter(_FIRST_LINES.findall(raw[:4096]))
    return lambda: next(lines, b"")


def decode_source(path: str, raw: bytes) -> SourceFile:
    try:
        encoding, _ = tokenize.detect_encoding(_line_reader(raw))
    except SyntaxError as exc:
        # Without a cookie the first lines must be UTF-8; say so plainly.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as dec:
            raise SourceError(f"cannot decode as utf-8: {dec}") from dec
        raise SourceError(f"cannot detect encoding: {exc}") from exc
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        name = "utf-8" if encoding == "utf-8-sig" else encoding
        raise SourceError(f"cannot decode as {name}: {exc}") from exc
    if text.startswith("\ufeff"):
        text = text[1:]
    return SourceFile(path=path, raw=raw, encoding=encoding, text=text)


_HELD_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)


class _SignalsHeld:
    """Hold back the signals that stop a run while a file's bytes are written
    (they are delivered when the write is complete); a no-op where threads
    cannot block signals or off the main thread's platform support."""

    def __enter__(self):
        self.old = None
        if hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread():
            self.old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)
        return False


def _read_all(fd: int) -> bytes:
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    offset = 0
    if not hasattr(os, "pwrite"):  # Windows
        os.lseek(fd, 0, os.SEEK_SET)
    while offset < len(data):
        if hasattr(os, "pwrite"):
            offset += os.pwrite(fd, view[offset:], offset)
        else:
            offset += os.write(fd, view[offset:])


def _reserve(fd: int, size: int, old_size: int) -> None:
    """Make sure the file has room for ``size`` bytes before anything is
    overwritten (a full disk fails here, with the file as it was)."""
    if size <= old_size or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, old_size, size - old_size)
    except OSError as exc:
        os.ftruncate(fd, old_size)
        if exc.errno in (getattr(errno, "EOPNOTSUPP", -1), getattr(errno, "ENOTSUP", -1), errno.EINVAL):
            return  # the file system cannot reserve: the write below reports a full disk
        raise


def _overwrite(fd: int, data: bytes, old: bytes) -> None:
    """Write ``data`` over the whole file ``fd`` (holding ``old``), in place."""
    with _SignalsHeld():
        _reserve(fd, len(data), len(old))
        try:
            _write_all(fd, data)
            os.ftruncate(fd, len(data))
        except OSError:
            # put the old bytes back rather than leave a mix of both
            try:
                _write_all(fd, old)
                os.ftruncate(fd, len(old))
            except OSError:
                pass
            raise
        os.fsync(fd)


def _unchanged_since_read(source: SourceFile, target: str) -> None:
    """Raise :class:`SourceError` when the file no longer holds what was read."""
    try:
        with open(target, "rb") as fh:
            now = fh.read(len(source.raw) + 1)
    except OSError as exc:
        raise SourceError(f"cannot write: {exc.strerror or exc}") from exc
    if now != source.raw:
        raise SourceError("not written: the file changed on disk since it was read")


def write_source(source: SourceFile, new_text: str) -> None:
    """Replace the file of ``source`` with ``new_text`` (BOM-less text).

    Raises :class:`SourceError` and leaves the file untouched when the text
    does not parse, cannot be encoded in the file's encoding, the file is
    read-only (no write bit in its mode), the file changed on disk since it
    was read (a concurrent edit is never overwritten), or the write fails.
    """
    if new_text.startswith("\ufeff"):
        new_text = new_text[1:]
    if not parses(new_text, source.path):
        raise SourceError("refusing to write: the fixed text does not parse")
    try:
        data = source.encode(new_text)
    except UnicodeEncodeError as exc:
        raise SourceError(f"cannot encode the fixed text as {source.encoding}: {exc}") from exc
    write_data(source, data)


def write_data(source: SourceFile, data: bytes) -> None:
    """Replace the file of ``source`` with ``data``, checked by the caller (a notebook's JSON):
    the same in-place write and refusals as :func:`write_source`, without its parse check."""
    target = os.path.realpath(source.path)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError as exc:
        raise SourceError(f"cannot write: {exc.strerror or exc}") from exc
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or (
        hasattr(os, "geteuid") and os.geteuid() != 0 and not os.access(target, os.W_OK)
    ):
        # The mode bits first: as root os.access says every file is writable,
        # and a read-only file is someone's decision to keep it as it is.
        raise SourceError("not written: the file is read-only")
    _unchanged_since_read(source, target)
    try:
        fd = os.open(target, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise SourceError(f"cannot write: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceError("not written: no longer a regular file")
        # the last moment to notice an edit made while the file was fixed:
        # what the open file holds now is what was read
        if _read_all(fd) != source.raw:
            raise SourceError("not written: the file changed on disk since it was read")
        _overwrite(fd, data, source.raw)
    except OSError as exc:
        raise SourceError(f"cannot write: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
