"""Scope facts: what the rules know about names, classes and functions.

Below both the engine and the rules (engine -> rules -> facts): nothing here
imports either.  :class:`ModuleFacts` resolves names through a module's imports
and answers questions about its classes and functions; :class:`ClassInfo` and
:class:`FuncInfo` hold the facts of one enclosing class or function, computed
when a rule first asks.  The AST walk helpers are shared by the engine's walk.
"""

from __future__ import annotations

import ast
import re
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from .names import KNOWN_DEVICE_BASES

_DEVICE_STR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*\d+)?\s*$")
_DEVICE_PREFIX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::|$)")
DEVICE_STR = _DEVICE_STR  # a device string: ``"cuda"``, ``"cuda:1"``
DEVICE_PREFIX = _DEVICE_PREFIX  # the start of a device string built at run time: ``"cuda:" + ...``
# Bases that give ``self.device`` besides the modules of :data:`names.KNOWN_DEVICE_BASES`: Lightning's
# ``LightningLite``/``Fabric`` (in ``run``), ``accelerate.Accelerator``.
MORE_DEVICE_BASES = frozenset({"LightningLite", "Fabric", "Accelerator"})


# --------------------------------------------------------------------------
# scopes


class ClassInfo:
    """Facts about an enclosing class, computed when a rule first asks."""

    def __init__(self, node: ast.ClassDef, checker: "ModuleFacts"):
        self.node = node
        self._checker = checker
        self._has_device: Optional[bool] = None
        self._is_module: Optional[bool] = None
        self._tensor_attrs: Optional[Set[str]] = None

    @property
    def has_device(self) -> bool:
        """Whether instances expose ``self.device`` (defined here, or by a base)."""
        if self._has_device is None:
            self._has_device = self._checker._class_defines_device(self.node, set())
        return self._has_device

    @property
    def is_module(self) -> bool:
        if self._is_module is None:
            self._is_module = self._checker._class_is_module(self.node, set())
        return self._is_module

    @property
    def tensor_attrs(self) -> Set[str]:
        """``self.<name>`` attributes known to hold tensors: set from a torch call,
        ``nn.Parameter(...)``, or registered with ``register_buffer``/``register_parameter``."""
        if self._tensor_attrs is None:
            self._tensor_attrs = self._checker._class_tensor_attrs(self.node)
        return self._tensor_attrs


class FuncInfo:
    """Facts about an enclosing function; the body is scanned once, on first use."""

    def __init__(self, node: ast.AST, cls: Optional[ClassInfo], checker: "ModuleFacts", is_method: bool = False,
                 params: Optional[Dict[str, Optional[ast.expr]]] = None):
        self.node = node
        self.cls = cls
        self.is_method = is_method  # first parameter is ``self``
        self.params: Dict[str, Optional[ast.expr]] = params or {}  # name -> annotation
        self._checker = checker
        self._scanned = False
        self._device_names: Dict[str, int] = {}
        self._tensor_names: Dict[str, int] = {}
        self._list_names: Set[str] = set()
        self._str_names: Set[str] = set()
        self._int_names: Set[str] = set()
        self._bound_names: Dict[str, int] = {}
        self._device_aware = False
        self._tensor_params: Optional[Set[str]] = None

    def _scan(self) -> None:
        if not self._scanned:
            self._scanned = True
            self._checker._scan_function(self)

    @property
    def device_names(self) -> Dict[str, int]:
        """Local names bound to a device: name -> line of first binding (params: the def line)."""
        self._scan()
        return self._device_names

    @property
    def tensor_names(self) -> Dict[str, int]:
        """Local names bound from a torch call (certainly tensors): name -> first line."""
        self._scan()
        return self._tensor_names

    @property
    def list_names(self) -> Set[str]:
        """Names used as collections (data for tensor constructors)."""
        self._scan()
        return self._list_names

    @property
    def str_names(self) -> Set[str]:
        """Names bound to a string (or defaulting to one): as a ``.to()`` argument, a device."""
        self._scan()
        return self._str_names

    @property
    def int_names(self) -> Set[str]:
        """Names with integer-only evidence (``n = 3``, ``len(x)``, ``x.shape[0]``, ``n: int``)."""
        self._scan()
        return self._int_names

    @property
    def bound_names(self) -> Dict[str, int]:
        """Every name the function binds (parameters, assignments, loop targets, imports, defs) -> first line."""
        self._scan()
        return self._bound_names

    @property
    def device_aware(self) -> bool:
        """Has a device variable or parameter, or reads ``.device`` somewhere."""
        self._scan()
        return self._device_aware


def param_defaults(fn: ast.AST) -> List[Tuple[ast.arg, ast.expr]]:
    """``(parameter, default)`` pairs of a function or lambda, keyword-only ones included."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
    pairs += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
    return pairs


def is_device_name(name: str) -> bool:
    low = name.lower()
    return low == "dev" or "device" in low or low.endswith("_dev")


def is_dtype_name(name: str) -> bool:
    return "dtype" in name.lower()


# Fields that never hold child nodes a rule needs: scalars, ``ctx`` markers,
# operator singletons and import aliases.  Skipping them makes a walk about
# twice as fast as ``ast.iter_child_nodes``.
_SKIP_FIELDS = frozenset({
    "ctx", "id", "attr", "arg", "name", "module", "level", "kind", "n", "s", "conversion",
    "is_async", "type_comment", "simple", "tag", "op", "ops", "names", "asname", "rest", "kwd_attrs",
})
_FIELDS: Dict[type, Tuple[str, ...]] = {ast.Constant: (), ast.Name: ()}
_LEAVES = frozenset({ast.Constant, ast.Name})


def _child_fields(cls: type) -> Tuple[str, ...]:
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = tuple(f for f in cls._fields if f not in _SKIP_FIELDS)
        _FIELDS[cls] = fields
    return fields


def children(node: ast.AST) -> List[ast.AST]:
    """The child nodes of ``node`` in source order (may hold None for ``{**d}`` keys)."""
    out: List[ast.AST] = []
    fields = _FIELDS.get(node.__class__)
    if fields is None:
        fields = _child_fields(node.__class__)
    for f in fields:
        v = getattr(node, f, None)
        if v.__class__ is list:
            out.extend(v)
        elif v is not None:
            out.append(v)
    return out


def _walk_shallow(node: ast.AST):
    """Yield descendants of ``node`` without entering nested functions/classes."""
    stack = children(node)
    skip = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    while stack:
        n = stack.pop()
        if n is None:
            continue
        yield n
        if isinstance(n, skip):
            continue
        stack.extend(children(n))


_is_device_name = is_device_name


_INT_CALLS = frozenset({"len", "int", "round", "max", "min", "sum", "abs"})

# ``torch.*`` callables that do not return tensors (modules, devices, state, loaded objects...).
_NOT_TENSOR_PREFIXES = ("torch.nn.", "torch.cuda.", "torch.utils.", "torch.distributed.", "torch.backends.",
                        "torch.jit.", "torch.optim.", "torch.amp.", "torch.autograd.", "torch.accelerator.",
                        "torch.device", "torch.load", "torch.Size", "torch.Generator", "torch.finfo",
                        "torch.iinfo", "torch.get_", "torch.is_", "torch.set_", "torch.no_grad",
                        "torch.enable_grad", "torch.inference_mode", "torch.manual_seed", "torch.numel",
                        "torch.Stream", "torch.Event", "torch.compile", "torch.hub.", "torch.onnx.")


def returns_tensor(qual: str) -> bool:
    """Whether a call to ``qual`` (a resolved ``torch.*`` name) returns a tensor (or tensors)."""
    if not qual.startswith("torch."):
        return False
    if qual.startswith("torch.nn.functional.") or qual.startswith("torch.nn.init."):
        return True
    return not qual.startswith(_NOT_TENSOR_PREFIXES)


# Attributes only a tensor has (not a numpy array, an nn.Module or a config
# object): reading one of them on a name is evidence that the name is a tensor.
TENSOR_ONLY_ATTRS = frozenset({
    "device", "is_cuda", "sigmoid", "softmax", "log_softmax", "permute", "unsqueeze", "detach", "numel",
    "dim", "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "type_as", "expand", "expand_as",
    "masked_fill", "index_select", "long", "bool", "flip", "data_ptr", "is_contiguous",
})


def is_int_expr(node: ast.AST, int_names: Set[str] = frozenset()) -> bool:
    """Whether ``node`` evaluates to an integer by its form alone.

    ``3``, ``len(x)``, ``int(x)``, ``x.numel()``, ``x.size(0)``, ``x.shape[0]``,
    a name in ``int_names``, and arithmetic (``+ - * // %``) of those.
    """
    cls = node.__class__
    if cls is ast.Constant:
        return type(node.value) is int
    if cls is ast.Name:
        return node.id in int_names
    if cls is ast.BinOp:
        return isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)) and is_int_expr(
            node.left, int_names) and is_int_expr(node.right, int_names)
    if cls is ast.UnaryOp:
        return isinstance(node.op, ast.USub) and is_int_expr(node.operand, int_names)
    if cls is ast.Call:
        f = node.func
        if isinstance(f, ast.Name) and f.id in ("len", "int"):
            return True
        if isinstance(f, ast.Name) and f.id in _INT_CALLS and node.args:
            return all(is_int_expr(a, int_names) for a in node.args)
        if isinstance(f, ast.Attribute) and f.attr in ("numel", "dim"):
            return not node.args
        return isinstance(f, ast.Attribute) and f.attr == "size" and len(node.args) == 1 and not node.keywords
    if cls is ast.Subscript:
        v = node.value
        return isinstance(v, ast.Attribute) and v.attr == "shape" and not isinstance(node.slice, ast.Slice)
    return False


_is_dtype_name = is_dtype_name
walk_shallow = _walk_shallow


# --------------------------------------------------------------------------
# module facts


class ModuleFacts:
    """Import resolution and class/function facts of one module.

    ``watched``: callee names a rule may care about; ``on_alias(name)`` is
    called for every local alias of one (``from torch import zeros as Z``).
    """

    def __init__(self, tree: ast.AST, watched: Set[str] = frozenset(),
                 on_alias: Optional[Callable[[str], None]] = None):
        self.tree = tree
        self._watched = watched
        self._on_alias = on_alias
        # alias -> qualified name, e.g. {"T": "torch", "zeros": "torch.zeros"}
        self.aliases: Dict[str, str] = {}
        self.torch_alias: Optional[str] = None
        # Whether an import of the module binds the name ``torch`` itself.
        self.binds_torch = False
        # local name -> the import statement that binds it
        self.import_nodes: Dict[str, ast.stmt] = {}
        self.classes: Dict[str, ast.ClassDef] = {}
        # module-level names bound to a device expression
        self.module_device_names: Dict[str, int] = {}
        self._module_names: Optional[Dict[str, int]] = None

    def _note_alias(self, name: str, target: str) -> None:
        if self._on_alias is not None and target.rsplit(".", 1)[-1] in self._watched:
            self._on_alias(name)

    def add_import(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    self.aliases[a.asname] = a.name
                    self.import_nodes[a.asname] = node
                else:
                    top = a.name.split(".")[0]
                    self.aliases.setdefault(top, top)
                    self.import_nodes.setdefault(top, node)
                    if top == "torch":
                        self.binds_torch = True
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                    self.import_nodes[a.asname or a.name] = node
                    self._note_alias(a.asname or a.name, f"{node.module}.{a.name}")

    def prescan_module(self, tree: ast.AST) -> None:
        """Module-level imports and classes (also under top-level if/try/with).

        Imports inside functions are added when the walk reaches them.
        """
        stack = list(getattr(tree, "body", []))
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.add_import(node)
            elif isinstance(node, ast.ClassDef):
                self.classes.setdefault(node.name, node)
            elif isinstance(node, (ast.If, ast.Try, ast.With)) or node.__class__.__name__ == "TryStar":
                for fld in ("body", "orelse", "finalbody"):
                    stack.extend(getattr(node, fld, ()) or ())
                for h in getattr(node, "handlers", ()) or ():
                    stack.extend(h.body)
        for name, target in self.aliases.items():
            self._note_alias(name, target)
        for name, target in self.aliases.items():
            if target == "torch":
                self.torch_alias = name
                break
        if self.torch_alias is None and "torch" not in self.aliases:
            # Code that uses ``torch`` without importing it (snippets, notebooks).
            self.aliases["torch"] = "torch"
        for stmt in getattr(tree, "body", []):
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    if isinstance(t, ast.Name) and _is_device_name(t.id):
                        self.module_device_names.setdefault(t.id, stmt.lineno)

    @property
    def module_names(self) -> Dict[str, int]:
        """Every name bound at module level (assignments, defs, classes, imports) -> first line.

        Computed on first use (only fixes need it)."""
        if self._module_names is None:
            self._module_names = {}
            self._module_bindings(self.tree)
        return self._module_names

    def _module_bindings(self, tree: ast.AST) -> None:
        names = self._module_names
        for stmt in getattr(tree, "body", []):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.setdefault(stmt.name, stmt.lineno)
                continue
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for a in stmt.names:
                    if a.name != "*":
                        names.setdefault(a.asname or a.name.split(".")[0], stmt.lineno)
                continue
            for n in _walk_shallow(stmt) if not isinstance(stmt, ast.Expr) else ():
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    names.setdefault(n.id, stmt.lineno)
                elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.setdefault(n.name, stmt.lineno)
                elif isinstance(n, (ast.Import, ast.ImportFrom)):
                    for a in n.names:
                        if a.name != "*":
                            names.setdefault(a.asname or a.name.split(".")[0], stmt.lineno)

    def resolve(self, node: ast.AST) -> Optional[str]:
        """Qualified name of a Name/Attribute chain, following imports."""
        parts: List[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        base = self.aliases.get(node.id)
        if base is None:
            return None
        parts.append(base)
        return ".".join(reversed(parts))

    def torch_name(self) -> Optional[str]:
        """How this module spells ``torch`` (None if it cannot)."""
        if self.torch_alias:
            return self.torch_alias
        if self.aliases.get("torch") == "torch":
            return "torch"
        return None

    def _class_defines_device(self, cls: ast.ClassDef, seen: Set[str]) -> bool:
        if cls.name in seen:
            return False
        seen.add(cls.name)
        for stmt in cls.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "device":
                return True
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if any(isinstance(t, ast.Name) and t.id == "device" for t in targets):
                    return True
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                # ``self.device = ...`` defines it; reading ``self.device`` in the class's own
                # methods shows that a base (often imported, e.g. a detectron2 meta-architecture)
                # provides it.
                for n in _walk_shallow(stmt):
                    if (
                        isinstance(n, ast.Attribute)
                        and n.attr == "device"
                        and isinstance(n.value, ast.Name)
                        and n.value.id == "self"
                    ):
                        return True
        for b in cls.bases:
            name = b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None)
            if name in KNOWN_DEVICE_BASES or name in MORE_DEVICE_BASES:
                return True
            if name in self.classes and self._class_defines_device(self.classes[name], seen):
                return True
        return False

    def _class_tensor_attrs(self, cls: ast.ClassDef) -> Set[str]:
        found: Set[str] = set()
        for stmt in cls.body:
            if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for n in _walk_shallow(stmt):
                if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call):
                    q = self.resolve(n.value.func) or ""
                    if q.startswith("torch.") and not q.startswith("torch.device") and (
                        q.rsplit(".", 1)[-1][:1].islower() or q.endswith("Parameter")
                    ):
                        for t in n.targets:
                            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                                found.add(t.attr)
                elif (
                    isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and n.func.attr in ("register_buffer", "register_parameter")
                    and n.args
                    and isinstance(n.args[0], ast.Constant)
                    and isinstance(n.args[0].value, str)
                ):
                    found.add(n.args[0].value)
        return found

    def _class_is_module(self, cls: ast.ClassDef, seen: Set[str]) -> bool:
        if cls.name in seen:
            return False
        seen.add(cls.name)
        for b in cls.bases:
            q = self.resolve(b) or ""
            if q.startswith("torch.nn") or q.endswith("Module") or q.endswith("Backbone"):
                return True
            name = b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None)
            if name in KNOWN_DEVICE_BASES:
                return True
            if name in self.classes and self._class_is_module(self.classes[name], seen):
                return True
        return False

    def func_info(self, fn: ast.FunctionDef, class_stack: Sequence[ClassInfo] = ()) -> FuncInfo:
        """Facts of ``fn``; ``class_stack``: the classes around it, innermost last."""
        cls = class_stack[-1] if class_stack else None
        direct_cls = cls if (class_stack and fn in class_stack[-1].node.body) else None
        a = fn.args
        positional = [*a.posonlyargs, *a.args]
        all_args = [*positional, *a.kwonlyargs]
        if a.vararg:
            all_args.append(a.vararg)
        if a.kwarg:
            all_args.append(a.kwarg)
        params = {p.arg: p.annotation for p in all_args}
        is_static = any(
            (isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod")) for d in fn.decorator_list
        )
        first = positional[0].arg if positional else None
        is_method = direct_cls is not None and not is_static and first == "self"
        return FuncInfo(fn, direct_cls if is_method else None, self, is_method=is_method, params=params)

    def _scan_function(self, info: FuncInfo) -> None:
        """Fill a FuncInfo's name facts from one walk over the function body."""
        fn = info.node
        device_names, tensor_names, list_names = info._device_names, info._tensor_names, info._list_names
        str_names = info._str_names
        int_names, bound = info._int_names, info._bound_names
        for name in info.params:
            bound[name] = getattr(fn, "lineno", 0)
        for p, d in param_defaults(fn):
            if isinstance(d, ast.Constant) and isinstance(d.value, str):
                str_names.add(p.arg)
            elif isinstance(d, ast.Constant) and type(d.value) is int:
                int_names.add(p.arg)
        for name, ann in info.params.items():
            if isinstance(ann, ast.Name) and ann.id == "int":
                int_names.add(name)
        for name in info.params:
            if _is_device_name(name) and name != "device_ids":
                device_names[name] = fn.lineno
        torch = self.torch_name()
        aware = bool(device_names)
        for n in _walk_shallow(fn):
            cls = n.__class__
            if cls is ast.Attribute:
                if n.attr == "device":
                    aware = True
            elif cls is ast.Assign or cls is ast.AnnAssign or cls is ast.AugAssign:
                targets = n.targets if cls is ast.Assign else [n.target]
                value = n.value
                if cls is ast.Assign and isinstance(value, (ast.Call, ast.Subscript)) and torch is not None:
                    # ``a, b = torch.min(c, dim=1)`` and ``i = torch.min(c, dim=1)[1]`` bind tensors too
                    call = value.value if isinstance(value, ast.Subscript) else value
                    q = self.resolve(call.func) if isinstance(call, ast.Call) else None
                    if q and returns_tensor(q):
                        for t in targets:
                            names = t.elts if isinstance(t, ast.Tuple) else [t]
                            for e in names:
                                if isinstance(e, ast.Name):
                                    tensor_names.setdefault(e.id, n.lineno)
                for t in targets:
                    if not isinstance(t, ast.Name):
                        continue
                    if is_int_expr(value, int_names):
                        int_names.add(t.id)
                    if isinstance(value, (ast.Constant, ast.JoinedStr)) and (
                        not isinstance(value, ast.Constant) or isinstance(value.value, str)
                    ):
                        str_names.add(t.id)
                    if _is_device_name(t.id):
                        device_names.setdefault(t.id, n.lineno)
                        aware = True
                    if isinstance(value, (ast.List, ast.ListComp)) or (
                        isinstance(value, ast.Call)
                        and (
                            (isinstance(value.func, ast.Name) and value.func.id == "list")
                            or (isinstance(value.func, ast.Attribute) and value.func.attr == "tolist")
                            or (self.resolve(value.func) or "").startswith("numpy.")
                        )
                    ):
                        list_names.add(t.id)
                    if isinstance(value, ast.Call) and torch is not None:
                        q = self.resolve(value.func) or ""
                        if returns_tensor(q):
                            tensor_names.setdefault(t.id, n.lineno)
            elif cls is ast.Call:
                f = n.func
                if isinstance(f, ast.Name) and f.id == "len" and len(n.args) == 1 and isinstance(n.args[0], ast.Name):
                    list_names.add(n.args[0].id)  # a sized collection: data, not a size
            elif (cls is ast.For or cls is ast.comprehension) and isinstance(n.iter, ast.Name):
                list_names.add(n.iter.id)
            elif cls is ast.Compare:
                # ``x == []``, ``type(x) == list``: a collection
                parts = [n.left, *n.comparators]
                if any(isinstance(p, (ast.List, ast.Tuple)) or (isinstance(p, ast.Name) and p.id in ("list", "tuple"))
                       for p in parts):
                    for p in parts:
                        if isinstance(p, ast.Call) and isinstance(p.func, ast.Name) and p.func.id == "type" \
                                and len(p.args) == 1:
                            p = p.args[0]
                        if isinstance(p, ast.Name) and p.id not in ("list", "tuple"):
                            list_names.add(p.id)
            elif cls is ast.Name:
                if n.ctx.__class__ is ast.Store:
                    if bound.get(n.id, n.lineno + 1) > n.lineno:
                        bound[n.id] = n.lineno
            elif cls is ast.FunctionDef or cls is ast.AsyncFunctionDef or cls is ast.ClassDef:
                bound.setdefault(n.name, n.lineno)
            elif cls is ast.Import or cls is ast.ImportFrom:
                for a in n.names:
                    bound.setdefault(a.asname or a.name.split(".")[0], n.lineno)
        info._device_aware = aware

    def tensor_used_params(self, func: FuncInfo) -> Set[str]:
        """Parameters read through an attribute only a tensor has: ``p.device``, ``p.sigmoid()``, ``p.unsqueeze``..."""
        if func._tensor_params is not None:
            return func._tensor_params
        tensor_attrs = TENSOR_ONLY_ATTRS
        found: Set[str] = set()
        for n in _walk_shallow(func.node):
            if (
                isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name)
                and n.value.id in func.params
                and n.attr in tensor_attrs
            ):
                found.add(n.value.id)
        func._tensor_params = found
        return found


# --------------------------------------------------------------------------
# source text and device literals


def source_text(lines: Sequence[str], node: ast.AST) -> str:
    """The exact source text of ``node`` in ``lines`` (its unparsed form where the lines do not hold it)."""
    seg = None
    try:
        if node.lineno == node.end_lineno:
            line = lines[node.lineno - 1].encode("utf-8")
            seg = line[node.col_offset:node.end_col_offset].decode("utf-8")
        else:
            first = lines[node.lineno - 1].encode("utf-8")[node.col_offset:].decode("utf-8")
            middle = lines[node.lineno:node.end_lineno - 1]
            last = lines[node.end_lineno - 1].encode("utf-8")[: node.end_col_offset].decode("utf-8")
            seg = "".join([first, *middle, last])
    except (IndexError, UnicodeDecodeError, AttributeError, TypeError):
        seg = None
    return seg if seg is not None else ast.unparse(node)


def device_literal(node: Optional[ast.AST], resolve: Callable[[ast.AST], Optional[str]],
                   is_flagged: Callable[[str], bool]) -> Optional[Tuple[str, bool]]:
    """If ``node`` is a hardcoded accelerator device, return (type, plain).

    ``plain`` is True for the bare type (``"cuda"``, ``torch.device("cuda")``),
    False when it names an index or is built at run time (``"cuda:1"``,
    ``f"cuda:{rank}"``): replacing those with another device can change
    which accelerator is used.
    """
    if node is None:
        return None
    if isinstance(node, ast.IfExp):
        # ``"cuda:0" if a else "cuda:1"``: an accelerator whichever branch runs.
        body, orelse = device_literal(node.body, resolve, is_flagged), device_literal(node.orelse, resolve, is_flagged)
        if body is None or orelse is None:
            return None
        return body[0], False
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        m = _DEVICE_STR.match(node.value)
        if m and is_flagged(m.group(1)):
            return m.group(1), ":" not in node.value
        return None
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            m = _DEVICE_PREFIX.match(first.value)
            if m and is_flagged(m.group(1)):
                return m.group(1), False
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):  # "cuda:" + r, "cuda:%d" % r
        left = node.left
        if isinstance(left, ast.Constant) and isinstance(left.value, str):
            m = _DEVICE_PREFIX.match(left.value)
            if m and is_flagged(m.group(1)):
                return m.group(1), False
        return None
    if isinstance(node, ast.Call):
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "format"
            and isinstance(func.value, ast.Constant)
            and isinstance(func.value.value, str)
        ):
            m = _DEVICE_PREFIX.match(func.value.value)
            if m and is_flagged(m.group(1)):
                return m.group(1), False
            return None
        if resolve(func) == "torch.device":
            arg = node.args[0] if node.args else None
            for kw in node.keywords:
                if kw.arg == "type":
                    arg = kw.value
            inner = device_literal(arg, resolve, is_flagged)
            if inner is None:
                return None
            plain = inner[1] and len(node.args) <= 1 and all(k.arg != "index" for k in node.keywords)
            return inner[0], plain
    return None
