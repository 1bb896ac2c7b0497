"""Differential check: the virtual device's predictions against real hardware.

As a test it needs CUDA and skips without it.  As a script it prints one row
per case (case, predicted, real, agree) so the table can be committed:

    python tests/test_virtual_gpu_differential.py            # needs a GPU for "real"
    python tests/test_virtual_gpu_differential.py --virtual  # predictions only
"""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpu_cases import CASES, run_real, run_virtual  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_prediction_matches_hardware(c):
    assert run_virtual(c) == run_real(c), c.name


def table(real: bool = True):
    rows = []
    for c in CASES:
        predicted = run_virtual(c)
        actual = run_real(c) if real else "-"
        agree = "-" if not real else ("yes" if actual == predicted else "NO")
        rows.append((c.name, predicted, actual, agree))
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    real = torch.cuda.is_available() and "--virtual" not in argv
    rows = table(real)
    width = max(len(r[0]) for r in rows)
    print(f"torch {torch.__version__}; device: "
          f"{torch.cuda.get_device_name(0) if real else 'none (predictions only)'}")
    print(f"{'case':<{width}}  predicted  real   agree")
    for name, pred, act, agree in rows:
        print(f"{name:<{width}}  {pred:<9}  {act:<5}  {agree}")
    if real:
        bad = sum(1 for r in rows if r[3] != "yes")
        print(f"{len(rows) - bad}/{len(rows)} agree")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
