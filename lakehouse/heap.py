"""A full garbage collection after a stage's libraries are imported, then their objects are left out of
later ones.

Once a stage has imported the platform's libraries (dlt, pyiceberg, pyarrow, FastAPI, pydantic, ...) the
interpreter's cyclic collector tracks ~240k objects that live as long as the process: modules, classes,
functions, schemas. Every full collection walks all of them, 0.1-0.15 s on the development machine, and
one lands at a random point of an ingest every few runs (measured: ``benchmarks/README.md``). After one
collection at a quiet moment, :func:`gc.freeze` moves the survivors to the permanent generation that
collections skip (the interpreter's documented tool for exactly this); full collections then take
~15 ms. Objects frozen here are still freed by reference counting when the last reference goes; only a
reference cycle among them would outlive the process, and they are the process's start-up state.

Hand-written because it is two calls of the standard library; this module only decides when: at a
stage's start, when many modules were imported since the last time (a collection of what is not yet
frozen costs little, but there is no reason to repeat it per stage).
"""

from __future__ import annotations

import gc
import sys
import threading

#: Modules imported since the last settle before another one is worth it (dlt alone brings ~600).
NEW_MODULES = 100

_modules_then = 0
_lock = threading.Lock()


def settle() -> bool:
    """Collect and freeze what survives when at least :data:`NEW_MODULES` modules were imported since the
    last time (the caller has imported what it needs). True when this call did it."""
    global _modules_then
    with _lock:
        now = len(sys.modules)
        if now - _modules_then < NEW_MODULES or not gc.isenabled():
            return False
        _modules_then = now
        gc.collect()
        gc.freeze()
        return True
