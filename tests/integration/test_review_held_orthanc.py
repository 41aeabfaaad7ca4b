"""A person files a held document on the review page while the hot folder that holds it runs,
against a real Orthanc: filed once, by the page, into the study chosen, byte-exact."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydicom

from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from pdf2dcm.review import Choice, Desk, ReviewOptions
from pdf2dcm.upload import UploadOptions, upload_file
from tests.integration.orthanc import OrthancServer
from tests.integration.test_watch_process import wait_for
from tests.pdfs import make_pdf


def journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def test_a_held_document_is_filed_by_the_page_and_never_by_the_watcher(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    inbox, log = tmp_path / "in", tmp_path / "watch.jsonl"
    inbox.mkdir()
    watcher = subprocess.Popen(
        [
            *(sys.executable, "-m", "pdf2dcm", "watch", str(inbox), "--url", orthanc.url),
            *("--done", str(tmp_path / "done"), "--failed", str(tmp_path / "failed")),
            *("--name-pattern", "{AccessionNumber}_{*}.pdf"),
            *("--study", "AccessionNumber={AccessionNumber}", "--tag", "PatientID=RH-1"),
            *("--settle", "0", "--hold-for", "1h", "--log", str(log), "--no-progress"),
        ],
        stderr=subprocess.PIPE,
    )
    settings = resolve_settings(url=orthanc.url, environ={}, netrc_file="/dev/null")
    client = OrthancClient(settings)
    try:
        pdf = make_pdf(4000, seed=41)
        (inbox / "RH-MISSING_consent.pdf").write_bytes(pdf)
        wait_for(lambda: any(r["Kind"] == "held" for r in journal(log)), 60, "the file to be held")
        study = upload_file(
            client,
            str(_image(tmp_path)),
            UploadOptions(tags={"PatientID": "RH-1", "AccessionNumber": "RH-REAL"}),
        )
        assert study.parent_study is not None

        desk = Desk(
            client,
            ReviewOptions(
                folders=(inbox,),
                journal=log,
                done=tmp_path / "filed",
                rejected=tmp_path / "rejected",
            ),
        )
        [document] = desk.documents()
        assert document.reason is not None
        assert "no study matches AccessionNumber=RH-MISSING" in document.reason
        assert "held, looked up again at" in document.reason
        choice = Choice("study", study.parent_study)
        filed = desk.file(document.key, choice, desk.preview(document.key, choice).confirmation)
        assert filed.result is not None
        assert filed.result.id is not None

        # A second file shows the watcher has looked at the inbox since: the first is gone.
        (inbox / "RH-LATER_other.pdf").write_bytes(make_pdf(3000, seed=42))
        wait_for(
            lambda: any(r.get("Input") == "RH-LATER_other.pdf" for r in journal(log)),
            60,
            "the watcher to see the second file",
        )
    finally:
        watcher.send_signal(signal.SIGTERM)
        _out, stderr = watcher.communicate(timeout=60)
        client.close()
    assert watcher.returncode == 0, stderr.decode()
    by_watcher = [r for r in journal(log) if r.get("Input") == "RH-MISSING_consent.pdf"]
    assert {r["Kind"] for r in by_watcher} <= {"held", "matched"}
    assert [r["Kind"] for r in by_watcher][-1] == "matched"
    stored = orthanc.get(f"/instances/{filed.result.id}/file").content
    written = tmp_path / "filed.dcm"
    written.write_bytes(stored)
    ds = pydicom.dcmread(written)
    assert bytes(ds.EncapsulatedDocument)[: len(pdf)] == pdf
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert (tmp_path / "filed" / "RH-MISSING_consent.pdf").read_bytes() == pdf
    copies = [
        i
        for i in orthanc.get(f"/studies/{study.parent_study}/instances").json()
        if i["MainDicomTags"].get("SOPInstanceUID") == ds.SOPInstanceUID
    ]
    assert len(copies) == 1


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "first.pdf"
    path.write_bytes(make_pdf(2000, seed=40))
    return path
