"""The planning stage's rules in the fast loop, each pinned so that weakening it fails here:
study-level values of a joined study, the strict ISO 2022 check, the reference's time zone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from pdf2dcm.cli import cli
from pdf2dcm.identity import is_strict_iso2022
from tests.pdfs import make_pdf
from tests.unit.test_identity import _reference

JAPANESE = "Yamada^Tarou=山田^太郎=やまだ^たろう"


def encode(tmp_path: Path, *args: str) -> tuple[int, str, Path]:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(make_pdf(2000))
    out = tmp_path / "doc.dcm"
    result = CliRunner().invoke(cli, ["encode", str(pdf), "-o", str(out), *args])
    return result.exit_code, result.stderr, out


@pytest.mark.parametrize(
    ("keyword", "theirs", "given"),
    [
        ("StudyDescription", "Images", "Other"),
        ("StudyDate", "20240101", "20200202"),
        ("StudyTime", "101010", "121212"),
        ("StudyID", "S1", "S2"),
        ("ReferringPhysicianName", "Doe^John", "Roe^Richard"),
        ("AccessionNumber", "A1", "A2"),
    ],
)
def test_a_study_value_other_than_the_study_s_is_refused(
    tmp_path: Path, keyword: str, theirs: str, given: str
) -> None:
    ref = _reference(tmp_path / "ref.dcm", "ISO_IR 100", **{keyword: theirs})
    code, stderr, out = encode(tmp_path, "--study-from", str(ref), "--tag", f"{keyword}={given}")
    assert code == 2
    assert keyword in stderr
    assert repr(theirs) in stderr or theirs in stderr
    assert not out.exists()
    code, stderr, out = encode(tmp_path, "--study-from", str(ref), "--tag", f"{keyword}={theirs}")
    assert code == 0, stderr
    assert str(pydicom.dcmread(out).get(keyword)) == theirs


def test_a_name_written_differently_but_equal_is_not_a_study_conflict(tmp_path: Path) -> None:
    ref = _reference(tmp_path / "ref.dcm", "ISO_IR 100", ReferringPhysicianName="Doe^John")
    args = ["--study-from", str(ref), "--tag", "ReferringPhysicianName=Doe^John^^^"]
    code, stderr, out = encode(tmp_path, *args)
    assert code == 0, stderr
    assert pydicom.dcmread(out).ReferringPhysicianName == "Doe^John"


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        (b"Befund f\xfcr", False),  # raw Latin-1 under the ASCII default G0 set
        (b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", True),
        (b"\x1b-A Befund f\xfcr", True),  # Latin-1 designated as G1 first
        (b"plain", True),
        (b"\x80", False),
    ],
)
def test_the_iso_2022_check_refuses_8_bit_bytes_before_a_g1_designation(
    data: bytes, valid: bool
) -> None:
    assert is_strict_iso2022(data, ["", "ISO 2022 IR 87"]) is valid


def test_a_latin1_title_in_a_japanese_study_is_utf8_not_a_raw_byte(tmp_path: Path) -> None:
    ref = _reference(tmp_path / "ref.dcm", ["", "ISO 2022 IR 87"], PatientName=JAPANESE)
    code, stderr, out = encode(tmp_path, "--study-from", str(ref), "--title", "Befund für Müller")
    assert code == 0, stderr
    ds = pydicom.dcmread(out)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.get_item(0x00420010).value.rstrip(b" ") == "Befund für Müller".encode()
    assert "the bytes of PatientName differ from the study's" in stderr


def test_a_japanese_title_in_a_japanese_study_keeps_its_set(tmp_path: Path) -> None:
    ref = _reference(tmp_path / "ref.dcm", ["", "ISO 2022 IR 87"], PatientName=JAPANESE)
    code, stderr, out = encode(tmp_path, "--study-from", str(ref), "--title", "同意書")
    assert code == 0, stderr
    ds = pydicom.dcmread(out)
    assert list(ds.SpecificCharacterSet) == ["", "ISO 2022 IR 87"]
    assert is_strict_iso2022(ds.get_item(0x00420010).value, ["", "ISO 2022 IR 87"])
    assert stderr == ""


def test_the_reference_s_time_zone_dates_the_document(tmp_path: Path) -> None:
    ref = _reference(tmp_path / "ref.dcm", "ISO_IR 100", TimezoneOffsetFromUTC="-0500")
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    code, stderr, out = encode(tmp_path, "--study-from", str(ref))
    end = dt.datetime.now(dt.timezone.utc)
    assert code == 0, stderr
    ds = pydicom.dcmread(out)
    assert ds.TimezoneOffsetFromUTC == "-0500"
    zone = dt.timezone(dt.timedelta(hours=-5))
    for date, time in [
        (ds.ContentDate, ds.ContentTime),
        (ds.InstanceCreationDate, ds.InstanceCreationTime),
    ]:
        written = dt.datetime.strptime(date + time.split(".")[0], "%Y%m%d%H%M%S")
        assert start - dt.timedelta(seconds=1) <= written.replace(tzinfo=zone) <= end
