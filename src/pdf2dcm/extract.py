"""The PDF back out of an Encapsulated PDF object, byte for byte as it went in.

pydicom parses the header with the document deferred, and the PDF is copied from the file
offset it records, so memory stays flat for any size.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import dcmread

from .constants import PDF_MIME_TYPE
from .errors import InputError, NotEncapsulatedPdfError
from .files import CHUNK_SIZE, PathLike, atomic_output, display_name, hashed_blocks, open_input
from .progress import ProgressCallback
from .tags import tag_name

_DOCUMENT_TAG = 0x00420011
_DOCUMENT_LENGTH_TAG = 0x00420015
_DEFER_SIZE = 64 * 1024


@dataclass(frozen=True)
class ExtractResult:
    """The PDF that came out, so a caller can verify it."""

    output: str | None
    size: int
    sha256: str


def _copy_pdf(
    pdf: BinaryIO, out: BinaryIO, size: int, name: str, progress: ProgressCallback | None
) -> str:
    digest = hashlib.sha256()
    for block in hashed_blocks(pdf, size, digest, CHUNK_SIZE, name, progress, _shrank(name)):
        out.write(block)
    return digest.hexdigest()


def _shrank(name: str) -> Callable[[int], Exception]:
    def error(_got: int) -> Exception:
        return InputError(f"{name} shrank while being read; is another program writing it?")

    return error


def read_header(source: BinaryIO, name: str) -> Dataset:
    """The dataset with large values (the document) left unread, as offsets into ``source``."""
    try:
        return dcmread(source, defer_size=_DEFER_SIZE, stop_before_pixels=True)
    except InvalidDicomError:
        raise InputError(
            f"{name} is not a DICOM file (no DICM prefix after the preamble); give a .dcm file"
        ) from None
    except (OSError, EOFError, ValueError, KeyError, struct.error) as exc:
        raise InputError(f"{name} is not a readable DICOM file ({exc})") from exc


def extract_pdf(
    source: PathLike | BinaryIO,
    destination: PathLike | BinaryIO,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    source_name: str | None = None,
) -> ExtractResult:
    """Write the PDF held in an Encapsulated PDF object, byte for byte as it went in.

    The PDF's length is EncapsulatedDocumentLength when present (the value length, or one
    less when a pad byte was added); without it only a single trailing 0x00 pad is removed.
    Nothing else is ever cut, so a PDF that happens to end in a newline keeps it.

    Raises
    ------
    InputError
        Not DICOM; NotEncapsulatedPdfError when it holds no PDF or its lengths disagree.
    """
    name = source_name or display_name(source)
    with open_input(source, name=name) as (handle, size):
        if size == 0:
            raise InputError(f"{name} is empty; give a DICOM file")
        ds = read_header(handle, name)
        document, offset, value_length = _locate_document(ds, name, handle)
        length = _pdf_length(ds, document, offset, value_length, name)
        document.seek(offset)
        output = None if not isinstance(destination, (str, os.PathLike)) else destination
        with atomic_output(destination, overwrite=overwrite) as out:
            digest = _copy_pdf(document, out, length, name, progress)
    return ExtractResult(
        output=None if output is None else os.fspath(output), size=length, sha256=digest
    )


def _locate_document(ds: Dataset, name: str, handle: BinaryIO) -> tuple[BinaryIO, int, int]:
    """Where the document's value lies: in the file itself, or in memory when pydicom read it."""
    if _DOCUMENT_TAG not in ds:
        sop_class = ds.get("SOPClassUID")
        what = getattr(sop_class, "name", None) or sop_class or "an object without SOPClassUID"
        raise NotEncapsulatedPdfError(
            f"{name} is {what}, not an Encapsulated PDF; it holds no document to extract"
        )
    mime = ds.get("MIMETypeOfEncapsulatedDocument")
    if mime is None or str(mime).strip().lower() != PDF_MIME_TYPE:
        raise NotEncapsulatedPdfError(
            f"{name} holds a document of MIME type {str(mime or 'unknown')!r}, not application/pdf"
        )
    raw = ds.get_item(_DOCUMENT_TAG, keep_deferred=True)
    deflated = ds.file_meta.get("TransferSyntaxUID") == "1.2.840.10008.1.2.1.99"
    if isinstance(raw, RawDataElement) and raw.value is None and not deflated:
        if raw.length == 0xFFFFFFFF:
            raise NotEncapsulatedPdfError(
                f"{name}: EncapsulatedDocument has undefined length, which a PDF object may not use"
            )
        return handle, raw.value_tell, raw.length
    # Small documents (and any in a deflated file) were read by pydicom itself.
    value: bytes = ds.EncapsulatedDocument or b""
    return io.BytesIO(value), 0, len(value)


def _pdf_length(ds: Dataset, document: BinaryIO, offset: int, value_length: int, name: str) -> int:
    declared = ds.get(_DOCUMENT_LENGTH_TAG)
    if declared is not None and declared.value not in (None, ""):
        length = int(declared.value)
        if length in (value_length, value_length - 1):
            return length
        raise NotEncapsulatedPdfError(
            f"{name}: {tag_name(_DOCUMENT_LENGTH_TAG)} says {length} bytes but the document "
            f"holds {value_length}; the file is inconsistent, so nothing was extracted"
        )
    if value_length and value_length % 2 == 0:
        document.seek(offset + value_length - 1)
        if document.read(1) == b"\x00":
            return value_length - 1
    return value_length
