"""Quote sources for ingestion, one module each (``sample``, ``moex``, ``yahoo``, ``synthetic``).

:func:`make_fetcher` builds a source from the configuration; :mod:`lakehouse.sources.resource`
wraps it as a dlt source/resource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.config import Config
from lakehouse.sources.quotes import parse_date

if TYPE_CHECKING:  # importing dlt is slow: only the ingest run needs it
    from lakehouse.sources.resource import Fetcher

SOURCE_NAMES = ("sample", "moex", "yahoo", "synthetic")


def make_fetcher(cfg: Config, name: str) -> Fetcher:
    """The fetcher of source ``name`` configured from ``cfg.sources_config``."""
    from lakehouse.sources.http import RetryPolicy

    sc = cfg.sources_config
    policy = RetryPolicy(sc.max_retries, sc.backoff_base_seconds, sc.backoff_max_seconds)
    if name == "sample":
        from lakehouse.sources.sample import SampleFetcher

        return SampleFetcher()
    if name == "moex":
        from lakehouse.sources.moex import MoexFetcher

        m = sc.moex
        return MoexFetcher(m.base_url, m.board, parse_date(m.start, "sources.moex.start"), m.timeout_seconds, policy)
    if name == "yahoo":
        from lakehouse.sources.yahoo import YahooFetcher

        y = sc.yahoo
        return YahooFetcher(y.base_url, parse_date(y.start, "sources.yahoo.start"), y.timeout_seconds, policy)
    if name == "synthetic":
        from lakehouse.sources.synthetic import SyntheticFetcher

        return SyntheticFetcher(parse_date(sc.synthetic.start, "sources.synthetic.start"))
    raise ValueError(f"unknown source {name!r} (known: {', '.join(SOURCE_NAMES)})")


def default_tickers(cfg: Config, name: str) -> list[str]:
    """The configured tickers of source ``name``."""
    sc = cfg.sources_config
    if name == "synthetic":
        from lakehouse.sources.synthetic import synthetic_tickers

        return synthetic_tickers(sc.synthetic.n_tickers)
    if name not in SOURCE_NAMES:
        raise ValueError(f"unknown source {name!r} (known: {', '.join(SOURCE_NAMES)})")
    return list(getattr(sc, name).tickers)
