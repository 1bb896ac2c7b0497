"""DEV008: NCCL hardcoded as the ``torch.distributed`` backend; DEV010: accelerator device ids given to
``DistributedDataParallel`` / ``FullyShardedDataParallel`` (see :func:`check_device_ids`).

NCCL runs only on NVIDIA GPUs: ``init_process_group("nccl", ...)`` fails on a machine
without CUDA ("ProcessGroupNCCL is only supported with GPUs, no GPUs found!", or
"Distributed package doesn't have NCCL built in" on a CPU-only build).  Reported where
the string ``"nccl"`` (or ``torch.distributed.Backend.NCCL``) is given as a backend:

* the first argument or ``backend=`` of ``init_process_group`` / ``new_group``;
* any keyword argument whose name mentions ``backend`` (``dist_backend="nccl"``);
* an assignment to a name or attribute that mentions ``backend``
  (``dist_backend = 'nccl'``, ``cfg.DIST_BACKEND = "nccl"``);
* the default of a parameter that mentions ``backend``;
* ``parser.add_argument("--dist-backend", default="nccl")``.

Not reported: comparisons, ``choices=[...]``, guarded code, functions named for NCCL
(``_test_nccl_worker``) and ``Literal["NCCL"]`` parameters.

Fix (safe): ``"nccl" if torch.cuda.is_available() else "gloo"``, the default backend
for the device in use (``torch.distributed`` itself maps ``cpu`` to gloo and ``cuda`` to
nccl); unchanged wherever CUDA is present.
"""

from __future__ import annotations

import ast
from typing import Optional

from ..diagnostics import Fix, ReplaceNode, Span
from ..facts import param_defaults
from .common import kw
from .registry import rule

DEV008 = rule(
    "DEV008",
    summary="NCCL hardcoded as the distributed backend",
    finds='`"nccl"` hardcoded as the `torch.distributed` backend',
    fix_safety="safe",
    message="NCCL hardcoded as the distributed backend (init_process_group()) fails where CUDA is missing; "
            "use the default backend for the device in use",
)
DEV010 = rule(
    "DEV010",
    summary="device ids given to DistributedDataParallel/FSDP",
    finds="device ids given to `DistributedDataParallel` / `FullyShardedDataParallel`",
    fix_safety="safe (DDP); none for FSDP",
    message="device_ids= given to DistributedDataParallel raises where CUDA is missing (the module is on the "
            "CPU there); pass None without CUDA",
    # a device literal given as FSDP's device_id= is DEV004's; a statement DEV007 guards is DEV007's
    yields_to=("DEV004", "DEV007"),
)

_GROUP_CALLS = frozenset({"init_process_group", "new_group", "new_subgroups", "new_subgroups_by_enumeration"})
# DEV010: the wrappers whose device ids raise for a CPU module (``DataParallel`` does not: without CUDA it
# calls the module directly)
_WRAPPERS = {"DistributedDataParallel": "device_ids", "FullyShardedDataParallel": "device_id"}
NAMES = frozenset({*_GROUP_CALLS, "add_argument", *_WRAPPERS, "DDP", "FSDP"})


def _is_nccl(ck, node: Optional[ast.AST]) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.strip().lower() == "nccl"
    if isinstance(node, ast.Attribute) and node.attr == "NCCL":
        q = ck.resolve(node) or ""
        return q.startswith("torch.distributed") or q == ""
    return False


def _mentions_backend(name: Optional[str]) -> bool:
    return bool(name) and "backend" in name.lower()


def _report(ck, node: ast.AST, where: str) -> None:
    ck.claim(node)
    if ck.guarded or any("nccl" in getattr(f.node, "name", "").lower() for f in ck.func_stack):
        return  # guarded, or inside a function about NCCL itself (``_test_nccl_worker``)
    fix = None
    if ck.fixes:
        torch = ck.torch_name() or "torch"
        fix = Fix((ReplaceNode(Span.of(node), f'{ck.src(node)} if {torch}.cuda.is_available() else "gloo"'),),
                  True, "NCCL where CUDA is available, else gloo (the default backend for the CPU)")
    ck.report("DEV008", node, f"NCCL hardcoded as the distributed backend ({where}) fails where CUDA is missing; "
                              "use the default backend for the device in use", fix, None)


def _wrapper(ck, node: ast.Call) -> Optional[str]:
    q = ck.resolve(node.func) or ""
    short = q.rsplit(".", 1)[-1]
    return short if q.startswith("torch.") and short in _WRAPPERS else None


@DEV010.on("call.keywords")
def check_device_ids(ck, node: ast.Call) -> None:
    """DEV010: ``DistributedDataParallel(m, device_ids=[rank])`` / ``FullyShardedDataParallel(m, device_id=rank)``.

    Where CUDA is missing the module is on the CPU and DDP raises ``ValueError`` ("device_ids and
    output_device arguments only work with single-device/multiple-device GPU modules or CPU modules, but got
    device_ids [0], output_device None, and module parameters {device(type='cpu')}"); FSDP raises
    ``RuntimeError`` without an accelerator whatever ``device_id`` is (torch 2.14), so it gets no fix.  ``output_device`` alone is ignored for a CPU module.
    """
    short = _wrapper(ck, node)
    if short is None:
        return
    key = _WRAPPERS[short]
    k = kw(node, key)
    value = k.value if k is not None else None
    if value is None and short == "DistributedDataParallel" and len(node.args) >= 2 \
            and not any(isinstance(a, ast.Starred) for a in node.args[:2]):
        value = node.args[1]
    if value is None or ck.claimed(value):
        return
    ck.claim(value)
    if (isinstance(value, ast.Constant) and value.value is None) or isinstance(value, ast.IfExp):
        return  # None, or already chosen by a condition
    if ck.guarded or any("cuda" in getattr(f.node, "name", "").lower() for f in ck.func_stack):
        return
    fix, why = None, None
    if short == "FullyShardedDataParallel":
        why = "FSDP needs an accelerator in this torch whatever device_id says: no rewrite of the id runs it on the CPU"
    elif ck.fixes:
        torch = ck.torch_name() or "torch"
        fix = Fix((ReplaceNode(Span.of(value), f"{ck.src(value)} if {torch}.cuda.is_available() else None"),),
                  True, f"the same {key} where CUDA is available, else None (what a CPU module requires)",
                  needs=("torch",))
    if short == "FullyShardedDataParallel":
        message = f"{key}= given to {short}: FSDP raises where no accelerator exists (the module is on the CPU there)"
    else:
        message = (f"{key}= given to {short} raises where CUDA is missing (the module is on the CPU there); "
                   "pass None without CUDA")
    ck.report("DEV010", value, message, fix, why)


@DEV008.on("call.keywords")
def check_call(ck, node: ast.Call) -> None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in _GROUP_CALLS and node.args and _is_nccl(ck, node.args[0]) and not ck.claimed(node.args[0]):
        _report(ck, node.args[0], f"{name}()")
    if name == "add_argument" and any(
        isinstance(a, ast.Constant) and isinstance(a.value, str) and _mentions_backend(a.value) for a in node.args
    ):
        for k in node.keywords:
            if k.arg == "default" and _is_nccl(ck, k.value) and not ck.claimed(k.value):
                _report(ck, k.value, "argparse default")
    for k in node.keywords:
        if _mentions_backend(k.arg) and _is_nccl(ck, k.value) and not ck.claimed(k.value):
            _report(ck, k.value, f"{k.arg}=")


@DEV008.on("assign")
def check_assign(ck, node) -> None:
    if node.value is None or not _is_nccl(ck, node.value) or ck.claimed(node.value):
        return
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for t in targets:
        name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
        if _mentions_backend(name):
            _report(ck, node.value, f"assigned to {ck.src(t)}")
            return


@DEV008.on("function_def")
def check_defaults(ck, fn) -> None:
    for param, default in param_defaults(fn):
        ann = param.annotation
        if isinstance(ann, ast.Subscript) and getattr(ann.value, "id", getattr(ann.value, "attr", "")) == "Literal":
            continue  # ``backend: Literal["NCCL"] = "NCCL"``: the parameter admits nothing else
        if _mentions_backend(param.arg) and _is_nccl(ck, default) and not ck.claimed(default):
            _report(ck, default, f"default of parameter '{param.arg}'")
