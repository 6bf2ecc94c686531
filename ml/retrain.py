"""The retrain policy: which new features make the ``train`` stage run again (``[mlflow] retrain``).

Kept apart from :mod:`ml.train` on purpose: the pipeline evaluates it on every run to decide whether
training is due, and it must not import scikit-learn or MLflow (seconds) to say "not yet".
"""

from __future__ import annotations

from lakehouse.config import Config
from lakehouse.contracts import FEATURES

FEATURES_TABLE = FEATURES.identifier


def fingerprint_inputs(cfg: Config, lake, versions: dict[str, str | None], records: dict) -> dict[str, str | None]:
    """What of the features' version the train stage's fingerprint keeps, by ``[mlflow] retrain``.

    ``always``: every new snapshot. ``weekly``: the ISO week of the newest trade date (so a new day
    of quotes retrains once a week). ``never``: only that features exist. In the last two, the
    features' *definition* (the transform-lake stage's code and packages) is kept too: new feature
    formulas always retrain. A missing champion, changed ML code or model settings retrain anyway.
    """
    snapshot = versions.get(FEATURES_TABLE)
    policy = cfg.mlflow.retrain
    if policy == "always" or snapshot is None:
        return versions
    producer = records.get("transform-lake")
    definition = ""
    if producer is not None:
        from lakehouse.pipeline.fingerprint import digest

        definition = digest({"code": producer.code, "packages": producer.packages})[:16]
    if policy == "never":
        return {**versions, FEATURES_TABLE: f"definition {definition}"}
    table = lake.catalog.load_table(FEATURES_TABLE)
    dates = table.scan(snapshot_id=int(snapshot), selected_fields=("trade_date",)).to_arrow()["trade_date"]
    import pyarrow.compute as pc

    last = pc.max(dates).as_py()
    week = f"{last.isocalendar().year}-W{last.isocalendar().week:02d}" if last else "empty"
    return {**versions, FEATURES_TABLE: f"week {week}; definition {definition}"}
