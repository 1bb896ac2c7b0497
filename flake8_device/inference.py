"""Device inference: which device expression a fix should use at a node.

Below the rules (engine -> rules -> inference/facts): the functions take the
rules' context (:class:`flake8_device.context.RuleContext`) and read only its
public methods and the scope facts.  The precedence is documented on
:func:`infer_device`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Set

from .diagnostics import InsertBefore, Span
from .facts import ClassInfo, FuncInfo, _is_device_name, _walk_shallow
from .names import AVAILABILITY_EXPR

if TYPE_CHECKING:  # pragma: no cover
    from .context import RuleContext


@dataclass
class DeviceChoice:
    expr: str
    reason: str
    safe: bool
    # Names whose device the expression reads (to avoid ``x.to(x.device)``).
    root: Optional[str] = None
    # The class whose ``device`` property must be added first (precedence 6).
    add_property_to: Optional[ClassInfo] = None


def infer_device(ctx: "RuleContext", at: ast.AST, exclude_roots: Set[str] = frozenset(),
                 allow_add_property: bool = True) -> Optional[DeviceChoice]:
    """Choose a device expression for a fix at ``at``, by documented precedence.

    1. ``--device-expr``; 2. a tensor the value is assigned into or combined
    with in the same statement; 3. ``self.device``; 4. a device variable or
    parameter in scope; 5. a tensor parameter of the enclosing function;
    6. (unsafe) a ``device`` property added to the enclosing ``nn.Module``.
    """
    if not ctx.fixes:
        return None
    if ctx.options.device_expr:
        return DeviceChoice(ctx.options.device_expr, "configured by --device-expr", True)
    line = getattr(at, "lineno", 0)
    func = ctx.current_function()
    method = ctx.enclosing_method()
    # 2. same statement
    choice = _statement_tensor(ctx, at, exclude_roots, func)
    if choice is not None:
        return choice
    # 3. self.device
    if method is not None and method.cls is not None and method.cls.has_device and "self" not in exclude_roots:
        fn_name = getattr(method.node, "name", "")
        if fn_name != "device" and fn_name not in ("__init__",):
            return DeviceChoice("self.device", f"the enclosing class {method.cls.node.name} has `self.device`",
                                True, root="self")
    # 4. device variable / parameter
    for f in reversed(ctx.func_stack):
        for name, bound in f.device_names.items():
            if name in exclude_roots or (bound >= line and name not in f.params):
                continue
            return DeviceChoice(name, f"`{name}` is a device in scope", True, root=name)
    for name in ctx.module_device_names:
        if name not in exclude_roots:
            return DeviceChoice(name, f"module-level device `{name}`", True, root=name)
    # 5. a known tensor the value is sized from, then a tensor parameter
    choice = _sized_from_tensor(ctx, at, exclude_roots, func)
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
            elif ann is None and name in ctx.tensor_used_params(func):
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
        and ctx.torch_name() is not None
    ):
        return DeviceChoice(
            "self.device",
            f"adds a `device` property to {method.cls.node.name} (from its parameters or buffers)",
            False,
            root="self",
            add_property_to=method.cls,
        )
    return None


def _statement_tensor(ctx: "RuleContext", at: ast.AST, exclude: Set[str], func: Optional[FuncInfo]) -> Optional[DeviceChoice]:
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
    for n in _walk_shallow(stmt):
        if isinstance(n, ast.BinOp) and not isinstance(n.op, ast.Mod):
            pair = [(n.left, n.right), (n.right, n.left)]
        elif isinstance(n, ast.Compare) and len(n.comparators) == 1:
            pair = [(n.left, n.comparators[0]), (n.comparators[0], n.left)]
        else:
            continue
        for mine, other in pair:
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
        if func is not None and name in func.tensor_names and func.tensor_names[name] <= getattr(at, "lineno", 0):
            return DeviceChoice(f"{text}.device", f"`{text}` is a tensor in the same statement", True, root=name)
        ann = func.params.get(name) if func is not None else None
        if ann is not None and ast.unparse(ann).endswith("Tensor"):
            return DeviceChoice(f"{text}.device", f"`{text}` is a tensor in the same statement", True, root=name)
        return DeviceChoice(f"{text}.device", f"`{text}` is combined with the value in the same statement "
                            "(guessed to be a tensor)", False, root=name)
    return None


def _sized_from_tensor(ctx: "RuleContext", at: ast.AST, exclude: Set[str], func: Optional[FuncInfo]) -> Optional[DeviceChoice]:
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


def _contains(outer: ast.AST, inner: ast.AST) -> bool:
    if outer is inner:
        return True
    try:
        return (outer.lineno, outer.col_offset) <= (inner.lineno, inner.col_offset) and (
            inner.end_lineno, inner.end_col_offset) <= (outer.end_lineno, outer.end_col_offset)
    except AttributeError:
        return False


def availability_expr(ctx: "RuleContext", node: ast.AST, dev_type: str) -> Optional[str]:
    """``"cuda" if torch.cuda.is_available() else "cpu"`` for the literal at ``node``."""
    torch = ctx.torch_name()
    tmpl = AVAILABILITY_EXPR.get(dev_type)
    if torch is None or tmpl is None:
        return None
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
