"""Process memory settings for pipeline work: set once, when a stage starts.

**The collector.** Once a stage has imported the platform's libraries (dlt, pyiceberg, pyarrow, FastAPI,
pydantic, ...) the interpreter's cyclic collector tracks ~240k objects that live as long as the process:
modules, classes, functions, schemas. Every full collection walks all of them, 0.1-0.15 s on the
development machine, and one lands at a random point of an ingest every few runs. After one collection
at a quiet moment, :func:`gc.freeze` moves the survivors to the permanent generation that collections
skip (the interpreter's documented tool for this); full collections then take ~15 ms. Frozen objects are
still freed by reference counting when the last reference goes; a reference cycle among them outlives
its use: so callers settle before they open the lake where they can (an in-process catalog server alive
at that moment, a few MB of cycles, would stay until the process exits). Repeated when a stage imported
many new modules (a collection of what is not frozen yet costs little).

**glibc's malloc.** Blocks from 128 KiB up are mapped from the kernel on allocation and unmapped on free,
so the per-batch numpy temporaries of an ingest (2 MB partition codes and sort orders, validation masks)
and zstd's per-page workspace in the Parquet writer are page-faulted and zeroed afresh every time:
~40k page faults per 2.6M-row ingest, a fifth of its CPU on the development VM, where a fault is dear.
Serving blocks up to 32 MiB from the heap (the most every glibc accepts) and trimming it only beyond
512 MiB keeps them for reuse (faults -60%; ``benchmarks/README.md``). Not done when the user set the
allocator's own environment variables, and only where the C library is glibc.

Hand-written because these are a few standard-library and C-library calls; this module decides when.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import sys
import threading

#: Modules imported since the last settle before another collection and freeze is worth it (dlt alone
#: brings ~600).
NEW_MODULES = 100
#: glibc ``mallopt`` parameters and the values set (see the module docstring).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc before 2.35 refuses more than HEAP_MAX_SIZE / 2
TRIM_THRESHOLD_BYTES = 512 << 20
#: Environment variables by which a user tunes glibc's malloc (then it is left as they set it).
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_modules_then = 0
_malloc_done = False
_lock = threading.Lock()


def settle() -> bool:
    """Tune glibc's malloc (once per process), then collect and freeze what survives when at least
    :data:`NEW_MODULES` modules were imported since the last time (the caller has imported what it
    needs). True when this call collected and froze."""
    global _modules_then, _malloc_done
    with _lock:
        if not _malloc_done:
            _malloc_done = True
            keep_freed_blocks()
        now = len(sys.modules)
        if now - _modules_then < NEW_MODULES or not gc.isenabled():
            return False
        _modules_then = now
        gc.collect()
        gc.freeze()
        return True


def keep_freed_blocks() -> bool:
    """Make glibc keep freed blocks up to :data:`MMAP_THRESHOLD_BYTES` for reuse instead of unmapping
    them (see the module docstring). False when not applicable or left to the user's settings."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or any(k in os.environ for k in MALLOC_ENV):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_set = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    trim_set = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    return bool(mmap_set) and bool(trim_set)
