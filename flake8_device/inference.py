"""Device inference: which device expression a fix should use at a node.

Below the rules (engine -> rules -> inference/facts): the functions take the
rules' context (:class:`flake8_device.context.RuleContext`) and read only its
public methods and the scope facts.  The precedence is documented on
:func:`infer_device`.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from .diagnostics import Fix, InsertBefore, RewriteCall, Span
from .facts import DEVICE_PREFIX, DEVICE_STR, MORE_DEVICE_BASES, ClassInfo, FuncInfo, _is_device_name, _walk_shallow, children, \
    is_int_expr, param_defaults, returns_tensor
from .names import AVAILABILITY_EXPR, KNOWN_DEVICE_BASES

# The rule context (flake8_device.context.RuleContext) this module is given.  It sits a layer above
# inference and imports this module, so inference names it without importing it.
RuleContext = Any


@dataclass
class DeviceChoice:
    """Everything :func:`infer_device` decided for one fix: the expression, why, and what it needs."""

    expr: str
    reason: str
    safe: bool
    # The class whose ``device`` property must be added first (precedence 6).
    add_property_to: Optional[ClassInfo] = None
    # What the expression rests on (see :class:`Evidence`).
    evidence: Optional["Evidence"] = None
    # The fix group of every fix relying on that property (one group: the property and its users).
    group: Optional[str] = None
    # The module-level device this choice introduces (precedence 7): its name; the first fix using it
    # carries its definition (see :class:`Importer`).
    defines: Optional[str] = None


@dataclass(frozen=True)
class Refusal:
    """No device expression: ``--device-expr`` cannot be written at the site.  False in a test, like None."""

    why: str

    def __bool__(self) -> bool:
        return False


# --------------------------------------------------------------------------
# evidence: why an expression is (or is not) a torch device


class Evidence(str, Enum):
    """What a device expression a fix writes rests on."""

    CONFIGURED = "configured by --device-expr"
    TORCH_DEVICE = "a torch.device(...) call"
    DEVICE_ATTR = "the .device of a tensor or module"
    DEVICE_STRING = "a literal device string"
    ANNOTATION = "a torch.device annotation"
    TENSOR = "a tensor on the target device"
    GUESS = "a guess"
    UNKNOWN = "a value of unknown kind"
    NEW_PROPERTY = "a device property the fix adds"
    NEW_MODULE_DEVICE = "a module device the fix defines"


# Device types ``torch.device`` accepts (``"gpu"`` is not one).
TORCH_DEVICE_TYPES = frozenset({
    "cpu", "cuda", "mps", "xpu", "meta", "hpu", "npu", "xla", "ipu", "mtia", "privateuseone", "vulkan",
    "lazy", "ve", "fpga", "ort", "mkldnn", "opengl", "opencl", "ideep", "hip", "maia",
})
# Receivers whose ``.device`` is a setting, not a tensor's or module's device (``args.device == "gpu"``).
_SETTING_ROOTS = frozenset({"args", "opt", "opts", "cfg", "config", "conf", "hparams", "params", "settings",
                            "options", "flags", "FLAGS", "hp", "kwargs", "parser", "namespace", "ns"})

YES, MAYBE, NO = "yes", "maybe", "no"
# Calls that return a device index or count, not a device.
_INT_DEVICE_CALLS = frozenset({"torch.cuda.current_device", "torch.cuda.device_count", "torch.get_device",
                               "torch.accelerator.current_device_index", "torch.accelerator.device_count",
                               "torch.xpu.current_device", "torch.xpu.device_count"})
# Device-like names that hold an index, a count or a list of them: ``device_id``, ``num_devices``, ``device_ids``.
_INDEX_NAME = re.compile(r"(^|_)(id|ids|idx|index|indices|count|num|n)(_|$)|^num|^n_|devices$", re.I)


def is_device_string(value: str) -> bool:
    """``"cpu"``, ``"cuda"``, ``"cuda:0"``: a string ``torch.device`` accepts (not ``"gpu"``, ``"/dev/ttyUSB0"``)."""
    m = DEVICE_STR.match(value)
    return bool(m) and m.group(1) in TORCH_DEVICE_TYPES


def _is_device_prefix(value: str) -> bool:
    m = DEVICE_PREFIX.match(value)
    return bool(m) and m.group(1) in TORCH_DEVICE_TYPES


def _combine(verdicts: List[Tuple[str, str, Optional[Evidence]]]) -> Tuple[str, str, Optional[Evidence]]:
    for v in verdicts:
        if v[0] == NO:
            return v
    for v in verdicts:
        if v[0] == MAYBE:
            return v
    return verdicts[0] if verdicts else (MAYBE, "nothing binds it", None)


def _chain_names(node: ast.AST) -> Set[str]:
    """The names and attributes along ``a.b[0].c()``: {"a", "b", "c"}."""
    out: Set[str] = set()
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Attribute):
            out.add(node.attr)
        node = node.func if isinstance(node, ast.Call) else node.value
    if isinstance(node, ast.Name):
        out.add(node.id)
    return out


def _root_name(node: ast.AST) -> Optional[str]:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def value_evidence(ctx: "RuleContext", value: Optional[ast.AST], scope: Optional[ast.AST], line: int,
                   depth: int = 0) -> Tuple[str, str, Optional[Evidence]]:
    """Whether ``value`` (read in function ``scope``, None: the module) is a torch device.

    ``(verdict, why, evidence)``: ``"yes"`` with the evidence, ``"no"`` (an integer, a string torch does
    not accept, a label), or ``"maybe"`` (a value of unknown kind: a call, a setting, a bare parameter).
    """
    if value is None or depth > 6:
        return MAYBE, "a binding of unknown value", None
    cls = value.__class__
    if cls is ast.Constant:
        v = value.value
        if isinstance(v, str):
            if is_device_string(v):
                return YES, f"{v!r} is a device string", Evidence.DEVICE_STRING
            return NO, f"{v!r} is not a torch device string", None
        if v is None:
            return MAYBE, "None until something else is assigned", None
        if isinstance(v, (int, float)):
            return NO, f"bound to the number {v!r}, not a device (`.to({v!r})` means another device, " \
                       "`map_location` calls it)", None
        return NO, f"bound to {v!r}, not a device", None
    if cls is ast.JoinedStr:
        first = value.values[0] if value.values else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and _is_device_prefix(first.value):
            return YES, "a device string built at run time", Evidence.DEVICE_STRING
        return MAYBE, "a string built at run time", None
    if cls is ast.BinOp and isinstance(value.left, ast.Constant) and isinstance(value.left.value, str):
        if _is_device_prefix(value.left.value):
            return YES, "a device string built at run time", Evidence.DEVICE_STRING
        return NO, f"{value.left.value!r}... is not a torch device string", None
    if cls in (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.DictComp, ast.SetComp):
        return NO, "a collection, not a device", None
    if is_int_expr(value) or (cls is ast.Call and ctx.resolve(value.func) in _INT_DEVICE_CALLS):
        return NO, f"`{ctx.src(value)}` is an integer, not a device", None
    if cls is ast.Call:
        if ctx.resolve(value.func) == "torch.device":
            return YES, "a torch.device(...) call", Evidence.TORCH_DEVICE
        return MAYBE, f"the result of `{ctx.src(value.func)}(...)`, of unknown kind", None
    if cls is ast.Attribute:
        if value.attr == "type" and isinstance(value.value, ast.Attribute) and value.value.attr == "device":
            inner = value_evidence(ctx, value.value, scope, line, depth + 1)
            return inner[0], inner[1], Evidence.DEVICE_STRING if inner[0] == YES else inner[2]
        if value.attr == "device":
            root = value.value
            if isinstance(root, ast.Name) and root.id == "self":
                method = ctx.enclosing_method()
                if method is not None and method.cls is not None:
                    return self_device_evidence(ctx, method.cls)
                return MAYBE, "`self.device` of an unknown class", None
            if _chain_names(root) & _SETTING_ROOTS:
                return MAYBE, f"`{ctx.src(value)}` is a setting, of unknown kind", None
            return YES, f"`{ctx.src(value)}` is the .device of a tensor or module", Evidence.DEVICE_ATTR
        return MAYBE, f"`{ctx.src(value)}`, of unknown kind", None
    if cls is ast.IfExp:
        return _combine([value_evidence(ctx, value.body, scope, line, depth + 1),
                         value_evidence(ctx, value.orelse, scope, line, depth + 1)])
    if cls is ast.Name:
        return name_evidence(ctx, value.id, scope, line, depth + 1)[:3]
    return MAYBE, f"`{ctx.src(value)}`, of unknown kind", None


def _annotation_evidence(ann: ast.AST) -> Optional[Tuple[str, str, Optional[Evidence]]]:
    text = ast.unparse(ann)
    if "device" in text and not re.search(r"\bint\b", text):
        return YES, f"annotated `{text}`", Evidence.ANNOTATION
    if "device" in text:
        return MAYBE, f"annotated `{text}`: an integer is another device", None
    if text in ("int", "float", "bool"):
        return NO, f"annotated `{text}`, not a device", None
    return None


def _scope_bindings(ctx: "RuleContext", scope: Optional[ast.AST]) -> Dict[str, List[Tuple[int, str, Any]]]:
    """name -> [(line, kind, node)] for the bindings of a function (or the module, with None).

    kind: ``"param"`` (node: the ast.arg, with its default in a tuple), ``"assign"`` (node: the value,
    with an annotation), ``"other"`` (a loop target, ``with ... as``, an import, ``+=``...)."""
    cache = ctx.inference_cache.setdefault("inference.bindings", {})
    key = id(scope) if scope is not None else 0
    if key in cache:
        return cache[key]
    out: Dict[str, List[Tuple[int, str, Any]]] = {}
    if scope is None:
        stack = list(getattr(ctx.tree, "body", []))
    else:
        defaults = {id(p): d for p, d in param_defaults(scope)}
        a = scope.args
        for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
            if p is not None:
                out.setdefault(p.arg, []).append((scope.lineno, "param", (p, defaults.get(id(p)))))
        stack = list(scope.body) if not isinstance(scope, ast.Lambda) else []
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.setdefault(n.name, []).append((n.lineno, "other", None))
            continue
        if isinstance(n, ast.Lambda):
            continue
        if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None:
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            ann = n.annotation if isinstance(n, ast.AnnAssign) else None
            for t in targets:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append((n.lineno, "assign", (n.value, ann)))
                elif isinstance(t, (ast.Tuple, ast.List)):
                    for e in ast.walk(t):
                        if isinstance(e, ast.Name):
                            out.setdefault(e.id, []).append((n.lineno, "other", None))
        elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
            out.setdefault(n.target.id, []).append((n.lineno, "other", None))
        elif isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension)):
            for e in ast.walk(n.target):
                if isinstance(e, ast.Name):
                    out.setdefault(e.id, []).append((getattr(n, "lineno", 0) or getattr(n.target, "lineno", 0),
                                                     "other", None))
        elif isinstance(n, ast.NamedExpr):
            out.setdefault(n.target.id, []).append((n.lineno, "assign", (n.value, None)))
        elif isinstance(n, ast.withitem) and n.optional_vars is not None:
            for e in ast.walk(n.optional_vars):
                if isinstance(e, ast.Name):
                    out.setdefault(e.id, []).append((e.lineno, "other", None))
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for al in n.names:
                out.setdefault((al.asname or al.name).split(".")[0], []).append((n.lineno, "other", None))
        stack.extend(children(n))
    cache[key] = out
    return out


def name_evidence(ctx: "RuleContext", name: str, scope: Optional[ast.AST], line: int,
                  depth: int = 0) -> Tuple[str, str, Optional[Evidence], bool]:
    """Whether ``name`` read at ``line`` in function ``scope`` (None: module code) is a torch device:
    every binding must be one (see :func:`value_evidence`), and one must come before ``line``.

    ``(verdict, why, evidence, late)``: ``late`` when the only bindings follow the site."""
    bindings = _scope_bindings(ctx, scope).get(name)
    if not bindings and scope is not None:
        # a global (or a closure's variable: the enclosing functions are not followed)
        for f in reversed(ctx.func_stack[:-1]):
            if name in _scope_bindings(ctx, f.node):
                return (*name_evidence(ctx, name, f.node, line, depth + 1)[:3], False)
        return (*name_evidence(ctx, name, None, line, depth + 1)[:3], False) if depth < 6 else (
            MAYBE, f"`{name}` is not bound here", None, False)
    if not bindings:
        return MAYBE, f"`{name}` is not bound in this module", None, False
    verdicts = []
    for _, kind, node in bindings:
        if kind == "param":
            p, default = node
            ann = _annotation_evidence(p.annotation) if p.annotation is not None else None
            if ann is not None:
                verdicts.append(ann)
            elif default is not None and not (isinstance(default, ast.Constant) and default.value is None):
                d = value_evidence(ctx, default, None, line, depth + 1)
                verdicts.append((d[0], f"`{name}` defaults to a value that is {d[1]}" if d[0] == YES
                                 else f"`{name}`'s default: {d[1]}", d[2]))
            else:
                verdicts.append((MAYBE, f"`{name}` is a parameter without a torch.device annotation or a device "
                                        "default: callers may pass anything", None))
        elif kind == "assign":
            value, ann = node
            a = _annotation_evidence(ann) if ann is not None else None
            if a is not None and a[0] == NO:
                verdicts.append(a)
                continue
            v = value_evidence(ctx, value, scope, line, depth + 1)
            verdicts.append((v[0], f"`{name}`: {v[1]}", v[2]))
        else:
            verdicts.append((MAYBE, f"`{name}` is bound by a loop, an import or an update", None))
    verdict = _combine(verdicts)
    if verdict[0] == MAYBE and _INDEX_NAME.search(name):
        verdict = (NO, f"`{name}` is named like an index, a count or a list of devices ({verdict[1]})", None)
    if scope is not None:  # a local: bound only at or after the site
        late = all(b[0] >= line and b[1] != "param" for b in bindings)
    elif ctx.func_stack:  # a global read in a function: bound only after the (outermost) function
        late = all(b[0] > getattr(ctx.func_stack[0].node, "end_lineno", line) for b in bindings)
    else:  # module code
        late = all(b[0] >= line for b in bindings)
    if late and verdict[0] == YES:
        verdict = (MAYBE, f"`{name}` is bound only after this code (a late binding)", verdict[2])
    return (*verdict, late)


def _self_device_compared_with_label(node: ast.AST) -> Optional[str]:
    for n in _walk_shallow(node):
        if isinstance(n, ast.Compare) and len(n.comparators) == 1:
            parts = [n.left, n.comparators[0]]
            if any(isinstance(p, ast.Attribute) and p.attr == "device" and isinstance(p.value, ast.Name)
                   and p.value.id == "self" for p in parts):
                for p in parts:
                    if isinstance(p, ast.Constant) and isinstance(p.value, str) and not is_device_string(p.value):
                        return p.value
    return None


def self_device_evidence(ctx: "RuleContext", cls: ClassInfo) -> Tuple[str, str, Optional[Evidence]]:
    """Whether ``self.device`` in the methods of ``cls`` is a torch device.

    Yes for a ``device`` property or method, a known base, reads only (a base provides it), and
    assignments of device values; no where it is compared with a label (``self.device == "gpu"``) or
    assigned one; maybe where it is assigned a value of unknown kind."""
    cache = ctx.inference_cache.setdefault("inference.self_device", {})
    key = id(cls.node)
    if key not in cache:
        cache[key] = (MAYBE, "cycle", None)
        cache[key] = _self_device_evidence(ctx, cls.node, set())
    return cache[key]


def _self_device_evidence(ctx: "RuleContext", node: ast.ClassDef, seen: Set[str]):
    seen.add(node.name)
    name = node.name
    verdicts = []
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if stmt.name == "device":
                verdicts.append((YES, f"{name} defines `device`", Evidence.DEVICE_ATTR))
                continue
            label = _self_device_compared_with_label(stmt)
            if label is not None:
                return NO, f"{name} compares `self.device` with {label!r}: a label, not a torch device", None
            for n in _walk_shallow(stmt):
                if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None:
                    targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                    if any(isinstance(t, ast.Attribute) and t.attr == "device" and isinstance(t.value, ast.Name)
                           and t.value.id == "self" for t in targets):
                        v = value_evidence(ctx, n.value, stmt, n.lineno)
                        if isinstance(n.value, ast.Name):
                            v = name_evidence(ctx, n.value.id, stmt, n.lineno)[:3]
                        verdicts.append((v[0], f"{name} sets `self.device` to {ctx.src(n.value)} ({v[1]})", v[2]))
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == "device" for t in targets):
                v = value_evidence(ctx, stmt.value, None, stmt.lineno)
                verdicts.append((v[0], f"{name}.device: {v[1]}", v[2]))
    for b in node.bases:
        bname = b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None)
        if bname in KNOWN_DEVICE_BASES or bname in MORE_DEVICE_BASES:
            verdicts.append((YES, f"{name} inherits `device` from {bname}", Evidence.DEVICE_ATTR))
        elif bname in _module_classes(ctx) and bname not in seen:
            v = _self_device_evidence(ctx, _module_classes(ctx)[bname], seen)
            if v[1] != "nothing binds it":
                verdicts.append(v)
    if not verdicts:
        return YES, f"{name}'s methods read `self.device` (a base provides it)", Evidence.DEVICE_ATTR
    return _combine(verdicts)


def _value_roots(node: ast.AST) -> Set[str]:
    """The names whose value ``node`` is (not its arguments): ``x[0].float()``, ``(m.sigmoid() > 0.5)`` -> x, m."""
    out: Set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, (ast.Attribute, ast.Subscript, ast.Starred)):
            stack.append(n.value)
        elif isinstance(n, ast.Call):
            if isinstance(n.func, ast.Attribute):
                stack.append(n.func.value)
        elif isinstance(n, ast.BinOp):
            stack += [n.left, n.right]
        elif isinstance(n, ast.Compare):
            stack += [n.left, *n.comparators]
        elif isinstance(n, ast.UnaryOp):
            stack.append(n.operand)
    return out


def _derived_from(ctx: "RuleContext", func: FuncInfo, moved: Set[str]) -> Set[str]:
    """Locals computed from a moved parameter without moving it (``s = torch.sum(x)``): on its device."""
    out: Set[str] = set()
    for name, bindings in _scope_bindings(ctx, func.node).items():
        for _, kind, node in bindings:
            if kind != "assign":
                continue
            value = node[0]
            reads = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
            moves = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("cuda", "to")
                        for n in ast.walk(value))
            if reads & moved and not moves:
                out.add(name)
    return out


def moved_params(ctx: "RuleContext", func: FuncInfo) -> Set[str]:
    """Parameters the function moves to a hardcoded accelerator itself (``x.cuda()``, ``x.to("cuda")``):
    they arrive elsewhere (the CPU), so neither they nor the other parameters show the target device."""
    cache = ctx.inference_cache.setdefault("inference.moved", {})
    key = id(func.node)
    if key in cache:
        return cache[key]
    found: Set[str] = set()
    for n in _walk_shallow(func.node):
        if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
            continue
        moves = n.func.attr == "cuda" or (n.func.attr == "to" and any(
            ctx.device_literal(a) is not None for a in [*n.args[:1], *[k.value for k in n.keywords
                                                                        if k.arg == "device"]]))
        if moves:
            found |= {r for r in _value_roots(n.func.value) if r in func.params}
    found.discard("self")
    cache[key] = found
    return found


def _module_classes(ctx: "RuleContext") -> Dict[str, ast.ClassDef]:
    cache = ctx.inference_cache.get("inference.classes")
    if cache is None:
        cache = ctx.inference_cache["inference.classes"] = {}
        for n in ast.walk(ctx.tree):
            if isinstance(n, ast.ClassDef):
                cache.setdefault(n.name, n)
    return cache


# Fixes that use the module-level device one of them introduces share this group.
MODULE_DEVICE_GROUP = "module-device"
MODULE_DEVICE_NAMES = ("DEVICE", "DEFAULT_DEVICE", "TORCH_DEVICE")


def infer_device(ctx: "RuleContext", at: ast.AST, exclude_roots: Set[str] = frozenset(),
                 allow_add_property: bool = True,
                 allow_new_device: bool = False) -> Union[DeviceChoice, Refusal, None]:
    """Choose a device expression for a fix at ``at``, by documented precedence.

    Returns everything it decided: a :class:`DeviceChoice` (expression, reason, safety, evidence, the
    property or module-level device it needs, its fix group), a :class:`Refusal` (false, like None)
    where ``--device-expr`` cannot be written at ``at``, or None.  Pass it to ``ck.report(...,
    choice=...)``: the engine completes the fix from it.

    1. ``--device-expr`` (only where its root name is bound: otherwise None,
    and :func:`device_expr_refusal` says why); 2. a tensor the value is
    assigned into or combined with in the same statement (a name with
    tensor-only evidence); 3. ``self.device``; 4. a device variable or
    parameter in scope, or a module-level device, then a tensor the function
    built on the accelerator earlier on every path; 5. a known tensor the value
    is sized from, then a tensor parameter (annotated, or read through a
    tensor-only attribute: unsafe); 6. (unsafe) a ``device`` property added to
    the enclosing ``nn.Module`` (one with parameters or buffers); 7. (unsafe,
    only with ``allow_new_device``) a module-level ``DEVICE`` that the fix
    defines after the module's imports.

    Each choice carries its :class:`Evidence`.  A name is safe only when every
    binding of it is a torch device and one precedes the site
    (:func:`name_evidence`); ``self.device`` only when the class never holds a
    label there (:func:`self_device_evidence`).  Names that are not devices
    (integers, ``"gpu"``) are skipped; names of unknown kind give unsafe
    candidates.  Parameters the function moves itself, and values computed from
    them, are never sources.  The first safe candidate of 2-5 wins; with none,
    the first unsafe one, and only then 6 and 7.
    """
    if not ctx.fixes:
        return None
    if ctx.options.device_expr:
        why = device_expr_refusal(ctx, ctx.options.device_expr, at)
        if why is not None:
            return Refusal(why)
        return DeviceChoice(ctx.options.device_expr, "configured by --device-expr", True,
                            evidence=Evidence.CONFIGURED)
    func = ctx.current_function()
    method = ctx.enclosing_method()
    # The first safe candidate wins; without one, the first unsafe one (before 6 and 7).
    fallback: Optional[DeviceChoice] = None
    for choice in _candidates(ctx, at, exclude_roots, func, method):
        if choice.safe:
            return choice
        if fallback is None:
            fallback = choice
    if fallback is not None:
        return fallback
    # 6. add a device property to the enclosing nn.Module
    if (
        allow_add_property
        and method is not None
        and method.cls is not None
        and method.cls.is_module
        and getattr(method.node, "name", "") not in ("__init__", "device")
        and ctx.torch_name() is not None
        and holds_tensors(ctx, method.cls.node)
    ):
        # Every fix relying on the property depends on the one that adds it: one group.
        return DeviceChoice(
            "self.device",
            f"adds a `device` property to {method.cls.node.name} (from its parameters or buffers)",
            False,
            add_property_to=method.cls,
            evidence=Evidence.NEW_PROPERTY,
            group=f"device property of {method.cls.node.name} (line {method.cls.node.lineno})",
        )
    # 7. a device the module defines once, after its imports
    if allow_new_device and "DEVICE" not in exclude_roots:
        return new_module_device(ctx, at)
    return None


def _candidates(ctx: "RuleContext", at: ast.AST, exclude_roots: Set[str], func: Optional[FuncInfo],
                method: Optional[FuncInfo]):
    """Precedences 2 to 5, in order; each with its evidence (safe only where it holds on every path)."""
    line = getattr(at, "lineno", 0)
    moved = moved_params(ctx, func) if func is not None and isinstance(
        func.node, (ast.FunctionDef, ast.AsyncFunctionDef)) else set()
    if moved:
        moved = moved | _derived_from(ctx, func, moved)
    # 2. same statement
    choice = _statement_tensor(ctx, at, exclude_roots, func, moved)
    if choice is not None:
        yield choice
    # 3. self.device
    if method is not None and method.cls is not None and method.cls.has_device and "self" not in exclude_roots:
        fn_name = getattr(method.node, "name", "")
        if fn_name != "device" and fn_name not in ("__init__",):
            verdict, why, evidence = self_device_evidence(ctx, method.cls)
            if verdict != NO:
                yield DeviceChoice("self.device", f"the enclosing class {method.cls.node.name} has `self.device`"
                                   + ("" if verdict == YES else f" ({why}: unsafe)"),
                                   verdict == YES, evidence=evidence or Evidence.UNKNOWN)
    # 4. device variable / parameter
    for f in reversed(ctx.func_stack):
        for name, bound in f.device_names.items():
            if name in exclude_roots or (bound >= line and name not in f.params):
                continue
            verdict, why, evidence, _ = name_evidence(ctx, name, f.node, line)
            if verdict == NO:
                continue
            yield DeviceChoice(name, f"`{name}` is a device in scope" + (f" ({why})" if verdict == YES
                                                                         else f" ({why}: unsafe)"),
                               verdict == YES, evidence=evidence or Evidence.UNKNOWN)
    for name, bound in ctx.module_device_names.items():
        if name in exclude_roots or _class_body_shadows(ctx, name):
            continue
        if any(name in _scope_bindings(ctx, f.node) for f in ctx.func_stack):
            continue  # a local of that name hides the module's
        verdict, why, evidence, late = name_evidence(ctx, name, None, line)
        if verdict == NO or (late and not ctx.func_stack):
            continue
        yield DeviceChoice(name, f"module-level device `{name}`" + (f" ({why})" if verdict == YES
                                                                     else f" ({why}: unsafe)"),
                           verdict == YES, evidence=evidence or Evidence.UNKNOWN)
    # 4b. a tensor this function built on the accelerator before the site
    choice = _built_on_accelerator(ctx, line, exclude_roots, func)
    if choice is not None:
        yield choice
    # 5. a known tensor the value is sized from, then a tensor parameter
    choice = _sized_from_tensor(ctx, at, exclude_roots, func, moved)
    if choice is not None:
        yield choice
    if func is not None and isinstance(func.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        annotated = []
        guessed = []
        for name, ann in func.params.items():
            if name in ("self", "cls") or name in exclude_roots or name in moved:
                continue
            ann_src = ast.unparse(ann) if ann is not None else ""
            if ann_src.endswith("Tensor") and "List" not in ann_src and "list" not in ann_src:
                annotated.append(name)
            elif ann is None and name in ctx.tensor_used_params(func):
                guessed.append(name)
        if annotated:
            n = annotated[0]
            yield DeviceChoice(f"{n}.device", f"`{n}` is a tensor parameter (annotated)", True,
                               evidence=Evidence.TENSOR)
        if guessed:
            n = guessed[0]
            yield DeviceChoice(f"{n}.device", f"`{n}` is used as a tensor (an attribute only tensors have; "
                               "guessed)", False, evidence=Evidence.GUESS)


def _built_on_accelerator(ctx: "RuleContext", line: int, exclude: Set[str],
                          func: Optional[FuncInfo]) -> Optional[DeviceChoice]:
    """``a = torch.zeros(n, device="cuda")`` (or ``torch.ones(n).cuda()``) earlier in the function body, on
    every path (a statement of the body itself), its name bound nowhere else: the site follows ``a.device``,
    one device expression for the tensors that meet instead of one availability test per site."""
    if func is None or not isinstance(func.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    bindings = _scope_bindings(ctx, func.node)
    for stmt in func.node.body:
        if stmt.end_lineno >= line:
            break
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Call)):
            continue
        name = stmt.targets[0].id
        if name in exclude or len(bindings.get(name, ())) != 1 or _is_device_name(name):
            continue
        call = stmt.value
        on_accelerator = False
        if isinstance(call.func, ast.Attribute) and call.func.attr in ("cuda", "to"):
            args = [*call.args[:1], *[k.value for k in call.keywords if k.arg == "device"]]
            on_accelerator = (call.func.attr == "cuda" and not call.args) or any(
                ctx.device_literal(a) is not None for a in args)
            inner = call.func.value
            while isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
                inner = inner.func.value
            call = inner if isinstance(inner, ast.Call) else call
        q = ctx.resolve(call.func) if isinstance(call, ast.Call) else None
        if not (q and returns_tensor(q)):
            continue
        if not on_accelerator:
            dev = next((k.value for k in call.keywords if k.arg == "device"), None)
            on_accelerator = dev is not None and ctx.device_literal(dev) is not None and isinstance(dev, ast.Constant) \
                and ":" not in dev.value
        if on_accelerator:
            return DeviceChoice(f"{name}.device", f"`{name}` was built on the accelerator earlier in this function",
                                True, evidence=Evidence.TENSOR)
    return None


def holds_tensors(ctx: "RuleContext", cls: ast.ClassDef, seen: Optional[Set[str]] = None) -> bool:
    """Whether instances of the module class ``cls`` may have a parameter or buffer (an added ``device``
    property would otherwise always answer the CPU): ``nn.Parameter``, ``register_buffer``, a tensor or a
    submodule assigned to ``self``, or a base other than ``nn.Module`` itself."""
    seen = set() if seen is None else seen
    seen.add(cls.name)
    classes = _module_classes(ctx)
    for b in cls.bases:
        q = ctx.resolve(b) or ""
        bname = b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
        if q in ("torch.nn.Module", "torch.nn.modules.module.Module") or bname == "object":
            continue
        if bname in classes:
            if bname not in seen and holds_tensors(ctx, classes[bname], seen):
                return True
            continue
        return True  # an imported base (a backbone, a meta-architecture...)
    for n in ast.walk(cls):
        if isinstance(n, ast.Call):
            f = n.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if fname in ("register_buffer", "register_parameter", "register_module", "add_module", "Parameter"):
                return True
        elif isinstance(n, (ast.Assign, ast.AnnAssign)) and isinstance(n.value, ast.Call):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if any(isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                   for t in targets):
                q = ctx.resolve(n.value.func) or ""
                last = q.rsplit(".", 1)[-1] if q else getattr(n.value.func, "id", getattr(n.value.func, "attr", ""))
                if q.startswith("torch.") and last[:1].isupper() and last not in ("Size", "Generator", "device"):
                    return True
                if last in classes or (not q.startswith("torch.") and last[:1].isupper()):
                    return True  # a submodule of the module's own (or an imported) class
    return False


def device_expr_refusal(ctx: "RuleContext", expr: str, at: ast.AST) -> Optional[str]:
    """Why ``--device-expr`` cannot be written at ``at`` (None: it can).

    Its root name must resolve there: ``self`` inside a method that has it, a
    parameter or local of an enclosing function, a module-level name bound
    before module code uses it, or ``torch`` (bound by the fixer if missing).
    """
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return f"--device-expr `{expr}` is not a Python expression"
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    if not isinstance(node, ast.Name):
        return None  # a literal or a bracketed expression: nothing to resolve
    root = node.id
    if root == "torch" or root in _BUILTINS:
        return None
    line = getattr(at, "lineno", 0)
    if root == "self":
        method = ctx.enclosing_method()
        if method is not None:
            return _unset_in_init(ctx, expr, method, line)
        return (f"--device-expr `{expr}` needs `self`, which is not bound here (module code, a class body, "
                "a decorator or default value, a static or class method)")
    if _class_body_shadows(ctx, root):
        return f"--device-expr `{expr}`: `{root}` here is an attribute of the class body around it"
    for f in ctx.func_stack:
        if root in f.params or f.bound_names.get(root, line) < line:
            return None
    bound = ctx.module_names.get(root)
    if bound is not None and (ctx.func_stack or bound < line):
        return None
    return f"--device-expr `{expr}`: `{root}` is not bound here"


_BUILTINS = frozenset(dir(__import__("builtins")))


def _unset_in_init(ctx: "RuleContext", expr: str, method: FuncInfo, line: int) -> Optional[str]:
    """Inside ``__init__``, ``self.<attr>`` exists only once set: by the class body (a property, a method,
    a class attribute), a base that provides it, or an assignment earlier in ``__init__``."""
    node = ast.parse(expr, mode="eval").body
    attr = None
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            attr = node.attr
        node = node.func if isinstance(node, ast.Call) else node.value
    if attr is None or getattr(method.node, "name", "") != "__init__" or method.cls is None:
        return None
    cls = method.cls.node
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == attr:
            return None
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == attr for t in targets):
                return None
    for n in ast.walk(method.node):
        if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.lineno < line:
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if any(isinstance(t, ast.Attribute) and t.attr == attr and isinstance(t.value, ast.Name)
                   and t.value.id == "self" for t in targets):
                return None
    classes = _module_classes(ctx)
    for b in cls.bases:
        bname = b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None)
        q = ctx.resolve(b) or ""
        if attr == "device" and (bname in KNOWN_DEVICE_BASES or bname in MORE_DEVICE_BASES):
            return None
        if bname in classes and bname != cls.name:
            return None  # the module's own base may set it (its __init__ runs first when called)
        if not q.startswith("torch.nn") and bname not in ("object", None):
            return None  # an imported base may provide it
    return (f"--device-expr `{expr}`: `self.{attr}` does not exist yet here, in `__init__` "
            f"of {cls.name} before anything sets it")


def _class_body_shadows(ctx: "RuleContext", name: str) -> bool:
    """Whether code at this point runs in a class body (its statements, decorators, method defaults)
    that binds ``name``: there the name is the class attribute, not the global or the local outside."""
    if not ctx.class_stack:
        return False
    cls = ctx.class_stack[-1].node
    if ctx.func_stack:
        fn = ctx.func_stack[-1].node
        if not (fn.lineno <= cls.lineno and cls.end_lineno <= fn.end_lineno):
            return False  # the innermost scope is a function inside the class
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name == name:
            return True
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name.split(".")[0]) == name for a in stmt.names):
            return True
    return False


def new_module_device(ctx: "RuleContext", at: ast.AST) -> Optional[DeviceChoice]:
    """(unsafe) ``DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")`` after the imports.

    Reuses the name once a fix of this run has claimed it.  None when the
    module does not import torch at its top level before the code at ``at``,
    or no free name is left.
    """
    claimed = ctx.importer.module_device
    if claimed is None:
        names = ctx.module_names
        claimed = next((n for n in MODULE_DEVICE_NAMES if n not in names), None)
        if claimed is None or module_device_insertion(ctx, getattr(at, "lineno", 0), claimed) is None:
            return None
    return DeviceChoice(claimed, "no device in scope: defines one for the module after its imports "
                                 "(the accelerator when available, else the CPU)", False,
                        evidence=Evidence.NEW_MODULE_DEVICE, defines=claimed)


def module_device_insertion(ctx: "RuleContext", line: int, name: str) -> Optional[InsertBefore]:
    """The op defining the module device ``name`` for code at ``line``: before the first top-level
    statement after the last top-level import that precedes that code, provided torch is imported by then."""
    torch = ctx.torch_name()
    body = list(getattr(ctx.tree, "body", []))
    last_import = None
    torch_seen = False
    for i, stmt in enumerate(body):
        if stmt.lineno > line or stmt.end_lineno >= line >= stmt.lineno:
            break
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            last_import = i
            if isinstance(stmt, ast.Import) and any(
                (a.asname or a.name.split(".")[0]) == torch and a.name.split(".")[0] == "torch"
                for a in stmt.names
            ):
                torch_seen = True
    if last_import is None or not torch_seen or last_import + 1 >= len(body):
        return None
    nxt = body[last_import + 1]
    decorators = getattr(nxt, "decorator_list", None)
    start = decorators[0].lineno if decorators else nxt.lineno
    if nxt.col_offset != 0 or start - 1 >= len(ctx.lines):
        return None
    first_line = ctx.lines[start - 1]
    nl = "\r\n" if first_line.endswith("\r\n") else "\n"
    blank = 2 if isinstance(nxt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else 1
    text = f'{name} = {module_device_expr(ctx, torch)}{nl}' + nl * blank
    # Comments right above the statement (``# fmt: off``, a heading) belong to it: go above them.
    top = start
    while top >= 2 and ctx.lines[top - 2].lstrip().startswith("#") and top - 2 > body[last_import].end_lineno - 1:
        top -= 1
    if top != start:
        first_line = ctx.lines[top - 1]
        if first_line[: len(first_line) - len(first_line.lstrip())]:
            return None
        if top >= 2 and ctx.lines[top - 2].strip():
            text = nl + text
        comment = ctx.lines[top - 1].rstrip("\r\n")
        return InsertBefore(Span(top, 0, top, len(comment.encode("utf-8"))), text)
    if start >= 2 and ctx.lines[start - 2].strip():
        text = nl + text  # the imports end right above: keep them apart
    span = Span(start, nxt.col_offset, nxt.end_lineno, nxt.end_col_offset) if decorators else Span.of(nxt)
    return InsertBefore(span, text)


_LAST_PAIRS: List = [None, []]  # (statement, its operand pairs)


def _operator_pairs(stmt: ast.stmt) -> List[Tuple[ast.AST, ast.AST]]:
    """(operand, partner) of every binary operation and comparison in ``stmt``.

    Computed once per statement (the last one is kept): a statement with K
    diagnostics would otherwise be walked K times.
    """
    if _LAST_PAIRS[0] is not stmt:
        pairs: List[Tuple[ast.AST, ast.AST]] = []
        for n in _walk_shallow(stmt):
            if isinstance(n, ast.BinOp) and not isinstance(n.op, ast.Mod):
                pairs += [(n.left, n.right), (n.right, n.left)]
            elif isinstance(n, ast.Compare) and len(n.comparators) == 1:
                pairs += [(n.left, n.comparators[0]), (n.comparators[0], n.left)]
        _LAST_PAIRS[:] = [stmt, pairs]
    return _LAST_PAIRS[1]


def _statement_tensor(ctx: "RuleContext", at: ast.AST, exclude: Set[str],
                      func: Optional[FuncInfo], moved: Set[str] = frozenset()) -> Optional[DeviceChoice]:
    stmt = ctx.statement
    if stmt is None:
        return None
    candidates: List[ast.AST] = []
    if isinstance(stmt, (ast.Assign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for t in targets:
            if isinstance(t, ast.Subscript) and _contains(stmt.value, at):
                candidates.append(t.value)
    # combined with: a binary operation or comparison partner
    for mine, other in _operator_pairs(stmt):
        if mine is at or _contains(mine, at):
            candidates.append(other)
    for cand in candidates:
        root = cand
        while isinstance(root, (ast.Subscript, ast.Attribute)) and not (
            isinstance(root, ast.Attribute) and isinstance(root.value, ast.Name) and root.value.id == "self"
        ):
            root = root.value
        if isinstance(root, ast.Attribute):  # self.<attr>
            text = f"self.{root.attr}"
            name = "self"
        elif isinstance(root, ast.Name):
            text = root.id
            name = root.id
        else:
            continue
        if name in exclude or _is_device_name(text) or text in ("self",):
            continue
        if name in moved:
            continue  # the function moves this parameter itself: it is not on the target device
        if name == "self":
            method = ctx.enclosing_method()
            if method is not None and method.cls is not None and root.attr in method.cls.tensor_attrs:
                return DeviceChoice(f"{text}.device", f"`{text}` is a tensor attribute in the same statement",
                                    True, evidence=Evidence.TENSOR)
            continue
        if func is not None and name in func.tensor_names and func.tensor_names[name] <= getattr(at, "lineno", 0):
            return DeviceChoice(f"{text}.device", f"`{text}` is a tensor in the same statement", True,
                                evidence=Evidence.TENSOR)
        ann = func.params.get(name) if func is not None else None
        if ann is not None and ast.unparse(ann).endswith("Tensor"):
            return DeviceChoice(f"{text}.device", f"`{text}` is a tensor in the same statement", True,
                                evidence=Evidence.TENSOR)
        if func is not None and name in func.params and name in ctx.tensor_used_params(func):
            return DeviceChoice(f"{text}.device", f"`{text}` is combined with the value in the same statement "
                                "and used as a tensor elsewhere (guessed)", False,
                                evidence=Evidence.GUESS)
        # No tensor-only evidence: a list, a number or a config object has no ``.device``.
    return None


def _sized_from_tensor(ctx: "RuleContext", at: ast.AST, exclude: Set[str],
                       func: Optional[FuncInfo], moved: Set[str] = frozenset()) -> Optional[DeviceChoice]:
    """A known tensor whose shape or size the value is built from: ``torch.full((x.shape[0],), -1)``."""
    if func is None:
        return None
    line = getattr(at, "lineno", 0)
    for n in _walk_shallow(at):
        if not (
            isinstance(n, ast.Attribute)
            and n.attr in ("shape", "size")
            and isinstance(n.value, ast.Name)
            and n.value.id not in exclude
        ):
            continue
        name = n.value.id
        if name in moved:
            continue
        ann = func.params.get(name)
        if func.tensor_names.get(name, line) < line or (ann is not None and ast.unparse(ann).endswith("Tensor")):
            return DeviceChoice(f"{name}.device", f"the value is sized from the tensor `{name}`", True,
                                evidence=Evidence.TENSOR)
    return None


def _contains(outer: ast.AST, inner: ast.AST) -> bool:
    if outer is inner:
        return True
    try:
        return (outer.lineno, outer.col_offset) <= (inner.lineno, inner.col_offset) and (
            inner.end_lineno, inner.end_col_offset) <= (outer.end_lineno, outer.end_col_offset)
    except AttributeError:
        return False


def module_device_expr(ctx: "RuleContext", torch: str) -> str:
    """The module device's value: ``torch.device("cuda" if torch.cuda.is_available() else "cpu")``; with
    ``--torch-version 2.6`` or later the current accelerator where there is one, else the CPU."""
    if ctx.options.accelerator_api:
        return (f'{torch}.accelerator.current_accelerator() if {torch}.accelerator.is_available() '
                f'else {torch}.device("cpu")')
    return f'{torch}.device("cuda" if {torch}.cuda.is_available() else "cpu")'


def availability_expr(ctx: "RuleContext", node: ast.AST, dev_type: str) -> Optional[str]:
    """``"cuda" if torch.cuda.is_available() else "cpu"`` for the literal at ``node``.

    With ``--torch-version 2.6`` or later a literal naming the bare device type (``"cuda"``, not
    ``"cuda:1"``) becomes the type of the current accelerator where there is one, else ``"cpu"``:
    a string still, like the literal.
    """
    torch = ctx.torch_name()
    tmpl = AVAILABILITY_EXPR.get(dev_type)
    if torch is None or tmpl is None:
        return None
    if ctx.options.accelerator_api and isinstance(node, ast.Constant) and node.value == dev_type:
        return f'{torch}.accelerator.current_accelerator().type if {torch}.accelerator.is_available() else "cpu"'
    return f"{ctx.src(node)} if {tmpl.format(torch=torch)} else \"cpu\""


def body_insertion_point(ctx: "RuleContext", owner: ast.AST):
    """Where new statements go at the top of a class or function body.

    Returns ``(span, indent, newline)``: the first statement after a docstring
    (with its decorators), its indentation and the file's newline; None when
    the body has nothing but a docstring, or starts on the header's line.
    """
    body = owner.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
        first.value.value, str
    ):
        if len(body) == 1:
            return None
        first = body[1]
    if first.lineno <= owner.lineno or first.lineno - 1 >= len(ctx.lines):
        return None
    line = ctx.lines[first.lineno - 1]
    indent = line[: len(line) - len(line.lstrip())]
    if first.col_offset != len(indent.encode("utf-8")):
        return None
    newline = "\r\n" if line.endswith("\r\n") else "\n"
    decorators = getattr(first, "decorator_list", None)
    if decorators:
        span = Span(decorators[0].lineno, first.col_offset, first.end_lineno, first.end_col_offset)
    else:
        span = Span.of(first)
    return span, indent, newline


def property_insertion(ctx: "RuleContext", cls: ClassInfo):
    """The op that adds a ``device`` property to ``cls``, or None if it cannot be placed."""
    point = body_insertion_point(ctx, cls.node)
    if point is None:
        return None
    span, indent, nl = point
    text = nl.join([
        f"{indent}@property",
        f"{indent}def device(self):",
        f'{indent}    """The device of the first parameter or buffer (the CPU if there is none)."""',
        f"{indent}    for tensor in (*self.parameters(), *self.buffers()):",
        f"{indent}        return tensor.device",
        f'{indent}    return {ctx.torch_name()}.device("cpu")',
        "",
        "",
    ])
    return InsertBefore(span, text)


# --------------------------------------------------------------------------
# finishing a rule's fix: names it needs, the module device it introduces


def _op_texts(op) -> List[str]:
    """The texts of ``op`` that hold Python code naming things (import statements excluded: their
    ``torch`` is a module path, not a name the fix reads)."""
    if isinstance(op, RewriteCall):
        return [v for _, v in op.keywords] + ([op.func] if op.func else [])
    return [] if _is_import(op.text) else [op.text]


def _is_import(text: str) -> bool:
    head = text.lstrip()
    if not head.startswith(("import ", "from ")):
        return False
    try:
        body = ast.parse(text.strip()).body
    except SyntaxError:
        return False
    return bool(body) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body)


def _respell(text: str, alias: str) -> str:
    """``torch.x`` -> ``<alias>.x`` for every ``torch`` name token in ``text`` (strings and comments kept)."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return text
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln))
    out = text
    for i in range(len(toks) - 1, -1, -1):
        t = toks[i]
        prev = toks[i - 1] if i else None
        if (t.type == tokenize.NAME and t.string == "torch" and i + 1 < len(toks) and toks[i + 1].string == "."
                and not (prev is not None and prev.string == ".")):
            a = offsets[t.start[0] - 1] + t.start[1]
            out = out[:a] + alias + out[a + len("torch"):]
    return out


def _names_torch(text: str) -> bool:
    if "torch" not in text:
        return False
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return True
    return any(
        t.type == tokenize.NAME and t.string == "torch" and (i == 0 or toks[i - 1].string != ".")
        for i, t in enumerate(toks)
    )


def _map_texts(op, fn):
    if isinstance(op, RewriteCall):
        return replace(op, keywords=tuple((k, fn(v)) for k, v in op.keywords),
                       func=fn(op.func) if op.func else op.func)
    return op if _is_import(op.text) else replace(op, text=fn(op.text))


class Importer:
    """How fix text spells ``torch`` and the module device in one module, for one run.

    ``torch_name()``: the name the module binds torch to (its alias, else ``torch``).
    ``module_device``: the module-level device a fix of this run defines (precedence 7 of
    :func:`infer_device`), once one has claimed it with :meth:`define_module_device`.
    :meth:`spell_torch` completes fix text that names ``torch``.
    """

    def __init__(self, facts) -> None:
        self.facts = facts
        self.module_device: Optional[str] = None

    def torch_name(self) -> Optional[str]:
        return self.facts.torch_name()

    def define_module_device(self, name: str) -> bool:
        """Record that a fix of this run defines the module device ``name``; False if one already does."""
        if self.module_device is not None:
            return False
        self.module_device = name
        return True

    def spell_torch(self, fix: Fix) -> Fix:
        """Fix text that spells ``torch`` where the module binds torch only under an alias
        (``import torch as T``) is respelled with the alias; otherwise a fix whose text names
        ``torch`` declares ``needs=("torch",)``."""
        texts = [t for op in fix.ops for t in _op_texts(op)]
        if not any(_names_torch(t) for t in texts):
            return fix
        alias = self.facts.torch_alias
        if alias is not None and alias != "torch" and not self.facts.binds_torch:
            return replace(fix, ops=tuple(_map_texts(op, lambda t: _respell(t, alias)) for op in fix.ops))
        if "torch" not in fix.needs:
            fix = replace(fix, needs=tuple(fix.needs) + ("torch",))
        return fix


def finish_fix(ctx: "RuleContext", code: str, line: int, fix: Optional[Fix], why: Optional[str],
               choice=None):
    """Complete a rule's fix before it is recorded, from what inference decided (``choice``: the
    :class:`DeviceChoice` or :class:`Refusal` the fix was built from, if any): ``(fix, no_fix_reason)``.

    * a ``--device-expr`` refused at the site drops the fix, with a reason naming the rule;
    * a fix relying on a ``device`` property that a fix of this run adds joins that property's group;
    * a fix using the module device the choice defines joins :data:`MODULE_DEVICE_GROUP`, and the
      first one carries its definition;
    * fix text naming ``torch`` is spelled as the module spells it (:meth:`Importer.spell_torch`).
    """
    if isinstance(choice, Refusal):
        return None, f"{code}: {choice.why}"
    if fix is None:
        return fix, why
    group = choice.group if choice is not None else None
    new_device = choice.defines if choice is not None else None
    if group is not None and fix.group is None and any(
            "self.device" in t for op in fix.ops for t in _op_texts(op)):
        fix = replace(fix, group=group)
    ops = list(fix.ops)
    if new_device is not None and any(re.search(rf"\b{re.escape(new_device)}\b", t)
                                      for op in ops for t in _op_texts(op)):
        if ctx.importer.define_module_device(new_device):
            op = module_device_insertion(ctx, line, new_device)
            if op is None:
                return None, f"{code}: cannot place a module-level device definition"
            ops.insert(0, op)
        fix = replace(fix, ops=tuple(ops), safe=False, group=MODULE_DEVICE_GROUP)
    return ctx.importer.spell_torch(fix), why
