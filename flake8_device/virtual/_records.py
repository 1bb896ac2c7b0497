"""Records of device mismatches found while running under a virtual device."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

# Kinds of findings.
MIXED_DEVICES = "mixed-devices"
INDEX_DEVICE = "index-device"
MASK_DEVICE = "mask-device"
VALUE_DEVICE = "value-device"
NUMPY_ON_ACCELERATOR = "numpy-on-accelerator"


class VirtualDeviceError(RuntimeError):
    """Raised in strict mode where real hardware would raise.

    Carries the :class:`Mismatch` record as ``.mismatch``.
    """

    def __init__(self, message: str, mismatch: "Mismatch"):
        super().__init__(message)
        self.mismatch = mismatch


class VirtualNumpyError(VirtualDeviceError, TypeError):
    """``.numpy()`` of an accelerator tensor (PyTorch raises ``TypeError`` there)."""


@dataclass(frozen=True)
class Mismatch:
    """One operation that real hardware would reject."""

    op: str  # e.g. "torch.cat", "Tensor.add", "Tensor.__setitem__"
    devices: Tuple[str, ...]  # the devices involved, first the one the op ran on
    file: str
    line: int
    function: str
    kind: str
    message: str  # what PyTorch would say

    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.op}: {self.message}"


@dataclass(frozen=True)
class MismatchSummary:
    """Mismatches that share op, devices, kind and source line, with their count."""

    op: str
    devices: Tuple[str, ...]
    file: str
    line: int
    function: str
    kind: str
    message: str
    count: int

    def __str__(self) -> str:
        times = f" (x{self.count})" if self.count > 1 else ""
        return f"{self.file}:{self.line}: {self.op}: {self.message}{times}"


def user_frame(start: Optional[object] = None) -> Tuple[str, int, str]:
    """File, line and function of the first frame outside torch and this package."""
    frame = sys._getframe(1) if start is None else start
    while frame is not None:
        filename = frame.f_code.co_filename
        absname = os.path.abspath(filename) if not filename.startswith("<") else filename
        if not (absname.startswith(_TORCH_DIR) or absname.startswith(_PKG_DIR)):
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return "<unknown>", 0, "<unknown>"


def mixed_message(a: str, b: str) -> str:
    return f"Expected all tensors to be on the same device, but found at least two devices, {a} and {b}!"


def numpy_message(dev: str) -> str:
    return (
        f"can't convert {dev} device type tensor to numpy. "
        "Use Tensor.cpu() to copy the tensor to host memory first."
    )


def index_message(dev: str) -> str:
    return f"indices should be either on cpu or on the same device as the indexed tensor ({dev})"


def mask_message(mask_dev: str, self_dev: str) -> str:
    return f"expected self and mask to be on the same device, but got mask on {mask_dev} and self on {self_dev}"
