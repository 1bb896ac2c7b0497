"""Each same-device rule of the virtual device, predicted against the case list."""

import inspect

import numpy as np
import pytest
import torch

from flake8_device.virtual import VirtualDeviceError, virtual_device
from gpu_cases import CASES, ERROR, OK, run_virtual


def _marked_line(fn):
    lines, start = inspect.getsourcelines(fn)
    for i, text in enumerate(lines):
        if "# expect-error" in text:
            return start + i
    return None


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_strict_prediction_matches_expectation(c):
    assert run_virtual(c) == c.expect


@pytest.mark.parametrize("c", [c for c in CASES if c.expect == ERROR], ids=lambda c: c.name)
def test_error_reported_at_the_user_line(c):
    with virtual_device("cuda", mode="report") as vd:
        c.fn("cuda")
    assert len(vd.mismatches) == 1, vd.format_summary()
    rec = vd.mismatches[0]
    assert rec.file == inspect.getsourcefile(c.fn)
    assert rec.line == _marked_line(c.fn)
    assert rec.function == c.name
    assert "cuda:0" in rec.devices


@pytest.mark.parametrize("c", [c for c in CASES if c.expect == ERROR], ids=lambda c: c.name)
def test_strict_error_names_location(c):
    with virtual_device("cuda", mode="strict"):
        with pytest.raises(VirtualDeviceError) as info:
            c.fn("cuda")
    assert f":{_marked_line(c.fn)}]" in str(info.value)
    assert info.value.mismatch.line == _marked_line(c.fn)


@pytest.mark.parametrize("c", [c for c in CASES if c.expect == OK], ids=lambda c: c.name)
def test_allowed_mix_is_not_reported(c):
    with virtual_device("cuda", mode="report") as vd:
        c.fn("cuda")
    assert vd.mismatches == []


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_values_equal_plain_cpu_run(c):
    torch.manual_seed(0)
    with virtual_device("cuda", mode="report"):
        got = c.fn("cuda")
    torch.manual_seed(0)
    want = c.fn("cpu")
    if isinstance(want, torch.Tensor):
        assert torch.equal(got, want)
    elif isinstance(want, np.ndarray):
        assert np.array_equal(got, want)
    else:
        assert got == want


def test_mixed_message_matches_pytorch_wording():
    with virtual_device("cuda"):
        with pytest.raises(RuntimeError, match=r"Expected all tensors to be on the same device, "
                           r"but found at least two devices, cuda:0 and cpu!"):
            torch.ones(2).to("cuda") + torch.ones(2)


def test_numpy_error_is_a_type_error_like_pytorch():
    with virtual_device("cuda"):
        with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
            torch.ones(2).cuda().numpy()


def test_two_virtual_indices_do_not_mix():
    with virtual_device("cuda", mode="report") as vd:
        a = torch.ones(2).to("cuda:0")
        b = torch.ones(2).to("cuda:1")
        a + b
    assert vd.mismatches[0].devices == ("cuda:0", "cuda:1")


def test_summary_deduplicates_a_loop():
    with virtual_device("cuda", mode="report") as vd:
        x = torch.ones(2).cuda()
        for _ in range(5):
            x = x + torch.ones(2)
    assert len(vd.mismatches) == 5
    (row,) = vd.summary()
    assert row.count == 5 and row.op == "Tensor.add"
    assert "(x5)" in vd.format_summary()


# Only a 0-dim CPU tensor may meet an accelerator tensor: a one-element 1-D
# (or 2-D) CPU tensor is rejected by real CUDA like any other CPU tensor.
ONE_ELEMENT_OPS = {
    "add": lambda x, h: x + h,
    "radd": lambda x, h: h + x,
    "mul_": lambda x, h: x.mul_(h),
    "where": lambda x, h: torch.where(x > 0, x, h),
    "maximum": lambda x, h: torch.maximum(x, h),
    "add_kw": lambda x, h: torch.add(x, h, alpha=2),
}


@pytest.mark.parametrize("op", sorted(ONE_ELEMENT_OPS))
@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 1, 1)])
def test_one_element_host_tensor_with_accelerator_tensor_is_reported(op, shape):
    with virtual_device("cuda", mode="report") as vd:
        ONE_ELEMENT_OPS[op](torch.ones(shape[:-1] + (3,)).cuda(), torch.full(shape, 2.0))
    assert len(vd.mismatches) == 1, vd.format_summary()
    assert set(vd.mismatches[0].devices) == {"cuda:0", "cpu"}


@pytest.mark.parametrize("op", sorted(ONE_ELEMENT_OPS))
def test_zero_dim_host_tensor_with_accelerator_tensor_is_allowed(op):
    with virtual_device("cuda", mode="report") as vd:
        ONE_ELEMENT_OPS[op](torch.ones(3).cuda(), torch.tensor(2.0))
    assert vd.mismatches == []


def test_one_element_host_tensor_strict_raises_like_cuda():
    with virtual_device("cuda"):
        with pytest.raises(RuntimeError, match="cuda:0 and cpu"):
            torch.ones(2).cuda() + torch.tensor([1.0])
