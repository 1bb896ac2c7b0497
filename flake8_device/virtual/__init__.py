"""Virtual accelerator: run accelerator-hardcoded PyTorch code on the CPU and
find every place where real hardware would see two devices.

    from flake8_device.virtual import virtual_device
    with virtual_device("cuda", mode="report") as vd:
        out = model(inputs)
    print(vd.format_summary())

See docs/virtual_device.md for the rules and the design.
"""

from ._core import (
    VirtualDevice,
    is_virtual_active,
    to_real,
    virtual_device,
    virtual_device_of,
)
from ._records import Mismatch, MismatchSummary, VirtualDeviceError, VirtualNumpyError

__all__ = [
    "Mismatch",
    "MismatchSummary",
    "VirtualDevice",
    "VirtualDeviceError",
    "VirtualNumpyError",
    "is_virtual_active",
    "to_real",
    "virtual_device",
    "virtual_device_of",
]
