"""Attaching by the identifiers people have, against a real Orthanc and a real worklist SCP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests

from tests.integration.oracles import dcentvfy_errors, dciodvfy_errors
from tests.integration.orthanc import OrthancServer
from tests.integration.test_identity_orthanc import parent_object, store_parent, stored_file
from tests.integration.test_orthanc import METHODS, run, write_pdf
from tests.integration.worklist import AE_TITLE, WorklistServer, procedure_dump

CONFLICT, INPUT, UNREACHABLE, REFUSED = 8, 2, 3, 4


def upload(server: OrthancServer, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = run("upload", "--url", server.url, "--json", "--no-progress", *args)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, records, result.stderr


def declare_modality(server: OrthancServer, name: str, aet: str, port: int) -> None:
    response = requests.put(
        f"{server.url}/modalities/{name}",
        json={"AET": aet, "Host": "127.0.0.1", "Port": port},
        auth=server.auth,
        timeout=30,
    )
    response.raise_for_status()


@pytest.fixture(scope="module")
def worklist(
    orthanc: OrthancServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorklistServer]:
    with WorklistServer(tmp_path_factory.mktemp("worklist")) as server:
        server.add(
            "latin1",
            procedure_dump(
                accession="WL-A1",
                patient_id="WL-P1",
                patient_name="Müller^Jürgen",
                study_uid="1.2.826.0.1.3680043.10.200.1",
                description="Einverständnis für Übungs-EKG",
            ),
        )
        server.add(
            "utf8",
            procedure_dump(
                accession="WL-A2",
                patient_id="WL-P2",
                patient_name="Müller^Jürgen=山田^太郎",
                study_uid="1.2.826.0.1.3680043.10.200.2",
                charset="ISO_IR 192",
            ),
            encoding="utf-8",
        )
        for index in (1, 2):
            server.add(
                f"twin{index}",
                procedure_dump(
                    accession=f"WL-T{index}",
                    patient_id="WL-TWIN",
                    patient_name="Twin^Tom",
                    study_uid=f"1.2.826.0.1.3680043.10.200.{10 + index}",
                ),
            )
        server.add(
            "taken",
            procedure_dump(
                accession="WL-TAKEN",
                patient_id="WL-NEWCOMER",
                patient_name="New^Comer",
                study_uid="1.2.826.0.1.3680043.10.200.20",
            ),
        )
        declare_modality(orthanc, "worklist", AE_TITLE, server.port)
        yield server


# --- the archive ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archived(orthanc: OrthancServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two studies of one patient, and a lone study, stored by another writer."""
    root = tmp_path_factory.mktemp("archived")
    answers = {}
    for tail, accession, patient in (("301", "ACC-1", "LK-P1"), ("302", "ACC-2", "LK-P1")):
        data = parent_object(
            "ISO_IR 100", "Weiß^Anna", tail, AccessionNumber=accession, PatientID=patient
        )
        (root / f"{tail}.dcm").write_bytes(data)
        answers[accession] = store_parent(orthanc, data) | {"file": root / f"{tail}.dcm"}
    return answers


@pytest.mark.parametrize("method", METHODS)
def test_attach_to_the_study_with_an_accession_number(
    orthanc: OrthancServer, archived: dict[str, Any], tmp_path: Path, method: str
) -> None:
    pdf = write_pdf(tmp_path, "consent.pdf", 2001)
    code, [record], stderr = upload(
        orthanc, str(pdf), "--via", method, "--study", "AccessionNumber=ACC-1"
    )
    assert code == 0, stderr
    target = archived["ACC-1"]
    assert record["ParentStudy"] == target["ParentStudy"]
    assert record["ParentSeries"] != target["ParentSeries"]
    stored = stored_file(orthanc, record["ID"], tmp_path)
    assert str(pydicom.dcmread(stored).PatientName) == "Weiß^Anna"
    assert dciodvfy_errors(stored) == []
    assert dcentvfy_errors(target["file"], stored) == []


def test_no_match_several_matches_and_wrong_keys(
    orthanc: OrthancServer, archived: dict[str, Any], tmp_path: Path
) -> None:
    pdf = str(write_pdf(tmp_path, "x.pdf", 2001))
    before = orthanc.instance_count()
    code, _, stderr = upload(orthanc, pdf, "--study", "AccessionNumber=NOPE")
    assert code == REFUSED
    assert f"no study matches AccessionNumber=NOPE at {orthanc.url}" in stderr
    patient_id = pydicom.dcmread(archived["ACC-1"]["file"]).PatientID
    code, _, stderr = upload(orthanc, pdf, "--study", f"PatientID={patient_id}")
    assert code == INPUT
    assert "2 studies match" in stderr
    assert archived["ACC-1"]["ParentStudy"] in stderr
    assert archived["ACC-2"]["ParentStudy"] in stderr
    assert "ACC-2" in stderr
    code, _, stderr = upload(orthanc, pdf, "--study", "SeriesNumber=3")
    assert code == INPUT
    assert "'SeriesNumber' cannot select a study" in stderr
    assert "AccessionNumber" in stderr
    code, _, stderr = upload(orthanc, pdf, "--study", archived["ACC-1"]["ParentSeries"])
    assert code == INPUT
    assert "is a series" in stderr
    assert orthanc.instance_count() == before


def test_attach_to_a_patient_and_to_a_series(
    orthanc: OrthancServer, archived: dict[str, Any], tmp_path: Path
) -> None:
    patient_id = pydicom.dcmread(archived["ACC-1"]["file"]).PatientID
    code, [record], stderr = upload(
        orthanc, str(write_pdf(tmp_path, "p.pdf", 2001)), "--patient", f"PatientID={patient_id}"
    )
    assert code == 0, stderr
    assert record["ParentPatient"] == archived["ACC-1"]["ParentPatient"]
    assert record["ParentStudy"] not in {a["ParentStudy"] for a in archived.values()}
    series_uid = pydicom.dcmread(archived["ACC-2"]["file"]).SeriesInstanceUID
    code, [record], stderr = upload(
        orthanc,
        str(write_pdf(tmp_path, "s.pdf", 2003)),
        "--series",
        f"SeriesInstanceUID={series_uid}",
    )
    assert code == 0, stderr
    assert record["ParentSeries"] == archived["ACC-2"]["ParentSeries"]
    stored = pydicom.dcmread(stored_file(orthanc, record["ID"], tmp_path))
    assert stored.InstanceNumber == 2


# --- the worklist --------------------------------------------------------------------------


def test_an_undeclared_worklist_is_not_read_as_latin1(
    orthanc: OrthancServer, worklist: WorklistServer, tmp_path: Path
) -> None:
    """wlmscpfs by default declares no character set: Orthanc reads the bytes as its
    DefaultEncoding, which is right for a Latin-1 file and wrong for another set's; a
    value it cannot be known to have carried is refused, and the two ways out named."""
    pdf = str(write_pdf(tmp_path, "a1.pdf", 2001))
    before = orthanc.instance_count()
    code, _, stderr = upload(
        orthanc, pdf, "--worklist", "worklist", "--study", "AccessionNumber=WL-A1"
    )
    assert code == INPUT, stderr
    assert "declares no character set" in stderr
    assert "--worklist AET@HOST:PORT --worklist-charset" in stderr
    assert orthanc.instance_count() == before


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("accession", "name"), [("WL-A2", "Müller^Jürgen=山田^太郎")])
def test_worklist_gives_the_patient_and_the_study_to_be(
    orthanc: OrthancServer,
    worklist: WorklistServer,
    tmp_path: Path,
    method: str,
    accession: str,
    name: str,
) -> None:
    pdf = write_pdf(tmp_path, f"{accession}-{method}.pdf", 2001 + 2 * METHODS.index(method))
    code, [record], stderr = upload(
        orthanc,
        str(pdf),
        "--via",
        method,
        "--worklist",
        "worklist",
        "--study",
        f"AccessionNumber={accession}",
    )
    assert code == 0, stderr
    stored_path = stored_file(orthanc, record["ID"], tmp_path)
    stored = pydicom.dcmread(stored_path)
    assert str(stored.PatientName) == name
    assert stored.AccessionNumber == accession
    assert stored.PatientID == f"WL-P{accession[-1]}"
    assert stored.StudyInstanceUID == f"1.2.826.0.1.3680043.10.200.{accession[-1]}"
    assert str(stored.ReferringPhysicianName) == "Referring^Doctor"
    assert stored.PatientBirthDate == "19700101"
    if accession == "WL-A1":
        assert stored.StudyDescription == "Einverständnis für Übungs-EKG"
        assert "warning" not in stderr
    else:
        # Orthanc reads a UTF-8 worklist answer as Latin-1; the name is repaired, and said so.
        assert "arrived as UTF-8 read as Latin-1" in stderr
    assert dciodvfy_errors(stored_path) == []


def test_worklist_refusals(
    orthanc: OrthancServer, worklist: WorklistServer, tmp_path: Path
) -> None:
    pdf = str(write_pdf(tmp_path, "w.pdf", 2001))
    code, _, stderr = upload(
        orthanc, pdf, "--worklist", "worklist", "--study", "AccessionNumber=NOPE"
    )
    assert code == REFUSED
    assert (
        "no scheduled procedure in the worklist of worklist matches AccessionNumber=NOPE" in stderr
    )
    code, _, stderr = upload(orthanc, pdf, "--worklist", "worklist", "--study", "PatientID=WL-TWIN")
    assert code == INPUT
    assert "2 scheduled procedures" in stderr
    assert "WL-T1" in stderr
    assert "WL-T2" in stderr
    code, _, stderr = upload(
        orthanc, pdf, "--worklist", "worklist", "--study", "StudyDate=20260101"
    )
    assert code == INPUT
    assert "keys for a worklist" in stderr
    code, _, stderr = upload(orthanc, pdf, "--worklist", "worklist")
    assert code == INPUT
    declare_modality(orthanc, "gone", "GONE", 1)
    code, _, stderr = upload(orthanc, pdf, "--worklist", "gone", "--study", "AccessionNumber=X")
    assert code == UNREACHABLE, stderr
    assert "worklist SCP of modality gone" in stderr


def test_a_worklist_name_in_iso_2022_must_be_given(
    orthanc: OrthancServer, worklist: WorklistServer, tmp_path: Path
) -> None:
    name = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    encoded = (
        b"Yamada^Tarou="
        + b"^".join(part.encode("iso2022_jp") for part in ("山田", "太郎"))
        + b"="
        + b"^".join(part.encode("iso2022_jp") for part in ("やまだ", "たろう"))
    )
    dump = procedure_dump(
        accession="WL-J1",
        patient_id="WL-PJ",
        patient_name="@@NAME@@",
        study_uid="1.2.826.0.1.3680043.10.200.30",
        charset="\\ISO 2022 IR 87",
    )
    text = worklist.root / "jis.dump"
    text.write_bytes(dump.encode("ascii").replace(b"@@NAME@@", encoded))
    worklist.add_raw("jis", text)
    pdf = str(write_pdf(tmp_path, "j.pdf", 2001))
    code, _, stderr = upload(
        orthanc, pdf, "--worklist", "worklist", "--study", "AccessionNumber=WL-J1"
    )
    assert code == INPUT
    assert "did not come through Orthanc exactly" in stderr
    assert "give the PatientName yourself" in stderr
    code, [record], stderr = upload(
        orthanc,
        pdf,
        "--worklist",
        "worklist",
        "--study",
        "AccessionNumber=WL-J1",
        "--tag",
        f"PatientName={name}",
    )
    assert code == 0, stderr
    assert str(pydicom.dcmread(stored_file(orthanc, record["ID"], tmp_path)).PatientName) == name


def test_a_worklist_study_already_filed_under_another_patient_is_refused(
    orthanc: OrthancServer, worklist: WorklistServer, tmp_path: Path
) -> None:
    squatter = write_pdf(tmp_path, "squat.pdf", 2001)
    code, _, stderr = upload(
        orthanc,
        str(squatter),
        "--tag",
        "StudyInstanceUID=1.2.826.0.1.3680043.10.200.20",
        "--tag",
        "PatientID=SOMEONE-ELSE",
    )
    assert code == 0, stderr
    before = orthanc.instance_count()
    code, _, stderr = upload(
        orthanc,
        str(write_pdf(tmp_path, "w.pdf", 2003)),
        "--worklist",
        "worklist",
        "--study",
        "AccessionNumber=WL-TAKEN",
    )
    assert code == CONFLICT, stderr
    assert "SOMEONE-ELSE" in stderr
    assert orthanc.instance_count() == before


# --- fetch by the same selectors -----------------------------------------------------------


def test_fetch_by_selector_with_skip_existing_and_wrong_levels(
    orthanc: OrthancServer, archived: dict[str, Any], tmp_path: Path
) -> None:
    patient_id = pydicom.dcmread(archived["ACC-1"]["file"]).PatientID
    outdir = tmp_path / "out"
    first = run(
        "fetch", "--url", orthanc.url, "--patient", f"PatientID={patient_id}", "-d", str(outdir)
    )
    assert first.exit_code == 0, first.stderr
    written = sorted(p.name for p in outdir.iterdir())
    assert len(written) >= 2
    assert len(first.stdout.splitlines()) == len(written)
    again = run(
        "fetch",
        "--url",
        orthanc.url,
        "--patient",
        f"PatientID={patient_id}",
        "-d",
        str(outdir),
        "--skip-existing",
        "--json",
    )
    assert again.exit_code == 0, again.stderr
    records = [json.loads(line) for line in again.stdout.splitlines()]
    assert [r["Status"] for r in records] == ["Skipped"] * len(written)
    assert all(r["Kind"] == "fetched" and r["SHA256"] is None for r in records)
    (outdir / written[0]).unlink()
    third = run(
        "fetch",
        "--url",
        orthanc.url,
        "--patient",
        f"PatientID={patient_id}",
        "-d",
        str(outdir),
        "--skip-existing",
    )
    assert third.exit_code == 0, third.stderr
    assert sum("skipped" not in line for line in third.stdout.splitlines()) == 1
    one = run(
        "fetch", "--url", orthanc.url, "--study", "AccessionNumber=ACC-2", "-d", str(tmp_path / "s")
    )
    assert one.exit_code == 0, one.stderr
    assert (tmp_path / "s").exists()
    wrong = run(
        "fetch",
        "--url",
        orthanc.url,
        "--study",
        archived["ACC-1"]["ParentSeries"],
        "-d",
        str(tmp_path / "w"),
    )
    assert wrong.exit_code == INPUT
    assert "is a series" in wrong.stderr
    several = run(
        "fetch",
        "--url",
        orthanc.url,
        archived["ACC-1"]["ID"],
        archived["ACC-2"]["ID"],
        "-d",
        str(tmp_path / "ids"),
    )
    assert several.exit_code == 0, several.stderr
    assert len(list((tmp_path / "ids").iterdir())) == 2


def test_fetch_reports_each_failure_and_goes_on(
    orthanc: OrthancServer, archived: dict[str, Any], tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    result = run(
        "fetch",
        "--url",
        orthanc.url,
        archived["ACC-1"]["ID"],
        "00000000-00000000-00000000-00000000-00000000",
        archived["ACC-2"]["ID"],
        "-d",
        str(outdir),
    )
    assert result.exit_code == REFUSED
    assert len(list(outdir.iterdir())) == 2
    assert "instance 00000000-00000000-00000000-00000000-00000000 not found" in result.stderr
    assert "3 files: 2 written, 1 failed in " in result.stderr


# --- ls --------------------------------------------------------------------------------------


def test_ls_filters_and_json(
    orthanc: OrthancServer, archived: dict[str, Any], tmp_path: Path
) -> None:
    image = parent_object("ISO_IR 100", "Weiß^Anna", "399", PatientID="LK-P1")
    ds = pydicom.dcmread(__import__("io").BytesIO(image))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    del ds.EncapsulatedDocument
    buffer = __import__("io").BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    store_parent(orthanc, buffer.getvalue())
    result = run("ls", "--url", orthanc.url, "--patient", "PatientID=LK-P1")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    ids = {r["ID"] for r in records}
    assert {archived["ACC-1"]["ID"], archived["ACC-2"]["ID"]} <= ids
    assert all(r["PatientID"] == "LK-P1" for r in records)
    assert all(r["PatientName"] == "Weiß^Anna" for r in records)
    assert all(
        r["Size"] == 2000 for r in records if r["ID"] in {a["ID"] for a in archived.values()}
    )
    assert len(records) == len(ids)
    titled = run(
        "ls",
        "--url",
        orthanc.url,
        "--patient",
        "PatientID=LK-P1",
        "--title",
        "PARENT",
        "--limit",
        "1",
    )
    assert [json.loads(line)["DocumentTitle"] for line in titled.stdout.splitlines()] == ["parent"]
    dated = run("ls", "--url", orthanc.url, "--since", "2030-01-01")
    assert dated.exit_code == 0
    assert dated.stdout == ""
    bad = run("ls", "--url", orthanc.url, "--since", "2026-13-01")
    assert bad.exit_code == INPUT


def test_the_order_is_carried_through_orthanc(
    orthanc: OrthancServer, worklist: WorklistServer, tmp_path: Path
) -> None:
    pdf = str(write_pdf(tmp_path, "order.pdf", 2003))
    code, [record], stderr = upload(
        orthanc, pdf, "--worklist", "worklist", "--study", "AccessionNumber=WL-T1"
    )
    assert code == 0, stderr
    path = stored_file(orthanc, record["ID"], tmp_path)
    stored = pydicom.dcmread(path)
    assert stored.StudyID == "RP-WL-T1"
    [request] = stored.RequestAttributesSequence
    assert (request.RequestedProcedureID, request.AccessionNumber) == ("RP-WL-T1", "WL-T1")
    assert request.StudyInstanceUID == stored.StudyInstanceUID
    assert request.RequestedProcedureDescription == "Consent form"
    assert dciodvfy_errors(path) == []
