"""Whatever bytes ``pdf2dcm extract`` is given, it ends in success or a clear refusal.

Random bytes, and valid objects (every transfer syntax a PDF object comes in) cut short or
with bits flipped: the exit code is 0 or 2, never 1 (a bug), and a refusal leaves no file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pdf2dcm.cli import cli
from tests.pdfs import make_pdf
from tests.unit.test_extract import encapsulated

SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
]
VALID = [encapsulated(make_pdf(size), syntax=syntax) for syntax in SYNTAXES for size in (700, 701)]
VALID += [encapsulated(make_pdf(70_001), syntax=ExplicitVRLittleEndian, length=None)]


def _with_sequences() -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "18748-4", "LN", "Report"
    extra = Dataset()
    extra.ConceptNameCodeSequence = [code]
    return extra


VALID += [
    encapsulated(make_pdf(700), syntax=syntax, extra=_with_sequences())
    for syntax in (ExplicitVRBigEndian, ImplicitVRLittleEndian)
]


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A valid object, cut short and/or with a few bytes changed."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 4))):
        # Most of an object is its document; aim the damage at the header as often as not.
        limit = draw(st.sampled_from([min(len(data), 600), len(data)]))
        at = draw(st.integers(0, limit - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def run_extract(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "in.dcm"
        source.write_bytes(data)
        target = Path(directory) / "out.pdf"
        result = CliRunner().invoke(cli, ["extract", str(source), "-o", str(target)])
        assert result.exit_code in (0, 2), result.output
        names = sorted(p.name for p in Path(directory).iterdir())
        if result.exit_code == 0:
            assert names == ["in.dcm", "out.pdf"]
            assert target.read_bytes().startswith(b"%PDF-") or b"%PDF-" in target.read_bytes()
        else:
            assert names == ["in.dcm"], result.output
            assert len(result.output.strip().splitlines()) == 1, result.output
            assert len(result.output) < 600, result.output


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=damaged())
def test_damaged_objects_succeed_or_are_refused(data: bytes) -> None:
    run_extract(data)


@settings(max_examples=50, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.binary(max_size=600).map(lambda tail: b"\x00" * 128 + b"DICM" + tail),
        st.binary(max_size=600).map(lambda tail: b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + tail),
    )
)
def test_random_bytes_are_refused(data: bytes) -> None:
    run_extract(data)
