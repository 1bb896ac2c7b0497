"""Behaviour of the virtual device as user code sees it."""

import copy

import pytest
import torch
import torch.nn as nn

from flake8_device.virtual import (
    VirtualDeviceError,
    is_virtual_active,
    to_real,
    virtual_device,
    virtual_device_of,
)

CUDA0 = torch.device("cuda", 0)


def test_placements_report_the_accelerator():
    with virtual_device("cuda"):
        a = torch.ones(2).to("cuda")
        b = torch.ones(2).to("cuda:0")
        c = torch.ones(2).to(torch.device("cuda"))
        d = torch.ones(2).cuda()
        e = torch.ones(2).to(a)
        f = torch.zeros(2, device="cuda")
        g = torch.full((2,), 3.0, device=a.device)
        h = torch.arange(2, device=torch.device("cuda"))
        i = torch.tensor([1, 2], device="cuda")
        j = torch.as_tensor([1.0], device="cuda")
        k = torch.empty(2, device=0)
        for t in (a, b, c, d, e, f, g, h, i, j, k):
            assert t.device == CUDA0
            assert t.is_cuda and not t.is_cpu
            assert t.device.type == "cuda"
            assert t.get_device() == 0
            assert virtual_device_of(t) == CUDA0
        host = torch.ones(2)
        assert host.device.type == "cpu" and not host.is_cuda and host.get_device() == -1
        assert (a + 1).device == CUDA0 and a.sum().device == CUDA0
        assert a.new_zeros(3).device == CUDA0 and torch.zeros_like(a).device == CUDA0
        assert a.cpu().device.type == "cpu" and a.to("cpu").device.type == "cpu"
        assert "device='cuda:0'" in repr(a)


def test_placement_copies_like_hardware():
    with virtual_device("cuda"):
        host = torch.zeros(3)
        dev = host.to("cuda")
        dev.add_(1)
        assert host.device.type == "cpu" and torch.equal(host, torch.zeros(3))
        back = dev.cpu()
        back.add_(1)
        assert torch.equal(dev.cpu(), torch.ones(3)) and dev.device == CUDA0
        same = dev.to("cuda")
        assert same is dev  # no copy when already there, like PyTorch
        assert torch.as_tensor(host, device="cuda") is not host


def test_typed_constructors_and_type_strings():
    with virtual_device("cuda"):
        t = torch.cuda.FloatTensor([1, 2])
        assert t.device == CUDA0 and t.dtype == torch.float32
        assert isinstance(t, torch.cuda.FloatTensor)
        assert not isinstance(torch.ones(1), torch.cuda.FloatTensor)
        u = torch.ones(2, dtype=torch.int64).type(torch.cuda.FloatTensor)
        assert u.device == CUDA0 and u.dtype == torch.float32
        v = torch.ones(2).type("torch.cuda.LongTensor")
        assert v.device == CUDA0 and v.dtype == torch.int64
        assert v.type() == "torch.cuda.LongTensor"
        assert v.type(torch.float64).device == CUDA0
        assert v.type("torch.FloatTensor").device.type == "cpu"
        assert torch.cuda.LongTensor([1]).type() == "torch.cuda.LongTensor"


def test_cuda_namespace_inside_and_restored_after():
    before = (torch.cuda.is_available, torch.cuda.FloatTensor, torch.cuda.synchronize,
              torch.nn.Parameter.__dict__["__new__"], torch.cuda.current_device)
    real_available = torch.cuda.is_available()
    with virtual_device("cuda"):
        assert torch.cuda.is_available() is True
        assert torch.cuda.device_count() >= 1 and torch.cuda.current_device() == 0
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        assert is_virtual_active()
    after = (torch.cuda.is_available, torch.cuda.FloatTensor, torch.cuda.synchronize,
             torch.nn.Parameter.__dict__["__new__"], torch.cuda.current_device)
    assert before == after
    assert torch.cuda.is_available() == real_available
    assert not is_virtual_active()
    assert not torch._C._is_torch_function_mode_enabled()
    with virtual_device("cuda", report_available=False):
        assert torch.cuda.is_available() == real_available


def test_restored_after_exception():
    before = torch.cuda.is_available
    with pytest.raises(VirtualDeviceError):
        with virtual_device("cuda"):
            torch.ones(2).cuda() + torch.ones(2)
    assert torch.cuda.is_available is before
    assert not torch._C._is_torch_function_mode_enabled()
    with pytest.raises(KeyError):
        with virtual_device("cuda"):
            raise KeyError("user error passes through")
    assert not is_virtual_active()


def test_nesting_raises_and_reentry_keeps_placements():
    vd = virtual_device("cuda", mode="report")
    with vd:
        with pytest.raises(RuntimeError, match="already active"):
            with virtual_device("cuda"):
                pass
        assert torch.ones(1).cuda().is_cuda  # the outer context still works
        model = nn.Linear(2, 2).to("cuda")
    assert model.weight.device.type == "cpu"  # ordinary tensors outside
    with vd:
        assert model.weight.device == CUDA0
        model(torch.ones(2).cuda())
    assert vd.mismatches == []


def test_bad_arguments():
    with pytest.raises(ValueError):
        virtual_device("cpu")
    with pytest.raises(ValueError):
        virtual_device("cuda", mode="loud")


def test_module_to_moves_parameters_buffers_and_grads():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with virtual_device("cuda"):
        model.to("cuda")
        for p in model.parameters():
            assert p.device == CUDA0 and isinstance(p, nn.Parameter)
        for b in model.buffers():
            assert b.device == CUDA0
        model.cpu()
        assert all(p.device.type == "cpu" for p in model.parameters())
        model.cuda()
        assert all(p.device == CUDA0 for p in model.parameters())
        lin = nn.Linear(2, 3, device="cuda")
        assert lin.weight.device == CUDA0
        par = nn.Parameter(torch.zeros(2).to("cuda"))
        assert par.device == CUDA0
        out = model(torch.rand(1, 3, 5, 5).cuda()).sum()
        out.backward()
        for p in model.parameters():
            assert p.grad is not None and p.grad.device == CUDA0


class _ConvTransformer(nn.Module):
    """Small model whose code hardcodes the accelerator, as real models do."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = x.to("cuda")
        f = self.conv(x).flatten(2).transpose(1, 2)
        pos = torch.arange(f.shape[1]).to("cuda").float()[None, :, None] / 100
        f = self.enc(f + pos)
        logits = self.head(f).mean(1)
        keep = (logits.sigmoid() > 0.5).to("cuda")
        return logits * keep + torch.ones(logits.shape[0], 5).to("cuda") * -1e4 * (~keep)


def _run_model(virtual, grad_mode=True):
    torch.manual_seed(0)
    model = _ConvTransformer()
    x = torch.rand(2, 3, 6, 6, requires_grad=True)
    if virtual:
        with virtual_device("cuda") as vd:
            model.to("cuda")
            with torch.set_grad_enabled(grad_mode):
                out = model(x)
                assert out.device == CUDA0
                if grad_mode:
                    out.pow(2).sum().backward()
        assert vd.mismatches == []
    else:
        # the same code on a host-only run: the literal placements become CPU
        with torch.set_grad_enabled(grad_mode):
            out = _host_forward(model, x)
            if grad_mode:
                out.pow(2).sum().backward()
    grads = [p.grad for p in model.parameters()] if grad_mode else []
    return out, x.grad, grads


def _host_forward(model, x):
    f = model.conv(x).flatten(2).transpose(1, 2)
    pos = torch.arange(f.shape[1]).float()[None, :, None] / 100
    f = model.enc(f + pos)
    logits = model.head(f).mean(1)
    keep = logits.sigmoid() > 0.5
    return logits * keep + torch.ones(logits.shape[0], 5) * -1e4 * (~keep)


def test_model_forward_backward_bitwise_equal_to_cpu():
    out_v, xg_v, grads_v = _run_model(True)
    out_c, xg_c, grads_c = _run_model(False)
    assert out_v.device.type == "cpu"
    assert torch.equal(out_v, out_c)
    assert torch.equal(xg_v, xg_c)  # leaf .grad readable and identical
    for a, b in zip(grads_v, grads_c):
        assert torch.equal(a, b)


def test_model_under_no_grad():
    out_v, _, _ = _run_model(True, grad_mode=False)
    out_c, _, _ = _run_model(False, grad_mode=False)
    assert not out_v.requires_grad
    assert torch.equal(out_v, out_c)


def test_autograd_grad_and_leaf_grad_devices():
    with virtual_device("cuda"):
        w = torch.ones(3, requires_grad=True)
        wd = w.to("cuda")
        (g,) = torch.autograd.grad((wd * 2).sum(), [wd])
        assert g.device == CUDA0
        (wd * 3).sum().backward()
        assert w.grad.device.type == "cpu"  # the host leaf gets a host grad
        assert torch.equal(w.grad, torch.full((3,), 3.0))


def test_autocast_does_not_crash_and_keeps_cpu_numerics():
    torch.manual_seed(0)
    lin = nn.Linear(4, 4)
    x = torch.rand(2, 4)
    want = lin(x)
    with virtual_device("cuda"):
        lin.to("cuda")
        with torch.autocast("cuda"):
            got = lin(x.cuda())
        with torch.cuda.amp.autocast(enabled=True):
            got2 = lin(x.cuda())
        with torch.autocast("cuda", enabled=False):
            got3 = lin(x.cuda())
    for g in (got, got2, got3):
        assert g.dtype == torch.float32 and torch.equal(g, want)


def test_to_real_and_outputs_after_exit():
    with virtual_device("cuda") as vd:
        out = {"a": [torch.ones(2).cuda()], "b": (torch.zeros(1).cuda(),)}
    assert out["a"][0].device.type == "cpu"
    assert virtual_device_of(out["a"][0]) == CUDA0  # remembered after exit
    assert vd.device_of(out["a"][0]) == CUDA0
    assert to_real(out) is out
    assert virtual_device_of(out["a"][0]).type == "cpu"
    assert virtual_device_of(out["b"][0]).type == "cpu"
    clone = copy.deepcopy(out)
    assert torch.equal(clone["a"][0], torch.ones(2))


def test_numpy_reported_in_report_mode_and_still_returns():
    with virtual_device("cuda", mode="report") as vd:
        arr = torch.ones(2).cuda().numpy()
        import numpy as np
        arr2 = np.asarray(torch.ones(2).cuda())
    assert arr.tolist() == [1.0, 1.0] and arr2.tolist() == [1.0, 1.0]
    assert [m.kind for m in vd.mismatches] == ["numpy-on-accelerator"] * 2


def test_report_records_have_fields():
    with virtual_device("cuda", mode="report") as vd:
        torch.cat([torch.ones(1).cuda(), torch.ones(1)]); line = __import__("inspect").currentframe().f_lineno  # noqa: E702
    (rec,) = vd.mismatches
    assert rec.op == "torch.cat" and rec.devices == ("cuda:0", "cpu")
    assert rec.file == __file__ and rec.line == line
    assert rec.function == "test_report_records_have_fields"
    assert rec.kind == "mixed-devices"
    assert str(rec).startswith(f"{__file__}:{line}: torch.cat: Expected all tensors")


def test_ops_that_follow_self_do_not_check_other_devices():
    with virtual_device("cuda") as vd:
        x = torch.ones(3).cuda()
        assert x.new_zeros(2).device == CUDA0
        assert x.new_full((2,), 1.0, device="cpu").device.type == "cpu"
        assert x.new_tensor([1.0, 2.0]).device == CUDA0
        assert torch.ones(3).view_as(x).device.type == "cpu"  # view_as reads only the shape
        moved = torch.ones(3, dtype=torch.int64).type_as(x)  # type_as moves to other's device
        assert moved.device == CUDA0 and moved.dtype == torch.float32
    assert vd.mismatches == []
