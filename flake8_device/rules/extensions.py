"""DEV009: a compiled-extension import that makes the module's PyTorch fallback unreachable.

Mask2Former and the repositories derived from it (MaskDINO, OneFormer, DVIS, ...) ship
``ops/functions/ms_deform_attn_func.py``::

    try:
        import MultiScaleDeformableAttention as MSDA
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(info_string)

    class MSDeformAttnFunction(Function):
        @staticmethod
        def forward(ctx, value, value_spatial_shapes, ...):
            output = MSDA.ms_deform_attn_forward(...)

    def ms_deform_attn_core_pytorch(value, value_spatial_shapes, sampling_locations, attention_weights):
        ...   # pure PyTorch

Without the compiled op the import raises, so the pure-PyTorch function right below can
never run, and neither can anything that imports the module.  The rule reports such an
import when the module (or its package) has a PyTorch path:

* a ``try`` whose ``except ImportError`` / ``ModuleNotFoundError`` (or broader) handler
  re-raises, around an absolute import;
* an unguarded absolute import whose name is used inside an autograd ``Function``.

The fix binds the imported names to ``None`` when the import fails, and gives every
autograd ``Function`` of the module that calls the extension an ``apply`` that takes the
PyTorch path when the extension is missing or the first tensor is not on CUDA; on CUDA
tensors with the op built it calls the original ``Function.apply``, unchanged.  It needs a
module-level fallback function whose parameters are all parameters of ``forward`` (matched
by name); otherwise the diagnostic carries no fix.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import sys
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ..diagnostics import Fix, InsertBefore, ReplaceNode, Span
from .registry import rule

DEV009 = rule(
    "DEV009",
    summary="compiled-extension import whose PyTorch fallback cannot run",
    finds="compiled-extension import whose PyTorch fallback can never run",
    fix_safety="unsafe",
    message="import of compiled extension 'MultiScaleDeformableAttention' re-raises when it is not built, so the "
            "PyTorch fallback ms_deform_attn_core_pytorch() can never run; fall back to it when the extension is "
            "missing or the tensors are not on CUDA",
)

# Names of pure-PyTorch fallbacks: ``ms_deform_attn_core_pytorch``, ``dcn_torch``, ``nms_python``,
# ``pytorch_deform_conv``... (not ``__torch_dispatch__`` or ``normalize_to_torch_size``).
_FALLBACK_NAME = re.compile(r"^(?!__)(?:\w*_)?(?:pytorch|torch|python|naive|fallback)$|^(?!__)(?:\w*_)?pytorch_\w+$",
                            re.IGNORECASE)
# In other files of the package only the strongest sign counts: ``*_pytorch`` / ``pytorch_*``.
_FALLBACK_DEF = re.compile(r"^\s*def\s+((?:\w*_)?pytorch|(?:\w*_)?pytorch_\w+)\s*\(", re.IGNORECASE | re.MULTILINE)
# Modules that are never compiled extensions a model ships with.
_NOT_EXTENSIONS = frozenset({
    "torch", "torchvision", "numpy", "scipy", "detectron2", "fvcore", "timm", "mmcv", "einops", "cv2",
    "PIL", "apex", "transformers", "os", "sys", "math", "typing", "warnings", "collections", "functools",
})
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException", "OSError"})


def _bound_names(node: ast.stmt) -> List[str]:
    """Names an absolute import binds (``import a.b`` binds ``a``); empty for other statements."""
    if isinstance(node, ast.Import):
        return [a.asname or a.name.split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom) and not node.level and node.module:
        return [a.asname or a.name for a in node.names if a.name != "*"]
    return []


def _module_name(node: ast.stmt) -> str:
    if isinstance(node, ast.Import):
        return node.names[0].name
    return node.module or ""


def _is_extension_import(node: ast.stmt) -> bool:
    names = _bound_names(node)
    if not names:
        return False
    top = _module_name(node).split(".")[0]
    return top not in _NOT_EXTENSIONS and top not in _STDLIB and not top.startswith("_")


def _catches_import_error(handler: ast.excepthandler) -> bool:
    t = handler.type
    if t is None:
        return True
    elts = t.elts if isinstance(t, ast.Tuple) else [t]
    for e in elts:
        name = e.attr if isinstance(e, ast.Attribute) else getattr(e, "id", None)
        if name in _IMPORT_ERRORS:
            return True
    return False


def _reraise(handler: ast.excepthandler) -> Optional[ast.Raise]:
    """The handler's unconditional top-level ``raise``, if it has one."""
    for stmt in handler.body:
        if isinstance(stmt, ast.Raise):
            return stmt
    return None


def _is_autograd_function(ck, cls: ast.ClassDef) -> bool:
    for b in cls.bases:
        q = ck.resolve(b) or ""
        if q in ("torch.autograd.Function", "torch.autograd.function.Function"):
            return True
        name = b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
        if name == "Function" and not q:
            return True
    return False


def _uses(node: ast.AST, names: Set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _method(cls: ast.ClassDef, name: str):
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
            return stmt
    return None


@functools.lru_cache(maxsize=256)
def _package_fallbacks(directory: str) -> Tuple[str, ...]:
    """Fallback functions defined by the ``.py`` files of a package folder and its parent."""
    found: List[str] = []
    for folder in (directory, os.path.dirname(directory)):
        try:
            entries = sorted(os.listdir(folder))
        except OSError:
            continue
        for entry in entries[:200]:
            path = os.path.join(folder, entry)
            candidates = [path]
            if os.path.isdir(path):
                try:
                    candidates = [os.path.join(path, e) for e in sorted(os.listdir(path))[:50]]
                except OSError:
                    continue
            for p in candidates:
                if not p.endswith(".py") or not os.path.isfile(p):
                    continue
                try:
                    with open(p, encoding="utf-8", errors="replace") as f:
                        text = f.read(200_000)
                except OSError:
                    continue
                found.extend(_FALLBACK_DEF.findall(text))
    return tuple(dict.fromkeys(found))


class _Module:
    """What the rule needs to know about a module, collected once."""

    def __init__(self, ck, tree: ast.Module):
        self.ck = ck
        self.tree = tree
        self.fallback_defs: Dict[str, ast.FunctionDef] = {}
        self.fallback_names: List[str] = []
        self.functions: List[ast.ClassDef] = []
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef) and _FALLBACK_NAME.search(stmt.name):
                self.fallback_defs[stmt.name] = stmt
                self.fallback_names.append(stmt.name)
            elif isinstance(stmt, ast.ImportFrom):
                for a in stmt.names:
                    bound = a.asname or a.name
                    if _FALLBACK_NAME.search(bound):
                        self.fallback_names.append(bound)
            elif isinstance(stmt, ast.ClassDef) and _is_autograd_function(ck, stmt):
                self.functions.append(stmt)

    def package_fallbacks(self) -> Tuple[str, ...]:
        filename = self.ck.filename
        if not filename or filename.startswith("<") or filename == "-":
            return ()
        return _package_fallbacks(os.path.dirname(os.path.abspath(filename)))

    def users(self, names: Set[str]) -> List[ast.ClassDef]:
        return [c for c in self.functions if _uses(c, names)]


@DEV009.on("module")
def check_module(ck, tree: ast.AST) -> None:
    if not isinstance(tree, ast.Module):
        return
    mod: Optional[_Module] = None
    for stmt in tree.body:
        if isinstance(stmt, ast.Try) or stmt.__class__.__name__ == "TryStar":
            imports = [s for s in stmt.body if _is_extension_import(s)]
            if not imports:
                continue
            handler = next((h for h in stmt.handlers if _catches_import_error(h)), None)
            raise_stmt = _reraise(handler) if handler is not None else None
            if raise_stmt is None:
                continue
            mod = mod or _Module(ck, tree)
            for imp in imports:
                _report(ck, mod, imp, raise_stmt)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)) and _is_extension_import(stmt):
            mod = mod or _Module(ck, tree)
            if mod.users(set(_bound_names(stmt))):
                _report(ck, mod, stmt, None)


def _report(ck, mod: _Module, imp: ast.stmt, raise_stmt: Optional[ast.Raise]) -> None:
    names = _bound_names(imp)
    users = mod.users(set(names))
    fallbacks = mod.fallback_names
    if not fallbacks:
        if raise_stmt is None and not users:
            return
        fallbacks = list(mod.package_fallbacks())
        if not fallbacks:
            return
    ext = _module_name(imp)
    how = "re-raises when it is not built" if raise_stmt is not None else "fails when it is not built"
    message = (f"import of compiled extension {ext!r} {how}, so the PyTorch fallback {fallbacks[0]}() "
               "can never run; fall back to it when the extension is missing or the tensors are not on CUDA")
    fix, why = (_fix(ck, mod, imp, raise_stmt, names, users) if ck.fixes else (None, None))
    ck.report("DEV009", imp, message, fix, why)


def _fix(ck, mod: _Module, imp: ast.stmt, raise_stmt: Optional[ast.Raise], names: Sequence[str],
         users: List[ast.ClassDef]):
    if not mod.fallback_defs:
        return None, "the PyTorch fallback is not defined in this module"
    ops = []
    bind = " = ".join([*names, "None"])
    if raise_stmt is not None:
        ops.append(ReplaceNode(Span.of(raise_stmt), bind))
    else:
        if imp.col_offset != 0:
            return None, "the import is not at the top level of the module"
        nl = _newline(ck, imp.lineno)
        text = nl.join(["try:", f"    {ck.src(imp)}",
                        "except ImportError:  # not built: the PyTorch fallback is used", f"    {bind}"])
        ops.append(ReplaceNode(Span.of(imp), text))
    # Every other use of the names must be inside an autograd Function that gets a dispatch.
    covered = {id(n) for c in users for n in ast.walk(c)}
    for n in ast.walk(mod.tree):
        if isinstance(n, ast.Name) and n.id in names and id(n) not in covered:
            return None, f"{n.id} is used outside an autograd Function (line {n.lineno}); rewrite it by hand"
    if not users:
        return None, "no autograd Function of this module calls the extension"
    for cls in users:
        op, why = _dispatch(ck, mod, cls, names[0])
        if op is None:
            return None, why
        ops.append(op)
    fallback = _fallback_for(mod, users[0])
    return Fix(tuple(ops), False,
               f"bind {', '.join(names)} to None when the import fails and dispatch to {fallback.name}() "
               "when the extension is missing or the tensors are not on CUDA (unsafe: a CPU tensor no longer "
               "reaches the compiled op)"), None


def _newline(ck, line: int) -> str:
    try:
        return "\r\n" if ck.lines[line - 1].endswith("\r\n") else "\n"
    except IndexError:
        return "\n"


def _forward_params(cls: ast.ClassDef) -> Optional[List[ast.arg]]:
    fwd = _method(cls, "forward")
    if fwd is None:
        return None
    a = fwd.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
        return None
    return list(a.args)


def _fallback_for(mod: _Module, cls: ast.ClassDef) -> Optional[ast.FunctionDef]:
    params = _forward_params(cls)
    if not params or len(params) < 2:
        return None
    available = {p.arg for p in params[1:]}
    for fn in mod.fallback_defs.values():
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            continue
        required = a.args[: len(a.args) - len(a.defaults)]
        if required and all(p.arg in available for p in required):
            return fn
    return None


def _dispatch(ck, mod: _Module, cls: ast.ClassDef, ext_name: str):
    """The op adding ``apply`` to ``cls``: the fallback unless the op is built and the tensors are on CUDA."""
    if _method(cls, "apply") is not None:
        return None, f"{cls.name} already defines apply"
    params = _forward_params(cls)
    fallback = _fallback_for(mod, cls)
    if params is None or fallback is None:
        return None, f"no PyTorch fallback whose parameters are parameters of {cls.name}.forward"
    point = ck.body_insertion_point(cls)
    if point is None:
        return None, f"cannot place a method in {cls.name}"
    span, indent, nl = point
    fwd = _method(cls, "forward")
    own = params[1:]
    defaults = dict(zip([p.arg for p in params[len(params) - len(fwd.args.defaults):]], fwd.args.defaults))
    signature = ", ".join(["cls", *(f"{p.arg}={ck.src(defaults[p.arg])}" if p.arg in defaults else p.arg
                                    for p in own)])
    available = {p.arg for p in own}
    n_required = len(fallback.args.args) - len(fallback.args.defaults)
    fb_args = ", ".join([*(p.arg for p in fallback.args.args[:n_required]),
                         *(f"{p.arg}={p.arg}" for p in fallback.args.args[n_required:] if p.arg in available)])
    first = own[0].arg
    text = nl.join([
        f"{indent}@classmethod",
        f"{indent}def apply({signature}):",
        f"{indent}    # The compiled op runs only where it is built and the tensors are on CUDA.",
        f"{indent}    if {ext_name} is None or not {first}.is_cuda:",
        f"{indent}        return {fallback.name}({fb_args})",
        f"{indent}    return super().apply({', '.join(p.arg for p in own)})",
        "",
        "",
    ])
    return InsertBefore(span, text), None
