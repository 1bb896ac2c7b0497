"""Settings of the ``flake8-device`` command, read from flake8's config files.

The command reads the same files as flake8: the first of ``setup.cfg``,
``tox.ini`` or ``.flake8`` with a ``[flake8]`` section, searched from the
current directory upwards (stopping at the home directory), unless
``--config`` names one or ``--isolated`` asks for none.  From that section it
uses ``select``, ``ignore``, ``extend-select``, ``extend-ignore``,
``per-file-ignores``, ``exclude``, ``extend-exclude``, ``respect-gitignore``,
``force-exclude`` and the plugin's own ``device-expr`` and
``device-accelerators``.  Command-line flags override
the file.
"""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
from dataclasses import dataclass, field, replace
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from .options import DEFAULT_ACCELERATORS, Options

CONFIG_CANDIDATES = ("setup.cfg", "tox.ini", ".flake8")

# flake8's default excludes, plus the virtual-environment, build, cache and
# third-party folders of Ruff's default excludes: code that is never worth
# rewriting.  (A folder holding pyvenv.cfg is skipped whatever its name, see
# flake8_device.discovery.)
DEFAULT_EXCLUDE: Tuple[str, ...] = (
    ".svn",
    "CVS",
    ".bzr",
    ".hg",
    ".git",
    "__pycache__",
    ".tox",
    ".nox",
    ".eggs",
    "*.egg",
    ".venv",
    "venv",
    "build",
    ".direnv",
    ".git-rewrite",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pants.d",
    ".pyenv",
    ".pytest_cache",
    ".pytype",
    ".ruff_cache",
    "__pypackages__",
    "_build",
    "buck-out",
    "dist",
    "node_modules",
    "site-packages",
)

ALL_CODES_PREFIX = "DEV"


class ConfigError(Exception):
    """The configuration is unreadable or malformed."""


def split_list(value: Optional[str]) -> List[str]:
    """Split a comma- or whitespace-separated option value."""
    if not value:
        return []
    return [item for item in re.split(r"[,\s]+", value.strip()) if item]


def normalize_pattern(pattern: str, parent: str) -> str:
    """flake8's rule: a pattern with a slash is a path relative to ``parent``."""
    if "/" in pattern or os.sep in pattern:
        return os.path.abspath(os.path.join(parent, pattern))
    return pattern


def path_matches(path: str, patterns: Sequence[str]) -> bool:
    """Match ``path`` against exclude-style patterns like flake8 does.

    A pattern matches the file or folder's base name, or its absolute path.
    """
    if not patterns:
        return False
    base = os.path.basename(path)
    if base not in {".", ".."} and any(fnmatch.fnmatch(base, p) for p in patterns):
        return True
    absolute = os.path.abspath(path)
    return any(fnmatch.fnmatch(absolute, p) for p in patterns)


def parse_per_file_ignores(value: str, parent: str) -> List[Tuple[str, List[str]]]:
    """Parse ``pattern[,pattern]: CODE[,CODE] ...`` pairs."""
    result: List[Tuple[str, List[str]]] = []
    if not value or not value.strip():
        return result
    tokens = re.findall(r"[^\s,:]+|:", value)
    files: List[str] = []
    codes: List[str] = []
    seen_colon = False
    for tok in tokens:
        if tok == ":":
            if seen_colon or not files:
                raise ConfigError(f"per-file-ignores: expected `patterns: codes`, got {value!r}")
            seen_colon = True
        elif not seen_colon:
            files.append(tok)
        elif re.fullmatch(r"[A-Z]+[0-9]*", tok):
            codes.append(tok)
        else:
            # a new file pattern starts the next pair
            result.extend((normalize_pattern(f, parent), list(codes)) for f in files)
            files, codes, seen_colon = [tok], [], False
    if files:
        if not seen_colon:
            raise ConfigError(f"per-file-ignores: expected `patterns: codes`, got {value!r}")
        result.extend((normalize_pattern(f, parent), list(codes)) for f in files)
    return result


from .rules import DEFAULT_IGNORED, opted_in  # noqa: E402


@dataclass
class Settings:
    """Everything that decides what the command reports and fixes."""

    select: Optional[List[str]] = None  # None: every DEV code
    ignore: List[str] = field(default_factory=list)
    extend_select: List[str] = field(default_factory=list)
    extend_ignore: List[str] = field(default_factory=list)
    per_file_ignores: List[Tuple[str, List[str]]] = field(default_factory=list)
    exclude: List[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    extend_exclude: List[str] = field(default_factory=list)
    device_expr: Optional[str] = None
    accelerators: Optional[FrozenSet[str]] = None
    config_path: Optional[str] = None
    respect_gitignore: bool = True
    force_exclude: bool = False

    # --- selection ---------------------------------------------------------
    def _selected_prefixes(self) -> List[str]:
        base = [ALL_CODES_PREFIX] if self.select is None else list(self.select)
        return base + list(self.extend_select)

    def is_selected(self, code: str, filename: Optional[str] = None) -> bool:
        """flake8's decision: the longest matching prefix wins; ties ignore."""
        sel = max((len(p) for p in self._selected_prefixes() if code.startswith(p)), default=-1)
        ignores = list(self.ignore) + list(self.extend_ignore)
        if filename is not None:
            for pattern, codes in self.per_file_ignores:
                if path_matches(filename, [pattern]):
                    ignores.extend(codes)
        ign = max((len(p) for p in ignores if code.startswith(p)), default=-1)
        if code in DEFAULT_IGNORED and code not in opted_in(self.select, self.extend_select):
            return False  # off unless named by its full code, as in the flake8 plugin
        return sel >= 0 and sel > ign

    def is_excluded(self, path: str) -> bool:
        return path_matches(path, list(self.exclude) + list(self.extend_exclude))

    def options(self) -> Options:
        kwargs = {}
        if self.device_expr:
            kwargs["device_expr"] = self.device_expr
        if self.accelerators is not None:
            kwargs["accelerators"] = frozenset(self.accelerators)
        return replace(Options(), **kwargs)


def find_config_file(start: str) -> Optional[str]:
    """flake8's search: walk up from ``start`` to the home directory."""
    home = os.path.abspath(os.path.expanduser("~"))
    path = os.path.abspath(start)
    while True:
        for candidate in CONFIG_CANDIDATES:
            cfg_path = os.path.join(path, candidate)
            if not os.path.isfile(cfg_path):
                continue
            cfg = configparser.RawConfigParser()
            try:
                cfg.read(cfg_path, encoding="UTF-8")
            except (UnicodeDecodeError, configparser.Error):
                continue
            if cfg.has_section("flake8") or cfg.has_section("flake8:local-plugins"):
                return cfg_path
        parent = os.path.dirname(path)
        if parent == path or parent == home:
            return None
        path = parent


def _section(cfg_path: str) -> Dict[str, str]:
    cfg = configparser.RawConfigParser()
    try:
        if not cfg.read(cfg_path, encoding="UTF-8"):
            raise ConfigError(f"cannot read config file {cfg_path}")
    except (UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"cannot parse config file {cfg_path}: {exc}") from exc
    if not cfg.has_section("flake8"):
        return {}
    # flake8 accepts both dashes and underscores in option names
    return {k.replace("_", "-"): v for k, v in cfg.items("flake8")}


def _dev_relevant(prefixes: List[str]) -> List[str]:
    return [p for p in prefixes if p.startswith(ALL_CODES_PREFIX) or ALL_CODES_PREFIX.startswith(p)]


def load_settings(
    config: Optional[str] = None, isolated: bool = False, start: str = "."
) -> Settings:
    """Settings from the discovered (or given) config file."""
    settings = Settings()
    if isolated:
        return settings
    path = config if config is not None else find_config_file(start)
    if path is None:
        return settings
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist")
    values = _section(path)
    parent = os.path.dirname(os.path.abspath(path))
    settings.config_path = path
    if "select" in values:
        # A project-wide `select = E,F,W` is about other plugins; only
        # entries that can match DEV codes restrict this command.
        relevant = _dev_relevant(split_list(values["select"]))
        settings.select = relevant or None
    settings.ignore = split_list(values.get("ignore"))
    settings.extend_select = split_list(values.get("extend-select"))
    settings.extend_ignore = split_list(values.get("extend-ignore"))
    settings.per_file_ignores = parse_per_file_ignores(values.get("per-file-ignores", ""), parent)
    if "exclude" in values:
        settings.exclude = [normalize_pattern(p, parent) for p in split_list(values["exclude"])]
    settings.extend_exclude = [
        normalize_pattern(p, parent) for p in split_list(values.get("extend-exclude"))
    ]
    if values.get("device-expr", "").strip():
        settings.device_expr = values["device-expr"].strip()
    if "device-accelerators" in values:
        settings.accelerators = frozenset(split_list(values["device-accelerators"]))
    for key in ("respect-gitignore", "force-exclude"):
        if key in values:
            setattr(settings, key.replace("-", "_"), _boolean(values[key], key, path))
    return settings


def _boolean(value: str, key: str, path: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "yes", "true", "on"):
        return True
    if text in ("0", "no", "false", "off"):
        return False
    raise ConfigError(f"{key} = {value.strip()!r} in {path} is not true or false")


__all__ = [
    "ConfigError",
    "DEFAULT_ACCELERATORS",
    "DEFAULT_EXCLUDE",
    "Settings",
    "find_config_file",
    "load_settings",
    "parse_per_file_ignores",
    "path_matches",
    "split_list",
]
