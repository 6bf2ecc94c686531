"""The report's HTML: one jinja2 template (``templates/report.html.j2``) filled with :class:`ReportData`
and the inline SVG charts. Autoescaping is on; only the charts, which matplotlib wrote, are marked safe."""

from __future__ import annotations

import math
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from lakehouse.report import charts
from lakehouse.report.sections import BAND_QUANTILES, ReportData

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: Rows of the live forecast-against-actual table (newest first); the summary covers all of them.
MAX_ACCURACY_ROWS = 60


def num(value: float | None, fmt: str = "{:.3f}") -> str:
    """A number formatted, or a dash for missing / not finite (scores of naive against itself)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["num"] = num
    return env


def draw_charts(data: ReportData) -> tuple[dict[str, str], str | None]:
    """Per ticker its price chart (the first ``data.charted_limit`` tickers), and the live-errors chart."""
    prices = {v.ticker: charts.price_chart(v) for v in data.tickers[: data.charted_limit]}
    return prices, charts.error_chart(data.accuracy[:MAX_ACCURACY_ROWS])


def render_html(data: ReportData) -> str:
    """The whole self-contained HTML page."""
    prices, errors = draw_charts(data)
    lo, hi = BAND_QUANTILES
    return _environment().get_template("report.html.j2").render(
        data=data, generated=data.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        charts={t: Markup(svg) for t, svg in prices.items()}, error_chart=Markup(errors) if errors else None,
        band_low=round(lo * 100), band_high=round(hi * 100), max_accuracy_rows=MAX_ACCURACY_ROWS,
    )
