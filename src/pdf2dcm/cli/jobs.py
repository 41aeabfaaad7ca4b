"""``pdf2dcm jobs``: follow and control Orthanc's asynchronous jobs."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import click

from pdf2dcm import errors as err
from pdf2dcm import records

from .app import ExitStatus, Terminated, cli, displaying, exit_status_for, info, say
from .common import (
    Batch,
    Connection,
    batch_summary,
    connection_options,
    connection_options_for,
    print_json,
    refuse_terminal,
    result_line,
    size_text,
    stdout,
)
from .report import Reporter

if TYPE_CHECKING:
    from pdf2dcm.client import OrthancClient
    from pdf2dcm.jobs import Action, JobStatus, WaitOutcome


@cli.group(
    epilog="""\b
Examples:
  pdf2dcm jobs wait 32af28ce-d1f9-4655-b38e-3237a3cdcbaa --timeout 600
  pdf2dcm jobs wait 32af28ce-d1f9-4655-b38e-3237a3cdcbaa --download study.zip
  pdf2dcm jobs list --state Running --json
  pdf2dcm jobs cancel 32af28ce-d1f9-4655-b38e-3237a3cdcbaa 5b1e0a4e-8d6c-4f57-9d0c-2c4b1f7e9a10"""
)
def jobs() -> None:
    """Follow and control Orthanc's asynchronous jobs."""


def _job_line(status: JobStatus) -> str:
    line = f"job {status.id} ({status.type}): {status.state.value} {status.progress}%"
    if status.state.value == "Failure":
        line += f" - {status.failure_text()}"
    return line


def _list_line(status: JobStatus) -> str:
    """A ``jobs list`` line: the job line, then when it was created and where it sends."""
    from pdf2dcm.jobs import creation_time, destination

    line = _job_line(status)
    line += f", created {creation_time(status) or 'at an unknown time'}"
    target = destination(status)
    return line + (f", to {target}" if target else "")


@jobs.command(
    "wait",
    epilog="""\b
Examples:
  pdf2dcm jobs wait 32af28ce-d1f9-4655-b38e-3237a3cdcbaa
  pdf2dcm jobs wait JOB1 JOB2 --timeout 3600 --json
  pdf2dcm jobs wait 32af28ce-d1f9-4655-b38e-3237a3cdcbaa --download study.zip

\b
Exit 0 when every job succeeded; 6 when one failed (or was cancelled), with its ErrorCode,
ErrorDescription and ErrorDetails; 7 when the timeout came first (the job goes on); 4 when a
job is unknown or left Orthanc's job history. Paused and Retry jobs are waited for.
Polling starts at 0.1 s and backs off to --interval. Ctrl-C stops waiting and leaves the
jobs running, unless --cancel-on-interrupt.

\b
Two limits: --timeout (alias --wait-timeout, as in 'upload --wait') bounds the whole wait;
--request-timeout bounds each HTTP request.""",
)
@click.argument("job_ids", nargs=-1, required=True, metavar="JOB_ID...")
@connection_options_for("--request-timeout")
@click.option(
    "--timeout",
    "--wait-timeout",
    "wait_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Total time to wait for all the jobs, in seconds; then exit 7 (the jobs go on). "
    "Each request has its own limit, --request-timeout.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest pause between two polls, in seconds.",
)
@click.option(
    "--download",
    metavar="FILE",
    help="When the job succeeds, stream its output (an archive) to FILE ('-' for stdout).",
)
@click.option("--overwrite", is_flag=True, help="Replace the --download file if it exists.")
@click.option("--cancel-on-interrupt", is_flag=True, help="Cancel the jobs on Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print each job's final JSON.")
@click.option("--no-progress", is_flag=True, help="Never show progress bars.")
def jobs_wait(
    job_ids: tuple[str, ...],
    connection: Connection,
    wait_timeout: float,
    interval: float,
    download: str | None,
    overwrite: bool,
    cancel_on_interrupt: bool,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Wait for jobs to end, and tell by exit code and text how they ended."""
    if download is not None and len(job_ids) != 1:
        raise click.UsageError("--download takes exactly one job")
    if download == "-" and as_json:
        raise click.UsageError("--json prints to stdout, which already carries the download")
    client = connection.open()
    started = time.monotonic()
    with client:
        outcomes = wait_with_display(
            client, job_ids, wait_timeout, interval, cancel_on_interrupt, not no_progress
        )
        first_error = _report(outcomes, as_json)
        if len(outcomes) > 1:
            info(_wait_summary(outcomes, time.monotonic() - started))
        if first_error is not None:
            click.get_current_context().exit(exit_status_for(first_error))
        if download is not None:
            _download(client, job_ids[0], download, overwrite, as_json)


def _wait_summary(outcomes: Sequence[WaitOutcome], seconds: float) -> str:
    """``3 jobs: 1 succeeded, 1 timed out, 1 failed in 4.2 s``; a batch's one summary line."""
    timed_out = sum(isinstance(o.error, err.JobTimeoutError) for o in outcomes)
    failed = sum(o.error is not None for o in outcomes) - timed_out
    tally = {"succeeded": len(outcomes) - failed - timed_out, "timed out": timed_out}
    return batch_summary(len(outcomes), tally, failed=failed, seconds=seconds, noun="job")


def _report(outcomes: Sequence[WaitOutcome], as_json: bool) -> err.Pdf2DcmError | None:
    """Each job's end (its JSON, or a line); the first failure, which sets the exit code."""
    for outcome in outcomes:
        if as_json and outcome.status is not None:
            print_json(records.job(outcome.status.raw))
        if outcome.error is not None:
            say(f"error: {outcome.error}")
        elif not as_json and outcome.status is not None:
            result_line(_job_line(outcome.status))
    return next((o.error for o in outcomes if o.error is not None), None)


def _download(
    client: OrthancClient, job_id: str, download: str, overwrite: bool, as_json: bool
) -> None:
    from pdf2dcm.jobs import download_output

    if download == "-":
        refuse_terminal(sys.stdout, "a download")
    size = download_output(
        client, job_id, stdout() if download == "-" else download, overwrite=overwrite
    )
    if download != "-" and not as_json:
        result_line(f"{job_id} -> {download} ({size_text(size)})")


def wait_with_display(
    client: OrthancClient,
    job_ids: Sequence[str],
    wait_timeout: float,
    interval: float,
    cancel_on_interrupt: bool,
    show_progress: bool,
) -> list[WaitOutcome]:
    from pdf2dcm.jobs import job_action, wait_for_jobs

    from . import app

    live = show_progress and not app.output.quiet and sys.stderr.isatty()
    seen_states: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        on_status: Callable[[JobStatus], None]
        if live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            bars = stack.enter_context(
                Progress(
                    TextColumn("{task.description}", markup=False),
                    BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"),
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                    transient=True,
                )
            )
            # Registered so that the message of an interruption prints above the bars.
            stack.enter_context(displaying(bars.console))
            tasks = {job_id: bars.add_task(job_id[:8], total=100) for job_id in job_ids}

            def on_status(status: JobStatus) -> None:
                bars.update(
                    tasks[status.id],
                    completed=status.progress,
                    description=app.terminal_safe(
                        f"{status.id[:8]} {status.type} {status.state.value}"
                    ),
                )

        else:

            def on_status(status: JobStatus) -> None:
                if seen_states.get(status.id) != status.state.value and not status.state.is_final:
                    info(_job_line(status))
                seen_states[status.id] = status.state.value

        try:
            return wait_for_jobs(
                client, job_ids, timeout=wait_timeout, interval=interval, on_status=on_status
            )
        except (KeyboardInterrupt, Terminated) as stop:
            # A SIGTERM from `timeout` or a service manager is an interruption too.
            code = 128 + stop.signum if isinstance(stop, Terminated) else ExitStatus.INTERRUPTED
            if cancel_on_interrupt:
                for job_id in job_ids:
                    with contextlib.suppress(err.Pdf2DcmError):
                        job_action(client, job_id, "cancel")
                say("interrupted; cancel requested for " + ", ".join(job_ids))
            else:
                say("interrupted; the jobs go on in Orthanc: " + ", ".join(job_ids))
            raise click.exceptions.Exit(code) from None


@jobs.command(
    "list",
    epilog="""\b
Examples:
  pdf2dcm jobs list
  pdf2dcm jobs list --state Failure --json

\b
Oldest first. Each line: ID, type, state, progress, creation time (Orthanc's clock) and,
for a transfer, its destination (the modality's AET or the peer's URL).""",
)
@connection_options
@click.option(
    "--state",
    type=click.Choice(["Pending", "Running", "Success", "Failure", "Paused", "Retry"]),
    help="Only jobs in this state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per job.")
def jobs_list(
    connection: Connection,
    state: str | None,
    as_json: bool,
) -> None:
    """List the jobs Orthanc knows (running ones and its recent history), oldest first."""
    from pdf2dcm.jobs import JobState, list_jobs

    with connection.open() as client:
        found = list_jobs(client, JobState(state) if state else None)
    for status in found:
        if as_json:
            print_json(records.job(status.raw))
        else:
            result_line(_list_line(status))


@jobs.command(
    "show",
    epilog="""\b
Examples:
  pdf2dcm jobs show 32af28ce-d1f9-4655-b38e-3237a3cdcbaa --json""",
)
@click.argument("job_id")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the job's JSON.")
def jobs_show(
    job_id: str,
    connection: Connection,
    as_json: bool,
) -> None:
    """Show one job's state, progress and error."""
    from pdf2dcm.jobs import get_job

    with connection.open() as client:
        status = get_job(client, job_id)
    if as_json:
        print_json(records.job(status.raw))
    else:
        result_line(_job_line(status))


def _action_command(action: str, summary: str, states: str) -> None:
    @jobs.command(
        action,
        help=summary,
        epilog=f"""\b
Examples:
  pdf2dcm jobs {action} 32af28ce-d1f9-4655-b38e-3237a3cdcbaa
  pdf2dcm jobs {action} JOB1 JOB2 JOB3

\b
{states} Each job is looked up first: one in another state is reported (exit 2) and left
alone, and the other jobs are still acted on; an unknown job exits 4.""",
    )
    @click.argument("job_ids", nargs=-1, required=True, metavar="JOB_ID...")
    @connection_options
    def command(
        job_ids: tuple[str, ...],
        connection: Connection,
    ) -> None:
        from pdf2dcm.jobs import JobState, job_action

        report = Reporter(False, Batch(len(job_ids), noun="job"), key="ID")
        with connection.open() as client:
            for job_id in job_ids:
                try:
                    before = job_action(client, job_id, cast("Action", action))
                except err.Pdf2DcmError as error:
                    report.failure(job_id, error)
                    continue
                if action == "pause" and before.state is JobState.PAUSED:
                    report.result("already paused", {}, f"job {job_id}: already Paused")
                else:
                    line = f"job {job_id}: {action} requested (was {before.state.value})"
                    report.result(f"{action} requested", {}, line)
        # Several jobs end with the summary line, as every batch does.
        report.end(summary=len(job_ids) > 1)


_action_command(
    "cancel",
    "Cancel jobs (each ends as Failure, ErrorCode 37).",
    "Only Pending, Running, Paused or Retry jobs can be cancelled.",
)
_action_command(
    "pause",
    "Pause pending or running jobs.",
    "Only Pending, Running or Retry jobs can be paused; a Paused job stays as it is.",
)
_action_command("resume", "Resume paused jobs.", "Only Paused jobs can be resumed.")
_action_command(
    "resubmit", "Run failed jobs again.", "Only jobs that ended in Failure can be resubmitted."
)
