"""Just enough PDF reading to vouch for an input and to find its title.

A full PDF parser would be a heavy dependency for three facts: is it a PDF at all, does it look
complete, and what does its document information dictionary call it. All three are answered
from the first and last stretches of the file, so a 500 MB PDF costs a few reads, not a scan.
Anything unusual (an encrypted title, an information dictionary inside a compressed object
stream) simply yields no title; the caller then falls back to the file name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO

from .errors import NotAPdfError

HEADER_WINDOW = 1024
"""Readers accept junk before ``%PDF-`` within the first 1024 bytes; so do we."""
TAIL_WINDOW = 64 * 1024
SEARCH_WINDOW = 1024 * 1024
MAX_TITLE_CHARS = 1024
"""DocumentTitle is ST, at most 1024 characters."""

_INFO_REF = re.compile(rb"/Info\s+(\d+)\s+(\d+)\s+R")
_STARTXREF = re.compile(rb"startxref\s+(\d+)")
_TITLE_KEY = re.compile(rb"/Title\s*([(<])")
_XREF_SUBSECTION = re.compile(rb"(\d+)\s+(\d+)\s*[\r\n]+")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


@dataclass(frozen=True)
class PdfFacts:
    """What the encoder needs to know about a PDF before wrapping it."""

    title: str | None
    encrypted: bool
    truncated: bool
    """No ``%%EOF`` marker near the end: the PDF is probably cut short, but it is still kept."""


def inspect_pdf(fp: BinaryIO, size: int, name: str) -> PdfFacts:
    """Check the header and read the facts; ``fp`` must be seekable and is left at offset 0.

    Raises
    ------
    NotAPdfError
        When no ``%PDF-`` header is found, or the file is DICOM (an Encapsulated PDF holds
        ``%PDF-`` within its first 1024 bytes too): wrapping such a file would mislabel it.
    """
    from .extract import looks_like_dicom  # the encoder has pydicom loaded already

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
    truncated = b"%%EOF" not in tail[-HEADER_WINDOW:]
    encrypted = b"/Encrypt" in tail
    title = None if encrypted else _find_title(fp, size, tail)
    fp.seek(0)
    return PdfFacts(title=title, encrypted=encrypted, truncated=truncated)


def _find_title(fp: BinaryIO, size: int, tail: bytes) -> str | None:
    refs = list(_INFO_REF.finditer(tail))
    if not refs:
        return None
    number, generation = int(refs[-1].group(1)), int(refs[-1].group(2))
    obj = _read_object(fp, size, tail, number, generation)
    if obj is None:
        return None
    end = obj.find(b"endobj")
    body = obj if end < 0 else obj[:end]
    match = _TITLE_KEY.search(body)
    if match is None:
        return None
    raw = _parse_string(body, match.start(1))
    return None if raw is None else _decode_text(raw)


def _read_object(
    fp: BinaryIO, size: int, tail: bytes, number: int, generation: int
) -> bytes | None:
    header = re.compile(rb"(?<![0-9])%d\s+%d\s+obj\b" % (number, generation))
    offset = _xref_offset(fp, tail, number)
    if offset is not None:
        fp.seek(offset)
        chunk = fp.read(TAIL_WINDOW)
        if header.match(chunk):
            return chunk
    for start in {0, max(0, size - SEARCH_WINDOW)}:
        fp.seek(start)
        window = fp.read(SEARCH_WINDOW)
        found = list(header.finditer(window))
        if found:
            fp.seek(start + found[-1].start())
            return fp.read(TAIL_WINDOW)
    return None


def _xref_offset(fp: BinaryIO, tail: bytes, number: int) -> int | None:
    """Look the object up in a classic cross-reference table; streams are left alone."""
    starts = list(_STARTXREF.finditer(tail))
    if not starts:
        return None
    fp.seek(int(starts[-1].group(1)))
    table = fp.read(TAIL_WINDOW)
    if not table.startswith(b"xref"):
        return None
    position = 4
    while True:
        while position < len(table) and table[position : position + 1] in b" \r\n":
            position += 1
        match = _XREF_SUBSECTION.match(table, position)
        if match is None:
            return None
        first, count = int(match.group(1)), int(match.group(2))
        position = match.end()
        if first <= number < first + count:
            entry = table[position + 20 * (number - first) :][:18]
            fields = entry.split()
            if len(fields) == 3 and fields[2] == b"n":
                return int(fields[0])
            return None
        position += 20 * count


def _parse_string(data: bytes, start: int) -> bytes | None:
    if data[start : start + 1] == b"<":
        end = data.find(b">", start)
        if end < 0:
            return None
        digits = re.sub(rb"\s", b"", data[start + 1 : end])
        if len(digits) % 2:
            digits += b"0"
        try:
            return bytes.fromhex(digits.decode("ascii"))
        except ValueError:
            return None
    out = bytearray()
    depth = 0
    position = start + 1
    while position < len(data):
        char = data[position : position + 1]
        if char == b"\\":
            following = data[position + 1 : position + 2]
            if following in _ESCAPES:
                out += _ESCAPES[following]
                position += 2
            elif following.isdigit():
                octal = re.match(rb"[0-7]{1,3}", data[position + 1 : position + 4])
                digits = octal.group(0) if octal else following
                out.append(int(digits, 8) & 0xFF)
                position += 1 + len(digits)
            elif following in b"\r\n":
                position += 2
                if following == b"\r" and data[position : position + 1] == b"\n":
                    position += 1
            else:
                out += following
                position += 2
            continue
        if char == b"(":
            depth += 1
        elif char == b")":
            if depth == 0:
                return bytes(out)
            depth -= 1
        out += char
        position += 1
    return None


def _decode_text(raw: bytes) -> str | None:
    if raw.startswith(b"\xfe\xff"):
        text = raw[2:].decode("utf-16-be", errors="replace")
    elif raw.startswith(b"\xef\xbb\xbf"):
        text = raw[3:].decode("utf-8", errors="replace")
    else:
        # PDFDocEncoding agrees with Latin-1 on every printable character but a few in
        # 0x80-0x9F (typographic quotes and dashes), which are rare in titles.
        text = raw.decode("latin-1")
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned[:MAX_TITLE_CHARS] or None
