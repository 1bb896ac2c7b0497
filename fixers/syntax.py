"""The one syntax check every fixer write goes through."""

from __future__ import annotations

import ast


def parses(text: str, filename: str = "<fixed>") -> bool:
    """Whether ``text`` is valid Python for this interpreter (no code is run)."""
    try:
        compile(text, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


# Text a fix writes inside an f-string's replacement field must parse on every
# Python the package supports (``requires-python = ">=3.9"``).  Before 3.12
# (PEP 701) an expression there cannot contain the f-string's own quote
# character, a backslash, a comment, or a line break in a single-quoted
# f-string; from 3.12 on all of these are legal, so checking with the running
# interpreter alone is not enough.
REASON_FSTRING = ("the fix puts text inside an f-string's replacement field that Python 3.9-3.11 cannot parse "
                  "(the f-string's own quote, a backslash or a comment); rewrite it by hand")
REASON_FSTRING_DEBUG = "the call is inside a self-documenting f-string field (`{...=}`): the fix would change its text"


def _split_string_token(tok: str):
    """(prefix, quote, body) of a string literal token."""
    i = 0
    while i < len(tok) and tok[i] not in "'\"":
        i += 1
    prefix, rest = tok[:i], tok[i:]
    quote = rest[:3] if rest[:3] in ('"""', "'''") else rest[:1]
    return prefix, quote, rest[len(quote):len(rest) - len(quote)]


def fstring_field_text(text: str, delimiters) -> "str | None":
    """``text`` made valid inside replacement fields of f-strings delimited by ``delimiters``
    (innermost last, e.g. ``['"']`` for ``f"{...}"``) on every Python from 3.9, or None.

    A string literal that uses an enclosing f-string's quote character is
    rewritten with the other one (``"cpu"`` -> ``'cpu'``: the same value);
    where that is impossible (both quote characters taken, a body holding the
    other quote, a nested f-string, a backslash, a comment) the answer is None.
    """
    import io
    import tokenize

    delimiters = list(delimiters)
    if not delimiters:
        return text
    taken = {d[0] for d in delimiters}
    if "\\" in text or ("\n" in text or "\r" in text) and any(len(d) == 1 for d in delimiters):
        return None
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    lines = text.splitlines(keepends=True) or [""]
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    out, pos = [], 0
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            return None
        if fstring_start is not None and tok.type == fstring_start:
            if tok.string.lstrip("rRfFbBuU")[:1] in taken:
                return None
            continue
        if tok.type != tokenize.STRING:
            continue
        if not taken & set(tok.string):
            continue
        prefix, quote, body = _split_string_token(tok.string)
        if quote[0] not in taken:
            return None  # the body holds an enclosing quote
        other = "'" if quote[0] == '"' else '"'
        if other in taken or other in body or "f" in prefix.lower():
            return None
        start = starts[tok.start[0] - 1] + tok.start[1]
        end = starts[tok.end[0] - 1] + tok.end[1]
        out.append(text[pos:start])
        out.append(prefix + other * len(quote) + body + other * len(quote))
        pos = end
    out.append(text[pos:])
    return "".join(out)
