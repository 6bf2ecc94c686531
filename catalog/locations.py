"""Locations: one normalization, every location inside the warehouse, generated locations without raw names.

Why strict rather than clever: pyiceberg, DuckDB, ClickHouse, S3 clients and the OS read ``%``-escapes,
``?``, ``#`` and ``;`` differently (for pyiceberg ``file:///wh/%2e%2e/x`` is a folder named ``%2e%2e``;
for anything that URL-decodes it is ``/x``, beside the warehouse). So a location is checked exactly
once, as the string it is, and never decoded: it must start with the warehouse URI, and the path after
it must be plain segments (no empty, ``.`` or ``..`` segment; no ``%``, ``?``, ``#``, ``;``, ``\\``,
whitespace or control characters). Such a location means the same folder to every reader. The server
stores the checked string and uses it as is: the local folder of ``file:///a/b`` is ``/a/b``.

Locations the server makes never contain a raw name: each namespace level and the table name become
a segment of ``[A-Za-z0-9._-]`` (any other character becomes ``_``, at most 100 characters), and a
table's segment ends in a random uuid, so it is unique and never reused after a drop. The name itself
is kept exactly in the catalog database.

File paths the server only deletes or reads on a client's behalf (purge, UI preview) were written by
clients and may carry escapes (pyiceberg's partition folders do); :meth:`Warehouse.contains` accepts
them only if neither the raw nor the decoded path leaves the warehouse.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from catalog.errors import BadRequest

#: Longest location in UTF-8 bytes: its metadata files (``/metadata/<version>-<uuid>.metadata.json``)
#: must fit SqlCatalog's 1000-character column, and an S3 key is at most 1024 bytes.
MAX_LOCATION_BYTES = 900
MAX_SEGMENT_BYTES = 255  # longest file name on local disks
MAX_GENERATED_SEGMENT = 100
_UNSAFE = re.compile(r"[%?#;\\\s\x00-\x1f\x7f-\x9f]")
_NOT_PLAIN = re.compile(r"[^A-Za-z0-9._-]")
METADATA_SUFFIXES = (".metadata.json", ".metadata.json.gz")


def segment(name: str, limit: int = MAX_GENERATED_SEGMENT) -> str:
    """A path segment for a name: plain ASCII letters, digits, ``.``, ``_`` and ``-``; never ``.``/``..``."""
    out = _NOT_PLAIN.sub("_", name)[:limit]
    return "_" if out in ("", ".", "..") else out


class Warehouse:
    """The warehouse root (``file:///...`` or ``s3://bucket/prefix``) and the rules for locations in it."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        self.scheme = urlparse(self.uri).scheme or "file"

    def location(self, raw: object, what: str = "location", *, allow_root: bool = False) -> str:
        """The checked form of a client-given location (trailing ``/`` dropped); 400 unless it lies
        inside the warehouse and means the same path to every reader."""
        if not isinstance(raw, str) or not raw:
            raise BadRequest(f"{what} must be a non-empty string")
        loc = raw.rstrip("/")
        if loc == self.uri and allow_root:
            return loc
        if not loc.startswith(self.uri + "/"):
            raise BadRequest(f"{what} {raw!r} is outside the warehouse {self.uri}")
        try:
            size = len(loc.encode("utf-8"))
        except UnicodeEncodeError:
            raise BadRequest(f"{what} is not valid Unicode") from None
        if size > MAX_LOCATION_BYTES:
            raise BadRequest(f"{what} is longer than {MAX_LOCATION_BYTES} bytes")
        for part in loc[len(self.uri) + 1:].split("/"):
            if part in ("", ".", ".."):
                raise BadRequest(f"{what} {raw!r} has an empty, '.' or '..' path segment")
            if _UNSAFE.search(part):
                raise BadRequest(f"{what} {raw!r} contains a character that readers decode differently "
                                 "(%, ?, #, ;, \\, whitespace or a control character)")
            if self.scheme == "file" and len(part.encode("utf-8")) > MAX_SEGMENT_BYTES:
                raise BadRequest(f"{what} has a path segment longer than {MAX_SEGMENT_BYTES} bytes")
        return loc

    def metadata_file(self, raw: object, what: str = "metadata-location") -> str:
        """A metadata file location inside the warehouse whose name is an Iceberg metadata file name."""
        loc = self.location(raw, what)
        if not loc.rsplit("/", 1)[-1].endswith(METADATA_SUFFIXES):
            raise BadRequest(f"{what} {raw!r} is not a metadata file (*.metadata.json)")
        return loc

    def default_location(self, base: str, namespace: tuple[str, ...] | None, name: str, unique: str) -> str:
        """``<base>[/<levels>]/<name>-<unique>`` with every segment made plain (see the module doc)."""
        parts = [segment(level) for level in namespace or ()]
        return self.location("/".join([base, *parts, f"{segment(name)}-{unique}"]), "table location")

    def contains(self, path: str) -> bool:
        """True when ``path`` lies inside the warehouse however it is read (raw or URL-decoded)."""
        if not isinstance(path, str) or not path.startswith(self.uri + "/"):
            return False
        rel = path[len(self.uri) + 1:]
        for variant in {rel, unquote(rel), unquote(unquote(rel))}:
            if "\\" in variant or re.search(r"[\x00-\x1f]", variant):
                return False
            if any(p in (".", "..") for p in variant.split("/")):
                return False
        return True

    def local_path(self, location: str) -> Path | None:
        """The folder of a ``file://`` location as stored (never URL-decoded); None for object stores."""
        parsed = urlparse(location)
        if parsed.scheme not in ("", "file"):
            return None
        return Path(parsed.path)
