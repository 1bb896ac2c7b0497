"""flake8-device: find and fix hardcoded accelerator devices in PyTorch code."""

__version__ = "0.1.0"

__all__ = ["__version__", "check_source"]


def check_source(*args, **kwargs):
    """Run every DEV rule on a source string; see :func:`flake8_device.engine.check_source`."""
    from .engine import check_source as _check

    return _check(*args, **kwargs)
