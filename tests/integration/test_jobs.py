"""Orthanc jobs against real peers: DCMTK storescp as a modality, a second Orthanc as a peer."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from pdf2dcm.extract import extract_pdf
from tests.conftest import require_binary
from tests.integration.orthanc import OrthancServer, free_port
from tests.pdfs import make_pdf


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@dataclass
class StoreScp:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def storescp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreScp]:
    binary = require_binary("storescp")
    directory = tmp_path_factory.mktemp("storescp")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-aet", "STORESCP", "-od", str(directory), "+B", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield StoreScp(port, directory, process)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    with OrthancServer(tmp_path_factory.mktemp("peer")) as server:
        yield server


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, storescp: StoreScp, peer: OrthancServer
) -> Iterator[OrthancServer]:
    """An Orthanc that knows the storescp modality, a modality nobody listens on, and a peer."""
    with OrthancServer(
        tmp_path_factory.mktemp("hub"),
        extra={
            "DicomModalities": {
                "storescp": ["STORESCP", "127.0.0.1", storescp.port],
                "nobody": ["NOBODY", "127.0.0.1", free_port()],
            },
            "OrthancPeers": {"peer": {"Url": f"{peer.url}/"}},
        },
    ) as server:
        yield server


def upload(server: OrthancServer, pdf: Path, *args: str) -> Result:
    return run("upload", str(pdf), "--url", server.url, "--json", *args)


def test_store_to_storescp_delivers_the_identical_pdf(
    hub: OrthancServer, storescp: StoreScp, tmp_path: Path
) -> None:
    pdf = tmp_path / "modality.pdf"
    pdf.write_bytes(make_pdf(5000, tail=b"", seed=None))
    result = upload(hub, pdf, "--tag", "PatientID=SCP", "--send-to-modality", "storescp", "--wait")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["Kind"] for line in lines] == ["uploaded", "job"]
    assert lines[1]["Target"] == "modality storescp"
    assert lines[1]["State"] == "Success"
    sop_uid = lines[0]["SOPInstanceUID"]
    received = [p for p in storescp.directory.iterdir() if sop_uid in p.name]
    assert len(received) == 1
    extract_pdf(received[0], tmp_path / "received.pdf")
    assert (tmp_path / "received.pdf").read_bytes() == pdf.read_bytes()


def test_store_to_a_silent_modality_fails_with_the_error(
    hub: OrthancServer, tmp_path: Path
) -> None:
    pdf = tmp_path / "nobody.pdf"
    pdf.write_bytes(make_pdf(3000, seed=None))
    result = upload(hub, pdf, "--tag", "PatientID=NOBODY", "--send-to-modality", "nobody", "--wait")
    assert result.exit_code == 6
    assert json.loads(result.stdout.splitlines()[1])["State"] == "Failure"
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("pdf2dcm: error: job ")
    assert "(DicomModalityStore) failed: ErrorCode " in error


def test_store_to_a_peer_arrives_identical(
    hub: OrthancServer, peer: OrthancServer, tmp_path: Path
) -> None:
    pdf = tmp_path / "peer.pdf"
    pdf.write_bytes(make_pdf(4000, tail=b"", seed=None))
    result = upload(hub, pdf, "--tag", "PatientID=PEER", "--send-to-peer", "peer", "--wait")
    assert result.exit_code == 0, result.stderr
    record, job = (json.loads(line) for line in result.stdout.splitlines())
    assert record["Kind"] == "uploaded"
    assert job == {
        "Kind": "job",
        "ID": job["ID"],
        "Target": "peer peer",
        "Instances": 1,
        "State": "Success",
    }
    fetched = run("fetch", record["ID"], "--url", peer.url, "-o", str(tmp_path / "there.pdf"))
    assert fetched.exit_code == 0, fetched.stderr
    assert (tmp_path / "there.pdf").read_bytes() == pdf.read_bytes()


def test_forwarding_without_wait_prints_the_job(hub: OrthancServer, tmp_path: Path) -> None:
    pdf = tmp_path / "nowait.pdf"
    pdf.write_bytes(make_pdf(3000, seed=None))
    result = run(
        "upload", str(pdf), "--url", hub.url, "--tag", "PatientID=NW", "--send-to-peer", "peer"
    )
    assert result.exit_code == 0, result.stderr
    job_line = result.stdout.splitlines()[-1]
    assert job_line.startswith("job ")
    assert job_line.endswith(" sending 1 instance to peer peer submitted")
    job_id = job_line.split()[1]
    waited = run("jobs", "wait", job_id, "--url", hub.url, "--json")
    assert waited.exit_code == 0, waited.stderr
    assert json.loads(waited.stdout)["State"] == "Success"
    shown = run("jobs", "show", job_id, "--url", hub.url)
    assert shown.stdout.strip() == f"job {job_id} (OrthancPeerStore): Success 100%"
    listed = run("jobs", "list", "--url", hub.url, "--state", "Success", "--json")
    assert job_id in {json.loads(line)["ID"] for line in listed.stdout.splitlines()}


def test_unknown_modality_is_refused(hub: OrthancServer, tmp_path: Path) -> None:
    pdf = tmp_path / "x.pdf"
    pdf.write_bytes(make_pdf(3000, seed=None))
    before = hub.instance_count()
    result = upload(hub, pdf, "--tag", "PatientID=UNK", "--send-to-modality", "ghost")
    assert result.exit_code == 2
    assert "knows no modality named 'ghost'; known: " in result.stderr
    assert hub.instance_count() == before


def test_archive_job_download(hub: OrthancServer, tmp_path: Path) -> None:
    pdf = tmp_path / "archive.pdf"
    pdf.write_bytes(make_pdf(6001, seed=None))
    [record] = [
        json.loads(x) for x in upload(hub, pdf, "--tag", "PatientID=ZIP").stdout.splitlines()
    ]
    job = requests.post(
        f"{hub.url}/studies/{record['ParentStudy']}/archive",
        json={"Asynchronous": True},
        timeout=30,
    ).json()
    target = tmp_path / "study.zip"
    result = run("jobs", "wait", job["ID"], "--url", hub.url, "--download", str(target))
    assert result.exit_code == 0, result.stderr
    with zipfile.ZipFile(target) as archive:
        [member] = [n for n in archive.namelist() if n.lower().endswith(".dcm")]
        (tmp_path / "member.dcm").write_bytes(archive.read(member))
    extract_pdf(tmp_path / "member.dcm", tmp_path / "member.pdf")
    assert (tmp_path / "member.pdf").read_bytes() == pdf.read_bytes()


UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"


def test_unknown_job(hub: OrthancServer) -> None:
    result = run("jobs", "wait", UNKNOWN_JOB, "--url", hub.url)
    assert result.exit_code == 4
    assert result.stderr.strip() == (
        f"pdf2dcm: error: job {UNKNOWN_JOB} is not known to {hub.url}: it never existed or was "
        "dropped from the job history (Orthanc keeps the last JobsHistorySize finished jobs)"
    )
    assert run("jobs", "cancel", UNKNOWN_JOB, "--url", hub.url).exit_code == 4


@pytest.mark.parametrize("command", ["cancel", "pause", "show", "wait"])
def test_a_job_id_cannot_address_another_route(hub: OrthancServer, command: str) -> None:
    """``../tools/shutdown?`` once reached POST /tools/shutdown; it is refused before sending."""
    result = run("jobs", command, "../tools/shutdown?", "--url", hub.url)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "pdf2dcm: error: job ID '../tools/shutdown?' is not an Orthanc job ID; give a UUID "
        "such as 32af28ce-d1f9-4655-b38e-3237a3cdcbaa"
    )
    assert requests.get(f"{hub.url}/system", timeout=10).status_code == 200


class BlackHole:
    """Accepts TCP connections and never answers: a modality that keeps a job running."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port: int = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        with self.listener:
            while True:
                try:
                    connection, _ = self.listener.accept()
                except OSError:
                    return
                self.held.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[tuple[OrthancServer, str]]:
    """An Orthanc running one job at a time, its slot taken by a store to a black hole;
    yields the server and an instance ID to make more (pending) jobs with."""
    hole = BlackHole()
    server = OrthancServer(
        tmp_path / "busy",
        extra={
            "ConcurrentJobs": 1,
            "DicomScuTimeout": 60,
            "DicomModalities": {"hole": ["HOLE", "127.0.0.1", hole.port]},
        },
    )
    server.start()
    try:
        pdf = tmp_path / "busy.pdf"
        pdf.write_bytes(make_pdf(3000, seed=None))
        [record] = [
            json.loads(x) for x in upload(server, pdf, "--tag", "PatientID=B").stdout.splitlines()
        ]
        blocker = run("upload", str(pdf), "--url", server.url, "--send-to-modality", "hole")
        assert blocker.exit_code == 0, blocker.stderr
        yield server, record["ID"]
    finally:
        server.kill()
        hole.close()


def pending_job(server: OrthancServer, instance_id: str) -> str:
    answer = requests.post(
        f"{server.url}/modalities/hole/store",
        json={"Resources": [instance_id], "Asynchronous": True},
        timeout=30,
    ).json()
    return str(answer["ID"])


def test_paused_job_times_out_then_cancelled_job_fails(busy: tuple[OrthancServer, str]) -> None:
    server, instance = busy
    job = pending_job(server, instance)
    assert run("jobs", "pause", job, "--url", server.url).exit_code == 0
    started = time.monotonic()
    waited = run("jobs", "wait", job, "--url", server.url, "--timeout", "1")
    assert time.monotonic() - started < 10
    assert waited.exit_code == 7
    assert (
        f"job {job} (DicomModalityStore) is still Paused at 0% after 1 s; it goes on"
        in waited.stderr
    )
    assert run("jobs", "resume", job, "--url", server.url).exit_code == 0
    assert requests.get(f"{server.url}/jobs/{job}", timeout=10).json()["State"] == "Pending"
    assert run("jobs", "cancel", job, "--url", server.url).exit_code == 0
    cancelled = run("jobs", "wait", job, "--url", server.url, "--json")
    assert cancelled.exit_code == 6
    assert json.loads(cancelled.stdout)["ErrorCode"] == 37
    assert f"job {job} (DicomModalityStore) was cancelled: ErrorCode 37" in cancelled.stderr
    resubmitted = run("jobs", "resubmit", job, "--url", server.url)
    assert resubmitted.exit_code == 0, resubmitted.stderr
    assert requests.get(f"{server.url}/jobs/{job}", timeout=10).json()["State"] == "Pending"


def test_evicted_job_is_reported(tmp_path: Path) -> None:
    with OrthancServer(tmp_path / "short", extra={"JobsHistorySize": 1}) as server:
        pdf = tmp_path / "e.pdf"
        pdf.write_bytes(make_pdf(3000, seed=None))
        [record] = [
            json.loads(x) for x in upload(server, pdf, "--tag", "PatientID=E").stdout.splitlines()
        ]
        jobs = []
        for _ in range(3):
            answer = requests.post(
                f"{server.url}/studies/{record['ParentStudy']}/archive",
                json={"Asynchronous": True},
                timeout=30,
            ).json()
            assert run("jobs", "wait", answer["ID"], "--url", server.url).exit_code == 0
            jobs.append(answer["ID"])
        result = run("jobs", "wait", jobs[0], "--url", server.url)
        assert result.exit_code == 4
        assert "dropped from the job history" in result.stderr


@pytest.mark.parametrize(
    ("cancel", "stop", "code"),
    [
        (False, signal.SIGINT, 130),
        (True, signal.SIGINT, 130),
        (True, signal.SIGTERM, 143),
    ],
)
def test_interrupt_stops_waiting_and_cancels_only_when_asked(
    busy: tuple[OrthancServer, str], cancel: bool, stop: signal.Signals, code: int
) -> None:
    server, instance = busy
    job = pending_job(server, instance)
    command = [sys.executable, "-m", "pdf2dcm", "jobs", "wait", job, "--url", server.url]
    if cancel:
        command.append("--cancel-on-interrupt")
    waiter = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    waiter.send_signal(stop)
    _out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == code
    state = requests.get(f"{server.url}/jobs/{job}", timeout=10).json()
    if cancel:
        assert err.strip().endswith(f"pdf2dcm: interrupted; cancel requested for {job}")
        assert (state["State"], state["ErrorCode"]) == ("Failure", 37)
    else:
        assert err.strip().endswith(f"pdf2dcm: interrupted; the jobs go on in Orthanc: {job}")
        assert state["State"] == "Pending"


def test_actions_in_a_state_that_forbids_them_name_the_state(
    busy: tuple[OrthancServer, str],
) -> None:
    server, instance = busy
    first, second = pending_job(server, instance), pending_job(server, instance)
    resumed = run("jobs", "resume", first, "--url", server.url)
    assert resumed.exit_code == 2
    assert resumed.stderr == (
        f"pdf2dcm: error: job {first} (DicomModalityStore) is Pending; only Paused jobs can "
        "be resumed\n"
    )
    cancelled = run("jobs", "cancel", first, second, "--url", server.url)
    assert cancelled.exit_code == 0, cancelled.stderr
    assert cancelled.stdout.splitlines() == [
        f"job {first}: cancel requested (was Pending)",
        f"job {second}: cancel requested (was Pending)",
    ]
    assert re.fullmatch(
        r"pdf2dcm: 2 jobs: 2 cancel requested, 0 failed in \d+\.\d s\n", cancelled.stderr
    )
    assert run("jobs", "wait", first, second, "--url", server.url).exit_code == 6
    again = run("jobs", "cancel", first, UNKNOWN_JOB, "--url", server.url)
    assert again.exit_code == 2
    assert again.stderr.splitlines() == [
        f"pdf2dcm: error: job {first} (DicomModalityStore) already ended (Failure); nothing to "
        "cancel: only Pending, Running, Paused or Retry jobs can be cancelled",
        f"pdf2dcm: error: job {UNKNOWN_JOB} is not known to {server.url}: it never existed or "
        "was dropped from the job history (Orthanc keeps the last JobsHistorySize finished jobs)",
        again.stderr.splitlines()[-1],
    ]
    assert re.fullmatch(r"pdf2dcm: 2 jobs: 2 failed in \d+\.\d s", again.stderr.splitlines()[-1])
    paused = run("jobs", "pause", second, "--url", server.url)
    assert paused.exit_code == 2
    assert "already ended (Failure); nothing to pause" in paused.stderr
    assert requests.get(f"{server.url}/jobs/{second}", timeout=10).json()["State"] == "Failure"


def test_resubmitting_a_successful_job_is_refused(hub: OrthancServer, tmp_path: Path) -> None:
    pdf = tmp_path / "done.pdf"
    pdf.write_bytes(make_pdf(2000, seed=None))
    [record] = [
        json.loads(x) for x in upload(hub, pdf, "--tag", "PatientID=RS").stdout.splitlines()
    ]
    job = requests.post(
        f"{hub.url}/studies/{record['ParentStudy']}/archive",
        json={"Asynchronous": True},
        timeout=30,
    ).json()["ID"]
    assert run("jobs", "wait", job, "--url", hub.url).exit_code == 0
    result = run("jobs", "resubmit", job, "--url", hub.url)
    assert result.exit_code == 2
    assert result.stderr == (
        f"pdf2dcm: error: job {job} (Archive) is Success; only Failure jobs can be resubmitted\n"
    )


def test_list_is_oldest_first_with_creation_time_and_destination(
    busy: tuple[OrthancServer, str],
) -> None:
    server, instance = busy
    created = [pending_job(server, instance) for _ in range(3)]
    result = run("jobs", "list", "--url", server.url)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    listed = [line.split()[1] for line in lines]
    assert listed[-3:] == created
    pattern = (
        r"job [0-9a-f-]{36} \(DicomModalityStore\): (Pending|Running) \d+%, "
        r"created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, to HOLE"
    )
    for line in lines:
        assert re.fullmatch(pattern, line), line
    times = [re.search(r"created ([^,]+)", line).group(1) for line in lines]  # type: ignore[union-attr]
    assert times == sorted(times)
