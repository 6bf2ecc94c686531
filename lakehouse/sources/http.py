"""HTTP for the live quote sources: bounded retries with exponential backoff and jitter on 429/5xx
and connection errors (honoring ``Retry-After``), and strict checks of the body's shape.

Every failure is a :class:`~lakehouse.sources.quotes.SourceError` naming the source, ticker and URL:
HTTP 4xx, an empty body, an HTML page or other non-JSON answer sent with 200 (bot challenges), and
truncated JSON.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from lakehouse.sources.quotes import SourceError

BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass
class RetryPolicy:
    """How often and how long to retry: ``max_retries`` extra attempts, delays ``base * 2**n`` with
    full jitter, never longer than ``max_delay`` (a longer ``Retry-After`` is capped too)."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        backoff = min(self.base_delay * (2**attempt), self.max_delay)
        return backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311 - jitter, not crypto


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _snippet(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text[:n] + ("..." if len(text) > n else "")


class JsonClient:
    """GET JSON documents for one source with retries and body checks."""

    def __init__(
        self, source: str, *, timeout: float, policy: RetryPolicy | None = None,
        headers: dict[str, str] | None = None, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        self.sleep = sleep
        self.retries = 0  # retries done so far (for the summary and tests)

    def close(self) -> None:
        """Release the connection pool."""
        self.session.close()

    def get_json(
        self, url: str, params: dict[str, Any], ticker: str,
        error_body: Callable[[int, Any], str | None] | None = None,
    ) -> Any:
        """The decoded JSON body of ``GET url?params``; raises SourceError naming ``ticker`` and URL.

        ``error_body(status, json)`` may turn a JSON error document into a message.
        """
        full_url = requests.Request("GET", url, params=params).prepare().url or url
        attempt = 0
        while True:
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.policy.max_retries:
                    raise SourceError(self.source, ticker, f"request failed after {attempt + 1} attempts: "
                                      f"{type(exc).__name__}: {exc}", full_url) from exc
                self._wait(attempt, None)
                attempt += 1
                continue
            if resp.status_code in RETRY_STATUSES:
                if attempt >= self.policy.max_retries:
                    raise SourceError(self.source, ticker, f"HTTP {resp.status_code} after {attempt + 1} "
                                      f"attempts: {_snippet(resp.text)!r}", full_url)
                self._wait(attempt, parse_retry_after(resp.headers.get("Retry-After")))
                attempt += 1
                continue
            return self._decode(resp, ticker, full_url, error_body)

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        self.retries += 1
        self.sleep(self.policy.delay(attempt, retry_after))

    def _decode(self, resp: requests.Response, ticker: str, url: str,
                error_body: Callable[[int, Any], str | None] | None) -> Any:
        body = resp.content
        text = body.decode(resp.encoding or "utf-8", errors="replace")
        doc: Any = None
        parse_error: str | None = None
        if body.strip():
            try:
                doc = json.loads(body)
            except ValueError as exc:
                parse_error = str(exc)
        if resp.status_code >= 400:
            detail = (error_body(resp.status_code, doc) if doc is not None and error_body else None)
            raise SourceError(self.source, ticker, f"HTTP {resp.status_code}: {detail or _snippet(text)!r}", url)
        if not body.strip():
            raise SourceError(self.source, ticker, f"empty response (HTTP {resp.status_code})", url)
        if parse_error is not None:
            ctype = resp.headers.get("Content-Type", "")
            head = text.lstrip()[:200].lower()
            if "html" in ctype or head.startswith("<"):
                raise SourceError(self.source, ticker, f"got an HTML page instead of JSON (HTTP "
                                  f"{resp.status_code}, {ctype or 'no content type'}; a bot challenge?): "
                                  f"{_snippet(text, 100)!r}", url)
            if head.startswith(("{", "[")):
                raise SourceError(self.source, ticker, f"truncated or invalid JSON ({len(body)} bytes): "
                                  f"{parse_error}", url)
            raise SourceError(self.source, ticker, f"not JSON (HTTP {resp.status_code}): {_snippet(text)!r}", url)
        return doc
