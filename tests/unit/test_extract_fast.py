"""The plain reader of usual Encapsulated PDF objects, against the complete (pydicom) reader.

Extraction reads the usual object (preamble, Explicit VR Little Endian, application/pdf, a
document of defined length) without importing pydicom. These tests hold it to the same results
as the complete reader, byte for byte and message for message, and check that it is the one
used where it should be and that pydicom stays unloaded there.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

import pdf2dcm.extract as extract_module
from pdf2dcm.errors import Pdf2DcmError
from pdf2dcm.extract import extract_pdf
from tests.pdfs import make_pdf
from tests.unit.test_extract import encapsulated

PDF = make_pdf(3000, title=b"(Plain)")
MIME_ELEMENT = b"\x42\x00\x12\x00LO\x10\x00application/pdf "


def repeated_mime() -> bytes:
    """MIMETypeOfEncapsulatedDocument twice, text/plain first: pydicom keeps the last."""
    data = encapsulated(PDF)
    index = data.index(MIME_ELEMENT)
    return data[:index] + b"\x42\x00\x12\x00LO\x0a\x00text/plain" + data[index:]


def plain(data: bytes) -> tuple[int, int] | None:
    """What the plain reader makes of ``data``: (offset, length) of the PDF, or None."""
    return extract_module._find_plain_pdf(io.BytesIO(data), "x.dcm")


def outcome(data: bytes, tmp_path: Path, *, complete: bool) -> tuple[str, bytes | str]:
    """("pdf", bytes written) or (error class, message), by the plain or the complete reader."""
    source, target = tmp_path / "x.dcm", tmp_path / "x.pdf"
    source.write_bytes(data)
    target.unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        if complete:
            patch.setattr(extract_module, "_find_plain_pdf", no_plain_reader)
        try:
            extract_pdf(source, target, source_name="x.dcm")
        except Pdf2DcmError as exc:
            assert not target.exists()
            return type(exc).__name__, str(exc)
    return "pdf", target.read_bytes()


def no_plain_reader(_handle: BinaryIO, _name: str) -> tuple[int, int] | None:
    """The plain reader's stand-in that always leaves the file to the complete reader."""
    return None


def same_outcome(data: bytes, tmp_path: Path) -> tuple[str, bytes | str]:
    """Both readers' outcome, which must be the same."""
    fast = outcome(data, tmp_path, complete=False)
    assert fast == outcome(data, tmp_path, complete=True)
    return fast


def uses_plain_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any use of the complete reader fail the test."""

    def refuse(*_args: object) -> None:
        raise AssertionError("the complete reader was used")

    monkeypatch.setattr(extract_module, "_parse", refuse)


@pytest.mark.parametrize("size", [3000, 3001, 65536, 65537, 200_001])
@pytest.mark.parametrize("declared", [True, False])
def test_round_trip_is_byte_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, declared: bool
) -> None:
    pdf = make_pdf(size)
    assert len(pdf) == size
    data = encapsulated(pdf, length=-1 if declared else None)
    uses_plain_reader(monkeypatch)
    assert outcome(data, tmp_path, complete=False) == ("pdf", pdf)
    monkeypatch.undo()
    assert outcome(data, tmp_path, complete=True) == ("pdf", pdf)


@pytest.mark.parametrize("declared", [True, False])
def test_pdf_ending_in_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, declared: bool
) -> None:
    """A 0x00 that belongs to the PDF stays when the length says so; without a length the
    rule is the complete reader's: one trailing 0x00 of an even value is a pad."""
    odd = PDF + b"\x00"  # odd: the writer pads it to ...\x00\x00
    even = PDF + b"\n\x00"
    uses_plain_reader(monkeypatch)
    assert outcome(encapsulated(odd, length=-1), tmp_path, complete=False) == ("pdf", odd)
    assert outcome(encapsulated(even, length=-1), tmp_path, complete=False) == ("pdf", even)
    monkeypatch.undo()
    if not declared:
        assert same_outcome(encapsulated(odd, length=None), tmp_path) == ("pdf", odd)
        assert same_outcome(encapsulated(even, length=None), tmp_path) == ("pdf", even[:-1])


def test_plain_reader_is_used_for_the_encoders_output(tmp_path: Path) -> None:
    from pdf2dcm.dicom import encode_pdf

    (tmp_path / "in.pdf").write_bytes(PDF + b"\n")
    encode_pdf(tmp_path / "in.pdf", tmp_path / "in.dcm")
    data = (tmp_path / "in.dcm").read_bytes()
    found = plain(data)
    assert found is not None
    offset, length = found
    assert data[offset : offset + length] == PDF + b"\n"
    assert same_outcome(data, tmp_path) == ("pdf", PDF + b"\n")


def test_sequences_before_the_document_are_walked(tmp_path: Path) -> None:
    item = Dataset()
    item.CodeValue = "11528-7"
    item.CodingSchemeDesignator = "LN"
    item.CodeMeaning = "Radiology Report"
    extra = Dataset()
    extra.ConceptNameCodeSequence = Sequence([item, item])
    data = encapsulated(PDF, extra=extra)
    assert plain(data) is not None
    assert same_outcome(data, tmp_path) == ("pdf", PDF)


@pytest.mark.parametrize(
    "syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
)
def test_other_transfer_syntaxes_go_to_the_complete_reader(tmp_path: Path, syntax: str) -> None:
    data = encapsulated(PDF, syntax=syntax)
    assert plain(data) is None
    assert same_outcome(data, tmp_path) == ("pdf", PDF)


@pytest.mark.parametrize(
    "data",
    [
        encapsulated(PDF, length=len(PDF) + 2),
        encapsulated(PDF, length=len(PDF) + 1),
        repeated_mime(),
        encapsulated(PDF, length=len(PDF) - 2),
        encapsulated(b""),
        encapsulated(b"%!PS-Adobe-3.0\n" + b" " * 2000),
        encapsulated(b" " * 1020 + PDF),
        encapsulated(PDF)[:-20],
        encapsulated(PDF)[:700],
        encapsulated(PDF)[132:],
        encapsulated(PDF)[:128] + b"DICX" + encapsulated(PDF)[132:],
    ],
    ids=[
        "length-too-large",
        "length-one-too-large",
        "repeated-mime",
        "length-too-small",
        "empty",
        "not-pdf",
        "header-too-late",
        "truncated-tail",
        "truncated-document",
        "no-preamble",
        "no-prefix",
    ],
)
def test_unusual_and_refused_objects_get_the_complete_readers_answer(
    tmp_path: Path, data: bytes
) -> None:
    assert plain(data) is None
    same_outcome(data, tmp_path)


@pytest.mark.parametrize(
    "mime", ["APPLICATION/PDF", "application/pdf", " application/pdf", "text/plain", "app\\pdf"]
)
def test_mime_types(tmp_path: Path, mime: str) -> None:
    data = encapsulated(PDF)
    padded = (mime + " " * (len(mime) % 2)).encode()
    index = data.index(MIME_ELEMENT) + 8
    data = data[: index - 2] + struct.pack("<H", len(padded)) + padded + data[index + 16 :]
    kind, _ = same_outcome(data, tmp_path)
    assert kind == (
        "pdf" if mime.strip().lower() == "application/pdf" else "NotEncapsulatedPdfError"
    )
    assert (plain(data) is not None) == (mime.lower() == "application/pdf")


def test_every_damaged_header_byte_gets_the_same_answer(tmp_path: Path) -> None:
    """Each byte of the header set to 0x00 and to 0xFF, and the file cut at each of them."""
    data = encapsulated(PDF, length=-1)
    document = data.index(b"%PDF-")
    tail = data.index(b"\x42\x00\x12\x00LO")
    positions = [*range(0, document + 8), *range(tail - 12, len(data))]
    for position in positions:
        for byte in (0x00, 0xFF):
            damaged = data[:position] + bytes([byte]) + data[position + 1 :]
            same_outcome(damaged, tmp_path)
        same_outcome(data[:position], tmp_path)


def test_a_document_over_two_gibibytes_is_located(tmp_path: Path) -> None:
    """Lengths are unsigned 32-bit values: a sparse file checks the arithmetic beyond 2**31."""
    size = 3 * 1024**3 + 1
    head = b"%PDF-1.7\n"
    tail = b"\n%%EOF\n"
    pdf_value_length = size + 1  # padded to even
    data = encapsulated(b"%PDF-1.7\n", length=size)
    start = data.index(head)
    after = data[start + len(head) + 1 :]  # the elements after the document (its pad dropped)
    header = bytearray(data[:start])
    struct.pack_into("<I", header, start - 4, pdf_value_length)
    path = tmp_path / "big.dcm"
    with path.open("wb") as out:
        out.write(header)
        out.write(head)
        out.seek(start + size - len(tail))
        out.write(tail + b"\x00")
        out.write(after)
    assert os.path.getsize(path) == start + pdf_value_length + len(after)
    with path.open("rb") as handle:
        assert extract_module._find_plain_pdf(handle, "big.dcm") == (start, size)
        found = extract_module._find_pdf(handle, "big.dcm")
        assert found[1:] == (start, size)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(extract_module, "_find_plain_pdf", no_plain_reader)
            assert extract_module._find_pdf(handle, "big.dcm")[1:] == (start, size)


IMPORTS = """
import runpy
import sys

sys.argv = ["pdf2dcm", *sys.argv[1:]]
try:
    runpy.run_module("pdf2dcm", run_name="__main__")
except SystemExit as exc:
    print("exit", exc.code, "pydicom" in sys.modules, file=sys.stderr)
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pdf2dcm ARGS`` in a program that then says whether pydicom was imported."""
    return subprocess.run(
        [sys.executable, "-c", IMPORTS, *args], capture_output=True, text=True, check=False
    )


def test_the_command_does_not_import_pydicom_for_a_usual_object(tmp_path: Path) -> None:
    (tmp_path / "x.dcm").write_bytes(encapsulated(PDF))
    result = run_cli("extract", str(tmp_path / "x.dcm"), "-o", str(tmp_path / "x.pdf"))
    assert result.stderr.splitlines()[-1] == "exit 0 False", result.stderr
    assert (tmp_path / "x.pdf").read_bytes() == PDF


def test_the_command_imports_pydicom_for_other_objects(tmp_path: Path) -> None:
    (tmp_path / "x.dcm").write_bytes(encapsulated(PDF, syntax=ImplicitVRLittleEndian))
    result = run_cli("extract", str(tmp_path / "x.dcm"), "-o", str(tmp_path / "x.pdf"))
    assert result.stderr.splitlines()[-1] == "exit 0 True", result.stderr
    assert (tmp_path / "x.pdf").read_bytes() == PDF
    (tmp_path / "y.dcm").write_bytes(encapsulated(PDF, length=len(PDF) + 2))
    result = run_cli("extract", str(tmp_path / "y.dcm"), "-o", str(tmp_path / "y.pdf"))
    assert "says 3002 bytes but the document holds 3000" in result.stderr
    assert result.stderr.splitlines()[-1].endswith(" True"), result.stderr
    assert not result.stderr.splitlines()[-1].startswith("exit 0")
    assert not (tmp_path / "y.pdf").exists()
