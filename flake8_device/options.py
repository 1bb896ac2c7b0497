"""Options shared by the flake8 plugin and the ``flake8-device`` command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, Optional

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

    def is_flagged_device_type(self, name: str) -> bool:
        return name in self.accelerators or name in self.extra_flagged
