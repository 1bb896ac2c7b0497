"""The virtual accelerator: a ``TorchFunctionMode`` that computes on the CPU while
every tensor carries the device it would have had on real hardware.

How it works
------------
* Each tensor placed on the virtual accelerator gets a small attribute
  (``_fdv_mark``) holding ``(owner, device)``; ``owner`` identifies the
  :class:`VirtualDevice` that placed it, so marks from another (or an earlier,
  different) virtual device are ignored.  Unmarked tensors are on their real
  device (the CPU).
* The mode sees every call of the torch Python API (functions, ``Tensor``
  methods, property getters such as ``Tensor.device``) made by user code.
  Placement calls (``.to``, ``.cuda``, ``device=`` keywords...) are rewritten to
  stay on the CPU and the result is marked; every other call is checked against
  PyTorch's same-device rules before it runs, and its outputs are marked with
  the device the op would have produced.
* Inside a torch call the mode is switched off (PyTorch pops the mode while
  its handler runs), so library internals run at full speed and unobserved.
* A few ``torch.cuda`` functions and the typed ``torch.cuda.*Tensor``
  constructors are replaced while the context is active and restored on exit.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.overrides import TorchFunctionMode

from . import _records as R
from ._records import Mismatch, MismatchSummary, VirtualDeviceError, VirtualNumpyError

MARK = "_fdv_mark"
_CPU = torch.device("cpu")
_Tensor = torch.Tensor
_TB = torch._C.TensorBase

_state = threading.local()
_LOCK = threading.Lock()
_ACTIVE: List["VirtualDevice"] = []  # process-wide: patches are process-wide


def _active() -> Optional["VirtualDevice"]:
    return _ACTIVE[-1] if _ACTIVE else None


# --------------------------------------------------------------------------
# Function tables
# --------------------------------------------------------------------------

def _getter(name: str):
    return getattr(_Tensor, name).__get__


# Calls that can never mix devices and return no tensor: run as they are.
_PASSTHROUGH = set()
for _name in (
    "shape", "dtype", "ndim", "requires_grad", "is_leaf", "grad_fn", "layout",
    "is_sparse", "is_quantized", "is_meta", "names", "output_nr", "_version",
    "is_nested", "itemsize", "nbytes", "_base",
):
    try:
        _PASSTHROUGH.add(_getter(_name))
    except AttributeError:  # pragma: no cover - older torch
        pass
for _f in (
    _Tensor.size, _Tensor.dim, _Tensor.numel, _Tensor.nelement, _Tensor.stride,
    _Tensor.is_contiguous, _Tensor.element_size, _Tensor.data_ptr,
    _Tensor.storage_offset, _Tensor.__len__, _Tensor.__hash__, _Tensor.item,
    _Tensor.tolist, _Tensor.__bool__, _Tensor.__int__, _Tensor.__float__,
    _Tensor.__index__, _Tensor.is_floating_point, _Tensor.is_complex,
    _Tensor.register_hook, _Tensor.retain_grad, _Tensor.requires_grad_,
    torch.device, torch.is_tensor, torch.is_floating_point, torch.numel,
    torch.is_grad_enabled, _Tensor.__format__, torch._has_compatible_shallow_copy_type,
    torch.is_same_size, _Tensor.dim_order if hasattr(_Tensor, "dim_order") else _Tensor.dim,
):
    _PASSTHROUGH.add(_f)

# Factories: the result lives on `device=` (or the CPU), whatever tensors appear
# among their arguments (``torch.tensor([t0, t1])`` reads values).
_FACTORIES = {
    torch.tensor, torch.zeros, torch.ones, torch.empty, torch.full, torch.arange,
    torch.linspace, torch.logspace, torch.eye, torch.rand, torch.randn,
    torch.randint, torch.randperm, torch.empty_strided, torch.scalar_tensor,
    torch.tril_indices, torch.triu_indices, torch.asarray,
}
for _n in ("range", "hann_window", "hamming_window", "bartlett_window",
           "blackman_window", "kaiser_window"):
    if hasattr(torch, _n):
        _FACTORIES.add(getattr(torch, _n))

# Ops that take a list of tensors and reject 0-dim CPU operands like any other.
_LIST_OPS = set()
for _n in ("cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack",
           "column_stack", "row_stack", "block_diag", "cartesian_prod",
           "broadcast_tensors", "meshgrid", "atleast_1d"):
    if hasattr(torch, _n):
        _LIST_OPS.add(getattr(torch, _n))


def _op_name(func: Any) -> str:
    qual = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    if "getset_descriptor" in repr(func):
        return "Tensor." + getattr(getattr(func, "__self__", None), "__name__", "?")
    mod = getattr(func, "__module__", None)
    if qual.startswith("TensorBase.") or qual.startswith("_TensorBase."):
        return "Tensor." + qual.split(".", 1)[1]
    if qual.startswith("Tensor."):
        return qual
    if qual.startswith("_VariableFunctionsClass."):
        return "torch." + qual.split(".", 1)[1]
    if mod in (None, "torch._C._VariableFunctions", "torch._C._nn", "torch._C"):
        mod = "torch"
    if mod == "torch.nn.functional" or getattr(torch.nn.functional, qual, None) is func:
        return "torch.nn.functional." + qual
    if mod.startswith("torch._C"):
        mod = "torch"
    return f"{mod}.{qual}"


def _collect(args: Sequence[Any], kwargs: Dict[str, Any]) -> List[Any]:
    """Tensors among the arguments, one level into lists and tuples."""
    found: List[Any] = []
    for values in (args, kwargs.values() if kwargs else ()):
        for a in values:
            if isinstance(a, _TB):
                found.append(a)
            elif type(a) in (list, tuple):
                found.extend(b for b in a if isinstance(b, _TB))
    return found


def _outputs(out: Any) -> List[Any]:
    if isinstance(out, _TB):
        return [out]
    if isinstance(out, (list, tuple)):
        return [o for o in out if isinstance(o, _TB)]
    return []


def _has_advanced_index(index: Any) -> bool:
    items = index if type(index) is tuple else (index,)
    for it in items:
        if isinstance(it, _TB):
            return True
        if isinstance(it, (list, tuple)):
            return True
        if type(it).__module__ == "numpy" and hasattr(it, "shape") and getattr(it, "ndim", 0) > 0:
            return True
    return False


_PLAIN_INDEX = (int, slice, type(None), type(Ellipsis), bool)


def _plain_index(index: tuple) -> bool:
    """Only ints, slices, None and ``...``: basic indexing, a view of ``self``."""
    for it in index:
        if type(it) not in _PLAIN_INDEX:
            return False
    return True


def _index_tensors(index: Any) -> List[Any]:
    items = index if type(index) is tuple else (index,)
    found = []
    for it in items:
        if isinstance(it, _TB):
            found.append(it)
        elif isinstance(it, (list, tuple)):
            found.extend(b for b in it if isinstance(b, _TB))
    return found


_TYPED_NAMES = {
    "DoubleTensor": torch.float64, "FloatTensor": torch.float32,
    "HalfTensor": torch.float16, "BFloat16Tensor": torch.bfloat16,
    "LongTensor": torch.int64, "IntTensor": torch.int32, "ShortTensor": torch.int16,
    "CharTensor": torch.int8, "ByteTensor": torch.uint8, "BoolTensor": torch.bool,
}
_DTYPE_TO_NAME = {v: k for k, v in _TYPED_NAMES.items()}


# --------------------------------------------------------------------------
# The mode
# --------------------------------------------------------------------------

class _Mode(TorchFunctionMode):
    def __init__(self, vd: "VirtualDevice"):
        super().__init__()
        self.vd = vd
        # one lookup per call: handlers, factories, and passthrough (None)
        table: Dict[Any, Optional[Callable]] = dict.fromkeys(_PASSTHROUGH)
        for f in _FACTORIES:
            table[f] = vd._factory
        table.update(vd._handlers)
        self.table = table

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        handler = self.table.get(func, _GENERIC)
        if handler is _GENERIC:
            return self.vd._generic(func, args, kwargs)
        if handler is None:  # passthrough
            return func(*args, **kwargs)
        return handler(func, args, kwargs)


_GENERIC = object()


class VirtualDevice:
    """Context manager returned by :func:`virtual_device`.

    Attributes after (or during) a run: ``mismatches`` (list of
    :class:`Mismatch`), ``summary()`` and ``format_summary()``.
    """

    def __init__(self, device: str = "cuda", mode: str = "strict", *,  # noqa: DEV004 (the simulated accelerator)
                 report_available: bool = True, max_records: int = 100_000):
        dev = torch.device(device)
        if dev.type == "cpu":
            raise ValueError("virtual_device needs an accelerator device type such as 'cuda', not 'cpu'")
        if mode not in ("strict", "report"):
            raise ValueError(f"mode must be 'strict' or 'report', not {mode!r}")
        self.device_type = dev.type
        self.default_index = dev.index if dev.index is not None else 0
        self.device = torch.device(dev.type, self.default_index)
        self.mode = mode
        self.report_available = report_available
        self.max_records = max_records
        self.mismatches: List[Mismatch] = []
        self._token = object()
        self._torch_mode: Optional[_Mode] = None
        self._patches: List[Tuple[Any, str, Any, bool]] = []
        self._active = False
        self._handlers: Dict[Any, Callable] = self._build_handlers()

    # ----------------------------------------------------------- context
    def __enter__(self) -> "VirtualDevice":
        with _LOCK:
            if _ACTIVE:
                raise RuntimeError(
                    "a virtual device is already active; nesting virtual_device contexts "
                    "is not supported (leave the outer one first)"
                )
            _ACTIVE.append(self)
        try:
            self._install_patches()
            self._torch_mode = _Mode(self)
            self._torch_mode.__enter__()
        except BaseException:
            self._remove_patches()
            with _LOCK:
                _ACTIVE.remove(self)
            raise
        self._active = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._torch_mode is not None:
                self._torch_mode.__exit__(exc_type, exc, tb)
        finally:
            self._torch_mode = None
            self._remove_patches()
            self._active = False
            with _LOCK:
                if self in _ACTIVE:
                    _ACTIVE.remove(self)

    @property
    def active(self) -> bool:
        return self._active

    # ----------------------------------------------------------- devices
    def device_of(self, t: Any) -> torch.device:
        m = getattr(t, MARK, None)
        if m is not None and m[0] is self._token:
            return m[1]
        return _real_device(t)

    def _norm(self, d: Any) -> Optional[torch.device]:
        """The device a placement argument means: the virtual one, the CPU, or None (foreign)."""
        if isinstance(d, str):
            d = torch.device(d)
        elif isinstance(d, int) and not isinstance(d, bool):
            return torch.device(self.device_type, d)
        if isinstance(d, torch.device):
            if d.type == self.device_type:
                return torch.device(d.type, self.default_index if d.index is None else d.index)
            if d.type == "cpu":
                return _CPU
        return None

    def _mark(self, t: Any, dev: torch.device) -> None:
        if dev.type == "cpu":
            if getattr(t, MARK, None) is not None:
                try:
                    delattr(t, MARK)
                except AttributeError:
                    pass
        else:
            setattr(t, MARK, (self._token, dev))

    def _mark_all(self, out: Any, dev: torch.device) -> None:
        for o in _outputs(out):
            self._mark(o, dev)

    # ----------------------------------------------------------- reporting
    def _report(self, func: Any, kind: str, devices: Tuple[str, ...], message: str,
                exc_type=VirtualDeviceError) -> None:
        file, line, function = R.user_frame()
        rec = Mismatch(op=_op_name(func), devices=devices, file=file, line=line,
                       function=function, kind=kind, message=message)
        if self.mode == "strict":
            raise exc_type(f"{message} [{rec.op} at {file}:{line}]", rec)
        if len(self.mismatches) < self.max_records:
            self.mismatches.append(rec)

    def summary(self) -> List[MismatchSummary]:
        """Mismatches deduplicated by (file, line, op, devices, kind), first occurrence order."""
        counts: Dict[tuple, int] = {}
        first: Dict[tuple, Mismatch] = {}
        for m in self.mismatches:
            key = (m.file, m.line, m.op, m.devices, m.kind)
            if key not in counts:
                counts[key] = 0
                first[key] = m
            counts[key] += 1
        return [
            MismatchSummary(op=m.op, devices=m.devices, file=m.file, line=m.line,
                            function=m.function, kind=m.kind, message=m.message,
                            count=counts[k])
            for k, m in first.items()
        ]

    def format_summary(self) -> str:
        rows = self.summary()
        if not rows:
            return "virtual device: no device mismatches"
        head = f"virtual device: {len(self.mismatches)} mismatch(es) at {len(rows)} place(s)"
        return "\n".join([head] + [str(r) for r in rows])

    # ----------------------------------------------------------- checks
    def _common_device(self, tensors: List[Any]):
        """(device of the first operand or None, whether every operand is on it): the fast path."""
        token = self._token
        first = None
        for t in tensors:
            m = getattr(t, MARK, None)
            d = m[1] if (m is not None and m[0] is token) else _real_device(t)
            if first is None:
                first = d
            elif d != first:
                return first, False
        return first, True

    def _check_mixed(self, func: Any, tensors: List[Any], allow_cpu_scalars: bool) -> torch.device:
        """Check that operands share a device; return the device of the result."""
        first, uniform = self._common_device(tensors)
        if uniform:
            return first if first is not None else _CPU
        seen: List[torch.device] = []
        fallback = None
        for t in tensors:
            d = self.device_of(t)
            if fallback is None and d.type != "cpu":
                fallback = d
            if allow_cpu_scalars and d.type == "cpu" and t.dim() == 0:
                continue
            if d not in seen:
                seen.append(d)
        if len(seen) > 1:
            self._report(func, R.MIXED_DEVICES, tuple(str(d) for d in seen),
                         R.mixed_message(str(seen[0]), str(seen[1])))
            return fallback or seen[0]
        if seen:
            return seen[0]
        return fallback or _CPU

    # ----------------------------------------------------------- generic
    def _generic(self, func, args, kwargs):
        if kwargs and ("device" in kwargs or "pin_memory" in kwargs):
            return self._generic_placing(func, args, kwargs)
        # Fast path: one pass over the operands, no list built; most calls see
        # one device, and marks share their device object, so `is` decides.
        token = self._token
        first = fmark = None
        mixed = False
        for values in (args, kwargs.values()) if kwargs else (args,):
            for a in values:
                if isinstance(a, _TB):
                    group = (a,)
                elif type(a) is list or type(a) is tuple:
                    group = a
                else:
                    continue
                for t in group:
                    if not isinstance(t, _TB):
                        continue
                    m = getattr(t, MARK, None)
                    if m is not None and m[0] is token:
                        d = m[1]
                    else:
                        m = None
                        d = _real_device(t)
                        if d.type == "cpu":
                            d = _CPU
                    if first is None:
                        first, fmark = d, m
                    elif d is not first and d != first:
                        mixed = True
        if mixed:
            first = self._check_mixed(func, _collect(args, kwargs), func not in _LIST_OPS)
            fmark = None
        out = func(*args, **kwargs)
        if first is not None and first is not _CPU and first.type != "cpu":
            if isinstance(out, _TB):
                setattr(out, MARK, fmark if fmark is not None else (token, first))
            else:
                self._mark_all(out, first)
        elif isinstance(out, _TB):
            if getattr(out, MARK, None) is not None:
                self._mark(out, _CPU)
        elif isinstance(out, (list, tuple)):
            self._mark_all(out, _CPU)
        return out

    def _strip_placement(self, kwargs):
        """(virtual target device or None, kwargs that compute on the CPU)."""
        target = None
        if "device" in kwargs:
            target = self._norm(kwargs["device"])
            if target is not None:
                kwargs = dict(kwargs)
                kwargs["device"] = "cpu"
        if kwargs.get("pin_memory"):
            kwargs = dict(kwargs)
            kwargs["pin_memory"] = False
        return target, kwargs

    def _generic_placing(self, func, args, kwargs):
        tensors = _collect(args, kwargs)
        target, kwargs = self._strip_placement(kwargs)
        if len(tensors) > 1:
            dev = self._check_mixed(func, tensors, func not in _LIST_OPS)
        elif tensors:
            dev = self.device_of(tensors[0])
        else:
            dev = _CPU
        out = func(*args, **kwargs)
        if target is not None:
            dev = target
            if tensors:
                out = self._fresh(out, tensors, dev)
        self._mark_all(out, dev)
        return out

    def _fresh(self, out, inputs, dev):
        """A placement that returned an input object unchanged must copy when the device changes."""
        if isinstance(out, _TB):
            for t in inputs:
                if out is t and self.device_of(t) != dev:
                    return out.clone()
        return out

    def _factory(self, func, args, kwargs):
        if not kwargs or ("device" not in kwargs and "pin_memory" not in kwargs):
            if not (args and isinstance(args[0], _TB)):
                return func(*args, **kwargs)  # a new tensor on the CPU, unmarked
        target, kwargs = self._strip_placement(kwargs)
        out = func(*args, **kwargs)
        if target is None:
            # torch.tensor(t) / torch.asarray(t) keep the device of a tensor argument
            if "device" not in kwargs and args and isinstance(args[0], _TB):
                target = self.device_of(args[0])
            else:
                target = _CPU
        elif args and isinstance(args[0], _TB):
            out = self._fresh(out, [args[0]], target)
        self._mark_all(out, target)
        return out

    # ----------------------------------------------------------- handlers
    def _build_handlers(self) -> Dict[Any, Callable]:
        h: Dict[Any, Callable] = {}
        h[_getter("device")] = lambda f, a, k: self.device_of(a[0])
        h[_getter("is_cuda")] = lambda f, a, k: self.device_of(a[0]).type == "cuda"
        h[_getter("is_cpu")] = lambda f, a, k: self.device_of(a[0]).type == "cpu"
        h[_Tensor.get_device] = self._h_get_device
        h[_Tensor.to] = self._h_to
        h[_Tensor.cuda] = self._h_cuda
        h[_Tensor.cpu] = self._h_cpu
        h[_Tensor.type] = self._h_type
        h[_Tensor.numpy] = self._h_numpy
        h[_Tensor.__array__] = self._h_numpy
        h[_Tensor.copy_] = self._h_copy
        h[_TB.data.__set__] = self._h_set_data
        h[_Tensor.__getitem__] = self._h_getitem
        h[_Tensor.__setitem__] = self._h_setitem
        h[_Tensor.index_put_] = self._h_index_put
        h[_Tensor.index_put] = self._h_index_put
        h[torch.index_put] = self._h_index_put
        h[torch.index_put_] = self._h_index_put
        h[_Tensor.masked_fill] = self._h_masked_fill
        h[_Tensor.masked_fill_] = self._h_masked_fill
        h[torch.masked_fill] = self._h_masked_fill
        h[_Tensor.__repr__] = self._h_repr
        h[_Tensor.pin_memory] = lambda f, a, k: a[0]
        h[_Tensor.is_pinned] = lambda f, a, k: False
        h[torch.autograd.grad] = self._h_autograd_grad
        # take only shape/values from the other tensors: the result follows self
        for f in (_Tensor.new_tensor, _Tensor.new_zeros, _Tensor.new_ones, _Tensor.new_empty,
                  _Tensor.new_full, _Tensor.new_empty_strided, _Tensor.view_as,
                  _Tensor.expand_as, _Tensor.reshape_as):
            h[f] = self._h_follow_self
        h[_Tensor.type_as] = self._h_type_as
        return h

    def _h_follow_self(self, func, args, kwargs):
        target, kwargs = self._strip_placement(kwargs)
        if target is None:
            target = self.device_of(args[0])
        out = func(*args, **kwargs)
        if out is not args[0]:
            self._mark_all(out, target)
        return out

    def _h_type_as(self, func, args, kwargs):
        self_t = args[0]
        other = args[1] if len(args) > 1 else kwargs["other"]
        return self._place(self_t, self_t.to(other.dtype), self.device_of(other))

    def _h_get_device(self, func, args, kwargs):
        d = self.device_of(args[0])
        return -1 if d.type == "cpu" else d.index

    def _place(self, src_t, out, target: torch.device):
        src = self.device_of(src_t)
        if target != src and out is src_t:
            out = out.clone()
        self._mark(out, target)
        return out

    def _h_to(self, func, args, kwargs):
        self_t = args[0]
        if len(args) == 2 and not kwargs:
            a = args[1]
            ta = type(a)
            if ta is torch.dtype:  # .to(dtype): the device stays
                m = getattr(self_t, MARK, None)
                out = func(self_t, a)
                if m is not None and m[0] is self._token and out is not self_t:
                    setattr(out, MARK, m)
                return out
            if ta is str or ta is torch.device:
                target = self._norm(a)
                if target is not None:
                    return self._place(self_t, func(self_t, "cpu"), target)
        dev: Any = None
        has_dev = False
        new_args: List[Any] = [self_t]
        for a in args[1:]:
            if not has_dev and isinstance(a, _TB):
                has_dev, dev = True, self.device_of(a)
                new_args.extend(("cpu", a.dtype))
            elif not has_dev and len(new_args) == 1 and (
                    isinstance(a, (str, torch.device)) or (isinstance(a, int) and not isinstance(a, bool))):
                has_dev, dev = True, a
                new_args.append("cpu")
            else:
                new_args.append(a)
        kw = dict(kwargs)
        if "device" in kw:
            has_dev, dev = True, kw["device"]
            kw["device"] = "cpu"
        if "other" in kw:
            other = kw.pop("other")
            has_dev, dev = True, self.device_of(other)
            kw["device"] = "cpu"
            kw["dtype"] = other.dtype
        if not has_dev or dev is None:
            return self._place(self_t, func(*args, **kwargs), self.device_of(self_t))
        target = self._norm(dev)
        if target is None:  # a device type the virtual device does not model
            return func(*args, **kwargs)
        return self._place(self_t, func(*new_args, **kw), target)

    def _h_cuda(self, func, args, kwargs):
        if self.device_type != "cuda":
            return func(*args, **kwargs)
        self_t = args[0]
        dev = args[1] if len(args) > 1 else kwargs.get("device")
        target = self.device if dev is None else (self._norm(dev) or self.device)
        mf = kwargs.get("memory_format")
        out = self_t if mf is None else self_t.contiguous(memory_format=mf)
        return self._place(self_t, out, target)

    def _h_cpu(self, func, args, kwargs):
        self_t = args[0]
        out = func(*args, **kwargs)
        return self._place(self_t, out, _CPU)

    def _h_type(self, func, args, kwargs):
        self_t = args[0]
        dtype = args[1] if len(args) > 1 else kwargs.get("dtype")
        d = self.device_of(self_t)
        if dtype is None:
            name = _DTYPE_TO_NAME.get(self_t.dtype)
            if d.type != "cpu" and name is not None:
                return f"torch.{d.type}.{name}"
            return func(*args, **kwargs)
        target = None
        if isinstance(dtype, type) and getattr(dtype, "_fdv_dtype", None) is not None:
            real_dtype, target = dtype._fdv_dtype, self.device
        elif isinstance(dtype, str) and dtype.startswith(f"torch.{self.device_type}."):
            name = dtype.rsplit(".", 1)[1]
            real_dtype, target = _TYPED_NAMES.get(name), self.device
            if real_dtype is None:
                return func(*args, **kwargs)
        else:
            out = func(*args, **kwargs)
            if isinstance(dtype, torch.dtype):
                return self._place(self_t, out, d)
            return self._place(self_t, out, _CPU)
        out = self_t.to(real_dtype)
        return self._place(self_t, out, target)

    def _h_numpy(self, func, args, kwargs):
        d = self.device_of(args[0])
        if d.type != "cpu":
            self._report(func, R.NUMPY_ON_ACCELERATOR, (str(d),), R.numpy_message(str(d)),
                         exc_type=VirtualNumpyError)
        return func(*args, **kwargs)

    def _h_copy(self, func, args, kwargs):
        # copy_ moves data between devices; the destination keeps its device.
        return func(*args, **kwargs)

    def _h_set_data(self, func, args, kwargs):
        out = func(*args, **kwargs)
        self._mark(args[0], self.device_of(args[1]))
        return out

    def _h_getitem(self, func, args, kwargs):
        self_t, index = args[0], args[1]
        m = getattr(self_t, MARK, None)
        ti = type(index)
        if ti is int or ti is slice or (ti is tuple and _plain_index(index)):
            # basic indexing (a view): no index tensor to check, the result follows self
            out = func(*args, **kwargs)
            if m is not None and m[0] is self._token:
                setattr(out, MARK, m)
            return out
        d = m[1] if (m is not None and m[0] is self._token) else _real_device(self_t)
        for it in _index_tensors(index):
            di = self.device_of(it)
            if di != d and di.type != "cpu" and it.dim() > 0:
                self._report(func, R.INDEX_DEVICE, (str(d), str(di)), R.index_message(str(d)))
                break
        out = func(*args, **kwargs)
        self._mark_all(out, d) if d.type != "cpu" else None
        return out

    def _check_value(self, func, self_t, indices: List[Any], value: Any, advanced: bool,
                     accumulate: bool = False) -> None:
        if not isinstance(value, _TB) or not advanced:
            return
        d = self.device_of(self_t)
        dv = self.device_of(value)
        if dv == d or value.dim() == 0:
            return
        if not accumulate and dv.type == "cpu" and value.numel() == 1:
            masks = [i for i in indices if i is not None]
            if (len(masks) == 1 and isinstance(masks[0], _TB)
                    and masks[0].dtype in (torch.bool, torch.uint8)
                    and self.device_of(masks[0]) == d):
                return  # dispatched to masked_fill_ with value.item()
        self._report(func, R.VALUE_DEVICE, (str(d), str(dv)), R.mixed_message(str(d), str(dv)))

    def _h_setitem(self, func, args, kwargs):
        self_t, index, value = args[0], args[1], args[2]
        if not isinstance(value, _TB):
            return func(*args, **kwargs)  # a Python value: nothing to check
        items = list(index) if type(index) is tuple else [index]
        self._check_value(func, self_t, [i for i in items if isinstance(i, _TB)] or items,
                          value, _has_advanced_index(index))
        out = func(*args, **kwargs)
        return out

    def _h_index_put(self, func, args, kwargs):
        self_t = args[0]
        indices = args[1] if len(args) > 1 else kwargs.get("indices")
        values = args[2] if len(args) > 2 else kwargs.get("values")
        accumulate = args[3] if len(args) > 3 else kwargs.get("accumulate", False)
        self._check_value(func, self_t, list(indices), values, True, bool(accumulate))
        out = func(*args, **kwargs)
        d = self.device_of(self_t)
        if out is not self_t:
            self._mark(out, d)
        return out

    def _h_masked_fill(self, func, args, kwargs):
        self_t = args[0]
        mask = args[1] if len(args) > 1 else kwargs.get("mask")
        d = self.device_of(self_t)
        if isinstance(mask, _TB):
            dm = self.device_of(mask)
            if dm != d:
                self._report(func, R.MASK_DEVICE, (str(d), str(dm)), R.mask_message(str(dm), str(d)))
        out = func(*args, **kwargs)
        if out is not self_t:
            self._mark(out, d)
        return out

    def _h_repr(self, func, args, kwargs):
        s = func(*args, **kwargs)
        d = self.device_of(args[0])
        if d.type != "cpu" and s.endswith(")"):
            s = s[:-1] + f", device='{d}')"
        return s

    def _h_autograd_grad(self, func, args, kwargs):
        out = func(*args, **kwargs)
        inputs = args[1] if len(args) > 1 else kwargs.get("inputs")
        if isinstance(inputs, _TB):
            inputs = (inputs,)
        for g, inp in zip(out, inputs):
            if isinstance(g, _TB):
                self._mark(g, self.device_of(inp))
        return out

    # ----------------------------------------------------------- patches
    def _patch(self, obj: Any, name: str, value: Any) -> None:
        had = name in vars(obj)
        old = vars(obj).get(name)
        self._patches.append((obj, name, old, had))
        setattr(obj, name, value)

    def _remove_patches(self) -> None:
        while self._patches:
            obj, name, old, had = self._patches.pop()
            if had:
                setattr(obj, name, old)
            else:
                try:
                    delattr(obj, name)
                except AttributeError:
                    pass

    def _install_patches(self) -> None:
        vd = self
        # nn.Parameter(t) makes a new tensor object outside the torch API: keep t's device.
        orig_new = torch.nn.Parameter.__dict__["__new__"]
        orig_new_fn = orig_new.__func__ if isinstance(orig_new, staticmethod) else orig_new

        def param_new(cls, data=None, requires_grad=True):
            p = orig_new_fn(cls, data, requires_grad)
            if isinstance(data, _TB):
                m = getattr(data, MARK, None)
                if m is not None and m[0] is vd._token:
                    setattr(p, MARK, m)
            return p

        self._patch(torch.nn.Parameter, "__new__", staticmethod(param_new))

        # Modules with a native fast path that PyTorch skips whenever a torch-function
        # mode is active (nn.MultiheadAttention, nn.TransformerEncoderLayer in eval
        # mode): check their operands and parameters once, run them with the mode
        # off (the fast path, as in a plain CPU run: same kernels, same numbers),
        # and give the outputs the operands' device.
        for cls in (torch.nn.MultiheadAttention, torch.nn.TransformerEncoderLayer):
            fwd = cls.__dict__.get("forward")
            if fwd is not None:
                self._patch(cls, "forward", _fast_path_forward(self, fwd))

        # TorchScript functions and methods (torch.jit.script, torch.jit.trace)
        # run their ops in C++, outside __torch_function__: check their tensor
        # operands like any op and give the results the operands' device.
        for cls in (torch._C.ScriptFunction, torch._C.ScriptMethod):
            call = cls.__dict__.get("__call__")
            if call is not None:
                self._patch(cls, "__call__", _script_call(self, call))

        if self.device_type != "cuda":
            return
        cuda = torch.cuda
        index = self.default_index
        if self.report_available:
            self._patch(cuda, "is_available", lambda: True)
            self._patch(cuda, "device_count", lambda: max(1, index + 1))
            accelerator = getattr(torch, "accelerator", None)  # torch 2.6 and later
            if accelerator is not None:
                self._patch(accelerator, "is_available", lambda: True)
                self._patch(accelerator, "current_accelerator",
                            lambda check_available=False: torch.device("cuda"))
        self._patch(cuda, "current_device", lambda: index)
        self._patch(cuda, "synchronize", lambda device=None: None)
        self._patch(cuda, "empty_cache", lambda: None)
        self._patch(cuda, "set_device", lambda device: None)
        self._patch(cuda, "get_device_name", lambda device=None: "virtual cuda (CPU)")
        self._patch(cuda, "memory_allocated", lambda device=None: 0)
        self._patch(cuda, "max_memory_allocated", lambda device=None: 0)
        self._patch(cuda, "memory_reserved", lambda device=None: 0)
        self._patch(cuda, "reset_peak_memory_stats", lambda device=None: None)
        for name, dtype in _TYPED_NAMES.items():
            self._patch(cuda, name, _typed_class(self, name, dtype))


def _real_device(t: Any) -> torch.device:
    return _TB.device.__get__(t)


def _mode_on(vd: VirtualDevice) -> bool:
    """Whether ``vd``'s mode is active on this thread (the patches are process-wide)."""
    mode = vd._torch_mode
    return mode is not None and mode in torch.overrides._get_current_function_mode_stack()


def _script_call(vd: VirtualDevice, call: Callable) -> Callable:
    def __call__(fn, *args, **kwargs):
        if not _mode_on(vd):
            return call(fn, *args, **kwargs)
        tensors = _collect(args, kwargs)
        dev = vd._check_mixed(fn, tensors, True) if tensors else _CPU
        out = call(fn, *args, **kwargs)
        _mark_nested(vd, out, dev)
        return out

    return __call__


def _fast_path_forward(vd: VirtualDevice, forward: Callable) -> Callable:
    def patched(module, *args, **kwargs):
        if not _mode_on(vd):
            return forward(module, *args, **kwargs)
        tensors = _collect(args, kwargs)
        tensors.extend(module.parameters())
        dev = vd._check_mixed(forward, tensors, True) if tensors else _CPU
        with torch._C.DisableTorchFunction():
            out = forward(module, *args, **kwargs)
        _mark_nested(vd, out, dev)
        return out

    patched.__wrapped__ = forward
    return patched


def _mark_nested(vd: VirtualDevice, out: Any, dev: torch.device) -> None:
    if isinstance(out, _TB):
        vd._mark(out, dev)
    elif isinstance(out, (list, tuple)):
        for o in out:
            _mark_nested(vd, o, dev)
    elif isinstance(out, dict):
        for o in out.values():
            _mark_nested(vd, o, dev)


class _TypedMeta(type):
    def __instancecheck__(cls, obj):
        vd = _active()
        if not isinstance(obj, _TB) or vd is None:
            return False
        return obj.dtype == cls._fdv_dtype and vd.device_of(obj).type == cls._fdv_vd.device_type


def _typed_class(vd: VirtualDevice, name: str, dtype: torch.dtype) -> type:
    cpu_ctor = getattr(torch, name)

    def __new__(cls, *args, **kwargs):
        t = cpu_ctor(*args, **kwargs)
        vd._mark(t, vd.device)
        return t

    return _TypedMeta(name, (), {
        "__new__": __new__, "__module__": f"torch.{vd.device_type}",
        "_fdv_dtype": dtype, "_fdv_vd": vd, "is_cuda": True, "dtype": dtype,
    })


# --------------------------------------------------------------------------
# Public helpers
# --------------------------------------------------------------------------

def virtual_device(device: str = "cuda", mode: str = "strict", *,  # noqa: DEV004 (the simulated accelerator)
                   report_available: bool = True, max_records: int = 100_000) -> VirtualDevice:
    """A context manager that runs code written for ``device`` on the CPU.

    ``mode="strict"`` raises :class:`VirtualDeviceError` where real hardware
    would raise; ``mode="report"`` records every such place in ``.mismatches``
    and keeps running.  ``report_available`` makes ``torch.cuda.is_available()``
    return True inside the context.
    """
    return VirtualDevice(device, mode, report_available=report_available, max_records=max_records)


def virtual_device_of(t: Any) -> torch.device:
    """The device ``t`` would be on: inside a context as that context sees it,
    afterwards the device it was last placed on by any virtual device."""
    vd = _active()
    if vd is not None:
        return vd.device_of(t)
    m = getattr(t, MARK, None)
    if m is not None:
        return m[1]
    return _real_device(t)


def to_real(x: Any) -> Any:
    """Drop virtual-device marks from tensors in ``x`` (nested lists, tuples,
    dicts, modules); the tensors themselves are ordinary CPU tensors already.
    Returns ``x``."""
    seen = set()

    def walk(o):
        if id(o) in seen:
            return
        seen.add(id(o))
        if isinstance(o, _TB):
            if MARK in getattr(o, "__dict__", {}):
                o.__dict__.pop(MARK, None)
            return
        if isinstance(o, torch.nn.Module):
            for t in list(o.parameters()) + list(o.buffers()):
                walk(t)
                if t.grad is not None:
                    walk(t.grad)
            return
        if isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple, set)):
            for v in o:
                walk(v)
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            for v in vars(o).values():
                if isinstance(v, (_TB, list, tuple, dict)) or hasattr(v, "__dict__"):
                    walk(v)

    walk(x)
    return x


def is_virtual_active() -> bool:
    return _active() is not None
