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
from typing import TYPE_CHECKING, List, Optional, Set, Tuple

from .diagnostics import Fix, InsertBefore, RewriteCall, Span
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
    # Set when the expression is a module-level device this fix introduces (precedence 7).
    new_module_device: bool = False


# Fixes that use the module-level device one of them introduces share this group.
MODULE_DEVICE_GROUP = "module-device"
MODULE_DEVICE_NAMES = ("DEVICE", "DEFAULT_DEVICE", "TORCH_DEVICE")


def infer_device(ctx: "RuleContext", at: ast.AST, exclude_roots: Set[str] = frozenset(),
                 allow_add_property: bool = True, allow_new_device: bool = False) -> Optional[DeviceChoice]:
    """Choose a device expression for a fix at ``at``, by documented precedence.

    1. ``--device-expr`` (only where its root name is bound: otherwise None,
    and :func:`device_expr_refusal` says why); 2. a tensor the value is
    assigned into or combined with in the same statement (a name with
    tensor-only evidence); 3. ``self.device``; 4. a device variable or
    parameter in scope, or a module-level device bound before the use;
    5. a known tensor the value is sized from, then a tensor parameter
    (annotated, or read through a tensor-only attribute: unsafe);
    6. (unsafe) a ``device`` property added to the enclosing ``nn.Module``;
    7. (unsafe, only with ``allow_new_device``) a module-level ``DEVICE``
    that the fix defines after the module's imports.
    """
    if not ctx.fixes:
        return None
    if ctx.options.device_expr:
        why = device_expr_refusal(ctx, ctx.options.device_expr, at)
        if why is not None:
            ctx.refuse_device_expr(why)
            return None
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
    for name, bound in ctx.module_device_names.items():
        if name not in exclude_roots and (ctx.func_stack or bound < line) and not _class_body_shadows(ctx, name):
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
            return DeviceChoice(f"{n}.device", f"`{n}` is used as a tensor (an attribute only tensors have; "
                                "guessed)", False, root=n)
    # 6. add a device property to the enclosing nn.Module
    if (
        allow_add_property
        and method is not None
        and method.cls is not None
        and method.cls.is_module
        and getattr(method.node, "name", "") not in ("__init__", "device")
        and ctx.torch_name() is not None
    ):
        # Every fix relying on the property depends on the one that adds it: one group.
        ctx.note_group(f"device property of {method.cls.node.name} (line {method.cls.node.lineno})")
        return DeviceChoice(
            "self.device",
            f"adds a `device` property to {method.cls.node.name} (from its parameters or buffers)",
            False,
            root="self",
            add_property_to=method.cls,
        )
    # 7. a device the module defines once, after its imports
    if allow_new_device and "DEVICE" not in exclude_roots:
        return new_module_device(ctx, at)
    return None


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
        if ctx.enclosing_method() is not None:
            return None
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
    claimed = ctx.claimed_module_device()
    if claimed is None:
        names = ctx.module_names
        claimed = next((n for n in MODULE_DEVICE_NAMES if n not in names), None)
        if claimed is None or module_device_insertion(ctx, getattr(at, "lineno", 0), claimed) is None:
            return None
    ctx.note_new_device(claimed)
    return DeviceChoice(claimed, "no device in scope: defines one for the module after its imports "
                                 "(the accelerator when available, else the CPU)", False, root=claimed,
                        new_module_device=True)


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
    text = f'{name} = {torch}.device("cuda" if {torch}.cuda.is_available() else "cpu"){nl}' + nl * blank
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
                      func: Optional[FuncInfo]) -> Optional[DeviceChoice]:
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
        if name == "self":
            method = ctx.enclosing_method()
            if method is not None and method.cls is not None and root.attr in method.cls.tensor_attrs:
                return DeviceChoice(f"{text}.device", f"`{text}` is a tensor attribute in the same statement",
                                    True, root=name)
            continue
        if func is not None and name in func.tensor_names and func.tensor_names[name] <= getattr(at, "lineno", 0):
            return DeviceChoice(f"{text}.device", f"`{text}` is a tensor in the same statement", True, root=name)
        ann = func.params.get(name) if func is not None else None
        if ann is not None and ast.unparse(ann).endswith("Tensor"):
            return DeviceChoice(f"{text}.device", f"`{text}` is a tensor in the same statement", True, root=name)
        if func is not None and name in func.params and name in ctx.tensor_used_params(func):
            return DeviceChoice(f"{text}.device", f"`{text}` is combined with the value in the same statement "
                                "and used as a tensor elsewhere (guessed)", False, root=name)
        # No tensor-only evidence: a list, a number or a config object has no ``.device``.
    return None


def _sized_from_tensor(ctx: "RuleContext", at: ast.AST, exclude: Set[str],
                       func: Optional[FuncInfo]) -> Optional[DeviceChoice]:
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


def finish_fix(ctx: "RuleContext", code: str, line: int, fix: Optional[Fix], why: Optional[str]):
    """Complete a rule's fix before it is recorded: ``(fix, no_fix_reason)``.

    * a ``--device-expr`` refused for this statement drops the fix, with a reason naming the rule;
    * a fix relying on a ``device`` property that a fix of this run adds joins that property's group;
    * a fix using the module device that :func:`new_module_device` chose joins
      :data:`MODULE_DEVICE_GROUP`, and the first one carries its definition;
    * fix text that spells ``torch`` where the module binds torch only under an
      alias (``import torch as T``) is respelled with the alias; otherwise a fix
      whose text names ``torch`` declares ``needs=("torch",)``.
    """
    refusal = ctx.take_device_expr_refusal()
    new_device = ctx.take_new_device()
    group = ctx.take_group()
    if refusal is not None:
        return None, f"{code}: {refusal}"
    if fix is None:
        return fix, why
    if group is not None and fix.group is None and any(
            "self.device" in t for op in fix.ops for t in _op_texts(op)):
        fix = replace(fix, group=group)
    ops = list(fix.ops)
    if new_device is not None and any(re.search(rf"\b{re.escape(new_device)}\b", t)
                                      for op in ops for t in _op_texts(op)):
        if ctx.claim_module_device(new_device):
            op = module_device_insertion(ctx, line, new_device)
            if op is None:
                return None, f"{code}: cannot place a module-level device definition"
            ops.insert(0, op)
        fix = replace(fix, ops=tuple(ops), safe=False, group=MODULE_DEVICE_GROUP)
    alias = ctx.torch_alias
    texts = [t for op in fix.ops for t in _op_texts(op)]
    if not any(_names_torch(t) for t in texts):
        return fix, why
    if alias is not None and alias != "torch" and not ctx.binds_torch:
        return replace(fix, ops=tuple(_map_texts(op, lambda t: _respell(t, alias)) for op in fix.ops)), why
    if "torch" not in fix.needs:
        fix = replace(fix, needs=tuple(fix.needs) + ("torch",))
    return fix, why
