"""Synthetic PDFs of exact sizes for tests and benchmarks.

Each is a valid one-page PDF with a classic cross-reference table; the requested size is
reached with an incompressible comment block, and the tail can be chosen so that the cases
real tools get wrong (no newline after %%EOF, a trailing 0x00) are easy to produce.
"""

from __future__ import annotations

import os
import random


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
