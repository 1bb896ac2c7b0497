"""Device guards: which code runs only where an accelerator is present.

A facts-level module (engine -> rules -> guards/facts): it imports neither the
engine nor the rules.  The engine asks it, while it walks a module, whether a
test, a decorator or an early exit guards the code that follows; the rules read
the answer as ``ck.guarded``.

Guards:

- a test whose truth means an accelerator is present: ``torch.cuda.is_available()``,
  ``x.is_cuda``, ``x.device.type == "cuda"``, names and attributes that mention
  ``cuda``/``gpu`` (``if use_cuda:``, ``if args.gpu:``), and ``and``/``or``/``not``
  combinations.  Polarity -1 means the test is true where there is *no* accelerator
  (``if not torch.cuda.is_available():``): its ``else`` is guarded;
- a name bound to such a test (``has_gpu = torch.cuda.is_available()``);
- a test that the distributed backend is NCCL (``dist.get_backend() == "nccl"``,
  ``== dist.Backend.NCCL``): NCCL runs only with CUDA;
- test decorators that skip unless an accelerator is present:
  ``@unittest.skipIf(not torch.cuda.is_available(), ...)``,
  ``@unittest.skipUnless(torch.cuda.is_available(), ...)``,
  ``@pytest.mark.skipif(not torch.cuda.is_available(), reason=...)`` (also with the
  condition as a string, and through a module-level name bound to one of them), and
  decorators named like ``needs_cuda`` / ``requires_gpu`` / ``requires_nccl()`` / ``skip_if_lt_x_gpu(2)``;
- an early exit: ``if not torch.cuda.is_available(): return`` (or ``raise``,
  ``continue``, ``break``, ``self.skipTest(...)``, ``pytest.skip(...)``) guards the
  rest of the block, as does ``assert torch.cuda.is_available()``.

Not guards: a name bound only to constants in its scope (``use_gpu = True`` then
``if use_gpu:``): the branch always runs, accelerator or not.
"""

from __future__ import annotations

import ast
import re
from typing import Callable, Dict, List, Optional, Sequence

from .names import AVAILABILITY_CALLS, DEVICE_TEST_ATTRS

_DEVICE_STR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*\d+)?\s*$")
_SKIP_IF = frozenset({"unittest.skipIf", "unittest.case.skipIf", "pytest.mark.skipif", "_pytest.mark.skipif"})
_SKIP_UNLESS = frozenset({"unittest.skipUnless", "unittest.case.skipUnless"})
_SKIP_CALLS = frozenset({"pytest.skip", "unittest.skip", "pytest.xfail"})
# Decorators named for what they need: ``needs_cuda``, ``requires_gpu``, ``requires_nccl()``,
# ``skip_if_lt_x_gpu(2)``, ``skipIfNoCUDA``, ``onlyCUDA``, ``cuda_only`` (compared without case or "_").
_NEEDS_PREFIXES = ("needs", "requires", "require", "only", "skipifno", "skipiflt", "skipunless")
_NEEDS_WORDS = ("cuda", "gpu", "nccl")


def _names_a_requirement(name: str) -> bool:
    low = name.lower().replace("_", "")
    if low.endswith(("cudaonly", "gpuonly")):
        return True
    return low.startswith(_NEEDS_PREFIXES) and any(w in low for w in _NEEDS_WORDS)
_EXITS = (ast.Return, ast.Raise, ast.Continue, ast.Break)
# The last part of every call that can make a guard or a skip marker.
_GUARD_CALL_NAMES = frozenset({q.rsplit(".", 1)[-1] for q in AVAILABILITY_CALLS} | {"skipif", "skipIf", "skipUnless"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)

# What a scope binds a name to: the assigned values, or None for a binding that is not a plain
# assignment (a parameter, a loop target, ``with ... as``, an import...).
Bindings = Dict[str, List[Optional[ast.expr]]]


def _scope_bindings(scope: ast.AST) -> Bindings:
    out: Bindings = {}
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        a = scope.args
        for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
            if p is not None:
                out.setdefault(p.arg, []).append(None)
    stack = list(ast.iter_child_nodes(scope)) if not isinstance(scope, ast.Lambda) else []
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Assign, ast.AnnAssign)):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append(n.value)
                else:
                    for e in ast.walk(t):
                        if isinstance(e, ast.Name):
                            out.setdefault(e.id, []).append(None)
        elif isinstance(n, (ast.AugAssign, ast.For, ast.AsyncFor, ast.comprehension)):
            for e in ast.walk(n.target):
                if isinstance(e, ast.Name):
                    out.setdefault(e.id, []).append(None)
        elif isinstance(n, ast.NamedExpr):
            out.setdefault(n.target.id, []).append(n.value)
        elif isinstance(n, ast.withitem) and n.optional_vars is not None:
            for e in ast.walk(n.optional_vars):
                if isinstance(e, ast.Name):
                    out.setdefault(e.id, []).append(None)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                out.setdefault((a.asname or a.name).split(".")[0], []).append(None)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            for name in n.names:
                out.setdefault(name, []).append(None)
        if isinstance(n, _SCOPES):
            if not isinstance(n, ast.Lambda):
                out.setdefault(n.name, []).append(None)
            continue
        stack.extend(ast.iter_child_nodes(n))
    return out


class Guards:
    """Guard decisions for one module.

    ``resolve`` gives the qualified name of a Name/Attribute chain through the
    module's imports; ``is_accelerator`` says whether a device type is one the
    rules report (``"cuda"``, ``"mps"``...).
    """

    def __init__(self, tree: ast.AST, resolve: Callable[[ast.AST], Optional[str]],
                 is_accelerator: Callable[[str], bool]):
        self.tree = tree
        self.resolve = resolve
        self.is_accelerator = is_accelerator
        self._bindings: Dict[int, Bindings] = {}
        # Names the walk saw assigned a guard (``has_gpu = torch.cuda.is_available()``), per scope, with
        # the polarity; and module names bound to a skip marker (``requires_cuda = pytest.mark.skipif(...)``).
        self._assigned: Dict[int, Dict[str, int]] = {}
        self._markers: Dict[str, bool] = {}

    def note_assignment(self, stmt: ast.stmt, scopes: Sequence[ast.AST]) -> None:
        """Called by the walk for each assignment, before the code that follows it."""
        value = getattr(stmt, "value", None)
        cls = value.__class__
        if cls is ast.Call:
            func = value.func
            last = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if last not in _GUARD_CALL_NAMES:
                return
        elif cls not in (ast.BoolOp, ast.UnaryOp, ast.Compare, ast.Attribute):
            return
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            return
        pol = self.polarity(value, scopes)
        if pol:
            scope = self._assigned.setdefault(id(scopes[-1]) if scopes else 0, {})
            for n in names:
                scope[n] = pol
        if isinstance(value, ast.Call) and len(scopes) <= 1 and self._decorator_guard(value, scopes, 1):
            for n in names:
                self._markers[n] = True

    # ---- names ---------------------------------------------------------------
    def bindings(self, scope: ast.AST) -> Bindings:
        b = self._bindings.get(id(scope))
        if b is None:
            b = self._bindings[id(scope)] = _scope_bindings(scope)
        return b

    def _binding(self, name: str, scopes: Sequence[ast.AST]) -> Optional[List[Optional[ast.expr]]]:
        """The values ``name`` is bound to in the innermost scope that binds it (None: unbound here)."""
        for scope in reversed(scopes):
            if isinstance(scope, ast.ClassDef):
                continue  # class bodies are not enclosing scopes for the code of their methods
            values = self.bindings(scope).get(name)
            if values:
                return values
        return None

    # ---- tests -------------------------------------------------------------
    def polarity(self, test: ast.AST, scopes: Sequence[ast.AST] = (), _depth: int = 0) -> int:
        """+1 if ``test`` true means an accelerator is present, -1 if false means it, else 0.

        ``scopes`` are the enclosing scope nodes, outermost first (the module, then functions).
        """
        if _depth > 20:
            return 0
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return -self.polarity(test.operand, scopes, _depth + 1)
        if isinstance(test, ast.BoolOp):
            pols = [self.polarity(v, scopes, _depth + 1) for v in test.values]
            if isinstance(test.op, ast.And) and any(p > 0 for p in pols):
                return 1
            if isinstance(test.op, ast.Or) and any(p < 0 for p in pols):
                return -1
            return 0
        if isinstance(test, ast.Call):
            return 1 if self.resolve(test.func) in AVAILABILITY_CALLS else 0
        if isinstance(test, ast.Compare):
            for part in [test.left, *test.comparators]:
                if self.polarity(part, scopes, _depth + 1) > 0:
                    return 1
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    m = _DEVICE_STR.match(part.value)
                    equal = isinstance(test.ops[0], (ast.Eq, ast.In, ast.Is))
                    if (m and self.is_accelerator(m.group(1))) or part.value.lower() == "nccl" or (
                            len(test.comparators) == 1 and _is_accelerator_label(part.value)):
                        # ``device == "cuda"``, and labels: ``args.device == "gpu"``
                        return 1 if equal else -1
                    if len(test.comparators) == 1 and part.value.strip().lower() == "cpu" and isinstance(
                            test.ops[0], (ast.Eq, ast.NotEq)):
                        return -1 if equal else 1  # ``device == "cpu"``: true exactly where it is not used
                if isinstance(part, ast.Attribute) and part.attr == "NCCL":
                    # ``dist.get_backend() == dist.Backend.NCCL``: NCCL runs only with CUDA
                    return 1 if isinstance(test.ops[0], (ast.Eq, ast.Is)) else -1
            return 0
        if isinstance(test, ast.Attribute):
            if test.attr in DEVICE_TEST_ATTRS:
                return 1
            return _name_polarity(test.attr)
        if isinstance(test, ast.Name):
            for scope in reversed(scopes):  # ``has_gpu = torch.cuda.is_available()`` seen by the walk
                pol = self._assigned.get(id(scope), {}).get(test.id)
                if pol:
                    return pol
            pol = _name_polarity(test.id)
            if not pol:
                return 0
            values = self._binding(test.id, scopes)
            if values and all(isinstance(v, ast.Constant) for v in values):
                return 0  # ``use_gpu = True``: the branch runs everywhere
            return pol
        return 0

    # ---- decorators ----------------------------------------------------------
    def decorators_guard(self, decorators: Sequence[ast.expr], scopes: Sequence[ast.AST] = ()) -> bool:
        """Whether one of ``decorators`` skips the function or class unless an accelerator is present."""
        return any(self._decorator_guard(d, scopes, 0) for d in decorators)

    def _decorator_guard(self, d: ast.expr, scopes: Sequence[ast.AST], depth: int) -> bool:
        if depth > 5:
            return False
        if isinstance(d, ast.Call):
            fname = d.func.attr if isinstance(d.func, ast.Attribute) else getattr(d.func, "id", "")
            if _names_a_requirement(fname):
                return True  # ``@requires_nccl()``, ``@skip_if_lt_x_gpu(2)`` (torch.testing's own, too)
            q = self.resolve(d.func) or ""
            cond = d.args[0] if d.args else next((k.value for k in d.keywords if k.arg == "condition"), None)
            if cond is None:
                return False
            if isinstance(cond, ast.Constant) and isinstance(cond.value, str):
                try:  # ``@pytest.mark.skipif("not torch.cuda.is_available()")``
                    cond = ast.parse(cond.value, mode="eval").body
                except SyntaxError:
                    return False
            if q in _SKIP_IF or q.endswith(".skipif") or q.endswith(".skipIf"):
                return self.polarity(cond, scopes) < 0
            if q in _SKIP_UNLESS or q.endswith(".skipUnless"):
                return self.polarity(cond, scopes) > 0
            return False
        name = d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", None)
        if name is None:
            return False
        if isinstance(d, ast.Name) and self._markers.get(name):
            return True  # ``requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), ...)``
        return _names_a_requirement(name)

    # ---- blocks ----------------------------------------------------------------
    def guards_rest_of_block(self, stmt: ast.stmt, scopes: Sequence[ast.AST] = ()) -> bool:
        """``if not torch.cuda.is_available(): return`` / ``assert torch.cuda.is_available()``."""
        if isinstance(stmt, ast.Assert):
            return self.polarity(stmt.test, scopes) > 0
        if not isinstance(stmt, ast.If) or stmt.orelse or not stmt.body:
            return False
        if self.polarity(stmt.test, scopes) >= 0:
            return False
        last = stmt.body[-1]
        return isinstance(last, _EXITS) or self._is_skip_call(last)

    def _is_skip_call(self, stmt: ast.stmt) -> bool:
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
            return False
        func = stmt.value.func
        if isinstance(func, ast.Attribute) and func.attr == "skipTest":
            return True
        return (self.resolve(func) or "") in _SKIP_CALLS


def _is_accelerator_label(value: str) -> bool:
    """A user-facing label for the accelerator (``"gpu"``, ``"GPU"``, ``"cuda_fp16"``)."""
    low = value.strip().lower()
    return bool(low) and len(low) <= 20 and ("gpu" in low or "cuda" in low) and " " not in low


_CPU_FLAGS = ("cpu", "use_cpu", "force_cpu", "cpu_only", "only_cpu", "on_cpu", "run_on_cpu")
_NEGATIONS = ("no_", "no", "disable_", "without_", "not_")


def _name_polarity(name: str) -> int:
    """+1 for a flag named for the accelerator (``use_cuda``, ``args.gpu``), -1 for one named for its
    absence (``args.cpu``, ``no_cuda``, ``disable_gpu``), else 0."""
    low = name.lower()
    if low in _CPU_FLAGS:
        return -1
    if _mentions_accelerator(low):
        for neg in _NEGATIONS:
            if low.startswith(neg) and _mentions_accelerator(low[len(neg):len(neg) + 4]):
                return -1
        return 1
    return 0


def _mentions_accelerator(name: str) -> bool:
    low = name.lower()
    return "cuda" in low or "gpu" in low
