"""The run report (`lakehouse report`) on a real lake, checked in the file and in headless Chromium.

The lake is built the cheapest real way, as in test_ml_pipeline.py: the features of the shipped sample
(test oracle) up to two weeks before its end, then the real `lakehouse backtest`, `train` and `predict`;
then the last two weeks arrive and `lakehouse evaluate` scores the live forecasts, so every section of
the report has data. `lakehouse run` printing the report's path is checked in test_pipeline_run.py.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from lakehouse.config import get_config
from lakehouse.lake import open_lake
from tests.conftest import cli_ok, run_cli
from tests.ml_helpers import SHORT_TICKER, TRAIN_TICKERS, isolated, sample_features, write_features

CUTOFF = "2013-02-15"
TICKERS = [*TRAIN_TICKERS, SHORT_TICKER]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
READ_TABLES = ("features.fct_daily_features", "ml.predictions", "ml.model_metrics", "ml.backtest_predictions",
               "ml.prediction_accuracy")


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    home = tmp_path_factory.mktemp("report") / "home"
    gen = isolated(home)
    env = next(gen)
    cfg = get_config(reload=True)
    write_features(cfg, sample_features(CUTOFF))
    for step in ("backtest", "train", "predict"):
        cli_ok(run_cli(step, timeout=600))
    write_features(cfg, sample_features())  # two more weeks arrive
    cli_ok(run_cli("evaluate"))
    proc = run_cli("report")
    yield SimpleNamespace(cfg=cfg, env=env, proc=proc, home=home)
    next(gen, None)


def _current_snapshots(cfg) -> dict[str, int | None]:
    out = {}
    with open_lake(cfg) as lake:
        for ident in READ_TABLES:
            snap = lake.catalog.load_table(ident).current_snapshot()
            out[ident] = snap.snapshot_id if snap else None
    return out


class _Sections(HTMLParser):
    """Ids of elements, lineage rows (table -> snapshot) and table rows' first cells."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.lineage: dict[str, str] = {}
        self.svgs = 0
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        a = dict(attrs)
        if "id" in a and tag != "svg" and not (a["id"] or "").startswith(("price-", "live-")):
            self.ids.add(a["id"])
        if a.get("class") == "lineage-row":
            self.lineage[a["data-table"]] = a["data-snapshot"]
        if tag == "svg":
            self.svgs += 1
        for key in ("src", "href"):
            if tag in ("script", "img", "link", "iframe") and a.get(key):
                self.external.append(f"{tag} {a[key]}")


def test_report_writes_latest_and_a_dated_copy(lake) -> None:
    out = cli_ok(lake.proc)
    latest = lake.cfg.reports_dir / "latest.html"
    assert str(latest) in " ".join(out.split()) and latest.is_file()
    dated = [p for p in lake.cfg.reports_dir.glob("*.html") if p.name != "latest.html"]
    assert len(dated) == 1 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d{6}Z\.html", dated[0].name)
    assert dated[0].read_bytes() == latest.read_bytes()


def test_report_content(lake) -> None:
    html = (lake.cfg.reports_dir / "latest.html").read_text()
    parser = _Sections()
    parser.feed(html)
    assert {f"t-{t}" for t in TICKERS} <= parser.ids  # a section per ticker
    assert parser.svgs == len(TICKERS) + 1  # a price chart each, plus the live forecast-vs-actual chart
    assert not parser.external and not re.findall(r"https?://", re.sub(r'xmlns(:xlink)?="[^"]+"', "", html))
    # leaderboard: every configured model incl. the naive baseline, with base rate and DM p-value columns
    board = html[html.index('id="leaderboard"'):html.index('id="accuracy"')]
    for model in ("naive (baseline)", "drift", "ridge", "hist_gbr"):
        assert f">{model}<" in board, model
    assert "base rate (up)" in board and "DM p" in board and "Champion decision:" in board
    assert "champion" in board
    # lineage: the snapshots read are the tables' current ones (nothing was written since the report)
    assert parser.lineage.keys() >= set(READ_TABLES)
    current = _current_snapshots(lake.cfg)
    assert {t: parser.lineage[t] for t in READ_TABLES} == {t: str(s) for t, s in current.items()}
    assert parser.lineage["raw.quotes"] == ""  # this lake has no raw table: said, not faked
    with open_lake(lake.cfg) as lk:
        pred = lk.catalog.load_table("ml.predictions").scan().to_pandas()
    run_id, version = pred["run_id"].iloc[0], pred["model_version"].iloc[0]
    assert f'id="mlflow-run">{run_id}<' in html and f"v{version}" in html
    # forecast against actual: the two weeks evaluate scored, and freshness per ticker
    acc = html[html.index('id="accuracy"'):html.index('id="freshness"')]
    assert "2013-02-15" in acc and all(t in acc for t in TICKERS)
    track = acc[acc.index('id="backtest-summary"'):]
    assert all(f'<td class="l">{t}</td>' in track for t in TICKERS)  # the serving model's last-year track record
    fresh = html[html.index('id="freshness"'):html.index('id="lineage"')]
    assert fresh.count("2013-03-01") >= len(TICKERS) - 1


def test_report_opens_offline_in_chromium(lake, tmp_path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    latest = lake.cfg.reports_dir / "latest.html"
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"failed request {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(latest.as_uri(), wait_until="load")
            charts = page.evaluate("""() => [...document.querySelectorAll('svg')].map(s => {
                const b = s.getBoundingClientRect();
                return {w: b.width, h: b.height, paths: s.querySelectorAll('path').length,
                        texts: s.querySelectorAll('text').length};
            })""")
            shot = tmp_path / "run-report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert requests == [latest.as_uri()], requests  # the page itself and nothing else
    assert len(charts) == len(TICKERS) + 1
    for c in charts:
        assert c["w"] > 300 and c["h"] > 100 and c["paths"] > 10 and c["texts"] > 3, c
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")  # pytest keeps the last runs' tmp_path (shown with -s)


def test_report_on_an_empty_lake_fails_clearly(lh_env) -> None:
    proc = run_cli("report")
    assert proc.returncode == 1
    err = " ".join(proc.stderr.split())
    assert "no report" in err and "features.fct_daily_features" in err and "lakehouse run" in err
    assert not (get_config(reload=True).reports_dir / "latest.html").exists()
