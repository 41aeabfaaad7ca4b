"""The ``watch`` command: a hot folder that files every PDF dropped into it."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from . import app
from .app import SectionedCommand, cli, displaying, exit_status_for, info, say
from .common import (
    Connection,
    Destination,
    batch_summary,
    collect_tags,
    connection_options,
    current_profile,
    destination_options,
    load_reference,
    print_json,
)

if TYPE_CHECKING:
    from pdf2dcm.client import OrthancClient
    from pdf2dcm.pertags import NameRule
    from pdf2dcm.watch import WatchEvent, WatchOptions, WatchSummary


@cli.command(
    cls=SectionedCommand,
    epilog="""\b
Examples:
  pdf2dcm watch /srv/inbox --done /srv/done --failed /srv/failed \\
      --name-pattern '{PatientID}_{AccessionNumber}_{*}.pdf' \\
      --study 'AccessionNumber={AccessionNumber}'
  pdf2dcm watch scans/ --recursive --name-pattern '{PatientID}/{*}.pdf' --delete --once

\b
A file is taken once its size and time stayed the same for --settle seconds; names ending
in .part or .tmp and names starting with '.' are never taken. A file leaves the inbox only
after the server confirmed it. Permanent failures go to --failed with NAME.pdf.error.json;
an unreachable or failing server leaves files in place and is tried again after a pause.
Tags, later wins: --tags-file, --tag, --title, the values of --name-pattern/--name-regex,
the sidecar NAME.json beside NAME.pdf. --study/--patient/--series terms may hold {Keyword}.
--study-from/--series-from files are read once, at the start. Files joining one series
(--series, --series-from, --same-series) take InstanceNumbers after the highest the server
holds, unique across the run and restarts; a failed file leaves a gap. Run one watcher
per series.
Runs until Ctrl-C or SIGTERM (the files in hand are finished, exit 0); --once exits with
the exit code of the first failure.""",
)
@click.argument(
    "inbox", type=click.Path(file_okay=False, exists=True, path_type=Path), metavar="INBOX"
)
@connection_options
@destination_options(per_file=True)
@click.option(
    "--tag",
    "tag_assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set an attribute on every document; repeatable.",
)
@click.option(
    "--tags-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON object of tags for every document; --tag overrides it.",
)
@click.option(
    "--title",
    metavar="TEXT",
    help="DocumentTitle of every document (default: the PDF's Title, else the file name); "
    "a file's name values or sidecar may give its own.",
)
@click.option(
    "--conversion-type",
    type=click.Choice(["WSD", "SD"]),
    default="WSD",
    show_default=True,
    help="WSD for a workstation-made document, SD for a scanned one.",
)
@click.option(
    "--study-from",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Put every document in the patient and study of this DICOM file (a new series each).",
)
@click.option(
    "--series-from",
    type=click.Path(path_type=Path),
    multiple=True,
    metavar="FILE",
    help="Put every document in the series of this DICOM file; repeatable, or a directory.",
)
@click.option(
    "--same-series",
    is_flag=True,
    help="Put the documents with equal tags in one series, named by the tags: a later run "
    "with the same tags adds to it.",
)
@click.option(
    "--name-pattern",
    metavar="PATTERN",
    help="Read tags from the path below INBOX: '{PatientID}_{AccessionNumber}_{*}.pdf'; "
    "{*} matches anything. A file that does not match fails.",
)
@click.option(
    "--name-regex",
    metavar="REGEX",
    help="As --name-pattern, with a regular expression whose named groups are DICOM keywords.",
)
@click.option("--recursive", is_flag=True, help="Watch subfolders too.")
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Take a file once unchanged for this long.",
)
@click.option(
    "--done",
    type=click.Path(file_okay=False, path_type=Path),
    help="Move stored files here, keeping their path below INBOX.",
)
@click.option("--delete", is_flag=True, help="Delete stored files instead of moving them.")
@click.option(
    "--failed",
    type=click.Path(file_okay=False, path_type=Path),
    help="Move files that fail for good here, with NAME.pdf.error.json [default: leave them].",
)
@click.option("--once", is_flag=True, help="Process the files there now, then exit.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=4,
    show_default=True,
    help="Upload this many files at once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
@click.option(
    "--log",
    "log_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append each file's JSON record here (as --json prints it), one line per file.",
)
@click.option("--no-progress", is_flag=True, help="Never show the status line.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan each file as it would be filed and print every attribute (a table on a "
    "terminal, JSON otherwise); nothing is sent, moved or deleted.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="A file that earns a warning (no PatientID, a PDF that may be truncated, ...) "
    "fails, with the warning as its reason.",
)
def watch(
    inbox: Path,
    connection: Connection,
    destination: Destination,
    tag_assignments: tuple[str, ...],
    tags_file: Path | None,
    title: str | None,
    conversion_type: str,
    study_from: Path | None,
    series_from: tuple[Path, ...],
    same_series: bool,
    name_pattern: str | None,
    name_regex: str | None,
    recursive: bool,
    settle: float,
    done: Path | None,
    delete: bool,
    failed: Path | None,
    once: bool,
    concurrency: int,
    as_json: bool,
    log_file: Path | None,
    no_progress: bool,
    dry_run: bool,
    strict: bool,
) -> None:
    """Upload every PDF that appears in INBOX, then move it to --done (or --delete it)."""
    from pdf2dcm.lookup import Target
    from pdf2dcm.upload import UploadOptions
    from pdf2dcm.watch import WatchOptions

    if done is not None and delete:
        raise click.UsageError("give --done DIR or --delete, not both")
    if done is None and not delete and not dry_run:
        raise click.UsageError("give --done DIR or --delete (what to do with a stored file)")
    target = destination.target(has_reference_file=study_from is not None or bool(series_from))
    rule = _name_rule(name_pattern, name_regex)
    profile = current_profile()
    tags = collect_tags(tag_assignments, tags_file, profile.tags if profile else None)
    if title is not None:
        _check_title(title)
    reference = load_reference(study_from, series_from)
    for note in reference.warnings if reference is not None else ():
        say(f"warning: {note}")
    options = WatchOptions(
        inbox=inbox,
        upload=UploadOptions(
            method=destination.chosen_method(profile),
            tags=tags,
            title=title,
            conversion_type="SD" if conversion_type == "SD" else "WSD",
            dry_run=dry_run,
            strict=strict,
        ),
        target=target or Target(),
        name_rule=rule,
        reference=reference,
        same_series=same_series,
        recursive=recursive,
        settle=settle,
        done=done,
        delete=delete,
        failed=failed,
        concurrency=concurrency,
        once=once,
        forward=destination.forward(),
    )
    client = connection.open(pool_size=concurrency, dicomweb_url=destination.dicomweb_url)
    summary = _run(client, options, as_json=as_json, log_file=log_file, status=not no_progress)
    if once:
        total = summary.stored + summary.planned + summary.failed + summary.waiting
        tally = {"stored": summary.stored, "left in the inbox": summary.waiting}
        if dry_run:
            tally = {"planned": summary.planned, "left in the inbox": summary.waiting}
        info(batch_summary(total, tally, failed=summary.failed))
        if summary.first_error is not None:
            click.get_current_context().exit(exit_status_for(summary.first_error))


def _run(
    client: OrthancClient,
    options: WatchOptions,
    *,
    as_json: bool,
    log_file: Path | None,
    status: bool,
) -> WatchSummary:
    """Watch until stopped, reporting each file (stderr, --json, --log) as it is done."""
    from pdf2dcm import records
    from pdf2dcm.upload import check_forward_target
    from pdf2dcm.watch import Journal, Watcher

    from .report import show_plan

    journal = Journal(log_file) if log_file is not None else None
    stop = threading.Event()

    # The reference's warnings were said at the start; each file's plan carries them again.
    said: set[str] = set(options.reference.warnings if options.reference is not None else ())

    def report(event: WatchEvent) -> None:
        code = int(exit_status_for(event.error)) if event.error else None
        for note in event.result.warnings if event.result is not None else ():
            if note not in said:
                said.add(note)
                say(f"warning: {note}")
        if event.status == "planned" and event.result is not None:
            show_plan(event.file, event.result.attributes or {}, as_json)
            return
        if journal is not None:
            journal.write(event, code)
        _show(event)
        if as_json:
            print_json(records.watched(event, code))

    try:
        with client, _status_line(status) as on_status:
            if options.forward is not None:
                check_forward_target(client, *options.forward)
            watcher = Watcher(
                client,
                options,
                exit_code=lambda error: int(exit_status_for(error)),
                on_event=report,
                on_status=on_status,
            )
            with _stop_on_signals(stop):
                return watcher.run(stop)
    finally:
        if journal is not None:
            journal.close()


def _check_title(title: str) -> None:
    """Refuse a title no document could carry before the first file is taken."""
    from pdf2dcm.errors import TagError
    from pdf2dcm.tags import validate_tags

    try:
        validate_tags({"DocumentTitle": title})
    except TagError as error:
        raise TagError(f"--title: {error}") from None


def _name_rule(pattern: str | None, regex: str | None) -> NameRule | None:
    from pdf2dcm.pertags import NameRule

    if pattern is not None and regex is not None:
        raise click.UsageError("give --name-pattern or --name-regex, not both")
    if pattern is not None:
        return NameRule.from_pattern(pattern)
    if regex is not None:
        return NameRule.from_regex(regex)
    return None


def _show(event: WatchEvent) -> None:
    """The event's line on stderr: errors always, the rest not under ``-q``."""
    line = _event_line(event)
    if event.status == "failed":
        say(f"error: {line}")
    elif event.status == "retry":
        say(f"warning: {line}")
    else:
        info(line)


def _event_line(event: WatchEvent) -> str:
    message = str(event.error)
    if event.file not in message:
        message = f"{event.file}: {message}"
    if event.status == "stored" and event.result is not None:
        where = event.result.id or event.result.sop_instance_uid
        gone = "deleted" if event.destination == "deleted" else f"moved to {event.destination}"
        job = f"; forwarded by job {event.job}" if event.job else ""
        return f"{event.file} -> {where} ({event.result.status}){job}; {gone}"
    if event.status == "failed":
        where = f"moved to {event.destination}" if event.destination else "left in the inbox"
        return f"{message}; {where}"
    return f"{message}; left in the inbox, next try in {event.retry_in:g} s"


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM end the watch after the files in hand; a second one acts at once."""
    previous: dict[int, Any] = {}

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signum, previous[signum])

    for stopping in (signal.SIGINT, signal.SIGTERM):
        previous[stopping] = signal.getsignal(stopping)
        signal.signal(stopping, request_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _status_line(
    enabled: bool,
) -> Iterator[Callable[[int, int, int, str | None], None] | None]:
    """On a terminal, a status line under the event lines: waiting, stored, failed, last error.

    Registered as the live display, so that event lines and records print above it.
    """
    if not enabled or app.output.quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True)
    with console.status("watching") as display, displaying(console):

        def status(waiting: int, stored: int, failed: int, last_error: str | None) -> None:
            text = f"watching: {waiting} waiting, {stored} stored, {failed} failed"
            if last_error:
                text += f"; last error: {last_error}"
            # One line whatever the width (the spinner takes two cells): cut, never wrapped.
            line = Text(app.terminal_safe(text))
            line.truncate(max(10, console.width - 3), overflow="ellipsis")
            display.update(line)

        yield status
