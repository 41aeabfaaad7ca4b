"""A server that misbehaves on purpose: wrong shapes, redirects, endless or trickled answers.

A real Orthanc cannot be made to do any of this, so the scripted server of
tests/fake_orthanc.py plays it, and the command line is run against it as a user would.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm import client as client_module
from pdf2dcm import jobs as jobs_module
from pdf2dcm.cli import cli
from pdf2dcm.client import MAX_JSON_BYTES, OrthancClient, RepeatableBody
from pdf2dcm.config import resolve_settings
from pdf2dcm.errors import RedirectError, UnexpectedReplyError
from tests import fake_orthanc as hostile
from tests.fake_orthanc import FakeOrthanc as HostileServer
from tests.fake_orthanc import reply
from tests.pdfs import make_pdf

INSTANCE = "1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b"
SERIES = "3e4024bc-a395a1e3-54254769-da9a9d72-b00f8968"
STUDY = "9d2a4c8e-11111111-22222222-33333333-44444444"
PATIENT = "0a0b0c0d-55555555-66666666-77777777-88888888"
JOB = "32af28ce-d1f9-4655-b38e-3237a3cdcbaa"
PDF = b"%PDF-1.4\n" + b"x" * 5000 + b"\n%%EOF\n"


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Whatever the developer's environment and ~/.netrc hold, these tests see none of it."""
    for name in ("ORTHANC_URL", "ORTHANC_USERNAME", "ORTHANC_PASSWORD", "ORTHANC_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def server() -> Iterator[HostileServer]:
    yield from hostile.serve()


def run(*args: str) -> tuple[Result, float]:
    start = time.monotonic()
    result = CliRunner().invoke(cli, list(args))
    return result, time.monotonic() - start


def client_of(server: HostileServer, **options: float) -> OrthancClient:
    settings = resolve_settings(url=server.url, environ={}, netrc_file="/dev/null", **options)  # type: ignore[arg-type]
    return OrthancClient(settings, sleep=lambda _seconds: None)


def body() -> RepeatableBody:
    return RepeatableBody(4, lambda: iter([b"DICM"]))


def pdf_instance(server: HostileServer, document: hostile.Action, length: int) -> None:
    """Routes for a fetch of INSTANCE whose document is answered by ``document``."""
    base = f"/instances/{INSTANCE}"
    server.routes[("GET", base)] = reply(
        200, {"ID": INSTANCE, "ParentSeries": SERIES, "MainDicomTags": {}}
    )
    server.routes[("GET", f"{base}/content/0042-0012")] = reply(200, b"application/pdf")
    server.routes[("GET", f"{base}/content/0042-0015")] = reply(200, length.to_bytes(4, "little"))
    server.routes[("GET", f"{base}/content/0042-0011")] = document


# --- wrong shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (b"[1,2,3]", "the answer is an array, not a JSON object"),
        (b"null", "the answer is null, not a JSON object"),
        (b"{}", "'ID' is missing, not a string"),
        (b'{"ID": 5}', "'ID' is a number, not a string"),
        (b'{"ID": "../../tools/shutdown"}', "'ID' '../../tools/shutdown' is not an Orthanc"),
        (b'{"ID": "' + INSTANCE.encode() + b'", "ParentSeries": ["x"]}', "'ParentSeries' is an"),
        (b"<html>busy</html>", "not JSON; is this an Orthanc server?"),
        (b"", "an empty body where JSON was expected"),
    ],
)
def test_a_store_answer_of_the_wrong_shape_is_one_error(
    server: HostileServer, answer: bytes, detail: str
) -> None:
    server.routes[("POST", "/instances")] = reply(200, answer)
    with client_of(server) as client, pytest.raises(UnexpectedReplyError) as caught:
        client.store_instance(body())
    assert str(caught.value).startswith(f"unexpected reply from {server.url}/instances: ")
    assert detail in str(caught.value)


@pytest.mark.parametrize(
    ("route", "answer", "args", "message"),
    [
        (("GET", "/jobs"), {"a": 1}, ["jobs", "list"], "/jobs?expand=: the answer is an object"),
        (("GET", "/jobs"), [1, 2], ["jobs", "list"], "an item of the array is a number"),
        (
            ("GET", f"/jobs/{JOB}"),
            {"ID": JOB, "State": 3},
            ["jobs", "show", JOB],
            "'State' is a number, not a string",
        ),
        (
            ("GET", f"/jobs/{JOB}"),
            {"ID": JOB, "State": "Running", "Progress": "half"},
            ["jobs", "wait", JOB],
            "'Progress' is a string, not an integer",
        ),
        (
            ("GET", f"/instances/{INSTANCE}"),
            None,
            ["fetch", INSTANCE, "-o", "out.pdf"],
            "the answer is null, not a JSON object",
        ),
        (
            ("GET", f"/studies/{STUDY}/instances"),
            [{"ID": INSTANCE}],
            ["fetch", "--study", STUDY, "-d", "out"],
            "'ParentSeries' is missing, not a string",
        ),
    ],
)
def test_commands_report_a_wrong_shape_with_exit_5(
    server: HostileServer,
    route: tuple[str, str],
    answer: object,
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    server.routes[route] = reply(200, json.dumps(answer).encode())
    if "--study" in args:
        # The study itself must be found before its instances are listed.
        study = {"ID": STUDY, "ParentPatient": PATIENT, "MainDicomTags": {}, "Series": []}
        server.routes[("GET", f"/studies/{STUDY}")] = reply(200, json.dumps(study).encode())
    result, _ = run(*args, "--url", server.url)
    assert result.exit_code == 5, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"pdf2dcm: error: unexpected reply from {server.url}/")
    assert message in line
    assert list(tmp_path.iterdir()) == []


def test_an_attribute_value_is_read_up_to_a_bound(server: HostileServer) -> None:
    server.routes[("GET", f"/instances/{INSTANCE}/content/0042-0010")] = reply(200, b"t" * 2000)
    with client_of(server) as client:
        assert client.instance_content(INSTANCE, "0042-0010") == b"t" * 2000
        with pytest.raises(UnexpectedReplyError, match=r"attribute 0042-0010 is longer than 100"):
            client.instance_content(INSTANCE, "0042-0010", max_bytes=100)


# --- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_store_is_never_redirected(server: HostileServer, status: int) -> None:
    server.routes[("POST", "/instances")] = hostile.redirect(
        status, "http://user:hunter2@elsewhere.example:8042/instances"
    )
    with client_of(server) as client, pytest.raises(RedirectError) as caught:
        client.store_instance(body())
    assert str(caught.value) == (
        f"{server.url} redirected POST /instances to "
        "http://user:***@elsewhere.example:8042/instances; redirects of a request that "
        "carries a body are not followed: use the final address as the server URL"
    )
    assert [(r.method, r.path) for r in server.received] == [("POST", "/instances")]


def test_a_get_is_not_redirected_to_another_server(server: HostileServer) -> None:
    server.routes[("GET", "/jobs")] = hostile.redirect(302, "http://127.0.0.2:1/jobs")
    result, _ = run("jobs", "list", "--url", server.url)
    assert result.exit_code == 4
    assert result.stderr.strip() == (
        f"pdf2dcm: error: {server.url} redirected GET /jobs to http://127.0.0.2:1/jobs; "
        "redirects to another server are not followed: use the final address as the server URL"
    )


def test_a_get_follows_a_redirect_on_the_same_server(server: HostileServer) -> None:
    server.routes[("GET", "/jobs")] = hostile.redirect(302, "/v2/jobs")
    server.routes[("GET", "/v2/jobs")] = reply(200, [])
    result, _ = run("jobs", "list", "--url", server.url)
    assert result.exit_code == 0, result.stderr
    assert [r.path for r in server.received] == ["/jobs?expand=", "/v2/jobs"]


def test_a_redirect_loop_ends(server: HostileServer) -> None:
    server.routes[("GET", "/system")] = hostile.redirect(302, "/system")
    with client_of(server) as client, pytest.raises(RedirectError, match=r"more than 5 times"):
        client.system()
    assert len(server.received) == 6


# --- size ------------------------------------------------------------------------------------


def test_an_endless_json_answer_stops_at_the_cap(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the client takes is counted, not what the server wrote: the kernel's socket
    buffers (up to 32 MiB of receive window on loopback) take more than the client reads."""
    from pdf2dcm.transport import Response

    taken: list[int] = []
    read1 = Response.read1

    def counted(response: Response, size: int) -> bytes:
        piece = read1(response, size)
        taken.append(len(piece))
        return piece

    monkeypatch.setattr(Response, "read1", counted)
    server.routes[("GET", "/jobs")] = hostile.endless_chunked()
    result, elapsed = run("jobs", "list", "--url", server.url)
    assert result.exit_code == 5
    assert result.stderr.strip() == (
        f"pdf2dcm: error: unexpected reply from {server.url}/jobs?expand=: more than 64 MiB of JSON"
    )
    assert MAX_JSON_BYTES < sum(taken) <= MAX_JSON_BYTES + client_module._READ_PIECE
    assert elapsed < 30


def test_an_announced_huge_json_answer_is_not_read(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "MAX_JSON_BYTES", 1000)
    server.routes[("GET", "/system")] = reply(200, b" " * 1001)
    with client_of(server) as client, pytest.raises(UnexpectedReplyError) as caught:
        client.system()
    assert str(caught.value) == (
        f"unexpected reply from {server.url}/system: 1001 bytes of JSON, more than 0 MiB"
    )


# --- time ------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_headers", [False, True])
def test_a_trickling_server_cannot_outlast_the_timeout(
    server: HostileServer, in_headers: bool
) -> None:
    server.routes[("GET", "/jobs")] = hostile.trickle(
        b"[" + b" " * 1000 + b"]", 0.02, in_headers=in_headers
    )
    result, elapsed = run("jobs", "list", "--url", server.url, "--timeout", "0.2")
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"pdf2dcm: error: no complete answer from {server.url} within 0.2 s (GET /jobs); "
        "allow a longer timeout or check the server"
    )
    assert 0.18 < elapsed < 1.2


def test_jobs_wait_ends_near_its_timeout_when_a_poll_stalls(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "POLL_SLACK", 0.05)
    running = reply(200, {"ID": JOB, "Type": "Archive", "State": "Running", "Progress": 10})
    server.routes[("GET", f"/jobs/{JOB}")] = [running, hostile.stall()]
    result, elapsed = run("jobs", "wait", JOB, "--url", server.url, "--timeout", "0.3")
    assert result.exit_code == 7, result.stderr
    assert result.stderr.strip().endswith(
        f"pdf2dcm: error: job {JOB} (Archive) is still Running at 10% after 0.3 s; it goes on "
        f"in Orthanc: wait again with 'pdf2dcm jobs wait {JOB}'"
    )
    assert 0.28 < elapsed < 1.2


def test_jobs_wait_without_any_reading_times_out_too(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "POLL_SLACK", 0.1)
    server.routes[("GET", f"/jobs/{JOB}")] = hostile.stall()
    result, elapsed = run("jobs", "wait", JOB, "--url", server.url, "--timeout", "0.15")
    assert result.exit_code == 7, result.stderr
    assert f"job {JOB}: no reading of its state within 0.15 s" in result.stderr
    assert elapsed < 1


def test_a_stalled_document_leaves_no_file(server: HostileServer, tmp_path: Path) -> None:
    pdf_instance(server, hostile.stall(PDF[:1000], len(PDF)), len(PDF))
    target = tmp_path / "out.pdf"
    result, elapsed = run(
        "fetch", INSTANCE, "--url", server.url, "-o", str(target), "--timeout", "0.15"
    )
    assert result.exit_code == 5, result.stderr
    assert result.stderr.strip() == (
        f"pdf2dcm: error: the download of the document of instance {INSTANCE} from {server.url} "
        "broke off after 1000 bytes: no data came for the stall timeout; nothing was kept"
    )
    assert list(tmp_path.iterdir()) == []
    assert elapsed < 2


def test_a_cut_document_on_stdout_says_what_went_out(server: HostileServer) -> None:
    pdf_instance(server, hostile.truncated(PDF[:3000], len(PDF)), len(PDF))
    result, _ = run("fetch", INSTANCE, "--url", server.url, "-o", "-")
    assert result.exit_code == 5, result.stderr
    assert result.stdout_bytes == PDF[: len(result.stdout_bytes)]
    assert result.stderr.strip() == (
        f"pdf2dcm: error: the download of the document of instance {INSTANCE} from {server.url} "
        f"broke off after 3000 bytes: the server ended it early; {len(result.stdout_bytes)} "
        "bytes had already been written to the output, which now holds an incomplete copy"
    )


def test_a_whole_document_is_fetched_exactly(server: HostileServer, tmp_path: Path) -> None:
    pdf_instance(server, reply(200, PDF), len(PDF))
    target = tmp_path / "out.pdf"
    result, _ = run("fetch", INSTANCE, "--url", server.url, "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes() == PDF


def test_a_cut_job_archive_leaves_no_file(server: HostileServer, tmp_path: Path) -> None:
    done = {"ID": JOB, "Type": "Archive", "State": "Success", "Progress": 100}
    server.routes[("GET", f"/jobs/{JOB}")] = reply(200, done)
    server.routes[("GET", f"/jobs/{JOB}/archive")] = hostile.truncated(b"PK" * 500, 5000)
    target = tmp_path / "study.zip"
    result, _ = run("jobs", "wait", JOB, "--url", server.url, "--download", str(target))
    assert result.exit_code == 5, result.stderr
    assert result.stderr.strip().endswith(
        f"pdf2dcm: error: the download of output 'archive' of job {JOB} from {server.url} "
        "broke off after 1000 bytes: the server ended it early; nothing was kept"
    )
    assert list(tmp_path.iterdir()) == []


# --- retries ---------------------------------------------------------------------------------


def test_each_retry_is_logged_without_credentials(
    server: HostileServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_SECONDS", 0.01)
    server.routes[("GET", "/system")] = [reply(503), reply(502), reply(200, {"Version": "1"})]
    server.routes[("POST", "/instances")] = [
        reply(503),
        reply(200, {"ID": INSTANCE, "Status": "Success"}),
    ]
    settings = resolve_settings(
        url=server.url, username="u", password="hunter2", environ={}, netrc_file="/dev/null"
    )
    caplog.set_level(logging.INFO, logger="pdf2dcm")
    with OrthancClient(settings, sleep=lambda _s: None) as client:
        client.system()
        client.store_instance(body())
    assert [record.getMessage() for record in caplog.records] == [
        f"retrying GET {server.url}/system (HTTP 503), attempt 2",
        f"retrying GET {server.url}/system (HTTP 502), attempt 3",
        f"retrying POST {server.url}/instances (HTTP 503), attempt 2",
    ]
    assert all(record.name == "pdf2dcm" for record in caplog.records)
    assert "hunter2" not in caplog.text


def test_worklist_answers_keep_their_text_values(server: HostileServer) -> None:
    answer = [{"PatientID": "P1", "AccessionNumber": "A1", "ScheduledProcedureStepSequence": [{}]}]
    server.routes[("POST", "/modalities/WL%20SCP/find-worklist")] = [
        reply(200, answer),
        reply(200, {"PatientID": "P1"}),
    ]
    with client_of(server) as client:
        assert client.find_worklist("WL SCP", {"PatientID": "P1"}) == [
            {"PatientID": "P1", "AccessionNumber": "A1"}
        ]
        with pytest.raises(UnexpectedReplyError, match=r"the answer is an object, not a JSON"):
            client.find_worklist("WL SCP", {"PatientID": "P1"})
    assert json.loads(server.received[0].body) == {"PatientID": "P1"}


def test_a_retry_after_beyond_the_timeout_is_not_waited_for(server: HostileServer) -> None:
    server.routes[("GET", "/jobs")] = [reply(503, b"", {"Retry-After": "3600"}), reply(200, [])]
    result, elapsed = run("jobs", "list", "--url", server.url, "--timeout", "0.5")
    assert result.exit_code == 5, result.stderr
    assert result.stderr.strip() == f"pdf2dcm: error: {server.url} failed GET /jobs: HTTP 503"
    assert elapsed < 0.5
    assert len(server.received) == 1


def test_a_short_retry_after_is_obeyed(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(client_module, "_pause", pauses.append)
    server.routes[("GET", "/jobs")] = [reply(503, b"", {"Retry-After": "1"}), reply(200, [])]
    result, _elapsed = run("jobs", "list", "--url", server.url)
    assert result.exit_code == 0, result.stderr
    assert pauses == [1.0]
    assert len(server.received) == 2


def test_the_deadline_holds_behind_a_proxy(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    target = "http://orthanc.invalid:8042"
    server.routes[("GET", f"{target}/jobs")] = hostile.trickle(b"[" + b" " * 100 + b"]", 0.02)
    result, elapsed = run("jobs", "list", "--url", target, "--timeout", "0.2")
    assert result.exit_code == 3, result.stderr
    assert "no complete answer from http://orthanc.invalid:8042 within 0.2 s" in result.stderr
    assert elapsed < 1.5
    assert server.received[0].path == f"{target}/jobs?expand="


@pytest.mark.parametrize("answer", [b"[1,2,3]", b"null", b"{}", b'{"ID": null}'])
def test_upload_reports_a_wrong_shape_with_exit_5(
    server: HostileServer, answer: bytes, tmp_path: Path
) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf(3000))
    server.routes[("POST", "/tools/lookup")] = reply(200, [])
    server.routes[("POST", "/instances")] = reply(200, answer)
    result, _ = run("upload", str(pdf), "--url", server.url, "--tag", "PatientID=SHAPE")
    assert result.exit_code == 5, result.stderr
    assert f"unexpected reply from {server.url}/instances: " in result.stderr
    assert "Traceback" not in result.stderr
