"""The identity rules: conflicts refused, character sets kept, copied values checked in bytes."""

from __future__ import annotations

import datetime as dt
import io
import os
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from pdf2dcm.dicom import encode_pdf, read_reference
from pdf2dcm.errors import IdentityConflictError, InputError, TagError
from pdf2dcm.identity import normalized
from tests.conftest import PdfFactory
from tests.pdfs import make_pdf

MOMENT = dt.datetime(2024, 3, 5, 14, 7, 9)
JAPANESE = "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"


def _reference(path: Path, charset: str | list[str] | None, **values: object) -> Path:
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.SOPInstanceUID = "1.2.3.4.6"
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.SeriesInstanceUID = "1.2.3.4.5.1"
    ds.Modality = "DOC"
    ds.SeriesNumber = "3"
    ds.InstanceNumber = "7"
    ds.PatientID = "P1"
    ds.PatientSex = "F"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(ExplicitVRLittleEndian)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("keyword", "given"),
    [
        ("PatientID", "9999"),
        ("PatientName", "Somebody^Else"),
        ("PatientSex", "M"),
        ("PatientBirthDate", "19991231"),
        ("IssuerOfPatientID", "OTHER"),
        ("StudyInstanceUID", "1.2.3.9"),
        ("AccessionNumber", "A999"),
    ],
)
def test_a_value_contradicting_the_reference_is_refused_and_nothing_written(
    pdf_file: PdfFactory, tmp_path: Path, keyword: str, given: str
) -> None:
    ref = _reference(tmp_path / "ref.dcm", None, PatientName="Doe^Jane", AccessionNumber="A1")
    out = tmp_path / "o.dcm"
    with pytest.raises(IdentityConflictError) as caught:
        encode_pdf(pdf_file(), out, reference=read_reference(ref, "study"), tags={keyword: given})
    message = str(caught.value)
    assert keyword in message
    assert repr(given) in message
    assert str(ref) in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc1.pdf", "ref.dcm"]


def test_series_attributes_conflict_only_when_joining_the_series(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    ref = _reference(tmp_path / "ref.dcm", None, SeriesDescription="Scans")
    # Joining the study starts a new series, so series values are the user's to choose.
    encode_pdf(
        pdf_file(),
        tmp_path / "study.dcm",
        reference=read_reference(ref, "study"),
        tags={"SeriesDescription": "Letters", "SeriesNumber": "9"},
    )
    assert pydicom.dcmread(tmp_path / "study.dcm").SeriesDescription == "Letters"
    for keyword, value in [
        ("SeriesDescription", "Letters"),
        ("SeriesNumber", "9"),
        ("Modality", "OT"),
        ("SeriesInstanceUID", "1.2.9"),
    ]:
        with pytest.raises(IdentityConflictError, match=keyword):
            encode_pdf(
                pdf_file(),
                tmp_path / "series.dcm",
                reference=read_reference(ref, "series"),
                tags={keyword: value},
            )


def test_insignificant_differences_are_not_conflicts_and_the_reference_bytes_win(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    ref = _reference(tmp_path / "ref.dcm", None, PatientName="Doe^Jane")
    encode_pdf(
        pdf_file(),
        tmp_path / "o.dcm",
        reference=read_reference(ref, "series"),
        tags={"PatientName": "Doe^Jane^^", "PatientID": "P1 ", "SeriesNumber": "03"},
    )
    ds = pydicom.dcmread(tmp_path / "o.dcm")
    assert str(ds.PatientName) == "Doe^Jane"
    assert ds.PatientID == "P1"
    assert ds.SeriesNumber == 3


def test_normalization_rules() -> None:
    assert normalized("PatientName", "Doe^Jane^^^=") == "Doe^Jane"
    assert normalized("PatientName", "Doe ^Jane ") == "Doe^Jane"
    assert normalized("PatientName", "Doe^Jane") != normalized("PatientName", "Doe^Janet")
    assert normalized("SeriesNumber", " 007") == "7"
    assert normalized("PatientBirthDate", "19700101 ") == "19700101"


@pytest.mark.parametrize(
    ("charset", "name"),
    [
        ("ISO_IR 100", "Müller^Jürgen"),
        ("ISO_IR 192", "Müller^Jürgen=山田^太郎"),
        ("ISO_IR 144", "Иванов^Иван"),
        (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        (["ISO 2022 IR 13", "ISO 2022 IR 87"], JAPANESE),
    ],
)
def test_names_are_copied_exactly_in_the_references_own_character_set(
    pdf_file: PdfFactory, tmp_path: Path, charset: str | list[str], name: str
) -> None:
    ref = _reference(tmp_path / "ref.dcm", charset, PatientName=name, StudyDescription=name[:8])
    encode_pdf(pdf_file(), tmp_path / "o.dcm", reference=read_reference(ref, "study"))
    raw_ref = pydicom.dcmread(ref)
    raw_out = pydicom.dcmread(tmp_path / "o.dcm")
    for keyword in ("PatientName", "StudyDescription"):
        assert raw_out.get_item(keyword).value == raw_ref.get_item(keyword).value, keyword
    out = pydicom.dcmread(tmp_path / "o.dcm")
    assert str(out.PatientName) == name
    assert out.SpecificCharacterSet == pydicom.dcmread(ref).SpecificCharacterSet


def test_a_latin1_value_that_grows_past_its_limit_in_utf8_is_refused(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    description = "Kardiologische Untersuchung mit Übungs-EKG und Échographie, ää"
    assert len(description.encode("latin-1")) == 62
    ref = _reference(tmp_path / "ref.dcm", "ISO_IR 100", StudyDescription=description)
    # Kept in Latin-1, the value fits: 62 bytes.
    encode_pdf(pdf_file(), tmp_path / "ok.dcm", reference=read_reference(ref, "study"))
    assert pydicom.dcmread(tmp_path / "ok.dcm").StudyDescription == description
    # A given value Latin-1 cannot hold forces UTF-8, where the copied value is 66 bytes.
    with pytest.raises(TagError) as caught:
        encode_pdf(
            pdf_file(),
            tmp_path / "no.dcm",
            reference=read_reference(ref, "study"),
            tags={"SeriesDescription": "山田"},
        )
    message = str(caught.value)
    assert "StudyDescription" in message
    assert "copied from the reference" in message
    assert "64 bytes" in message
    assert not (tmp_path / "no.dcm").exists()


def test_reference_values_are_validated_like_given_tags(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    ref = _reference(tmp_path / "long.dcm", None, PatientName="Doe^Jane")
    ds = pydicom.dcmread(ref)
    with warnings.catch_warnings():
        # pydicom warns about the very value the test plants; the file is meant to be bad.
        warnings.simplefilter("ignore")
        ds.PatientID = "X" * 500
        ds.save_as(ref)
    with pytest.raises(TagError, match=r"PatientID .*64 bytes, this has 500"):
        encode_pdf(pdf_file(), tmp_path / "o.dcm", reference=read_reference(ref, "study"))
    ds.PatientID = "P1"
    ds.PatientName = ["Doe^Jane", "Roe^Richard"]
    ds.save_as(ref)
    with pytest.raises(TagError, match="single value"):
        read_reference(ref, "study")


def test_a_reference_without_character_set_is_guessed_and_warned_once(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    ref = _reference(tmp_path / "ref.dcm", None, PatientName="Doe^Jane")
    ref.write_bytes(ref.read_bytes().replace(b"Doe^Jane", "Dö^Jäne ".encode("latin-1")))
    reference = read_reference(ref, "study")
    assert len(reference.warnings) == 1
    assert "PatientName" in reference.warnings[0]
    assert "Latin-1" in reference.warnings[0]
    utf8 = _reference(tmp_path / "u.dcm", None, PatientName="Doe^Jane")
    utf8.write_bytes(utf8.read_bytes().replace(b"Doe^Jane", "Dö^Jäne".encode()[:8]))
    reference = read_reference(utf8, "study")
    assert "UTF-8" in reference.warnings[0]
    result = encode_pdf(pdf_file(), tmp_path / "o.dcm", reference=reference)
    assert result.warnings == ()
    assert str(pydicom.dcmread(tmp_path / "o.dcm").PatientName) == "Dö^Jän"


def test_long_pdf_titles_are_cut_in_bytes_at_a_character_boundary(tmp_path: Path) -> None:
    title = "ü" * 1100
    pdf = tmp_path / "t.pdf"
    pdf.write_bytes(
        make_pdf(8000, title=b"<FEFF" + title.encode("utf-16-be").hex().encode() + b">")
    )
    encode_pdf(pdf, tmp_path / "o.dcm")
    ds = pydicom.dcmread(tmp_path / "o.dcm")
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.DocumentTitle == "ü" * 512
    assert len(ds.get_item("DocumentTitle").value) <= 1024


def test_free_text_controls_become_spaces(pdf_file: PdfFactory, tmp_path: Path) -> None:
    encode_pdf(
        pdf_file(),
        tmp_path / "o.dcm",
        tags={"DocumentTitle": "a\tb\x07c", "StudyComments": "line\r\nnext"},
    )
    ds = pydicom.dcmread(tmp_path / "o.dcm")
    assert ds.DocumentTitle == "a b c"


def test_stdin_and_undecodable_names_get_a_clean_title(tmp_path: Path) -> None:
    stream = io.BytesIO(make_pdf(2000))
    encode_pdf(stream, tmp_path / "s.dcm", source_name="<stdin>")
    assert pydicom.dcmread(tmp_path / "s.dcm").DocumentTitle == "PDF document"
    odd = os.fsdecode(b"Bericht-\xff\xfe.pdf")
    (tmp_path / odd).write_bytes(make_pdf(2000))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        encode_pdf(tmp_path / odd, tmp_path / "n.dcm")
    assert [str(w.message) for w in seen] == []
    assert pydicom.dcmread(tmp_path / "n.dcm").DocumentTitle == "Bericht-\ufffd\ufffd"


def test_dates_follow_the_pdf_creation_time_in_one_zone(tmp_path: Path) -> None:
    pdf = tmp_path / "c.pdf"
    pdf.write_bytes(make_pdf(3000, title=b"(T) /CreationDate (D:20240101233000+09'00')"))
    now = dt.datetime(2024, 3, 5, 14, 7, 9, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    encode_pdf(pdf, tmp_path / "o.dcm", now=now)
    ds = pydicom.dcmread(tmp_path / "o.dcm")
    assert ds.TimezoneOffsetFromUTC == "+0100"
    assert (ds.ContentDate, ds.ContentTime) == ("20240101", "153000")
    assert ds.AcquisitionDateTime == "20240101153000"
    assert (ds.StudyDate, ds.StudyTime) == ("20240305", "140709")
    encode_pdf(pdf, tmp_path / "g.dcm", now=now, tags={"TimezoneOffsetFromUTC": "+0900"})
    given = pydicom.dcmread(tmp_path / "g.dcm")
    assert (given.ContentDate, given.ContentTime) == ("20240101", "233000")
    assert (given.StudyDate, given.StudyTime) == ("20240305", "220709")


@pytest.mark.parametrize("value", ["+1500", "-1300", "+0960", "0100"])
def test_offsets_outside_the_world_are_refused(
    pdf_file: PdfFactory, tmp_path: Path, value: str
) -> None:
    with pytest.raises(TagError, match="TimezoneOffsetFromUTC"):
        encode_pdf(pdf_file(), tmp_path / "o.dcm", tags={"TimezoneOffsetFromUTC": value})
    if value[0] in "+-":
        with pytest.raises(TagError, match="AcquisitionDateTime"):
            encode_pdf(
                pdf_file(), tmp_path / "o.dcm", tags={"AcquisitionDateTime": "20240101" + value}
            )


def test_series_from_several_files_takes_the_highest_instance_number(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    first = _reference(tmp_path / "a.dcm", None, InstanceNumber="2")
    second = _reference(tmp_path / "b.dcm", None, InstanceNumber="11")
    reference = read_reference([first, second], "series")
    assert reference.next_instance_number == 12
    folder = tmp_path / "series"
    folder.mkdir()
    for path in (first, second):
        (folder / path.name).write_bytes(path.read_bytes())
    assert read_reference([folder], "series").next_instance_number == 12
    other = _reference(tmp_path / "c.dcm", None, SeriesInstanceUID="1.2.3.4.5.9")
    with pytest.raises(InputError, match="one series"):
        read_reference([first, other], "series")


def test_a_series_copy_keeps_to_the_iod(pdf_file: PdfFactory, tmp_path: Path) -> None:
    ref = _reference(
        tmp_path / "ref.dcm",
        None,
        OperatorsName="Op^One",
        PerformingPhysicianName="Doc^Two",
        InstitutionName="General",
    )
    encode_pdf(pdf_file(), tmp_path / "o.dcm", reference=read_reference(ref, "series"))
    ds = pydicom.dcmread(tmp_path / "o.dcm")
    assert "OperatorsName" not in ds
    assert "PerformingPhysicianName" not in ds
    assert ds.InstitutionName == "General"
