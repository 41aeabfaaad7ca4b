"""Our files against the reference tools: valid to dciodvfy, readable by DCMTK, exact bytes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdf2dcm.dicom import encode_pdf, read_reference
from pdf2dcm.extract import extract_pdf
from tests.integration.oracles import dciodvfy_errors, dcm2pdf, dcm2pdf_expected, dcmdump_value
from tests.pdfs import make_pdf

NAMES = {"ascii": "Doe^Jane", "german": "Müller^Jürgen", "japanese": "山田^太郎"}
PDFS = {
    "tiny-odd": (1001, b"\n"),
    "tiny-even-eof": (1000, b""),
    "tiny-even-ends-in-x": (1000, b"x"),
    "tiny-odd-ends-in-nul": (1001, b"\x00"),
    "large-odd": (20 * 1024 * 1024 + 1, b"\n"),
    "large-even-ends-in-space": (20 * 1024 * 1024, b" "),
}


@pytest.mark.parametrize("pdf_case", list(PDFS))
@pytest.mark.parametrize("name_case", list(NAMES))
def test_valid_readable_and_byte_exact(tmp_path: Path, pdf_case: str, name_case: str) -> None:
    size, tail = PDFS[pdf_case]
    pdf = make_pdf(size, tail=tail, title=b"(Befund 7)")
    source = tmp_path / "in.pdf"
    source.write_bytes(pdf)
    name = NAMES[name_case]
    dicom = tmp_path / "out.dcm"
    encode_pdf(
        source,
        dicom,
        tags={"PatientName": name, "PatientID": "ID-42", "StudyDescription": f"Bericht {name}"},
    )
    assert dciodvfy_errors(dicom) == []
    assert dcm2pdf(dicom, tmp_path / "dcmtk.pdf") == dcm2pdf_expected(pdf)
    extract_pdf(dicom, tmp_path / "ours.pdf")
    assert (tmp_path / "ours.pdf").read_bytes() == pdf
    assert dcmdump_value(dicom, "PatientName") == name
    assert dcmdump_value(dicom, "PatientID") == "ID-42"
    assert dcmdump_value(dicom, "StudyDescription") == f"Bericht {name}"
    assert dcmdump_value(dicom, "DocumentTitle") == "Befund 7"
    ds = pydicom.dcmread(dicom, stop_before_pixels=True)
    assert str(ds.PatientName) == name
    assert ds.EncapsulatedDocumentLength == size


def test_the_dcm2pdf_bug_case_is_real(tmp_path: Path) -> None:
    """Guards the oracle itself: if DCMTK ever stops trimming, dcm2pdf_expected must change."""
    pdf = make_pdf(1000, tail=b"x")
    source = tmp_path / "in.pdf"
    source.write_bytes(pdf)
    encode_pdf(source, tmp_path / "out.dcm")
    assert dcm2pdf(tmp_path / "out.dcm", tmp_path / "dcmtk.pdf") == pdf[:-1]


def test_copied_study_and_series_stay_valid(tmp_path: Path) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf(3000))
    encode_pdf(source, tmp_path / "a.dcm", tags={"PatientName": "山田^太郎", "PatientID": "J1"})
    encode_pdf(source, tmp_path / "b.dcm", reference=read_reference(tmp_path / "a.dcm", "series"))
    assert dciodvfy_errors(tmp_path / "b.dcm") == []
    assert dcmdump_value(tmp_path / "b.dcm", "PatientName") == "山田^太郎"
    assert dcmdump_value(tmp_path / "b.dcm", "InstanceNumber") == "2"


_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\\^="
    ),
    max_size=7,  # at most 28 bytes of UTF-8, so that family^given fits PN's 64
).map(str.strip)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.binary(max_size=3000),
    family=_TEXT,
    given_name=_TEXT,
    patient_id=st.text(alphabet="ABCDEFGHIJ0123456789-", max_size=16),
    sex=st.sampled_from(["", "M", "F", "O"]),
    birth=st.dates(dt.date(1000, 1, 1), dt.date(2999, 12, 31)).map(lambda d: d.strftime("%Y%m%d")),
    accession=st.text(alphabet="ABCXYZ0123456789", max_size=16),
)
def test_random_documents_always_validate(
    tmp_path: Path,
    payload: bytes,
    family: str,
    given_name: str,
    patient_id: str,
    sex: str,
    birth: str,
    accession: str,
) -> None:
    pdf = b"%PDF-1.7\n" + payload
    source = tmp_path / "r.pdf"
    source.write_bytes(pdf)
    dicom = tmp_path / "r.dcm"
    name = f"{family}^{given_name}".rstrip("^")
    encode_pdf(
        source,
        dicom,
        overwrite=True,
        tags={
            "PatientName": name,
            "PatientID": patient_id,
            "PatientSex": sex,
            "PatientBirthDate": birth,
            "AccessionNumber": accession,
        },
    )
    assert dciodvfy_errors(dicom) == []
    extract_pdf(dicom, tmp_path / "r.out.pdf", overwrite=True)
    assert (tmp_path / "r.out.pdf").read_bytes() == pdf
    assert str(pydicom.dcmread(dicom).PatientName) == name
