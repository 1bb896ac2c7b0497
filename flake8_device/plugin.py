"""flake8 front end: ``flake8 --select DEV``.

The plugin only adapts: it runs :func:`flake8_device.engine.check_source` on the
tree flake8 already parsed and yields each diagnostic.  flake8 itself handles
``# noqa``, ``--select``/``--extend-ignore``, per-file-ignores and config files.
"""

from __future__ import annotations

import ast
from typing import Any, Iterator, Sequence, Tuple

from . import __version__
from .engine import Checker
from .options import DEFAULT_ACCELERATORS, Options, parse_torch_version
from .rules import DEFAULT_IGNORED, opted_in


class Plugin:
    name = "flake8-device"
    version = __version__
    options = Options()
    # Default-off codes named by their full code in --select / --extend-select.
    opted_in: frozenset = frozenset()

    def __init__(self, tree: ast.AST, lines: Sequence[str], filename: str = "<string>") -> None:
        self.tree = tree
        self.lines = lines
        self.filename = filename

    @classmethod
    def add_options(cls, manager: Any) -> None:
        manager.add_option(
            "--device-expr",
            default=None,
            parse_from_config=True,
            help="Device expression every flake8-device fix uses first (e.g. 'self.device').",
        )
        manager.add_option(
            "--device-accelerators",
            default=",".join(sorted(DEFAULT_ACCELERATORS)),
            parse_from_config=True,
            comma_separated_list=True,
            help="Device types reported when hardcoded (default: %(default)s). "
            "Add 'cpu' to report hardcoded CPU devices too.",
        )
        manager.add_option(
            "--torch-version",
            default=None,
            parse_from_config=True,
            help="Oldest torch the fixed code runs on (X.Y); with 2.6 or later fix texts use torch.accelerator.",
        )
        manager.extend_default_ignore(list(DEFAULT_IGNORED))

    @classmethod
    def parse_options(cls, options: Any) -> None:
        accel = getattr(options, "device_accelerators", None)
        if isinstance(accel, str):
            accel = [a.strip() for a in accel.split(",")]
        version = getattr(options, "torch_version", None)
        if version:
            try:
                version = parse_torch_version(version)
            except ValueError as exc:
                raise ValueError(f"flake8-device: --torch-version: {exc}") from None
        cls.options = Options(
            accelerators=frozenset(a for a in (accel or DEFAULT_ACCELERATORS) if a),
            device_expr=getattr(options, "device_expr", None) or None,
            torch_version=version or None,
        )
        cls.opted_in = opted_in(getattr(options, "select", None), getattr(options, "extend_select", None))

    def run(self) -> Iterator[Tuple[int, int, str, type]]:
        # An engine error must never abort the flake8 run (every other plugin's
        # results would be lost with it): it is contained and reported as
        # DEV000 on line 1, and this file gets no other DEV result.
        try:
            found = Checker(self.tree, self.lines, self.options, self.filename, fixes=False).run()
        except RecursionError:
            yield 1, 0, "DEV000 flake8-device could not check this file: it nests too deeply (RecursionError)", \
                type(self)
            return
        except Exception as exc:  # a bug in a rule: report it, keep flake8 going
            yield 1, 0, f"DEV000 flake8-device could not check this file: internal error {type(exc).__name__}: " \
                f"{exc}", type(self)
            return
        for d in found:
            if d.code in DEFAULT_IGNORED and d.code not in self.opted_in:
                continue
            yield d.span.line, d.span.col, d.flake8_text(), type(self)
