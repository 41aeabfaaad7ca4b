"""A hot folder left alone against a real Orthanc: only whole files are filed, server and
credential trouble is never the file's fault, files whose study is missing are held, the
watcher says what it does at start and stop, names are read as scanners write them, and one
inbox has one watcher.

Every wait is for an event (a journaled record, a file moved, a line said), never a fixed
sleep, so that the tests do not depend on the machine's speed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from pdf2dcm.upload import upload_file as real_upload
from tests.integration.orthanc import OrthancServer
from tests.pdfs import make_pdf

PASSWORD = "right-horse-battery"
ROTATED = "rotated-staple-7"


def watch_once(server: OrthancServer, inbox: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["watch", str(inbox), "--url", server.url, "--once", "--settle", "0", "--json", *args],
        catch_exceptions=False,
    )


def start_watch(
    server: OrthancServer, root: Path, *args: str, auth: tuple[str, str] | None = None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "pdf2dcm", "watch", str(root / "in"), "--url", server.url]
    command += ["--done", str(root / "done"), "--failed", str(root / "failed")]
    command += ["--log", str(root / "journal.jsonl"), *args]
    if auth is not None:
        command += ["--username", auth[0], "--password", auth[1]]
    log = (root / "stderr.log").open("ab")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def journal(root: Path) -> list[dict[str, Any]]:
    try:
        text = (root / "journal.jsonl").read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def journaled(root: Path, kind: str, name: str) -> Callable[[], bool]:
    return lambda: any(r["Kind"] == kind and r["Input"] == name for r in journal(root))


def stderr(root: Path) -> str:
    return (root / "stderr.log").read_text(encoding="utf-8")


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    return process.returncode


def files(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc that asks for a password (the test of a rotated one changes it)."""
    root = tmp_path_factory.mktemp("secured")
    extra = {"AuthenticationEnabled": True, "RegisteredUsers": {"scanner": PASSWORD}}
    with OrthancServer(root, extra=extra) as started:
        yield started


# --- 1. only whole files --------------------------------------------------------------------


def test_a_writer_pausing_longer_than_settle_is_filed_whole_once(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    """Case 1: half a file, then a pause far beyond --settle: it waits as still being
    written, and the archive gets the complete file, once."""
    (tmp_path / "in").mkdir()
    data = make_pdf(60_000, seed=1801)
    half = len(data) // 2
    assert b"%%EOF" not in data[:half]
    target = tmp_path / "in" / "slow.pdf"
    target.write_bytes(data[:half])
    watcher = start_watch(orthanc, tmp_path, "--settle", "0.2", "--tag", "PatientID=HALF")
    try:
        wait_for(journaled(tmp_path, "waiting", "slow.pdf"), "the half file to be said waiting")
        assert target.exists()
        with target.open("ab") as handle:
            handle.write(data[half:])
        wait_for(lambda: files(tmp_path / "done") == ["slow.pdf"], "the whole file to be done")
    finally:
        assert stop(watcher) == 0
    [waiting] = [r for r in journal(tmp_path) if r["Kind"] == "waiting"]
    assert "has no %%EOF marker near its end: still being written" in waiting["Error"]
    [stored] = [r for r in journal(tmp_path) if r["Kind"] == "uploaded"]
    assert stored["Size"] == len(data)
    assert stored["SHA256"] == hashlib.sha256(data).hexdigest()
    pdf = orthanc.get(f"/instances/{stored['ID']}/pdf").content
    assert pdf == data
    assert (tmp_path / "done" / "slow.pdf").read_bytes() == data


def test_a_file_that_changes_after_it_was_sent_is_sent_again_and_the_first_reported(
    orthanc: OrthancServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 1: the server confirmed, but the file grew meanwhile (a PDF with an incremental
    update ends with %%EOF twice): the earlier document is reported with its ID, the final
    one is filed, and done/ holds exactly what was filed last."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    first = make_pdf(3000, seed=1811)
    update = b"% an incremental update\n%%EOF\n"
    (inbox / "grows.pdf").write_bytes(first)
    calls: list[str] = []

    def upload_then_grow(*args: Any, **kwargs: Any) -> Any:
        result = real_upload(*args, **kwargs)
        if not calls:
            with (inbox / "grows.pdf").open("ab") as handle:
                handle.write(update)
        calls.append(result.sop_instance_uid)
        return result

    monkeypatch.setattr("pdf2dcm.watch.upload_file", upload_then_grow)
    result = watch_once(
        orthanc, inbox, "--tag", "PatientID=GROWS", "--done", str(tmp_path / "done")
    )
    assert result.exit_code == 0, result.stderr
    [changed, stored] = [json.loads(line) for line in result.stdout.splitlines()]
    assert changed["Kind"] == "changed"
    assert changed["SHA256"] == hashlib.sha256(first).hexdigest()
    assert f"the document stored as {changed['ID']}" in result.stderr
    assert "remove it from the archive" in changed["Error"]
    assert stored["Kind"] == "uploaded"
    assert stored["SHA256"] == hashlib.sha256(first + update).hexdigest()
    assert stored["SOPInstanceUID"] != changed["SOPInstanceUID"]
    assert (tmp_path / "done" / "grows.pdf").read_bytes() == first + update
    assert orthanc.get(f"/instances/{stored['ID']}/pdf").content == first + update
    assert len(calls) == 2


def test_a_pdf_without_its_end_is_never_stored_nor_deleted(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    """Case 2: ``printf '%PDF-1.4\\nbroken' > x.pdf; watch --once --settle 0 --delete``."""
    before = orthanc.instance_count()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "x.pdf").write_bytes(b"%PDF-1.4\nbroken")
    result = watch_once(orthanc, inbox, "--delete", "--tag", "PatientID=CUT")
    assert result.exit_code == 2
    assert "x.pdf has no %%EOF marker near its end: still being written" in (result.stderr)
    assert (inbox / "x.pdf").read_bytes() == b"%PDF-1.4\nbroken"
    assert orthanc.instance_count() == before
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (record["Kind"], record["Input"], record["Destination"]) == ("waiting", "x.pdf", None)


def test_a_pdf_without_its_end_goes_to_failed_after_the_limit(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    before = orthanc.instance_count()
    inbox = tmp_path / "in"
    inbox.mkdir()
    cut = inbox / "x.pdf"
    cut.write_bytes(b"%PDF-1.4\nbroken")
    an_hour_ago = time.time() - 3601
    os.utime(cut, (an_hour_ago, an_hour_ago))
    result = watch_once(
        orthanc, inbox, "--delete", "--failed", str(tmp_path / "failed"), "--tag", "PatientID=C"
    )
    assert result.exit_code == 2
    assert files(tmp_path / "failed") == ["x.pdf", "x.pdf.error.json"]
    reason = json.loads((tmp_path / "failed" / "x.pdf.error.json").read_text(encoding="utf-8"))
    assert "has no %%EOF marker near its end" in reason["Error"]
    assert orthanc.instance_count() == before


# --- 3. server and credential trouble ---------------------------------------------------------


def test_a_wrong_password_ends_the_start_with_exit_4_and_leaves_the_files(
    secured: OrthancServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.pdf").write_bytes(make_pdf(2000, seed=1831))
    result = CliRunner().invoke(
        cli,
        [
            *("watch", str(inbox), "--url", secured.url, "--username", "scanner"),
            *("--password", "wrong", "--delete", "--failed", str(tmp_path / "failed"), "--once"),
        ],
    )
    assert result.exit_code == 4
    assert result.stderr.startswith("pdf2dcm: error: ")
    assert result.stderr.count("\n") == 1
    assert "wrong" not in result.stderr
    assert files(inbox) == ["a.pdf"]
    assert files(tmp_path / "failed") == []


def test_a_rotated_password_leaves_every_scan_in_the_inbox_said_once(
    secured: OrthancServer, tmp_path: Path
) -> None:
    """Case 3: the password changes under a running watcher: 3 scans wait in the inbox
    (journaled ``waiting``), none goes to --failed, the trouble is said once; with the
    password back, they are filed."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "first.pdf").write_bytes(make_pdf(2000, seed=1832))
    watcher = start_watch(
        secured, tmp_path, "--settle", "0", "--tag", "PatientID=ROT", auth=("scanner", PASSWORD)
    )
    try:
        wait_for(journaled(tmp_path, "uploaded", "first.pdf"), "the first file")
        secured.stop()
        secured.config["RegisteredUsers"] = {"scanner": ROTATED}
        secured.auth = ("scanner", ROTATED)
        secured.start()
        for number in range(3):
            (inbox / f"scan{number}.pdf").write_bytes(make_pdf(2000, seed=1840 + number))
        for number in range(3):
            wait_for(journaled(tmp_path, "waiting", f"scan{number}.pdf"), f"scan{number} waiting")
        assert files(inbox) == ["scan0.pdf", "scan1.pdf", "scan2.pdf"]
        assert files(tmp_path / "failed") == []
        said = [line for line in stderr(tmp_path).splitlines() if "authentication" in line]
        assert len(said) == 1, said
        assert PASSWORD not in stderr(tmp_path)
    finally:
        code = stop(watcher)
        secured.stop()
        secured.config["RegisteredUsers"] = {"scanner": PASSWORD}
        secured.auth = ("scanner", PASSWORD)
        secured.start()
    assert code == 0
    waiting = [r for r in journal(tmp_path) if r["Kind"] == "waiting"]
    assert all(r["Error"] and "authentication failed" in r["Error"] for r in waiting)
    assert stderr(tmp_path).splitlines()[-1] == (
        "pdf2dcm: 4 files: 1 stored, 0 failed, 0 held, 3 waiting"
    )
    restarted = start_watch(
        secured, tmp_path, "--settle", "0", "--tag", "PatientID=ROT", auth=("scanner", PASSWORD)
    )
    try:
        wait_for(lambda: files(inbox) == [], "the waiting scans to be filed")
    finally:
        assert stop(restarted) == 0
    assert files(tmp_path / "done") == ["first.pdf", "scan0.pdf", "scan1.pdf", "scan2.pdf"]


# --- 4. hold what cannot be filed yet ---------------------------------------------------------


def test_a_consent_form_before_its_study_is_held_then_filed(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    """Case 4: the study does not exist yet: the file is held (journaled with its next try),
    and filed into the study once the images arrive."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "HOLD-1_consent.pdf").write_bytes(make_pdf(2000, seed=1851))
    watcher = start_watch(
        orthanc,
        tmp_path,
        "--settle",
        "0",
        "--name-pattern",
        "{AccessionNumber}_{*}.pdf",
        "--study",
        "AccessionNumber={AccessionNumber}",
        "--hold-for",
        "10m",
    )
    try:
        wait_for(journaled(tmp_path, "held", "HOLD-1_consent.pdf"), "the file to be held")
        images = tmp_path / "images.pdf"
        images.write_bytes(make_pdf(2500, seed=1852))
        uploaded = CliRunner().invoke(
            cli,
            [
                *("upload", str(images), "--url", orthanc.url, "--json"),
                *("--tag", "AccessionNumber=HOLD-1", "--tag", "PatientID=P-HOLD"),
            ],
        )
        assert uploaded.exit_code == 0, uploaded.stderr
        study = json.loads(uploaded.stdout)["ParentStudy"]
        wait_for(lambda: files(inbox) == [], "the held file to be filed", timeout=90)
    finally:
        assert stop(watcher) == 0
    [held, *_] = [r for r in journal(tmp_path) if r["Kind"] == "held"]
    assert held["Error"] == f"no study matches AccessionNumber=HOLD-1 at {orthanc.url}"
    assert held["RetryIn"] == 2.0
    assert held["NextTry"] > held["Time"]
    [stored] = [r for r in journal(tmp_path) if r["Kind"] == "uploaded"]
    assert stored["ParentStudy"] == study
    assert files(tmp_path / "failed") == []
    assert "held in the inbox, next look in 2 s" in stderr(tmp_path)


def test_a_hold_keeps_its_clock_across_restarts_then_fails_with_the_reason(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "NONE-1_consent.pdf").write_bytes(make_pdf(2000, seed=1861))
    options = ["--name-pattern", "{AccessionNumber}_{*}.pdf"]
    options += ["--study", "AccessionNumber={AccessionNumber}", "--hold-for", "2s", "--delete"]
    options += ["--failed", str(tmp_path / "failed")]
    first = watch_once(orthanc, inbox, *options)
    assert first.exit_code == 0, first.stderr
    [held] = [json.loads(line) for line in first.stdout.splitlines()]
    assert held["Kind"] == "held"
    assert "1 held" in first.stderr
    arrived = os.stat(inbox / "NONE-1_consent.pdf").st_ctime
    # A new process: the clock is the file's arrival, not the process's start.
    wait_for(lambda: time.time() > arrived + 2.2, "the hold to run out", timeout=10)
    second = watch_once(orthanc, inbox, *options)
    assert second.exit_code == 2, second.stderr
    assert files(tmp_path / "failed") == ["NONE-1_consent.pdf", "NONE-1_consent.pdf.error.json"]
    reason = json.loads(
        (tmp_path / "failed" / "NONE-1_consent.pdf.error.json").read_text(encoding="utf-8")
    )
    assert reason["Error"] == (
        f"no study matches AccessionNumber=NONE-1 at {orthanc.url}; held for 2 s since "
        "NONE-1_consent.pdf arrived, without a match; file the study first, then put the file "
        "back in the inbox"
    )


# --- 5. start and stop ----------------------------------------------------------------------


def test_the_start_line_and_the_summary_on_sigterm(orthanc: OrthancServer, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.pdf").write_bytes(make_pdf(2000, seed=1871))
    (inbox / "b.pdf").write_bytes(b"not a pdf")
    watcher = start_watch(orthanc, tmp_path, "--settle", "0", "--tag", "PatientID=SUM")
    try:
        wait_for(journaled(tmp_path, "failed", "b.pdf"), "b.pdf to fail")
        wait_for(journaled(tmp_path, "uploaded", "a.pdf"), "a.pdf to be stored")
    finally:
        assert stop(watcher) == 0
    lines = stderr(tmp_path).splitlines()
    assert lines[0] == (
        f"pdf2dcm: watching {inbox}; filing to {orthanc.url} by instances; settle 0 s; "
        f"hold 24 h; done -> {tmp_path / 'done'}; failed -> {tmp_path / 'failed'}"
    )
    assert lines[-1] == "pdf2dcm: 2 files: 1 stored, 1 failed, 0 held, 0 waiting"


# --- 6. names -------------------------------------------------------------------------------


def test_upper_case_pdf_names_match_patterns_and_others_are_said_once(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    """Case 6: ``P100_A123_x.PDF`` as a Windows scanner writes it; ``notes.txt`` said once
    however many looks; a subfolder without --recursive gets a hint."""
    inbox = tmp_path / "in"
    (inbox / "ward").mkdir(parents=True)
    (inbox / "P100_A123_x.PDF").write_bytes(make_pdf(2000, seed=1881))
    (inbox / "notes.txt").write_text("call back", encoding="utf-8")
    (inbox / "ward" / "P101_A124_y.pdf").write_bytes(make_pdf(2000, seed=1882))
    watcher = start_watch(
        orthanc,
        tmp_path,
        "--settle",
        "0",
        "--name-pattern",
        "{PatientID}_{AccessionNumber}_{*}.pdf",
    )
    try:
        wait_for(journaled(tmp_path, "uploaded", "P100_A123_x.PDF"), "the .PDF file")
        (inbox / "P102_A125_z.Pdf").write_bytes(make_pdf(2000, seed=1883))
        wait_for(journaled(tmp_path, "uploaded", "P102_A125_z.Pdf"), "a later file")
    finally:
        assert stop(watcher) == 0
    [stored, _] = [r for r in journal(tmp_path) if r["Kind"] == "uploaded"]
    tags = orthanc.get(f"/instances/{stored['ID']}/simplified-tags").json()
    assert (tags["PatientID"], tags["AccessionNumber"]) == ("P100", "A123")
    text = stderr(tmp_path)
    assert text.count("notes.txt is not a PDF by its name (.pdf)") == 1
    assert text.count(f"subfolders of {inbox} are not watched (ward); give --recursive") == 1
    assert files(inbox) == ["notes.txt", "ward/P101_A124_y.pdf"]


# --- two watchers -----------------------------------------------------------------------------


def test_a_second_watcher_on_the_same_inbox_is_refused(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    first = start_watch(orthanc, tmp_path, "--settle", "0")
    try:
        wait_for(lambda: "pdf2dcm: watching " in stderr(tmp_path), "the first start line")
        second = CliRunner().invoke(
            cli,
            ["watch", str(tmp_path / "in"), "--url", orthanc.url, "--delete", "--once"],
        )
    finally:
        assert stop(first) == 0
    assert second.exit_code == 2
    assert second.stderr == (
        f"pdf2dcm: error: another pdf2dcm watch is already watching {tmp_path / 'in'}; stop it "
        "first, or give each watcher its own inbox\n"
    )
