"""The pydicom-free writer against dicom.py: the same bytes for every ordinary document.

Each case builds a document through dicom.py's full path (pydicom), takes its final attributes as
``attribute_values`` gives them (what a plan carries), writes them with fastwrite and
compares the two files byte for byte; documents fastwrite cannot write exactly are refused
by ``supports``, never written differently.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VM, dictionary_VR, tag_for_keyword

from pdf2dcm import dicom, fastwrite
from pdf2dcm.dicom import attribute_values, open_encoded
from pdf2dcm.errors import InputError
from tests.pdfs import make_pdf, titled_pdf, xmp_packet

MOMENT = dt.datetime(2024, 3, 5, 14, 7, 9)
CORPUS = {
    "one byte short of even": make_pdf(1001),
    "even": make_pdf(1002),
    "large": make_pdf(3 * 1024 * 1024 + 7, seed=3),
    "titled": titled_pdf(b"(Quarterly report)"),
    "titled in UTF-16": titled_pdf(b"<FEFF004A00FC0072006700650E01>"),
    "xmp title": make_pdf(4000, title=None, tail=b"\n" + xmp_packet("Befund für Jürgen")),
    "no end marker": make_pdf(2000, tail=b"\n%%EOX"),
}
TAG_SETS: dict[str, dict[str, str]] = {
    "none": {},
    "ascii patient": {"PatientName": "Doe^Jane", "PatientID": "4711"},
    "latin names": {"PatientName": "Müller^Jürgen", "StudyDescription": "Befund für Jürgen"},
    "japanese": {"PatientName": "Yamada^Tarou=山田^太郎", "SeriesDescription": "山田"},
    "study": {
        "PatientID": "P-1",
        "PatientBirthDate": "19800101",
        "PatientSex": "F",
        "AccessionNumber": "A123",
        "StudyDescription": "Kardiologie",
        "StudyInstanceUID": "1.2.826.0.1.3680043.10.1",
        "StudyDate": "20200102",
        "StudyTime": "101010",
        "ReferringPhysicianName": "Who^Doctor",
    },
    "numbers": {"SeriesNumber": "007", "InstanceNumber": "12"},
    "time zone": {"TimezoneOffsetFromUTC": "-0500"},
    "several values": {"OperatorsName": "A^B\\C^D", "StudyID": "S1"},
    "long text": {"PatientComments": "x" * 5001, "DocumentTitle": "T" * 1023},
    "empty title": {"DocumentTitle": ""},
    "odd title": {"DocumentTitle": "Consent"},
    "emoji title": {"DocumentTitle": "Befund 🫀 Seite 1"},
    "institution": {"InstitutionName": "Klinik Süd", "PatientAge": "042Y", "Manufacturer": "X"},
}


@contextlib.contextmanager
def full_build() -> Iterator[None]:
    """Every document built by pydicom (dicom.py's full path), ordinary ones included."""
    with mock.patch.object(dicom, "plain_attributes", return_value=None):
        yield


def _both(
    pdf: bytes, tmp_path: Path, tags: dict[str, str], **options: Any
) -> tuple[bytes, bytes | None, dict[str, Any]]:
    """dicom.py's file, fastwrite's (None when it declines) and the attributes."""
    source = tmp_path / "in.pdf"
    source.write_bytes(pdf)
    full = io.BytesIO()
    with (
        full_build(),
        open_encoded(source, tags=tags, now=MOMENT, **options) as document,
    ):
        document.write_to(full, checksum=False)
        attributes = attribute_values(document.dataset)
    if not fastwrite.supports(attributes):
        return full.getvalue(), None, attributes
    fast = io.BytesIO()
    with source.open("rb") as stream:
        digest = fastwrite.write(attributes, stream, len(pdf), fast, name="in.pdf")
    assert digest is not None
    assert len(digest) == 64
    return full.getvalue(), fast.getvalue(), attributes


@pytest.mark.parametrize("pdf_name", list(CORPUS))
@pytest.mark.parametrize("tag_set", list(TAG_SETS))
def test_the_same_bytes_as_dicom_py(pdf_name: str, tag_set: str, tmp_path: Path) -> None:
    full, fast, _attributes = _both(CORPUS[pdf_name], tmp_path, TAG_SETS[tag_set])
    assert fast is not None, "an ordinary document must not need pydicom"
    assert fast == full


def test_without_the_kernel_copy_and_checksum(tmp_path: Path) -> None:
    full, _fast, attributes = _both(CORPUS["even"], tmp_path, {})
    out = io.BytesIO()
    digest = fastwrite.write(
        attributes, io.BytesIO(CORPUS["even"]), 1002, out, name="x", checksum=False
    )
    assert digest is None
    assert out.getvalue() == full


def test_a_pdf_that_shrinks_is_refused(tmp_path: Path) -> None:
    _full, _fast, attributes = _both(CORPUS["even"], tmp_path, {})
    with pytest.raises(InputError, match=r"x\.pdf shrank while being read"):
        fastwrite.write(attributes, io.BytesIO(b"%PDF-"), 1002, io.BytesIO(), name="x.pdf")


TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=70
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=TEXT,
    patient_id=st.text(st.characters(codec="ascii", min_codepoint=32), max_size=64),
    description=TEXT,
    title=TEXT,
    size=st.integers(min_value=400, max_value=3000),
)
def test_any_ordinary_text_gives_the_same_bytes(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    patient_id: str,
    description: str,
    title: str,
    size: int,
) -> None:
    tags = {"PatientName": name, "PatientID": patient_id, "StudyDescription": description}
    tags["DocumentTitle"] = title
    try:
        full, fast, _attributes = _both(make_pdf(size), tmp_path_factory.mktemp("p"), tags)
    except InputError:
        return  # refused by the validation both paths share
    assert fast is not None
    assert fast == full


def test_unusual_documents_are_left_to_pydicom(tmp_path: Path) -> None:
    pdf = CORPUS["even"]
    code = {"CodeValue": "1", "CodingSchemeDesignator": "L", "CodeMeaning": "Consent"}
    sequence = {"ConceptNameCodeSequence": [code]}
    _full, fast, _ = _both(pdf, tmp_path, sequence)  # type: ignore[arg-type]
    assert fast is None
    _full, fast, _ = _both(pdf, tmp_path, {"OtherPatientIDs": "X"})
    assert fast is None
    _full, fast, _ = _both(pdf, tmp_path, {"ContentLabel": "LABEL"})
    assert fast is None
    assert not fastwrite.supports({"SpecificCharacterSet": "ISO 2022 IR 87"})
    assert not fastwrite.supports({"SpecificCharacterSet": "GB18030"})
    assert not fastwrite.supports({"PatientName": "Müller"})  # not ASCII, no character set
    assert not fastwrite.supports({"EncapsulatedDocumentLength": "²"})


def test_latin_1_reference_text_is_written_alike() -> None:
    attributes = {"SpecificCharacterSet": "ISO_IR 100", "PatientName": "Müller^Jürgen"}
    assert fastwrite.supports(attributes)
    head, _tail = fastwrite.encode_around_document(
        {**attributes, "SOPClassUID": "1.2", "SOPInstanceUID": "1.3"}, 4
    )
    assert b"\x10\x00\x10\x00PN\x0e\x00M\xfcller^J\xfcrgen " in head


def test_the_keywords_are_pydicom_s() -> None:
    for keyword, (tag, vr, vm) in fastwrite.ELEMENTS.items():
        assert tag_for_keyword(keyword) == tag, keyword
        assert dictionary_VR(tag) == vr, keyword
        assert dictionary_VM(tag) == vm, keyword
    assert fastwrite.IMPLEMENTATION_CLASS_UID == dicom.IMPLEMENTATION_CLASS_UID
    assert fastwrite.IMPLEMENTATION_VERSION_NAME == dicom.IMPLEMENTATION_VERSION_NAME


def test_importing_it_loads_no_pydicom_nor_requests() -> None:
    probe = (
        "import sys, pdf2dcm.fastwrite; print(sorted({'pydicom', 'requests'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
