"""Just enough SQL lexing to serve ClickHouse's HTTP protocol in front of chdb.

The front must know, without a full parser: the statement's kind (does it return a result set), the
output ``FORMAT`` a query names, and for ``INSERT ... FORMAT <fmt>`` / ``INSERT ... VALUES`` where the
inline data begins (ClickHouse rule: after the first newline that follows the format name, or after
the whitespace when there is no newline; ``VALUES`` rows right after the keyword). The lexer skips
strings, quoted identifiers and comments, and tracks parenthesis depth so a ``format(...)`` call or a
column named ``format`` is not mistaken for the clause.

Nothing here decides what a statement may do: that is guard.py's job, with ClickHouse's own parser.
Where this lexer splits an INSERT only decides which part chdb gets as the statement and which as data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = " \t\r\n\f\v"

#: Statement kinds whose response is a result set (clients read ``X-ClickHouse-Format``).
RESULT_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "VALUES", "("})


@dataclass(frozen=True)
class Token:
    kind: str  # word | string | quoted | punct
    text: str
    start: int
    end: int
    depth: int  # parenthesis depth at the token


@dataclass(frozen=True)
class Statement:
    """What the front needs to know about one request's SQL."""

    kind: str  # first keyword, upper case ("SELECT", "INSERT", "CREATE", ...) or "" when empty
    output_format: str | None = None  # trailing FORMAT of a non-INSERT statement
    insert_format: str | None = None  # FORMAT of an INSERT whose data follows inline
    insert_prefix_end: int = 0  # byte offset where the INSERT statement ends (before FORMAT)
    data_start: int = 0  # byte offset where the INSERT's inline data begins

    @property
    def is_empty(self) -> bool:
        return self.kind == ""

    @property
    def returns_rows(self) -> bool:
        return self.kind in RESULT_KINDS

    @property
    def has_inline_data(self) -> bool:
        return self.insert_format is not None


def _skip_comment(text: str, i: int) -> int | None:
    """End offset of a comment starting at ``i``, or None when there is none."""
    n = len(text)
    if text.startswith("--", i) or (text[i] == "#" and (i + 1 >= n or text[i + 1] in " !")):
        j = text.find("\n", i)
        return n if j < 0 else j + 1
    if text.startswith("/*", i):
        depth, j = 1, i + 2
        while j < n and depth:
            if text.startswith("/*", j):
                depth, j = depth + 1, j + 2
            elif text.startswith("*/", j):
                depth, j = depth - 1, j + 2
            else:
                j += 1
        return j
    return None


def _quoted_end(text: str, i: int) -> int:
    """End offset of the quoted literal starting at ``i`` (backslash escapes and doubled quotes)."""
    quote, j, n = text[i], i + 1, len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and text[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def tokens(text: str, stop_after_insert_format: bool = False):
    """Yield the tokens of ``text`` (comments and whitespace skipped)."""
    i, n, depth = 0, len(text), 0
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
            continue
        end = _skip_comment(text, i)
        if end is not None:
            i = end
            continue
        if c in "'\"`":
            j = _quoted_end(text, i)
            yield Token("string" if c == "'" else "quoted", text[i:j], i, j, depth)
            i = j
            continue
        m = _WORD.match(text, i)
        if m:
            yield Token("word", m.group(0), i, m.end(), depth)
            i = m.end()
            continue
        if c == "(":
            yield Token("punct", c, i, i + 1, depth)
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
            yield Token("punct", c, i, i + 1, depth)
        else:
            yield Token("punct", c, i, i + 1, depth)
        i += 1


def _data_start(text: str, pos: int) -> int:
    """ClickHouse's rule: data starts after the first newline, else after the whitespace."""
    n = len(text)
    j = pos
    while j < n and text[j] in " \t\r\f\v":
        j += 1
    if j < n and text[j] == "\n":
        return j + 1
    while j < n and text[j] in _SPACE:
        j += 1
    return j


def analyze(sql: bytes | str, scan_limit: int = 1 << 20) -> Statement:
    """Classify ``sql`` and find its FORMAT clause / inline INSERT data.

    Offsets are byte offsets when ``sql`` is bytes (decoded as latin-1, one char per byte). Only the
    first ``scan_limit`` bytes are searched for an INSERT's FORMAT clause: inline data may be binary.
    """
    text = sql.decode("latin-1") if isinstance(sql, bytes | bytearray | memoryview) else sql
    it = tokens(text)
    first = next(it, None)
    if first is None:
        return Statement("")
    kind = first.text.upper() if first.kind == "word" else first.text
    if kind == "INSERT":
        return _analyze_insert(text[:scan_limit], kind)
    fmt = None
    toks = [first, *it]
    for idx, tok in enumerate(toks):
        if tok.depth or tok.kind != "word" or tok.text.upper() != "FORMAT" or idx + 1 >= len(toks):
            continue
        name = toks[idx + 1]
        if name.kind not in ("word", "quoted") or name.depth:
            continue
        rest = toks[idx + 2:]
        if not rest or rest[0].text == ";" or (rest[0].kind == "word" and rest[0].text.upper() == "SETTINGS"):
            fmt = name.text.strip("`\"")
    return Statement(kind, output_format=fmt)


def _analyze_insert(text: str, kind: str) -> Statement:
    prev: Token | None = None
    toks = tokens(text)
    for tok in toks:
        if tok.depth == 0 and tok.kind == "word":
            upper = tok.text.upper()
            qualified = prev is not None and prev.text == "."
            if upper in ("SELECT", "WITH") and not qualified:
                return Statement(kind)
            if upper == "VALUES" and not qualified and (prev is None or prev.text.upper() not in _NAME_BEFORE):
                return Statement(kind, insert_format="Values", insert_prefix_end=tok.start, data_start=tok.end)
            if upper == "FORMAT":
                name = next(toks, None)
                if name is None or name.kind not in ("word", "quoted"):
                    return Statement(kind)
                fmt = name.text.strip("`\"")
                return Statement(
                    kind, insert_format=fmt, insert_prefix_end=tok.start, data_start=_data_start(text, name.end)
                )
        prev = tok
    return Statement(kind)


#: Words after which VALUES is a table name (``INSERT INTO values ...``), not the data clause.
_NAME_BEFORE = frozenset({"INTO", "TABLE", "FUNCTION"})
