"""Waiting for jobs with a fake clock: states, back-off, failure, timeout, vanished jobs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pdf2dcm.errors import JobFailedError, JobNotFoundError, JobTimeoutError
from pdf2dcm.jobs import JobState, JobStatus, job_action, wait_for_job, wait_for_jobs
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
    server.answers = [(400, b"")]
    with (
        client_for(server) as client,
        pytest.raises(JobNotFoundError, match=rf"job {NOPE} is not known"),
    ):
        job_action(client, NOPE, "cancel")
    assert server.received[0][:2] == ("POST", f"/jobs/{NOPE}/cancel")
