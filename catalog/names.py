"""Validation of namespace and table names, and their storage encoding.

Names reach file paths (table locations) and the database, so anything that could escape the
warehouse or confuse a path is refused with 400: empty names, ``/`` or ``\\``, ``..``, control
characters, and names longer than 255 characters. Namespace levels may not contain ``.``: nested
namespaces are stored dot-joined (the layout pyiceberg's SqlCatalog uses, so both share a database).
"""

from __future__ import annotations

import re

from catalog.errors import BadRequest

MAX_NAME = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: The REST spec's separator of namespace levels in a URL path segment (``%1F``).
PATH_SEPARATOR = "\x1f"


def check_name(name: object, what: str = "table name") -> str:
    """Return ``name`` when it is a safe identifier part; raise 400 naming the problem otherwise."""
    if not isinstance(name, str):
        raise BadRequest(f"invalid {what}: expected a string, got {type(name).__name__}")
    if not name or not name.strip():
        raise BadRequest(f"invalid {what}: empty")
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
    out = []
    for level in levels:
        check_name(level, "namespace name")
        if "." in level:
            raise BadRequest(f"invalid namespace name {level!r}: '.' is not allowed (use nested namespace levels)")
        out.append(level)
    return tuple(out)


def parse_namespace_path(segment: str) -> tuple[str, ...]:
    """Decode the ``{namespace}`` path parameter: levels separated by 0x1F (or '.')."""
    if segment is None or segment == "":
        raise BadRequest("invalid namespace: empty")
    parts = segment.split(PATH_SEPARATOR) if PATH_SEPARATOR in segment else segment.split(".")
    return check_namespace(parts)


def ns_key(namespace: tuple[str, ...]) -> str:
    """Storage form of a namespace (dot-joined levels)."""
    return ".".join(namespace)


def ns_from_key(key: str) -> tuple[str, ...]:
    """Namespace levels from their storage form."""
    return tuple(key.split("."))
