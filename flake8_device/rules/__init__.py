"""DEV rules, one module per family.  The engine calls the hooks below.

=======  ==========================================================  =================
code     what it finds                                                module
=======  ==========================================================  =================
DEV001   hardcoded accelerator in ``.to(...)``                        placement
DEV002   ``.cuda()`` calls                                            placement
DEV003   hardcoded accelerator in a constructor / CUDA tensor types   constructors
DEV004   accelerator string as default, device-like argument, const   defaults
DEV005   CUDA-only autocast / AMP                                     amp
DEV006   ``torch.load`` without ``map_location``                      amp
DEV007   CUDA runtime calls (streams, events, synchronize, set_device) runtime
DEV008   NCCL hardcoded as the distributed backend                    distributed
DEV009   compiled-extension import with an unreachable fallback       extensions
DEV010   device ids given to DDP / FSDP (raise for a CPU module)      distributed
DEV101   device-less factory immediately moved                        factories
DEV102   device-less factory in device-aware code (default-ignored)  factories
DEV103   legacy typed constructors (``torch.IntTensor``...)           factories
=======  ==========================================================  =================
"""

from __future__ import annotations

import ast

from ..facts import param_defaults
from ..names import DTYPE_METHODS, FACTORIES, LEGACY_CTORS
from . import amp, constructors, defaults, distributed, extensions, factories, placement, runtime

CODES = {
    "DEV001": "hardcoded accelerator device in a placement call",
    "DEV002": ".cuda() call",
    "DEV003": "hardcoded accelerator device in a constructor",
    "DEV004": "accelerator string as a default, device-like argument or constant",
    "DEV005": "CUDA-only autocast/AMP",
    "DEV006": "torch.load without map_location",
    "DEV007": "CUDA runtime call that raises where CUDA is missing",
    "DEV008": "NCCL hardcoded as the distributed backend",
    "DEV009": "compiled-extension import whose PyTorch fallback cannot run",
    "DEV010": "device ids given to DistributedDataParallel/FSDP",
    "DEV101": "device-less tensor factory immediately moved",
    "DEV102": "device-less tensor factory in device-aware code",
    "DEV103": "legacy tensor constructor",
}

# Codes off unless named by their full code in select / extend-select (measured too noisy on
# real code for a default).  ``select = DEV`` does not turn them on, as flake8-bugbear does for B9xx.
DEFAULT_IGNORED = ("DEV102",)


def opted_in(select, extend_select) -> frozenset:
    """The default-off codes that ``select`` / ``extend_select`` (lists of codes or prefixes) name in full."""
    named = {c.strip().upper() for c in [*(select or ()), *(extend_select or ())] if c}
    return frozenset(c for c in DEFAULT_IGNORED if c in named)


_HOST_SINKS = frozenset({"int", "float", "bool", "len"})
_HOST_METHODS = frozenset({"item", "tolist", "numpy"})

# The last part of every callee a rule looks at; a call to anything else is only
# checked for device keyword arguments.
CALL_NAMES = frozenset({
    "to", "cuda", "type", "type_as", "load", "device", "autocast", "GradScaler", "custom_fwd", "custom_bwd",
    *FACTORIES, *LEGACY_CTORS, *DTYPE_METHODS, *_HOST_SINKS, *_HOST_METHODS, *runtime.NAMES, *distributed.NAMES,
})


def _mark_host_consumed(ck, node: ast.Call) -> None:
    """``int(torch.randint(...))``, ``torch.arange(n).tolist()``: the value never meets a device."""
    func = node.func
    inner = None
    if isinstance(func, ast.Name) and func.id in _HOST_SINKS and len(node.args) == 1:
        inner = node.args[0]
    elif isinstance(func, ast.Attribute) and func.attr in _HOST_METHODS:
        inner = func.value
    while isinstance(inner, ast.Call):
        q = ck.resolve(inner.func)
        if q is not None and q.startswith("torch."):
            ck.handled.add(id(inner))
            return
        if not isinstance(inner.func, ast.Attribute):
            return
        inner = inner.func.value


def check_call(ck, node: ast.Call) -> None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ck.call_names:
        if node.keywords:
            constructors.check_device_keyword(ck, node)
            defaults.check_call_keywords(ck, node)
            distributed.check_call(ck, node)
        return
    _mark_host_consumed(ck, node)
    if isinstance(func, ast.Attribute):
        attr = func.attr
        # A chain that starts at a fresh factory is one DEV101/DEV103 diagnostic.
        if factories.check_moved_factory(ck, node):
            return
        if attr == "to":
            placement.check_to(ck, node)
        elif attr == "cuda":
            placement.check_cuda(ck, node)
        elif attr == "type":
            constructors.check_type_call(ck, node)
        elif attr == "record_stream":
            runtime.check_call(ck, node, None)
            return
    qual = ck.resolve(func)
    if qual is not None and qual.startswith("torch.cuda.") and runtime.check_call(ck, node, qual):
        return
    if qual is not None:
        if qual.startswith("torch.cuda.amp.") or qual in ("torch.autocast", "torch.amp.autocast"):
            amp.check_amp_call(ck, node, qual)
        elif qual == "torch.load":
            amp.check_load(ck, node)
        elif qual.startswith("torch.cuda.") and qual.endswith("Tensor"):
            constructors.check_cuda_typed(ck, node, qual)
        elif qual == "torch.device":
            constructors.check_torch_device(ck, node)
        elif qual.startswith("torch."):
            factories.check_factory(ck, node, qual)
    constructors.check_device_keyword(ck, node)
    defaults.check_call_keywords(ck, node)
    distributed.check_call(ck, node)


def check_attribute(ck, node: ast.Attribute) -> None:
    # ``torch.cuda.amp.autocast`` used without a call (decorators, references).
    if node.attr in ("autocast", "GradScaler", "custom_fwd", "custom_bwd"):
        qual = ck.resolve(node)
        if qual and qual.startswith("torch.cuda.amp."):
            amp.check_amp_reference(ck, node, qual)


def check_function_def(ck, node) -> None:
    amp.check_function_def(ck, node)
    defaults.check_defaults(ck, node)
    distributed.check_defaults(ck, node, param_defaults(node))


def check_assign(ck, node) -> None:
    defaults.check_assign(ck, node)
    distributed.check_assign(ck, node)
    constructors.check_cuda_type_value(ck, node)


def check_import(ck, node) -> None:
    amp.check_import(ck, node)


def check_module(ck, tree) -> None:
    """Rules that look at a module's top-level statements as a whole."""
    extensions.check_module(ck, tree)
