"""Documents a hot folder could not file alone, matched by a person on a local web page.

:mod:`.queue` reads what waits (the failed and held folders, their ``.error.json`` files and
the journal); :mod:`.desk` previews, files, retries and rejects them through the same
planning and upload code as ``pdf2dcm upload``; :mod:`.web` is the page, thin handlers over
the desk (it needs the ``review`` extra: ``pip install 'pdf2dcm[review]'``).
"""

from __future__ import annotations

from .desk import Choice, Desk, Filed, Preview, ReviewOptions
from .queue import Waiting, waiting_documents

__all__ = [
    "Choice",
    "Desk",
    "Filed",
    "Preview",
    "ReviewOptions",
    "Waiting",
    "waiting_documents",
]
