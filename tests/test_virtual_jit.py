"""TorchScript functions and methods under the virtual device: their ops run in
C++, outside ``__torch_function__``; their results must carry the operands' device
and mixed operands must be reported like any other op."""

import pytest
import torch

from flake8_device.virtual import VirtualDeviceError, virtual_device

CUDA0 = torch.device("cuda", 0)


@torch.jit.script
def _scripted(a, b):
    return a * b + 1


def _pair(a, b):
    return a + b, a * b


_traced = torch.jit.trace(_pair, (torch.ones(3), torch.ones(3)))


class _Mod(torch.nn.Module):
    def forward(self, x):
        return x * 2


_scripted_module = torch.jit.script(_Mod())


def test_scripted_function_result_takes_operand_device():
    with virtual_device("cuda", mode="strict"):
        x = torch.ones(3).to("cuda")
        y = _scripted(x, x)
        assert y.device == CUDA0
        z = y + x  # a false mismatch before script results were marked
        assert z.device == CUDA0
    assert torch.equal(z, torch.full((3,), 3.0))


def test_traced_function_tuple_outputs_marked():
    with virtual_device("cuda", mode="strict"):
        x = torch.arange(3.0).to("cuda")
        s, p = _traced(x, x)
        assert s.device == CUDA0 and p.device == CUDA0
        assert (s + p + x).device == CUDA0


def test_scripted_module_method_marked():
    with virtual_device("cuda", mode="strict"):
        x = torch.ones(2).cuda()
        y = _scripted_module(x)
        assert y.device == CUDA0
        assert (y - x).device == CUDA0


def test_cpu_operands_stay_on_cpu():
    with virtual_device("cuda", mode="strict"):
        x = torch.ones(3)
        y = _scripted(x, x)
        assert y.device.type == "cpu"
        assert (y + x).device.type == "cpu"


def test_mixed_operands_of_a_script_function_are_reported():
    with virtual_device("cuda", mode="report") as vd:
        x = torch.ones(3).to("cuda")
        h = torch.ones(3)
        _scripted(x, h)
    assert len(vd.mismatches) == 1
    m = vd.mismatches[0]
    assert m.kind == "mixed-devices" and m.file == __file__
    with pytest.raises(VirtualDeviceError):
        with virtual_device("cuda", mode="strict"):
            _scripted(torch.ones(3).to("cuda"), torch.ones(3))


def test_patch_removed_on_exit():
    before = torch._C.ScriptFunction.__dict__["__call__"]
    with virtual_device("cuda"):
        assert torch._C.ScriptFunction.__dict__["__call__"] is not before
    assert torch._C.ScriptFunction.__dict__["__call__"] is before
    y = _scripted(torch.ones(2), torch.ones(2))
    assert not hasattr(y, "_fdv_mark")
