"""PDF facts: the header check, the truncation hint and the title lookup."""

from __future__ import annotations

import datetime as dt
import io
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from pdf2dcm.errors import NotAPdfError
from pdf2dcm.pdf import MAX_STRING_BYTES, PdfFacts, inspect_pdf
from tests.pdfs import make_pdf, titled_pdf, xmp_packet

TOKYO = dt.timezone(dt.timedelta(hours=9))
NEW_YORK = dt.timezone(dt.timedelta(hours=-5))


def facts(data: bytes) -> PdfFacts:
    return inspect_pdf(io.BytesIO(data), len(data), "in.pdf")


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        (b"(Quarterly report)", "Quarterly report"),
        (b"(Nested (parens) and \\(escapes\\))", "Nested (parens) and (escapes)"),
        (b"(Caf\\351 \\n line)", "Café \n line"),
        (b"<FEFF00480069002030C6>", "Hi テ"),
        (b"(\xfe\xff\x00O\x00K)", "OK"),
        (b"<48 65 6C 6C 6F>", "Hello"),
        (b"(   )", None),
    ],
)
def test_title_is_read_from_the_information_dictionary(raw: bytes, title: str | None) -> None:
    assert facts(make_pdf(3000, title=raw)).title == title


def test_no_information_dictionary_means_no_title() -> None:
    assert facts(make_pdf(3000)).title is None


def test_encrypted_pdf_is_accepted_without_a_title() -> None:
    data = make_pdf(3000, title=b"(Secret)").replace(b"/Root 1 0 R", b"/Encrypt 9 0 R")
    result = facts(data)
    assert result.encrypted
    assert result.title is None


def test_not_a_pdf_is_refused_with_what_it_starts_with() -> None:
    with pytest.raises(NotAPdfError, match=r"in.pdf is not a PDF \(it starts with b'PK\\x03\\x04"):
        facts(b"PK\x03\x04" + b"\x00" * 100)


def test_header_after_leading_junk_is_accepted() -> None:
    assert not facts(b"junk\r\n" + make_pdf(3000)).truncated


def test_missing_eof_marks_the_pdf_truncated() -> None:
    data = make_pdf(3000)
    assert not facts(data).truncated
    assert facts(data[:2000]).truncated


def test_title_is_not_cut_here_but_its_reading_is_bounded() -> None:
    """The encoder cuts DocumentTitle to 1024 bytes in the character set it writes."""
    assert facts(make_pdf(5000, title=b"(" + b"x" * 1500 + b")")).title == "x" * 1500
    huge = facts(titled_pdf(b"/Title (" + b"y" * 5_000_000 + b")")).title
    assert huge == "y" * MAX_STRING_BYTES


@pytest.mark.parametrize(
    ("info", "title"),
    [
        (b"/Title (Report \\8 final)", "Report 8 final"),
        (b"/Title (Report \\9)", "Report 9"),
        (b"/Title (Tab\\there\tand\x07bell\x00nul)", "Tab here and bell nul"),
        (b"/Title (\\r\\n  Kept\\r\\nbreaks\\fhere  \\t)", "Kept\r\nbreaks\x0chere"),
        (b"/Title <FEFF001B0041001B>", "\x1bA\x1b"),
        (
            b"/Title (\x8dQuoted\x8e \x84 \x93le \x80 \xa0 \x92)",
            "\u201cQuoted\u201d \u2014 \ufb01le \u2022 \u20ac \u2122",
        ),
        (
            b"/Title (\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f)",
            "\u02d8\u02c7\u02c6\u02d9\u02dd\u02db\u02da\u02dc",
        ),
        (b"/Title (A\xadB\x9fC\x7fD)", "A B C D"),
        (b"/Title (\xef\xbb\xbfUTF-8 \xc3\xbc)", "UTF-8 \u00fc"),
        (b"/Title <FEFF0041000900420085>", "A B"),
        (b"/Title ()", None),
        (b"/Title ( \\t )", None),
        (b"/Subject (/Title (decoy)) /Title (Real)", "Real"),
        (b"/Title 5 0 R", "Indirect"),
        (b"/Title (Line\\\nfolded)", "Linefolded"),
    ],
)
def test_title_text_is_decoded_and_cleaned(info: bytes, title: str | None) -> None:
    assert facts(titled_pdf(info, objects={5: b"(Indirect)"})).title == title


def _entry(bad: bytes) -> Callable[[int, int], bytes]:
    return lambda number, offset: bad if number == 4 else b"%010d 00000 n \n" % offset


@pytest.mark.parametrize(
    "damage",
    [
        {"startxref": b"99999999999999999999"},
        {"startxref": b"-5"},
        {"startxref": b"12"},
        {"entry": _entry(b"abcdefghij 00000 n \n")},
        {"entry": _entry(b"-000000001 00000 n \n")},
        {"entry": _entry(b"9999999999 00000 n \n")},
    ],
    ids=["huge-startxref", "negative-startxref", "wrong-startxref", "letters", "negative", "far"],
)
def test_damaged_cross_references_fall_back_to_a_search(damage: dict[str, Any]) -> None:
    assert facts(titled_pdf(b"/Title (Found anyway)", **damage)).title == "Found anyway"


@pytest.mark.parametrize(
    "info",
    [
        b"/Title (unterminated",
        b"/Title <48656C6C6",
        b"/Title " + b"[" * 10_000,
        b"/Title " + b"<<" * 10_000,
        b"/Title 99 0 R",
        b"/Title 4 0 R",
    ],
    ids=["unterminated", "odd-hex", "deep-array", "deep-dict", "missing-ref", "self-ref"],
)
def test_malformed_titles_never_crash(info: bytes) -> None:
    title = facts(titled_pdf(info)).title
    assert title in (None, "Hell`")


def test_a_pdf_whose_info_cannot_be_found_has_no_title() -> None:
    data = titled_pdf(b"/Title (Lost)").replace(b"4 0 obj", b"4 0 obk")
    assert facts(data).title is None


def test_the_newest_incremental_update_wins() -> None:
    base = titled_pdf(b"/Title (Old) /CreationDate (D:20200101)")
    previous = base.rindex(b"startxref\n") + len(b"startxref\n")
    prev_offset = int(base[previous:].split()[0])
    update = b"4 0 obj\n<< /Title (New) >>\nendobj\n"
    offset = len(base)
    table = b"xref\n4 1\n%010d 00000 n \n" % offset
    trailer = b"trailer\n<< /Size 5 /Root 1 0 R /Info 4 0 R /Prev %d >>\n" % prev_offset
    data = base + update + table + trailer + b"startxref\n%d\n%%%%EOF\n" % (offset + len(update))
    result = facts(data)
    assert result.title == "New"
    assert result.creation_date is None


def test_xmp_title_and_date_are_used_when_the_information_dictionary_has_none() -> None:
    xmp = xmp_packet("XMP <title> & more", "2024-02-03T04:05:06+01:00")
    catalog = b"<< /Type /Catalog /Pages 2 0 R /Metadata 5 0 R >>"
    for stream, filters in ((xmp, b""), (zlib.compress(xmp), b"/Filter /FlateDecode ")):
        data = titled_pdf(
            b"/Producer (x)",
            objects={1: catalog, 5: b"<< /Type /Metadata /Subtype /XML " + filters + b">>"},
            streams={5: stream},
        )
        result = facts(data)
        assert result.title == "XMP <title> & more"
        tz = dt.timezone(dt.timedelta(hours=1))
        assert result.creation_date == dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=tz)
        with_info = data.replace(b"/Producer (x)", b"/Title (Info) /CreationDate (D:2023)")
        assert facts(with_info).title == "Info"
        assert facts(with_info).creation_date == dt.datetime(2023, 1, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"(D:20240101233000+09'00')", dt.datetime(2024, 1, 1, 23, 30, tzinfo=TOKYO)),
        (b"(D:20240101233000+09'00)", dt.datetime(2024, 1, 1, 23, 30, tzinfo=TOKYO)),
        (b"(D:20240101233000+0900)", dt.datetime(2024, 1, 1, 23, 30, tzinfo=TOKYO)),
        (b"(D:20240101233000-05)", dt.datetime(2024, 1, 1, 23, 30, tzinfo=NEW_YORK)),
        (b"(D:20240101233000Z00'00')", dt.datetime(2024, 1, 1, 23, 30, tzinfo=dt.timezone.utc)),
        (b"(D:20240101233000Z)", dt.datetime(2024, 1, 1, 23, 30, tzinfo=dt.timezone.utc)),
        (b"(D:202401012330)", dt.datetime(2024, 1, 1, 23, 30)),
        (b"(D:2024)", dt.datetime(2024, 1, 1)),
        (b"(20240229)", dt.datetime(2024, 2, 29)),
        (b"<FEFF0044003A0032003000320034>", dt.datetime(2024, 1, 1)),
        (b"(D:20241301)", None),
        (b"(D:20230229)", None),
        (b"(D:20240101250000)", None),
        (b"(D:20240101000000+15'00')", None),
        (b"(D:20240101000000-12'30')", None),
        (b"(D:09990101)", None),
        (b"(D:30000101)", None),
        (b"(yesterday)", None),
        (b"(D:2024010)", None),
        (b"42", None),
    ],
)
def test_creation_date_follows_the_pdf_date_syntax(
    value: bytes, expected: dt.datetime | None
) -> None:
    result = facts(titled_pdf(b"/CreationDate " + value))
    assert result.creation_date == expected
    if expected is not None:
        assert result.creation_date is not None
        assert (result.creation_date.tzinfo is None) == (expected.tzinfo is None)


def test_encrypted_pdf_has_no_creation_date_either() -> None:
    data = titled_pdf(b"/Title (S) /CreationDate (D:2024)").replace(
        b"/Root 1 0 R", b"/Root 1 0 R /Encrypt 9 0 R"
    )
    assert facts(data) == PdfFacts(title=None, encrypted=True, truncated=False)


def test_dicom_is_refused_even_with_a_pdf_header_inside() -> None:
    dicom = b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + b"%PDF-1.4" * 10
    with pytest.raises(NotAPdfError, match=r"^in.pdf is a DICOM file, not a PDF; extract"):
        facts(dicom)


@pytest.mark.parametrize("prefix", [b"\x00ICM", b"DXCM", b"DIC\xff"])
def test_dicom_with_a_damaged_prefix_and_first_element_is_not_taken_for_a_pdf(
    prefix: bytes,
) -> None:
    """The prefix one byte off and the first element damaged too: still not a PDF."""
    dicom = b"\x00" * 128 + prefix + b"\x02\x00\x00\x00\x00L\x04\x00\x9a" + b"%PDF-1.4" * 10
    with pytest.raises(NotAPdfError, match=r"^in.pdf is a DICOM file, not a PDF; extract"):
        facts(dicom)
    assert facts(b"%PDF-1.4" + b"\x00" * 120 + b"\x00ICM" + titled_pdf(b"/Title (T)")[8:])
