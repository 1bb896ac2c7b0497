"""The context a rule sees: the public interface the engine offers to ``flake8_device.rules``.

Rules receive an object of this shape as their first argument (``ck``).  The
engine's ``Checker`` implements it; rules depend on this protocol, the scope
facts (:mod:`flake8_device.facts`) and device inference
(:mod:`flake8_device.inference`), never on the engine module, so the layering
reads engine -> rules -> facts/inference.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Set, Tuple, Union

try:  # Python >= 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore

from .diagnostics import Span
from .options import Options

if TYPE_CHECKING:  # pragma: no cover
    from .diagnostics import Diagnostic, Fix, InsertBefore
    from .facts import ClassInfo, FuncInfo
    from .inference import DeviceChoice, Importer, Refusal


class RuleContext(Protocol):
    """What a rule may read and call while the engine walks a module.

    State of the walk
        ``options`` (accelerator names, ``--device-expr``); ``fixes`` (False when
        only reporting: rules may skip building fixes); ``lines`` and
        ``filename`` of the module; ``statement`` (the statement being visited,
        None directly in a class or function header); ``func_stack`` and
        ``class_stack`` (the enclosing functions and classes, innermost last);
        ``module_device_names`` (module-level names bound to a device, with
        their line); ``module_names`` (every name bound at module level, with
        its first line); ``tree`` (the module); ``state`` (a dict of the
        running rule's own facts of this run: each rule sees only its own);
        ``importer`` (how fix text spells ``torch`` and the module device
        here); ``inference_cache`` (facts device inference keeps for the run).

    Relations between rules
        ``claim(node)`` records that the running rule's diagnostic covers
        ``node``: the walk does not visit it again.  ``claimed(node)`` says
        whether the running rule, or a rule it declares in ``yields_to``,
        claimed it (see :mod:`flake8_device.rules.registry`).

    Fix text that names ``torch`` is completed by the engine (the importer):
    respelled with the module's alias, or given ``needs=("torch",)``; rules
    just write ``ck.torch_name()`` or ``torch``.
    """

    options: Options
    fixes: bool
    lines: Sequence[str]
    filename: str
    statement: Optional[ast.stmt]
    func_stack: List["FuncInfo"]
    class_stack: List["ClassInfo"]
    module_device_names: Dict[str, int]
    module_names: Dict[str, int]
    tree: ast.AST
    state: Dict[str, Any]
    importer: "Importer"
    inference_cache: Dict[str, Any]

    # ---- reporting -------------------------------------------------------
    def report(self, code: str, node_or_span, message: str, fix: Optional["Fix"] = None,
               no_fix_reason: Optional[str] = None, same_fix_as: Optional["Diagnostic"] = None,
               choice=None) -> "Diagnostic":
        """Record a diagnostic at a node (or span), with the fix it offers or why there is none; return it.

        ``same_fix_as`` shares another diagnostic's fix object (one fix serving two codes).  ``choice`` is
        what :meth:`infer_device` returned for the fix: the engine completes the fix from it (its group,
        the module device it defines, a refused ``--device-expr``)."""

    def claim(self, *nodes: ast.AST) -> None:
        """The running rule's diagnostic covers ``nodes``: no hook visits them again."""

    def claimed(self, node: ast.AST) -> bool:
        """Whether the running rule, or one it yields to, claimed ``node``."""

    # ---- names and source ------------------------------------------------
    def resolve(self, node: ast.AST) -> Optional[str]:
        """Qualified name of a Name/Attribute chain through the module's imports (``T.zeros`` -> ``torch.zeros``)."""

    def torch_name(self) -> Optional[str]:
        """How fix text should spell ``torch`` here (the module's alias, else ``torch``)."""

    def src(self, node: ast.AST) -> str:
        """The exact source text of ``node``."""

    # ---- devices and guards ----------------------------------------------
    def device_literal(self, node: Optional[ast.AST]) -> Optional[Tuple[str, bool]]:
        """``(type, plain)`` if ``node`` is a hardcoded accelerator device, else None."""

    def guard_polarity(self, test: ast.AST) -> int:
        """+1 if ``test`` true means an accelerator is present, -1 if false means it, else 0."""

    @property
    def guarded(self) -> bool:
        """Whether the code being visited runs only where an accelerator is present."""

    def infer_device(self, at: ast.AST, exclude_roots: Set[str] = frozenset(),
                     allow_add_property: bool = True,
                     allow_new_device: bool = False) -> Union["DeviceChoice", "Refusal", None]:
        """What device a fix at ``at`` should use (see :func:`flake8_device.inference.infer_device`); false
        (None or a Refusal) when there is none.  Pass it on as ``report(..., choice=...)``."""

    def availability_expr(self, node: ast.AST, dev_type: str) -> Optional[str]:
        """``<literal> if torch.cuda.is_available() else "cpu"`` for the literal at ``node``."""

    # ---- scope facts -----------------------------------------------------
    def current_function(self) -> Optional["FuncInfo"]:
        """The innermost enclosing function (or lambda)."""

    def enclosing_method(self) -> Optional["FuncInfo"]:
        """The nearest enclosing method that has ``self`` (closures included)."""

    def func_info(self, fn: ast.AST) -> "FuncInfo":
        """Facts of a function definition visited at the current position."""

    def import_of(self, name: str) -> Optional[ast.stmt]:
        """The import statement that binds ``name``, if any."""

    def tensor_used_params(self, func: "FuncInfo") -> Set[str]:
        """Parameters of ``func`` used in ways only a tensor supports."""

    # ---- fix building ----------------------------------------------------
    def body_insertion_point(self, owner: ast.AST) -> Optional[Tuple[Span, str, str]]:
        """``(span, indent, newline)`` where new statements go at the top of a class or function body."""

    def property_insertion(self, cls: "ClassInfo") -> Optional["InsertBefore"]:
        """The op adding a ``device`` property to ``cls``, or None where it cannot be placed."""

    def property_added(self, cls: "ClassInfo") -> bool:
        """Whether a fix of this run already adds ``cls``'s device property."""

    def claim_property(self, cls: "ClassInfo") -> None:
        """Record that a fix of this run adds ``cls``'s device property."""
