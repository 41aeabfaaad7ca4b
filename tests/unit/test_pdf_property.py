"""The PDF reader never fails on a damaged PDF: it finds the facts or falls back to None."""

from __future__ import annotations

import io
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from pdf2dcm.errors import NotAPdfError
from pdf2dcm.pdf import inspect_pdf
from tests.pdfs import titled_pdf, xmp_packet
from tests.unit.test_pdf_oracle import with_xmp

SEEDS = [
    titled_pdf(b"/Title (Seed \\(one\\) \\351) /CreationDate (D:20240101120000+01'00')"),
    titled_pdf(b"/Title <FEFF00480069> /CreationDate (D:2024)"),
    titled_pdf(b"/Title 5 0 R", objects={5: b"(Indirect)"}),
    with_xmp(xmp_packet("XMP", "2024-01-01T00:00:00Z"), compressed=True),
]


@st.composite
def damaged_pdf(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[at] = draw(st.sampled_from(b"0123456789()<>[]/\\ \n%RobjxrefstartxrefTitle"))
        else:
            data[at : at + draw(st.integers(0, 20))] = draw(st.binary(max_size=20))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(damaged_pdf(), st.binary(max_size=3000).map(lambda b: b"%PDF-1.7\n" + b)))
def test_damaged_pdfs_give_facts_or_none(data: bytes) -> None:
    try:
        facts = inspect_pdf(io.BytesIO(data), len(data), "fuzz.pdf")
    except NotAPdfError:
        assert b"%PDF-" not in data[:1024]
        return
    assert facts.title is None or (facts.title == facts.title.strip() and facts.title)
    assert facts.title is None or "\t" not in facts.title


def test_a_decompression_bomb_is_inflated_only_so_far() -> None:
    bomb = zlib.compress(b" " * (64 * 1024 * 1024), 9)
    data = with_xmp(bomb, compressed=False).replace(
        b"/Subtype /XML >>", b"/Subtype /XML /Filter /FlateDecode >>"
    )
    assert inspect_pdf(io.BytesIO(data), len(data), "bomb.pdf").title is None
