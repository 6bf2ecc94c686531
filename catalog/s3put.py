"""One signed S3 PutObject over a kept-alive connection: how the catalog writes a metadata file.

A commit writes one small metadata file. pyarrow's S3 filesystem (AWS SDK for C++) spends about 3 ms of
client work around that one request on the catalog's loopback object store; a plain HTTP PUT over a
connection kept open per thread, signed with botocore's SigV4 signer (the SDK the project already ships),
is about 1 ms cheaper per commit. Only path-style endpoints take this route (the object store of the
platform); anything else keeps pyarrow (see ``MetadataFiles._put``).
"""

from __future__ import annotations

import hashlib
import http.client
import threading
import time
from urllib.parse import quote, urlparse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

#: statuses worth one more try (the object store is busy or restarting); the name is fresh, so a
#: repeated PUT of the same bytes is harmless
_RETRY_STATUS = {500, 502, 503, 504}
_ATTEMPTS = 3


class S3PutError(OSError):
    """A PutObject the object store refused or that never got an answer."""


class S3Putter:
    """PutObject to one S3 endpoint with path-style addressing, one kept-alive connection per thread."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str,
                 session_token: str | None = None, timeout: float = 60.0) -> None:
        url = urlparse(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an S3 endpoint URL: {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname, url.port
        self._origin = f"{url.scheme}://{url.netloc}"
        self._base_path = url.path.rstrip("/")
        self._signer = S3SigV4Auth(Credentials(access_key, secret_key, session_token), "s3", region or "us-east-1")
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and fresh:
            conn.close()
            conn = None
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = cls(self._host, self._port, timeout=self._timeout)
        return conn

    def put(self, bucket: str, key: str, payload: bytes) -> None:
        """Create ``s3://bucket/key`` with ``payload``; :class:`S3PutError` when it did not land."""
        path = f"{self._base_path}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        last: str = ""
        for attempt in range(_ATTEMPTS):
            request = AWSRequest("PUT", self._origin + path, data=payload,
                                 headers={"x-amz-content-sha256": hashlib.sha256(payload).hexdigest(),
                                          "Content-Type": "application/json"})
            self._signer.add_auth(request)
            # a kept-alive connection the server closed meanwhile fails at once: retry on a fresh one
            conn = self._connection(fresh=attempt > 0)
            try:
                conn.request("PUT", path, body=payload, headers=dict(request.headers.items()))
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                last = f"{type(exc).__name__}: {exc}"
                continue
            if 200 <= response.status < 300:
                return
            last = f"HTTP {response.status} {_error_code(body)}".strip()
            if response.status not in _RETRY_STATUS:
                break
            time.sleep(0.05 * (attempt + 1))
        raise S3PutError(f"PutObject s3://{bucket}/{key} at {self.endpoint} failed: {last}")


def _error_code(body: bytes) -> str:
    """The ``<Code>`` of an S3 error document (never the rest of the body)."""
    start, end = body.find(b"<Code>"), body.find(b"</Code>")
    return body[start + 6:end].decode(errors="replace")[:100] if 0 <= start < end else ""
