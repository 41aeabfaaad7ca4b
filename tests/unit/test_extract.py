"""The extractor and the DICOM sniffer against hostile and careless files."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pdf2dcm.cli import cli
from pdf2dcm.constants import MAX_SEQUENCE_DEPTH
from pdf2dcm.dicom import ENCAPSULATED_PDF_STORAGE, encode_pdf
from pdf2dcm.errors import InputError, NotAPdfError
from pdf2dcm.extract import extract_pdf, read_header
from pdf2dcm.sniff import looks_like_dicom
from tests.pdfs import make_pdf

PDF = make_pdf(3000, title=b"(Sniffed)")


def encapsulated(
    document: bytes = PDF,
    *,
    syntax: str = ExplicitVRLittleEndian,
    length: int | None = -1,
    extra: Dataset | None = None,
) -> bytes:
    """An Encapsulated PDF object written by pydicom, with its preamble and file meta."""
    ds = Dataset() if extra is None else extra
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = "1.2.3.4"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = document + b"\x00" * (len(document) % 2)
    if length is not None:
        ds.EncapsulatedDocumentLength = len(document) if length == -1 else length
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def bare_dataset(syntax: str) -> bytes:
    """The same object as a bare data set: no preamble, no prefix, no file meta."""
    ds = pydicom.dcmread(io.BytesIO(encapsulated(syntax=syntax)))
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, syntax == ImplicitVRLittleEndian
    write_dataset(buffer, ds)
    return buffer.getvalue()


def sniff(data: bytes) -> bool:
    handle = io.BytesIO(data)
    handle.seek(7)
    result = looks_like_dicom(handle)
    assert handle.tell() == 0
    return result


def test_file_meta_without_preamble_is_dicom() -> None:
    complete = encapsulated()
    assert complete[128:132] == b"DICM"
    assert sniff(complete)
    assert sniff(complete[132:])
    assert sniff(b"\x00" * 128 + b"DICX" + complete[132:])
    assert sniff(b"junk" * 32 + b"DICM")


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_bare_data_set_is_dicom(syntax: str) -> None:
    data = bare_dataset(syntax)
    assert data.startswith(b"\x08\x00")
    assert b"%PDF-" in data[:1024]
    assert sniff(data)


@pytest.mark.parametrize(
    "data",
    [
        PDF,
        b"",
        b"\x08\x00",
        b"\x00" * 2000,
        b"\x02\x00\x10\x00UI\x15\x00",  # odd length: no DICOM value is odd
        b"\x08\x00\x16\x00\x02\x00\x01\x00",  # implicit length of 64 KiB + 2 for a UID
        b"\x08\x00\x16\x00OB\x01\x00\x00\x00\x00\x00",  # OB needs two zero bytes before length
        b"\x08\x00\x05\x00CS\xff\xff",  # a CS of odd, huge length
        b"\x08\x00\x05\x00OB\x00\x00\xff\xff\xff\xff",  # only SQ and UN may be undefined
        b"\x10\x00\x10\x00PN\x04\x00Doe^",  # group 0010 never comes first
    ],
)
def test_other_files_are_not_dicom(data: bytes) -> None:
    assert not sniff(data)


@pytest.mark.parametrize(
    "data",
    [encapsulated()[132:], encapsulated()[:128] + b"DICX" + encapsulated()[132:]],
    ids=["no-preamble", "DICX"],
)
def test_files_without_preamble_or_prefix_are_extracted(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "x.dcm").write_bytes(data)
    result = extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").read_bytes() == PDF
    assert result.size == len(PDF)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_bare_data_set_header_is_read(syntax: str) -> None:
    ds = read_header(io.BytesIO(bare_dataset(syntax)), "bare.dcm")
    assert ds.SOPInstanceUID == "1.2.3.4"
    assert ds.EncapsulatedDocument.startswith(PDF)


def test_a_pdf_is_not_read_as_dicom() -> None:
    with pytest.raises(InputError, match=r"^doc.pdf is not a DICOM file"):
        read_header(io.BytesIO(PDF), "doc.pdf")


@pytest.mark.parametrize(
    "data",
    [
        encapsulated(),
        encapsulated()[132:],
        encapsulated()[:128] + b"DICX" + encapsulated()[132:],
        bare_dataset(ImplicitVRLittleEndian),
    ],
    ids=["complete", "no-preamble", "DICX", "bare-implicit"],
)
def test_dicom_is_never_wrapped_as_a_pdf(tmp_path: Path, data: bytes) -> None:
    assert b"%PDF-" in data[:1024]
    (tmp_path / "in.dcm").write_bytes(data)
    with pytest.raises(
        NotAPdfError,
        match=r"^\S+in.dcm is a DICOM file, not a PDF; extract its document first, or upload it",
    ):
        encode_pdf(tmp_path / "in.dcm", tmp_path / "out.dcm")
    assert not (tmp_path / "out.dcm").exists()


# --- hostile and damaged objects ---------------------------------------------------------


def element(group: int, number: int, vr: bytes, value: bytes) -> bytes:
    """One Explicit VR Little Endian element."""
    if vr in (b"OB", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", group, number, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, number, vr, len(value)) + value


def refused(data: bytes, tmp_path: Path) -> str:
    """The one-line error ``pdf2dcm extract`` gives for ``data``; checks exit 2, no output."""
    (tmp_path / "x.dcm").write_bytes(data)
    result = CliRunner().invoke(cli, ["extract", str(tmp_path / "x.dcm"), "-o", "out.pdf"])
    assert result.exit_code == 2, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dcm"]
    assert not Path("out.pdf").exists()
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    prefix, _, message = lines[0].partition("error: ")
    assert prefix in ("", "pdf2dcm: ")
    return message.replace(str(tmp_path) + "/", "")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def position(data: bytes, tag: tuple[int, int]) -> int:
    """Where an element of the (top-level, Explicit VR LE) data set starts."""
    return data.index(struct.pack("<HH", *tag), 132)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"", "holds an empty document; there is no PDF in it"),
        (
            b"Dear colleague,\n" * 100,
            "holds a document that is not a PDF (it starts with b'Dear colleague,\\n', not "
            "%PDF-); nothing was extracted",
        ),
        (b"\x00" * 1024 + b"%PDF-1.4\n", "holds a document that is not a PDF (it starts with"),
    ],
    ids=["empty", "text", "late-header"],
)
def test_a_document_that_is_not_a_pdf_is_refused(
    tmp_path: Path, document: bytes, reason: str
) -> None:
    assert refused(encapsulated(document), tmp_path).startswith(f"x.dcm {reason}")


def test_truncation_is_named_where_it_happens(tmp_path: Path) -> None:
    data = encapsulated()
    size = len(data)
    document = position(data, (0x0042, 0x0011))
    mime = position(data, (0x0042, 0x0012))
    cases = {
        document: f"x.dcm is truncated at byte {document}: it ends before EncapsulatedDocument "
        "(0042,0011); get a complete copy of the file",
        mime: f"x.dcm is truncated at byte {mime}: it ends before "
        "MIMETypeOfEncapsulatedDocument (0042,0012); get a complete copy of the file",
        document + 5: f"x.dcm is truncated at byte {document + 5}: it ends inside an element's "
        "header; get a complete copy of the file",
        size - 100: f"x.dcm: EncapsulatedDocument (0042,0011) declares a length beyond the end "
        f"of the file ({len(PDF)} bytes at offset {document + 12}, file is {size - 100} bytes); "
        "the file is truncated or damaged",
    }
    for cut, message in cases.items():
        assert refused(data[:cut], tmp_path) == message


def test_a_length_beyond_the_file_is_named_without_reading_it(tmp_path: Path) -> None:
    data = encapsulated()
    at = position(data, (0x0042, 0x0011))
    lie = element(0x0009, 0x1010, b"OB", b"")[:-4] + struct.pack("<I", 3_000_000_000)
    hostile = data[:at] + lie + data[at:]
    assert refused(hostile, tmp_path) == (
        "x.dcm: private or unknown attribute (0009,1010) declares a length beyond the "
        f"end of the file (3000000000 bytes at offset {at + 12}, file is {len(hostile)} bytes); "
        "the file is truncated or damaged"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            struct.pack("<II", len(PDF), len(PDF)),
            "EncapsulatedDocumentLength (0042,0015) holds 2 values, but it must hold one",
        ),
        (
            struct.pack("<I", len(PDF))[:3],
            "EncapsulatedDocumentLength (0042,0015) has a 3-byte value, but a UL value is 4 bytes",
        ),
    ],
    ids=["two-values", "three-bytes"],
)
def test_a_malformed_document_length_is_refused(tmp_path: Path, value: bytes, reason: str) -> None:
    data = encapsulated()
    at = position(data, (0x0042, 0x0015))
    assert data[at:].startswith(b"B\x00\x15\x00UL\x04\x00")
    assert len(data) == at + 12
    damaged = data[:at] + element(0x0042, 0x0015, b"UL", value)
    assert refused(damaged, tmp_path) == f"x.dcm: {reason}; the file is damaged"


def test_a_huge_value_is_quoted_briefly(tmp_path: Path) -> None:
    data = encapsulated()
    at = position(data, (0x0042, 0x0012))
    end = position(data, (0x0042, 0x0015))
    mime = b"application/" + b"x" * 60_000
    message = refused(data[:at] + element(0x0042, 0x0012, b"LO", mime) + data[end:], tmp_path)
    assert message == (
        "x.dcm holds a document of MIME type 'application/" + "x" * 67 + "... "
        "(60012 characters), not application/pdf"
    )


def nested(depth: int) -> bytes:
    """ContentSequence items nested ``depth`` deep, each of undefined length."""
    opening = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
        "<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF
    )
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return opening * depth + closing * depth


@pytest.mark.parametrize("depth", [MAX_SEQUENCE_DEPTH + 1, 1000, 100_000])
def test_sequences_nested_too_deep_are_refused(tmp_path: Path, depth: int) -> None:
    data = encapsulated()
    at = position(data, (0x0042, 0x0011))
    deep = data[:at] + nested(depth) + data[at:]
    byte = at + MAX_SEQUENCE_DEPTH * 20 + 12  # after the header of the sequence too many
    assert refused(deep, tmp_path) == (
        f"x.dcm: sequences nest more than 64 deep (in ContentSequence (0040,A730) at byte "
        f"{byte}); pdf2dcm reads at most 64 levels"
    )


def test_sequences_nested_to_the_limit_are_read(tmp_path: Path) -> None:
    data = encapsulated()
    at = position(data, (0x0042, 0x0011))
    (tmp_path / "x.dcm").write_bytes(data[:at] + nested(MAX_SEQUENCE_DEPTH) + data[at:])
    extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").read_bytes() == PDF


def test_an_item_longer_than_its_sequence_is_refused(tmp_path: Path) -> None:
    data = encapsulated()
    at = position(data, (0x0042, 0x0011))
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 40) + element(0x0008, 0x0100, b"SH", b"CODE")
    sequence = element(0x0040, 0xA730, b"SQ", item)
    assert refused(data[:at] + sequence + data[at:], tmp_path) == (
        f"x.dcm: ContentSequence (0040,A730) declares a length beyond the end of its item "
        f"(40 bytes at offset {at + 20}, the item ends at byte {at + 12 + len(item)}); "
        "the file is damaged"
    )


def test_pydicom_warnings_never_reach_the_user(tmp_path: Path) -> None:
    ds = pydicom.dcmread(io.BytesIO(encapsulated()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.SOPInstanceUID = "1.2.x.4"
        ds.SpecificCharacterSet = "ISO_IR 999"
        ds.PatientName = b"\xff\xfe"
        buffer = io.BytesIO()
        ds.save_as(buffer)
    (tmp_path / "x.dcm").write_bytes(buffer.getvalue())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")
    assert [str(w.message) for w in caught] == []
    assert (tmp_path / "x.pdf").read_bytes() == PDF


# --- deflated data sets --------------------------------------------------------------------


@pytest.mark.parametrize("size", [3001, 200_000])
@pytest.mark.parametrize("length", [-1, None], ids=["with-length", "without-length"])
def test_deflated_objects_round_trip_byte_exact(
    tmp_path: Path, size: int, length: int | None
) -> None:
    pdf = make_pdf(size)
    data = encapsulated(pdf, syntax=DeflatedExplicitVRLittleEndian, length=length)
    (tmp_path / "x.dcm").write_bytes(data)
    result = extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").read_bytes() == pdf
    assert result.sha256 == hashlib.sha256(pdf).hexdigest()


def test_a_truncated_deflated_object_is_refused(tmp_path: Path) -> None:
    data = encapsulated(make_pdf(200_000), syntax=DeflatedExplicitVRLittleEndian)
    assert re.fullmatch(
        r"x.dcm: EncapsulatedDocument \(0042,0011\) declares a length beyond the end of the "
        r"file \(200000 bytes at offset 66, its inflated data set is \d{5} bytes\); the file is "
        r"truncated or damaged",
        refused(data[: len(data) // 2], tmp_path),
    )
    start = 132 + 12 + struct.unpack_from("<I", data, 140)[0]
    inflated = zlib.decompress(data[start:], -zlib.MAX_WBITS)
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    unfinished = data[:start] + packer.compress(inflated) + packer.flush(zlib.Z_SYNC_FLUSH)
    assert refused(unfinished, tmp_path) == (
        f"x.dcm is truncated at byte {len(unfinished)}: its deflated data set stops "
        "mid-stream; get a complete copy of the file"
    )
    damaged = data[:start] + b"\xff" * 4 + data[start + 4 :]
    assert refused(damaged, tmp_path).startswith(
        "x.dcm: its deflated data set is damaged (Error -3 while decompressing data"
    )


MEMORY_PROBE = """
import sys

import pydicom.filereader  # extract_pdf imports it for this file: not extraction's memory
import pdf2dcm.tags
from pdf2dcm.extract import extract_pdf

def peak_kib():
    # VmHWM belongs to this program's memory; ru_maxrss would inherit pytest's across exec.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

before = peak_kib()
extract_pdf(sys.argv[1], sys.argv[2])
print(peak_kib() - before)
"""


def test_deflated_extraction_keeps_memory_flat(tmp_path: Path) -> None:
    """A 32 MiB document that deflates to almost nothing: inflating it whole would cost
    32 MiB, more than the 20 MiB allowed."""
    pdf = b"%PDF-1.4\n%" + b"0" * (32 * 1024 * 1024) + b"\n%%EOF\n"
    data = encapsulated(pdf, syntax=DeflatedExplicitVRLittleEndian)
    assert len(data) < 200_000
    (tmp_path / "x.dcm").write_bytes(data)
    del data
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "x.dcm"), str(tmp_path / "x.pdf")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stderr == ""
    assert int(probe.stdout) < 20 * 1024, f"extraction grew by {probe.stdout.strip()} KiB"
    assert (
        hashlib.sha256((tmp_path / "x.pdf").read_bytes()).digest() == hashlib.sha256(pdf).digest()
    )


def test_a_huge_value_before_the_document_is_skipped_not_read(tmp_path: Path) -> None:
    """A 3 GB private value (sparse here) is stepped over: neither read nor held in memory."""
    data = encapsulated()
    at = position(data, (0x0042, 0x0011))
    huge = 3_000_000_000
    path = tmp_path / "x.dcm"
    with path.open("wb") as out:
        out.write(data[:at] + struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, huge))
        out.seek(huge, io.SEEK_CUR)
        out.write(data[at:])
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path), str(tmp_path / "x.pdf")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert int(probe.stdout) < 20 * 1024, f"extraction grew by {probe.stdout.strip()} KiB"
    assert (tmp_path / "x.pdf").read_bytes() == PDF


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, ImplicitVRLittleEndian])
def test_sequences_are_walked_in_every_byte_order(tmp_path: Path, syntax: str) -> None:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "18748-4", "LN", "Report"
    inner = Dataset()
    inner.ConceptNameCodeSequence = [code]
    extra = Dataset()
    extra.ConceptNameCodeSequence = [code]
    extra.ContentSequence = [inner, inner]
    (tmp_path / "x.dcm").write_bytes(encapsulated(syntax=syntax, extra=extra))
    extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").read_bytes() == PDF
    with (tmp_path / "x.dcm").open("rb") as handle:
        header = read_header(handle, "x.dcm")
    assert header.ContentSequence[1].ConceptNameCodeSequence[0].CodeMeaning == "Report"
