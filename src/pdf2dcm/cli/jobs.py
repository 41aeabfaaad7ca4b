"""``pdf2dcm jobs``: follow and control Orthanc's asynchronous jobs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import click

from pdf2dcm import errors as err

from .app import ExitStatus, Terminated, cli, exit_status_for, say
from .common import (
    Connection,
    connection_options,
    connection_options_for,
    print_json,
    refuse_terminal,
    size_text,
    stdout,
)

if TYPE_CHECKING:
    from pdf2dcm.client import OrthancClient
    from pdf2dcm.jobs import Action, JobStatus, WaitOutcome


@cli.group(
    epilog="""\b
Examples:
  pdf2dcm jobs wait 32af28ce-d1f9-4655-b38e-3237a3cdcbaa --timeout 600
  pdf2dcm jobs wait 32af28ce-d1f9-4655-b38e-3237a3cdcbaa --download study.zip
  pdf2dcm jobs list --state Running --json
  pdf2dcm jobs cancel 32af28ce-d1f9-4655-b38e-3237a3cdcbaa"""
)
def jobs() -> None:
    """Follow and control Orthanc's asynchronous jobs."""


def _job_line(status: JobStatus) -> str:
    line = f"job {status.id} ({status.type}): {status.state.value} {status.progress}%"
    if status.state.value == "Failure":
        line += f" - {status.failure_text()}"
    return line


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
jobs running, unless --cancel-on-interrupt.""",
)
@click.argument("job_ids", nargs=-1, required=True, metavar="JOB_ID...")
@connection_options_for("--request-timeout")
@click.option(
    "--timeout",
    "wait_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Give up waiting after this long.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest pause between two polls.",
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
    with client:
        outcomes = wait_with_display(
            client, job_ids, wait_timeout, interval, cancel_on_interrupt, not no_progress
        )
        for outcome in outcomes:
            if as_json and outcome.status is not None:
                print_json(outcome.status.raw)
            if outcome.error is not None:
                say(f"error: {outcome.error}")
            elif not as_json and outcome.status is not None:
                click.echo(_job_line(outcome.status))
        failed = [o.error for o in outcomes if o.error is not None]
        if failed:
            click.get_current_context().exit(exit_status_for(failed[0]))
        if download is not None:
            from pdf2dcm.jobs import download_output

            if download == "-":
                refuse_terminal(sys.stdout, "a download")
            size = download_output(
                client, job_ids[0], stdout() if download == "-" else download, overwrite=overwrite
            )
            if download != "-" and not as_json:
                click.echo(f"{job_ids[0]} -> {download} ({size_text(size)})")


def wait_with_display(
    client: OrthancClient,
    job_ids: Sequence[str],
    wait_timeout: float,
    interval: float,
    cancel_on_interrupt: bool,
    show_progress: bool,
) -> list[WaitOutcome]:
    from pdf2dcm.jobs import job_action, wait_for_jobs

    live = show_progress and sys.stderr.isatty()
    seen_states: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        on_status: Callable[[JobStatus], None]
        if live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            bars = stack.enter_context(
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"),
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                    transient=True,
                )
            )
            tasks = {job_id: bars.add_task(job_id[:8], total=100) for job_id in job_ids}

            def on_status(status: JobStatus) -> None:
                bars.update(
                    tasks[status.id],
                    completed=status.progress,
                    description=f"{status.id[:8]} {status.type} {status.state.value}",
                )

        else:

            def on_status(status: JobStatus) -> None:
                if seen_states.get(status.id) != status.state.value and not status.state.is_final:
                    say(_job_line(status))
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
  pdf2dcm jobs list --state Failure --json""",
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
    """List the jobs Orthanc knows (running ones and its recent history)."""
    from pdf2dcm.jobs import JobState, list_jobs

    with connection.open() as client:
        found = list_jobs(client, JobState(state) if state else None)
    for status in found:
        if as_json:
            print_json(status.raw)
        else:
            click.echo(_job_line(status))


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
        print_json(status.raw)
    else:
        click.echo(_job_line(status))


def _action_command(action: str, summary: str) -> None:
    @jobs.command(
        action,
        help=summary,
        epilog=f"""\b
Examples:
  pdf2dcm jobs {action} 32af28ce-d1f9-4655-b38e-3237a3cdcbaa""",
    )
    @click.argument("job_id")
    @connection_options
    def command(
        job_id: str,
        connection: Connection,
    ) -> None:
        from pdf2dcm.jobs import job_action

        with connection.open() as client:
            job_action(client, job_id, cast("Action", action))
        click.echo(f"job {job_id}: {action} requested")


_action_command("cancel", "Cancel a job (it ends as Failure, ErrorCode 37).")
_action_command("pause", "Pause a pending or running job.")
_action_command("resume", "Resume a paused job.")
_action_command("resubmit", "Run a failed job again.")
