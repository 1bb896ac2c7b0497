"""Equivalence harness: fix a vendored model package and prove the fixed code
computes what the original computes, on the CPU, under the virtual accelerator
and (when present) on a real GPU.

    from flake8_device.harness import HarnessConfig, run_harness
    report = run_harness(HarnessConfig(out="out/harness"))
    print(report.ok)

The command ``flake8-device-harness`` wraps :func:`run_harness`; see docs/harness.md.
"""

from .runner import CheckResult, HarnessConfig, HarnessReport, run_harness

__all__ = ["CheckResult", "HarnessConfig", "HarnessReport", "run_harness"]
