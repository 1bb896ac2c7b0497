"""Settings of the ``flake8-device`` command, read from one configuration file.

The command reads one file: searched from the current directory upwards
(stopping at the home directory), the first folder with a ``pyproject.toml``
holding a ``[tool.flake8-device]`` table, or a ``setup.cfg``, ``tox.ini`` or
``.flake8`` with a ``[flake8]`` section, gives it; in one folder
``pyproject.toml`` comes first, then the flake8 files in flake8's order.
``--config`` names the file (a ``.toml`` is read as a ``pyproject.toml``) and
``--isolated`` asks for none.  The keys are the same in both kinds of file:
``select``, ``ignore``, ``extend-select``, ``extend-ignore``,
``per-file-ignores``, ``exclude``, ``extend-exclude``, ``respect-gitignore``,
``force-exclude``, ``max-file-size`` and the plugin's own ``device-expr`` and
``device-accelerators`` and ``torch-version``; in TOML a list is an array of strings (a comma
separated string is taken too) and ``per-file-ignores`` a table of pattern to
codes.  Command-line flags override the file.
"""

from __future__ import annotations

import configparser
import fnmatch
import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from .options import DEFAULT_ACCELERATORS, Options, parse_torch_version

CONFIG_CANDIDATES = ("setup.cfg", "tox.ini", ".flake8")
PYPROJECT = "pyproject.toml"
TOOL_TABLE = "flake8-device"  # [tool.flake8-device]

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
    torch_version: Optional[Tuple[int, int]] = None  # --torch-version: the oldest torch fixes target
    config_path: Optional[str] = None
    respect_gitignore: bool = True
    force_exclude: bool = False
    max_file_size: Optional[int] = None  # None: the command's default
    # the file is this command's own ([tool.flake8-device]): every selector in it must match a code
    own_config: bool = False
    warnings: List[str] = field(default_factory=list)  # printed on standard error

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
        if self.torch_version is not None:
            kwargs["torch_version"] = self.torch_version
        return replace(Options(), **kwargs)


def parse_size(value: str) -> int:
    """A byte count: ``1048576``, ``512K``, ``10M``, ``1GB``; ValueError when it is none."""
    text = value.strip().upper()
    scale = 1
    for suffix, mult in (("K", 1024), ("M", 1024 ** 2), ("G", 1024 ** 3)):
        if text.endswith(suffix + "B") or text.endswith(suffix):
            text = text[: -len(suffix + "B")] if text.endswith(suffix + "B") else text[:-1]
            scale = mult
            break
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"not a size: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError("size must be >= 0")
    return int(number * scale)


def _read_toml(path: str) -> Dict[str, object]:
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the same parser, installed as tomli
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError(f"cannot read {path}: reading TOML needs Python 3.11 or the tomli package") from None

    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse config file {path}: {exc}") from exc


def _tool_table(data: Dict[str, object]) -> Optional[Dict[str, object]]:
    tool = data.get("tool")
    if not isinstance(tool, dict):
        return None
    table = tool.get(TOOL_TABLE)
    return table if isinstance(table, dict) else None


def _has_tool_table(path: str) -> bool:
    try:
        return _tool_table(_read_toml(path)) is not None
    except ConfigError:
        # a broken pyproject.toml is reported when it may hold the table
        try:
            with open(path, "rb") as fh:
                return b"flake8-device" in fh.read()
        except OSError:
            return False


def find_config_file(start: str) -> Optional[str]:
    """Walk up from ``start`` to the home directory: in each folder a ``pyproject.toml`` with
    a ``[tool.flake8-device]`` table, then flake8's files with a ``[flake8]`` section."""
    home = os.path.abspath(os.path.expanduser("~"))
    path = os.path.abspath(start)
    while True:
        toml_path = os.path.join(path, PYPROJECT)
        if os.path.isfile(toml_path) and _has_tool_table(toml_path):
            return toml_path
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
    if path.endswith(".toml"):
        table = _tool_table(_read_toml(path))
        settings = settings_from_table(table or {}, path)
        if table is None:
            settings.warnings.append(f"{path} has no [tool.{TOOL_TABLE}] table: nothing configured")
        settings.config_path = path
        return settings
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
    if values.get("torch-version", "").strip():
        settings.torch_version = _torch_version(values["torch-version"], path)
    for key in ("respect-gitignore", "force-exclude"):
        if key in values:
            setattr(settings, key.replace("-", "_"), _boolean(values[key], key, path))
    if values.get("max-file-size", "").strip():
        try:
            settings.max_file_size = parse_size(values["max-file-size"])
        except ValueError as exc:
            raise ConfigError(f"max-file-size in {path}: {exc}") from None
    return settings


TOML_KEYS = (
    "select", "ignore", "extend-select", "extend-ignore", "per-file-ignores", "exclude", "extend-exclude",
    "respect-gitignore", "force-exclude", "max-file-size", "device-expr", "device-accelerators",
    "torch-version",
)


def _toml_list(value: object, key: str, path: str) -> List[str]:
    """A TOML array of strings, or one string of comma/space separated items."""
    if isinstance(value, str):
        return split_list(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [item for v in value for item in split_list(v)]
    raise ConfigError(f"{key} in {path} must be an array of strings (or a comma-separated string), "
                      f"not {_toml_type(value)}")


def _toml_type(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
             dict: "a table"}
    if isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
        return "an array holding " + ", ".join(sorted({names.get(type(v), type(v).__name__)
                                                       for v in value if not isinstance(v, str)}))
    return names.get(type(value), type(value).__name__)


def _per_file_ignores(value: object, path: str, parent: str) -> List[Tuple[str, List[str]]]:
    """Ruff's table (``{"tests/*.py" = ["DEV001"]}``), or flake8's string of pairs."""
    key = "per-file-ignores"
    if isinstance(value, str):
        try:
            return parse_per_file_ignores(value, parent)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in {path})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{key} in {path} must be a table of pattern = [codes], not {_toml_type(value)}")
    result = []
    for pattern, codes in value.items():
        result.append((normalize_pattern(pattern, parent), _toml_list(codes, f"{key} {pattern!r}", path)))
    return result


def settings_from_table(table: Dict[str, object], path: str) -> Settings:
    """Settings from a ``[tool.flake8-device]`` table read from ``path``.

    Keys are written with dashes (underscores are taken too).  An unknown key
    is a warning that names it; a value of the wrong type is a
    :class:`ConfigError` naming the key and the file.
    """
    settings = Settings(own_config=True)
    parent = os.path.dirname(os.path.abspath(path))
    values: Dict[str, object] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("_", "-")
        if key not in TOML_KEYS:
            settings.warnings.append(f"{path}: unknown key {raw_key!r} in [tool.{TOOL_TABLE}] (ignored; "
                                     f"known keys: {', '.join(TOML_KEYS)})")
            continue
        values[key] = value
    if "select" in values:
        settings.select = _toml_list(values["select"], "select", path)
    for key in ("ignore", "extend-select", "extend-ignore"):
        if key in values:
            setattr(settings, key.replace("-", "_"), _toml_list(values[key], key, path))
    if "per-file-ignores" in values:
        settings.per_file_ignores = _per_file_ignores(values["per-file-ignores"], path, parent)
    if "exclude" in values:
        settings.exclude = [normalize_pattern(p, parent) for p in _toml_list(values["exclude"], "exclude", path)]
    if "extend-exclude" in values:
        settings.extend_exclude = [normalize_pattern(p, parent)
                                   for p in _toml_list(values["extend-exclude"], "extend-exclude", path)]
    if "device-expr" in values:
        expr = values["device-expr"]
        if not isinstance(expr, str):
            raise ConfigError(f"device-expr in {path} must be a string, not {_toml_type(expr)}")
        settings.device_expr = expr.strip() or None
    if "device-accelerators" in values:
        settings.accelerators = frozenset(_toml_list(values["device-accelerators"], "device-accelerators", path))
    if "torch-version" in values:
        version = values["torch-version"]
        if not isinstance(version, str):
            raise ConfigError(f"torch-version in {path} must be a string such as \"2.6\", not {_toml_type(version)}")
        settings.torch_version = _torch_version(version, path)
    for key in ("respect-gitignore", "force-exclude"):
        if key in values:
            if not isinstance(values[key], bool):
                raise ConfigError(f"{key} in {path} must be true or false, not {_toml_type(values[key])}")
            setattr(settings, key.replace("-", "_"), values[key])
    if "max-file-size" in values:
        size = values["max-file-size"]
        if isinstance(size, bool) or not isinstance(size, (int, str)):
            raise ConfigError(f"max-file-size in {path} must be an integer or a size string such as "
                              f"\"10M\", not {_toml_type(size)}")
        try:
            settings.max_file_size = parse_size(str(size))
        except ValueError as exc:
            raise ConfigError(f"max-file-size in {path}: {exc}") from None
    return settings


def _torch_version(value: str, path: str) -> Tuple[int, int]:
    try:
        return parse_torch_version(value)
    except ValueError as exc:
        raise ConfigError(f"torch-version in {path}: {exc}") from None


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
    "parse_size",
    "settings_from_table",
    "path_matches",
    "split_list",
]
