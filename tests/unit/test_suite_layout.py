"""The suite's own layout: pytest imports test modules by basename (rootdir-relative, no packages), so two
test files with one name in tests/unit and tests/integration stop the whole run at collection (CI failed
so once: test_ml_backtest.py in both)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_test_module_basenames_are_unique() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1], names.most_common(3)
