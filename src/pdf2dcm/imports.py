"""pydicom and pynetdicom, imported once and whole before any thread uses them.

Both are imported lazily, where a document first needs them, to keep start-up short; but
that first use may come in several worker threads at once (a batch upload, the hot folder,
``ls``). Two threads importing one package's circular modules at the same moment can each
find the other's half-made module: Python then raises ``ImportError: ... partially
initialized module``. Every function-level import of either package is preceded by a call
here, which imports the package whole, under one lock, the first time.
"""

from __future__ import annotations

import importlib
import threading

_LOCK = threading.Lock()
_loaded: set[str] = set()


def load_pydicom() -> None:
    """Import pydicom whole (once, under the lock) before a function imports from it."""
    _load("pydicom", ("pydicom", "pydicom.charset", "pydicom.values", "pydicom.uid"))


def load_pynetdicom() -> None:
    """Import pynetdicom (and pydicom) whole before a function imports from it."""
    _load("pynetdicom", ("pydicom", "pydicom.charset", "pydicom.values", "pynetdicom"))


def _load(name: str, modules: tuple[str, ...]) -> None:
    if name in _loaded:
        return
    with _LOCK:
        if name in _loaded:
            return
        for module in modules:
            importlib.import_module(module)
        _loaded.add(name)
