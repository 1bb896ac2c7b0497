"""Apply flake8-device fixes to source text and write files safely.

``apply_fixes`` turns the fix operations carried by diagnostics into edits on
an ast-grep-py syntax tree; ``read_source`` / ``write_source`` read and write
Python files keeping their encoding, BOM, newlines and mode.
"""

from .apply import (
    REASON_COMMENT,
    REASON_DROPPED,
    REASON_GROUP,
    REASON_NEEDS_OTHER,
    REASON_NO_FIX,
    REASON_NOT_PARSE,
    REASON_OVERLAP,
    REASON_UNDEFINED,
    REASON_UNSAFE,
    FilePlan,
    FixResult,
    apply_fixes,
)
from .files import (
    DEFAULT_MAX_FILE_SIZE,
    SourceError,
    SourceFile,
    read_source,
    write_source,
)

__all__ = [
    "DEFAULT_MAX_FILE_SIZE",
    "FilePlan",
    "FixResult",
    "REASON_COMMENT",
    "REASON_DROPPED",
    "REASON_GROUP",
    "REASON_NEEDS_OTHER",
    "REASON_NO_FIX",
    "REASON_NOT_PARSE",
    "REASON_OVERLAP",
    "REASON_UNDEFINED",
    "REASON_UNSAFE",
    "SourceError",
    "SourceFile",
    "apply_fixes",
    "read_source",
    "write_source",
]
