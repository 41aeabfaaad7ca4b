"""pypdf as an oracle: on every PDF of a corpus it must find the title we find.

pypdf is a full PDF parser (a test dependency only: it is too slow to import for the encoder).
Its title is the information dictionary's /Title, else XMP dc:title (x-default), with the same
clean-up ours applies (control characters ST forbids become spaces, ends trimmed). Where pypdf
itself is wrong, the case is listed in PYPDF_WRONG with the reason and our answer.
"""

from __future__ import annotations

import io
import logging
import warnings
import zlib
from collections.abc import Iterator

import pytest
from pypdf import PdfReader

from pdf2dcm.pdf import inspect_pdf
from tests.pdfs import PAGES, make_pdf, titled_pdf, xmp_packet

KEPT_CONTROLS = "\r\n\x0c\x1b"


def cleaned(text: str | None) -> str | None:
    if text is None:
        return None
    text = "".join(
        " " if (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) and c not in KEPT_CONTROLS else c
        for c in text
    ).strip()
    return text or None


@pytest.fixture(autouse=True)
def _quiet_pypdf() -> Iterator[None]:
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def pypdf_title(data: bytes) -> str | None:
    reader = PdfReader(io.BytesIO(data))
    title = cleaned(reader.metadata.title if reader.metadata else None)
    if title is None:
        xmp = reader.xmp_metadata
        titles = xmp.dc_title if xmp is not None else None
        if titles:
            title = cleaned(titles.get("x-default") or next(iter(titles.values())))
    return title


def our_title(data: bytes) -> str | None:
    return inspect_pdf(io.BytesIO(data), len(data), "corpus.pdf").title


def with_xmp(xmp: bytes, *, info: bytes = b"", compressed: bool = False) -> bytes:
    catalog = b"<< /Type /Catalog /Pages 2 0 R /Metadata 5 0 R >>"
    filters = b"/Filter /FlateDecode " if compressed else b""
    return titled_pdf(
        info or b"/Producer (corpus)",
        objects={1: catalog, 2: PAGES, 5: b"<< /Type /Metadata /Subtype /XML " + filters + b">>"},
        streams={5: zlib.compress(xmp) if compressed else xmp},
    )


CORPUS = {
    "plain": titled_pdf(b"/Title (Quarterly report)"),
    "nested-parentheses": titled_pdf(b"/Title (Nested (parens) and \\(escapes\\))"),
    "octal": titled_pdf(b"/Title (Caf\\351 cr\\350me)"),
    "pdfdoc-typography": titled_pdf(b"/Title (\x8dQuoted\x8e \x84 \x93le \x80 \x92 \x85)"),
    "pdfdoc-euro-and-accents": titled_pdf(b"/Title (Price \xa0 5 \x18\x19\x1f)"),
    "delete-character": titled_pdf(b"/Title (x\x7fy)"),
    "utf16": titled_pdf(b"/Title <FEFF00480069002030C600200041>"),
    "utf16-literal": titled_pdf(b"/Title (\xfe\xff\x00O\x00K)"),
    "utf8-bom": titled_pdf(b"/Title (\xef\xbb\xbfCaf\xc3\xa9 \xe2\x82\xac)"),
    "controls": titled_pdf(b"/Title (A\tB\x07C\\r\\nD)"),
    "hex": titled_pdf(b"/Title <48 65 6C 6C 6F>"),
    "empty": titled_pdf(b"/Title ()"),
    "blank": titled_pdf(b"/Title (   )"),
    "indirect": titled_pdf(b"/Title 5 0 R", objects={5: b"(Indirect title)"}),
    "decoy": titled_pdf(b"/Subject (/Title (fake)) /Title (Real)"),
    "no-info": make_pdf(3000),
    "long": titled_pdf(b"/Title (" + b"L" * 1500 + b")"),
    "bad-xref-letters": titled_pdf(
        b"/Title (Bad entry)",
        entry=lambda n, o: b"abcdefghij 00000 n \n" if n == 4 else b"%010d 00000 n \n" % o,
    ),
    "xmp-only": with_xmp(xmp_packet("XMP title & more")),
    "xmp-flate": with_xmp(xmp_packet("Compressed XMP"), compressed=True),
    "xmp-and-info": with_xmp(xmp_packet("XMP loses"), info=b"/Title (Info wins)"),
    "xmp-empty-info": with_xmp(xmp_packet("XMP fills in"), info=b"/Title ()"),
}

PYPDF_WRONG = {
    # ISO 32000 7.3.4.2: a backslash before a character that is not an escape is ignored;
    # pypdf keeps the backslash.
    "unknown-escape-8": (titled_pdf(b"/Title (Report \\8 final)"), "Report 8 final"),
    "unknown-escape-9": (titled_pdf(b"/Title (Report \\9)"), "Report 9"),
    # 0xAD is undefined in PDFDocEncoding; pypdf then decodes the whole string as UTF-16.
    "pdfdoc-undefined": (titled_pdf(b"/Title (A\xadB)"), "A B"),
    # pypdf fails on these cross-reference lies (OverflowError, ValueError: negative seek).
    "huge-startxref": (
        titled_pdf(b"/Title (Found anyway)", startxref=b"99999999999999999999"),
        "Found anyway",
    ),
    "negative-xref-entry": (
        titled_pdf(
            b"/Title (Found anyway)",
            entry=lambda n, o: b"-000000001 00000 n \n" if n == 4 else b"%010d 00000 n \n" % o,
        ),
        "Found anyway",
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_pypdf_agrees_with_our_title(name: str) -> None:
    data = CORPUS[name]
    assert our_title(data) == pypdf_title(data)


@pytest.mark.parametrize("name", sorted(PYPDF_WRONG))
def test_where_pypdf_is_wrong_we_follow_the_specification(name: str) -> None:
    data, expected = PYPDF_WRONG[name]
    assert our_title(data) == expected
    try:
        theirs = pypdf_title(data)
    except (ValueError, OverflowError):
        return
    assert theirs != expected
