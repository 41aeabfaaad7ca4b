"""The PDF back out of an Encapsulated PDF object, byte for byte as it went in.

A DICOM file given to pdf2dcm may have been written carelessly, damaged or made hostile, so it
is read in two steps. First a walk over its element structure that reads no value: every
length must fit in the file (or in its item), sequences may nest at most
:data:`~pdf2dcm.constants.MAX_SEQUENCE_DEPTH` deep, and the values a parser holds in memory
stay under :data:`MAX_HEADER_BYTES`. A file that fails gets one precise reason ("truncated at
byte N", "declares a length beyond the end of the file"). Only then does pydicom parse it,
with the document deferred, and the PDF is copied from the offset it records: memory stays
flat for any size. A deflated data set is inflated as a stream, never whole.

The usual object (preamble, Explicit VR Little Endian, an application/pdf document of defined
length) is extracted by the same walk alone, without importing pydicom, which would take about
half as long as copying a 500 MiB PDF; anything else goes to the complete reader above.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, cast

from .constants import ENCAPSULATED_PDF_STORAGE, MAX_SEQUENCE_DEPTH, PDF_MIME_TYPE
from .errors import InputError, NotEncapsulatedPdfError, Pdf2DcmError
from .files import PathLike, atomic_output, copy_document, display_name, open_input
from .imports import load_pydicom
from .progress import ProgressCallback
from .sniff import MAGIC as _MAGIC
from .sniff import PREAMBLE_LENGTH as _PREAMBLE_LENGTH
from .sniff import SNIFF_WINDOW as _SNIFF_WINDOW
from .sniff import UNDEFINED_LENGTH as _UNDEFINED_LENGTH
from .sniff import VALID_VRS as _VALID_VRS
from .sniff import VRS_WITH_32BIT_LENGTH as _VRS_WITH_32BIT_LENGTH
from .sniff import leading_element as _leading_element
from .sniff import looks_like_dicom

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.dataset import Dataset

MAX_HEADER_BYTES = 64 * 1024 * 1024
"""What the attributes other than the document may cost in memory (values read, plus 64 bytes
per element); an Encapsulated PDF object's header is a few kilobytes."""
MAX_SHOWN_CHARS = 80
"""A value quoted in a message is cut to this many characters, and its length is given."""

"""No element of group 0002 or 0008 that can come first is anywhere near this long."""
_DOCUMENT_TAG = 0x00420011
_MIME_TYPE_TAG = 0x00420012
_DOCUMENT_LENGTH_TAG = 0x00420015
_SPECIFIC_CHARACTER_SET_TAG = 0x00080005
_DEFER_SIZE = 64 * 1024
_ELEMENT_COST = 64
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_DEFLATED = "1.2.840.10008.1.2.1.99"
_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
_EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_PDF_HEADER = b"%PDF-"
_PDF_HEADER_WINDOW = 1024


@dataclass(frozen=True)
class ExtractResult:
    """The PDF that came out, so a caller can verify it."""

    output: str | None
    size: int
    sha256: str | None
    """None when it was not asked for (``extract_pdf(checksum=False)``)."""


def shown(value: str | bytes) -> str:
    """``value`` as a message quotes it: its repr, cut to ~80 characters with its length given.

    A hostile file can hold a value of 100 MB; an error line must stay one line.
    """
    text = repr(value)
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    unit = "bytes" if isinstance(value, bytes) else "characters"
    return f"{text[:MAX_SHOWN_CHARS]}... ({len(value)} {unit})"


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Keep pydicom's warnings off stderr: what matters in them becomes our own error.

    pydicom warns (rather than raises) about values that break their VR's rules; the walk over
    the structure has already refused what would make the result wrong.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- reading the structure without reading the values ------------------------------------


class _FileReader:
    """The walk's view of a plain file: reads, and skips that never read."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size: int | None = size

    def read(self, count: int) -> bytes:
        return self.handle.read(count)

    def tell(self) -> int:
        return self.handle.tell()

    def skip(self, count: int) -> int:
        """Move ``count`` bytes on; the position reached (clamped to the end of the file)."""
        assert self.size is not None
        return self.handle.seek(min(self.handle.tell() + count, self.size))


class _Inflated(io.RawIOBase):
    """A deflated data set, inflated on demand: read, tell, and seek anywhere.

    Memory holds at most the last :data:`_KEEP` inflated bytes, so short backward seeks (pydicom
    peeks and rewinds a few bytes) are served from them; a longer one starts inflating again
    from the beginning. A seek beyond the end stops at the end, which the walk reports.
    """

    _KEEP = 1024 * 1024
    _STEP = 256 * 1024

    def __init__(self, source: BinaryIO, start: int, name: str) -> None:
        super().__init__()
        self._source, self._start, self._label = source, start, name
        self.name = getattr(source, "name", name)
        self.size: int | None = None
        self._restart()

    def _restart(self) -> None:
        self._source.seek(self._start)
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._window = bytearray()
        self._window_start = 0
        self._position = 0
        self._ended = False
        self.complete = False
        """The deflate stream was seen to its end marker (not cut short)."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def _inflate_more(self) -> bool:
        """Append some inflated bytes to the window; False once the data has ended."""
        if self._ended:
            return False
        pending = self._inflater.unconsumed_tail
        if not pending:
            pending = self._source.read(self._STEP)
            if not pending:
                self._ended = True
                return False
        try:
            self._window += self._inflater.decompress(pending, self._STEP)
        except zlib.error as exc:
            raise InputError(
                f"{self._label}: its deflated data set is damaged ({exc}); "
                "get a complete copy of the file"
            ) from None
        if self._inflater.eof:
            self.complete = self._ended = True
        return True

    def _trim(self) -> None:
        excess = self._position - self._window_start - self._KEEP
        if excess > 0:
            del self._window[:excess]
            self._window_start += excess

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = MAX_HEADER_BYTES
        offset = self._position - self._window_start
        while len(self._window) - offset < size and self._inflate_more():
            pass
        data = bytes(self._window[offset : offset + size])
        self._position += len(data)
        self._trim()
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR):
            raise io.UnsupportedOperation("an inflated data set cannot seek from its end")
        if target < self._window_start:
            self._restart()
        while self._window_start + len(self._window) < target:
            if len(self._window) > self._KEEP:
                drop = len(self._window) - self._KEEP
                del self._window[:drop]
                self._window_start += drop
            if not self._inflate_more():
                break
        self._position = min(target, self._window_start + len(self._window))
        if self._position < target:
            self.size = self._position
        self._trim()
        return self._position

    def skip(self, count: int) -> int:
        return self.seek(count, io.SEEK_CUR)


_Reader = _FileReader | _Inflated


@dataclass(frozen=True)
class _Walked:
    """What the walk learnt about the data set."""

    last_tag: int
    """The last top-level tag before the end (or -1 for an empty data set)."""
    end: int
    """Where the data set ended: the file's size, or the inflated data set's."""


class _Walker:
    """Checks the element structure of a data set, reading headers only."""

    def __init__(self, reader: _Reader, name: str, *, implicit: bool, little: bool) -> None:
        self.reader, self.name = reader, name
        self.implicit = implicit
        self.endian = "<" if little else ">"
        self.spent = 0
        self.inflated = isinstance(reader, _Inflated)
        self.reached_end = False
        """The top-level data set ran to the end of the data (not to pixel data)."""

    def meta(self) -> int:
        """Walk the group 0002 elements (always Explicit VR Little Endian); where they end."""
        while True:
            start = self.reader.tell()
            header = self.reader.read(8)
            if len(header) < 8 or struct.unpack_from("<H", header)[0] != 0x0002:
                self._rewind(start)
                return start
            tag = 0x00020000 | struct.unpack_from("<H", header, 2)[0]
            vr, length = self._vr_and_length(header, tag)
            if length == _UNDEFINED_LENGTH or length > _DEFER_SIZE:
                raise InputError(
                    f"{self.name}: its file meta element {tag_name(tag)} declares "
                    f"{_length_text(length)}, far more than it can hold; the file is damaged"
                )
            self._value(tag, vr, length, None, 0)

    def dataset(self, end: int | None, depth: int) -> int:
        """Walk elements until ``end``, an item delimiter or the end of the data; the last tag."""
        last = -1
        top = depth == 0
        while end is None or self.reader.tell() < end:
            start = self.reader.tell()
            header = self.reader.read(8)
            if not header and top:
                self.reached_end = True
                return last
            if len(header) < 8:
                where = "an element's header" if header else "an item that has no end"
                raise self._truncated(start + len(header), where)
            group, element = struct.unpack_from(self.endian + "HH", header)
            tag = group << 16 | element
            if tag == _ITEM_END or (top and tag in _PIXEL_TAGS):
                return last
            vr, length = self._vr_and_length(header, tag)
            if top and (group == 0 or tag == _SPECIFIC_CHARACTER_SET_TAG) and length > _DEFER_SIZE:
                raise InputError(
                    f"{self.name}: {tag_name(tag)} declares {_length_text(length)}, far more "
                    "than it can hold; the file is damaged"
                )
            self._value(tag, vr, length, end, depth)
            last = tag
        if end is not None and self.reader.tell() != end:
            raise InputError(
                f"{self.name}: an element runs past the end of its item at byte {end}; "
                "the file is damaged"
            )
        return last

    def _vr_and_length(self, header: bytes, tag: int) -> tuple[bytes | None, int]:
        vr = header[4:6]
        if self.implicit or tag >> 16 == 0xFFFE:
            return None, struct.unpack_from(self.endian + "I", header, 4)[0]
        if vr in _VRS_WITH_32BIT_LENGTH:
            extra = self.reader.read(4)
            if len(extra) < 4:
                raise self._truncated(self.reader.tell(), "an element's header")
            return vr, struct.unpack(self.endian + "I", extra)[0]
        if not (b"AA" <= vr <= b"ZZ"):
            # A writer switched to Implicit VR inside the data set; pydicom follows it too.
            return None, struct.unpack_from(self.endian + "I", header, 4)[0]
        return vr, struct.unpack_from(self.endian + "H", header, 6)[0]

    def _value(self, tag: int, vr: bytes | None, length: int, end: int | None, depth: int) -> None:
        sequence = vr == b"SQ" or (vr is None and _dictionary_vr(tag) == "SQ")
        self._charge(_ELEMENT_COST)
        if length == _UNDEFINED_LENGTH:
            if sequence or vr in (None, b"UN"):
                self._sequence(tag, None, depth + 1)
            else:
                self._fragments(tag)
            return
        offset = self.reader.tell()
        self._fits(tag, offset, length, end)
        if sequence:
            self._sequence(tag, offset + length, depth + 1)
            return
        if length <= _DEFER_SIZE:
            self._charge(length)
        self._skip(tag, offset, length)

    def _sequence(self, tag: int, end: int | None, depth: int) -> None:
        if depth > MAX_SEQUENCE_DEPTH:
            raise InputError(
                f"{self.name}: sequences nest more than {MAX_SEQUENCE_DEPTH} deep (in "
                f"{tag_name(tag)} at byte {self.reader.tell()}); pdf2dcm reads at most "
                f"{MAX_SEQUENCE_DEPTH} levels"
            )
        while end is None or self.reader.tell() < end:
            start = self.reader.tell()
            header = self.reader.read(8)
            if len(header) < 8:
                raise self._truncated(start + len(header), f"{tag_name(tag)}, which has no end")
            group, element, length = struct.unpack(self.endian + "HHI", header)
            item = group << 16 | element
            if item == _SEQUENCE_END:
                return
            if item == _ITEM and length == _UNDEFINED_LENGTH:
                self._charge(_ELEMENT_COST)
                self.dataset(None, depth)
                continue
            if item != _ITEM:
                raise InputError(
                    f"{self.name}: {tag_name(tag)} holds something other than an item at byte "
                    f"{start}; the file is damaged"
                )
            offset = self.reader.tell()
            self._fits(tag, offset, length, end)
            self.dataset(offset + length, depth)
        if self.reader.tell() != end:
            raise InputError(
                f"{self.name}: an item of {tag_name(tag)} runs past the end of the sequence "
                f"at byte {end}; the file is damaged"
            )

    def _fragments(self, tag: int) -> None:
        """An undefined-length value that is not a sequence: items of bytes, read into memory."""
        while True:
            start = self.reader.tell()
            header = self.reader.read(8)
            if len(header) < 8:
                raise self._truncated(start + len(header), f"{tag_name(tag)}, which has no end")
            group, element, length = struct.unpack(self.endian + "HHI", header)
            item = group << 16 | element
            if item == _SEQUENCE_END:
                return
            if item != _ITEM or length == _UNDEFINED_LENGTH:
                raise InputError(
                    f"{self.name}: {tag_name(tag)} has an undefined length but no items at "
                    f"byte {start}; the file is damaged"
                )
            offset = self.reader.tell()
            self._fits(tag, offset, length, None)
            self._charge(_ELEMENT_COST + length)
            self._skip(tag, offset, length)

    def _fits(self, tag: int, offset: int, length: int, end: int | None) -> None:
        if end is not None and offset + length > end:
            raise InputError(
                f"{self.name}: {tag_name(tag)} declares a length beyond the end of its item "
                f"({length} bytes at offset {offset}, the item ends at byte {end}); "
                "the file is damaged"
            )
        if self.reader.size is not None and offset + length > self.reader.size:
            raise self._beyond(tag, offset, length, self.reader.size)

    def _skip(self, tag: int, offset: int, length: int) -> None:
        reached = self.reader.skip(length)
        if reached < offset + length:
            raise self._beyond(tag, offset, length, reached)

    def _beyond(self, tag: int, offset: int, length: int, size: int) -> InputError:
        whole = "its inflated data set is" if self.inflated else "file is"
        return InputError(
            f"{self.name}: {tag_name(tag)} declares a length beyond the end of the file "
            f"({length} bytes at offset {offset}, {whole} {size} bytes); the file is truncated "
            "or damaged"
        )

    def _truncated(self, at: int, where: str) -> InputError:
        what = "its inflated data set ends" if self.inflated else "it ends"
        return InputError(
            f"{self.name} is truncated at byte {at}: {what} inside {where}; "
            "get a complete copy of the file"
        )

    def _charge(self, cost: int) -> None:
        self.spent += cost
        if self.spent > MAX_HEADER_BYTES:
            raise InputError(
                f"{self.name}: its attributes other than the document exceed "
                f"{MAX_HEADER_BYTES // (1024 * 1024)} MiB; pdf2dcm does not read such objects"
            )

    def _rewind(self, position: int) -> None:
        if isinstance(self.reader, _FileReader):
            self.reader.handle.seek(position)
        else:
            self.reader.seek(position)


def tag_name(tag: int) -> str:
    """``Keyword (gggg,eeee)``; the dictionary (pydicom) is loaded only when a message needs it."""
    from .tags import tag_name as name

    return name(tag)


def _dictionary_vr(tag: int) -> str | None:
    load_pydicom()
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _length_text(length: int) -> str:
    return "an undefined length" if length == _UNDEFINED_LENGTH else f"{length} bytes"


# --- reading the header ------------------------------------------------------------------


@dataclass
class _Parsed:
    dataset: Dataset
    walked: _Walked
    inflated: bool
    open_document: Callable[[], BinaryIO]
    """A stream in which the deferred values' offsets (``value_tell``) are valid."""


def read_header(source: BinaryIO, name: str) -> Dataset:
    """The dataset with large values (the document) left unread, as offsets into ``source``.

    Files without the preamble are read too, but only once :func:`looks_like_dicom` has
    vouched for them: pydicom's ``force`` would otherwise parse anything. The structure is
    checked first (see the module's description), so a damaged file is refused with its
    reason, never half read. In a deflated file the offsets are those of the inflated data
    set, and deferred values cannot be read back through the dataset.

    Raises
    ------
    InputError
        Not DICOM, truncated, lengths that lie, sequences too deep, a header too large.
    """
    return _parse(source, name).dataset


def _parse(source: BinaryIO, name: str) -> _Parsed:
    load_pydicom()
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import dcmread, read_dataset

    size = source.seek(0, io.SEEK_END)
    if not looks_like_dicom(source):
        raise InputError(
            f"{name} is not a DICOM file (no DICM prefix after the preamble); give a .dcm file"
        )
    head = source.read(_SNIFF_WINDOW)
    prefixed = head[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 4] == _MAGIC
    meta_start = _PREAMBLE_LENGTH + 4 if prefixed or not _leading_element(head, 0) else 0
    source.seek(meta_start)
    meta_walker = _Walker(_FileReader(source, size), name, implicit=False, little=True)
    dataset_start = meta_walker.meta()
    source.seek(meta_start)
    with quiet_pydicom():
        try:
            meta = FileMetaDataset(
                read_dataset(
                    io.BytesIO(source.read(dataset_start - meta_start)),
                    is_implicit_VR=False,
                    is_little_endian=True,
                )
            )
            syntax = str(meta.get("TransferSyntaxUID", "") or "").strip()
        except Exception as exc:  # pydicom raises many kinds; the walk has vetted the sizes
            raise InputError(
                f"{name} has an unreadable file meta ({shown(str(exc))}); the file is damaged"
            ) from None
    source.seek(dataset_start)
    implicit, little = _encoding(syntax, source.read(6))
    inflated = syntax == _DEFLATED
    reader: _Reader = (
        _Inflated(source, dataset_start, name) if inflated else _FileReader(source, size)
    )
    source.seek(dataset_start)
    walker = _Walker(reader, name, implicit=implicit, little=little)
    last_tag = walker.dataset(None, 0)
    if isinstance(reader, _Inflated) and walker.reached_end and not reader.complete:
        raise InputError(
            f"{name} is truncated at byte {size}: its deflated data set stops mid-stream; "
            "get a complete copy of the file"
        )
    walked = _Walked(last_tag=last_tag, end=reader.tell() if inflated else size)
    with quiet_pydicom():
        try:
            if inflated:
                stream = cast(BinaryIO, _Inflated(source, dataset_start, name))
                dataset = read_dataset(
                    stream,
                    is_implicit_VR=False,
                    is_little_endian=True,
                    defer_size=_DEFER_SIZE,
                    stop_when=lambda tag, _vr, _length: tag in _PIXEL_TAGS,
                )
                dataset.file_meta = meta
            else:
                dataset = dcmread(
                    _readable_layout(source, prefixed, meta_start),
                    defer_size=_DEFER_SIZE,
                    stop_before_pixels=True,
                    force=True,
                )
        except Pdf2DcmError:
            raise
        except Exception as exc:  # pydicom raises many kinds; the walk has vetted the sizes
            raise InputError(
                f"{name} is not a readable DICOM file ({shown(str(exc))}); the file is damaged"
            ) from None

    def open_document() -> BinaryIO:
        if inflated:
            return cast(BinaryIO, _Inflated(source, dataset_start, name))
        return source

    return _Parsed(dataset, walked, inflated, open_document)


def _encoding(syntax: str, first: bytes) -> tuple[bool, bool]:
    """(implicit VR, little endian) of the data set, guessed like pydicom when not declared."""
    if syntax == _IMPLICIT_LITTLE:
        return True, True
    if syntax == _EXPLICIT_BIG:
        return False, False
    if syntax:
        return False, True
    if len(first) == 6 and first[4:6] in _VALID_VRS:
        return False, struct.unpack_from("<H", first)[0] < 1024
    return True, True


def _readable_layout(source: BinaryIO, prefixed: bool, meta_start: int) -> BinaryIO:
    """``source``, or a view of it that says ``DICM`` where a damaged prefix says otherwise.

    With the prefix missing pydicom would read the preamble as data; the view keeps every
    offset as it is in the file, so deferred values are still found at their real place.
    """
    source.seek(0)
    if prefixed or meta_start == 0:
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


# --- extracting ----------------------------------------------------------------------------


def extract_pdf(
    source: PathLike | BinaryIO,
    destination: PathLike | BinaryIO,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    source_name: str | None = None,
    checksum: bool = True,
) -> ExtractResult:
    """Write the PDF held in an Encapsulated PDF object, byte for byte as it went in.

    The PDF's length is EncapsulatedDocumentLength when present (the value length, or one
    less when a pad byte was added); without it only a single trailing 0x00 pad is removed.
    Nothing else is ever cut, so a PDF that happens to end in a newline keeps it. A document
    that is empty or has no ``%PDF-`` in its first 1024 bytes is refused: writing it as a
    ``.pdf`` would mislabel it.

    Raises
    ------
    InputError
        Not DICOM, damaged or truncated; NotEncapsulatedPdfError when it holds no PDF or its
        lengths disagree.
    """
    name = source_name or display_name(source)
    with open_input(source, name=name) as (handle, size):
        if size == 0:
            raise InputError(f"{name} is empty; give a DICOM file")
        document, offset, length = _find_pdf(handle, name)
        document.seek(offset)
        output = None if not isinstance(destination, (str, os.PathLike)) else destination
        with atomic_output(destination, overwrite=overwrite) as out:
            digest = _copy_pdf(document, out, length, name, progress, checksum)
    return ExtractResult(
        output=None if output is None else os.fspath(output), size=length, sha256=digest
    )


def _find_pdf(handle: BinaryIO, name: str) -> tuple[BinaryIO, int, int]:
    """The stream, offset and length of the PDF; every check is made before anything is written."""
    found = _find_plain_pdf(handle, name)
    if found is not None:
        return handle, *found
    with quiet_pydicom():
        try:
            parsed = _parse(handle, name)
            document, offset, value_length = _locate_document(parsed, name)
            length = _pdf_length(parsed.dataset, document, offset, value_length, name)
        except Pdf2DcmError:
            raise
        except Exception as exc:  # converting a damaged value: pydicom raises many kinds
            raise InputError(
                f"{name} is not a readable DICOM file ({shown(str(exc))}); the file is damaged"
            ) from None
    document.seek(offset)
    start = document.read(min(length, _PDF_HEADER_WINDOW))
    if length == 0:
        raise NotEncapsulatedPdfError(f"{name} holds an empty document; there is no PDF in it")
    if _PDF_HEADER not in start:
        raise NotEncapsulatedPdfError(
            f"{name} holds a document that is not a PDF (it starts with {shown(start[:16])}, "
            "not %PDF-); nothing was extracted"
        )
    return document, offset, length


class _Unusual(Exception):
    """Something the plain reader leaves to pydicom's (a construct, or a check that fails)."""


@dataclass(frozen=True)
class _Header:
    vr: bytes
    offset: int
    """Where the value starts in the file."""
    length: int


class _PlainWalker(_Walker):
    """The walk, also noting where each top-level element's value lies.

    It gives up (:class:`_Unusual`) on all that pydicom might read in its own way: a VR that
    is not a standard one (pydicom would switch to Implicit VR), an undefined length other
    than a sequence's, and top-level tags out of order or repeated (pydicom keeps the last).
    """

    def __init__(self, reader: _FileReader, name: str) -> None:
        super().__init__(reader, name, implicit=False, little=True)
        self.elements: dict[int, _Header] = {}
        self._last_top = -1

    def _vr_and_length(self, header: bytes, tag: int) -> tuple[bytes | None, int]:
        vr, length = super()._vr_and_length(header, tag)
        if vr not in _VALID_VRS:
            raise _Unusual
        return vr, length

    def _value(self, tag: int, vr: bytes | None, length: int, end: int | None, depth: int) -> None:
        if vr is None or (length == _UNDEFINED_LENGTH and vr != b"SQ"):
            raise _Unusual
        if depth == 0:
            if tag <= self._last_top:
                raise _Unusual
            self._last_top = tag
            self.elements[tag] = _Header(vr, self.reader.tell(), length)
        super()._value(tag, vr, length, end, depth)

    def value(self, tag: int, vr: bytes, limit: int) -> bytes | None:
        """The value of a top-level element of VR ``vr`` and at most ``limit`` bytes, if any."""
        header = self.elements.get(tag)
        if header is None or header.vr != vr or header.length > limit:
            return None
        reader = cast(_FileReader, self.reader)
        reader.handle.seek(header.offset)
        value = reader.handle.read(header.length)
        return value if len(value) == header.length else None


_PLAIN_SYNTAXES = frozenset({b"1.2.840.10008.1.2.1", b"1.2.840.10008.1.2.1\x00"})
"""Explicit VR Little Endian, as the TransferSyntaxUID's value is written."""
_PDF_MIME_VALUES = frozenset({b"application/pdf", b"application/pdf "})


def _find_plain_pdf(handle: BinaryIO, name: str) -> tuple[int, int] | None:
    """The offset and length of the PDF in the usual object, read without pydicom; else None.

    The usual object, as pdf2dcm and most writers make it, has the preamble, an Explicit VR
    Little Endian data set, a document of defined length and a MIME type of application/pdf.
    Such an object is read here, with the same walk and the same checks, and pydicom is never
    imported; anything else, and every check that fails, is left to the complete reader, so
    that results and messages are exactly its own.
    """
    try:
        size = handle.seek(0, io.SEEK_END)
        handle.seek(0)
        if handle.read(_PREAMBLE_LENGTH + 4)[_PREAMBLE_LENGTH:] != _MAGIC:
            return None
        meta = _PlainWalker(_FileReader(handle, size), name)
        dataset_start = meta.meta()
        if meta.value(0x00020010, b"UI", 64) not in _PLAIN_SYNTAXES:
            return None
        handle.seek(dataset_start)
        walker = _PlainWalker(_FileReader(handle, size), name)
        walker.dataset(None, 0)
        if not walker.reached_end:
            return None
        mime = walker.value(_MIME_TYPE_TAG, b"LO", 64)
        document = walker.elements.get(_DOCUMENT_TAG)
        if mime is None or mime.lower() not in _PDF_MIME_VALUES:
            return None
        if document is None or document.vr != b"OB":
            return None
        length = _plain_length(walker, handle, document)
        if length is None or length == 0:
            return None
        handle.seek(document.offset)
        if _PDF_HEADER not in handle.read(min(length, _PDF_HEADER_WINDOW)):
            return None
    except (_Unusual, Pdf2DcmError, OSError):
        return None
    return document.offset, length


def _plain_length(walker: _PlainWalker, handle: BinaryIO, document: _Header) -> int | None:
    """The PDF's length by the rules of :func:`_pdf_length`; None where they would refuse."""
    if _DOCUMENT_LENGTH_TAG in walker.elements:
        declared = walker.value(_DOCUMENT_LENGTH_TAG, b"UL", 4)
        if declared is None or len(declared) != 4:
            return None
        (length,) = struct.unpack("<I", declared)
        return length if length in (document.length, document.length - 1) else None
    if document.length and document.length % 2 == 0:
        handle.seek(document.offset + document.length - 1)
        if handle.read(1) == b"\x00":
            return document.length - 1
    return document.length


def _copy_pdf(
    pdf: BinaryIO,
    out: BinaryIO,
    size: int,
    name: str,
    progress: ProgressCallback | None,
    checksum: bool,
) -> str | None:
    return copy_document(
        pdf, out, size, label=name, progress=progress, short=_shrank(name), checksum=checksum
    )


def _shrank(name: str) -> Callable[[int], Exception]:
    def error(_got: int) -> Exception:
        return InputError(f"{name} shrank while being read; is another program writing it?")

    return error


def _truncated_before(parsed: _Parsed, tag: int, name: str) -> InputError | None:
    """The error to give when ``tag`` is missing because the data set ends before it."""
    if parsed.walked.last_tag >= tag:
        return None
    what = "its inflated data set ends" if parsed.inflated else "it ends"
    return InputError(
        f"{name} is truncated at byte {parsed.walked.end}: {what} before {tag_name(tag)}; "
        "get a complete copy of the file"
    )


def _stored_length(item: RawDataElement | DataElement) -> int:
    """The value length as stored in the file (for an element pydicom already converted, the
    length of its value)."""
    load_pydicom()
    from pydicom.dataelem import RawDataElement

    if isinstance(item, RawDataElement):
        return item.length
    return len(item.value) if isinstance(item.value, (bytes, str)) else 0


def _small_text(ds: Dataset, tag: int) -> str | None:
    """A short text value, never loading a huge (deferred) one: that is shown by its length."""
    load_pydicom()
    from pydicom.multival import MultiValue

    raw = ds.get_item(tag, keep_deferred=True)
    if raw is None:
        return None
    if raw.value is None and _stored_length(raw) > 0:
        return f"<a value of {_stored_length(raw)} bytes>"
    value = ds[tag].value
    if value is None:
        return None
    if isinstance(value, MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value)


def _locate_document(parsed: _Parsed, name: str) -> tuple[BinaryIO, int, int]:
    """Where the document's value lies: in the file itself, or in memory when pydicom read it."""
    load_pydicom()
    from pydicom.dataelem import RawDataElement

    ds = parsed.dataset
    if _DOCUMENT_TAG not in ds:
        sop_class = _small_text(ds, 0x00080016)
        meta = getattr(ds, "file_meta", None)
        meta_class = None if meta is None else meta.get("MediaStorageSOPClassUID")
        if ENCAPSULATED_PDF_STORAGE in (sop_class, str(meta_class or "")):
            truncated = _truncated_before(parsed, _DOCUMENT_TAG, name)
            if truncated is not None:
                raise truncated
        what = _sop_class_name(sop_class)
        raise NotEncapsulatedPdfError(
            f"{name} is {what}, not an Encapsulated PDF; it holds no document to extract"
        )
    mime = _small_text(ds, _MIME_TYPE_TAG)
    if mime is None:
        truncated = _truncated_before(parsed, _MIME_TYPE_TAG, name)
        if truncated is not None:
            raise truncated
    if mime is None or mime.strip().lower() != PDF_MIME_TYPE:
        raise NotEncapsulatedPdfError(
            f"{name} holds a document of MIME type {shown(mime or 'unknown')}, not application/pdf"
        )
    raw = ds.get_item(_DOCUMENT_TAG, keep_deferred=True)
    if _stored_length(raw) == _UNDEFINED_LENGTH:
        raise NotEncapsulatedPdfError(
            f"{name}: EncapsulatedDocument has undefined length, which a PDF object may not use"
        )
    if isinstance(raw, RawDataElement) and raw.value is None:
        return parsed.open_document(), raw.value_tell, raw.length
    value = ds[_DOCUMENT_TAG].value
    if not isinstance(value, bytes):
        value = b""
    return io.BytesIO(value), 0, len(value)


def _sop_class_name(sop_class: str | None) -> str:
    if sop_class is None:
        return "an object without SOPClassUID"
    load_pydicom()
    from pydicom.uid import UID

    uid = UID(sop_class) if len(sop_class) <= 64 else None
    known = uid.name if uid is not None and uid.is_valid else ""
    return known if known and known != sop_class else shown(sop_class)


def _declared_length(ds: Dataset, name: str) -> int | None:
    """EncapsulatedDocumentLength, if given: one UL value (4 bytes), nothing else."""
    load_pydicom()
    from pydicom.dataelem import RawDataElement
    from pydicom.multival import MultiValue

    raw = ds.get_item(_DOCUMENT_LENGTH_TAG, keep_deferred=True)
    length = 0 if raw is None else _stored_length(raw)
    if raw is None or length == 0:
        return None
    label = tag_name(_DOCUMENT_LENGTH_TAG)
    vr = raw.VR
    if vr not in (None, "UL", "UN"):
        raise NotEncapsulatedPdfError(
            f"{name}: {label} has VR {shown(str(vr))}, not UL; the file is damaged"
        )
    if isinstance(raw, RawDataElement) and length % 4:
        raise NotEncapsulatedPdfError(
            f"{name}: {label} has a {length}-byte value, but a UL value is 4 bytes; "
            "the file is damaged"
        )
    value = ds[_DOCUMENT_LENGTH_TAG].value
    if isinstance(value, bytes):
        endian = "<" if getattr(raw, "is_little_endian", True) else ">"
        value = list(struct.unpack(f"{endian}{len(value) // 4}I", value))
    if isinstance(value, (list, MultiValue)):
        if len(value) != 1:
            raise NotEncapsulatedPdfError(
                f"{name}: {label} holds {len(value)} values, but it must hold one; "
                "the file is damaged"
            )
        value = value[0]
    if not isinstance(value, int):
        raise NotEncapsulatedPdfError(f"{name}: {label} holds no number; the file is damaged")
    return value


def _pdf_length(ds: Dataset, document: BinaryIO, offset: int, value_length: int, name: str) -> int:
    declared = _declared_length(ds, name)
    if declared is not None:
        if declared in (value_length, value_length - 1):
            return declared
        raise NotEncapsulatedPdfError(
            f"{name}: {tag_name(_DOCUMENT_LENGTH_TAG)} says {declared} bytes but the document "
            f"holds {value_length}; the file is inconsistent, so nothing was extracted"
        )
    if value_length and value_length % 2 == 0:
        document.seek(offset + value_length - 1)
        if document.read(1) == b"\x00":
            return value_length - 1
    return value_length
