"""Orthanc's asynchronous jobs: read, act on, wait for, and collect their output.

Only ``Success`` and ``Failure`` end a job; ``Paused`` and ``Retry`` are waited through, and a
cancelled job ends as ``Failure``. Waiting polls fast at first (short jobs return at once) and
backs off (long ones cost the server almost nothing), always within a deadline: a timeout is
an error of its own, never a silent ``False``. Clock and sleep are injectable so the waiting
logic is tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

from .client import CANCELLED_ERROR_CODE, JobState, JobStatus, OrthancClient
from .config import redact_url
from .errors import (
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    JobTimeoutError,
    NotFoundError,
    Pdf2DcmError,
    ServerError,
    ServerRefusedError,
    ServerUnreachableError,
)
from .fetch import kept
from .files import CHUNK_SIZE, PathLike, atomic_output
from .progress import ProgressCallback, ProgressEvent

FIRST_INTERVAL = 0.1
MAX_INTERVAL = 2.0
BACKOFF = 1.5
POLL_SLACK = 1.0
"""Seconds a poll may run past the wait's deadline, so the last reading can still arrive."""

Action = Literal["cancel", "pause", "resume", "resubmit"]
__all__ = [
    "CANCELLED_ERROR_CODE",
    "JobState",
    "JobStateError",
    "JobStatus",
    "WaitOutcome",
    "creation_time",
    "destination",
    "download_output",
    "get_job",
    "job_action",
    "list_jobs",
    "submit_store",
    "wait_for_job",
    "wait_for_jobs",
]


JobCallback = Callable[[JobStatus], None]


def _unknown(client: OrthancClient, job_id: str) -> JobNotFoundError:
    return JobNotFoundError(
        f"job {job_id} is not known to {client.settings.url}: it never existed or was dropped "
        "from the job history (Orthanc keeps the last JobsHistorySize finished jobs)"
    )


def get_job(client: OrthancClient, job_id: str, *, budget: float | None = None) -> JobStatus:
    """The job's current status; ``budget`` bounds the request in seconds."""
    try:
        return client.job(job_id, budget=budget)
    except NotFoundError:
        raise _unknown(client, job_id) from None


def list_jobs(client: OrthancClient, state: JobState | None = None) -> list[JobStatus]:
    """Every job the server still knows, oldest first, optionally only those in one state.

    Orthanc lists jobs in no useful order. They are sorted by the whole ``CreationTime``
    (microseconds included: jobs are often created within one second); a job without a
    readable one sorts last, and jobs created in the same instant by their ID.
    """
    found = [job for job in client.jobs() if state is None or job.state is state]

    def created(job: JobStatus) -> tuple[bool, str, str]:
        raw = job.raw.get("CreationTime")
        readable = creation_time(job) is not None and isinstance(raw, str)
        return (not readable, raw if readable and isinstance(raw, str) else "", job.id)

    return sorted(found, key=created)


def creation_time(status: JobStatus) -> str | None:
    """The job's ``CreationTime`` as ``YYYY-MM-DD HH:MM:SS`` (Orthanc's clock), or None.

    Orthanc writes ``20260101T120000.123456``; the fraction is dropped, and that text sorts
    in time order.
    """
    raw = status.raw.get("CreationTime")
    if not isinstance(raw, str) or len(raw) < 15 or raw[8] != "T" or not raw[:8].isdigit():
        return None
    date, clock = raw[:8], raw[9:15]
    if not clock.isdigit():
        return None
    return f"{date[:4]}-{date[4:6]}-{date[6:]} {clock[:2]}:{clock[2:4]}:{clock[4:]}"


def destination(status: JobStatus) -> str | None:
    """Where a transfer job sends its instances: a modality's AET or a peer's URL; else None.

    Read from the job's public ``Content``: ``RemoteAet`` for a DICOM store (C-STORE or
    C-MOVE), ``Peer`` (a URL, or an object or list holding one) for a store to a peer.
    """
    content = status.raw.get("Content")
    if not isinstance(content, dict):
        return None
    aet = content.get("RemoteAet")
    if isinstance(aet, str) and aet:
        return aet
    peer = content.get("Peer")
    if isinstance(peer, list) and peer:
        peer = peer[0]
    if isinstance(peer, dict):
        peer = peer.get("Url")
    return redact_url(peer) if isinstance(peer, str) and peer else None


_ALLOWED: dict[str, tuple[JobState, ...]] = {
    "cancel": (JobState.PENDING, JobState.RUNNING, JobState.PAUSED, JobState.RETRY),
    "pause": (JobState.PENDING, JobState.RUNNING, JobState.RETRY),
    "resume": (JobState.PAUSED,),
    "resubmit": (JobState.FAILURE,),
}
_PAST = {"cancel": "cancelled", "pause": "paused", "resume": "resumed", "resubmit": "resubmitted"}


def _refusal(status: JobStatus, action: Action) -> JobStateError:
    allowed = [state.value for state in _ALLOWED[action]]
    which = allowed[0] if len(allowed) == 1 else ", ".join(allowed[:-1]) + " or " + allowed[-1]
    if status.state.is_final and action in ("cancel", "pause"):
        return JobStateError(
            f"job {status.id} ({status.type}) already ended ({status.state.value}); nothing "
            f"to {action}: only {which} jobs can be {_PAST[action]}"
        )
    return JobStateError(
        f"job {status.id} ({status.type}) is {status.state.value}; only {which} jobs can be "
        f"{_PAST[action]}"
    )


def job_action(client: OrthancClient, job_id: str, action: Action) -> JobStatus:
    """``POST /jobs/{id}/{action}`` after checking that the job's state allows it.

    Orthanc accepts a cancel or pause of a finished job and changes nothing, and answers a
    resume or resubmit in the wrong state with an empty 400 that reads like an unknown job;
    the job is looked up first so that each case gets its own message. Pausing a Paused job
    is no error (it stays paused). Returns the status read before the action.

    Raises
    ------
    JobNotFoundError
        The server does not know the job.
    JobStateError
        The job's state does not allow the action (it is finished, or not Paused, ...).
    """
    status = get_job(client, job_id)
    if action == "pause" and status.state is JobState.PAUSED:
        return status
    if status.state not in _ALLOWED[action]:
        raise _refusal(status, action)
    try:
        client.job_action(job_id, action)
    except (NotFoundError, ServerRefusedError) as exc:
        if isinstance(exc, NotFoundError) or not exc.orthanc_message:
            # The state changed between the look-up and the request: say which it is now.
            now = get_job(client, job_id)
            if now.state not in _ALLOWED[action]:
                raise _refusal(now, action) from None
            raise _unknown(client, job_id) from None
        raise
    return status


def submit_store(
    client: OrthancClient,
    target: Literal["modality", "peer"],
    name: str,
    resources: Sequence[str],
) -> str:
    """Start an asynchronous C-STORE (modality) or HTTP store (peer) of Orthanc resources."""
    route = "modalities" if target == "modality" else "peers"
    try:
        return client.store_to(target, name, resources)
    except NotFoundError:
        raise NotFoundError(
            f"no {target} named {name} is configured on {client.settings.url}; list them "
            f"with GET /{route}",
            status=404,
            url=client.url(f"/{route}/{name}/store"),
        ) from None


@dataclass(frozen=True)
class WaitOutcome:
    """How waiting for one job ended: its last status, and the error if it did not succeed."""

    job_id: str
    status: JobStatus | None
    error: Pdf2DcmError | None = None


def wait_for_jobs(
    client: OrthancClient,
    job_ids: Sequence[str],
    *,
    timeout: float | None = None,
    interval: float = MAX_INTERVAL,
    on_status: JobCallback | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[WaitOutcome]:
    """Poll every job until it ends or ``timeout`` seconds pass; one outcome per job.

    ``on_status`` sees every reading (state, progress), so a display can follow the jobs.
    Polling starts every ``FIRST_INTERVAL`` seconds and grows to ``interval``. Each poll is
    bounded by the time left (plus ``POLL_SLACK``), so a stalled server cannot hold the wait
    past its timeout: a poll cut by the deadline ends that job's wait as timed out.
    """
    deadline = None if timeout is None else clock() + timeout
    outcomes: dict[str, WaitOutcome] = {}
    last: dict[str, JobStatus] = {}
    delay = min(FIRST_INTERVAL, interval)
    while True:
        for job_id in job_ids:
            if job_id in outcomes:
                continue
            reading = _read(client, job_id, deadline, timeout, last.get(job_id), clock)
            if isinstance(reading, WaitOutcome):
                outcomes[job_id] = reading
                continue
            last[job_id] = reading
            if on_status is not None:
                on_status(reading)
            if reading.state is JobState.SUCCESS:
                outcomes[job_id] = WaitOutcome(job_id, reading)
            elif reading.state is JobState.FAILURE:
                outcomes[job_id] = WaitOutcome(job_id, reading, _failed(reading))
        if len(outcomes) == len(set(job_ids)):
            return [outcomes[job_id] for job_id in job_ids]
        if deadline is not None and clock() >= deadline:
            return [
                outcomes.get(job_id)
                or WaitOutcome(job_id, last[job_id], _timed_out(job_id, last[job_id], timeout))
                for job_id in job_ids
            ]
        pause = delay if deadline is None else max(0.0, min(delay, deadline - clock()))
        sleep(pause)
        delay = min(delay * BACKOFF, interval)


def _read(
    client: OrthancClient,
    job_id: str,
    deadline: float | None,
    timeout: float | None,
    last: JobStatus | None,
    clock: Callable[[], float],
) -> JobStatus | WaitOutcome:
    """One poll of one job: its status, or the outcome that ends its wait.

    The wait ends when the job is gone, or when the server stays unreachable past the
    deadline (before it, being unreachable is the error).
    """
    budget = None if deadline is None else max(0.0, deadline - clock()) + POLL_SLACK
    try:
        return get_job(client, job_id, budget=budget)
    except ServerUnreachableError as exc:
        if deadline is None or clock() < deadline:
            raise
        return WaitOutcome(job_id, last, _timed_out(job_id, last, timeout, exc))
    except JobNotFoundError as exc:
        if last is None:
            return WaitOutcome(job_id, None, exc)
        return WaitOutcome(
            job_id,
            last,
            JobNotFoundError(
                f"job {job_id} disappeared from {client.settings.url}'s job history before "
                "its end was seen (JobsHistorySize); its outcome is unknown"
            ),
        )


def wait_for_job(
    client: OrthancClient,
    job_id: str,
    *,
    timeout: float | None = None,
    interval: float = MAX_INTERVAL,
    progress: JobCallback | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> JobStatus:
    """Wait for one job and return its final status.

    Raises
    ------
    JobFailedError
        The job ended in ``Failure`` (a cancelled job too; see ``JobStatus.cancelled``).
    JobTimeoutError
        ``timeout`` passed first; the job goes on in Orthanc.
    JobNotFoundError
        The job is unknown, or left the server's history before its end was seen.
    """
    [outcome] = wait_for_jobs(
        client,
        [job_id],
        timeout=timeout,
        interval=interval,
        on_status=progress,
        clock=clock,
        sleep=sleep,
    )
    if outcome.error is not None:
        raise outcome.error
    if outcome.status is None:
        raise AssertionError("a successful wait has a status")
    return outcome.status


def _failed(status: JobStatus) -> JobFailedError:
    what = "was cancelled" if status.cancelled else "failed"
    return JobFailedError(
        f"job {status.id} ({status.type}) {what}: {status.failure_text()}", status=status
    )


def _timed_out(
    job_id: str,
    status: JobStatus | None,
    timeout: float | None,
    cause: ServerError | None = None,
) -> JobTimeoutError:
    if status is None:
        return JobTimeoutError(
            f"job {job_id}: no reading of its state within {timeout:g} s ({cause}); it goes on "
            f"in Orthanc: wait again with 'pdf2dcm jobs wait {job_id}'"
        )
    return JobTimeoutError(
        f"job {status.id} ({status.type}) is still {status.state.value} at {status.progress}% "
        f"after {timeout:g} s; it goes on in Orthanc: wait again with 'pdf2dcm jobs wait "
        f"{status.id}'",
        status=status,
    )


def download_output(
    client: OrthancClient,
    job_id: str,
    destination: PathLike | BinaryIO,
    *,
    key: str = "archive",
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> int:
    """Stream a finished job's output (``/jobs/{id}/{key}``, e.g. an archive) to a file.

    A download that breaks off leaves no file; written to a stream, the error says how many
    bytes went out before it broke.
    """
    written = 0
    try:
        with (
            client.job_output(job_id, key) as got,
            atomic_output(destination, overwrite=overwrite) as out,
        ):
            try:
                for block in got.chunks(CHUNK_SIZE):
                    out.write(block)
                    written += len(block)
                    if progress is not None:
                        progress(ProgressEvent(label=job_id, done=written, total=got.length))
            except ServerError as exc:
                raise ServerError(f"{exc}; {kept(destination, written)}") from exc
    except ServerRefusedError as exc:
        if isinstance(exc, NotFoundError):
            raise NotFoundError(
                f"job {job_id} has no output '{key}' on {client.settings.url}; only jobs that "
                "make files (archives, media) have one, and only while they are kept",
                status=exc.status,
                url=exc.url,
            ) from None
        raise
    return written
