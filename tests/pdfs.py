"""Synthetic PDFs of exact sizes for tests and benchmarks.

Each is a valid one-page PDF with a classic cross-reference table; the requested size is
reached with an incompressible comment block, and the tail can be chosen so that the cases
real tools get wrong (no newline after %%EOF, a trailing 0x00) are easy to produce.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any


def make_pdf(
    size: int,
    *,
    title: bytes | None = None,
    tail: bytes = b"\n",
    seed: int | None = 0,
) -> bytes:
    """A PDF of exactly ``size`` bytes ending in ``%%EOF`` + ``tail``."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    if title is not None:
        objects.append(b"<< /Title " + title + b" /Producer (pdf2dcm tests) >>")
    body = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % number + content + b"\nendobj\n"
    table = bytearray(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        table += b"%010d 00000 n \n" % offset
    info = b" /Info 4 0 R" if title is not None else b""

    def trailer(xref: int) -> bytes:
        # startxref is zero-padded so that its length does not depend on the offset.
        return b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%010d\n%%%%EOF" % (
            len(objects) + 1,
            info,
            xref,
        )

    filler = size - (len(body) + len(table) + len(trailer(0)) + len(tail))
    if filler < 0:
        raise ValueError(f"this PDF needs at least {size - filler} bytes")
    # The filler is a comment line placed before the xref table.
    comment = b"%" + _noise(filler - 2, seed) + b"\n" if filler >= 2 else b"\n" * filler
    out = bytes(body) + comment + bytes(table) + trailer(len(body) + len(comment)) + tail
    assert len(out) == size
    return out


def _noise(length: int, seed: int | None) -> bytes:
    data = os.urandom(length) if seed is None else random.Random(seed).randbytes(length)
    # A comment runs to the end of the line, so line breaks inside it are replaced.
    return data.replace(b"\n", b" ").replace(b"\r", b" ")


def build_pdf(
    objects: dict[int, bytes],
    *,
    trailer: bytes = b"/Root 1 0 R",
    streams: dict[int, bytes] | None = None,
    header: bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    startxref: bytes | None = None,
    entry: Callable[[int, int], bytes] | None = None,
) -> bytes:
    """A PDF of the given objects with a classic cross-reference table.

    ``streams`` maps object numbers to stream data (their dictionary, in ``objects``, gets its
    /Length added). ``startxref`` and ``entry`` (number, offset -> 20-byte entry) let a test
    write the lies real files contain.
    """
    body = bytearray(header)
    offsets: dict[int, int] = {}
    for number in sorted(set(objects) | set(streams or {})):
        offsets[number] = len(body)
        content = objects.get(number, b"<< >>")
        if streams and number in streams:
            data = streams[number]
            content = content[:-2] + b" /Length %d >>\nstream\n" % len(data) + data
            content += b"\nendstream"
        body += b"%d 0 obj\n" % number + content + b"\nendobj\n"
    size = max(offsets) + 1
    table = bytearray(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for number in range(1, size):
        if number not in offsets:
            table += b"0000000000 00000 f \n"
        elif entry is not None:
            table += entry(number, offsets[number])
        else:
            table += b"%010d 00000 n \n" % offsets[number]
    xref = b"%d" % len(body) if startxref is None else startxref
    return (
        bytes(body)
        + bytes(table)
        + b"trailer\n<< /Size %d %s >>\nstartxref\n%s\n%%%%EOF\n" % (size, trailer, xref)
    )


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"


def titled_pdf(info: bytes, **options: Any) -> bytes:
    """A one-page PDF whose information dictionary (object 4) holds ``info`` entries."""
    objects = {1: CATALOG, 2: PAGES, 3: PAGE, 4: b"<< " + info + b" >>"}
    objects.update(options.pop("objects", {}))
    return build_pdf(objects, trailer=b"/Root 1 0 R /Info 4 0 R", **options)


def xmp_packet(title: str | None = None, created: str | None = None) -> bytes:
    """An XMP metadata packet with dc:title (x-default) and xmp:CreateDate."""
    parts = []
    if title is not None:
        parts.append(
            '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">'
            + title.replace("&", "&amp;").replace("<", "&lt;")
            + "</rdf:li></rdf:Alt></dc:title>"
        )
    if created is not None:
        parts.append(f"<xmp:CreateDate>{created}</xmp:CreateDate>")
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
        + "".join(parts)
        + '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()
