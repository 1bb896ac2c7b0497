"""DEV005 (CUDA-only autocast/AMP) and DEV006 (``torch.load`` without ``map_location``)."""

from __future__ import annotations

import ast

from typing import Optional

from ..diagnostics import Fix, ReplaceNode, RewriteCall, Span
from ..names import AVAILABILITY_EXPR
from .common import has_star, kw
from .registry import rule

DEV005 = rule(
    "DEV005",
    summary="CUDA-only autocast/AMP",
    finds="CUDA-only autocast / AMP",
    fix_safety="safe",
    message="torch.cuda.amp.autocast() is CUDA-only (and deprecated); use torch.amp.autocast(device_type=...)",
)
DEV006 = rule(
    "DEV006",
    summary="torch.load without map_location",
    finds="`torch.load` without `map_location`",
    fix_safety="safe",
    message="torch.load() without map_location restores tensors to the device they were saved from, which "
            "fails where that device does not exist",
    # a ``.cuda()`` inside a map_location callable is reported here, under DEV002, with the callable's fix
    also_reports=("DEV002",),
)

_AMP_NAMES = ("autocast", "GradScaler", "custom_fwd", "custom_bwd")
# Names whose calls the fix rewrites (custom_fwd/custom_bwd need a device_type chosen by hand).
_CALL_FIXABLE = ("autocast", "GradScaler")

# Numerics: ``torch.cuda.amp.autocast()`` disables itself where CUDA is missing
# (the block then computes in float32), and CUDA autocast never touches CPU
# tensors.  ``torch.amp.autocast("cpu")`` would instead compute in bfloat16 on
# the CPU.  So the faithful fix keeps CUDA autocast and enables it only where
# CUDA is available: the same dtypes as the original on every machine, without
# the warning.  GradScaler likewise: enabled only where CUDA is available (a
# CPU GradScaler would scale the loss and skip steps the original took).
_NUMERICS = "enabled only where CUDA is available, so every machine computes in the same dtypes as before"


def _availability(ck, dev_type: str):
    tmpl = AVAILABILITY_EXPR.get(dev_type)
    return tmpl.format(torch=ck.torch_name() or "torch") if tmpl else None


def _enabled_guarded(ck, node: ast.Call) -> bool:
    """``enabled=False`` or ``enabled=<availability check>``: the call is device-aware already."""
    k = kw(node, "enabled")
    if k is None:
        return False
    v = k.value
    return (isinstance(v, ast.Constant) and v.value is False) or ck.guard_polarity(v) > 0


def _enabled_text(ck, node: ast.Call, avail: str):
    """The ``enabled=`` value that keeps the original's behaviour (None: keep the argument as it is)."""
    k = kw(node, "enabled")
    if k is None or (isinstance(k.value, ast.Constant) and k.value.value is True):
        return avail
    if _enabled_guarded(ck, node):
        return None
    text = ck.src(k.value)
    if not isinstance(k.value, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)):
        text = f"({text})"
    return f"{text} and {avail}"


def _import_group(ck, node) -> str:
    return f"DEV005:torch.cuda.amp import, line {node.lineno}"


def _uses_fixable(ck, node) -> Optional[str]:
    """None if every use of the names ``node`` imports is a call the fix rewrites, else why not."""
    local = {a.asname or a.name: a.name for a in node.names}
    calls = set()
    for n in ast.walk(ck.tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in local:
            if local[n.func.id] in _CALL_FIXABLE and not n.args and not has_star(n):
                calls.add(id(n.func))
    for n in ast.walk(ck.tree):
        if isinstance(n, ast.Name) and n.id in local and isinstance(n.ctx, ast.Load) and id(n) not in calls:
            return f"`{n.id}` on line {n.lineno} is used in a way the fix cannot rewrite"
    return None


@DEV005.on("import", skip_guarded=True)
def check_import(ck, node) -> None:
    if isinstance(node, ast.ImportFrom) and node.module == "torch.cuda.amp" and not node.level:
        names = [a.name for a in node.names]
        why = None if all(n in _AMP_NAMES for n in names) else "imports names that torch.amp does not provide"
        why = why or _uses_fixable(ck, node)
        if why is None:
            text = ck.src(node).replace("torch.cuda.amp", "torch.amp", 1)
            fix = Fix((ReplaceNode(Span.of(node), text),), True,
                      "import from torch.amp; call sites get a device_type (one group)",
                      group=_import_group(ck, node))
            ck.state.setdefault("amp_imports", {})[id(node)] = fix.group
        else:
            fix = None
        ck.report("DEV005", node, "imports from torch.cuda.amp are CUDA-only (and deprecated); "
                                  "import from torch.amp and pass device_type", fix, why)
    elif isinstance(node, ast.Import):
        for a in node.names:
            if a.name == "torch.cuda.amp":
                ck.report("DEV005", node, "torch.cuda.amp is CUDA-only (and deprecated); use torch.amp",
                          None, "rewrite the module's uses by hand")


@DEV005.on("call.torch", qual=("torch.cuda.amp.", "torch.autocast", "torch.amp.autocast"))
def check_amp_call(ck, node: ast.Call, qual: str) -> None:
    ck.claim(node.func)
    if ck.guarded:
        return
    if qual in ("torch.autocast", "torch.amp.autocast"):
        arg = node.args[0] if node.args else None
        k = kw(node, "device_type")
        if k is not None:
            arg = k.value
        lit = ck.device_literal(arg)
        if lit is None or _enabled_guarded(ck, node):
            return
        ck.claim(arg)
        avail = _availability(ck, lit[0])
        if avail is None or len(node.args) > 2 or has_star(node):
            fix, why = None, ("enabled is passed by position; rewrite by hand" if len(node.args) > 2 else
                              f"no availability check known for {lit[0]!r}")
        else:
            op = RewriteCall(Span.of(node), Span.of(node), (("enabled", _enabled_text(ck, node, avail)),))
            fix, why = Fix((op,), True, f"keep {ck.src(arg)} autocast, {_NUMERICS}; passing another device "
                                        "type instead would change numerics (bfloat16 on the CPU)"), None
        ck.report("DEV005", arg, f"autocast device_type {ck.src(arg)} is hardcoded; where that device is "
                                 "missing autocast warns and disables itself", fix, why)
        return
    short = qual.rsplit(".", 1)[1]
    if short not in _CALL_FIXABLE:
        ck.report("DEV005", node, f"{qual} is CUDA-only; use torch.amp.{short} with device_type",
                  None, "torch.amp equivalent needs a device_type chosen by hand")
        return
    avail = _availability(ck, "cuda")
    if node.args or has_star(node):
        fix, why = None, "positional arguments change meaning in torch.amp; rewrite by hand"
    else:
        group = None
        func = f"{ck.torch_name() or 'torch'}.amp.{short}"
        if isinstance(node.func, ast.Name):
            imp = ck.import_of(node.func.id)
            group = ck.state.get("amp_imports", {}).get(id(imp)) if imp is not None else None
            if group is not None:
                func = None  # the name keeps its import, which the group rewrites to torch.amp
        if short == "autocast":
            keywords = [("device_type", '"cuda"')]
            desc = f"torch.amp.autocast for CUDA, {_NUMERICS} (another device type would change numerics)"
        else:
            keywords = [("device", f'"cuda" if {avail} else "cpu"')]
            desc = f"torch.amp.GradScaler, {_NUMERICS} (a CPU GradScaler would scale the loss)"
        enabled = _enabled_text(ck, node, avail)
        if enabled is not None:
            keywords.append(("enabled", enabled))
        op = RewriteCall(Span.of(node), Span.of(node), tuple(keywords), func)
        fix, why = Fix((op,), True, desc, group=group), None
    key = "device_type" if short == "autocast" else "device"
    ck.report("DEV005", node, f"{qual}() is CUDA-only (and deprecated); use torch.amp.{short}({key}=...)",
              fix, why)


@DEV005.on("attribute", skip_guarded=True, names=_AMP_NAMES)
def check_amp_reference(ck, node: ast.Attribute) -> None:
    """``torch.cuda.amp.autocast`` used without a call (decorators, references)."""
    qual = ck.resolve(node)
    if not (qual and qual.startswith("torch.cuda.amp.")):
        return
    ck.report("DEV005", node, f"{qual} is CUDA-only (and deprecated); use torch.amp with a device_type",
              None, "a reference (not a call): rewrite by hand")


# DEV006: the fix keeps every load on a CUDA machine exactly as before.
# ``map_location=None`` restores each tensor where it was saved (the
# original's behaviour: CPU tensors stay on the CPU, so an all_gather-style
# helper that pickles tensors of several devices gets them back where they
# were); where CUDA is missing every tensor loads on the CPU.  A device
# (``self.device``, a communication device) would move every tensor to it.
_LOAD_WHY = ("None where CUDA is available restores every tensor where it was saved, exactly as before "
             "(CPU tensors stay on the CPU); without CUDA every tensor loads on the CPU. A device here "
             "would move every loaded tensor, CPU ones included")


def _storage_cuda(fn) -> Optional[ast.Call]:
    """The ``storage.cuda(...)`` body of ``lambda storage, loc: storage.cuda(...)`` (or of a function
    ``def f(storage, loc): return storage.cuda(...)``, a docstring allowed), else None."""
    a = fn.args
    params = [p.arg for p in a.posonlyargs + a.args]
    if len(params) != 2 or a.vararg or a.kwarg or a.kwonlyargs or a.defaults:
        return None
    body = fn.body
    if isinstance(body, list):
        stmts = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                         and isinstance(s.value.value, str))]
        if len(stmts) != 1 or not isinstance(stmts[0], ast.Return):
            return None
        body = stmts[0].value
    if (isinstance(body, ast.Call) and isinstance(body.func, ast.Attribute) and body.func.attr == "cuda"
            and isinstance(body.func.value, ast.Name) and body.func.value.id == params[0] and not has_star(body)):
        return body
    return None


def _check_callable_location(ck, fn) -> None:
    """``map_location=lambda storage, loc: storage.cuda()``: the fix stays a callable.

    A storage-level ``map_location`` callable returns the storage to use
    (``torch.serialization._get_restore_location``); storages have
    ``.cuda()`` and ``.cpu()`` but no ``.to(device)``.  Returning the CPU
    storage it was given keeps the tensor on the CPU.
    """
    body = _storage_cuda(fn)
    if body is None:
        # another shape: the usual .cuda() -> .to(<device>) fix would fail on a storage
        for n in ast.walk(fn.body if isinstance(fn, ast.Lambda) else ast.Module(body=fn.body, type_ignores=[])):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "cuda":
                ck.claim(n, n.func)
                if not ck.guarded:
                    ck.report("DEV002", n, f"{ck.src(n)} in a map_location callable hardcodes the CUDA device; "
                                           "tensors fail to load where CUDA is missing", None,
                              "a map_location callable of another shape; a storage has no .to(device), "
                              "rewrite it by hand")
        return
    ck.claim(body, body.func)
    if ck.guarded:
        return
    avail = _availability(ck, "cuda")
    storage = body.func.value.id
    text = f"{ck.src(body)} if {avail} else {storage}"
    fix = Fix((ReplaceNode(Span.of(body), text),), True,
              f"the map_location callable stays a callable: {ck.src(body)} where CUDA is available (the same "
              f"storages as before), else the CPU storage it was given; a storage has no .to(device)",
              needs=("torch",))
    ck.report("DEV002", body, f"{ck.src(body)} in a map_location callable hardcodes the CUDA device; "
                              "tensors fail to load where CUDA is missing", fix)


def _check_dict_location(ck, d: ast.Dict) -> None:
    """``map_location={"cuda:1": "cuda:0"}``: tensors mapped to an accelerator fail to load where CUDA is
    missing.  The fix keeps the mapping where CUDA is available and loads on the CPU elsewhere."""
    lits = [ck.device_literal(v) for v in d.values]
    cuda = [lit for lit in lits if lit is not None]
    if ck.guarded or not cuda or any(lit[0] != "cuda" for lit in cuda) or None in d.keys:
        return
    for v in d.values:
        if ck.device_literal(v) is not None:
            ck.claim(v)
    text = f'{ck.src(d)} if {_availability(ck, "cuda")} else "cpu"'
    fix = Fix((ReplaceNode(Span.of(d), text),), True,
              "the same mapping where CUDA is available (the same load as before), else every tensor on the CPU",
              needs=("torch",))
    ck.report("DEV006", d, "torch.load() map_location maps tensors to CUDA devices, which fails where CUDA is "
                           "missing", fix)


@DEV006.on("call.torch", qual=("torch.load",))
def check_load(ck, node: ast.Call, qual: str) -> None:
    loc = kw(node, "map_location")
    if loc is not None:
        if isinstance(loc.value, ast.Lambda):
            _check_callable_location(ck, loc.value)
        elif isinstance(loc.value, ast.Dict):
            _check_dict_location(ck, loc.value)
        return
    if has_star(node):
        return
    if len(node.args) >= 2:
        if isinstance(node.args[1], ast.Lambda):
            _check_callable_location(ck, node.args[1])
        elif isinstance(node.args[1], ast.Dict):
            _check_dict_location(ck, node.args[1])
        return
    expr = f'None if {_availability(ck, "cuda")} else "cpu"'
    op = RewriteCall(Span.of(node), Span.of(node), (("map_location", expr),))
    fix = Fix((op,), True, f"map_location={expr}: {_LOAD_WHY}", needs=("torch",))
    ck.report("DEV006", node, "torch.load() without map_location restores tensors to the device they were "
                              "saved from, which fails where that device does not exist", fix)


def _map_location_names(ck) -> frozenset:
    """Names passed as ``torch.load``'s ``map_location`` (keyword or second argument) in this module."""
    names = ck.state.get("map_location_names")
    if names is None:
        found = set()
        for n in ast.walk(ck.tree):
            if isinstance(n, ast.Call) and ck.resolve(n.func) == "torch.load":
                loc = kw(n, "map_location")
                arg = loc.value if loc is not None else (n.args[1] if len(n.args) >= 2 else None)
                if isinstance(arg, ast.Name):
                    found.add(arg.id)
        names = ck.state["map_location_names"] = frozenset(found)
    return names


@DEV006.on("function_def")
def check_function_def(ck, node) -> None:
    """``def to_gpu(storage, loc): return storage.cuda()`` passed by name as a ``map_location``: the same
    fix as the lambda's (a storage has no ``.to(device)``).  Runs before the body is visited, so the
    ``.cuda()`` calls it covers get no other fix."""
    if isinstance(node, ast.FunctionDef) and node.name in _map_location_names(ck):
        _check_callable_location(ck, node)
