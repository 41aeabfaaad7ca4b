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
from typing import BinaryIO, cast

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import dcmread

from .constants import PDF_MIME_TYPE
from .errors import InputError, NotEncapsulatedPdfError
from .files import CHUNK_SIZE, PathLike, atomic_output, display_name, hashed_blocks, open_input
from .progress import ProgressCallback
from .tags import tag_name

_PREAMBLE_LENGTH = 128
_MAGIC = b"DICM"
_SNIFF_WINDOW = 1024
_VALID_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)
_VRS_WITH_32BIT_LENGTH = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SANE_LEADING_LENGTH = 64 * 1024
"""No element of group 0002 or 0008 that can come first is anywhere near this long."""
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


def looks_like_dicom(handle: BinaryIO) -> bool:
    """Whether a seekable file is DICOM, with or without its preamble; ``handle`` is left at 0.

    True for the 128-byte preamble followed by ``DICM``, and for a file whose first element
    (at offset 0, or at 132 after a preamble whose prefix is damaged) is a plausible leading
    element of group 0002 or 0008 in Explicit or Implicit VR Little Endian: such files are
    DICOM that other tools wrote carelessly, and must never be taken for something else
    (a PDF, because of the document inside them) nor wrapped again.
    """
    handle.seek(0)
    head = handle.read(_SNIFF_WINDOW)
    handle.seek(0)
    if head[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 4] == _MAGIC:
        return True
    return _leading_element(head, 0) or _leading_element(head, _PREAMBLE_LENGTH + 4)


def _leading_element(data: bytes, offset: int) -> bool:
    """Whether ``data[offset:]`` starts with a plausible first element of group 0002 or 0008."""
    header = data[offset : offset + 12]
    if len(header) < 8:
        return False
    group, _element = struct.unpack_from("<HH", header)
    if group not in (0x0002, 0x0008):
        return False
    vr = header[4:6]
    length: int
    if vr in _VALID_VRS:
        if vr in _VRS_WITH_32BIT_LENGTH:
            if len(header) < 12 or header[6:8] != b"\x00\x00":
                return False
            (length,) = struct.unpack_from("<I", header, 8)
            if length == _UNDEFINED_LENGTH:
                return vr in (b"SQ", b"UN")
        else:
            (length,) = struct.unpack_from("<H", header, 6)
    else:
        (length,) = struct.unpack_from("<I", header, 4)
    return length % 2 == 0 and length <= _SANE_LEADING_LENGTH


def read_header(source: BinaryIO, name: str) -> Dataset:
    """The dataset with large values (the document) left unread, as offsets into ``source``.

    Files without the preamble are read too, but only once :func:`looks_like_dicom` has
    vouched for them: pydicom's ``force`` would otherwise parse anything.
    """
    try:
        if not looks_like_dicom(source):
            raise InvalidDicomError("no DICOM prefix and no leading DICOM element")
        return dcmread(
            _readable_layout(source), defer_size=_DEFER_SIZE, stop_before_pixels=True, force=True
        )
    except InvalidDicomError:
        raise InputError(
            f"{name} is not a DICOM file (no DICM prefix after the preamble); give a .dcm file"
        ) from None
    except (OSError, EOFError, ValueError, KeyError, struct.error) as exc:
        raise InputError(f"{name} is not a readable DICOM file ({exc})") from exc


def _readable_layout(source: BinaryIO) -> BinaryIO:
    """``source``, or a view of it that says ``DICM`` where a damaged prefix says otherwise.

    With the prefix missing pydicom would read the preamble as data; the view keeps every
    offset as it is in the file, so deferred values are still found at their real place.
    """
    source.seek(0)
    head = source.read(_SNIFF_WINDOW)
    source.seek(0)
    prefix = head[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 4]
    if prefix == _MAGIC or _leading_element(head, 0):
        return source
    return cast(BinaryIO, _PatchedPrefix(source))


class _PatchedPrefix(io.RawIOBase):
    """A read-only view of a file whose bytes 128-131 read as ``DICM``."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self.name = getattr(inner, "name", None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def read(self, size: int | None = -1) -> bytes:
        start = self._inner.tell()
        data = bytearray(self._inner.read(-1 if size is None else size))
        for index in range(_PREAMBLE_LENGTH, _PREAMBLE_LENGTH + 4):
            if start <= index < start + len(data):
                data[index - start] = _MAGIC[index - _PREAMBLE_LENGTH]
        return bytes(data)


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
