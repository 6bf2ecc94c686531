"""HTTP for the live quote sources: bounded retries with exponential backoff and jitter on 429/5xx
and connection errors (honoring ``Retry-After``, capped), and strict checks of the body's shape.

Retries are urllib3's :class:`~urllib3.util.Retry` mounted on the requests session (attempt counting
per category, which statuses and methods retry, ``Retry-After`` parsing in both formats with its cap,
history). :class:`BackoffRetry` changes two things only: the backoff starts at the first retry and is
jittered over its upper half (urllib3 retries the first time at once, which a rate limit answering 429
without ``Retry-After`` just answers again), and an unreadable ``Retry-After`` falls back to the backoff
instead of failing the request. It also records each wait, for the summary and the tests.

Every failure is a :class:`~lakehouse.sources.quotes.SourceError` naming the source, ticker and URL:
HTTP 4xx, 429/5xx or connection errors left after the last retry, an empty body, an HTML page or other
non-JSON answer sent with 200 (bot challenges), and truncated JSON.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from lakehouse.sources.quotes import SourceError

BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class BackoffRetry(Retry):
    """urllib3's Retry with the backoff from the first retry on, jittered over ``[b/2, b]`` where
    ``b = min(backoff_factor * 2**n, backoff_max)``; ``waits`` (shared by the copies urllib3 makes
    with :meth:`new`) collects the seconds slept before each retry."""

    def __init__(self, *args: Any, waits: list[float] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[float] = waits if waits is not None else []

    def new(self, **kw: Any) -> BackoffRetry:
        retry = super().new(**kw)
        retry.waits = self.waits
        return retry

    def get_backoff_time(self) -> float:
        errors = len(list(takewhile(lambda h: h.redirect_location is None, reversed(self.history))))
        if errors == 0:
            return 0.0
        backoff = min(self.backoff_factor * 2 ** (errors - 1), self.backoff_max)
        return backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311 - jitter, not crypto

    def parse_retry_after(self, retry_after: str) -> float:
        try:
            return super().parse_retry_after(retry_after)
        except InvalidHeader:
            return 0.0  # unreadable: urllib3 then sleeps the backoff

    def sleep(self, response: Any = None) -> None:
        started = time.monotonic()
        super().sleep(response)
        self.waits.append(time.monotonic() - started)


@dataclass
class RetryPolicy:
    """How often and how long to retry: ``max_retries`` extra attempts, delays ``base * 2**n`` with
    jitter, never longer than ``max_delay`` (a longer ``Retry-After`` is capped too)."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def retry(self, waits: list[float] | None = None) -> BackoffRetry:
        """The urllib3 Retry of this policy (GET only; the last 429/5xx response is returned, not raised,
        so that its body can be shown)."""
        return BackoffRetry(
            total=self.max_retries, status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
            backoff_factor=self.base_delay, backoff_max=self.max_delay, retry_after_max=self.max_delay,
            respect_retry_after_header=True, raise_on_status=False, waits=waits,
        )


def _snippet(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text[:n] + ("..." if len(text) > n else "")


class JsonClient:
    """GET JSON documents for one source with retries and body checks."""

    def __init__(
        self, source: str, *, timeout: float, policy: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.source = source
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.waits: list[float] = []  # seconds slept before each retry so far (for the summary and tests)
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=self.policy.retry(self.waits))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", **(headers or {})})

    @property
    def retries(self) -> int:
        """Retries done so far."""
        return len(self.waits)

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
        try:
            resp = self.session.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            retried = exc.args[0] if exc.args and isinstance(exc.args[0], MaxRetryError) else None
            if retried is not None:
                cause = retried.reason
                what = f"request failed after {self.policy.max_retries + 1} attempts"
            else:
                cause, what = exc, "request failed"
            raise SourceError(self.source, ticker, f"{what}: {type(cause).__name__}: {cause}", full_url) from exc
        if resp.status_code in RETRY_STATUSES:
            history = resp.raw.retries.history if resp.raw is not None and resp.raw.retries else ()
            raise SourceError(self.source, ticker, f"HTTP {resp.status_code} after {len(history) + 1} "
                              f"attempts: {_snippet(resp.text)!r}", full_url)
        return self._decode(resp, ticker, full_url, error_body)

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
