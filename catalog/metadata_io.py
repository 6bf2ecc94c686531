"""Reading and writing table metadata files through pyiceberg's FileIO, with a cache.

Metadata files are immutable, so parsed metadata is cached by location. Top-level fields that
pyiceberg's model does not know (e.g. ``encryption-keys``) are kept beside the model and written
back, so metadata written by other engines survives a commit through this server.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from pyiceberg.io import FileIO, load_file_io
from pyiceberg.table.metadata import TableMetadata, TableMetadataUtil

from catalog.errors import BadRequest, NotFound
from catalog.s3put import S3Putter

#: Metadata fields of the table spec that pyiceberg's TableMetadata model drops.
EXTRA_FIELDS = ("encryption-keys",)


@dataclass(frozen=True)
class LoadedMetadata:
    """A parsed metadata file: the model, the file's JSON text, and fields pyiceberg does not model."""

    location: str
    metadata: TableMetadata
    raw: bytes  # the JSON document (uncompressed)
    extras: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The metadata as a JSON-ready dict."""
        return json.loads(self.raw)


class MetadataFiles:
    """FileIO access to metadata files for one warehouse, with an LRU cache of parsed files."""

    def __init__(self, properties: dict[str, str], cache_size: int = 512) -> None:
        self.properties = dict(properties)
        self._io: dict[str, FileIO] = {}
        self._put_fs = None  # pyarrow S3FileSystem for single-request metadata writes (see _put)
        self._putter: S3Putter | None = None  # kept-alive signed PUTs to a path-style endpoint (see _put)
        self._cache: OrderedDict[str, LoadedMetadata] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def io(self, location: str) -> FileIO:
        """The FileIO for a location's scheme (shared)."""
        scheme = urlparse(location).scheme or "file"
        with self._lock:
            fio = self._io.get(scheme)
            if fio is None:
                fio = self._io[scheme] = load_file_io(self.properties, location)
            return fio

    def read(self, location: str) -> LoadedMetadata:
        """Parse the metadata file at ``location`` (cached).

        A file that is not table metadata is a 400 that names the location only: the message never
        quotes the file (a parse error of pydantic or json would echo its content).
        """
        with self._lock:
            hit = self._cache.get(location)
            if hit is not None:
                self._cache.move_to_end(location)
                return hit
        data = self._read_bytes(location)
        try:
            doc = json.loads(data)
            metadata = TableMetadataUtil.parse_obj(doc)
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad metadata file
            raise BadRequest(f"{location} is not a valid Iceberg table metadata file") from exc
        extras = {k: doc[k] for k in EXTRA_FIELDS if k in doc}
        loaded = LoadedMetadata(location, metadata, data, extras)
        self._remember(loaded)
        return loaded

    def _remember(self, loaded: LoadedMetadata) -> None:
        with self._lock:
            self._cache[loaded.location] = loaded
            self._cache.move_to_end(loaded.location)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def write(self, location: str, metadata: TableMetadata, extras: dict[str, Any] | None = None) -> LoadedMetadata:
        """Write a new metadata file and cache it.

        ``location`` is always a fresh name (``<version>-<uuid>.metadata.json``), so the file is created
        without an existence check first: on S3 that check is a HEAD request, a round trip per commit.
        """
        data = metadata.model_dump_json(exclude_none=True).encode()  # compact JSON
        kept = {k: v for k, v in (extras or {}).items() if v}
        if kept:
            doc = json.loads(data)
            doc.update(kept)
            data = json.dumps(doc, separators=(",", ":")).encode()
        payload = gzip.compress(data) if location.endswith(".gz.metadata.json") else data
        self._put(location, payload)
        loaded = LoadedMetadata(location, metadata, data, dict(extras or {}))
        self._remember(loaded)
        return loaded

    def _put(self, location: str, payload: bytes) -> None:
        """Create the file at ``location`` with ``payload``.

        On S3 the file is ONE PutObject: pyiceberg's own S3 FileIO starts a multipart upload on open, so a
        metadata file would cost three requests (create, upload part, complete) on every commit. A
        path-style endpoint (the platform's object store) gets a signed PUT over a kept-alive connection
        (:mod:`catalog.s3put`, about 1 ms cheaper than pyarrow); others a pyarrow filesystem opened with
        ``allow_delayed_open``.
        """
        if urlparse(location).scheme in ("s3", "s3a", "s3n"):
            putter = self._s3_putter()
            if putter is not None:
                bucket, _, key = location.split("://", 1)[1].partition("/")
                putter.put(bucket, key, payload)
                return
            fs = self._s3_put_fs()
            with fs.open_output_stream(location.split("://", 1)[1]) as out:
                out.write(payload)
            return
        with self.io(location).new_output(location).create(overwrite=True) as out:
            out.write(payload)

    def _s3_putter(self) -> S3Putter | None:
        """The kept-alive PUT client for a path-style endpoint with static keys; None otherwise."""
        p = self.properties
        if (not p.get("s3.endpoint") or not p.get("s3.access-key-id")
                or p.get("s3.force-virtual-addressing", "false").lower() == "true"):
            return None
        with self._lock:
            if self._putter is None:
                self._putter = S3Putter(p["s3.endpoint"], p["s3.access-key-id"], p.get("s3.secret-access-key", ""),
                                        p.get("s3.region", ""), p.get("s3.session-token"))
            return self._putter

    def _s3_put_fs(self):  # noqa: ANN202 - pyarrow.fs.S3FileSystem
        with self._lock:
            if self._put_fs is None:
                from pyarrow.fs import S3FileSystem

                p = self.properties
                self._put_fs = S3FileSystem(
                    endpoint_override=p.get("s3.endpoint"), access_key=p.get("s3.access-key-id"),
                    secret_key=p.get("s3.secret-access-key"), session_token=p.get("s3.session-token"),
                    region=p.get("s3.region"), allow_delayed_open=True, background_writes=False,
                    force_virtual_addressing=p.get("s3.force-virtual-addressing", "false").lower() == "true",
                )
            return self._put_fs

    def _read_bytes(self, location: str) -> bytes:
        """The (decompressed) bytes of a metadata file; 404 when missing, 400 when unreadable."""
        try:
            with self.io(location).new_input(location).open() as f:
                data = f.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
        except FileNotFoundError as exc:
            raise NotFound(f"Metadata file does not exist: {location}") from exc
        except (OSError, EOFError, ValueError) as exc:
            raise BadRequest(f"Metadata file {location} cannot be read") from exc
        return data

    def read_json(self, location: str) -> dict[str, Any]:
        """A JSON object (e.g. view metadata), uncached; the error never quotes the file."""
        data = self._read_bytes(location)
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise BadRequest(f"{location} is not a valid metadata file (not JSON)") from exc
        if not isinstance(doc, dict):
            raise BadRequest(f"{location} is not a valid metadata file (not a JSON object)")
        return doc

    def write_json(self, location: str, doc: dict[str, Any]) -> None:
        """Write a new JSON document (never overwrites)."""
        with self.io(location).new_output(location).create(overwrite=False) as out:
            out.write(json.dumps(doc, separators=(",", ":")).encode())

    def delete(self, location: str) -> None:
        """Delete a file, ignoring a missing one."""
        with contextlib.suppress(FileNotFoundError, OSError):
            self.io(location).delete(location)
        with self._lock:
            self._cache.pop(location, None)
