"""Read and write Python source files without losing anything.

Reading keeps the exact text: the encoding comes from PEP 263 (BOM or coding
cookie, else UTF-8), the bytes are decoded without newline translation so
``\\r\\n`` stays ``\\r\\n``, and a BOM is remembered and stripped from the text.
Writing encodes with the same encoding, restores the BOM, refuses a text that
does not parse, and replaces the file atomically (temporary file in the same
directory, then ``os.replace``) keeping its permission bits.
"""

from __future__ import annotations

import codecs
import io
import os
import stat
import tempfile
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


def decode_source(path: str, raw: bytes) -> SourceFile:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
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
    target = os.path.realpath(source.path)
    directory = os.path.dirname(target) or "."
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError as exc:
        raise SourceError(f"cannot write: {exc.strerror or exc}") from exc
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or (
        hasattr(os, "geteuid") and os.geteuid() != 0 and not os.access(target, os.W_OK)
    ):
        # The mode bits first: as root os.access says every file is writable,
        # and a read-only file is someone's decision to keep it as it is.  (The
        # temporary file is moved over the original, which only needs the
        # folder to be writable: without this check it would be replaced.)
        raise SourceError("not written: the file is read-only")
    _unchanged_since_read(source, target)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(
            prefix="." + os.path.basename(target) + ".", suffix=".tmp", dir=directory
        )
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        # the last moment to notice an edit made while the file was fixed
        _unchanged_since_read(source, target)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise SourceError(f"cannot write: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
