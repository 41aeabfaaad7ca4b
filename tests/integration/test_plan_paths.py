"""One plan for every document: each case of the planning stage, by every path.

The paths are ``encode`` (reading the study from a file, ``--study-from``), ``upload`` by each
method, and ``watch --once``. Each carries out the plan of the one planning stage, so each must
title, number, warn, refuse, copy and date a document the same way; what was stored is read
back from a real Orthanc with pydicom, a strict decoder, dciodvfy and dcentvfy.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from tests.integration.oracles import dcentvfy_errors, dciodvfy_errors
from tests.integration.orthanc import OrthancServer
from tests.integration.test_identity_orthanc import parent_object, store_parent
from tests.integration.test_orthanc import METHODS, run
from tests.pdfs import make_pdf

UPLOADS = [f"upload-{method}" for method in METHODS]
SERVER_PATHS = [*UPLOADS, "watch"]
ALL_PATHS = ["encode", *SERVER_PATHS]
IMAGE_CLASS = "1.2.840.10008.5.1.4.1.1.7"
_counter = iter(range(10_000))


@dataclass
class Outcome:
    code: int
    stderr: str
    datasets: list[Dataset]
    files: list[Path]
    records: list[dict[str, Any]]


def _tail() -> str:
    """Digits unique to one test's study (its UIDs, PatientID and AccessionNumber)."""
    return f"{next(_counter)}{secrets.randbelow(10**8)}"


def image_object(
    tail: str, *, charset: str | list[str] | None, name: str, series: str = "1", **extra: str
) -> bytes:
    """A secondary-capture image of study ``tail``, as a modality would have sent it."""
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = IMAGE_CLASS
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.17{tail}.1"
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.17{tail}.2.{series}"
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.17{tail}.3.{series}"
    ds.PatientName, ds.PatientID = name, f"PL{tail}"
    ds.PatientBirthDate, ds.PatientSex = "19700101", "F"
    ds.ReferringPhysicianName = name.split("=", maxsplit=1)[0]
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "101010", "S1"
    ds.AccessionNumber, ds.StudyDescription = f"ACC{tail}", "Images"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "OT", series, "1"
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = b"\x00\x01\x02\x03"
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(ExplicitVRLittleEndian)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def new_study(
    server: OrthancServer,
    tmp_path: Path,
    *,
    charset: str | list[str] | None = "ISO_IR 100",
    name: str = "Doe^Jane",
    **extra: str,
) -> tuple[str, Path]:
    """A stored image study of its own: its accession number and its image's file."""
    tail = _tail()
    data = image_object(tail, charset=charset, name=name, **extra)
    store_parent(server, data)
    image = tmp_path / f"image-{tail}.dcm"
    image.write_bytes(data)
    return f"ACC{tail}", image


def carry_out(
    path: str,
    server: OrthancServer,
    tmp_path: Path,
    pdfs: list[Path],
    *args: str,
    accession: str | None = None,
    image: Path | None = None,
) -> Outcome:
    """The documents of ``pdfs`` made by ``path``, read back (from Orthanc, or as written)."""
    work = tmp_path / f"{path}-{next(_counter)}"
    work.mkdir()
    if path == "encode":
        target = ["--study-from", str(image)] if image is not None else []
        out = work / "out"
        result = run("encode", *map(str, pdfs), "-d", str(out), "--json", *target, *args)
        records = _records(result.stdout)
        files = [Path(r["Output"]) for r in records if r.get("Kind") == "encoded"]
        return Outcome(result.exit_code, result.stderr, _read(files), files, records)
    target = ["--study", f"AccessionNumber={accession}"] if accession is not None else []
    if path == "watch":
        inbox = work / "inbox"
        inbox.mkdir()
        for pdf in pdfs:
            shutil.copy(pdf, inbox / pdf.name)
            if pdf.with_suffix(".json").exists():
                shutil.copy(pdf.with_suffix(".json"), inbox / f"{pdf.stem}.json")
        result = run(
            "watch", str(inbox), "--url", server.url, "--once", "--settle", "0",
            "--done", str(work / "done"), "--failed", str(work / "failed"), "--json",
            "--no-progress", *target, *args,
        )  # fmt: skip
    else:
        method = path.removeprefix("upload-")
        result = run(
            "upload", *map(str, pdfs), "--url", server.url, "--via", method, "--json",
            "--no-progress", *target, *args,
        )  # fmt: skip
    records = _records(result.stdout)
    files = []
    for record in records:
        if record.get("Kind") == "uploaded":
            stored = work / f"{record['ID']}.dcm"
            stored.write_bytes(server.get(f"/instances/{record['ID']}/file").content)
            files.append(stored)
    return Outcome(result.exit_code, result.stderr, _read(files), files, records)


def _records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _read(files: list[Path]) -> list[Dataset]:
    return [pydicom.dcmread(f) for f in files]


def untitled(tmp_path: Path, name: str, size: int = 2100) -> Path:
    pdf = tmp_path / name
    pdf.write_bytes(make_pdf(size + next(_counter), seed=None))
    return pdf


def raw_value(path: Path, keyword: str) -> bytes:
    """An element's bytes as written, undecoded."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    assert tag is not None
    element = pydicom.dcmread(path).get_item(tag)
    assert element is not None
    return bytes(element.value)


def strict_decode(raw: bytes, charset: list[str]) -> str:
    """Bytes decoded as PS3.5 says, refusing what pydicom would let through.

    Under ISO 2022 the default G0 set is ASCII (ISO-IR 6) unless the first value names
    another; a byte above 0x7F is an error until a G1 set is designated.
    """
    first = charset[0] if charset else ""
    if any(term.startswith("ISO 2022") for term in charset) and first in ("", "ISO 2022 IR 6"):
        return codecs.decode(raw, "iso2022_jp_2", "strict").rstrip(" ")
    return raw.decode(pydicom.charset.python_encoding[first or "ISO_IR 6"], "strict").rstrip(" ")


# --- 1. titles --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_PATHS)
def test_a_pdf_without_a_title_is_titled_by_its_file_name(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    pdf = untitled(tmp_path, f"scan-{path}-0042.pdf")
    done = carry_out(path, orthanc, tmp_path, [pdf], "--tag", "PatientID=T17")
    assert done.code == 0, done.stderr
    [ds] = done.datasets
    assert ds.DocumentTitle == f"scan-{path}-0042"
    assert dciodvfy_errors(done.files[0]) == []


@pytest.mark.parametrize("path", ["encode", *UPLOADS])
def test_only_stdin_is_titled_pdf_document(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    data = make_pdf(2300 + next(_counter), seed=None)
    if path == "encode":
        result = run("encode", "-", "-o", str(tmp_path / "s.dcm"), stdin=data)
        assert result.exit_code == 0, result.stderr
        ds = pydicom.dcmread(tmp_path / "s.dcm")
    else:
        via = path.removeprefix("upload-")
        result = run(
            "upload", "-", "--url", orthanc.url, "--via", via, "--json", "--tag",
            "PatientID=T17", stdin=data,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        [record] = _records(result.stdout)
        ds = pydicom.dcmread(io.BytesIO(orthanc.get(f"/instances/{record['ID']}/file").content))
    assert ds.DocumentTitle == "PDF document"


# --- 2. numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SERVER_PATHS)
def test_documents_joining_one_study_get_distinct_series_numbers(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    accession, _image = new_study(orthanc, tmp_path)
    pdfs = [untitled(tmp_path, f"n{i}.pdf") for i in range(6)]
    done = carry_out(path, orthanc, tmp_path, pdfs, accession=accession)
    assert done.code == 0, done.stderr
    numbers = sorted(int(ds.SeriesNumber) for ds in done.datasets)
    assert numbers == [2, 3, 4, 5, 6, 7]  # the image's series is 1
    assert len({ds.SeriesInstanceUID for ds in done.datasets}) == 6
    assert {ds.InstanceNumber for ds in done.datasets} == {1}


def test_encode_numbers_documents_joining_one_study_after_the_reference(tmp_path: Path) -> None:
    image = tmp_path / "image.dcm"
    image.write_bytes(image_object("901", charset="ISO_IR 100", name="Doe^Jane", series="4"))
    pdfs = [untitled(tmp_path, f"e{i}.pdf") for i in range(3)]
    result = run("encode", *map(str, pdfs), "-d", str(tmp_path / "out"), "--study-from", str(image))
    assert result.exit_code == 0, result.stderr
    written = [pydicom.dcmread(p) for p in sorted((tmp_path / "out").iterdir())]
    assert sorted(int(ds.SeriesNumber) for ds in written) == [5, 6, 7]


# --- 3. warnings, --strict and --dry-run -------------------------------------------------------


@pytest.mark.parametrize("path", ["encode", *UPLOADS])
def test_strict_writes_and_sends_nothing_when_one_input_is_not_a_pdf(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    pdfs = [untitled(tmp_path, f"good{i}.pdf") for i in range(3)]
    bad = tmp_path / "notes.pdf"
    bad.write_bytes(b"Meeting notes, not a PDF\n")
    before = orthanc.instance_count()
    done = carry_out(path, orthanc, tmp_path, [*pdfs, bad], "--strict", "--tag", "PatientID=ST")
    assert done.code == 2
    assert f"{bad}" in done.stderr
    assert "not attempted" in done.stderr
    assert done.files == []
    assert orthanc.instance_count() == before
    assert not any(tmp_path.glob("encode-*/out"))


def test_watch_strict_fails_a_file_with_a_warning_and_keeps_it(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    nameless = untitled(tmp_path, "nameless.pdf")
    good = untitled(tmp_path, "good.pdf")
    good.with_suffix(".json").write_text('{"PatientID": "WS"}')
    done = carry_out("watch", orthanc, tmp_path, [nameless, good], "--strict")
    [failed] = [r for r in done.records if r["Kind"] == "failed"]
    assert failed["Input"] == "nameless.pdf"
    assert "no PatientID given" in failed["Error"]
    assert "strict" in failed["Error"]
    kept = next(tmp_path.glob("watch-*/failed/nameless.pdf"))
    assert kept.read_bytes() == nameless.read_bytes()
    assert [(ds.DocumentTitle, ds.PatientID) for ds in done.datasets] == [("good", "WS")]


@pytest.mark.parametrize("path", SERVER_PATHS)
def test_a_truncated_pdf_is_warned_about_on_every_path(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    """Said once on every path; upload stores it as it is (the user named the file), the hot
    folder never takes a file that does not end like a PDF: it waits as still being written."""
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(make_pdf(3000 + next(_counter), seed=None)[:2500])
    before = orthanc.instance_count()
    done = carry_out(path, orthanc, tmp_path, [cut], "--tag", "PatientID=TW")
    assert done.stderr.count("no %%EOF marker near its end") == 1, done.stderr
    if path == "watch":
        assert "still being written" in done.stderr
        assert orthanc.instance_count() == before
        left = next(tmp_path.glob("watch-*/inbox/cut.pdf"))
        assert left.read_bytes() == cut.read_bytes()
    else:
        assert orthanc.instance_count() == before + 1


def test_watch_dry_run_plans_and_touches_nothing(orthanc: OrthancServer, tmp_path: Path) -> None:
    accession, _image = new_study(orthanc, tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    pdfs = [untitled(inbox, f"d{i}.pdf") for i in range(2)]
    before = orthanc.instance_count()
    result = run(
        "watch", str(inbox), "--url", orthanc.url, "--once", "--settle", "0", "--dry-run",
        "--study", f"AccessionNumber={accession}", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    planned = _records(result.stdout)
    assert [r["Kind"] for r in planned] == ["planned", "planned"]
    assert sorted(r["Tags"]["SeriesNumber"] for r in planned) == ["2", "3"]
    assert orthanc.instance_count() == before
    assert sorted(p.name for p in inbox.iterdir()) == [p.name for p in pdfs]


# --- 4. the reference: the study's images, not whichever instance is listed first -------------

CYRILLIC = "Иванов^Иван"


@pytest.mark.parametrize("path", SERVER_PATHS)
def test_documents_follow_the_images_character_set(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    tail = _tail()
    images = tmp_path / "images.dcm"
    images.write_bytes(image_object(tail, charset="ISO_IR 144", name=CYRILLIC))
    store_parent(orthanc, images.read_bytes())
    # UTF-8 documents joined the study after its images (and Orthanc lists them first).
    for number in range(5):
        store_parent(
            orthanc,
            parent_object(
                "ISO_IR 192", CYRILLIC, f"7{number}{tail}", PatientID=f"PL{tail}",
                AccessionNumber=f"ACC{tail}", StudyInstanceUID=f"1.2.826.0.1.3680043.10.17{tail}.1",
            ),
        )  # fmt: skip
    pdf = untitled(tmp_path, "ascii.pdf")
    done = carry_out(path, orthanc, tmp_path, [pdf], accession=f"ACC{tail}")
    assert done.code == 0, done.stderr
    [ds] = done.datasets
    assert ds.SpecificCharacterSet == "ISO_IR 144"
    assert raw_value(done.files[0], "PatientName") == raw_value(images, "PatientName")
    assert dcentvfy_errors(images, done.files[0]) == []


# --- 5. ISO 2022: never a raw 8-bit byte -------------------------------------------------------

JAPANESE = "Yamada^Tarou=山田^太郎=やまだ^たろう"
ISO2022 = ["", "ISO 2022 IR 87"]


@pytest.mark.parametrize("path", ALL_PATHS)
def test_a_latin1_title_in_a_japanese_study_is_never_raw_8_bit(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    accession, image = new_study(orthanc, tmp_path, charset=ISO2022, name=JAPANESE)
    pdf = untitled(tmp_path, "befund.pdf")
    done = carry_out(
        path, orthanc, tmp_path, [pdf], "--title" if path != "watch" else "--tag",
        "Befund für Müller" if path != "watch" else "DocumentTitle=Befund für Müller",
        accession=accession, image=image,
    )  # fmt: skip
    assert done.code == 0, done.stderr
    [stored] = done.files
    charset = pydicom.dcmread(stored).get("SpecificCharacterSet")
    terms = [charset] if isinstance(charset, str) else list(charset or [])
    assert strict_decode(raw_value(stored, "DocumentTitle"), terms) == "Befund für Müller"
    assert strict_decode(raw_value(stored, "PatientName"), terms) == JAPANESE
    assert dciodvfy_errors(stored) == []
    if path != "encode":
        [record] = [r for r in done.records if r.get("Kind") == "uploaded"]
        tags = orthanc.get(f"/instances/{record['ID']}/simplified-tags").json()
        assert tags["DocumentTitle"] == "Befund für Müller"
        assert tags["PatientName"] == JAPANESE
    assert terms == ["ISO_IR 192"]  # the study's set cannot hold "ü": UTF-8, and a warning
    assert done.stderr.count("UTF-8") == 1, done.stderr
    if path != "upload-create-dicom":  # there Orthanc cannot write ISO 2022 at all, said first
        assert "the bytes of PatientName differ from the study's" in done.stderr


# --- 6. study-level values of a joined study ---------------------------------------------------


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize(
    ("keyword", "given", "theirs"),
    [("StudyDescription", "Other", "Images"), ("StudyDate", "20200202", "20240101")],
)
def test_a_study_level_value_contradicting_the_study_is_refused(
    orthanc: OrthancServer, tmp_path: Path, path: str, keyword: str, given: str, theirs: str
) -> None:
    accession, image = new_study(orthanc, tmp_path)
    pdf = untitled(tmp_path, "c.pdf")
    before = orthanc.instance_count()
    done = carry_out(
        path, orthanc, tmp_path, [pdf], "--tag", f"{keyword}={given}",
        accession=accession, image=image,
    )  # fmt: skip
    assert done.code == 2, done.stderr
    message = done.stderr + json.dumps(done.records, ensure_ascii=False)
    assert keyword in message
    assert theirs in message
    assert done.files == []
    assert orthanc.instance_count() == before


@pytest.mark.parametrize("path", ALL_PATHS)
def test_a_study_level_value_equal_to_the_study_s_is_accepted(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    accession, image = new_study(orthanc, tmp_path)
    pdf = untitled(tmp_path, "same.pdf")
    done = carry_out(
        path, orthanc, tmp_path, [pdf], "--tag", "StudyDescription=Images",
        accession=accession, image=image,
    )  # fmt: skip
    assert done.code == 0, done.stderr
    [ds] = done.datasets
    assert ds.StudyDescription == "Images"


# --- 7. the study's time zone -----------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_PATHS)
def test_the_reference_s_time_zone_dates_the_document(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    accession, image = new_study(orthanc, tmp_path, TimezoneOffsetFromUTC="+0900")
    pdf = untitled(tmp_path, "tz.pdf")
    start = dt.datetime.now(dt.timezone.utc)
    done = carry_out(path, orthanc, tmp_path, [pdf], accession=accession, image=image)
    end = dt.datetime.now(dt.timezone.utc)
    assert done.code == 0, done.stderr
    [ds] = done.datasets
    assert ds.TimezoneOffsetFromUTC == "+0900"
    tokyo = dt.timezone(dt.timedelta(hours=9))
    written = dt.datetime.strptime(
        ds.ContentDate + ds.ContentTime.split(".")[0], "%Y%m%d%H%M%S"
    ).replace(tzinfo=tokyo)
    assert start.replace(microsecond=0) - dt.timedelta(seconds=1) <= written <= end


@pytest.mark.parametrize("path", SERVER_PATHS)
def test_a_shared_series_sent_again_keeps_its_series_number(
    orthanc: OrthancServer, tmp_path: Path, path: str
) -> None:
    accession, _image = new_study(orthanc, tmp_path)
    a, b, c = (untitled(tmp_path, f"{name}.pdf") for name in "abc")
    first = carry_out(path, orthanc, tmp_path, [a, b], "--same-series", accession=accession)
    again = carry_out(path, orthanc, tmp_path, [a, b, c], "--same-series", accession=accession)
    assert (first.code, again.code) == (0, 0), first.stderr + again.stderr
    documents = first.datasets + again.datasets
    assert len({ds.SeriesInstanceUID for ds in documents}) == 1
    assert {ds.SeriesNumber for ds in documents} == {2}
    [new] = [ds for ds in again.datasets if ds.DocumentTitle == "c"]
    assert int(new.InstanceNumber) >= 3
