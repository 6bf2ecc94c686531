"""lakehouse.heap: one collection and freeze after a stage's imports, not repeated without new imports."""

from __future__ import annotations

import gc
import sys
import types

from lakehouse import heap


def test_settle_freezes_once_per_batch_of_new_imports(monkeypatch):
    monkeypatch.setattr(heap, "_modules_then", 0)
    assert heap.settle() is True  # everything imported so far
    frozen = gc.get_freeze_count()
    assert frozen > 0
    assert heap.settle() is False  # nothing new since
    for i in range(heap.NEW_MODULES):  # a stage importing a library
        monkeypatch.setitem(sys.modules, f"_lakehouse_test_module_{i}", types.ModuleType(f"m{i}"))
    assert heap.settle() is True
    assert gc.get_freeze_count() >= frozen


def test_settle_leaves_a_disabled_collector_alone(monkeypatch):
    monkeypatch.setattr(heap, "_modules_then", 0)
    gc.disable()
    try:
        assert heap.settle() is False
    finally:
        gc.enable()
