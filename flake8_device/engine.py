"""The rule engine: one walk over a module's ``ast`` that runs every DEV rule.

The walk keeps the context the rules need: how names resolve through imports
(``import torch as T``, ``from torch import zeros``), the enclosing classes and
functions, whether code sits under a device guard (``if torch.cuda.is_available():``)
and which device expressions are in scope for a fix.  Rules live in
``flake8_device.rules``; each one detects a problem and builds the fix it offers.
"""

from __future__ import annotations

import ast
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from . import rules
from .diagnostics import Diagnostic, Span
from .lines import split_lines
from .facts import (  # noqa: F401  (ClassInfo, FuncInfo, param_defaults... are re-exported)
    _DEVICE_PREFIX,
    _DEVICE_STR,
    _LEAVES,
    ClassInfo,
    FuncInfo,
    ModuleFacts,
    _is_device_name,
    _is_dtype_name,
    _walk_shallow,
    children,
    device_literal,
    param_defaults,
    source_text,
)
from . import inference
from .inference import DeviceChoice  # noqa: F401  (re-exported)
from .guards import Guards
from .options import Options

# The registered hooks by kind, in the order the engine runs them (see rules.registry).
_HOOKS = {kind: tuple(rules.hooks_of(kind)) for kind in rules.registry.KINDS}
_ATTRIBUTE_NAMES = frozenset(n for h in _HOOKS["attribute"] for n in h.names)
# call.method hooks by the attribute they select; call.torch hooks by qualified name (filled as met)
_METHOD_HOOKS = {a: tuple(h for h in _HOOKS["call.method"] if a in h.attrs)
                 for h0 in _HOOKS["call.method"] for a in h0.attrs}
_TORCH_HOOKS: Dict[str, tuple] = {}


def _torch_hooks(qual: str) -> tuple:
    hooks = _TORCH_HOOKS.get(qual)
    if hooks is None:
        hooks = _TORCH_HOOKS[qual] = tuple(h for h in _HOOKS["call.torch"] if h.matches_qual(qual))
    return hooks

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
        self.rules = rules
        # Callee names (the last part of ``a.b.name(...)``) that a rule may care about,
        # including local aliases such as ``from torch import zeros as Z``.
        self.call_names: Set[str] = set(rules.CALL_NAMES)
        # Import resolution and class/function facts (flake8_device.facts).
        self.facts = ModuleFacts(tree, rules.CALL_NAMES, self.call_names.add)
        self.aliases = self.facts.aliases
        self.classes = self.facts.classes
        # module-level names bound to a device expression
        self.module_device_names = self.facts.module_device_names
        self.class_stack: List[ClassInfo] = []
        self.func_stack: List[FuncInfo] = []
        self.guard_depth = 0
        # Device guards (flake8_device.guards): tests, skip decorators, early exits.
        self.guards = Guards(tree, self.resolve, options.is_flagged_device_type)
        self.statement: Optional[ast.stmt] = None
        # id of a node -> the codes of the rules whose diagnostic covers it (ck.claim)
        self._claims: Dict[int, Set[str]] = {}
        # the rule whose hook runs now, and each rule's own facts of this run (ck.state)
        self._rule = None
        self._states: Dict[str, Dict[str, Any]] = {}
        self._property_added: Set[int] = set()
        # Facts device inference keeps for the rest of this run (bindings, classes...).
        self.inference_cache: Dict[str, Any] = {}
        # How fix text spells torch and the module device here (flake8_device.inference).
        self.importer = inference.Importer(self.facts)

    # ---- entry -----------------------------------------------------------
    def run(self) -> List[Diagnostic]:
        self.facts.prescan_module(self.tree)
        body = getattr(self.tree, "body", [])
        self._visit_block(body)
        self._run_hooks(_HOOKS["module"], self.tree)
        self.diagnostics.sort(key=lambda d: (d.span.line, d.span.col, d.code))
        return self.diagnostics

    def report(self, code: str, node_or_span, message: str, fix=None, no_fix_reason=None,
               same_fix_as: Optional[Diagnostic] = None, choice=None) -> Diagnostic:
        """Record a diagnostic and return it.

        ``choice``: what device inference decided for the fix (see :func:`inference.finish_fix`).

        ``same_fix_as``: another diagnostic of this run whose fix (or reason for having none) this one
        shares, the very same object, as one fix serving two codes (DEV101 and DEV001 on one chain).
        """
        span = node_or_span if isinstance(node_or_span, Span) else Span.of(node_or_span)
        unit = self._rule
        if unit is not None and code != unit.code and code not in unit.also_reports:
            raise ValueError(f"a hook of {unit.code} reports {code}, which the rule does not declare")
        if same_fix_as is not None:
            fix, no_fix_reason = same_fix_as.fix, same_fix_as.no_fix_reason
            if no_fix_reason and no_fix_reason.startswith(same_fix_as.code + ":"):
                no_fix_reason = code + no_fix_reason[len(same_fix_as.code):]  # the reason names this code
        elif not self.fixes:
            fix = no_fix_reason = None
        else:
            fix, no_fix_reason = inference.finish_fix(self, code, span.line, fix, no_fix_reason, choice)
            if fix is None and no_fix_reason is None:
                no_fix_reason = "no automatic fix for this pattern"
        diagnostic = Diagnostic(code, message, span, fix, no_fix_reason)
        self.diagnostics.append(diagnostic)
        return diagnostic

    # ---- hooks and the relations between rules (flake8_device.rules.registry) ------
    def _call_hook(self, hook, *args):
        """Run one hook as its rule; None where the hook skips guarded code and the code is guarded."""
        if hook.skip_guarded and self.guard_depth > 0:
            return None
        prev, self._rule = self._rule, hook.rule
        result = hook.fn(self, *args)
        self._rule = prev  # (an exception ends the run: the front ends report it)
        return result

    def _check_call(self, node: ast.Call) -> None:
        """Every call hook that matches ``node``, the most specific kind first, until one covers the call."""
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in self.call_names:
            if node.keywords:
                self._run_hooks(_HOOKS["call.keywords"], node)
            return
        if self._run_hooks(_HOOKS["call.chain"], node):
            return
        if isinstance(func, ast.Attribute):
            hooks = _METHOD_HOOKS.get(func.attr)
            if hooks and self._run_hooks(hooks, node):
                return
        qual = self.resolve(func)
        if qual is not None:
            hooks = _torch_hooks(qual)
            if hooks and self._run_hooks(hooks, node, qual):
                return
        self._run_hooks(_HOOKS["call.keywords"], node)

    def _run_hooks(self, hooks, node, *extra) -> bool:
        """Run ``hooks`` on ``node``, each as its rule; True (stop) once a covering hook reports the call."""
        guarded = self.guard_depth > 0
        prev = self._rule
        for hook in hooks:  # _call_hook, inlined: this runs for every call of the module
            if hook.skip_guarded and guarded:
                covered = None
            else:
                self._rule = hook.rule
                covered = hook.fn(self, node, *extra)
                self._rule = prev
            if hook.covers and (covered or hook.covers == "always"):
                return True
        return False

    def claim(self, *nodes: ast.AST) -> None:
        code = self._rule.code if self._rule is not None else ""
        for node in nodes:
            self._claims.setdefault(id(node), set()).add(code)

    def claimed(self, node: ast.AST) -> bool:
        codes = self._claims.get(id(node))
        if not codes:
            return False
        unit = self._rule
        return unit is None or unit.code in codes or any(c in codes for c in unit.yields_to)

    @property
    def state(self) -> Dict[str, Any]:
        return self._states.setdefault(self._rule.code if self._rule is not None else "", {})

    # ---- name resolution (flake8_device.facts) -----------------------------
    @property
    def module_names(self) -> Dict[str, int]:
        """Every name bound at module level -> first line (see :attr:`ModuleFacts.module_names`)."""
        return self.facts.module_names

    def import_of(self, name: str) -> Optional[ast.stmt]:
        """The import statement that binds ``name``, if any."""
        return self.facts.import_nodes.get(name)

    def resolve(self, node: ast.AST) -> Optional[str]:
        """Qualified name of a Name/Attribute chain, following imports."""
        return self.facts.resolve(node)

    def torch_name(self) -> Optional[str]:
        """How this module spells ``torch`` (None if it cannot)."""
        return self.importer.torch_name()

    # ---- source text and device literals (flake8_device.facts) ----------------
    def src(self, node: ast.AST) -> str:
        """The exact source text of ``node``."""
        return source_text(self.lines, node)

    def device_literal(self, node: Optional[ast.AST]) -> Optional[Tuple[str, bool]]:
        """``(type, plain)`` if ``node`` is a hardcoded accelerator device (see :func:`facts.device_literal`)."""
        return device_literal(node, self.resolve, self.options.is_flagged_device_type)

    # ---- guards ------------------------------------------------------------
    def guard_polarity(self, test: ast.AST) -> int:
        """+1 if ``test`` true means an accelerator is present, -1 if false means it, else 0."""
        return self.guards.polarity(test, self._scopes())

    def _scopes(self) -> List[ast.AST]:
        return [self.tree, *(f.node for f in self.func_stack)]

    @property
    def guarded(self) -> bool:
        return self.guard_depth > 0

    # ---- traversal ---------------------------------------------------------
    def _visit_block(self, body: Sequence[ast.stmt]) -> None:
        entered = 0
        for stmt in body:
            self._visit_stmt(stmt)
            # ``if not torch.cuda.is_available(): return`` guards the rest of the block.
            if isinstance(stmt, (ast.If, ast.Assert)) and self.guards.guards_rest_of_block(stmt, self._scopes()):
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
                info = ClassInfo(stmt, self.facts)
                self.class_stack.append(info)
                saved_guard = self.guard_depth
                self.guard_depth += self.guards.decorators_guard(stmt.decorator_list, self._scopes())
                self.statement = None
                self._visit_block(stmt.body)
                self.guard_depth = saved_guard
                self.class_stack.pop()
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for d in stmt.decorator_list:
                    self._visit_expr(d)
                self._run_hooks(_HOOKS["function_def"], stmt)
                for default in [*stmt.args.defaults, *stmt.args.kw_defaults]:
                    if default is not None:
                        self._visit_expr(default)
                info = self.func_info(stmt)
                self.func_stack.append(info)
                saved_guard = self.guard_depth
                # ``@unittest.skipIf(not torch.cuda.is_available(), ...)`` guards the body.
                self.guard_depth += self.guards.decorators_guard(stmt.decorator_list, self._scopes())
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
                    self.facts.add_import(stmt)
                self._run_hooks(_HOOKS["import"], stmt)
            else:
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    self._run_hooks(_HOOKS["assign"], stmt)
                    self.guards.note_assignment(stmt, self._scopes())
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
                if id(n) not in self._claims:
                    self._check_call(n)
            elif isinstance(n, ast.BoolOp) and len(n.values) > 1:
                # ``torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)``:
                # the operands after a guard evaluate only where it holds (``or`` after a negated one).
                entered = 0
                for v in n.values:
                    self._visit_expr(v)
                    pol = self.guard_polarity(v)
                    if (pol > 0 and isinstance(n.op, ast.And)) or (pol < 0 and isinstance(n.op, ast.Or)):
                        self.guard_depth += 1
                        entered += 1
                self.guard_depth -= entered
                continue
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
                info = FuncInfo(n, self._current_class(), self.facts)
                self.func_stack.append(info)
                self._visit_expr(n.body)
                self.func_stack.pop()
                continue
            elif isinstance(n, ast.Attribute) and n.attr in _ATTRIBUTE_NAMES and id(n) not in self._claims:
                self._run_hooks(_HOOKS["attribute"], n)
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

    def func_info(self, fn: ast.AST) -> FuncInfo:
        """Facts of a function definition visited at the current position."""
        return self.facts.func_info(fn, self.class_stack)


    def tensor_used_params(self, func: FuncInfo) -> Set[str]:
        """Parameters used like tensors (see :meth:`ModuleFacts.tensor_used_params`)."""
        return self.facts.tensor_used_params(func)

    # ---- device inference (flake8_device.inference) --------------------------
    def infer_device(self, at: ast.AST, exclude_roots: Set[str] = frozenset(),
                     allow_add_property: bool = True, allow_new_device: bool = False):
        """Choose a device expression for a fix at ``at`` (see :func:`inference.infer_device`)."""
        return inference.infer_device(self, at, exclude_roots, allow_add_property, allow_new_device)

    def availability_expr(self, node: ast.AST, dev_type: str) -> Optional[str]:
        """``"cuda" if torch.cuda.is_available() else "cpu"`` for the literal at ``node``."""
        return inference.availability_expr(self, node, dev_type)

    def body_insertion_point(self, owner: ast.AST):
        """Where new statements go at the top of a class or function body (see :mod:`inference`)."""
        return inference.body_insertion_point(self, owner)

    def property_insertion(self, cls: ClassInfo):
        """The op that adds a ``device`` property to ``cls``, or None if it cannot be placed."""
        return inference.property_insertion(self, cls)

    def property_added(self, cls: ClassInfo) -> bool:
        return id(cls.node) in self._property_added

    def claim_property(self, cls: ClassInfo) -> None:
        self._property_added.add(id(cls.node))


def check_source(source: str, filename: str = "<string>", options: Optional[Options] = None,
                 tree: Optional[ast.AST] = None, lines: Optional[Sequence[str]] = None,
                 fixes: bool = True) -> List[Diagnostic]:
    """Run every DEV rule on ``source``; raises ``SyntaxError`` if it does not parse.

    With ``fixes=False`` diagnostics carry no fix (cheaper: nothing is inferred).
    """
    if tree is None:
        tree = ast.parse(source, filename=filename)
    if lines is None:
        # not str.splitlines: it also splits at form feeds, U+2028... (see lines.py)
        lines = split_lines(source)
    return Checker(tree, lines, options or Options(), filename, fixes=fixes).run()
