"""``watch --via dimse``: a hot folder that files into any DICOM archive, without Orthanc's
REST API in between: the study found by C-FIND, the worklist asked directly, and a file
that leaves the inbox only once the archive committed to it (``--commit``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.integration.dicom_nodes import storescp, wlmscpfs
from tests.integration.oracles import dciodvfy_errors
from tests.integration.orthanc import OrthancServer, free_port
from tests.integration.test_dimse_worklist import NAMES, _accession, _raw_name
from tests.pdfs import make_pdf

LISTEN_PORT = free_port()


def watch_once(inbox: Path, node: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        [
            "watch",
            str(inbox),
            "--via",
            "dimse",
            "--scp",
            node,
            "--once",
            "--settle",
            "0",
            "--done",
            str(inbox.parent / "done"),
            "--failed",
            str(inbox.parent / "failed"),
            "--json",
            "--no-progress",
            *args,
        ],
        catch_exceptions=False,
    )


def records(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def drop(inbox: Path, name: str, seed: int) -> bytes:
    inbox.mkdir(parents=True, exist_ok=True)
    data = make_pdf(3000 + seed, seed=seed)
    (inbox / name).write_bytes(data)
    return data


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc spoken to only over DICOM: it knows pdf2dcm, to send its commitment
    reports to LISTEN_PORT on a new association."""
    config = {
        "DefaultEncoding": "Utf8",
        "DicomModalities": {"pdf2dcm": ["PDF2DCM", "127.0.0.1", LISTEN_PORT]},
    }
    with OrthancServer(tmp_path_factory.mktemp("orthanc-watch-dimse"), extra=config) as server:
        yield server


def _stored(archive: OrthancServer, sop_uid: str, folder: Path) -> Path:
    query = {"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}}
    response = requests.post(f"{archive.url}/tools/find", json=query, timeout=30)
    response.raise_for_status()
    [instance] = response.json()
    path = folder / f"{sop_uid}.dcm"
    path.write_bytes(archive.get(f"/instances/{instance}/file").content)
    return path


def test_files_join_the_study_found_by_c_find_and_leave_once_committed(
    archive: OrthancServer, tmp_path: Path
) -> None:
    node = f"ORTHANC@127.0.0.1:{archive.dicom_port}"
    name = "Иванов^Пётр=山田^太郎"
    first = CliRunner().invoke(
        cli,
        [
            "upload",
            "-",
            "--via",
            "dimse",
            "--scp",
            node,
            "--json",
            "--tag",
            "PatientID=WD-1",
            "--tag",
            f"PatientName={name}",
            "--tag",
            "AccessionNumber=WD-ACC",
        ],
        input=make_pdf(2500, seed=1),
        catch_exceptions=False,
    )
    assert first.exit_code == 0, first.stderr
    [study] = records(first)

    inbox = tmp_path / "inbox"
    sent = {f"WD-ACC_{n}.pdf": drop(inbox, f"WD-ACC_{n}.pdf", n) for n in (2, 3)}
    log = tmp_path / "journal.jsonl"
    result = watch_once(
        inbox, node,
        "--name-pattern", "{AccessionNumber}_{*}.pdf",
        "--study", "AccessionNumber={AccessionNumber}",
        "--commit", "--listen-port", str(LISTEN_PORT), "--dimse-timeout", "20",
        "--log", str(log),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert f"filing to {node} by dimse with storage commitment" in result.stderr
    stored = records(result)
    assert sorted(r["Input"] for r in stored) == sorted(sent)
    assert {r["Kind"] for r in stored} == {"uploaded"}
    assert {r["DicomStatus"] for r in stored} == {"0000"}
    assert {r["StudyInstanceUID"] for r in stored} == {study["StudyInstanceUID"]}
    assert [json.loads(line)["Kind"] for line in log.read_text().splitlines()] == [
        "uploaded",
        "uploaded",
    ]
    assert list(inbox.iterdir()) == []
    for file_name, data in sent.items():
        assert (tmp_path / "done" / file_name).read_bytes() == data

    series_numbers = []
    for record in stored:
        path = _stored(archive, record["SOPInstanceUID"], tmp_path)
        ds = pydicom.dcmread(path)
        assert bytes(ds.EncapsulatedDocument)[: len(sent[record["Input"]])] == sent[record["Input"]]
        assert str(ds.PatientName) == name
        assert ds.PatientID == "WD-1"
        assert ds.DocumentTitle == record["Input"].removesuffix(".pdf")
        series_numbers.append(ds.SeriesNumber)
        assert dciodvfy_errors(path) == []
    assert sorted(series_numbers) == [2, 3]


def test_a_file_the_archive_does_not_commit_to_stays_in_the_inbox(
    uncommitting_scp: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    data = drop(inbox, "consent.pdf", 7)
    result = watch_once(inbox, uncommitting_scp, "--commit", "--tag", "PatientID=NC-W")
    assert result.exit_code == 5, result.stderr
    [waiting] = records(result)
    assert waiting["Kind"] == "waiting"
    assert "did not commit to 1 of 1 instances" in waiting["Error"]
    assert (inbox / "consent.pdf").read_bytes() == data
    assert not (tmp_path / "done").exists() or list((tmp_path / "done").iterdir()) == []
    assert not (tmp_path / "failed").exists() or list((tmp_path / "failed").iterdir()) == []


def test_a_node_that_does_not_answer_stops_the_start(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    data = drop(inbox, "x.pdf", 8)
    result = watch_once(inbox, f"NOBODY@127.0.0.1:{free_port()}", "--tag", "PatientID=X")
    assert result.exit_code == 3, result.stderr
    assert "cannot reach NOBODY@127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr
    assert (inbox / "x.pdf").read_bytes() == data
    assert not (tmp_path / "done").exists()


def test_the_worklist_gives_each_file_its_names_byte_exact(
    worklist_files: Path, tmp_path: Path
) -> None:
    """A scanner station as DICOM Printer 2 runs one: the accession number in the name, the
    patient from the worklist, stored by C-STORE to an archive that answers no C-FIND."""
    charsets = ["ISO_IR 144", "ISO_IR 192", "\\ISO 2022 IR 87"]
    inbox = tmp_path / "inbox"
    for n, charset in enumerate(charsets):
        drop(inbox, f"{_accession(charset)}_{n}.pdf", 20 + n)
    with wlmscpfs(worklist_files, "-csk") as wl, storescp(tmp_path / "scp") as store:
        result = watch_once(
            inbox, store.node,
            "--worklist", wl.node,
            "--name-pattern", "{AccessionNumber}_{*}.pdf",
            "--study", "AccessionNumber={AccessionNumber}",
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count(f"{store.node} answers no C-FIND") == 1
    assert len(records(result)) == 3
    received = [pydicom.dcmread(path) for path in (tmp_path / "scp" / "in").iterdir()]
    by_accession = {ds.AccessionNumber: ds for ds in received}
    for charset in charsets:
        ds = by_accession[_accession(charset)]
        assert ds.get_item(0x00100010).value.rstrip(b" ") == _raw_name(charset)
        assert str(ds.PatientName) == NAMES[charset][1]
        assert "RequestAttributesSequence" in ds
    for path in (tmp_path / "scp" / "in").iterdir():
        assert dciodvfy_errors(path) == []
