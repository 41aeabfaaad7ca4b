"""The encoder and extractor against pydicom: exact bytes, exact values, clear refusals."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pdf2dcm.dicom import (
    ENCAPSULATED_PDF_STORAGE,
    IMPLEMENTATION_CLASS_UID,
    encode_pdf,
    read_reference,
)
from pdf2dcm.errors import InputError, NotAPdfError, NotEncapsulatedPdfError, TagError
from pdf2dcm.extract import extract_pdf
from pdf2dcm.plan import Planner, PlanOptions
from pdf2dcm.uids import batch_tags
from tests.conftest import PdfFactory
from tests.pdfs import make_pdf

MOMENT = dt.datetime(2024, 3, 5, 14, 7, 9)


@pytest.mark.parametrize("size", [1000, 1001, 4 * 1024 * 1024 + 1])
def test_round_trip_is_byte_exact_and_padding_is_recorded(
    pdf_file: PdfFactory, tmp_path: Path, size: int
) -> None:
    source = pdf_file(size)
    result = encode_pdf(source, tmp_path / "out.dcm", now=MOMENT)
    ds = pydicom.dcmread(tmp_path / "out.dcm")
    assert len(ds.EncapsulatedDocument) == size + size % 2
    assert ds.EncapsulatedDocumentLength == size
    if size % 2:
        assert ds.EncapsulatedDocument[-1:] == b"\x00"
    back = extract_pdf(tmp_path / "out.dcm", tmp_path / "back.pdf")
    assert (tmp_path / "back.pdf").read_bytes() == source.read_bytes()
    assert back.sha256 == result.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert back.size == result.pdf_size == size


def test_defaults_make_a_complete_object(pdf_file: PdfFactory, tmp_path: Path) -> None:
    encode_pdf(pdf_file(1200, name="Annual Report.pdf"), tmp_path / "o.dcm", now=MOMENT)
    ds = pydicom.dcmread(tmp_path / "o.dcm")
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == ENCAPSULATED_PDF_STORAGE
    assert ds.Modality == "DOC"
    assert ds.ConversionType == "WSD"
    assert ds.BurnedInAnnotation == "YES"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.DocumentTitle == "Annual Report"
    assert ds.SeriesNumber == 1
    assert ds.InstanceNumber == 1
    assert ds.ConceptNameCodeSequence == []
    for keyword in ("StudyDate", "ContentDate", "InstanceCreationDate"):
        assert ds[keyword].value == "20240305"
    for keyword in ("StudyTime", "ContentTime", "InstanceCreationTime"):
        assert ds[keyword].value == "140709"
    assert ds.AcquisitionDateTime == "20240305140709"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        assert keyword in ds
        assert ds[keyword].value in ("", None)
    assert "SpecificCharacterSet" not in ds
    uids = {ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID}
    assert len(uids) == 3
    assert all(len(uid) <= 64 for uid in uids)


@pytest.mark.parametrize(
    "name", ["Doe^Jane", "Müller^Jürgen", "山田^太郎", "Yamada^Tarou=山田^太郎=やまだ^たろう"]
)
def test_names_read_back_exactly_with_the_right_character_set(
    pdf_file: PdfFactory, tmp_path: Path, name: str
) -> None:
    encode_pdf(
        pdf_file(),
        tmp_path / "o.dcm",
        tags={"PatientName": name, "StudyDescription": "Befund für Jürgen"},
    )
    ds = pydicom.dcmread(tmp_path / "o.dcm")
    assert str(ds.PatientName) == name
    assert ds.StudyDescription == "Befund für Jürgen"
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    raw = (tmp_path / "o.dcm").read_bytes()
    assert name.encode("utf-8") in raw


def test_ascii_only_values_need_no_character_set(pdf_file: PdfFactory, tmp_path: Path) -> None:
    encode_pdf(pdf_file(), tmp_path / "o.dcm", tags={"PatientName": "Doe^Jane"})
    assert "SpecificCharacterSet" not in pydicom.dcmread(tmp_path / "o.dcm")


def test_user_tags_override_defaults_and_keep_their_type(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    concept = [{"CodeValue": "11488-4", "CodingSchemeDesignator": "LN", "CodeMeaning": "Consult"}]
    encode_pdf(
        pdf_file(),
        tmp_path / "o.dcm",
        tags={
            "Modality": "OT",
            "0008,0050": "ACC-1",
            "SeriesNumber": "7",
            "ConceptNameCodeSequence": concept,
            "OtherPatientNames": "A^B\\C^D",
            "StudyDate": "19990101",
        },
        title="My title",
        conversion_type="SD",
        now=MOMENT,
    )
    ds = pydicom.dcmread(tmp_path / "o.dcm")
    assert ds.Modality == "OT"
    assert ds.AccessionNumber == "ACC-1"
    assert ds.SeriesNumber == 7
    assert ds.ConceptNameCodeSequence[0].CodeValue == "11488-4"
    assert ds.ConceptNameCodeSequence[0].CodeMeaning == "Consult"
    assert [str(n) for n in ds.OtherPatientNames] == ["A^B", "C^D"]
    assert ds.StudyDate == "19990101"
    assert ds.ContentDate == "20240305"
    assert ds.DocumentTitle == "My title"
    assert ds.ConversionType == "SD"


def test_title_comes_from_the_pdf_metadata(tmp_path: Path) -> None:
    source = tmp_path / "x.pdf"
    source.write_bytes(make_pdf(2000, title=b"(Entlassungsbrief M\\374ller)"))
    result = encode_pdf(source, tmp_path / "o.dcm")
    assert result.document_title == "Entlassungsbrief Müller"
    assert pydicom.dcmread(tmp_path / "o.dcm").DocumentTitle == "Entlassungsbrief Müller"


def test_stream_source_and_stream_destination(pdf_file: PdfFactory) -> None:
    data = pdf_file(3001).read_bytes()
    sink = io.BytesIO()
    encode_pdf(io.BytesIO(data), sink, source_name="<stdin>")
    sink.seek(0)
    out = io.BytesIO()
    extract_pdf(sink, out)
    assert out.getvalue() == data


def test_bad_tag_leaves_no_output(pdf_file: PdfFactory, tmp_path: Path) -> None:
    with pytest.raises(TagError, match=r"PatientSex"):
        encode_pdf(pdf_file(), tmp_path / "o.dcm", tags={"PatientSex": "Q"})
    assert list(tmp_path.glob("o.dcm*")) == []
    assert [p.name for p in tmp_path.iterdir()] == ["doc1.pdf"]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"", InputError, r"is empty; give a non-empty PDF"),
        (b"GIF89a....", NotAPdfError, r"is not a PDF \(it starts with b'GIF89a"),
    ],
)
def test_unusable_inputs_are_refused(
    tmp_path: Path, content: bytes, error: type[Exception], message: str
) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(content)
    with pytest.raises(error, match=message):
        encode_pdf(source, tmp_path / "o.dcm")
    assert not (tmp_path / "o.dcm").exists()


def test_existing_output_is_kept_without_overwrite(pdf_file: PdfFactory, tmp_path: Path) -> None:
    target = tmp_path / "o.dcm"
    target.write_bytes(b"precious")
    with pytest.raises(InputError, match=r"o.dcm already exists; use --overwrite"):
        encode_pdf(pdf_file(), target)
    assert target.read_bytes() == b"precious"
    encode_pdf(pdf_file(), target, overwrite=True)
    assert pydicom.dcmread(target).SOPClassUID == ENCAPSULATED_PDF_STORAGE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc1.pdf", "doc2.pdf", "o.dcm"]


def test_truncated_pdf_is_kept_with_a_warning(pdf_file: PdfFactory, tmp_path: Path) -> None:
    source = tmp_path / "cut.pdf"
    source.write_bytes(pdf_file(5000).read_bytes()[:3000])
    result = encode_pdf(source, tmp_path / "o.dcm")
    assert result.warnings == (f"{source} has no %%EOF marker near its end; it may be truncated",)
    extract_pdf(tmp_path / "o.dcm", tmp_path / "back.pdf")
    assert (tmp_path / "back.pdf").read_bytes() == source.read_bytes()


def _save(ds: Dataset, path: Path, syntax: str = ImplicitVRLittleEndian) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def _legacy_file(path: Path, document: bytes, *, length: int | None, syntax: str) -> None:
    """An Encapsulated PDF as other writers make them: other syntaxes, no length attribute."""
    ds = Dataset()
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = "1.2.3.4"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = document
    if length is not None:
        ds.EncapsulatedDocumentLength = length
    _save(ds, path, syntax)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
@pytest.mark.parametrize("size", [2000, 200_001])
def test_extract_handles_other_transfer_syntaxes(tmp_path: Path, syntax: str, size: int) -> None:
    data = make_pdf(size)
    _legacy_file(tmp_path / "x.dcm", data + b"\x00" * (size % 2), length=size, syntax=syntax)
    extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").read_bytes() == data


@pytest.mark.parametrize("size", [2000, 200_000])
def test_without_length_only_one_zero_pad_is_removed(tmp_path: Path, size: int) -> None:
    data = make_pdf(size - 2) + b"\x00"  # an odd-length PDF that really ends in 0x00
    _legacy_file(tmp_path / "x.dcm", data + b"\x00", length=None, syntax=ImplicitVRLittleEndian)
    extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").read_bytes() == data


def test_without_length_a_final_newline_is_kept(tmp_path: Path) -> None:
    data = make_pdf(2000, tail=b"\r\n")
    _legacy_file(tmp_path / "x.dcm", data, length=None, syntax=ImplicitVRLittleEndian)
    extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").read_bytes() == data


def test_inconsistent_length_is_refused(tmp_path: Path) -> None:
    _legacy_file(tmp_path / "x.dcm", make_pdf(2000), length=1500, syntax=ImplicitVRLittleEndian)
    with pytest.raises(
        NotEncapsulatedPdfError,
        match=r"EncapsulatedDocumentLength \(0042,0015\) says 1500 bytes but the document "
        r"holds 2000",
    ):
        extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


def test_other_mime_type_is_refused(tmp_path: Path) -> None:
    _legacy_file(tmp_path / "x.dcm", b"<xml/>", length=6, syntax=ImplicitVRLittleEndian)
    ds = pydicom.dcmread(tmp_path / "x.dcm")
    ds.MIMETypeOfEncapsulatedDocument = "text/xml"
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    with pytest.raises(NotEncapsulatedPdfError, match=r"MIME type 'text/xml', not application/pdf"):
        extract_pdf(tmp_path / "x.dcm", tmp_path / "x.pdf")


def test_other_objects_and_non_dicom_are_refused(pdf_file: PdfFactory, tmp_path: Path) -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3"
    _save(ds, tmp_path / "sc.dcm")
    with pytest.raises(
        NotEncapsulatedPdfError, match=r"sc.dcm is Secondary Capture Image Storage, not an"
    ):
        extract_pdf(tmp_path / "sc.dcm", tmp_path / "x.pdf")
    with pytest.raises(InputError, match=r"is not a DICOM file \(no DICM prefix"):
        extract_pdf(pdf_file(), tmp_path / "x.pdf")


def test_study_and_series_are_copied_from_a_reference(pdf_file: PdfFactory, tmp_path: Path) -> None:
    encode_pdf(
        pdf_file(),
        tmp_path / "first.dcm",
        tags={
            "PatientName": "Müller^Jürgen",
            "PatientID": "P1",
            "PatientBirthDate": "19700101",
            "AccessionNumber": "A7",
            "StudyDescription": "Kardiologie",
            "SeriesNumber": "4",
            "InstanceNumber": "9",
        },
    )
    first = pydicom.dcmread(tmp_path / "first.dcm")
    study = read_reference(tmp_path / "first.dcm", "study")
    encode_pdf(
        pdf_file(), tmp_path / "s.dcm", reference=study, tags={"StudyDescription": "Kardiologie"}
    )
    same_study = pydicom.dcmread(tmp_path / "s.dcm")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"):
        assert same_study[keyword].value == first[keyword].value
    assert same_study.StudyInstanceUID == first.StudyInstanceUID
    assert same_study.StudyDescription == "Kardiologie"
    assert same_study.SeriesInstanceUID != first.SeriesInstanceUID
    series = read_reference(tmp_path / "first.dcm", "series")
    encode_pdf(pdf_file(), tmp_path / "r.dcm", reference=series)
    same_series = pydicom.dcmread(tmp_path / "r.dcm")
    assert same_series.SeriesInstanceUID == first.SeriesInstanceUID
    assert same_series.SeriesNumber == 4
    assert same_series.InstanceNumber == 10
    assert same_series.SOPInstanceUID != first.SOPInstanceUID


def test_reference_in_latin1_stays_latin1_byte_for_byte(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4.6"
    _save(ds, tmp_path / "latin1.dcm", ExplicitVRLittleEndian)
    assert "Müller".encode("latin-1") in (tmp_path / "latin1.dcm").read_bytes()
    encode_pdf(
        pdf_file(), tmp_path / "o.dcm", reference=read_reference(tmp_path / "latin1.dcm", "study")
    )
    out = pydicom.dcmread(tmp_path / "o.dcm")
    assert out.SpecificCharacterSet == "ISO_IR 100"
    assert str(out.PatientName) == "Müller^Jürgen"
    raw = pydicom.dcmread(tmp_path / "o.dcm").get_item("PatientName").value
    assert raw == pydicom.dcmread(tmp_path / "latin1.dcm").get_item("PatientName").value
    assert raw.startswith("Müller^Jürgen".encode("latin-1"))
    assert out.StudyInstanceUID == "1.2.3.4.5"
    # A value Latin-1 cannot hold moves the whole object to UTF-8, never a mixture.
    encode_pdf(
        pdf_file(),
        tmp_path / "u.dcm",
        reference=read_reference(tmp_path / "latin1.dcm", "study"),
        tags={"SeriesDescription": "山田"},
    )
    utf8 = pydicom.dcmread(tmp_path / "u.dcm")
    assert utf8.get_item("PatientName").value.startswith("Müller^Jürgen".encode())
    assert utf8.SpecificCharacterSet == "ISO_IR 192"
    assert utf8.SeriesDescription == "山田"


def test_reference_without_study_is_refused(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3"
    _save(ds, tmp_path / "bare.dcm")
    with pytest.raises(InputError, match=r"bare.dcm has no StudyInstanceUID"):
        read_reference(tmp_path / "bare.dcm", "study")


def test_batch_shares_a_series_only_when_asked() -> None:
    separate = batch_tags({}, 3)
    assert separate == [{}, {}, {}]
    shared = batch_tags({0x00100010: "X"}, 3, same_series=True)
    assert len({t[0x0020000E] for t in shared}) == 1
    assert len({t[0x0020000D] for t in shared}) == 1
    assert all(0x00200013 not in t for t in shared)
    assert all(t[0x00100010] == "X" for t in shared)
    # The numbers are the planning stage's: one series, numbered in the order given.
    plans = Planner(PlanOptions({"PatientName": "X"}, same_series=True)).plan(
        ["a.pdf", "b.pdf", "c.pdf"], [{}, {}, {}], None
    )
    assert [p.tags[0x00200013] for p in plans] == ["1", "2", "3"]
    assert len({p.tags[0x0020000E] for p in plans}) == 1


def test_batch_refuses_one_sop_instance_uid_for_many() -> None:
    with pytest.raises(TagError, match=r"SOPInstanceUID \(0008,0018\) was given for 2 documents"):
        batch_tags({0x00080018: "1.2.3"}, 2)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.binary(min_size=0, max_size=5000),
    name=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\\^="),
        max_size=16,  # at most 64 bytes of UTF-8
    ),
)
def test_any_pdf_like_payload_round_trips(tmp_path: Path, payload: bytes, name: str) -> None:
    data = b"%PDF-1.7\n" + payload
    sink = io.BytesIO()
    encode_pdf(io.BytesIO(data), sink, tags={"PatientName": name.strip()})
    sink.seek(0)
    ds = pydicom.dcmread(io.BytesIO(sink.getvalue()))
    assert str(ds.PatientName) == name.strip()
    assert ds.EncapsulatedDocumentLength == len(data)
    out = io.BytesIO()
    extract_pdf(sink, out)
    assert out.getvalue() == data
