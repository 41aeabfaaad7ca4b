"""Just enough PDF reading to vouch for an input and to find its title and creation date.

A full PDF parser would be a heavy dependency (and slow to import) for four facts: is it a PDF
at all, does it look complete, what is it called and when was it made. They are answered from
the cross-reference data at the end of the file and a handful of objects, so a 500 MB PDF costs
a few reads, not a scan; every read and every decompression is bounded, and anything the reader
cannot follow (encryption, an unknown filter, a damaged table) yields no title, never an error:
the caller then falls back to the file name.

The title is the document information dictionary's ``/Title``; when that is absent or empty,
the XMP metadata's ``dc:title`` (its ``x-default`` entry, else the first). Likewise the creation
date is ``/CreationDate``, else XMP ``xmp:CreateDate``. The information dictionary wins when both
are present because that is what most readers (and pypdf's ``metadata``) show.
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias

from .errors import NotAPdfError

HEADER_WINDOW = 1024
"""Readers accept junk before ``%PDF-`` within the first 1024 bytes; so do we."""
TAIL_WINDOW = 64 * 1024
SEARCH_WINDOW = 1024 * 1024
MAX_STRING_BYTES = 64 * 1024
"""A title is read up to this many bytes of the file; DocumentTitle keeps 1024 bytes anyway."""
MAX_INFLATED = 16 * 1024 * 1024
"""Compressed streams (cross-reference, object and metadata streams) inflate at most this far."""
MAX_XREF_SECTIONS = 64
"""Incremental updates followed through ``/Prev``, newest first."""

_OBJECT_WINDOW = MAX_STRING_BYTES + 4096
_MAX_NESTING = 32
_STARTXREF = re.compile(rb"startxref\s+(\d{1,15})(?!\d)")
_INFO_REF = re.compile(rb"/Info\s+(\d{1,10})\s+(\d{1,5})\s+R")
_ROOT_REF = re.compile(rb"/Root\s+(\d{1,10})\s+(\d{1,5})\s+R")
_XREF_SUBSECTION = re.compile(rb"\s*(\d{1,10})[ \t]+(\d{1,10})[ \t]*\r?\n?")
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])")
_OBJECT_HEADER = re.compile(rb"\s*(\d{1,10})\s+(\d{1,5})\s+obj\b")
_WHITESPACE = b"\x00\t\n\x0c\r "
_DELIMITERS = b"()<>[]{}/%"
_ESCAPES = {
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("("): b"(",
    ord(")"): b")",
    ord("\\"): b"\\",
}
_KEPT_CONTROLS = frozenset("\r\n\x0c\x1b")
"""The control characters DICOM ST allows; every other one becomes a space."""

# PDFDocEncoding (ISO 32000-2, Annex D.3) where it differs from Latin-1; undefined codes -> NUL.
_PDFDOC_DIFFERENCES = {
    0x18: "\u02d8",
    0x19: "\u02c7",
    0x1A: "\u02c6",
    0x1B: "\u02d9",
    0x1C: "\u02dd",
    0x1D: "\u02db",
    0x1E: "\u02da",
    0x1F: "\u02dc",
    0x7F: "\x00",
    0x80: "\u2022",
    0x81: "\u2020",
    0x82: "\u2021",
    0x83: "\u2026",
    0x84: "\u2014",
    0x85: "\u2013",
    0x86: "\u0192",
    0x87: "\u2044",
    0x88: "\u2039",
    0x89: "\u203a",
    0x8A: "\u2212",
    0x8B: "\u2030",
    0x8C: "\u201e",
    0x8D: "\u201c",
    0x8E: "\u201d",
    0x8F: "\u2018",
    0x90: "\u2019",
    0x91: "\u201a",
    0x92: "\u2122",
    0x93: "\ufb01",
    0x94: "\ufb02",
    0x95: "\u0141",
    0x96: "\u0152",
    0x97: "\u0160",
    0x98: "\u0178",
    0x99: "\u017d",
    0x9A: "\u0131",
    0x9B: "\u0142",
    0x9C: "\u0153",
    0x9D: "\u0161",
    0x9E: "\u017e",
    0x9F: "\x00",
    0xA0: "\u20ac",
    0xAD: "\x00",
}
_PDFDOC = "".join(_PDFDOC_DIFFERENCES.get(code, chr(code)) for code in range(256))


@dataclass(frozen=True)
class PdfFacts:
    """What the encoder needs to know about a PDF before wrapping it."""

    title: str | None
    """Control characters DICOM ST forbids are spaces, the ends trimmed; never cut to length."""
    encrypted: bool
    truncated: bool
    """No ``%%EOF`` marker near the end: the PDF is probably cut short, but it is still kept."""
    creation_date: dt.datetime | None = None
    """Aware when the PDF gives its offset from UTC, naive otherwise; None when invalid."""


def may_be_truncated(fp: BinaryIO) -> bool | None:
    """Whether a file that starts as a PDF has no ``%%EOF`` near its end (as
    :attr:`PdfFacts.truncated` says); None when it does not start as a PDF. Reads the head
    and the tail only, so a whole batch can be checked before any of it is written."""
    fp.seek(0)
    if b"%PDF-" not in fp.read(HEADER_WINDOW):
        return None
    fp.seek(0, 2)
    fp.seek(max(0, fp.tell() - HEADER_WINDOW))
    return _no_end_marker(fp.read())


def _no_end_marker(tail: bytes) -> bool:
    return b"%%EOF" not in tail[-HEADER_WINDOW:]


def inspect_pdf(fp: BinaryIO, size: int, name: str) -> PdfFacts:
    """Check the header and read the facts; ``fp`` must be seekable and is left at offset 0.

    Raises
    ------
    NotAPdfError
        When no ``%PDF-`` header is found, or the file is DICOM (an Encapsulated PDF holds
        ``%PDF-`` within its first 1024 bytes too): wrapping such a file would mislabel it.
    """
    from .sniff import looks_like_dicom

    if looks_like_dicom(fp):
        raise NotAPdfError(
            f"{name} is a DICOM file, not a PDF; extract its document first, or upload it as is"
        )
    fp.seek(0)
    head = fp.read(HEADER_WINDOW)
    if b"%PDF-" not in head:
        start = head[:8]
        raise NotAPdfError(
            f"{name} is not a PDF (it starts with {start!r}, not %PDF-); give a PDF file"
        )
    tail_start = max(0, size - TAIL_WINDOW)
    fp.seek(tail_start)
    tail = fp.read()
    truncated = _no_end_marker(tail)
    title, created, encrypted = None, None, b"/Encrypt" in tail
    if not encrypted:
        try:
            title, created, encrypted = _Document(fp, size, tail).metadata()
        except (ValueError, OverflowError, OSError, zlib.error, RecursionError, IndexError):
            # Whatever a damaged PDF does to the reader, the fallback is the file name.
            title, created = None, None
    fp.seek(0)
    return PdfFacts(
        title=None if encrypted else title,
        encrypted=encrypted,
        truncated=truncated,
        creation_date=created,
    )


# --- objects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    number: int
    generation: int


@dataclass(frozen=True)
class _Name:
    value: bytes


_Value: TypeAlias = (
    "bytes | int | float | bool | _Ref | _Name | list[_Value] | dict[bytes, _Value] | None"
)
"""A parsed PDF object: strings are ``bytes``, names ``_Name``, dictionaries keyed by name."""


class _Lexer:
    """Reads PDF objects from a byte string; never raises on bad syntax, gives up with None."""

    def __init__(self, data: bytes, position: int = 0) -> None:
        self.data = data
        self.position = position

    def _skip_space(self) -> None:
        data, length = self.data, len(self.data)
        while self.position < length:
            char = data[self.position]
            if char in _WHITESPACE:
                self.position += 1
            elif char == 0x25:  # %: a comment runs to the end of the line
                while self.position < length and data[self.position] not in b"\r\n":
                    self.position += 1
            else:
                return

    def _token(self) -> bytes:
        start = self.position
        while (
            self.position < len(self.data)
            and self.data[self.position] not in _WHITESPACE
            and self.data[self.position] not in _DELIMITERS
        ):
            self.position += 1
        return self.data[start : self.position]

    def keyword(self) -> bytes:
        self._skip_space()
        return self._token()

    def value(self, depth: int = 0) -> _Value:
        """The next object; None for ``null`` and for anything unreadable."""
        if depth > _MAX_NESTING:
            raise ValueError("objects nested too deep")
        self._skip_space()
        data = self.data
        if self.position >= len(data):
            raise ValueError("end of data")
        char = data[self.position : self.position + 1]
        if data.startswith(b"<<", self.position):
            return self._dictionary(depth)
        if char == b"<":
            return self._hex_string()
        if char == b"(":
            return self._literal_string()
        if char == b"[":
            self.position += 1
            items: list[_Value] = []
            while True:
                self._skip_space()
                if data[self.position : self.position + 1] in (b"]", b""):
                    self.position += 1
                    return items
                items.append(self.value(depth + 1))
        if char == b"/":
            self.position += 1
            return _Name(_unescape_name(self._token()))
        if char in b")>]}{":
            self.position += 1
            return None
        token = self._token()
        if not token:
            self.position += 1
            return None
        return self._number_or_reference(token)

    def _number_or_reference(self, token: bytes) -> _Value:
        if token in (b"true", b"false"):
            return token == b"true"
        if re.fullmatch(rb"\d{1,10}", token):
            saved = self.position
            generation = self.keyword()
            if re.fullmatch(rb"\d{1,5}", generation) and self.keyword() == b"R":
                return _Ref(int(token), int(generation))
            self.position = saved
            return int(token)
        if re.fullmatch(rb"[+-]?\d{1,15}", token):
            return int(token)
        if re.fullmatch(rb"[+-]?\d{0,15}\.\d{0,15}", token) and token.strip(b"+-."):
            return float(token)
        return None

    def _dictionary(self, depth: int) -> dict[bytes, _Value]:
        self.position += 2
        entries: dict[bytes, _Value] = {}
        while True:
            self._skip_space()
            if self.data.startswith(b">>", self.position) or self.position >= len(self.data):
                self.position += 2
                return entries
            key = self.value(depth + 1)
            if not isinstance(key, _Name):
                continue
            entries.setdefault(key.value, self.value(depth + 1))

    def _hex_string(self) -> bytes:
        end = self.data.find(b">", self.position)
        if end < 0:
            end = len(self.data)
        digits = re.sub(rb"[^0-9A-Fa-f]", b"", self.data[self.position + 1 : end])
        self.position = end + 1
        if len(digits) % 2:
            digits += b"0"
        return bytes.fromhex(digits.decode("ascii"))

    def _literal_string(self) -> bytes | None:
        """A ``(...)`` string with its escapes resolved; cut at MAX_STRING_BYTES of input."""
        data = self.data
        opening = self.position
        out = bytearray()
        depth = 0
        position = self.position + 1
        end = min(len(data), position + MAX_STRING_BYTES)
        while position < end:
            char = data[position]
            if char == 0x5C:  # backslash
                following = data[position + 1 : position + 2]
                if not following:
                    position += 1
                    break
                code = following[0]
                if code in _ESCAPES:
                    out += _ESCAPES[code]
                    position += 2
                elif 0x30 <= code <= 0x37:
                    octal = re.match(rb"[0-7]{1,3}", data[position + 1 : position + 4])
                    digits = octal.group(0) if octal else following
                    out.append(int(digits, 8) & 0xFF)
                    position += 1 + len(digits)
                elif following in b"\r\n":
                    position += 2
                    if following == b"\r" and data[position : position + 1] == b"\n":
                        position += 1
                else:
                    # An unknown escape (\8, \9, \q): the backslash is ignored (ISO 32000 7.3.4.2).
                    position += 1
                continue
            if char == 0x28:
                depth += 1
            elif char == 0x29:
                if depth == 0:
                    self.position = position + 1
                    return bytes(out)
                depth -= 1
            elif char == 0x0D:
                # An end of line inside a string reads as a single LF.
                out.append(0x0A)
                position += 2 if data[position + 1 : position + 2] == b"\n" else 1
                continue
            out.append(char)
            position += 1
        self.position = position
        if position >= len(data) and len(data) - opening <= MAX_STRING_BYTES:
            return None  # the data ended before the string did: not a string
        return bytes(out)


def _unescape_name(token: bytes) -> bytes:
    return re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), token)


@dataclass
class _Stream:
    dictionary: dict[bytes, _Value]
    raw: bytes


_Entry = tuple[int, int, int]
"""(type, field 2, field 3) as in a cross-reference stream: 1 = offset, 2 = in object stream."""


@dataclass(frozen=True)
class _TableSection:
    """A classic ``xref`` section: entries are read from the file when asked for."""

    subsections: tuple[tuple[int, int, int], ...]
    """(first number, count, file offset of the first entry)."""

    def lookup(self, fp: BinaryIO, number: int) -> _Entry | None:
        for first, count, entries in self.subsections:
            if first <= number < first + count:
                fp.seek(entries + 20 * (number - first))
                match = _XREF_ENTRY.match(fp.read(18))
                if match is None:
                    return (0, 0, 0)  # unreadable: look for the object itself
                kind = 1 if match.group(3) == b"n" else 0
                return kind, int(match.group(1)), int(match.group(2))
        return None


@dataclass(frozen=True)
class _StreamSection:
    """A cross-reference stream, decoded; rows are read when asked for."""

    data: bytes
    widths: tuple[int, int, int]
    subsections: tuple[tuple[int, int, int], ...]
    """(first number, count, index of the first row)."""

    def lookup(self, _fp: BinaryIO, number: int) -> _Entry | None:
        w0, w1, w2 = self.widths
        row_length = w0 + w1 + w2
        for first, count, row in self.subsections:
            if first <= number < first + count:
                start = (row + number - first) * row_length
                fields = self.data[start : start + row_length]
                if len(fields) < row_length:
                    return None
                kind = int.from_bytes(fields[:w0], "big") if w0 else 1
                second = int.from_bytes(fields[w0 : w0 + w1], "big")
                return kind, second, int.from_bytes(fields[w0 + w1 :], "big")
        return None


class _Document:
    """Objects of one PDF, found through its cross-reference data (tables or streams)."""

    def __init__(self, fp: BinaryIO, size: int, tail: bytes) -> None:
        self.fp, self.size, self.tail = fp, size, tail
        self.sections: list[_TableSection | _StreamSection] = []
        """Newest first, as incremental updates override older sections."""
        self.trailer: dict[bytes, _Value] = {}
        self.object_streams: dict[int, dict[int, bytes]] = {}
        self._load_cross_references()

    # -- what the caller wants ------------------------------------------------------------

    def metadata(self) -> tuple[str | None, dt.datetime | None, bool]:
        """(title, creation date, encrypted)."""
        if b"Encrypt" in self.trailer:
            return None, None, True
        info = self._dictionary(self.trailer.get(b"Info") or self._fallback_ref(_INFO_REF))
        title = _clean(_text(self._resolve(info.get(b"Title"))))
        created = _pdf_date(_text(self._resolve(info.get(b"CreationDate"))))
        if title is None or created is None:
            xmp = self._xmp()
            if xmp is not None:
                title = title or _clean(_xmp_title(xmp))
                created = created or _xmp_date(xmp)
        return title, created, False

    def _xmp(self) -> str | None:
        catalog = self._dictionary(self.trailer.get(b"Root") or self._fallback_ref(_ROOT_REF))
        reference = catalog.get(b"Metadata")
        if not isinstance(reference, _Ref):
            return None
        stream = self._stream(reference)
        data = None if stream is None else _decoded(stream)
        return None if data is None else data.decode("utf-8", errors="replace")

    # -- cross-reference data -------------------------------------------------------------

    def _load_cross_references(self) -> None:
        starts = list(_STARTXREF.finditer(self.tail))
        queue = [int(starts[-1].group(1))] if starts else []
        seen: set[int] = set()
        while queue and len(seen) < MAX_XREF_SECTIONS:
            offset = queue.pop(0)
            if offset in seen or not 0 <= offset < self.size:
                continue
            seen.add(offset)
            trailer = self._read_section(offset)
            for key, value in trailer.items():
                self.trailer.setdefault(key, value)
            following = [trailer.get(b"XRefStm"), trailer.get(b"Prev")]
            queue[:0] = [value for value in following if isinstance(value, int)]

    def _read_section(self, offset: int) -> dict[bytes, _Value]:
        """Register one cross-reference section; its trailer dictionary (empty if unreadable)."""
        self.fp.seek(offset)
        chunk = self.fp.read(_OBJECT_WINDOW)
        if chunk.startswith(b"xref"):
            return self._read_table(offset + 4)
        stream = self._parse_stream_at(chunk, offset)
        if stream is None or _name(stream.dictionary.get(b"Type")) != b"XRef":
            return {}
        self._read_xref_stream(stream)
        return stream.dictionary

    def _read_table(self, position: int) -> dict[bytes, _Value]:
        subsections: list[tuple[int, int, int]] = []
        while position < self.size and len(subsections) < 100_000:
            self.fp.seek(position)
            match = _XREF_SUBSECTION.match(self.fp.read(64))
            if match is None:
                break
            first, count = int(match.group(1)), int(match.group(2))
            subsections.append((first, count, position + match.end()))
            position += match.end() + 20 * count
        self.sections.append(_TableSection(tuple(subsections)))
        self.fp.seek(position)
        rest = self.fp.read(TAIL_WINDOW)
        at = rest.find(b"trailer")
        if at < 0:
            return {}
        trailer = _Lexer(rest, at + len(b"trailer")).value()
        return trailer if isinstance(trailer, dict) else {}

    def _read_xref_stream(self, stream: _Stream) -> None:
        data = _decoded(stream)
        widths = stream.dictionary.get(b"W")
        if data is None or not isinstance(widths, list) or len(widths) != 3:
            return
        w0, w1, w2 = (w if isinstance(w, int) and 0 <= w <= 8 else -1 for w in widths)
        if min(w0, w1, w2) < 0 or w1 == 0:
            return
        index = stream.dictionary.get(b"Index")
        size = stream.dictionary.get(b"Size")
        if not isinstance(index, list):
            index = [0, size]
        subsections, row = [], 0
        for first, count in zip(index[::2], index[1::2], strict=False):
            if not isinstance(first, int) or not isinstance(count, int) or count < 0:
                return
            subsections.append((first, count, row))
            row += count
        self.sections.append(_StreamSection(data, (w0, w1, w2), tuple(subsections)))

    def _entry(self, number: int) -> _Entry | None:
        for section in self.sections:
            entry = section.lookup(self.fp, number)
            if entry is not None:
                return entry
        return None

    # -- objects ----------------------------------------------------------------------------

    def _fallback_ref(self, pattern: re.Pattern[bytes]) -> _Ref | None:
        """A trailer key found by pattern in the last stretch, when the tables are unreadable."""
        found = list(pattern.finditer(self.tail))
        if not found:
            return None
        return _Ref(int(found[-1].group(1)), int(found[-1].group(2)))

    def _object(self, reference: _Ref) -> _Value:
        """The object itself (a stream gives its dictionary); None when it cannot be found."""
        entry = self._entry(reference.number)
        if entry is not None and entry[0] == 2:
            data = self._from_object_stream(entry[1], reference.number)
            if data is not None:
                return _Lexer(data).value()
        located = self._locate(reference, entry)
        if located is None:
            return None
        _offset, chunk, body = located
        return _Lexer(chunk, body).value()

    def _locate(self, reference: _Ref, entry: _Entry | None) -> tuple[int, bytes, int] | None:
        """(file offset, the bytes from there, where the object's body starts in them)."""
        header = re.compile(rb"\s*%d\s+%d\s+obj\b" % (reference.number, reference.generation))
        if entry is not None and entry[0] == 1 and 0 <= entry[1] < self.size:
            self.fp.seek(entry[1])
            chunk = self.fp.read(_OBJECT_WINDOW)
            match = header.match(chunk)
            if match is not None:
                return entry[1], chunk, match.end()
        anywhere = re.compile(
            rb"(?<![0-9])%d\s+%d\s+obj\b" % (reference.number, reference.generation)
        )
        for start in sorted({max(0, self.size - SEARCH_WINDOW), 0}, reverse=True):
            self.fp.seek(start)
            found = list(anywhere.finditer(self.fp.read(SEARCH_WINDOW)))
            if found:
                offset = start + found[-1].start()
                self.fp.seek(offset)
                return offset, self.fp.read(_OBJECT_WINDOW), found[-1].end() - found[-1].start()
        return None

    def _stream(self, reference: _Ref) -> _Stream | None:
        located = self._locate(reference, self._entry(reference.number))
        return None if located is None else self._parse_stream_at(located[1], located[0])

    def _parse_stream_at(self, chunk: bytes, offset: int) -> _Stream | None:
        """The stream object starting at ``offset`` (``chunk`` holds its first bytes)."""
        header = _OBJECT_HEADER.match(chunk)
        if header is None:
            return None
        lexer = _Lexer(chunk, header.end())
        dictionary = lexer.value()
        if not isinstance(dictionary, dict) or lexer.keyword() != b"stream":
            return None
        start = lexer.position
        start += 2 if chunk[start : start + 2] == b"\r\n" else 1
        length = dictionary.get(b"Length")
        if isinstance(length, _Ref):
            length = self._object(length)
        self.fp.seek(offset + start)
        if isinstance(length, int) and 0 <= length <= MAX_INFLATED:
            raw = self.fp.read(length)
        else:
            raw = self.fp.read(MAX_INFLATED)
            end = raw.find(b"endstream")
            if end < 0:
                return None
            raw = raw[:end].rstrip(b"\r\n")
        return _Stream(dictionary, raw)

    def _from_object_stream(self, number: int, wanted: int) -> bytes | None:
        if number not in self.object_streams:
            self.object_streams[number] = {}
            self.object_streams[number] = self._read_object_stream(number)
        return self.object_streams[number].get(wanted)

    def _read_object_stream(self, number: int) -> dict[int, bytes]:
        stream = self._stream(_Ref(number, 0))
        data = None if stream is None else _decoded(stream)
        if stream is None or data is None:
            return {}
        first = stream.dictionary.get(b"First")
        count = stream.dictionary.get(b"N")
        if not isinstance(first, int) or not isinstance(count, int) or first < 0:
            return {}
        numbers = re.findall(rb"\d+", data[:first])[: 2 * count]
        pairs = [(int(a), int(b)) for a, b in zip(numbers[::2], numbers[1::2], strict=False)]
        objects: dict[int, bytes] = {}
        for index, (object_number, relative) in enumerate(pairs):
            end = pairs[index + 1][1] if index + 1 < len(pairs) else len(data) - first
            objects.setdefault(object_number, data[first + relative : first + end])
        return objects

    def _resolve(self, value: _Value) -> _Value:
        for _hop in range(8):
            if not isinstance(value, _Ref):
                break
            value = self._object(value)
        return value

    def _dictionary(self, value: _Value) -> dict[bytes, _Value]:
        resolved = self._resolve(value)
        return resolved if isinstance(resolved, dict) else {}


def _name(value: _Value) -> bytes | None:
    return value.value if isinstance(value, _Name) else None


def _decoded(stream: _Stream) -> bytes | None:
    """The stream's data through its filters: none, or FlateDecode (with a PNG predictor)."""
    filters = stream.dictionary.get(b"Filter")
    parameters = stream.dictionary.get(b"DecodeParms")
    if isinstance(filters, list):
        filters = filters[0] if len(filters) == 1 else None
        parameters = parameters[0] if isinstance(parameters, list) and parameters else parameters
    if filters is None and b"Filter" not in stream.dictionary:
        return stream.raw
    if _name(filters) not in (b"FlateDecode", b"Fl"):
        return None
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(stream.raw, MAX_INFLATED)
    except zlib.error:
        return None
    if isinstance(parameters, dict):
        predictor = parameters.get(b"Predictor")
        if isinstance(predictor, int) and predictor >= 10:
            columns = parameters.get(b"Columns")
            return _unpredict(data, columns if isinstance(columns, int) else 1)
        if predictor not in (None, 1):
            return None
    return data


def _unpredict(data: bytes, columns: int) -> bytes | None:
    """Undo PNG row predictors, one byte per sample (as cross-reference streams use them).

    The Up predictor, by far the most common, adds rows bytewise without carries: done on
    whole rows as integers, so a table of 100 000 objects costs milliseconds.
    """
    if not 0 < columns <= 1024:
        return None
    row_length = columns + 1
    low = int.from_bytes(b"\x7f" * columns, "big")
    high = int.from_bytes(b"\x80" * columns, "big")
    previous = bytes(columns)
    out = bytearray()
    for start in range(0, len(data) - row_length + 1, row_length):
        kind, row = data[start], data[start + 1 : start + row_length]
        if kind == 2:
            above, here = int.from_bytes(previous, "big"), int.from_bytes(row, "big")
            total = ((above & low) + (here & low)) ^ ((above ^ here) & high)
            row = total.to_bytes(columns, "big")
        elif kind != 0:
            decoded = _unpredict_row(kind, bytearray(row), previous)
            if decoded is None:
                return None
            row = decoded
        out += row
        previous = row
    return bytes(out)


def _unpredict_row(kind: int, row: bytearray, previous: bytes) -> bytes | None:
    for i in range(len(row)):
        left = row[i - 1] if i else 0
        up = previous[i]
        up_left = previous[i - 1] if i else 0
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            estimate = left + up - up_left
            distances = (abs(estimate - left), abs(estimate - up), abs(estimate - up_left))
            row[i] = (row[i] + (left, up, up_left)[distances.index(min(distances))]) & 0xFF
        else:
            return None
    return bytes(row)


# --- text and dates --------------------------------------------------------------------------


def _text(value: _Value) -> str | None:
    """A PDF text string: UTF-16BE or UTF-8 with their byte order marks, else PDFDocEncoding."""
    if not isinstance(value, bytes):
        return None
    if value.startswith(b"\xfe\xff"):
        return value[2:].decode("utf-16-be", errors="replace")
    if value.startswith(b"\xef\xbb\xbf"):
        return value[3:].decode("utf-8", errors="replace")
    return value.decode("latin-1").translate(_PDFDOC_TRANSLATION)


_PDFDOC_TRANSLATION = {code: _PDFDOC[code] for code in range(256) if _PDFDOC[code] != chr(code)}


def _clean(text: str | None) -> str | None:
    """Control characters ST does not allow become spaces; the ends are trimmed; empty is None."""
    if text is None:
        return None
    cleaned = "".join(
        " " if (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) and c not in _KEPT_CONTROLS else c
        for c in text
    ).strip()
    return cleaned or None


_PDF_DATE = re.compile(
    r"(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?"
    r"(?:([Zz+-])(?:(\d{2})(?:'?(\d{2})'?)?)?)?\s*"
)
_XMP_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?"
    r"(?:([Zz+-])(?:(\d{2}):?(\d{2}))?)?)?)?)?\s*"
)


def _pdf_date(text: str | None) -> dt.datetime | None:
    """``D:YYYYMMDDHHmmSSOHH'mm'`` and its shorter forms (ISO 32000 7.9.4)."""
    if text is None:
        return None
    match = _PDF_DATE.fullmatch(text.strip())
    return None if match is None else _date_from(match.groups())


def _date_from(fields: tuple[str | None, ...]) -> dt.datetime | None:
    year, month, day, hour, minute, second, sign, offset_hours, offset_minutes = fields
    assert year is not None
    if not 1000 <= int(year) <= 2999:
        return None
    zone = None
    if sign is not None:
        if sign in "Zz":
            zone = dt.timezone.utc
        else:
            minutes = int(offset_hours or 0) * 60 + int(offset_minutes or 0)
            if int(offset_minutes or 0) > 59:
                return None
            minutes = -minutes if sign == "-" else minutes
            if not -12 * 60 <= minutes <= 14 * 60:
                return None
            zone = dt.timezone(dt.timedelta(minutes=minutes))
    try:
        return dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError:
        return None


def _xmp_date(xmp: str) -> dt.datetime | None:
    match = re.search(r"<xmp:CreateDate>\s*([^<]*)</xmp:CreateDate>", xmp) or re.search(
        r"\sxmp:CreateDate\s*=\s*[\"']([^\"']*)[\"']", xmp
    )
    if match is None:
        return None
    date = _XMP_DATE.fullmatch(match.group(1).strip())
    return None if date is None else _date_from(date.groups())


def _xmp_title(xmp: str) -> str | None:
    """``dc:title``'s ``x-default`` alternative, else its first one."""
    block = re.search(r"<dc:title\b[^>]*>(.*?)</dc:title>", xmp, re.DOTALL)
    if block is None:
        return None
    items = re.findall(r"<rdf:li\b([^>]*)>(.*?)</rdf:li>", block.group(1), re.DOTALL)
    if not items:
        return None
    chosen = next((text for attributes, text in items if "x-default" in attributes), items[0][1])
    import html

    return html.unescape(chosen)
