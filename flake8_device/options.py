"""Options shared by the flake8 plugin and the ``flake8-device`` command."""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import FrozenSet, Optional, Tuple

# Device types that are accelerators: placing a tensor on one of these by a
# string literal ties the code to that hardware.
DEFAULT_ACCELERATORS: FrozenSet[str] = frozenset(
    {"cuda", "mps", "xpu", "npu", "hpu", "xla", "mtia", "ipu", "privateuseone", "mlu", "musa"}
)


@dataclass(frozen=True)
class Options:
    # Device type names treated as hardcoded accelerators.
    accelerators: FrozenSet[str] = DEFAULT_ACCELERATORS
    # Device names that are also flagged when hardcoded (e.g. {"cpu"}); empty by default.
    extra_flagged: FrozenSet[str] = field(default_factory=frozenset)
    # A device expression that every fix uses first (``--device-expr``).
    device_expr: Optional[str] = None
    # The oldest torch the fixed code must run on (``--torch-version 2.6``); None: any.
    torch_version: Optional[Tuple[int, int]] = None

    @property
    def accelerator_api(self) -> bool:
        """Whether fixes may spell the device with ``torch.accelerator`` (torch 2.6 or later)."""
        return self.torch_version is not None and self.torch_version >= ACCELERATOR_API_VERSION

    def is_flagged_device_type(self, name: str) -> bool:
        return name in self.accelerators or name in self.extra_flagged


# The first torch whose ``torch.accelerator`` has ``is_available()`` and ``current_accelerator()``.
ACCELERATOR_API_VERSION: Tuple[int, int] = (2, 6)


def parse_torch_version(text: str) -> Tuple[int, int]:
    """``"2.6"`` -> ``(2, 6)``; a third part (``2.6.0``) is taken and dropped.  ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.\d+)?\s*", text or "")
    if match is None:
        raise ValueError(f"torch version {text!r} is not MAJOR.MINOR (e.g. 2.6)")
    return int(match.group(1)), int(match.group(2))
