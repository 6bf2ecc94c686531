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


def test_glibc_keeps_freed_blocks_unless_the_user_tuned_malloc(monkeypatch):
    import platform

    for name in heap.MALLOC_ENV:
        monkeypatch.delenv(name, raising=False)
    expected = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert heap.keep_freed_blocks() is expected
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")  # the user's own setting wins
    assert heap.keep_freed_blocks() is False
