"""Cache of the backtest's fitted models, keyed by what a fit depends on and nothing else.

A fit is determined by the model, its retrain date, the exact training rows (every row whose 5-day
target was known before the retrain date) and the code that builds and fits the model (the model
and feature modules, the scikit-learn and numpy versions). The key holds a digest of those rows
rather than the features snapshot id: a new trading day writes a new snapshot but leaves the
training rows of every past retrain date unchanged, so no past model is refit, while a corrected
quote or a new feature formula changes the digest of every fit that saw it.

The training-row digest is order-independent and computed for every retrain date in one pass: the
rows' 64-bit hashes, sorted by target date, summed cumulatively (mod 2^64); the rows before a
retrain date are a prefix of that order. Fits are stored with joblib under
``$LAKEHOUSE_HOME/ml/fits/<model>/`` (a local cache: losing it only costs refits).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from lakehouse.config import Config

#: Files whose content defines what a fit computes.
FIT_CODE = ("ml/models.py", "ml/features.py")
FIT_PACKAGES = ("scikit-learn", "numpy", "scipy")


@lru_cache(maxsize=1)
def code_digest() -> str:
    """Digest of the fitting code and library versions."""
    from lakehouse.pipeline.fingerprint import code_files, digest, package_versions

    return digest({"code": code_files(FIT_CODE), "packages": package_versions(FIT_PACKAGES)})[:16]


class TrainingDigests:
    """Digest of the training rows (target date < cut) for any cut date, from one pass over the rows."""

    def __init__(self, rows: pd.DataFrame, columns: tuple[str, ...]) -> None:
        order = np.argsort(rows["target_date"].to_numpy(dtype="datetime64[ns]"), kind="stable")
        self._dates = rows["target_date"].to_numpy(dtype="datetime64[ns]")[order]
        hashes = pd.util.hash_pandas_object(rows.loc[:, list(columns)], index=False).to_numpy(np.uint64)[order]
        with np.errstate(over="ignore"):
            self._csum = np.concatenate([[np.uint64(0)], np.cumsum(hashes, dtype=np.uint64)])

    def count(self, cut: pd.Timestamp) -> int:
        """Training rows whose target date is before ``cut``."""
        return int(np.searchsorted(self._dates, np.datetime64(cut, "ns"), side="left"))

    def digest(self, cut: pd.Timestamp) -> str:
        n = self.count(cut)
        return f"{n}:{int(self._csum[n]):016x}"


def fit_key(model: str, retrain_date: pd.Timestamp, rows_digest: str) -> str:
    """The cache key of one fit."""
    text = f"{model}|{pd.Timestamp(retrain_date).date()}|{rows_digest}|{code_digest()}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class FitCache:
    """Fitted estimators on disk, one file per key; :meth:`prune` drops the keys a run no longer uses."""

    def __init__(self, cfg: Config) -> None:
        self.root = cfg.path("ml", "fits", create=True)

    def _path(self, model: str, key: str) -> Path:
        return self.root / model / f"{key}.joblib"

    def get(self, model: str, key: str):  # noqa: ANN201 - a scikit-learn estimator
        """The cached estimator, or None (missing or unreadable: it is refit)."""
        import joblib

        path = self._path(model, key)
        if not path.is_file():
            return None
        try:
            return joblib.load(path)
        except Exception:  # noqa: BLE001 - a damaged cache file only costs a refit
            path.unlink(missing_ok=True)
            return None

    def put(self, model: str, key: str, estimator) -> None:  # noqa: ANN001
        """Store an estimator atomically (write then rename)."""
        import joblib

        path = self._path(model, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        joblib.dump(estimator, tmp)
        tmp.replace(path)

    def prune(self, model: str, keep: set[str]) -> int:
        """Delete the model's cached fits whose key is not in ``keep``; the number deleted."""
        folder = self.root / model
        gone = 0
        for f in folder.glob("*.joblib") if folder.is_dir() else ():
            if f.stem not in keep:
                f.unlink(missing_ok=True)
                gone += 1
        return gone
