"""DEV011: ``torch.cuda.current_device()`` passed as a device under a device-like keyword.

``torch.cuda.current_device()`` is the index of the current CUDA device; it raises where CUDA is
missing.  Reported where a call passes it (through any alias: ``from torch.cuda import
current_device as cur``) as ``device=``, ``map_location=`` or any other device-like keyword
(``eval_device=``, ``output_device=``, ``*_device``...).  The device arguments of torch's data-parallel
wrappers are left to DEV010 (``DistributedDataParallel`` wants ``None``, not ``"cpu"``, for a CPU
module: its ``output_device="cpu"`` raises).

Fix: ``<the call> if torch.cuda.is_available() else "cpu"``: the same index wherever CUDA is
available, the CPU elsewhere.  None for ``map_location=``: ``torch.load`` takes a device, a string,
a dict or a callable, and calls an int, which fails on every machine (a bug a fix should not keep).  Safe where the callee is PyTorch's (``torch.zeros``, ``torch.load``,
``.to(...)``), which takes a device string wherever it takes an index; unsafe for any other
callee, which may use the value as an index (``f"cuda:{eval_device}"``).
"""

from __future__ import annotations

import ast

from ..diagnostics import Fix, ReplaceNode, Span
from ..names import AVAILABILITY_EXPR
from .common import is_device_like_name
from .registry import rule

DEV011 = rule(
    "DEV011",
    summary="torch.cuda.current_device() passed as a device",
    finds="`torch.cuda.current_device()` passed as `device=`, `map_location=` or another device-like keyword",
    fix_safety="safe for PyTorch's callees, unsafe for others",
    message="torch.cuda.current_device() passed as map_location= raises where CUDA is missing; pass the "
            "device of the model or the data, or check availability",
    # a statement DEV007 guards as a whole is DEV007's; the call this rule reports is claimed, so
    # DEV007 does not report it too
    yields_to=("DEV007",),
)

_WRAPPERS = ("DataParallel", "FullyShardedDataParallel", "DDP", "FSDP")
# torch.load calls a map_location that is not a device, a string or a dict: an int fails everywhere
_MAP_LOCATION = ("torch.load calls an int map_location as a function, which fails on every machine; "
                 'write f"cuda:{torch.cuda.current_device()}" where CUDA is available, else "cpu", by hand')


def _is_current_device(ck, value: ast.AST) -> bool:
    return isinstance(value, ast.Call) and not value.args and not value.keywords \
        and ck.resolve(value.func) == "torch.cuda.current_device"


def _torch_callee(ck, node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "to":
        return True
    qual = ck.resolve(func)
    return qual is not None and qual.startswith("torch.")


@DEV011.on("call.keywords", skip_guarded=True)
def check_call(ck, node: ast.Call) -> None:
    for k in node.keywords:
        value = k.value
        if value.__class__ is not ast.Call or k.arg is None or not (k.arg == "device" or is_device_like_name(k.arg)):
            continue
        if not _is_current_device(ck, value) or ck.claimed(value):
            continue
        qual = ck.resolve(node.func) or ""
        if qual.startswith("torch.") and qual.endswith(_WRAPPERS):
            return
        ck.claim(value, value.func)
        fix = why = None
        if k.arg == "map_location":
            why = _MAP_LOCATION
        elif ck.fixes:
            avail = AVAILABILITY_EXPR["cuda"].format(torch=ck.torch_name() or "torch")
            safe = _torch_callee(ck, node)
            desc = "the same CUDA device index where CUDA is available, else the CPU"
            desc += ("; PyTorch takes a device string wherever it takes an index" if safe else
                     f"; unsafe: the callee may use {k.arg} as an index, which \"cpu\" is not")
            fix = Fix((ReplaceNode(Span.of(value), f'{ck.src(value)} if {avail} else "cpu"'),), safe, desc)
        ck.report("DEV011", value, f"{ck.src(value)} passed as {k.arg}= raises where CUDA is missing; pass the "
                                   "device of the model or the data, or check availability", fix, why)
