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
        (b"\x1b-A Befund f\xfcr", False),  # Latin-1 designated, but not declared
        (b"plain", True),
        (b"\x80", False),
    ],
)
def test_the_iso_2022_check_refuses_8_bit_bytes_before_a_g1_designation(
    data: bytes, valid: bool
) -> None:
    assert is_strict_iso2022(data, ["", "ISO 2022 IR 87"]) is valid


@pytest.mark.parametrize(
    ("data", "terms", "text"),
    [
        (b"\x1b-A Befund f\xfcr", ["", "ISO 2022 IR 87", "ISO 2022 IR 100"], " Befund für"),
        (b"\x1b$)C\xb1\xe8 \x1b(B\xfc", ["", "ISO 2022 IR 149"], None),  # a lone byte after
        (b"\x1b$)C\xb1\xe8^\xb1\xe8", ["", "ISO 2022 IR 149"], None),  # ^ resets G1
        (b"\x1b$)C\xb1\xe8^\x1b$)C\xb1\xe8", ["", "ISO 2022 IR 149"], "김^김"),
        (b"\x1b$)A\xd5\xc5^\xc8\xfd", ["", "ISO 2022 IR 58"], None),
        (b"Befund f\xfcr", ["ISO_IR 6"], None),  # ISO_IR 6 is ASCII, not Latin-1
        (b"Befund f\xfcr", ["ISO_IR 100"], "Befund für"),
        (b"M\xfcller", ["ISO_IR 192"], None),
        (b"\xd6\xd0", ["ISO 2022 IR 100"], "ÖÐ"),  # G1 Latin-1 in force from the start
    ],
)
def test_the_strict_reader_follows_ps3_5(data: bytes, terms: list[str], text: str | None) -> None:
    from pdf2dcm.charsets import strict_decode

    assert strict_decode(data, terms) == text


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


def _raw_name(path: Path, raw: bytes) -> Path:
    """The reference at ``path`` with PatientName's bytes replaced as they are."""
    ds = pydicom.dcmread(path)
    ds[0x00100010].value = raw
    ds.save_as(path)
    return path


@pytest.mark.parametrize(
    ("charset", "raw"),
    [
        ("ISO_IR 192", b"M\xfcller^Jan"),  # not UTF-8: pydicom reads U+FFFD
        (["", "ISO 2022 IR 58"], b"\xd5\xc5^\xc8\xfd"),  # GB2312 without its escape
        ("ISO_IR 6", b"M\xfcller^Jan"),  # ISO_IR 6 is ASCII
    ],
)
def test_a_reference_name_its_own_set_cannot_read_is_refused(
    tmp_path: Path, charset: str | list[str], raw: bytes
) -> None:
    ref = _raw_name(_reference(tmp_path / "ref.dcm", charset, PatientName="X"), raw)
    code, stderr, out = encode(tmp_path, "--study-from", str(ref), "--dry-run")
    assert code == 2
    assert "the bytes of PatientName are not valid in its character set" in stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("charset", "name"),
    [("ISO_IR 6", "Doe^Jane"), (["", "ISO 2022 IR 149"], "김^민준")],
)
def test_a_character_the_study_s_set_lacks_switches_to_utf8(
    tmp_path: Path, charset: str | list[str], name: str
) -> None:
    ref = _reference(tmp_path / "ref.dcm", charset, PatientName=name)
    code, stderr, out = encode(tmp_path, "--study-from", str(ref), "--title", "Befund für 김 ü")
    assert code == 0, stderr
    ds = pydicom.dcmread(out)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.get_item(0x00420010).value.rstrip(b" ") == "Befund für 김 ü".encode()
    assert str(ds.PatientName) == name
    strict = encode(tmp_path, "--study-from", str(ref), "--title", "für", "--strict", "--overwrite")
    assert strict[0] == (2 if not name.isascii() else 0), strict[1]
