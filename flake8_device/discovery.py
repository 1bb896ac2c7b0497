"""Which files a run checks: folders walked as Ruff walks them.

* ``.gitignore`` files are honoured inside a git work tree (a folder with a
  ``.git`` folder or file, at or above the file), with git's rules: the
  ``.gitignore`` of every folder from the top of the work tree down, the
  deeper ones winning, the last matching line of a file winning, and
  ``.git/info/exclude`` below them all.  A pattern line is git's: ``#``
  starts a comment, ``!`` re-includes, a trailing ``/`` matches folders
  only, a ``/`` at the start or in the middle anchors the pattern to its
  ``.gitignore``'s folder (otherwise it matches a name at any depth), ``*``
  ``?`` and ``[...]`` do not match ``/``, ``**`` matches any number of
  folders, ``\\`` escapes the next character and trailing spaces are dropped
  unless escaped.  As in git, nothing inside an ignored folder can be
  re-included (the folder is not entered).
* A folder holding ``pyvenv.cfg`` is a virtual environment and is skipped.

Matching is pure Python; no ``git`` process runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Pattern, Tuple


@dataclass(frozen=True)
class Rule:
    regex: Pattern[str]
    negated: bool
    dir_only: bool
    source: str  # the line as written


def _class(pattern: str, i: int) -> Tuple[Optional[str], int]:
    """Translate the bracket expression at ``pattern[i] == '['``; (regex, index after it),
    or (None, i) when it is not closed (then ``[`` is a literal)."""
    j = i + 1
    negate = False
    if j < len(pattern) and pattern[j] in "!^":
        negate = True
        j += 1
    parts: List[str] = []
    first = True
    while j < len(pattern):
        c = pattern[j]
        if c == "]" and not first:
            body = "".join(parts)
            return ("[^/" + body + "]" if negate else "(?!/)[" + body + "]"), j + 1
        first = False
        if c == "[" and pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            if end != -1:
                name = pattern[j + 2:end]
                parts.append(_POSIX_CLASSES.get(name, ""))
                j = end + 2
                continue
        if c == "\\" and j + 1 < len(pattern):
            j += 1
            c = pattern[j]
        if j + 2 < len(pattern) and pattern[j + 1] == "-" and pattern[j + 2] != "]":
            hi = pattern[j + 2]
            end = j + 3
            if hi == "\\" and j + 3 < len(pattern):
                hi = pattern[j + 3]
                end = j + 4
            parts.append(re.escape(c) + "-" + re.escape(hi))
            j = end
            continue
        parts.append(re.escape(c))
        j += 1
    return None, i


_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "space": " \\t\\n\\r\\f\\v", "upper": "A-Z", "xdigit": "0-9A-Fa-f",
}


def _translate(pattern: str) -> str:
    """The regex (for ``fullmatch`` on a ``/``-separated relative path) of an anchored pattern."""
    out: List[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            stars = j - i
            at_start = i == 0 or pattern[i - 1] == "/"
            at_end = j == n or pattern[j] == "/"
            if stars >= 2 and at_start and at_end:
                if j == n:  # "x/**" or "**": everything below
                    out.append(".*")
                else:  # "**/" : zero or more folders
                    out.append("(?:[^/]*/)*")
                    j += 1
            else:
                out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            regex, after = _class(pattern, i)
            if regex is None:
                out.append(re.escape(c))
                i += 1
            else:
                out.append(regex)
                i = after
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def parse_line(line: str) -> Optional[Rule]:
    """One ``.gitignore`` line as a rule; None for a blank line or a comment."""
    source = line
    line = line.rstrip("\n").rstrip("\r")
    if not line or line.startswith("#"):
        return None
    # trailing spaces go unless escaped with a backslash
    stripped = line.rstrip(" ")
    if len(stripped) < len(line) and stripped.endswith("\\") and (len(stripped) - len(stripped.rstrip("\\"))) % 2:
        stripped += " "
    line = stripped
    negated = False
    if line.startswith("!"):
        negated = True
        line = line[1:]
    elif line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    if not line:
        return None
    dir_only = False
    if line.endswith("/") and not line.endswith("\\/"):
        dir_only = True
        line = line.rstrip("/")
        if not line:
            return None
    if "/" in line:
        line = line[1:] if line.startswith("/") else line
    else:
        line = "**/" + line
    try:
        regex = re.compile(_translate(line), re.DOTALL)
    except re.error:
        return None
    return Rule(regex, negated, dir_only, source)


def parse(text: str) -> List[Rule]:
    rules = []
    for line in text.split("\n"):
        rule = parse_line(line)
        if rule is not None:
            rules.append(rule)
    return rules


def _read_rules(path: str) -> List[Rule]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return []
    return parse(data.decode("utf-8", "surrogateescape"))


def _git_dir(top: str) -> Optional[str]:
    """The git folder of the work tree at ``top`` (a ``.git`` file names it)."""
    dot = os.path.join(top, ".git")
    if os.path.isdir(dot):
        return dot
    try:
        with open(dot, encoding="utf-8", errors="replace") as fh:
            first = fh.readline().strip()
    except OSError:
        return None
    if first.startswith("gitdir:"):
        gitdir = first[len("gitdir:"):].strip()
        gitdir = os.path.normpath(os.path.join(top, gitdir))
        try:  # a linked work tree shares info/exclude with its main repository
            with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as fh:
                return os.path.normpath(os.path.join(gitdir, fh.read().strip()))
        except OSError:
            return gitdir
    return None


class GitIgnore:
    """Answers "does git ignore this path?" for paths in any work tree, caching per folder."""

    def __init__(self) -> None:
        # folder -> [(base folder, rules)] that apply to its entries, lowest precedence first
        self._chains: Dict[str, Optional[List[Tuple[str, List[Rule]]]]] = {}

    def _chain(self, folder: str) -> Optional[List[Tuple[str, List[Rule]]]]:
        """The rule lists for the entries of ``folder``, lowest precedence first; None
        outside a work tree."""
        if folder in self._chains:
            return self._chains[folder]
        chain: Optional[List[Tuple[str, List[Rule]]]]
        if os.path.lexists(os.path.join(folder, ".git")):
            gitdir = _git_dir(folder)
            chain = [(folder, _read_rules(os.path.join(gitdir, "info", "exclude")) if gitdir else [])]
        else:
            parent = os.path.dirname(folder)
            above = None if parent == folder else self._chain(parent)
            chain = None if above is None else list(above)
        if chain is not None:
            rules = _read_rules(os.path.join(folder, ".gitignore"))
            if rules:
                chain.append((folder, rules))
        self._chains[folder] = chain
        return chain

    def ignored(self, path: str, is_dir: bool) -> bool:
        """Whether git ignores ``path`` itself (its folders are not looked at: a walk does not
        enter an ignored folder)."""
        path = os.path.abspath(path)
        folder, name = os.path.split(path)
        if name == ".git":
            return True
        result = False
        for base, rules in self._chain(folder) or ():
            rel = os.path.relpath(path, base).replace(os.sep, "/")
            for rule in rules:
                if rule.dir_only and not is_dir:
                    continue
                if rule.regex.fullmatch(rel):
                    result = not rule.negated
        return result


def is_virtualenv(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "pyvenv.cfg"))
