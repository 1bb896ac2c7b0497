"""DEV rules: every module of this folder declares its rule units (:mod:`.registry`).

Importing the package imports each module, which registers its rules and their hooks; the engine
dispatches from the registry.  The tables below are derived from it:

* :data:`CODES`: every code with its one-line summary;
* :data:`DEFAULT_IGNORED`: the codes off unless named in full;
* :data:`CALL_NAMES`: the last part of every callee a rule looks at (a call to anything else is
  only checked for its keyword arguments).

``python -m flake8_device.rules --markdown`` prints the rule table of docs/rules.md from the registry.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..names import DTYPE_METHODS, FACTORIES, LEGACY_CTORS
from .registry import REGISTRY, check_relations, hooks_of  # noqa: F401  (hooks_of: the engine's dispatch)

_SKIP = frozenset({"registry", "common", "__main__"})
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _SKIP:
        importlib.import_module(f"{__name__}.{_info.name}")
check_relations()

from . import distributed, factories, runtime  # noqa: E402  (their callee names, below)

CODES = {code: unit.summary for code, unit in sorted(REGISTRY.items())}

# Codes off unless named by their full code in select / extend-select (measured too noisy on
# real code for a default).  ``select = DEV`` does not turn them on, as flake8-bugbear does for B9xx.
DEFAULT_IGNORED = tuple(code for code, unit in sorted(REGISTRY.items()) if unit.default_ignored)


def opted_in(select, extend_select) -> frozenset:
    """The default-off codes that ``select`` / ``extend_select`` (lists of codes or prefixes) name in full."""
    named = {c.strip().upper() for c in [*(select or ()), *(extend_select or ())] if c}
    return frozenset(c for c in DEFAULT_IGNORED if c in named)


CALL_NAMES = frozenset({
    "to", "cuda", "type", "type_as", "load", "device", "autocast", "GradScaler", "custom_fwd", "custom_bwd",
    *FACTORIES, *LEGACY_CTORS, *DTYPE_METHODS, *factories._HOST_SINKS, *factories._HOST_METHODS,
    *runtime.NAMES, *distributed.NAMES,
    *(name for unit in REGISTRY.values() for hook in unit.hooks for name in (*hook.names, *hook.attrs)),
})
