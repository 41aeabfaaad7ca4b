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

from pdf2dcm.imports import load_pydicom

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
from .dimse import (
    DicomChoice,
    TlsChoice,
    dicom_destination,
    dimse_upload_options,
    tls_options,
)

if TYPE_CHECKING:
    from pdf2dcm.errors import Pdf2DcmError
    from pdf2dcm.pertags import NameRule
    from pdf2dcm.upload import Server
    from pdf2dcm.watch import Journal, Status, WatchEvent, WatchOptions, WatchSummary


@cli.command(
    cls=SectionedCommand,
    epilog="""\b
Examples:
  pdf2dcm watch /srv/inbox --done /srv/done --failed /srv/failed \\
      --name-pattern '{PatientID}_{AccessionNumber}_{*}.pdf' \\
      --study 'AccessionNumber={AccessionNumber}'
  pdf2dcm watch scans/ --recursive --name-pattern '{PatientID}/{*}.pdf' --delete --once
  pdf2dcm watch /srv/inbox --via dimse --scp PACS@pacs:104 --commit \\
      --done /srv/done --failed /srv/failed

\b
A file is taken once its size and time stayed the same for --settle seconds and it ends
like a PDF (%%EOF); one that does not waits as still being written (--incomplete-after).
Names ending in .part or .tmp and names starting with '.' are never taken; .pdf matches in
any case. A file leaves the inbox only after the server confirmed it and the file is still
what was sent (else it is sent again, and the earlier document reported with its ID).
Permanent failures go to --failed with NAME.pdf.error.json; server or credential trouble
(unreachable, 5xx, 401/403, unknown modality) leaves files in place, said once, tried again
after a pause. A file whose study is not found yet is held (--hold-for). At start the
server, the credentials and the targets are checked (exit 3 or 4, or --wait-for-server).
One watcher per inbox: a second one is refused.
Tags, later wins: --tags-file, --tag, --title, the values of --name-pattern/--name-regex,
the sidecar NAME.json beside NAME.pdf. --study/--patient/--series terms may hold {Keyword}.
--study-from/--series-from files are read once, at the start. Files joining one series
(--series, --series-from, --same-series) take InstanceNumbers after the highest the server
holds, unique across the run and restarts; a failed file leaves a gap. Run one watcher
per series.
Runs until Ctrl-C or SIGTERM (the files in hand are finished, a summary line, exit 0);
--once exits with the exit code of the first failure.""",
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
    "--hold-for",
    "hold_for",
    default="24h",
    show_default=True,
    metavar="DURATION",
    help="Hold a file whose study, patient, series or worklist item is not found yet, "
    "looking again with back-off, this long after it arrived (90, 30m, 24h; 0: fail at once).",
)
@click.option(
    "--incomplete-after",
    "incomplete_after",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Move a PDF that does not end like one (no %%EOF) to --failed once unchanged this long.",
)
@click.option(
    "--wait-for-server",
    is_flag=True,
    help="At start, wait for the server and credentials to work instead of exiting 3 or 4.",
)
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
    help="A file that earns a warning (no PatientID, a value the worklist answer had to "
    "repair, ...) fails, with the warning as its reason.",
)
@dimse_upload_options
@tls_options
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
    hold_for: str,
    incomplete_after: str,
    wait_for_server: bool,
    dicom: DicomChoice,
    tls: TlsChoice,
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
    method = destination.chosen_method(profile)
    forward = destination.forward()
    archive, target = dicom_destination(dicom, tls, method, forward is not None, target)
    for note in reference.warnings if reference is not None else ():
        say(f"warning: {note}")
    options = WatchOptions(
        inbox=inbox,
        upload=UploadOptions(
            method=method,
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
        forward=forward,
        hold_for=_duration("--hold-for", hold_for),
        incomplete_limit=_duration("--incomplete-after", incomplete_after),
        commit=dicom.commit,
        listen_port=dicom.listen_port,
    )
    client = archive or connection.open(
        pool_size=concurrency, dicomweb_url=destination.dicomweb_url
    )
    summary = _run(
        client,
        options,
        as_json=as_json,
        log_file=log_file,
        status=not no_progress,
        wait_for_server=wait_for_server,
    )
    if once:
        total = summary.stored + summary.planned + summary.failed + summary.waiting + summary.held
        tally = {"stored": summary.stored, "left in the inbox": summary.waiting}
        if summary.held:
            tally["held"] = summary.held
        if dry_run:
            tally = {"planned": summary.planned, "left in the inbox": summary.waiting}
        info(batch_summary(total, tally, failed=summary.failed))
        if summary.first_error is not None:
            click.get_current_context().exit(exit_status_for(summary.first_error))
    else:
        info(summary.line)


def _duration(option: str, text: str) -> float:
    from pdf2dcm.errors import InputError
    from pdf2dcm.watch import parse_duration

    try:
        return parse_duration(text)
    except InputError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def _run(
    client: Server,
    options: WatchOptions,
    *,
    as_json: bool,
    log_file: Path | None,
    status: bool,
    wait_for_server: bool = False,
) -> WatchSummary:
    """Watch until stopped, reporting each file (stderr, --json, --log) as it is done."""
    import os

    from pdf2dcm.client import OrthancClient
    from pdf2dcm.upload import check_forward_target
    from pdf2dcm.watch import Journal, Watcher, WatchSummary, lock_inbox

    lock = None if options.upload.dry_run else lock_inbox(options.inbox)
    try:
        journal = Journal(log_file) if log_file is not None else None
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    stop = threading.Event()
    report = _reporter(client, options, journal, as_json=as_json)

    try:
        opened = client if isinstance(client, OrthancClient) else contextlib.nullcontext()
        with opened, _status_line(status) as on_status:
            if options.forward is not None and isinstance(client, OrthancClient):
                # Before the checks: an unknown name is a mistake to say plainly, with the
                # known ones; the checks then see that the target answers.
                check_forward_target(client, *options.forward)
            with _stop_on_signals(stop):
                if not _start_checks(client, options, wait=wait_for_server, stop=stop):
                    # Stopped while waiting for the server: a clean stop, nothing taken.
                    return WatchSummary(0, 0, 0, None)
            _warn_open_folders(options)
            info(_start_line(client, options))
            watcher = Watcher(
                client,
                options,
                exit_code=lambda error: int(exit_status_for(error)),
                on_event=report,
                on_status=on_status,
                on_note=lambda note: say(f"note: {note}"),
            )
            with _stop_on_signals(stop):
                return watcher.run(stop)
    finally:
        if journal is not None:
            journal.close()
        if lock is not None:
            os.close(lock)


def _reporter(
    client: Server, options: WatchOptions, journal: Journal | None, *, as_json: bool
) -> Callable[[WatchEvent], None]:
    """What is done with each file's outcome: its warnings said once (and, once known, that
    a DICOM node answers no C-FIND), its line, its journal record and its JSON record; a dry
    run's plan shown instead."""
    from pdf2dcm import records
    from pdf2dcm.client import OrthancClient

    from .report import show_plan

    # The reference's warnings were said at the start; each file's plan repeats them.
    said: set[str] = set(options.reference.warnings if options.reference is not None else ())
    state: list[str | None] = [None]

    def report(event: WatchEvent) -> None:
        code = int(exit_status_for(event.error)) if event.error else None
        notes = list(event.result.warnings if event.result is not None else ())
        if not isinstance(client, OrthancClient) and client.unverified is not None:
            notes.append(client.unverified)
        for note in notes:
            if note not in said:
                said.add(note)
                say(f"warning: {note}")
        if event.status == "planned" and event.result is not None:
            show_plan(event.file, event.result.attributes or {}, as_json)
            return
        if journal is not None:
            journal.write(event, code)
        _show(event, state, said)
        if as_json:
            print_json(records.watched(event, code))

    return report


def _warn_open_folders(options: WatchOptions) -> None:
    """Say when others could plant a link or a file where results are written."""
    from pdf2dcm.watch import writable_by_others

    for folder in (options.done, options.failed):
        if folder is not None and writable_by_others(folder):
            say(
                f"warning: {folder} can be written by other users, who could plant links or "
                "files where results go; make it writable by its owner only"
            )


START_RETRY_FIRST = 0.5
"""The first pause of --wait-for-server, doubling up to a minute: a server that restarts
is back within seconds, one that is down for long is asked once a minute."""


def _start_checks(
    client: Server, options: WatchOptions, *, wait: bool, stop: threading.Event
) -> bool:
    """The server, the credentials and the forwarding target, before any file is taken: a
    wrong password is said at start (exit 3 or 4, so that systemd shows the unit failed),
    not found out one scan at a time. With ``wait``, tried again with back-off instead;
    False when ``stop`` came while waiting."""
    pause, said = START_RETRY_FIRST, None
    while True:
        failure = _start_failure(client, options)
        if failure is None:
            if said is not None:
                info("the server answers and accepts the credentials; watching")
            return True
        if not wait:
            raise failure
        if str(failure) != said:
            said = str(failure)
            say(f"warning: {failure}; waiting for the server (--wait-for-server)")
        if stop.wait(pause):
            return False
        pause = min(60.0, 2 * pause)


def _start_failure(client: Server, options: WatchOptions) -> Pdf2DcmError | None:
    """Why the destination cannot take documents now: Orthanc's checks, or a DICOM node's
    association (the calling AE title it accepts) and its answer to C-ECHO."""
    from pdf2dcm.client import OrthancClient
    from pdf2dcm.errors import Pdf2DcmError

    if not isinstance(client, OrthancClient):
        if options.commit and options.listen_port is not None:
            refused = _listen_port_refused(options.listen_port)
            if refused is not None:
                return refused
        load_pydicom()
        from pdf2dcm import dimse

        try:
            dimse.check_reachable(
                client.node, calling_aet=client.calling_aet, timeout=client.timeout
            )
            if options.commit:
                dimse.check_commitment(
                    client.node, calling_aet=client.calling_aet, timeout=client.timeout
                )
        except Pdf2DcmError as error:
            return error
        return None
    from pdf2dcm.check import first_failure, run_checks

    forward = options.forward
    checks = run_checks(
        client,
        modalities=[forward[1]] if forward and forward[0] == "modality" else [],
        peers=[forward[1]] if forward and forward[0] == "peer" else [],
    )
    return first_failure([c for c in checks if c.name != "DICOMweb"])


def _listen_port_refused(port: int) -> Pdf2DcmError | None:
    """Whether the port for commitment reports can be listened on: said at start, not
    found out after the first document is stored."""
    import socket

    from pdf2dcm.errors import ConfigurationError

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError as exc:
            return ConfigurationError(
                f"cannot listen on port {port} for storage commitment reports: "
                f"{exc.strerror}; free it or give another --listen-port"
            )
    return None


def _start_line(client: Server, options: WatchOptions) -> str:
    """One line saying what is watched and where files go: the first thing in the log."""
    from pdf2dcm.config import redact_url
    from pdf2dcm.watch import _duration

    target = options.target
    terms = [
        ("parent", (target.parent,) if target.parent else ()),
        ("study", target.study),
        ("patient", target.patient),
        ("series", target.series),
        ("worklist of", (target.worklist,) if target.worklist else ()),
    ]
    where = ", ".join(f"{level} {' '.join(values)}" for level, values in terms if values)
    if not where and options.reference is not None:
        where = "the study of the reference file"
    from pdf2dcm.client import OrthancClient

    method = options.upload.method
    server = redact_url(client.settings.url) if isinstance(client, OrthancClient) else client.name
    commit = " with storage commitment" if options.commit else ""
    parts = [
        f"watching {options.inbox}{' (and subfolders)' if options.recursive else ''}",
        f"filing to {server} by {method}{commit}",
    ]
    if where:
        parts.append(f"into {where}")
    if options.forward is not None:
        parts.append(f"forwarding to {options.forward[0]} {options.forward[1]}")
    parts.append(f"settle {options.settle:g} s")
    parts.append(f"hold {_duration(options.hold_for)}")
    done = "deleted" if options.delete else f"done -> {options.done}"
    parts.append(done)
    parts.append(f"failed -> {options.failed}" if options.failed else "failed left in place")
    if options.upload.dry_run:
        parts.append("dry run: nothing sent, moved or deleted")
    return "; ".join(parts)


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


def _show(event: WatchEvent, state: list[str | None], said: set[str]) -> None:
    """The event's line on stderr: errors always, the rest not under ``-q``.

    Server and credential trouble is said once per change of state (not once per file and
    try: the journal has those), and its end is said too. A held or incomplete file is said
    once per reason.
    """
    line = _event_line(event)
    if event.status == "retry":
        if event.state != state[0]:
            state[0] = event.state
            say(f"warning: {line}")
        return
    if state[0] is not None and event.status == "stored":
        state[0] = None
        info("the server accepts documents again; the files left waiting follow")
    if event.status in ("held", "incomplete"):
        key = f"{event.status}:{event.file}:{event.error}"
        if key not in said:
            said.add(key)
            say(f"warning: {line}")
        return
    if event.status in ("failed", "changed"):
        say(f"error: {line}")
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
    if event.status == "held":
        return f"{message}; held in the inbox, next look in {event.retry_in or 0:g} s"
    if event.status in ("incomplete", "changed"):
        return message
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
) -> Iterator[Callable[[Status], None] | None]:
    """On a terminal, a status line under the event lines: waiting, stored, failed, held,
    last error.

    Registered as the live display, so that event lines and records print above it; on the
    way out (Ctrl-C, SIGTERM) it is cleared, so that the summary line stands alone.
    """
    if not enabled or app.output.quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True)
    with console.status("watching") as display, displaying(console):

        def status(now: Status) -> None:
            text = f"watching: {now.waiting} waiting, {now.stored} stored, {now.failed} failed"
            if now.held:
                text += f", {now.held} held"
            if now.last_error:
                text += f"; last error: {now.last_error}"
            # One line whatever the width (the spinner takes two cells): cut, never wrapped.
            line = Text(app.terminal_safe(text))
            line.truncate(max(10, console.width - 3), overflow="ellipsis")
            display.update(line)

        yield status
