"""Progress reporting that keeps user-interface code out of the core.

Long operations accept ``progress: ProgressCallback | None`` and call it with plain events;
the command line turns them into a progress bar, a library caller into whatever it likes.
Only the standard library is used here, so importing it costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """How far one unit of work (a file, an upload, a job) has come.

    ``total`` is ``None`` when the size is not known in advance (a pipe). ``restart`` is set
    when the work starts over (a retried upload), so a display resets its bar instead of
    showing more than 100 %.
    """

    label: str
    done: int
    total: int | None
    restart: bool = False


ProgressCallback = Callable[[ProgressEvent], None]
