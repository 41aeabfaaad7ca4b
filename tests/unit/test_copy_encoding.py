"""The bytes around the document, encoded by the fast path, against pydicom's own writer.

pydicom (``write_file_meta_info`` and ``write_dataset``) is the oracle: for every data set,
whatever its values, VRs and character sets, the head and tail must be the same bytes.
"""

from __future__ import annotations

import copy
import datetime as dt
import struct
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from pdf2dcm import dicom
from pdf2dcm.dicom import (
    ENCAPSULATED_PDF_STORAGE,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    open_encoded,
)
from tests.pdfs import make_pdf

DOCUMENT = 0x00420011
# pydicom warns about values that break their VR's rules; these tests make such values on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def pydicom_encoding(ds: Dataset, size: int) -> tuple[bytes, bytes]:
    """Head and tail as pydicom writes them (the encoder's former implementation)."""
    before, after = Dataset(), Dataset()
    for element in ds:
        (before if element.tag < DOCUMENT else after).add(element)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    head, tail = DicomBytesIO(), DicomBytesIO()
    for buffer in (head, tail):
        buffer.is_little_endian, buffer.is_implicit_VR = True, False
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    write_dataset(head, before)
    head.write(struct.pack("<HH2sHI", 0x0042, 0x0011, b"OB", 0, size + size % 2))
    if size % 2:
        tail.write(b"\x00")
    write_dataset(tail, after, parent_encoding=ds.get("SpecificCharacterSet", "ISO_IR 6"))
    return head.getvalue(), tail.getvalue()


def both(ds: Dataset, size: int = 1001) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    expected = pydicom_encoding(copy.deepcopy(ds), size)
    return dicom._encode_around_document(ds, size), expected


def outcome(encode: Callable[[], tuple[bytes, bytes]]) -> tuple[bytes, bytes] | str:
    """The bytes, or the kind of error, so that failing alike counts as agreeing."""
    try:
        return encode()
    except (UnicodeError, LookupError, ValueError) as error:
        return type(error).__name__


def base_dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.11"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.1.123"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = 1001
    return ds


def test_an_encoded_pdf_gets_pydicoms_bytes_and_mostly_without_pydicom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf(2001, title=b"(Quarterly report)"))
    calls: list[str] = []
    real = write_data_element

    def counted(out: DicomBytesIO, element: DataElement, encodings: list[str]) -> None:
        calls.append(element.VR)
        real(out, element, encodings)

    tags = {"PatientName": "Doe^Jane", "PatientID": "123", "AccessionNumber": "A7"}
    moment = dt.datetime(2024, 3, 5, 14, 7, 9)
    with open_encoded(source, tags=tags, now=moment) as document:
        ds = document.dataset
        written = (document._head, document._tail)
    expected = pydicom_encoding(copy.deepcopy(ds), 2001)
    assert written == expected  # fastwrite's, an ordinary document
    monkeypatch.setattr("pydicom.filewriter.write_data_element", counted)
    assert dicom._encode_around_document(ds, 2001) == expected
    # Names, numbers as text and the empty code sequence are pydicom's; the rest is not.
    assert sorted(calls) == ["IS", "IS", "PN", "PN", "SQ"]


def test_non_ascii_text_in_utf8_and_latin1() -> None:
    for charset, name in (("ISO_IR 192", "Müller^Jürgen"), ("ISO_IR 100", "Hôpital Nord")):
        ds = base_dataset()
        ds.SpecificCharacterSet = charset
        ds.PatientName = name
        ds.InstitutionName = name.replace("^", " ")
        ds.StudyDescription = "plain ASCII"
        ds.DocumentTitle = "Résumé, \\ and ~"
        fast, expected = both(ds)
        assert fast == expected


def test_code_extensions_and_single_byte_japanese() -> None:
    ds = base_dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎"
    ds.InstitutionName = "ASCII only"
    ds.StudyDescription = "東京"
    fast, expected = both(ds)
    assert fast == expected
    ds = base_dataset()
    ds.SpecificCharacterSet = "ISO_IR 13"
    ds.InstitutionName = "back\\slash~tilde"
    ds.StudyDescription = "ﾔﾏﾀﾞ"
    fast, expected = both(ds)
    assert fast == expected


def test_values_of_every_shape() -> None:
    ds = base_dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Modality = ""
    ds.Manufacturer = None
    ds.add(DataElement(0x00081030, "LO", ["one", "two", "three"]))
    ds.add(DataElement(0x00180015, "CS", []))
    ds.Rows = 512
    ds.add(DataElement(0x00181150, "IS", "12"))
    ds.add(DataElement(0x00181152, "DS", "0.5\\1.25"))
    ds.add(DataElement(0x00200012, "IS", None))
    ds.add(DataElement(0x00281053, "DS", 1.5))
    ds.add(DataElement(0x00186020, "SL", -7))
    ds.add(DataElement(0x00186040, "UL", 4_000_000_000))
    ds.add(DataElement(0x0018601E, "SS", [-1, 2]))
    ds.add(DataElement(0x00280106, "US or SS", 3))
    ds.add(DataElement(0x00091010, "LO", "Private creator"))
    ds.add(DataElement(0x00091011, "UN", b"\x01\x02\x03"))
    ds.add(DataElement(0x00080000, "UL", 1234))
    ds.add(DataElement(0x00204000, "LT", "x" * 70_000))
    ds.add(DataElement(0x00400280, "ST", "odd"))
    ds.add(DataElement(0x00420010, "ST", "Title"))
    ds.add(DataElement(0x00189918, "UT", "y" * 70_001))
    ds.add(DataElement(0x0040A160, "UT", "after the document"))
    item = Dataset()
    item.CodeValue = "11528-7"
    item.CodeMeaning = "Radiology report"
    ds.ConceptNameCodeSequence = Sequence([item])
    ds.add(DataElement(0x00190010, "OB", b"\x01\x02\x03"))
    for size in (1000, 1001):
        fast, expected = both(ds, size)
        assert fast == expected


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\\\x00"), max_size=12)
VALUES = {
    "LO": TEXT,
    "SH": TEXT,
    "ST": TEXT,
    "CS": st.text(alphabet="ABCDEFGHIJ_ 0123456789", max_size=16),
    "DA": st.sampled_from(["", "20240305", "2024"]),
    "UI": st.sampled_from(["", "1.2", "1.23", "1.2.840.10008.5.1.4.1.1.104.1"]),
}
TAGS = {"LO": 0x00081030, "SH": 0x00080050, "ST": 0x00324000, "CS": 0x00080060}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    charset=st.sampled_from([None, "ISO_IR 100", "ISO_IR 192", "ISO_IR 144", "ISO_IR 6"]),
    values=st.fixed_dictionaries(
        {vr: st.one_of(VALUES[vr], st.lists(VALUES[vr], max_size=3)) for vr in TAGS}
    ),
    date=VALUES["DA"],
    uid=VALUES["UI"],
)
def test_random_values_match_pydicom(
    charset: str | None, values: dict[str, str | list[str]], date: str, uid: str
) -> None:
    ds = base_dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    for vr, tag in TAGS.items():
        ds.add(DataElement(tag, vr, values[vr]))
    ds.add(DataElement(0x00080020, "DA", date))
    ds.add(DataElement(0x00081155, "UI", uid))
    ds.add(DataElement(0x0040A160, "LO", values["LO"]))
    expected = outcome(lambda: pydicom_encoding(copy.deepcopy(ds), 1001))
    assert outcome(lambda: dicom._encode_around_document(ds, 1001)) == expected


def test_the_file_reads_back_with_pydicom(tmp_path: Path) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf(1500))
    with open_encoded(source, tags={"PatientName": "Doe^Jane"}) as document:
        (tmp_path / "out.dcm").write_bytes(b"".join(document.chunks()))
        uid = str(document.dataset.SOPInstanceUID)
    read = pydicom.dcmread(tmp_path / "out.dcm")
    assert read.file_meta.MediaStorageSOPInstanceUID == uid
    assert read.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert read.EncapsulatedDocument == source.read_bytes()
