"""pdf2dcm: PDF files as conformant DICOM Encapsulated PDF objects, to and from Orthanc.

The public API is re-exported lazily so that ``import pdf2dcm`` (and so ``pdf2dcm --version``)
does not pay for pydicom or requests until they are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .dicom import (
        EncodeResult,
        ExtractResult,
        ReferenceAttributes,
        encode_pdf,
        extract_pdf,
        read_reference,
    )

_LAZY = {
    "EncodeResult": "dicom",
    "ExtractResult": "dicom",
    "ReferenceAttributes": "dicom",
    "encode_pdf": "dicom",
    "extract_pdf": "dicom",
    "read_reference": "dicom",
}

__all__ = [
    "EncodeResult",
    "ExtractResult",
    "ReferenceAttributes",
    "__version__",
    "encode_pdf",
    "extract_pdf",
    "read_reference",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pdf2dcm' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
