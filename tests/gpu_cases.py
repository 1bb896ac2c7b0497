"""Device-mixing cases shared by the virtual-device tests and the GPU differential.

Each case is a function ``case(dev)`` that runs a small snippet with the
accelerator named ``dev`` (``"cuda"``).  ``expect`` says whether real hardware
raises; the line that raises carries the comment ``# expect-error`` so tests
can check the reported line number.

On a CPU-only machine the cases run under ``virtual_device("cuda")``; on a GPU
machine ``tests/test_virtual_gpu_differential.py`` runs them for real and
checks that the virtual device predicted exactly the errors the hardware raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List

import torch

ERROR = "error"
OK = "ok"


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable[[str], object]
    expect: str  # ERROR or OK
    rule: str  # the rule in docs/virtual_device.md the case exercises


CASES: List[Case] = []


def case(expect: str, rule: str):
    def deco(fn):
        CASES.append(Case(fn.__name__, fn, expect, rule))
        return fn

    return deco


def _x(dev):
    return torch.arange(6, dtype=torch.float32, device=dev)


# ----------------------------------------------------------------- errors

@case(ERROR, "R1 elementwise")
def add_host_tensor(dev):
    x = _x(dev)
    h = torch.ones(6)
    return x + h  # expect-error


@case(ERROR, "R1 elementwise")
def compare_host_tensor(dev):
    x = _x(dev)
    h = torch.zeros(6)
    return x > h  # expect-error


@case(ERROR, "R1 elementwise")
def inplace_add_host_tensor(dev):
    x = _x(dev)
    return x.add_(torch.ones(6))  # expect-error


@case(ERROR, "R1 elementwise")
def host_inplace_add_device_tensor(dev):
    h = torch.ones(6)
    return h.mul_(_x(dev))  # expect-error


@case(ERROR, "R2 accelerator 0-dim")
def device_scalar_with_host_tensor(dev):
    h = torch.ones(6)
    s = torch.tensor(2.0, device=dev)
    return h * s  # expect-error


@case(ERROR, "R3 lists")
def cat_host_tensor(dev):
    x = _x(dev)
    h = torch.ones(6)
    return torch.cat([x, h])  # expect-error


@case(ERROR, "R3 lists")
def stack_host_scalar(dev):
    s = torch.tensor(1.0, device=dev)
    return torch.stack([s, torch.tensor(2.0)])  # expect-error


@case(ERROR, "R4 other ops")
def matmul_host_tensor(dev):
    a = torch.ones(2, 3, device=dev)
    b = torch.ones(3, 2)
    return a @ b  # expect-error


@case(ERROR, "R1 elementwise")
def where_host_condition(dev):
    x = _x(dev)
    cond = torch.arange(6) > 2
    return torch.where(cond, x, x * 2)  # expect-error


@case(ERROR, "R4 other ops")
def linear_host_input(dev):
    lin = torch.nn.Linear(6, 2).to(dev)
    return lin(torch.ones(6))  # expect-error


@case(ERROR, "R4 other ops")
def index_select_host_index(dev):
    x = _x(dev)
    return torch.index_select(x, 0, torch.tensor([0, 2]))  # expect-error


@case(ERROR, "R4 other ops")
def gather_host_index(dev):
    x = _x(dev)
    return torch.gather(x, 0, torch.tensor([0, 2]))  # expect-error


@case(ERROR, "R6 index_put values")
def index_put_host_values(dev):
    x = _x(dev)
    idx = torch.tensor([0, 2])
    return x.index_put_((idx,), torch.tensor([9.0, 9.0]))  # expect-error


@case(ERROR, "R6 index_put values")
def setitem_advanced_host_values(dev):
    x = _x(dev)
    idx = torch.tensor([0, 2], device=dev)
    x[idx] = torch.tensor([9.0, 9.0])  # expect-error
    return x


@case(ERROR, "R5 index devices")
def host_tensor_indexed_by_device_index(dev):
    h = torch.ones(6)
    idx = torch.tensor([0, 2], device=dev)
    return h[idx]  # expect-error


@case(ERROR, "R7 masks")
def masked_fill_host_mask(dev):
    x = _x(dev)
    mask = torch.arange(6) > 2
    return x.masked_fill(mask, 0.0)  # expect-error


@case(ERROR, "R9 numpy")
def numpy_of_device_tensor(dev):
    x = _x(dev)
    return x.numpy()  # expect-error


# ----------------------------------------------------------------- allowed

@case(OK, "R2 host 0-dim")
def add_host_scalar_tensor(dev):
    return _x(dev) + torch.tensor(2.0)


@case(OK, "R2 host 0-dim")
def inplace_mul_host_scalar_tensor(dev):
    return _x(dev).mul_(torch.tensor(2.0))


@case(OK, "R2 host 0-dim")
def where_host_scalar_tensor(dev):
    x = _x(dev)
    return torch.where(x > 2, x, torch.tensor(0.0))


@case(OK, "R5 index devices")
def getitem_host_index(dev):
    return _x(dev)[torch.tensor([0, 2])]


@case(OK, "R5 index devices")
def getitem_host_mask(dev):
    return _x(dev)[torch.arange(6) > 2]


@case(OK, "R5 index devices")
def getitem_device_scalar_index_on_host(dev):
    return torch.ones(6)[torch.tensor(1, device=dev)]


@case(OK, "R6 index_put values")
def index_put_host_index_device_values(dev):
    x = _x(dev)
    return x.index_put_((torch.tensor([0, 2]),), torch.tensor([9.0, 9.0], device=dev))


@case(OK, "R6 index_put values")
def setitem_host_mask_python_scalar(dev):
    x = _x(dev)
    x[torch.arange(6) > 2] = 0.0
    return x


@case(OK, "R6 index_put values")
def setitem_device_mask_host_one_element(dev):
    x = _x(dev)
    x[x > 2] = torch.tensor([5.0])
    return x


@case(OK, "R6 index_put values")
def setitem_host_scalar_tensor_value(dev):
    x = _x(dev)
    x[torch.tensor([0, 2], device=dev)] = torch.tensor(5.0)
    return x


@case(OK, "R6 index_put values")
def setitem_host_index_into_host_from_device_index(dev):
    h = torch.ones(6)
    h[torch.tensor([0, 2], device=dev)] = 3.0
    return h


@case(OK, "R8 copies")
def setitem_slice_host_values(dev):
    x = _x(dev)
    x[:2] = torch.ones(2)
    return x


@case(OK, "R8 copies")
def copy_from_host(dev):
    x = _x(dev)
    return x.copy_(torch.ones(6))


@case(OK, "R8 copies")
def conversions_to_host(dev):
    x = _x(dev)
    return x.cpu().numpy().sum() + x.sum().item() + sum(x.tolist())


@case(OK, "R7 masks")
def masked_fill_host_scalar_value(dev):
    x = _x(dev)
    return x.masked_fill(x > 2, torch.tensor(1.0))


@case(OK, "R10 placement")
def placements(dev):
    x = torch.ones(3).to(dev)
    y = torch.zeros(3, device=x.device)
    z = torch.arange(3).to(x.device).to(torch.float32)
    w = torch.ones(3).to(torch.device(dev))
    return x + y + z + w + torch.ones(3).to(x)


@case(OK, "R10 placement")
def module_to_device(dev):
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).to(dev)
    return lin(torch.ones(3).to(dev))


CASES_BY_NAME = {c.name: c for c in CASES}


def run_real(c: Case, dev: str = "cuda") -> str:
    """Run a case on real hardware: ERROR if it raised, else OK."""
    try:
        c.fn(dev)
        if dev != "cpu":
            torch.cuda.synchronize()
    except (RuntimeError, TypeError, IndexError):
        return ERROR
    return OK


def run_virtual(c: Case, dev: str = "cuda") -> str:
    """Predict a case under the strict virtual device: ERROR if it raised a VirtualDeviceError."""
    from flake8_device.virtual import VirtualDeviceError, virtual_device

    with virtual_device(dev, mode="strict"):
        try:
            c.fn(dev)
        except VirtualDeviceError:
            return ERROR
    return OK
