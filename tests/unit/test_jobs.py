"""Waiting for jobs with a fake clock: states, back-off, failure, timeout, vanished jobs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pdf2dcm.cli import exit_status_for
from pdf2dcm.errors import JobFailedError, JobNotFoundError, JobTimeoutError
from pdf2dcm.jobs import (
    Action,
    JobState,
    JobStateError,
    JobStatus,
    creation_time,
    destination,
    job_action,
    list_jobs,
    wait_for_job,
    wait_for_jobs,
)
from tests.unit.conftest import Scripted, client_for

J1 = "0f6d4c1e-8a57-4f5b-9a1d-2c3b4d5e6f70"
A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
NOPE = "cccccccc-0000-4000-8000-000000000003"


def job(state: str, progress: int = 0, **extra: Any) -> tuple[int, bytes]:
    body = {"ID": J1, "Type": "DicomModalityStore", "State": state, "Progress": progress}
    return 200, json.dumps(body | extra).encode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 4))
        self.now += seconds


def test_paused_and_retry_keep_waiting_until_success(server: Scripted) -> None:
    server.answers = [
        job("Pending"),
        job("Running", 10),
        job("Paused", 10),
        job("Retry", 10),
        job("Running", 60),
        job("Success", 100),
    ]
    clock = FakeClock()
    seen: list[tuple[JobState, int]] = []
    with client_for(server) as client:
        final = wait_for_job(
            client,
            J1,
            timeout=60,
            progress=lambda s: seen.append((s.state, s.progress)),
            clock=clock,
            sleep=clock.sleep,
        )
    assert final.state is JobState.SUCCESS
    assert [state for state, _ in seen] == [
        JobState.PENDING,
        JobState.RUNNING,
        JobState.PAUSED,
        JobState.RETRY,
        JobState.RUNNING,
        JobState.SUCCESS,
    ]
    assert clock.sleeps == [0.1, 0.15, 0.225, 0.3375, 0.5063]
    assert all(path == f"/jobs/{J1}" for _, path, _, _ in server.received)


def test_polling_backs_off_to_the_interval(server: Scripted) -> None:
    server.answers = [job("Running")] * 12 + [job("Success", 100)]
    clock = FakeClock()
    with client_for(server) as client:
        wait_for_job(client, J1, interval=1.0, clock=clock, sleep=clock.sleep)
    assert clock.sleeps[-3:] == [1.0, 1.0, 1.0]
    assert max(clock.sleeps) == 1.0


def test_failure_names_code_description_and_details(server: Scripted) -> None:
    server.answers = [
        job(
            "Failure",
            0,
            ErrorCode=9,
            ErrorDescription="Error in the network protocol",
            ErrorDetails="DicomAssociation - connecting to AET STORESCP: Failed",
        )
    ]
    with client_for(server) as client, pytest.raises(JobFailedError) as caught:
        wait_for_job(client, J1, sleep=lambda _s: None)
    assert str(caught.value) == (
        f"job {J1} (DicomModalityStore) failed: ErrorCode 9: Error in the network protocol "
        "(DicomAssociation - connecting to AET STORESCP: Failed)"
    )
    assert isinstance(caught.value.status, JobStatus)


def test_cancelled_job_is_reported_as_cancelled(server: Scripted) -> None:
    server.answers = [job("Failure", 30, ErrorCode=37, ErrorDescription="Canceled job")]
    with (
        client_for(server) as client,
        pytest.raises(JobFailedError, match=r"was cancelled: ErrorCode 37"),
    ):
        wait_for_job(client, J1, sleep=lambda _s: None)


def test_timeout_says_the_job_goes_on(server: Scripted) -> None:
    server.answers = [job("Running", 45)] * 50
    clock = FakeClock()
    with client_for(server) as client, pytest.raises(JobTimeoutError) as caught:
        wait_for_job(client, J1, timeout=5, clock=clock, sleep=clock.sleep)
    assert str(caught.value) == (
        f"job {J1} (DicomModalityStore) is still Running at 45% after 5 s; it goes on in "
        f"Orthanc: wait again with 'pdf2dcm jobs wait {J1}'"
    )
    assert clock.now == pytest.approx(5)


def test_unknown_job(server: Scripted) -> None:
    server.answers = [(404, b"")]
    with (
        client_for(server) as client,
        pytest.raises(JobNotFoundError, match=rf"^job {J1} is not known to http://"),
    ):
        wait_for_job(client, J1, sleep=lambda _s: None)


def test_job_evicted_while_waiting(server: Scripted) -> None:
    server.answers = [job("Running", 50), (404, b"")]
    with (
        client_for(server) as client,
        pytest.raises(
            JobNotFoundError,
            match=rf"^job {J1} disappeared from .* job history before its end was seen",
        ),
    ):
        wait_for_job(client, J1, sleep=lambda _s: None)


def test_several_jobs_each_get_an_outcome(server: Scripted) -> None:
    server.answers = [
        (200, json.dumps({"ID": A, "Type": "T", "State": "Running"}).encode()),
        (404, b""),
        (200, json.dumps({"ID": A, "Type": "T", "State": "Success", "Progress": 100}).encode()),
    ]
    with client_for(server) as client:
        outcomes = wait_for_jobs(client, [A, B], sleep=lambda _s: None)
    assert [o.job_id for o in outcomes] == [A, B]
    assert outcomes[0].error is None
    assert isinstance(outcomes[1].error, JobNotFoundError)


def test_states_newer_than_this_client_keep_waiting(server: Scripted) -> None:
    server.answers = [job("Suspended"), job("Success", 100)]
    with client_for(server) as client:
        assert wait_for_job(client, J1, sleep=lambda _s: None).state is JobState.SUCCESS


def test_action_on_unknown_job(server: Scripted) -> None:
    server.answers = [(404, b'{"Message": "Unknown resource"}')]
    with (
        client_for(server) as client,
        pytest.raises(JobNotFoundError, match=rf"job {NOPE} is not known"),
    ):
        job_action(client, NOPE, "cancel")
    assert [r[:2] for r in server.received] == [("GET", f"/jobs/{NOPE}")]


@pytest.mark.parametrize(
    ("state", "action", "message"),
    [
        (
            "Pending",
            "resume",
            f"job {J1} (DicomModalityStore) is Pending; only Paused jobs can be resumed",
        ),
        (
            "Success",
            "resubmit",
            f"job {J1} (DicomModalityStore) is Success; only Failure jobs can be resubmitted",
        ),
        (
            "Success",
            "cancel",
            f"job {J1} (DicomModalityStore) already ended (Success); nothing to cancel: only "
            "Pending, Running, Paused or Retry jobs can be cancelled",
        ),
        (
            "Failure",
            "pause",
            f"job {J1} (DicomModalityStore) already ended (Failure); nothing to pause: only "
            "Pending, Running or Retry jobs can be paused",
        ),
    ],
)
def test_an_action_the_state_does_not_allow_is_refused_before_any_post(
    server: Scripted, state: str, action: Action, message: str
) -> None:
    server.answers = [job(state, 100)]
    with client_for(server) as client, pytest.raises(JobStateError) as caught:
        job_action(client, J1, action)
    assert str(caught.value) == message
    assert exit_status_for(caught.value) == 2
    assert [r[0] for r in server.received] == ["GET"]


def test_an_allowed_action_is_posted_once(server: Scripted) -> None:
    server.answers = [job("Paused"), (200, b"{}")]
    with client_for(server) as client:
        before = job_action(client, J1, "resume")
    assert before.state is JobState.PAUSED
    assert [r[:2] for r in server.received] == [
        ("GET", f"/jobs/{J1}"),
        ("POST", f"/jobs/{J1}/resume"),
    ]


def test_pausing_a_paused_job_changes_nothing(server: Scripted) -> None:
    server.answers = [job("Paused")]
    with client_for(server) as client:
        assert job_action(client, J1, "pause").state is JobState.PAUSED
    assert [r[0] for r in server.received] == ["GET"]


def test_a_state_change_between_look_up_and_action_is_named(server: Scripted) -> None:
    """Orthanc's empty 400 reads like an unknown job; a second look tells the real cause."""
    server.answers = [job("Paused"), (400, b""), job("Running", 10)]
    with (
        client_for(server) as client,
        pytest.raises(JobStateError, match=r"is Running; only Paused jobs can be resumed$"),
    ):
        job_action(client, J1, "resume")


def _listed(job_id: str, created: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ID": job_id, "Type": "Archive", "State": "Success", "Progress": 100}
    if created is not None:
        body["CreationTime"] = created
    return body | extra


def test_list_is_oldest_first_and_reads_creation_time_and_destination(server: Scripted) -> None:
    listing = [
        _listed(B, "20260102T080000.000001", Content={"RemoteAet": "PACS"}),
        _listed(NOPE, None),
        _listed(A, "20260101T235959.999999", Content={"Peer": ["http://peer:8042/", "u"]}),
        _listed(J1, "20260102T080000.000001"),
    ]
    server.answers = [(200, json.dumps(listing).encode())]
    with client_for(server) as client:
        found = list_jobs(client)
    assert [status.id for status in found] == [A, J1, B, NOPE]
    assert [creation_time(status) for status in found] == [
        "2026-01-01 23:59:59",
        "2026-01-02 08:00:00",
        "2026-01-02 08:00:00",
        None,
    ]
    assert [destination(status) for status in found] == ["http://peer:8042/", None, "PACS", None]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"Peer": {"Url": "https://u:secret@peer/"}}, "https://u:***@peer/"),
        ({"Peer": "http://peer/"}, "http://peer/"),
        ({"RemoteAet": ""}, None),
        ("not an object", None),
    ],
)
def test_destination_shapes(content: object, expected: str | None) -> None:
    status = JobStatus(J1, "X", JobState.RUNNING, 0, 0, "", "", raw={"Content": content})  # type: ignore[dict-item]
    assert destination(status) == expected


@pytest.mark.parametrize("raw", ["2026-01-01", "20260101T12", "2026010xT120000", "20260101T12a000"])
def test_unreadable_creation_times_are_none(raw: str) -> None:
    status = JobStatus(J1, "X", JobState.RUNNING, 0, 0, "", "", raw={"CreationTime": raw})
    assert creation_time(status) is None
