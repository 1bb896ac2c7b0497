"""The rule engine: one walk over a module's ``ast`` that runs every DEV rule.

The walk keeps the context the rules need: how names resolve through imports
(``import torch as T``, ``from torch import zeros``), the enclosing classes and
functions, whether code sits under a device guard (``if torch.cuda.is_available():``)
and which device expressions are in scope for a fix.  Rules live in
``flake8_device.rules``; each one detects a problem and builds the fix it offers.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .diagnostics import Diagnostic, Span
from .names import (
    AVAILABILITY_CALLS,
    AVAILABILITY_EXPR,
    DEVICE_TEST_ATTRS,
    KNOWN_DEVICE_BASES,
)
from .options import Options

_DEVICE_STR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*\d+)?\s*$")
_DEVICE_PREFIX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::|$)")


# --------------------------------------------------------------------------
# scopes


class ClassInfo:
    """Facts about an enclosing class, computed when a rule first asks."""

    def __init__(self, node: ast.ClassDef, checker: "Checker"):
        self.node = node
        self._checker = checker
        self._has_device: Optional[bool] = None
        self._is_module: Optional[bool] = None

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


class FuncInfo:
    """Facts about an enclosing function; the body is scanned once, on first use."""

    def __init__(self, node: ast.AST, cls: Optional[ClassInfo], checker: "Checker", is_method: bool = False,
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
    def device_aware(self) -> bool:
        """Has a device variable or parameter, or reads ``.device`` somewhere."""
        self._scan()
        return self._device_aware


@dataclass
class DeviceChoice:
    expr: str
    reason: str
    safe: bool
    # Names whose device the expression reads (to avoid ``x.to(x.device)``).
    root: Optional[str] = None
    # The class whose ``device`` property must be added first (precedence 6).
    add_property_to: Optional[ClassInfo] = None


def param_defaults(fn: ast.AST) -> List[Tuple[ast.arg, ast.expr]]:
    """``(parameter, default)`` pairs of a function or lambda, keyword-only ones included."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
    pairs += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
    return pairs


def _is_device_name(name: str) -> bool:
    low = name.lower()
    return low == "dev" or "device" in low or low.endswith("_dev")


def _is_dtype_name(name: str) -> bool:
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


# --------------------------------------------------------------------------
# the checker


class Checker:
    def __init__(self, tree: ast.AST, lines: Sequence[str], options: Options, filename: str = "<string>",
                 fixes: bool = True):
        self.tree = tree
        # False: report only (the flake8 plugin), skipping device inference and fix building.
        self.fixes = fixes
        self.lines = lines
        self.options = options
        self.filename = filename
        self.diagnostics: List[Diagnostic] = []
        # alias -> qualified name, e.g. {"T": "torch", "zeros": "torch.zeros"}
        self.aliases: Dict[str, str] = {}
        self.torch_alias: Optional[str] = None
        self.classes: Dict[str, ast.ClassDef] = {}
        self.class_stack: List[ClassInfo] = []
        self.func_stack: List[FuncInfo] = []
        self.guard_depth = 0
        self.statement: Optional[ast.stmt] = None
        # ids of nodes already reported as part of a bigger diagnostic
        self.handled: Set[int] = set()
        # module-level names bound to a device expression
        self.module_device_names: Dict[str, int] = {}
        self._property_added: Set[int] = set()
        from . import rules  # late import: rules import this module

        self.rules = rules
        # Callee names (the last part of ``a.b.name(...)``) that a rule may care about,
        # including local aliases such as ``from torch import zeros as Z``.
        self.call_names: Set[str] = set(rules.CALL_NAMES)

    # ---- entry -----------------------------------------------------------
    def run(self) -> List[Diagnostic]:
        self._prescan_module(self.tree)
        body = getattr(self.tree, "body", [])
        self._visit_block(body)
        self.diagnostics.sort(key=lambda d: (d.span.line, d.span.col, d.code))
        return self.diagnostics

    def report(self, code: str, node_or_span, message: str, fix=None, no_fix_reason=None):
        span = node_or_span if isinstance(node_or_span, Span) else Span.of(node_or_span)
        if not self.fixes:
            fix = no_fix_reason = None
        elif fix is None and no_fix_reason is None:
            no_fix_reason = "no automatic fix for this pattern"
        self.diagnostics.append(Diagnostic(code, message, span, fix, no_fix_reason))

    # ---- name resolution ---------------------------------------------------
    def _note_alias(self, name: str, target: str) -> None:
        if target.rsplit(".", 1)[-1] in self.rules.CALL_NAMES:
            self.call_names.add(name)

    def _add_import(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    self.aliases[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    self.aliases.setdefault(top, top)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                    self._note_alias(a.asname or a.name, f"{node.module}.{a.name}")

    def _prescan_module(self, tree: ast.AST) -> None:
        """Module-level imports and classes (also under top-level if/try/with).

        Imports inside functions are added when the walk reaches them.
        """
        stack = list(getattr(tree, "body", []))
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self._add_import(node)
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

    # ---- source text -------------------------------------------------------
    def src(self, node: ast.AST) -> str:
        seg = None
        try:
            if node.lineno == node.end_lineno:
                line = self.lines[node.lineno - 1].encode("utf-8")
                seg = line[node.col_offset:node.end_col_offset].decode("utf-8")
            else:
                first = self.lines[node.lineno - 1].encode("utf-8")[node.col_offset:].decode("utf-8")
                middle = self.lines[node.lineno:node.end_lineno - 1]
                last = self.lines[node.end_lineno - 1].encode("utf-8")[: node.end_col_offset].decode("utf-8")
                seg = "".join([first, *middle, last])
        except (IndexError, UnicodeDecodeError, AttributeError, TypeError):
            seg = None
        return seg if seg is not None else ast.unparse(node)

    # ---- device literals ---------------------------------------------------
    def device_literal(self, node: Optional[ast.AST]) -> Optional[Tuple[str, bool]]:
        """If ``node`` is a hardcoded accelerator device, return (type, plain).

        ``plain`` is True for the bare type (``"cuda"``, ``torch.device("cuda")``),
        False when it names an index or is built at run time (``"cuda:1"``,
        ``f"cuda:{rank}"``): replacing those with another device can change
        which accelerator is used.
        """
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _DEVICE_STR.match(node.value)
            if m and self.options.is_flagged_device_type(m.group(1)):
                return m.group(1), ":" not in node.value
            return None
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                m = _DEVICE_PREFIX.match(first.value)
                if m and self.options.is_flagged_device_type(m.group(1)):
                    return m.group(1), False
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = node.left
            if isinstance(left, ast.Constant) and isinstance(left.value, str):
                m = _DEVICE_PREFIX.match(left.value)
                if m and self.options.is_flagged_device_type(m.group(1)):
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
                if m and self.options.is_flagged_device_type(m.group(1)):
                    return m.group(1), False
                return None
            if self.resolve(func) == "torch.device":
                arg = node.args[0] if node.args else None
                for kw in node.keywords:
                    if kw.arg == "type":
                        arg = kw.value
                inner = self.device_literal(arg)
                if inner is None:
                    return None
                plain = inner[1] and len(node.args) <= 1 and all(k.arg != "index" for k in node.keywords)
                return inner[0], plain
        return None

    # ---- guards ------------------------------------------------------------
    def guard_polarity(self, test: ast.AST) -> int:
        """+1 if ``test`` true means an accelerator is present, -1 if false means it, else 0."""
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return -self.guard_polarity(test.operand)
        if isinstance(test, ast.BoolOp):
            pols = [self.guard_polarity(v) for v in test.values]
            if isinstance(test.op, ast.And) and any(p > 0 for p in pols):
                return 1
            if isinstance(test.op, ast.Or) and any(p < 0 for p in pols):
                return -1
            return 0
        if isinstance(test, ast.Call):
            name = self.resolve(test.func)
            if name in AVAILABILITY_CALLS:
                return 1
            return 0
        if isinstance(test, ast.Compare):
            for part in [test.left, *test.comparators]:
                if self.guard_polarity(part) != 0:
                    return 1
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    m = _DEVICE_STR.match(part.value)
                    if m and self.options.is_flagged_device_type(m.group(1)):
                        return 1 if isinstance(test.ops[0], (ast.Eq, ast.In, ast.Is)) else -1
            return 0
        if isinstance(test, ast.Attribute):
            if test.attr in DEVICE_TEST_ATTRS:
                return 1
            low = test.attr.lower()
            return 1 if ("cuda" in low or "gpu" in low) else 0
        if isinstance(test, ast.Name):
            low = test.id.lower()
            return 1 if ("cuda" in low or "gpu" in low) else 0
        return 0

    @property
    def guarded(self) -> bool:
        return self.guard_depth > 0

    # ---- traversal ---------------------------------------------------------
    def _visit_block(self, body: Sequence[ast.stmt]) -> None:
        entered = 0
        for stmt in body:
            self._visit_stmt(stmt)
            # ``if not torch.cuda.is_available(): return`` guards the rest of the block.
            if (
                isinstance(stmt, ast.If)
                and not stmt.orelse
                and self.guard_polarity(stmt.test) < 0
                and stmt.body
                and isinstance(stmt.body[-1], (ast.Return, ast.Raise, ast.Continue, ast.Break))
            ) or (isinstance(stmt, ast.Assert) and self.guard_polarity(stmt.test) > 0):
                self.guard_depth += 1
                entered += 1
        self.guard_depth -= entered

    def _visit_stmt(self, stmt: ast.stmt) -> None:
        prev = self.statement
        self.statement = stmt
        try:
            if isinstance(stmt, ast.ClassDef):
                self.classes.setdefault(stmt.name, stmt)
                for d in stmt.decorator_list:
                    self._visit_expr(d)
                for b in stmt.bases:
                    self._visit_expr(b)
                info = self._class_info(stmt)
                self.class_stack.append(info)
                self.statement = None
                self._visit_block(stmt.body)
                self.class_stack.pop()
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for d in stmt.decorator_list:
                    self._visit_expr(d)
                self.rules.check_function_def(self, stmt)
                for default in [*stmt.args.defaults, *stmt.args.kw_defaults]:
                    if default is not None:
                        self._visit_expr(default)
                info = self._func_info(stmt)
                self.func_stack.append(info)
                saved_guard = self.guard_depth
                self.statement = None
                self._visit_block(stmt.body)
                self.guard_depth = saved_guard
                self.func_stack.pop()
            elif isinstance(stmt, ast.If):
                self._visit_expr(stmt.test)
                pol = self.guard_polarity(stmt.test)
                self.guard_depth += pol > 0
                self._visit_block(stmt.body)
                self.guard_depth -= pol > 0
                self.guard_depth += pol < 0
                self._visit_block(stmt.orelse)
                self.guard_depth -= pol < 0
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                if self.func_stack or self.class_stack:
                    self._add_import(stmt)
                self.rules.check_import(self, stmt)
            else:
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    self.rules.check_assign(self, stmt)
                for child in children(stmt):
                    if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
                        continue
                    self._visit_expr(child)
                for fld in ("body", "orelse", "finalbody"):
                    block = getattr(stmt, fld, None)
                    if block:
                        self._visit_block(block)
                for h in getattr(stmt, "handlers", ()) or ():
                    if h.type is not None:
                        self._visit_expr(h.type)
                    self._visit_block(h.body)
                for case in getattr(stmt, "cases", ()) or ():
                    self._visit_block(case.body)
        finally:
            self.statement = prev

    def _visit_expr(self, node: ast.AST) -> None:
        stack = [node]
        leaves = _LEAVES
        while stack:
            n = stack.pop()
            if n is None or n.__class__ in leaves:
                continue
            if isinstance(n, ast.Call):
                if id(n) not in self.handled:
                    self.rules.check_call(self, n)
            elif isinstance(n, ast.IfExp):
                pol = self.guard_polarity(n.test)
                self._visit_expr(n.test)
                self.guard_depth += pol > 0
                self._visit_expr(n.body)
                self.guard_depth -= pol > 0
                self.guard_depth += pol < 0
                self._visit_expr(n.orelse)
                self.guard_depth -= pol < 0
                continue
            elif isinstance(n, ast.Lambda):
                info = FuncInfo(n, self._current_class(), self)
                self.func_stack.append(info)
                self._visit_expr(n.body)
                self.func_stack.pop()
                continue
            elif isinstance(n, ast.Attribute) and id(n) not in self.handled:
                self.rules.check_attribute(self, n)
            # Reverse so that children are visited in source order.
            kids = children(n)
            if kids:
                kids.reverse()
                stack.extend(kids)

    # ---- scope facts -------------------------------------------------------
    def _current_class(self) -> Optional[ClassInfo]:
        return self.class_stack[-1] if self.class_stack else None

    def current_function(self) -> Optional[FuncInfo]:
        return self.func_stack[-1] if self.func_stack else None

    def enclosing_method(self) -> Optional[FuncInfo]:
        """The nearest enclosing method that has ``self`` (closures included)."""
        for f in reversed(self.func_stack):
            if f.is_method:
                return f
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
            if name in KNOWN_DEVICE_BASES:
                return True
            if name in self.classes and self._class_defines_device(self.classes[name], seen):
                return True
        return False

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

    def _class_info(self, cls: ast.ClassDef) -> ClassInfo:
        return ClassInfo(cls, self)

    def _func_info(self, fn: ast.FunctionDef) -> FuncInfo:
        cls = self._current_class()
        direct_cls = cls if (self.class_stack and fn in self.class_stack[-1].node.body) else None
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
        for p, d in param_defaults(fn):
            if isinstance(d, ast.Constant) and isinstance(d.value, str):
                str_names.add(p.arg)
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
                    if q and q.startswith("torch.") and not q.startswith("torch.device"):
                        for t in targets:
                            names = t.elts if isinstance(t, ast.Tuple) else [t]
                            for e in names:
                                if isinstance(e, ast.Name):
                                    tensor_names.setdefault(e.id, n.lineno)
                for t in targets:
                    if not isinstance(t, ast.Name):
                        continue
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
                        )
                    ):
                        list_names.add(t.id)
                    if isinstance(value, ast.Call) and torch is not None:
                        q = self.resolve(value.func) or ""
                        if q.startswith("torch.") and not q.startswith("torch.device"):
                            tensor_names.setdefault(t.id, n.lineno)
            elif cls is ast.Call:
                f = n.func
                if isinstance(f, ast.Name) and f.id == "len" and len(n.args) == 1 and isinstance(n.args[0], ast.Name):
                    list_names.add(n.args[0].id)  # a sized collection: data, not a size
            elif (cls is ast.For or cls is ast.comprehension) and isinstance(n.iter, ast.Name):
                list_names.add(n.iter.id)
        info._device_aware = aware

    # ---- device inference ----------------------------------------------------
    def infer_device(self, at: ast.AST, exclude_roots: Set[str] = frozenset(),
                     allow_add_property: bool = True) -> Optional[DeviceChoice]:
        """Choose a device expression for a fix at ``at``, by documented precedence.

        1. ``--device-expr``; 2. a tensor the value is assigned into or combined
        with in the same statement; 3. ``self.device``; 4. a device variable or
        parameter in scope; 5. a tensor parameter of the enclosing function;
        6. (unsafe) a ``device`` property added to the enclosing ``nn.Module``.
        """
        if not self.fixes:
            return None
        if self.options.device_expr:
            return DeviceChoice(self.options.device_expr, "configured by --device-expr", True)
        line = getattr(at, "lineno", 0)
        func = self.current_function()
        method = self.enclosing_method()
        # 2. same statement
        choice = self._statement_tensor(at, exclude_roots, func)
        if choice is not None:
            return choice
        # 3. self.device
        if method is not None and method.cls is not None and method.cls.has_device and "self" not in exclude_roots:
            fn_name = getattr(method.node, "name", "")
            if fn_name != "device" and fn_name not in ("__init__",):
                return DeviceChoice("self.device", f"the enclosing class {method.cls.node.name} has `self.device`",
                                    True, root="self")
        # 4. device variable / parameter
        for f in reversed(self.func_stack):
            for name, bound in f.device_names.items():
                if name in exclude_roots or (bound >= line and name not in f.params):
                    continue
                return DeviceChoice(name, f"`{name}` is a device in scope", True, root=name)
        for name in self.module_device_names:
            if name not in exclude_roots:
                return DeviceChoice(name, f"module-level device `{name}`", True, root=name)
        # 5. a known tensor the value is sized from, then a tensor parameter
        choice = self._sized_from_tensor(at, exclude_roots, func)
        if choice is not None:
            return choice
        if func is not None and isinstance(func.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotated = []
            guessed = []
            for name, ann in func.params.items():
                if name in ("self", "cls") or name in exclude_roots:
                    continue
                ann_src = ast.unparse(ann) if ann is not None else ""
                if ann_src.endswith("Tensor") and "List" not in ann_src and "list" not in ann_src:
                    annotated.append(name)
                elif ann is None and name in self._tensor_used_params(func):
                    guessed.append(name)
            if annotated:
                n = annotated[0]
                return DeviceChoice(f"{n}.device", f"`{n}` is a tensor parameter (annotated)", True, root=n)
            if guessed:
                n = guessed[0]
                return DeviceChoice(f"{n}.device", f"`{n}` is used as a tensor (guessed)", False, root=n)
        # 6. add a device property to the enclosing nn.Module
        if (
            allow_add_property
            and method is not None
            and method.cls is not None
            and method.cls.is_module
            and getattr(method.node, "name", "") not in ("__init__", "device")
            and self.torch_name() is not None
        ):
            return DeviceChoice(
                "self.device",
                f"adds a `device` property to {method.cls.node.name} (from its parameters or buffers)",
                False,
                root="self",
                add_property_to=method.cls,
            )
        return None

    def _tensor_used_params(self, func: FuncInfo) -> Set[str]:
        """Parameters used like tensors: ``p.shape``, ``p.device``, ``p[...]``, ``p.sigmoid()``."""
        if func._tensor_params is not None:
            return func._tensor_params
        tensor_attrs = {"shape", "device", "dtype", "size", "sigmoid", "softmax", "flatten", "view",
                        "reshape", "permute", "transpose", "unsqueeze", "squeeze", "sum", "mean", "detach",
                        "float", "bool", "long", "clone", "numel", "dim", "new_zeros", "new_ones",
                        "new_full", "new_empty", "new_tensor", "type_as", "expand", "repeat", "flip"}
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

    def _statement_tensor(self, at: ast.AST, exclude: Set[str], func: Optional[FuncInfo]) -> Optional[DeviceChoice]:
        stmt = self.statement
        if stmt is None:
            return None
        candidates: List[ast.AST] = []
        if isinstance(stmt, (ast.Assign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                if isinstance(t, ast.Subscript) and self._contains(stmt.value, at):
                    candidates.append(t.value)
        # combined with: a binary operation or comparison partner
        for n in _walk_shallow(stmt):
            if isinstance(n, ast.BinOp) and not isinstance(n.op, ast.Mod):
                pair = [(n.left, n.right), (n.right, n.left)]
            elif isinstance(n, ast.Compare) and len(n.comparators) == 1:
                pair = [(n.left, n.comparators[0]), (n.comparators[0], n.left)]
            else:
                continue
            for mine, other in pair:
                if mine is at or self._contains(mine, at):
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
            if func is not None and name in func.tensor_names and func.tensor_names[name] <= getattr(at, "lineno", 0):
                return DeviceChoice(f"{text}.device", f"`{text}` is a tensor in the same statement", True, root=name)
            ann = func.params.get(name) if func is not None else None
            if ann is not None and ast.unparse(ann).endswith("Tensor"):
                return DeviceChoice(f"{text}.device", f"`{text}` is a tensor in the same statement", True, root=name)
            return DeviceChoice(f"{text}.device", f"`{text}` is combined with the value in the same statement "
                                "(guessed to be a tensor)", False, root=name)
        return None

    def _sized_from_tensor(self, at: ast.AST, exclude: Set[str], func: Optional[FuncInfo]) -> Optional[DeviceChoice]:
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
            ann = func.params.get(name)
            if func.tensor_names.get(name, line) < line or (ann is not None and ast.unparse(ann).endswith("Tensor")):
                return DeviceChoice(f"{name}.device", f"the value is sized from the tensor `{name}`", True, root=name)
        return None

    @staticmethod
    def _contains(outer: ast.AST, inner: ast.AST) -> bool:
        if outer is inner:
            return True
        try:
            return (outer.lineno, outer.col_offset) <= (inner.lineno, inner.col_offset) and (
                inner.end_lineno, inner.end_col_offset) <= (outer.end_lineno, outer.end_col_offset)
        except AttributeError:
            return False

    def availability_expr(self, node: ast.AST, dev_type: str) -> Optional[str]:
        """``"cuda" if torch.cuda.is_available() else "cpu"`` for the literal at ``node``."""
        torch = self.torch_name()
        tmpl = AVAILABILITY_EXPR.get(dev_type)
        if torch is None or tmpl is None:
            return None
        return f"{self.src(node)} if {tmpl.format(torch=torch)} else \"cpu\""

    def body_insertion_point(self, owner: ast.AST):
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
        if first.lineno <= owner.lineno or first.lineno - 1 >= len(self.lines):
            return None
        line = self.lines[first.lineno - 1]
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

    def property_insertion(self, cls: ClassInfo):
        """The op that adds a ``device`` property to ``cls``, or None if it cannot be placed."""
        from .diagnostics import InsertBefore

        point = self.body_insertion_point(cls.node)
        if point is None:
            return None
        span, indent, nl = point
        text = nl.join([
            f"{indent}@property",
            f"{indent}def device(self):",
            f'{indent}    """The device of the first parameter or buffer (the CPU if there is none)."""',
            f"{indent}    for tensor in (*self.parameters(), *self.buffers()):",
            f"{indent}        return tensor.device",
            f'{indent}    return {self.torch_name()}.device("cpu")',
            "",
            "",
        ])
        return InsertBefore(span, text)


def check_source(source: str, filename: str = "<string>", options: Optional[Options] = None,
                 tree: Optional[ast.AST] = None, lines: Optional[Sequence[str]] = None,
                 fixes: bool = True) -> List[Diagnostic]:
    """Run every DEV rule on ``source``; raises ``SyntaxError`` if it does not parse.

    With ``fixes=False`` diagnostics carry no fix (cheaper: nothing is inferred).
    """
    if tree is None:
        tree = ast.parse(source, filename=filename)
    if lines is None:
        lines = source.splitlines(keepends=True)
    return Checker(tree, lines, options or Options(), filename, fixes=fixes).run()
