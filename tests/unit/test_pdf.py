"""PDF facts: the header check, the truncation hint and the title lookup."""

from __future__ import annotations

import io

import pytest

from pdf2dcm.errors import NotAPdfError
from pdf2dcm.pdf import PdfFacts, inspect_pdf
from tests.pdfs import make_pdf


def facts(data: bytes) -> PdfFacts:
    return inspect_pdf(io.BytesIO(data), len(data), "in.pdf")


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        (b"(Quarterly report)", "Quarterly report"),
        (b"(Nested (parens) and \\(escapes\\))", "Nested (parens) and (escapes)"),
        (b"(Caf\\351 \\n line)", "Café line"),
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


def test_title_is_limited_to_what_document_title_can_hold() -> None:
    title = facts(make_pdf(5000, title=b"(" + b"x" * 1500 + b")")).title
    assert title == "x" * 1024
