"""The forecasting models: baselines and scikit-learn regressors of the 5-day return.

Every model predicts the return over the next ``HORIZON_DAYS`` trading days from one feature row;
the price forecast is ``adj_close * (1 + predicted return)``. All models, baselines included, are
scikit-learn estimators taking the feature frame (``ticker`` + :data:`MODEL_FEATURES`), and each
is wrapped in :class:`ForecastModel` (an MLflow pyfunc) so any of them can be registered and loaded
as ``models:/<name>@champion``.

- ``naive``: no change (the forecast is the last close);
- ``drift``: each ticker's mean 5-day return over its training history (random walk with drift);
- ``ridge``: ridge regression on standardized features, missing values imputed with the training
  medians plus missing-value indicators;
- ``hist_gbr``: histogram gradient boosting (no early stopping: it would hold out a random split),
  missing values handled natively;
- ``random_forest``: a shallow random forest (optional, slower; missing values imputed).

Every model accepts rows with missing features, so a ticker with a short history (FB: fewer rows
than the 200-day average needs) is trained on and forecast by the same model as the others.
Hyper-parameters are fixed, never tuned on the data: a forecast made as of a date depends only on
the rows before it.
"""

from __future__ import annotations

from collections.abc import Callable

import mlflow.pyfunc
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ml.features import HORIZON_DAYS, MODEL_FEATURES, model_matrix

SEED = 0


class NaiveForecaster(RegressorMixin, BaseEstimator):
    """Predicts a zero return: the forecast price is the last close."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> NaiveForecaster:
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(X))


class DriftForecaster(RegressorMixin, BaseEstimator):
    """Predicts each ticker's mean training 5-day return (the overall mean for unseen tickers)."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> DriftForecaster:
        y = pd.Series(np.asarray(y, dtype=float), index=X.index)
        self.drift_ = y.groupby(X["ticker"]).mean().to_dict()
        self.global_drift_ = float(y.mean())
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X["ticker"].map(self.drift_).fillna(self.global_drift_).to_numpy(dtype=float)


def _numeric(step) -> ColumnTransformer:
    """Select the numeric model features (dropping ``ticker``) for a scikit-learn step."""
    return ColumnTransformer([("features", step, list(MODEL_FEATURES))], remainder="drop")


class RowwiseRidge(Ridge):
    """Ridge whose forecast of a row does not depend on the other rows predicted with it.

    ``Ridge.predict`` is a BLAS matrix-vector product, whose rounding in the last bit can depend on a
    row's position in the batch. The backtest predicts a period's as-of dates in one batch, and the
    period holds more dates when the lake holds more data: a forecast as of d must not change with
    data after d, not even in the 17th digit. A per-row sum over the features does not.
    """

    def predict(self, X) -> np.ndarray:  # noqa: ANN001
        X = np.ascontiguousarray(np.asarray(X, dtype=float))
        return (X * self.coef_).sum(axis=1) + self.intercept_


def _imputer() -> SimpleImputer:
    # keep_empty_features: a feature with no value yet in an early training window stays a column
    return SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)


def _ridge() -> Pipeline:
    return Pipeline([
        ("select", _numeric("passthrough")), ("impute", _imputer()), ("scale", StandardScaler()),
        ("ridge", RowwiseRidge(alpha=10.0)),
    ])


def _hist_gbr() -> Pipeline:
    return Pipeline([
        ("select", _numeric("passthrough")),
        ("hgbr", HistGradientBoostingRegressor(
            max_iter=60, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=100,
            l2_regularization=1.0, early_stopping=False, random_state=SEED,
        )),
    ])


def _random_forest() -> Pipeline:
    return Pipeline([
        ("select", _numeric("passthrough")), ("impute", _imputer()),
        ("rf", RandomForestRegressor(
            n_estimators=60, max_depth=8, min_samples_leaf=50, max_features=0.5, n_jobs=1,
            random_state=SEED,
        )),
    ])


#: Model name -> factory of a fresh unfitted estimator.
MODEL_FACTORIES: dict[str, Callable[[], BaseEstimator]] = {
    "naive": NaiveForecaster,
    "drift": DriftForecaster,
    "ridge": _ridge,
    "hist_gbr": _hist_gbr,
    "random_forest": _random_forest,
}
BASELINE = "naive"
DEFAULT_MODELS = ("naive", "drift", "ridge", "hist_gbr")


def build_model(name: str) -> BaseEstimator:
    """A fresh estimator for model ``name``; ValueError naming the known models otherwise."""
    try:
        return MODEL_FACTORIES[name]()
    except KeyError:
        raise ValueError(f"unknown model '{name}' (known: {', '.join(MODEL_FACTORIES)})") from None


def design(df: pd.DataFrame) -> pd.DataFrame:
    """The estimator input for feature rows: ``ticker`` plus :data:`MODEL_FEATURES`."""
    X = model_matrix(df)
    X.insert(0, "ticker", df["ticker"].astype(str).to_numpy())
    return X


def estimator_params(est: BaseEstimator) -> dict[str, str]:
    """Flat hyper-parameters of the model's last step, for logging."""
    last = est.steps[-1][1] if isinstance(est, Pipeline) else est
    return {k: str(v) for k, v in last.get_params(deep=False).items()}


class ForecastModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: feature rows in, 5-day return and price forecasts out.

    Input: a frame with ``ticker``, ``adj_close`` and the contract feature columns
    (:data:`ml.features.INPUT_COLUMNS`). Output: ``predicted_return_5d`` and ``predicted_close_5d``.
    """

    def __init__(self, kind: str, estimator: BaseEstimator) -> None:
        self.kind = kind
        self.estimator = estimator
        self.horizon_days = HORIZON_DAYS

    def predict_return(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted ``HORIZON_DAYS``-day simple return per row."""
        return np.asarray(self.estimator.predict(design(df)), dtype=float)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ARG002
        ret = self.predict_return(model_input)
        return pd.DataFrame({
            "predicted_return_5d": ret,
            "predicted_close_5d": model_input["adj_close"].to_numpy(dtype=float) * (1 + ret),
        })
