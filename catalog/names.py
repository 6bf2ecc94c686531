"""Validation of namespace and table names, and the namespace's storage key.

Names are attacker-controlled: they reach the database, URLs and (through generated table
locations) file paths. Anything that could confuse a path or the database is refused with 400:
empty names, ``/`` or ``\\``, ``.`` and ``..``, control characters, text that is not valid Unicode
(lone surrogates), and names longer than the database column (255 characters). Every other
character is allowed; table locations never contain the raw name (see ``catalog.locations``).

Namespace levels may contain ``.`` (the REST spec separates levels with 0x1F, not dots). The
storage key keeps pyiceberg SqlCatalog's dot-joined layout whenever no level contains a dot, so
``SqlCatalog`` on the same database still sees those namespaces; a namespace with a dotted level
(which SqlCatalog cannot represent at all) is stored as its levels joined by 0x1F behind a leading
0x1F. Control characters are refused in names, so the two forms cannot collide.
"""

from __future__ import annotations

import re

from catalog.errors import BadRequest

MAX_NAME = 255  # the width of SqlCatalog's name columns
MAX_NAMESPACE_KEY = 255  # ... and of its namespace column
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The REST spec's separator of namespace levels in a URL path segment (``%1F``).
PATH_SEPARATOR = "\x1f"
_ESCAPED = "\x1f"  # first character of the storage key of a namespace with a dotted level


def is_valid_unicode(text: str) -> bool:
    """False for strings with lone surrogates (JSON can carry them; no database or file name can)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_name(name: object, what: str = "table name") -> str:
    """Return ``name`` when it is a safe identifier part; raise 400 naming the problem otherwise."""
    if not isinstance(name, str):
        raise BadRequest(f"invalid {what}: expected a string, got {type(name).__name__}")
    if not name or not name.strip():
        raise BadRequest(f"invalid {what}: empty")
    if not is_valid_unicode(name):
        raise BadRequest(f"invalid {what}: not valid Unicode (lone surrogate)")
    if len(name) > MAX_NAME:
        raise BadRequest(f"invalid {what} '{name[:40]}...': longer than {MAX_NAME} characters")
    if _CONTROL.search(name):
        raise BadRequest(f"invalid {what} {name!r}: contains a control character")
    if "/" in name or "\\" in name:
        raise BadRequest(f"invalid {what} {name!r}: contains a path separator")
    if ".." in name or name == ".":
        raise BadRequest(f"invalid {what} {name!r}: '.' or '..' path segment")
    return name


def check_namespace(levels: object) -> tuple[str, ...]:
    """Validate a namespace given as a list of levels."""
    if not isinstance(levels, list | tuple) or not levels:
        raise BadRequest("invalid namespace: expected a non-empty list of names")
    out = tuple(check_name(level, "namespace name") for level in levels)
    if len(ns_key(out)) > MAX_NAMESPACE_KEY:
        raise BadRequest(f"invalid namespace {ns_name(out)[:40]!r}...: longer than {MAX_NAMESPACE_KEY} characters")
    return out


def parse_namespace_path(segment: str) -> tuple[str, ...]:
    """Decode the ``{namespace}`` path parameter: levels separated by 0x1F (a dot belongs to its level)."""
    if segment is None or segment == "":
        raise BadRequest("invalid namespace: empty")
    return check_namespace(segment.split(PATH_SEPARATOR))


def ns_key(namespace: tuple[str, ...]) -> str:
    """Storage form of a namespace: dot-joined levels (SqlCatalog's layout) unless a level has a dot."""
    if any("." in level for level in namespace):
        return _ESCAPED + _ESCAPED.join(namespace)
    return ".".join(namespace)


def ns_from_key(key: str) -> tuple[str, ...]:
    """Namespace levels from their storage form."""
    if key.startswith(_ESCAPED):
        return tuple(key[1:].split(_ESCAPED))
    return tuple(key.split("."))


def ns_child_prefixes(parent: tuple[str, ...]) -> list[str]:
    """Prefixes of the storage keys of ``parent``'s descendants (a child with a dotted level, or any
    child of a dotted parent, uses the escaped form)."""
    escaped = _ESCAPED + _ESCAPED.join(parent) + _ESCAPED
    return [escaped] if any("." in level for level in parent) else [".".join(parent) + ".", escaped]


def ns_name(namespace: tuple[str, ...]) -> str:
    """A namespace as people read it in messages (dot-joined levels)."""
    return ".".join(namespace)
