"""pydicom and pynetdicom, imported once and whole before any thread uses them.

Both are imported lazily, where a document first needs them, to keep start-up short; but
that first use may come in several worker threads at once (a batch upload, the hot folder,
``ls``). Two threads importing one package's circular modules at the same moment can each
find the other's half-made module: Python then raises ``ImportError: ... partially
initialized module``. Every function-level import of either package is preceded by a call
here, which imports the package whole, under one lock, the first time.

pydicom imports requests (about 50 ms) only to be able to download its own test files,
which pdf2dcm never does. A process that has not imported requests itself (``encode``,
``extract``, a C-STORE) has pydicom find it missing instead, while no other thread runs:
another thread could be importing requests at that moment and would be refused. (Threads
started outside the ``threading`` module are not counted: a program embedding pdf2dcm that
starts them should import requests first.)
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
        with _requests_left_out():
            for module in modules:
                importlib.import_module(module)
        _loaded.add(name)


@contextmanager
def _requests_left_out() -> Iterator[None]:
    """``import requests`` fails inside the block, when nothing else could import it."""
    if "requests" in sys.modules or threading.active_count() > 1:
        yield
        return
    sys.modules["requests"] = None  # type: ignore[assignment]  # the import system's "absent"
    try:
        yield
    finally:
        if "requests" in sys.modules and sys.modules["requests"] is None:
            del sys.modules["requests"]
