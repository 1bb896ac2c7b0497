"""DEV101 (factory immediately moved), DEV102 (device-less factory in device code),
DEV103 (legacy typed constructors)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..diagnostics import Fix, ReplaceNode, RewriteCall, Span
from ..names import (
    DATA_FACTORIES,
    DTYPE_METHODS,
    DTYPES,
    FACTORIES,
    FACTORIES_WITH_TENSOR_INPUT,
    INIT_METHODS,
    LEGACY_CTORS,
    RANDOM_FACTORIES,
)
from ..facts import _is_device_name, _is_dtype_name, is_int_expr
from . import placement
from .common import NO_PROPERTY, has_star, is_device_like_name, kw, with_property
from .registry import rule

DEV101 = rule(
    "DEV101",
    summary="device-less tensor factory immediately moved",
    finds="device-less factory immediately moved",
    fix_safety="safe unless values or random streams could change",
    message='torch.empty() allocates on the host and is then moved to hardcoded "cuda"; create it there with device=',
    # the chain is one diagnostic: a legacy constructor's chain is DEV103, and each hardcoded move in it
    # is reported under its portability code too, with the chain's fix
    also_reports=("DEV103", "DEV104", "DEV001", "DEV002"),
)
DEV102 = rule(
    "DEV102",
    summary="device-less tensor factory in device-aware code",
    finds="device-less factory in device-aware code",
    fix_safety="always unsafe",
    message="torch.zeros() without device= in device-aware code creates a CPU tensor",
    # off unless named in full in select / extend-select (too noisy on real code for a default)
    default_ignored=True,
)
DEV103 = rule(
    "DEV103",
    summary="legacy tensor constructor",
    finds="legacy typed constructors `torch.IntTensor(...)`... moved or meeting device tensors",
    fix_safety="safe when data and sizes are told apart",
    message="torch.IntTensor() is a legacy constructor that always allocates on the CPU, then moved to "
            "\"cuda\"; use torch.tensor(..., dtype=torch.int32, device=...)",
)
DEV104 = rule(
    "DEV104",
    summary="legacy tensor constructor whose value stays on the CPU",
    finds="legacy typed constructors whose value stays on the CPU (style)",
    fix_safety="safe when data and sizes are told apart",
    message="torch.LongTensor() is a legacy constructor; use torch.tensor(..., dtype=torch.int64)",
    # off unless named in full: on real code these are dataset, collate and __init__ code that is
    # meant to run on the CPU (measured in docs/benchmarks.md)
    default_ignored=True,
    yields_to=("DEV103",),
)

_HOST_SINKS = frozenset({"int", "float", "bool", "len"})
_HOST_METHODS = frozenset({"item", "tolist", "numpy"})


@DEV102.on("call.chain", names=(*_HOST_SINKS, *_HOST_METHODS))
def mark_host_consumed(ck, node: ast.Call) -> None:
    """``int(torch.randint(...))``, ``torch.arange(n).tolist()``: the value never meets a device.

    The torch call inside is claimed, so the walk visits it with no rule."""
    func = node.func
    inner = None
    if isinstance(func, ast.Name) and func.id in _HOST_SINKS and len(node.args) == 1:
        inner = node.args[0]
    elif isinstance(func, ast.Attribute) and func.attr in _HOST_METHODS:
        inner = func.value
    while isinstance(inner, ast.Call):
        q = ck.resolve(inner.func)
        if q is not None and q.startswith("torch."):
            ck.claim(inner)
            return
        if not isinstance(inner.func, ast.Attribute):
            return
        inner = inner.func.value


NO_SOURCE = "no device source in scope (no self.device, device variable or tensor to follow)"


@dataclass
class Step:
    """One link of a chain after the factory: a dtype change, a device move, or both."""

    node: ast.Call
    dtype: Optional[str] = None  # dtype expression text
    device: Optional[str] = None  # device expression text (None: unchanged)
    literal: Optional[ast.AST] = None  # the hardcoded device literal, if any
    literal_plain: bool = True
    safe: bool = True
    is_cpu: bool = False


def _factory_name(ck, call: ast.AST) -> Optional[Tuple[str, str]]:
    """("factory"|"legacy", name) if ``call`` is a torch factory or legacy constructor call."""
    if not isinstance(call, ast.Call):
        return None
    q = ck.resolve(call.func)
    if q is None or not q.startswith("torch."):
        return None
    name = q[len("torch."):]
    if name in FACTORIES:
        return "factory", name
    if name in LEGACY_CTORS:
        return "legacy", name
    return None


def _dtype_of(ck, node: ast.AST) -> Optional[str]:
    q = ck.resolve(node)
    if q and q.startswith("torch.") and q[len("torch."):] in DTYPES:
        return ck.src(node)
    if isinstance(node, ast.Attribute) and node.attr == "dtype":
        return ck.src(node)
    if isinstance(node, ast.Name) and _is_dtype_name(node.id):
        return node.id
    return None


def _classify_to(ck, call: ast.Call) -> Optional[Step]:
    """What a ``.to(...)``/``.cuda()``/``.type_as()``/``.float()`` call does, or None if unknown."""
    attr = call.func.attr
    step = Step(node=call)
    if attr in DTYPE_METHODS:
        if call.args or call.keywords:
            return None
        step.dtype = DTYPE_METHODS[attr]
        return step
    if attr == "cuda":
        if call.args or any(k.arg not in ("non_blocking",) for k in call.keywords):
            step.literal_plain = False
        step.device = "cuda"
        step.literal = call
        return step
    if attr == "type_as":
        if len(call.args) != 1 or call.keywords:
            return None
        other = ck.src(call.args[0])
        step.device, step.dtype = f"{other}.device", f"{other}.dtype"
        return step
    if attr != "to":
        return None
    if any(k.arg not in ("device", "dtype", "non_blocking", "copy") for k in call.keywords) or has_star(call):
        return None
    args = list(call.args)
    if len(args) > 2:
        return None
    for i, arg in enumerate(args):
        lit = ck.device_literal(arg)
        if lit is not None:
            step.device, step.literal, step.literal_plain = ck.src(arg), arg, lit[1]
            continue
        if i == 1:
            step.dtype = _dtype_of(ck, arg) or ck.src(arg)
            continue
        dt = _dtype_of(ck, arg)
        if dt is not None:
            step.dtype = dt
            continue
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            step.device, step.is_cpu = ck.src(arg), arg.value.strip().startswith(("cpu", "meta"))
            continue
        if (isinstance(arg, ast.Attribute) and arg.attr == "device") or (
            isinstance(arg, ast.Name) and _names_a_device(ck, arg.id)
        ) or (isinstance(arg, ast.Call) and ck.resolve(arg.func) == "torch.device"):
            step.device = ck.src(arg)
            continue
        # ``.to(other)``: follows another tensor's device and dtype.
        other = ck.src(arg)
        step.device, step.dtype = f"{other}.device", f"{other}.dtype"
        if not isinstance(arg, (ast.Name, ast.Attribute, ast.Subscript)):
            return None
        if not (isinstance(arg, ast.Name) and _known_tensor(ck, arg.id)):
            step.safe = False  # guessing that the argument is a tensor
    for k in call.keywords:
        if k.arg == "device":
            lit = ck.device_literal(k.value)
            step.device = ck.src(k.value)
            if lit is not None:
                step.literal, step.literal_plain = k.value, lit[1]
            elif isinstance(k.value, ast.Constant):
                step.is_cpu = True
        elif k.arg == "dtype":
            step.dtype = ck.src(k.value)
    return step


def _names_a_device(ck, name: str) -> bool:
    """``.to(name)`` moves to a device (not to another tensor) when the name says so or holds a string."""
    if _is_device_name(name) or is_device_like_name(name):
        return True
    func = ck.current_function()
    return func is not None and name in func.str_names


def _known_tensor(ck, name: str) -> bool:
    """A local bound from a torch call, or a parameter annotated as a tensor."""
    func = ck.current_function()
    if func is None:
        return False
    if name in func.tensor_names:
        return True
    ann = func.params.get(name)
    return ann is not None and ast.unparse(ann).endswith("Tensor")


def _peel(ck, outer: ast.Call):
    """Split ``factory(...).a(...).b(...)`` into the factory call and its steps."""
    steps: List[Step] = []
    node = outer
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if _factory_name(ck, node):
            break
        step = _classify_to(ck, node)
        if step is None:
            return None
        steps.append(step)
        node = node.func.value
    kind = _factory_name(ck, node)
    if kind is None or not steps:
        return None
    steps.reverse()
    return node, kind, steps


@DEV101.on("call.chain", covers=True)
def check_moved_factory(ck, outer: ast.Call) -> bool:
    """DEV101 / DEV103 on ``torch.zeros(n).to(x)``-shaped chains.  True if reported."""
    peeled = _peel(ck, outer)
    if peeled is None:
        return False
    factory, (kind, name), steps = peeled
    movers = [s for s in steps if s.device is not None and not s.is_cpu]
    if not movers and kind == "factory":
        return False
    if kw(factory, "device") is not None and kind == "factory":
        return False  # already device-aware; a hardcoded .to literal is DEV001 on its own
    if kind == "factory" and _host_view(ck, factory, name):
        # the move is the only copy: nothing to save (a hardcoded .to literal is DEV001 on its own);
        # claimed so that DEV102 does not read the factory as unmoved
        ck.claim(factory)
        return False
    # This whole chain is one diagnostic.
    node = outer
    while isinstance(node, ast.Call) and node is not factory:
        ck.claim(node, node.func)
        node = node.func.value
    ck.claim(factory)
    if ck.guarded and all(s.literal is not None for s in movers) and kind == "factory":
        return True  # guarded hardcoded move: device-aware on purpose
    literal = next((s.literal for s in movers if s.literal is not None), None)
    if literal is not None:
        target = '"cuda" (.cuda())' if isinstance(literal, ast.Call) else ck.src(literal)
    else:
        target = movers[-1].device if movers else None
    decided: list = []
    fix, why = _build_fix(ck, outer, factory, kind, name, steps, decided)
    choice = decided[-1] if decided else None
    if kind == "legacy":
        if movers or meets_device(ck, outer):
            chain = ck.report("DEV103", outer, _legacy_msg(ck, factory, name, target), fix, why, choice=choice)
        else:  # ``torch.Tensor(idx).to(torch.int64)``: a dtype change, still on the CPU
            chain = ck.report("DEV104", outer, _style_msg(ck, name), fix, why, choice=choice)
    else:
        where = f"hardcoded {target}" if literal is not None else f"{target}"
        chain = ck.report(
            "DEV101",
            outer,
            f"torch.{name}() allocates on the host and is then moved to {where}; "
            f"create it there with device=",
            fix,
            why,
            choice=choice,
        )
    if not ck.guarded:
        _report_portability(ck, movers, chain)
    return True


def _host_view(ck, factory: ast.Call, name: str) -> bool:
    """``torch.from_numpy(a)``, ``torch.as_tensor(np.<...>(...))``: a CPU tensor sharing an array's memory.

    Moving it copies the array's bytes to the device once, as creating it there with ``device=`` does, so
    DEV101's "allocates on the host, then moves" does not hold.  ``torch.as_tensor`` of anything else (a
    list, a name) builds a new host tensor and stays DEV101.
    """
    if name == "from_numpy":
        return True
    if name not in ("as_tensor", "asarray") or len(factory.args) != 1 or factory.keywords:
        return False
    arg = factory.args[0]
    q = ck.resolve(arg.func) if isinstance(arg, ast.Call) else None
    return q is not None and q.startswith(("numpy.", "np."))


def _report_portability(ck, movers: List[Step], chain) -> None:
    """One code per concern: the chain also fails where the accelerator is missing, so each hardcoded
    move is reported under its portability code too (DEV001 ``.to("cuda")``, DEV002 ``.cuda()``),
    carrying the very same fix as the DEV101/DEV103 diagnostic of the chain."""
    for step in movers:
        lit = step.literal
        if lit is None:
            continue
        if isinstance(lit, ast.Call):
            ck.report("DEV002", lit, placement.cuda_message(ck, placement.cuda_index(lit)), same_fix_as=chain)
        else:
            ck.report("DEV001", lit, placement.to_message(ck, lit), same_fix_as=chain)


def _legacy_msg(ck, factory, name, target) -> str:
    # torch.Tensor follows the default dtype (torch.set_default_dtype), as its fix does
    dtype = "torch.get_default_dtype()" if name == "Tensor" else LEGACY_CTORS[name]
    moved = f", then moved to {target}" if target else ""
    return (f"torch.{name}() is a legacy constructor that always allocates on the CPU{moved}; "
            f"use torch.tensor(..., dtype={dtype}, device=...)")


_COUNT_WORDS = ("num", "count", "size", "dim", "channels", "planes", "features", "len", "length", "width",
                "height", "depth", "classes", "heads", "batch")


def _count_like(node: ast.AST) -> bool:
    """``out_channels``, ``num_boxes``, ``self.hidden_dim``, ``n``: names that read as counts."""
    name = (node.attr if isinstance(node, ast.Attribute) else node.id).lower()
    return name in ("n", "k", "m") or name.startswith(("n_", "num")) or any(
        name == w or name.endswith("_" + w) or name.startswith(w + "_") for w in _COUNT_WORDS)


@dataclass(frozen=True)
class LegacyTarget:
    """How a legacy constructor call is rewritten: ``func`` (``torch.tensor`` or
    ``torch.empty``), whether that is certain (``safe``), why not (``note``), and
    ``empty``: no arguments, so the call becomes ``func(0, ...)``."""

    func: str
    safe: bool
    note: str = ""
    empty: bool = False

    def op(self, outer: ast.AST, factory: ast.AST, keywords) -> "RewriteCall | ReplaceNode":
        if self.empty:
            text = ", ".join(["0", *(f"{k}={v}" for k, v in keywords)])
            return ReplaceNode(Span.of(outer), f"{self.func}({text})")
        return RewriteCall(Span.of(outer), Span.of(factory), tuple(keywords), self.func)


# torch.Tensor(t) of a tensor is not a copy: it shares t's storage and keeps t's dtype and requires_grad.
ALIAS = ("if the argument is a tensor, {name}(t) is an alias of it (same storage, same dtype), "
         "where torch.tensor(t) copies")
_GUESSED = "guessed whether the argument is data or a size"
# NumPy calls that return a new array (torch.Tensor of a float32 array shares its memory, torch.tensor copies;
# nobody else holds a new array, so the difference cannot be seen).
_NUMPY_NEW = frozenset({"array", "zeros", "ones", "full", "arange", "linspace", "eye", "stack", "concatenate",
                        "random.rand", "random.randn", "random.randint", "random.uniform", "random.normal"})


def _legacy_dtype(ck, name: str, target: "LegacyTarget") -> Optional[str]:
    """The dtype a rewritten legacy constructor passes (None: none, the default dtype).

    ``torch.Tensor`` follows the default dtype (float64 after
    ``torch.set_default_dtype(torch.float64)``), as ``torch.empty`` does;
    ``torch.tensor`` of integers would not, so it gets the default dtype spelt out.
    """
    if name != "Tensor":
        return LEGACY_CTORS[name]
    if target.func.endswith(".empty"):
        return None
    return f"{ck.torch_name() or 'torch'}.get_default_dtype()"


def _is_size_value(ck, a: ast.AST) -> bool:
    """``torch.Size(...)``, ``x.shape``, ``x.size()``: a shape, which legacy constructors read as sizes."""
    if isinstance(a, ast.Attribute):
        return a.attr == "shape"
    if isinstance(a, ast.Call):
        if ck.resolve(a.func) == "torch.Size":
            return True
        return isinstance(a.func, ast.Attribute) and a.func.attr == "size" and not a.args and not a.keywords
    return False


def _legacy_target(ck, factory: ast.Call, name: str):
    """A :class:`LegacyTarget` for rewriting a legacy constructor, or the reason there is none (a str).

    No argument: ``torch.empty(0, ...)`` (shape ``(0,)``).  A single argument
    is data (``torch.tensor``) when it is a list, tuple or comprehension, or a
    name with collection-only evidence (built as a list, iterated, passed to
    ``len``); it is a size (``torch.empty``) when it is an integer by its form
    (``3``, ``len(x)``, ``x.shape[0]``, a name bound to one) or a shape
    (``torch.Size(...)``, ``x.shape``, ``x.size()``).  A tensor is neither:
    the constructor returns an alias of it, so there is no fix.  Anything else
    is guessed (unsafe): a name, attribute or arithmetic as a size, as
    ``torch.Tensor(out_channels)`` almost always is; any other call as data.
    """
    torch = ck.torch_name() or "torch"
    args = factory.args
    alias = ALIAS.format(name=f"{torch}.{name}")
    if factory.keywords:
        return "legacy constructor with keyword arguments; rewrite it by hand"
    if any(isinstance(a, ast.Starred) for a in args):
        # ``torch.Tensor(c, *kernel_size)``: unpacked sizes
        if len(args) > 1:
            return LegacyTarget(f"{torch}.empty", False, "the unpacked arguments are guessed to be sizes")
        return "legacy constructor with unpacked arguments; rewrite it by hand"
    if not args:
        return LegacyTarget(f"{torch}.empty", True, "no argument: an empty 1-D tensor, shape (0,)", empty=True)
    func = ck.current_function()
    if len(args) == 1:
        a = args[0]
        if isinstance(a, (ast.List, ast.ListComp, ast.Tuple)):
            return LegacyTarget(f"{torch}.tensor", True, "a list or tuple is data")
        int_names = func.int_names if func is not None else set()
        if is_int_expr(a, int_names):
            return LegacyTarget(f"{torch}.empty", True, "an integer is a size")
        if _is_size_value(ck, a):
            return LegacyTarget(f"{torch}.empty", True, "a shape (torch.Size) is read as sizes")
        if isinstance(a, ast.Name) and func is not None and a.id in func.list_names:
            return LegacyTarget(f"{torch}.tensor", True, f"`{a.id}` is used as a collection: data")
        if isinstance(a, ast.Name) and func is not None and a.id in func.tensor_names:
            return (f"`{a.id}` holds a tensor or storage (bound from a torch call): {torch}.{name}({a.id}) is an "
                    "alias of it (the same storage; a tensor keeps its dtype), not a copy; rewrite it by hand")
        if isinstance(a, ast.Call):
            q = ck.resolve(a.func) or ""
            if q.startswith(("numpy.", "np.")):
                short = q.split(".", 1)[1]
                if short in _NUMPY_NEW:
                    return LegacyTarget(f"{torch}.tensor", True, "a new NumPy array is data")
                return LegacyTarget(f"{torch}.tensor", False, f"{torch}.{name}() of a NumPy array may share its "
                                                              "memory, torch.tensor copies it")
            if q in ("list", "tuple") or (isinstance(a.func, ast.Attribute) and a.func.attr == "tolist"):
                return LegacyTarget(f"{torch}.tensor", True, "a new list or tuple is data")
            return LegacyTarget(f"{torch}.tensor", False, f"{_GUESSED}; {alias}")  # a call's result
        if isinstance(a, ast.BinOp) or (isinstance(a, (ast.Name, ast.Attribute)) and _count_like(a)):
            return LegacyTarget(f"{torch}.empty", False, _GUESSED)  # an integer variable means a size
        return LegacyTarget(f"{torch}.tensor", False, f"{_GUESSED}; {alias}")
    if all(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in args):
        return LegacyTarget(f"{torch}.empty", True, "integers are sizes")
    if all(isinstance(a, (ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.BinOp, ast.Call))
           for a in args):
        int_names = func.int_names if func is not None else set()
        # several arguments are sizes unless one is a tensor
        safe = all(is_int_expr(a, int_names) for a in args)
        return LegacyTarget(f"{torch}.empty", safe, "integers are sizes" if safe else _GUESSED)
    return "legacy constructor with unusual arguments; rewrite it by hand"


_FLOAT_DTYPES = frozenset({"torch.float32", "torch.float64", "torch.float16", "torch.bfloat16"})
_SIGNED_INT_DTYPES = frozenset({"torch.int16", "torch.int32", "torch.int64"})


def _fold(ck, factory, kind, name, dtype, known) -> Optional[bool]:
    """Can a conversion to ``dtype`` after the factory move into the call?

    None: no (values could differ or the call would fail); True: yes, same
    values; False: yes, but values may differ (an unsafe fix).  ``known`` is
    False when the dtype is another tensor's (``.to(t)``, ``.type_as(t)``).
    """
    if kind == "legacy":
        return None
    if name in ("zeros", "ones", "empty", "eye", "empty_strided"):
        return True  # 0 and 1 (and uninitialised memory) survive any conversion
    if kw(factory, "dtype") is not None:
        return None  # two conversions in a row: the first may already change the values
    if not known:
        return False if name == "full" else None
    if name == "full":
        fill = kw(factory, "fill_value")
        value = fill.value if fill is not None else (factory.args[1] if len(factory.args) > 1 else None)
        is_int = isinstance(value, ast.Constant) and type(value.value) is int
        if dtype in _FLOAT_DTYPES or (dtype in _SIGNED_INT_DTYPES and is_int):
            return True
        return None
    if name in ("arange", "range"):
        if dtype in _SIGNED_INT_DTYPES:
            return True
        return False if dtype in ("torch.float32", "torch.float64") else None
    if name in ("linspace", "logspace"):
        return False if dtype in _FLOAT_DTYPES else None
    if name in DATA_FACTORIES:
        return True if dtype in _FLOAT_DTYPES else None
    return None


def _literal_only_fix(ck, outer, steps, safe, notes, decided):
    """Keep the host allocation, fix only the hardcoded device of the move."""
    movers = [s for s in steps if s.literal is not None]
    if len(movers) != 1:
        return None, "the chain converts dtypes in a way that cannot move into the factory call"
    step = movers[0]
    choice = ck.infer_device(outer, allow_new_device=True)
    decided.append(choice)
    if not choice:
        return None, NO_SOURCE
    ops = with_property(ck, choice, [])
    if ops is None:
        return None, NO_PROPERTY
    if isinstance(step.literal, ast.Call) and isinstance(step.literal.func, ast.Attribute) \
            and step.literal.func.attr == "cuda":
        recv = step.literal.func.value
        rest = [ck.src(k) for k in step.literal.keywords if k.arg != "device"]
        ops.append(ReplaceNode(Span.of(step.literal), f"{ck.src(recv)}.to({', '.join([choice.expr, *rest])})"))
    else:
        ops.append(ReplaceNode(Span.of(step.literal), choice.expr))
    notes = [f"device {choice.expr}: {choice.reason}",
             "the dtype conversions stay after the factory, so it still allocates on the host", *notes]
    return Fix(tuple(ops), safe and choice.safe and step.literal_plain, "; ".join(notes)), None


def _build_fix(ck, outer, factory, kind, name, steps, decided):
    """``(fix, no_fix_reason)`` for a moved chain; the device inference decided is appended to ``decided``."""
    if not ck.fixes:
        return None, None
    if has_star(factory) or kw(factory, "out") is not None:
        return None, "the factory call takes *args/**kwargs or out=; rewrite it by hand"
    if name in FACTORIES_WITH_TENSOR_INPUT:
        return None, f"torch.{name}() follows its input's device; move the input instead"
    safe = all(s.safe for s in steps)
    notes: List[str] = []
    func_name = None
    if name in RANDOM_FACTORIES:
        safe = False
        notes.append("creating a random tensor on another device changes the random stream")
    if kw(factory, "requires_grad") is not None:
        safe = False
        notes.append("requires_grad makes the moved tensor a non-leaf; folding makes it a leaf")
    # the final dtype and device after the chain
    conversions = [s for s in steps if s.dtype is not None]
    device = None
    for s in steps:
        if s.device is not None:
            device = s
    dtype = conversions[-1].dtype if conversions else None
    if conversions:
        known = conversions[-1].dtype in DTYPES.values() and len(conversions) == 1
        folded = _fold(ck, factory, kind, name, dtype, known) if len(conversions) == 1 else None
        if len(conversions) > 1 and name in ("zeros", "ones", "empty", "eye", "empty_strided") and all(
            c.dtype in _FLOAT_DTYPES | _SIGNED_INT_DTYPES for c in conversions
        ):
            folded = True  # 0 and 1 survive any chain of these conversions
        if folded is None:
            return _literal_only_fix(ck, outer, steps, safe, notes, decided)
        if folded is False:
            safe = False
            notes.append(f"torch.{name}() then computes in the target dtype directly")
    if kind == "legacy":
        legacy = _legacy_target(ck, factory, name)
        if isinstance(legacy, str):
            return None, legacy
        func_name = legacy.func
        if not legacy.safe:
            safe = False
        if legacy.note:
            notes.append(legacy.note)
        dtype = _legacy_dtype(ck, name, legacy)
    elif name == "from_numpy":
        func_name = f"{ck.torch_name() or 'torch'}.as_tensor"
    extra_ops = []
    dev_expr = None
    if device is not None and device.literal is not None:
        choice = ck.infer_device(outer, allow_new_device=True)
        decided.append(choice)
        if not choice:
            return None, NO_SOURCE
        dev_expr = choice.expr
        safe = safe and choice.safe and device.literal_plain
        notes.insert(0, f"device {choice.expr}: {choice.reason}")
        if not device.literal_plain:
            notes.append("the literal names a specific accelerator index")
        extra_ops = with_property(ck, choice, [])
        if extra_ops is None:
            return None, NO_PROPERTY
    elif device is not None:
        dev_expr = device.device
        notes.insert(0, f"device {dev_expr} from the move")
    keywords = []
    if dtype is not None:
        keywords.append(("dtype", dtype))
    if dev_expr is not None:
        keywords.append(("device", dev_expr))
    if kind == "legacy":
        op = legacy.op(outer, factory, keywords)
    else:
        op = RewriteCall(Span.of(outer), Span.of(factory), tuple(keywords), func_name)
    return Fix(tuple(extra_ops) + (op,), safe, "; ".join(notes)), None


def _in_init_context(ck) -> bool:
    for f in ck.func_stack:
        if getattr(f.node, "name", None) in INIT_METHODS:
            return True
    return False


def _legacy_fix(ck, node: ast.Call, name: str):
    target = _legacy_target(ck, node, name)
    if isinstance(target, str):
        return None, target
    dtype = _legacy_dtype(ck, name, target)
    op = target.op(node, node, (("dtype", dtype),) if dtype else ())
    args = ["0" if target.empty else "...", *([f"dtype={dtype}"] if dtype else [])]
    desc = f"use {target.func}({', '.join(args)})"
    return Fix((op,), target.safe, f"{desc}: {target.note}" if target.note else desc), None


def _style_msg(ck, name: str) -> str:
    dtype = "torch.get_default_dtype()" if name == "Tensor" else LEGACY_CTORS[name]
    return f"torch.{name}() is a legacy constructor; use torch.tensor(..., dtype={dtype})"


@DEV103.on("call.torch", qual=("torch.",))
def check_legacy(ck, node: ast.Call, qual: str) -> None:
    """DEV103 for an unmoved legacy constructor whose value meets device tensors."""
    name = qual[len("torch."):]
    if name in LEGACY_CTORS and meets_device(ck, node):
        ck.claim(node)
        fix, why = _legacy_fix(ck, node, name)
        ck.report("DEV103", node, _legacy_msg(ck, node, name, None), fix, why)


@DEV104.on("call.torch", qual=("torch.",))
def check_legacy_style(ck, node: ast.Call, qual: str) -> None:
    """DEV104 for a legacy constructor whose value stays on the CPU (DEV103 did not take it)."""
    name = qual[len("torch."):]
    if name in LEGACY_CTORS and not ck.claimed(node):
        fix, why = _legacy_fix(ck, node, name)
        ck.report("DEV104", node, _style_msg(ck, name), fix, why)


# ---- where a legacy constructor's value goes (DEV103 or DEV104) ----------------------------------

# methods whose result is still the same values (a view, a copy, a dtype change): followed upwards
_HOST_END = frozenset({"tolist", "numpy", "item", "cpu", "__array__"})


def _parents(ck, root: ast.AST) -> dict:
    cache = ck.state.setdefault("parents", {})
    got = cache.get(id(root))
    if got is None:
        got = {}
        for parent in ast.walk(root):
            for child in ast.iter_child_nodes(parent):
                got[id(child)] = parent
        cache[id(root)] = got
    return got


def _moves(ck, call: ast.Call, follow: bool = True) -> bool:
    """``x.cuda()``, ``x.to(device)``, and with ``follow`` ``x.to(other)``, ``x.type_as(other)``: a move
    off the host (following another tensor is one only when that tensor is on a device, which
    ``follow=False`` does not assume)."""
    attr = call.func.attr if isinstance(call.func, ast.Attribute) else None
    if attr == "cuda" or (attr == "type_as" and follow):
        return True
    if attr != "to":
        return False
    step = _classify_to(ck, call)
    if step is None or step.device is None or step.is_cpu:
        return False
    follows = step.dtype is not None and step.device.endswith(".device") \
        and step.dtype == step.device[:-len(".device")] + ".dtype"
    return follow or not follows


def _on_device(ck, expr: ast.AST) -> bool:
    """Evidence that ``expr`` is (or names) a value on the target device."""
    func = ck.current_function()
    method = ck.enclosing_method()
    cls = method.cls if method is not None else None
    in_forward = cls is not None and cls.is_module and not any(
        getattr(f.node, "name", None) in INIT_METHODS for f in ck.func_stack)
    devices = func.device_names if func is not None else {}
    on_device = ck.state.setdefault("on_device_names", {}).get(id(func.node) if func is not None else 0, set())
    for n in ast.walk(expr):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and _moves(ck, n, follow=False):
            return True
        if isinstance(n, ast.Call) and any(k.arg == "device" and not _cpu_value(k.value) for k in n.keywords):
            return True
        if isinstance(n, ast.Attribute) and n.attr == "device":
            return True
        if isinstance(n, ast.Name) and (n.id in devices or n.id in on_device):
            return True
        if in_forward and isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) \
                and n.value.id == "self" and n.attr in cls.tensor_attrs:
            return True
    return False


def _cpu_value(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(("cpu", "meta"))


def _note_on_device_names(ck, root: ast.AST) -> None:
    """The names a function binds to values on the device (``x = feats.cuda()``), once per function."""
    func = ck.current_function()
    key = id(func.node) if func is not None else 0
    known = ck.state.setdefault("on_device_names", {})
    if key in known:
        return
    known[key] = set()
    for n in ast.walk(root):
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name) \
                and _on_device(ck, n.value):
            known[key].add(n.targets[0].id)


def _goes_to_device(ck, node: ast.AST, parents: dict, scope: ast.AST, depth: int) -> bool:
    """Follow ``node``'s value upwards: is it moved, or does it meet a value on the device?"""
    cur = node
    while True:
        p = parents.get(id(cur))
        if p is None:
            return False
        if isinstance(p, ast.Attribute) and p.value is cur:
            call = parents.get(id(p))
            if not (isinstance(call, ast.Call) and call.func is p):
                return False  # ``.shape``, ``.dtype``: not the values
            if _moves(ck, call):
                return True
            if p.attr in _HOST_END:
                return False
            cur = call  # ``.view(-1, 1)``, ``.long()``: the same values
        elif isinstance(p, ast.Subscript) and p.value is cur:
            cur = p
        elif isinstance(p, (ast.BinOp, ast.Compare, ast.BoolOp)):
            others = [c for c in ast.iter_child_nodes(p) if c is not cur and isinstance(c, ast.expr)]
            if any(_on_device(ck, o) for o in others):
                return True
            cur = p
        elif isinstance(p, (ast.List, ast.Tuple)):
            if any(_on_device(ck, e) for e in p.elts if e is not cur):  # ``torch.cat([t, x.cuda()])``
                return True
            cur = p
        elif isinstance(p, (ast.Starred, ast.keyword)):
            cur = p
        elif isinstance(p, ast.Call):
            # an argument: a sibling argument on the device (``to_device(t, x.device)``, ``torch.cat([t, y.cuda()])``)
            siblings = [a for a in (*p.args, *(k.value for k in p.keywords)) if a is not cur
                        and not (isinstance(cur, ast.keyword) and a is cur.value)]
            return any(_on_device(ck, a) for a in siblings)
        elif isinstance(p, (ast.Assign, ast.AnnAssign)) and depth > 0:
            targets = p.targets if isinstance(p, ast.Assign) else [p.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            return bool(names) and _name_goes_to_device(ck, names, p, parents, scope, depth - 1)
        else:
            return False


def _name_goes_to_device(ck, names, binding: ast.stmt, parents, scope, depth: int) -> bool:
    """A later use of a name bound to the value goes to the device."""
    end = getattr(binding, "end_lineno", binding.lineno)
    for n in ast.walk(scope):
        if isinstance(n, ast.Name) and n.id in names and isinstance(n.ctx, ast.Load) and n.lineno > end:
            if _goes_to_device(ck, n, parents, scope, depth):
                return True
    return False


def meets_device(ck, node: ast.AST) -> bool:
    """DEV103's test: the value of the legacy constructor call ``node`` is moved or meets the device."""
    func = ck.current_function()
    scope = func.node if func is not None else ck.tree
    _note_on_device_names(ck, scope)
    return _goes_to_device(ck, node, _parents(ck, scope), scope, depth=2)


@DEV102.on("call.torch", qual=("torch.",))
def check_factory(ck, node: ast.Call, qual: str) -> None:
    """DEV102 for an unmoved factory in device-aware code."""
    name = qual[len("torch."):]
    if name not in FACTORIES or name in FACTORIES_WITH_TENSOR_INPUT:
        return
    if kw(node, "device") is not None or has_star(node) or kw(node, "out") is not None:
        return
    func = ck.current_function()
    method = ck.enclosing_method()
    in_module = method is not None and method.cls is not None and method.cls.is_module
    if func is None or not (in_module or func.device_aware) or _in_init_context(ck):
        return
    if name in ("tensor", "as_tensor") and node.args and isinstance(node.args[0], ast.Constant):
        return  # a 0-dim CPU scalar may meet accelerator tensors
    choice = ck.infer_device(node, allow_add_property=False)
    if not choice:
        fix, why = None, NO_SOURCE
    else:
        op = RewriteCall(Span.of(node), Span.of(node), (("device", choice.expr),),
                         f"{ck.torch_name() or 'torch'}.as_tensor" if name == "from_numpy" else None)
        fix = Fix((op,), False, f"device {choice.expr}: {choice.reason}; moves a tensor the code "
                                "created on the CPU, which may be intended")
        why = None
    ck.report("DEV102", node, f"torch.{name}() without device= in device-aware code creates a CPU tensor",
              fix, why, choice=choice)
