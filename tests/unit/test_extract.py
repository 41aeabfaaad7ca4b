"""The extractor and the DICOM sniffer against hostile and careless files."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pdf2dcm.dicom import ENCAPSULATED_PDF_STORAGE, encode_pdf
from pdf2dcm.errors import InputError, NotAPdfError
from pdf2dcm.extract import extract_pdf, looks_like_dicom, read_header
from tests.pdfs import make_pdf

PDF = make_pdf(3000, title=b"(Sniffed)")


def encapsulated(
    document: bytes = PDF, *, syntax: str = ExplicitVRLittleEndian, length: int | None = -1
) -> bytes:
    """An Encapsulated PDF object written by pydicom, with its preamble and file meta."""
    ds = Dataset()
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
