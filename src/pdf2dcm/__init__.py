"""pdf2dcm: PDF files as conformant DICOM Encapsulated PDF objects, to and from Orthanc.

The public API is re-exported lazily so that ``import pdf2dcm`` (and so ``pdf2dcm --version``)
does not pay for pydicom or requests until they are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .client import OrthancClient
    from .config import Settings, resolve_settings
    from .dicom import EncodeResult, encode_pdf, read_reference
    from .extract import ExtractResult, extract_pdf
    from .fetch import FetchResult, fetch_all, fetch_pdf
    from .identity import ReferenceAttributes
    from .jobs import JobState, JobStatus, wait_for_job
    from .upload import UploadOptions, UploadResult, upload_file

_LAZY = {
    "EncodeResult": "dicom",
    "ExtractResult": "extract",
    "ReferenceAttributes": "identity",
    "encode_pdf": "dicom",
    "extract_pdf": "extract",
    "read_reference": "dicom",
    "OrthancClient": "client",
    "Settings": "config",
    "resolve_settings": "config",
    "FetchResult": "fetch",
    "fetch_all": "fetch",
    "fetch_pdf": "fetch",
    "JobState": "jobs",
    "JobStatus": "jobs",
    "wait_for_job": "jobs",
    "UploadOptions": "upload",
    "UploadResult": "upload",
    "upload_file": "upload",
}

__all__ = [
    "EncodeResult",
    "ExtractResult",
    "FetchResult",
    "JobState",
    "JobStatus",
    "OrthancClient",
    "ReferenceAttributes",
    "Settings",
    "UploadOptions",
    "UploadResult",
    "__version__",
    "encode_pdf",
    "extract_pdf",
    "fetch_all",
    "fetch_pdf",
    "read_reference",
    "resolve_settings",
    "upload_file",
    "wait_for_job",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pdf2dcm' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
