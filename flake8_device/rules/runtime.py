"""DEV007: CUDA runtime calls that raise where CUDA is missing (streams, events, synchronize, set_device...).

Each call below was run on a machine without CUDA (torch 2.14.1) and raised
(RuntimeError "Found no NVIDIA driver", AcceleratorError, or, on a CPU-only
build, AssertionError "Torch not compiled with CUDA enabled"):

``torch.cuda.synchronize``, ``set_device``, ``Stream``, ``ExternalStream``,
``current_stream``, ``default_stream``, ``Tensor.record_stream``, ``Event`` (raises when recorded),
``current_device``, ``get_device_name``, ``get_device_properties``,
``get_device_capability``, ``mem_get_info``, ``current_blas_handle``, ``ipc_collect``,
``init``, ``reset_peak_memory_stats``, ``reset_max_memory_allocated``,
``reset_accumulated_memory_stats``, ``set_per_process_memory_fraction``,
``set_sync_debug_mode``, ``CUDAGraph``, ``graph``, ``torch.cuda.device(n)``.

Harmless there, and never reported: ``empty_cache``, ``device_count``, ``is_available``,
memory statistics (``memory_allocated``, ``max_memory_allocated``, ``memory_reserved``,
``memory_stats``), ``manual_seed``/``manual_seed_all``/``seed``, RNG state lists, ``nvtx``,
``torch.cuda.stream(None)``, cudnn flags.

Fixes (identical on a machine with CUDA, since the guard is then true):

* a call whose statement is an expression statement (``torch.cuda.synchronize()``,
  ``x.record_stream(torch.cuda.current_stream())``, ``print(torch.cuda.get_device_name())``)
  is put under ``if torch.cuda.is_available():`` (safe: where CUDA is missing the call
  had nothing to wait for or set, and raised);
* a stream used as a value (``self.stream = torch.cuda.Stream()``) becomes
  ``(torch.cuda.Stream() if torch.cuda.is_available() else None)``:
  ``torch.cuda.stream(None)`` is a no-op, so prefetchers keep working (unsafe: other
  uses of the stream must accept None);
* events, device queries used as values, graphs and ``with torch.cuda.device(n):``
  have no automatic fix (the reason says what to do).

``torch.accelerator`` is not used in fixes: it exists only from torch 2.6, and
``torch.accelerator.synchronize()`` itself raises where no accelerator exists.
"""

from __future__ import annotations

import ast
from typing import Optional

from ..diagnostics import Fix, ReplaceNode, Span
from .registry import rule

DEV007 = rule(
    "DEV007",
    summary="CUDA runtime call that raises where CUDA is missing",
    finds="CUDA runtime calls that raise without CUDA: streams, events, `synchronize`, `set_device`...",
    fix_safety="safe (guarded statement); unsafe for streams used as values",
    message="torch.cuda.synchronize() needs the CUDA runtime and raises where CUDA is missing; guard it with "
            "torch.cuda.is_available()",
)

# Calls whose only effect is on the CUDA runtime: guard the statement.
_EFFECT = frozenset({
    "synchronize", "set_device", "ipc_collect", "init", "reset_peak_memory_stats",
    "reset_max_memory_allocated", "reset_max_memory_cached", "reset_accumulated_memory_stats",
    "set_per_process_memory_fraction", "set_sync_debug_mode",
})
# Stream objects: None where CUDA is missing.
_STREAMS = frozenset({"Stream", "ExternalStream", "current_stream", "default_stream"})
# Queries and objects without a faithful stand-in.
_QUERIES = {
    "current_device": "an int device index; where CUDA may be missing use the model's device instead",
    "get_device_name": "guard it with torch.cuda.is_available()",
    "get_device_properties": "guard it with torch.cuda.is_available()",
    "get_device_capability": "guard it with torch.cuda.is_available()",
    "mem_get_info": "guard it with torch.cuda.is_available()",
    "current_blas_handle": "guard it with torch.cuda.is_available()",
    "Event": "CUDA events time GPU work; time with time.perf_counter() where CUDA is missing, "
             "or guard the timing code with torch.cuda.is_available()",
    "CUDAGraph": "CUDA graphs need CUDA; guard the capture with torch.cuda.is_available()",
    "graph": "CUDA graphs need CUDA; guard the capture with torch.cuda.is_available()",
    "device": "use the model's device, or contextlib.nullcontext() where CUDA is missing",
}
NAMES = frozenset({*_EFFECT, *_STREAMS, *_QUERIES, "record_stream"})


@DEV007.on("call.torch", qual=("torch.cuda.",), skip_guarded=True, covers=True)
def check_call(ck, node: ast.Call, qual: Optional[str]) -> bool:
    """DEV007 for ``node``; True if reported."""
    func = node.func
    if qual and qual.startswith("torch.cuda."):
        name = qual[len("torch.cuda."):]
        if name not in NAMES or name == "record_stream":
            return False
        if name == "device" and not _is_device_switch(node):
            return False
    elif isinstance(func, ast.Attribute) and func.attr == "record_stream" and len(node.args) == 1:
        if _own_method(ck, func):
            return False  # ``self.record_stream(...)``: a helper of the user's own class, not the Tensor method
        name = "record_stream"  # a Tensor method that only CUDA tensors support
    else:
        return False
    if _guards_statement(ck, name):  # one diagnostic for the statement (the same with or without fixes)
        for n in ast.walk(ck.statement):
            if isinstance(n, ast.Call):
                ck.claim(n)
    fix, why = _fix(ck, node, name) if ck.fixes else (None, None)
    what = f"torch.cuda.{name}()" if name != "record_stream" else ".record_stream()"
    ck.report("DEV007", node, f"{what} needs the CUDA runtime and raises where CUDA is missing; "
                              "guard it with torch.cuda.is_available()", fix, why)
    return True


@DEV007.on("call.method", attrs={"record_stream"}, skip_guarded=True, covers="always")
def check_record_stream(ck, node: ast.Call) -> None:
    """``t.record_stream(s)``: a Tensor method only CUDA tensors support; no other rule looks at the call."""
    check_call(ck, node, None)


def _own_method(ck, func: ast.Attribute) -> bool:
    """``self.<name>`` where the enclosing class (or a class of this module) defines ``<name>``."""
    if not (isinstance(func.value, ast.Name) and func.value.id in ("self", "cls")):
        return False
    for info in ck.class_stack:
        if any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == func.attr
               for s in info.node.body):
            return True
    return False


def _is_device_switch(node: ast.Call) -> bool:
    """``torch.cuda.device(n)`` switches the current device (raises without CUDA); ``device(-1)`` is a no-op."""
    if len(node.args) != 1 or node.keywords:
        return False
    a = node.args[0]
    return not (isinstance(a, ast.UnaryOp) and isinstance(a.op, ast.USub))


def _guards_statement(ck, name: str) -> bool:
    """Whether the fix puts the whole statement under a guard: an expression statement."""
    return isinstance(ck.statement, ast.Expr) and name not in ("Event", "CUDAGraph", "device")


def _fix(ck, node: ast.Call, name: str):
    torch = ck.torch_name() or "torch"
    stmt = ck.statement
    if _guards_statement(ck, name):
        op, why = _guard_statement(ck, stmt, torch)
        if op is None:
            return None, why
        return Fix((op,), True, "run it only where CUDA is available (a no-op elsewhere)"), None
    if name in _STREAMS:
        text = f"({ck.src(node)} if {torch}.cuda.is_available() else None)"
        return Fix((ReplaceNode(Span.of(node), text),), False,
                   "no stream where CUDA is missing (torch.cuda.stream(None) is a no-op); "
                   "unsafe: other uses of the stream must accept None"), None
    if name in _EFFECT or name == "record_stream":
        return None, "the call is part of a larger statement; guard it with torch.cuda.is_available() by hand"
    return None, _QUERIES.get(name, "guard it with torch.cuda.is_available()")


def _guard_statement(ck, stmt: ast.stmt, torch: str):
    """``if torch.cuda.is_available():`` around an expression statement, or (None, why)."""
    line = ck.lines[stmt.lineno - 1] if stmt.lineno - 1 < len(ck.lines) else ""
    indent = line[: len(line) - len(line.lstrip())]
    if len(indent.encode("utf-8")) != stmt.col_offset:
        return None, "the statement shares its line with another statement"
    last = ck.lines[stmt.end_lineno - 1] if stmt.end_lineno - 1 < len(ck.lines) else ""
    rest = last.encode("utf-8")[stmt.end_col_offset:].decode("utf-8", "replace").strip()
    if rest and not rest.startswith("#"):
        return None, "the statement shares its line with another statement"
    if any(isinstance(n, (ast.Constant, ast.JoinedStr)) and n.lineno != n.end_lineno for n in ast.walk(stmt)):
        return None, "the statement holds a multi-line string; guard it by hand"
    newline = "\r\n" if line.endswith("\r\n") else "\n"
    # Continuation lines keep their own indentation, one level deeper.
    parts = [part[:-1] if part.endswith("\r") else part for part in ck.src(stmt).split("\n")]
    body = (newline + "    ").join(parts)
    return ReplaceNode(Span.of(stmt), f"if {torch}.cuda.is_available():{newline}{indent}    {body}"), None
