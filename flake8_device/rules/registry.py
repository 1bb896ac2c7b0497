"""The rule registry: every DEV rule is one :class:`Rule` unit, its hooks registered by decorator.

A rule module declares its units with :func:`rule` and registers each check with
``@UNIT.on(kind, ...)``; importing the ``rules`` package imports every module of the folder, so
the folder is the list of rules.  The engine dispatches from :data:`REGISTRY` and resolves the
relations the units declare:

* ``yields_to``: the codes whose claims this rule respects.  A hook calls ``ck.claim(node)`` for a
  node its diagnostic covers and ``ck.claimed(node)`` to ask whether the node is covered by this
  rule or by one it yields to; the engine keeps the claims, per rule, and never visits a claimed
  node again.  A rule runs after the rules it yields to when both look at one node.
* ``skip_guarded`` (per hook): the hook is not called where the code runs only with an
  accelerator present (``ck.guarded``).
* ``covers`` (call hooks): the hook reports the call as a whole; when it returns True (or always,
  with ``covers="always"``) the engine runs no later hook on that call.

Call hooks come in four kinds, run in this order on one call, the most specific first:
``call.chain`` (a chain that starts at a factory), ``call.method`` (``x.<attr>(...)``, selected by
``attrs``), ``call.torch`` (a qualified ``torch.`` callee, selected by ``qual``: an exact name, or a
prefix ending in ``.``) and ``call.keywords`` (the keyword arguments of any call).  The other kinds
are ``attribute``, ``function_def``, ``assign``, ``import`` and ``module``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple, Union

CALL_KINDS = ("call.chain", "call.method", "call.torch", "call.keywords")
KINDS = CALL_KINDS + ("attribute", "function_def", "assign", "import", "module")


@dataclass(eq=False)
class Hook:
    rule: "Rule"
    kind: str
    fn: Callable
    skip_guarded: bool = False
    attrs: FrozenSet[str] = frozenset()
    qual: Tuple[str, ...] = ()
    covers: Union[bool, str] = False
    # the callee names (last part) this hook can match, for the engine's quick filter
    names: FrozenSet[str] = frozenset()

    def matches_qual(self, qual: Optional[str]) -> bool:
        if qual is None:
            return False
        return any(qual == q or (q.endswith(".") and qual.startswith(q)) for q in self.qual)


@dataclass(eq=False)
class Rule:
    """One rule: its code, how docs/rules.md describes it, its hooks and its relations."""

    code: str
    # one line (flake8-device --statistics, SARIF shortDescription)
    summary: str
    # docs/rules.md table: what it finds, and the safety of its fix
    finds: str
    fix_safety: str
    # an example of the message it reports (docs/rules.md **Message:**)
    message: str
    default_ignored: bool = False
    yields_to: Tuple[str, ...] = ()
    # other codes this rule's hooks report alongside its own (a chain's portability codes)
    also_reports: Tuple[str, ...] = ()
    hooks: List[Hook] = field(default_factory=list)

    def on(self, kind: str, *, skip_guarded: bool = False, attrs=(), qual=(), covers: Union[bool, str] = False,
           names=()):
        """Register the decorated function as this rule's hook of ``kind``."""
        if kind not in KINDS:
            raise ValueError(f"{self.code}: unknown hook kind {kind!r}")

        def register(fn: Callable) -> Callable:
            hook = Hook(self, kind, fn, skip_guarded, frozenset(attrs), tuple(qual), covers, frozenset(names))
            self.hooks.append(hook)
            _ORDER.append(hook)
            return fn

        return register


REGISTRY: Dict[str, Rule] = {}
_ORDER: List[Hook] = []


def rule(code: str, **meta) -> Rule:
    """Declare the rule ``code`` (see :class:`Rule` for the fields) and register it."""
    if code in REGISTRY:
        raise ValueError(f"{code} is declared twice")
    unit = Rule(code, **meta)
    REGISTRY[code] = unit
    return unit


def hooks_of(kind: str) -> List[Hook]:
    """The hooks of ``kind``, a rule after every rule it yields to, else in registration order."""
    hooks = [h for h in _ORDER if h.kind == kind]
    placed: List[Hook] = []
    pending = list(hooks)
    while pending:
        for h in pending:
            waits = [o for o in pending if o is not h and o.rule is not h.rule and o.rule.code in h.rule.yields_to]
            if not waits:
                placed.append(h)
                pending.remove(h)
                break
        else:  # pragma: no cover - a cycle of yields_to: keep registration order
            placed.extend(pending)
            break
    return placed


def check_relations() -> None:
    """Every declared relation names a registered rule, and no rule yields to itself."""
    for unit in REGISTRY.values():
        for code in (*unit.yields_to, *unit.also_reports):
            if code not in REGISTRY or code == unit.code:
                raise ValueError(f"{unit.code} names {code}, which is not another registered rule")
