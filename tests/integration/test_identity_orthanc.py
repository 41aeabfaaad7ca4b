"""Never misfile, never alter: identity and text integrity against a real Orthanc.

Each test states one rule of the README's section "How pdf2dcm keeps documents with the
right patient" and checks it by every upload method, reading back what Orthanc stored with
pydicom, dciodvfy and dcentvfy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from tests.integration.oracles import dcentvfy_errors, dciodvfy_errors
from tests.integration.orthanc import OrthancServer
from tests.integration.test_orthanc import METHODS, run, write_pdf
from tests.pdfs import make_pdf

CONFLICT = 8
INPUT = 2


def upload(server: OrthancServer, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = run("upload", "--url", server.url, "--json", "--no-progress", *args)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, records, result.stderr


def stored_file(server: OrthancServer, instance_id: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{instance_id}.dcm"
    path.write_bytes(server.get(f"/instances/{instance_id}/file").content)
    return path


def parent_object(charset: str | list[str] | None, name: str, uid_tail: str, **extra: str) -> bytes:
    """An Encapsulated PDF made by another writer, in the given character set."""
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1{uid_tail}.3"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1{uid_tail}.1"
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.1{uid_tail}.2"
    ds.PatientName = name
    ds.PatientID = f"CS{uid_tail}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.ReferringPhysicianName = name.split("=", maxsplit=1)[0]
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "101010", "1", "A1"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DOC", "1", "1"
    ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime = "20240101", "101010", "20240101101010"
    ds.ConversionType, ds.BurnedInAnnotation, ds.Manufacturer = "WSD", "YES", ""
    ds.DocumentTitle = "parent"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf = make_pdf(2000)
    ds.EncapsulatedDocument = pdf
    ds.EncapsulatedDocumentLength = len(pdf)
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(ExplicitVRLittleEndian)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def store_parent(server: OrthancServer, data: bytes) -> dict[str, Any]:
    import requests

    response = requests.post(f"{server.url}/instances", data=data, auth=server.auth, timeout=30)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


# --- 1. conflicting identity ---------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_a_tag_contradicting_the_parent_is_refused_and_nothing_stored(
    orthanc: OrthancServer, tmp_path: Path, method: str
) -> None:
    first = write_pdf(tmp_path, "first.pdf", 2001)
    code, [record], _ = upload(
        orthanc, str(first), "--tag", f"PatientID=P8-{method}", "--tag", "PatientName=Doe^Jane"
    )
    assert code == 0
    before = orthanc.instance_count()
    second = write_pdf(tmp_path, "second.pdf", 2003)
    code, _records, stderr = upload(
        orthanc,
        str(second),
        "--via",
        method,
        "--parent",
        record["ParentStudy"],
        "--tag",
        "PatientID=9999",
        "--tag",
        "PatientName=Somebody^Else",
    )
    assert code == INPUT, stderr
    assert "PatientID (0010,0020)" in stderr
    assert "'9999'" in stderr
    assert f"'P8-{method}'" in stderr
    assert orthanc.instance_count() == before
    # Restating the parent's own values, padded differently, is no conflict.
    code, [joined], stderr = upload(
        orthanc,
        str(second),
        "--via",
        method,
        "--parent",
        record["ParentStudy"],
        "--tag",
        f"PatientID=P8-{method}",
        "--tag",
        "PatientName=Doe^Jane^^",
    )
    assert code == 0, stderr
    assert joined["ParentPatient"] == record["ParentPatient"]


def test_encode_study_from_with_a_contradicting_tag_writes_nothing(tmp_path: Path) -> None:
    ref = tmp_path / "ref.dcm"
    ref.write_bytes(parent_object("ISO_IR 100", "Müller^Jürgen", "80"))
    pdf = write_pdf(tmp_path, "doc.pdf", 2000)
    result = run(
        "encode",
        str(pdf),
        "--study-from",
        str(ref),
        "--tag",
        "PatientID=9999",
        "-o",
        str(tmp_path / "out.dcm"),
    )
    assert result.exit_code == INPUT
    assert "PatientID (0010,0020)" in result.stderr
    assert "'CS80'" in result.stderr
    assert not (tmp_path / "out.dcm").exists()


@pytest.mark.parametrize("method", METHODS)
def test_a_study_uid_of_another_patient_is_refused(
    orthanc: OrthancServer, tmp_path: Path, method: str
) -> None:
    study_uid = f"1.2.826.0.1.3680043.10.81.{METHODS.index(method)}"
    first = write_pdf(tmp_path, "a.pdf", 2001)
    code, [_record], stderr = upload(
        orthanc, str(first), "--tag", f"StudyInstanceUID={study_uid}", "--tag", "PatientID=OWNER"
    )
    assert code == 0, stderr
    before = orthanc.instance_count()
    second = write_pdf(tmp_path, "b.pdf", 2003)
    code, _records, stderr = upload(
        orthanc,
        str(second),
        "--via",
        method,
        "--tag",
        f"StudyInstanceUID={study_uid}",
        "--tag",
        "PatientID=INTRUDER",
    )
    assert code == CONFLICT, stderr
    assert study_uid in stderr
    assert "OWNER" in stderr
    assert orthanc.instance_count() == before
    # The same patient may add to its own study.
    code, _, stderr = upload(
        orthanc,
        str(second),
        "--via",
        method,
        "--tag",
        f"StudyInstanceUID={study_uid}",
        "--tag",
        "PatientID=OWNER",
    )
    assert code == 0, stderr


# --- 2. AlreadyStored means the same document ----------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_already_stored_is_verified_against_the_stored_document(
    orthanc: OrthancServer, tmp_path: Path, method: str
) -> None:
    index = METHODS.index(method)
    tags = [
        "--tag",
        f"SOPInstanceUID=1.2.3.4242.{index}",
        "--tag",
        f"StudyInstanceUID=1.2.3.4243.{index}",
        "--tag",
        f"SeriesInstanceUID=1.2.3.4244.{index}",
        "--tag",
        "PatientID=AS",
    ]
    hello = write_pdf(tmp_path, "hello.pdf", 2001)
    other = write_pdf(tmp_path, "other.pdf", 2001)
    code, [first], stderr = upload(orthanc, str(hello), "--via", method, *tags)
    assert code == 0, stderr
    code, [again], stderr = upload(orthanc, str(hello), "--via", method, *tags)
    assert code == 0, stderr
    assert again["Status"] == "AlreadyStored"
    code, records, stderr = upload(orthanc, str(other), "--via", method, *tags)
    assert code == CONFLICT, stderr
    assert f"1.2.3.4242.{index}" in stderr
    assert first["ID"] in stderr
    assert all(r.get("Status") != "AlreadyStored" for r in records)
    kept = orthanc.get(f"/instances/{first['ID']}/content/0042-0011").content
    assert kept[: hello.stat().st_size] == hello.read_bytes()


def test_a_ready_dicom_file_reusing_a_sop_uid_is_refused(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    tags = ["--tag", "SOPInstanceUID=1.2.3.4245", "--tag", "PatientID=ASD"]
    for name, size in (("one", 2001), ("two", 2003)):
        result = run(
            "encode",
            str(write_pdf(tmp_path, f"{name}.pdf", size)),
            *tags,
            "-o",
            str(tmp_path / f"{name}.dcm"),
        )
        assert result.exit_code == 0, result.stderr
    code, _, stderr = upload(orthanc, str(tmp_path / "one.dcm"))
    assert code == 0, stderr
    code, _, stderr = upload(orthanc, str(tmp_path / "two.dcm"))
    assert code == CONFLICT, stderr
    assert "1.2.3.4245" in stderr


# --- 3. re-running a --same-series batch ---------------------------------------------------


def test_rerunning_a_same_series_batch_adds_only_the_new_file(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    a, b, c = (write_pdf(tmp_path, f"{n}.pdf", 2001 + 2 * i) for i, n in enumerate("abc"))
    code, first, stderr = upload(orthanc, str(a), str(b), "--same-series", "--tag", "PatientID=SS")
    assert code == 0, stderr
    code, second, stderr = upload(
        orthanc, str(c), str(a), str(b), "--same-series", "--tag", "PatientID=SS"
    )
    assert code == 0, stderr
    assert [r["Status"] for r in second] == ["Success", "AlreadyStored", "AlreadyStored"]
    series = {r["ParentSeries"] for r in first + second}
    assert len(series) == 1
    instances = orthanc.get(f"/series/{series.pop()}/instances").json()
    assert len(instances) == 3
    numbers = [i["MainDicomTags"]["InstanceNumber"] for i in instances]
    assert len(set(numbers)) == 3


# --- 4 and 5. names copied exactly, character sets kept --------------------------------------

CHARSETS: dict[str, tuple[str | list[str], str]] = {
    "latin1": ("ISO_IR 100", "Müller^Jürgen"),
    "utf8": ("ISO_IR 192", "Müller^Jürgen=山田^太郎"),
    "jis": (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    "katakana-jis": (["ISO 2022 IR 13", "ISO 2022 IR 87"], "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(CHARSETS))
def test_parent_names_are_copied_exactly_and_the_study_stays_consistent(
    orthanc: OrthancServer, tmp_path: Path, method: str, case: str
) -> None:
    charset, name = CHARSETS[case]
    tail = f"9{list(CHARSETS).index(case)}{METHODS.index(method)}"
    parent = tmp_path / "parent.dcm"
    parent.write_bytes(parent_object(charset, name, tail))
    answer = store_parent(orthanc, parent.read_bytes())
    pdf = write_pdf(tmp_path, "doc.pdf", 2001)
    code, [record], stderr = upload(
        orthanc, str(pdf), "--via", method, "--parent", answer["ParentStudy"]
    )
    assert code == 0, stderr
    assert record["ParentPatient"] == answer["ParentPatient"]
    stored = stored_file(orthanc, record["ID"], tmp_path)
    new = pydicom.dcmread(stored)
    assert str(new.PatientName) == name
    assert str(new.ReferringPhysicianName) == name.split("=", maxsplit=1)[0]
    assert dciodvfy_errors(stored) == []
    if method == "create-dicom" and isinstance(charset, list):
        # Orthanc's create-dicom writes no ISO 2022 set: the names decode the same, in
        # UTF-8, and the user is told that their bytes differ from the study's.
        assert new.SpecificCharacterSet == "ISO_IR 192"
        assert "UTF-8" in stderr
        assert len(dcentvfy_errors(parent, stored)) >= 1
    else:
        assert new.SpecificCharacterSet == pydicom.dcmread(parent).SpecificCharacterSet
        assert dcentvfy_errors(parent, stored) == []


@pytest.mark.parametrize("method", METHODS)
def test_a_latin1_study_description_stays_latin1_and_valid(
    orthanc: OrthancServer, tmp_path: Path, method: str
) -> None:
    description = "Kardiologische Untersuchung mit Übungs-EKG und Échographie, ää"
    tail = f"7{METHODS.index(method)}"
    parent = tmp_path / "parent.dcm"
    parent.write_bytes(
        parent_object("ISO_IR 100", "Müller^Jürgen", tail, StudyDescription=description)
    )
    answer = store_parent(orthanc, parent.read_bytes())
    code, [record], stderr = upload(
        orthanc,
        str(write_pdf(tmp_path, "d.pdf", 2001)),
        "--via",
        method,
        "--parent",
        answer["ParentStudy"],
    )
    assert code == 0, stderr
    stored = stored_file(orthanc, record["ID"], tmp_path)
    assert pydicom.dcmread(stored).SpecificCharacterSet == "ISO_IR 100"
    assert dciodvfy_errors(stored) == []
    assert dcentvfy_errors(parent, stored) == []
    local = tmp_path / "local.dcm"
    result = run(
        "encode",
        str(write_pdf(tmp_path, "e.pdf", 2003)),
        "--study-from",
        str(parent),
        "-o",
        str(local),
    )
    assert result.exit_code == 0, result.stderr
    assert dciodvfy_errors(local) == []
    assert dcentvfy_errors(parent, local) == []


# --- 7. dates agree with each other ---------------------------------------------------------


def test_create_dicom_dates_agree_whatever_the_time_zones(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    pdf = write_pdf(tmp_path, "tz.pdf", 2001)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORTHANC_", "PDF2DCM_"))}
    env["TZ"] = "Pacific/Kiritimati"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pdf2dcm",
            "upload",
            str(pdf),
            "--url",
            orthanc.url,
            "--via",
            "create-dicom",
            "--tag",
            "PatientID=TZ",
            "--json",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.splitlines()[0])
    stored = pydicom.dcmread(stored_file(orthanc, record["ID"], tmp_path))
    assert stored.TimezoneOffsetFromUTC == "+1400"
    assert stored.AcquisitionDate == stored.AcquisitionDateTime[:8]
    assert stored.AcquisitionTime[:6] == stored.AcquisitionDateTime[8:14]
    assert stored.SeriesDate == stored.InstanceCreationDate == stored.StudyDate
    assert stored.SeriesTime[:6] == stored.InstanceCreationTime[:6]
    assert hashlib.sha256(pdf.read_bytes()).hexdigest() == record["SHA256"]


def test_a_manifest_that_splits_a_shared_series_over_patients_sends_nothing(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    for name in ("a.pdf", "b.pdf"):
        write_pdf(tmp_path, name, 2001 + len(name))
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,PatientID\na.pdf,MAN-1\nb.pdf,MAN-2\n", encoding="utf-8")
    before = orthanc.instance_count()
    code, _, stderr = upload(orthanc, "--manifest", str(manifest), "--same-series")
    assert code == INPUT
    assert "one study belongs to one patient" in stderr
    assert orthanc.instance_count() == before
