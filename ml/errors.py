"""Errors of the ML stage; each message names the problem and what to run next."""

from __future__ import annotations


class MLError(RuntimeError):
    """Base class: a problem the user can fix (missing table, no model, bad data)."""


class FeaturesUnavailable(MLError):
    """The features table is missing, empty, or has no usable rows."""


class NoChampion(MLError):
    """No model version carries the ``champion`` alias in the registry."""
