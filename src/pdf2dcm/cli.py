"""The ``pdf2dcm`` command line: thin commands over the library, one exit-code table.

This is the only module that imports click or rich, and it imports rich, pydicom and requests
inside the commands that need them, so ``pdf2dcm --version`` and ``--help`` start fast.
Results go to stdout; progress, warnings and errors to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from enum import IntEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NoReturn, cast

import click

from . import __version__
from . import errors as err

if TYPE_CHECKING:
    from .jobs import Action
    from .progress import ProgressCallback
    from .tags import ValidatedTags
    from .upload import Method


class ExitStatus(IntEnum):
    """Exit codes; documented in ``pdf2dcm --help`` and the README."""

    SUCCESS = 0
    ERROR = 1
    INPUT = 2
    UNREACHABLE = 3
    REFUSED = 4
    SERVER_FAILED = 5
    JOB_FAILED = 6
    JOB_TIMEOUT = 7
    INTERRUPTED = 130


EXIT_CODES: dict[type[err.Pdf2DcmError], ExitStatus] = {
    err.Pdf2DcmError: ExitStatus.ERROR,
    err.InputError: ExitStatus.INPUT,
    err.NotAPdfError: ExitStatus.INPUT,
    err.TagError: ExitStatus.INPUT,
    err.NotEncapsulatedPdfError: ExitStatus.INPUT,
    err.OutputExistsError: ExitStatus.INPUT,
    err.ConfigurationError: ExitStatus.INPUT,
    err.NotAttemptedError: ExitStatus.ERROR,
    err.ServerError: ExitStatus.SERVER_FAILED,
    err.ServerUnreachableError: ExitStatus.UNREACHABLE,
    err.HTTPStatusError: ExitStatus.SERVER_FAILED,
    err.ServerRefusedError: ExitStatus.REFUSED,
    err.AuthenticationError: ExitStatus.REFUSED,
    err.NotFoundError: ExitStatus.REFUSED,
    err.ServerFailedError: ExitStatus.SERVER_FAILED,
    err.JobError: ExitStatus.JOB_FAILED,
    err.JobFailedError: ExitStatus.JOB_FAILED,
    err.JobTimeoutError: ExitStatus.JOB_TIMEOUT,
    err.JobNotFoundError: ExitStatus.REFUSED,
}

EXIT_CODE_HELP = """\b
Exit codes:
  0    success
  1    unexpected error (a bug): run with --debug for details
  2    usage or input error: bad option, bad tag, not a PDF, missing file
  3    server unreachable: refused, DNS, TLS, timeout (after retries)
  4    server refused the request (4xx): authentication, unknown ID
  5    server failed (5xx) after retries
  6    an Orthanc job ended in failure
  7    waiting for a job timed out (the job goes on)
  130  interrupted (Ctrl-C)"""


def exit_status_for(error: BaseException) -> ExitStatus:
    """The exit code of an error: its own class's, else its nearest base's."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ExitStatus.ERROR


def _say(message: str) -> None:
    click.echo(f"pdf2dcm: {message}", err=True)


class _Group(click.Group):
    """Maps every error to its exit code in one place, with a traceback only under --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except err.Pdf2DcmError as error:
            self._fail(ctx, error, f"error: {error}", exit_status_for(error))
        except KeyboardInterrupt as error:
            self._fail(ctx, error, "interrupted", ExitStatus.INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (``| head``); that is its choice, not an error of ours.
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            ctx.exit(ExitStatus.SUCCESS)
        except Exception as error:
            self._fail(
                ctx,
                error,
                f"unexpected error: {type(error).__name__}: {error}; run with --debug for details",
                ExitStatus.ERROR,
            )

    @staticmethod
    def _fail(ctx: click.Context, error: BaseException, line: str, code: int) -> NoReturn:
        if ctx.obj and ctx.obj.get("debug"):
            traceback.print_exception(type(error), error, error.__traceback__)
        _say(line)
        ctx.exit(code)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"""\b
Examples:
  pdf2dcm encode report.pdf --tag PatientName=Doe^Jane --tag PatientID=123
  pdf2dcm extract report.dcm -o report.pdf
  cat report.pdf | pdf2dcm encode - > report.dcm

{EXIT_CODE_HELP}""",
)
@click.version_option(__version__, "--version", prog_name="pdf2dcm")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Turn PDF files into DICOM Encapsulated PDF objects and back."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pdf2dcm")


# --- shared pieces -------------------------------------------------------------------------


def _tag_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--tag",
            "tag_assignments",
            multiple=True,
            metavar="KEY=VALUE",
            help="Set an attribute (keyword or gggg,eeee); repeatable; split at the first '='. "
            "Multiple values are separated by '\\'; a sequence takes a JSON array of objects.",
        ),
        click.option(
            "--tags-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="JSON object of tags, as in Orthanc's create-dicom 'Tags'; --tag overrides it.",
        ),
        click.option(
            "--title", help="DocumentTitle (default: the PDF's Title, else the file name)."
        ),
        click.option(
            "--conversion-type",
            type=click.Choice(["WSD", "SD"]),
            default="WSD",
            show_default=True,
            help="WSD for a workstation-made document, SD for a scanned one.",
        ),
        click.option(
            "--study-from",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Copy the patient and study attributes of this DICOM file.",
        ),
        click.option(
            "--series-from",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Copy the patient, study and series of this DICOM file; next InstanceNumber.",
        ),
        click.option(
            "--same-series",
            is_flag=True,
            help="Put all the inputs in one new series (default: a new study and series each).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _collect_tags(assignments: Sequence[str], tags_file: Path | None) -> ValidatedTags:
    from .tags import load_tags_file, parse_assignment, validate_tags

    collected: ValidatedTags = {}
    if tags_file is not None:
        collected |= validate_tags(load_tags_file(tags_file))
    for assignment in assignments:
        try:
            key, value = parse_assignment(assignment)
            collected |= validate_tags({key: value})
        except err.TagError as error:
            raise err.TagError(f"--tag {assignment}: {error}") from None
    return collected


def _reference(study_from: Path | None, series_from: Path | None) -> Any:
    if study_from is not None and series_from is not None:
        raise click.UsageError("give --study-from or --series-from, not both")
    from .dicom import read_reference

    if series_from is not None:
        return read_reference(series_from, "series")
    if study_from is not None:
        return read_reference(study_from, "study")
    return None


@contextlib.contextmanager
def _progress(
    enabled: bool, total: int | None, files: int | None = None
) -> Iterator[ProgressCallback | None]:
    """A rich progress bar (bytes, and files when several) on stderr.

    Only when stderr is a terminal and not disabled; events may come from several upload
    threads, and a restarted (retried) file gives back the bytes it had counted.
    """
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    import threading

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from .progress import ProgressEvent

    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn()]
    columns += [TransferSpeedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=total)
        seen: dict[str, int] = {}
        finished: set[str] = set()
        lock = threading.Lock()
        completed = 0

        def update(event: ProgressEvent) -> None:
            nonlocal completed
            with lock:
                completed += event.done - seen.get(event.label, 0)
                seen[event.label] = event.done
                if event.total is not None and event.done >= event.total:
                    finished.add(event.label)
                name = Path(event.label).name
                counter = f"[{len(finished)}/{files}] " if files and files > 1 else ""
                bar.update(task, completed=completed, description=f"{counter}{name}")

        yield update


def _refuse_terminal(stream: IO[Any], what: str) -> None:
    if stream.isatty():
        raise click.UsageError(
            f"refusing to write {what} to a terminal; use -o FILE or redirect the output"
        )


def _print_json(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, ensure_ascii=False))


def _stdin() -> BinaryIO:
    return sys.stdin.buffer


def _stdout() -> BinaryIO:
    return sys.stdout.buffer


def _size_text(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError(unit)


def _connection_options_for(
    timeout_flag: str,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The connection options; ``jobs wait`` names the per-request timeout differently,
    because its ``--timeout`` bounds the whole wait."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        return _add_connection_options(function, timeout_flag)

    return decorate


def _add_connection_options(function: Callable[..., Any], timeout_flag: str) -> Callable[..., Any]:
    options = [
        click.option(
            "--url",
            metavar="URL",
            help="Orthanc base URL [env ORTHANC_URL; default http://localhost:8042].",
        ),
        click.option(
            "--username", metavar="USER", help="HTTP user [env ORTHANC_USERNAME; ~/.netrc]."
        ),
        click.option(
            "--password",
            metavar="PASSWORD",
            help="HTTP password; prefer env ORTHANC_PASSWORD or ~/.netrc, which stay out of "
            "process listings. Asked for on a terminal when only a user is given.",
        ),
        click.option("--token", metavar="TOKEN", help="Bearer token [env ORTHANC_TOKEN]."),
        click.option(
            "--ca-bundle",
            type=click.Path(dir_okay=False),
            help="PEM file of CAs to trust for https.",
        ),
        click.option(
            "--insecure", is_flag=True, help="Do not verify TLS certificates (with a warning)."
        ),
        click.option(
            timeout_flag,
            "timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Per-request timeout in seconds [default 60].",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


_connection_options = _connection_options_for("--timeout")


def _client(
    url: str | None,
    username: str | None,
    password: str | None,
    token: str | None,
    ca_bundle: str | None,
    insecure: bool,
    timeout: float | None,
    *,
    pool_size: int = 10,
    dicomweb_url: str | None = None,
    stdin_in_use: bool = False,
) -> Any:
    from .client import OrthancClient
    from .config import ENV_PASSWORD, resolve_settings

    settings = resolve_settings(
        url=url,
        username=username,
        password=password,
        token=token,
        ca_bundle=ca_bundle,
        insecure=insecure,
        timeout=timeout,
        dicomweb_url=dicomweb_url,
    )
    if (
        settings.username is not None
        and settings.password is None
        and not stdin_in_use
        and sys.stdin.isatty()
    ):
        secret = click.prompt(
            f"Password for {settings.username} at {settings.url}",
            hide_input=True,
            err=True,
        )
        import dataclasses

        settings = dataclasses.replace(settings, password=secret)
    elif settings.username is not None and settings.password is None:
        _say(f"warning: no password for {settings.username}; set {ENV_PASSWORD} or ~/.netrc")
    if insecure:
        _say("warning: TLS certificates are not verified (--insecure)")
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return OrthancClient(settings, pool_size=pool_size)


# --- encode ----------------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  pdf2dcm encode report.pdf --tag PatientName=Doe^Jane --tag PatientID=123
  pdf2dcm encode *.pdf -d out/ --same-series --json
  pdf2dcm encode scan.pdf --conversion-type SD --series-from existing.dcm -o scan.dcm
  curl -s https://host/report.pdf | pdf2dcm encode - -o report.dcm

\b
Dates and times not given (StudyDate/Time, ContentDate/Time, InstanceCreationDate/Time,
AcquisitionDateTime) are the local time of this machine when the command starts.
Text with characters outside ASCII is written in UTF-8 (SpecificCharacterSet ISO_IR 192)."""
)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Output file, or '-' for stdout (one input only). Default: INPUT with .dcm.",
)
@click.option(
    "-d",
    "--outdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write every output into this directory as NAME.dcm.",
)
@_tag_options
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file on stdout.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first file that fails.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
def encode(
    inputs: tuple[str, ...],
    output: str | None,
    outdir: Path | None,
    tag_assignments: tuple[str, ...],
    tags_file: Path | None,
    title: str | None,
    conversion_type: str,
    study_from: Path | None,
    series_from: Path | None,
    same_series: bool,
    overwrite: bool,
    as_json: bool,
    fail_fast: bool,
    no_progress: bool,
) -> None:
    """Wrap PDF files (INPUT, or '-' for stdin) as DICOM Encapsulated PDF objects."""
    import datetime as dt

    from .dicom import batch_tags, encode_pdf

    targets = _encode_targets(inputs, output, outdir)
    if any(target == "-" for target in targets) and as_json:
        raise click.UsageError("--json prints to stdout, which already carries the DICOM file")
    if "-" in targets:
        _refuse_terminal(sys.stdout, "a DICOM file")
    if title is not None and len(inputs) > 1:
        raise click.UsageError("--title applies to one input; give it per file")
    tags = _collect_tags(tag_assignments, tags_file)
    reference = _reference(study_from, series_from)
    per_file = batch_tags(tags, len(inputs), same_series=same_series, reference=reference)
    moment = dt.datetime.now()
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
    failures: list[err.Pdf2DcmError] = []
    total = sum(_file_size(name) for name in inputs)
    with _progress(not no_progress, total or None, len(inputs)) as progress:
        for source, target, file_tags in zip(inputs, targets, per_file, strict=True):
            try:
                result = encode_pdf(
                    _stdin() if source == "-" else source,
                    _stdout() if target == "-" else target,
                    tags=file_tags,
                    title=title,
                    conversion_type="SD" if conversion_type == "SD" else "WSD",
                    reference=reference,
                    overwrite=overwrite,
                    now=moment,
                    progress=progress,
                    source_name="<stdin>" if source == "-" else source,
                )
            except err.InputError as error:
                if fail_fast or len(inputs) == 1:
                    raise
                _say(f"error: {error}")
                failures.append(error)
                continue
            for warning in result.warnings:
                _say(f"warning: {warning}")
            if as_json:
                _print_json(
                    {
                        "input": source,
                        "output": result.output,
                        "SOPInstanceUID": result.sop_instance_uid,
                        "SeriesInstanceUID": result.series_instance_uid,
                        "StudyInstanceUID": result.study_instance_uid,
                        "size": result.pdf_size,
                        "sha256": result.sha256,
                    }
                )
            elif target != "-":
                click.echo(f"{source} -> {target} ({_size_text(result.pdf_size)} PDF)")
    if failures:
        _say(f"{len(failures)} of {len(inputs)} files failed")
        click.get_current_context().exit(exit_status_for(failures[0]))


def _file_size(name: str) -> int:
    if name == "-":
        return 0
    try:
        return os.stat(name).st_size
    except OSError:
        return 0


def _encode_targets(inputs: Sequence[str], output: str | None, outdir: Path | None) -> list[str]:
    if output is not None and outdir is not None:
        raise click.UsageError("give -o/--output or -d/--outdir, not both")
    if output is not None and len(inputs) > 1:
        raise click.UsageError("-o/--output takes one input; use -d/--outdir for several")
    if inputs.count("-") > 1:
        raise click.UsageError("stdin ('-') can be read only once")
    targets = []
    for source in inputs:
        if output is not None:
            targets.append(output)
        elif source == "-":
            targets.append("-" if outdir is None else str(outdir / "stdin.dcm"))
        else:
            name = Path(source).with_suffix(".dcm").name
            folder = outdir if outdir is not None else Path(source).parent
            targets.append(str(folder / name))
    seen: dict[str, str] = {}
    for source, target in zip(inputs, targets, strict=True):
        key = os.path.abspath(target) if target != "-" else "-"
        if key in seen:
            raise click.UsageError(
                f"{seen[key]} and {source} would both be written to {target}; "
                "encode them into different directories"
            )
        seen[key] = source
        if target != "-" and key == os.path.abspath(source):
            raise err.InputError(f"{source} would be overwritten by its own output; use -o")
    return targets


# --- extract ---------------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  pdf2dcm extract report.dcm                 # writes report.pdf
  pdf2dcm extract report.dcm -o - | sha256sum
  pdf2dcm encode report.pdf -o - | pdf2dcm extract - -o copy.pdf

\b
The PDF comes out byte for byte as it went in: its length is taken from
EncapsulatedDocumentLength (0042,0015); without it only a single 0x00 pad is removed."""
)
@click.argument("source", metavar="INPUT")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Output PDF, or '-' for stdout. Default: INPUT with .pdf (stdout for stdin).",
)
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object describing the PDF.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
def extract(
    source: str, output: str | None, overwrite: bool, as_json: bool, no_progress: bool
) -> None:
    """Write the PDF held in a DICOM Encapsulated PDF file (INPUT, or '-' for stdin)."""
    from .dicom import extract_pdf

    if output is None:
        output = "-" if source == "-" else str(Path(source).with_suffix(".pdf"))
    if output == "-":
        if as_json:
            raise click.UsageError("--json prints to stdout, which already carries the PDF")
        _refuse_terminal(sys.stdout, "a PDF")
    elif source != "-" and os.path.abspath(output) == os.path.abspath(source):
        raise err.InputError(f"{source} would be overwritten by its own output; use -o")
    with _progress(not no_progress, _file_size(source) or None) as progress:
        result = extract_pdf(
            _stdin() if source == "-" else source,
            _stdout() if output == "-" else output,
            overwrite=overwrite,
            progress=progress,
            source_name="<stdin>" if source == "-" else source,
        )
    if as_json:
        _print_json(
            {"input": source, "output": result.output, "size": result.size, "sha256": result.sha256}
        )
    elif output != "-":
        click.echo(f"{source} -> {output} ({_size_text(result.size)} PDF)")


# --- upload ----------------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  pdf2dcm upload report.pdf --tag PatientName=Benjamino --tag PatientID=123
  pdf2dcm upload scans/ --recursive --concurrency 4 --json > uploaded.jsonl
  pdf2dcm upload addendum.pdf --parent 3e4024bc-a395a1e3-54254769-da9a9d72-b00f8968
  pdf2dcm encode report.pdf -o - | pdf2dcm upload -
  ORTHANC_URL=https://pacs.example.org ORTHANC_USERNAME=me pdf2dcm upload x.pdf --via stow

\b
Credentials come from --username/--token, then ORTHANC_USERNAME, ORTHANC_PASSWORD and
ORTHANC_TOKEN, then ~/.netrc. A re-sent document (same SOPInstanceUID) is reported as
AlreadyStored; transient failures are retried without ever creating a duplicate."""
)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@_connection_options
@click.option(
    "--via",
    "method",
    type=click.Choice(["instances", "create-dicom", "stow"]),
    default="instances",
    show_default=True,
    help="instances: encode here, POST /instances; create-dicom: Orthanc encodes; "
    "stow: DICOMweb STOW-RS.",
)
@click.option(
    "--dicomweb-url",
    metavar="URL",
    help="DICOMweb root for --via stow [default: URL/dicom-web].",
)
@click.option(
    "--parent",
    metavar="ORTHANC_ID",
    help="Attach to this Orthanc patient, study or series (copies its attributes).",
)
@_tag_options
@click.option("--recursive", is_flag=True, help="Look for PDFs in subdirectories too.")
@click.option(
    "--send-to-modality",
    metavar="NAME",
    help="Then forward the uploaded instances to this DICOM modality (an Orthanc job).",
)
@click.option(
    "--send-to-peer",
    metavar="NAME",
    help="Then forward the uploaded instances to this Orthanc peer (an Orthanc job).",
)
@click.option("--wait", is_flag=True, help="Wait for the forwarding job, as 'jobs wait' does.")
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="With --wait: give up waiting after this long.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Upload this many files at once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first file that fails.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
def upload(
    inputs: tuple[str, ...],
    url: str | None,
    username: str | None,
    password: str | None,
    token: str | None,
    ca_bundle: str | None,
    insecure: bool,
    timeout: float | None,
    method: str,
    dicomweb_url: str | None,
    parent: str | None,
    tag_assignments: tuple[str, ...],
    tags_file: Path | None,
    title: str | None,
    conversion_type: str,
    study_from: Path | None,
    series_from: Path | None,
    same_series: bool,
    recursive: bool,
    send_to_modality: str | None,
    send_to_peer: str | None,
    wait: bool,
    wait_timeout: float,
    concurrency: int,
    as_json: bool,
    fail_fast: bool,
    no_progress: bool,
) -> None:
    """Send PDFs (encoded on the way) or DICOM files to Orthanc; '-' reads stdin."""
    import datetime as dt

    from .dicom import batch_tags
    from .upload import (
        UploadOptions,
        batch_seed,
        collect_inputs,
        parent_reference,
        upload_many,
    )

    sources = collect_inputs(inputs, recursive=recursive)
    if sources.count("-") > 1:
        raise click.UsageError("stdin ('-') can be read only once")
    if title is not None and len(sources) > 1:
        raise click.UsageError("--title applies to one input; give it per file")
    if parent is not None and (study_from is not None or series_from is not None):
        raise click.UsageError("give --parent or --study-from/--series-from, not both")
    if send_to_modality is not None and send_to_peer is not None:
        raise click.UsageError("give --send-to-modality or --send-to-peer, not both")
    if wait and send_to_modality is None and send_to_peer is None:
        raise click.UsageError("--wait goes with --send-to-modality or --send-to-peer")
    tags = _collect_tags(tag_assignments, tags_file)
    client = _client(
        url,
        username,
        password,
        token,
        ca_bundle,
        insecure,
        timeout,
        pool_size=concurrency,
        dicomweb_url=dicomweb_url,
        stdin_in_use="-" in sources,
    )
    with client:
        reference = (
            parent_reference(client, parent)
            if parent is not None
            else _reference(study_from, series_from)
        )
        has_patient_id = 0x00100020 in tags or (
            reference is not None and "PatientID" in reference.dataset
        )
        if not has_patient_id and any(s != "-" and not _is_dicom(s) for s in sources):
            _say(
                "warning: no PatientID given; Orthanc files every such document under one "
                "patient; add --tag PatientID=..."
            )
        per_file = batch_tags(
            tags,
            len(sources),
            same_series=same_series,
            reference=reference,
            uid_seed=batch_seed(sources, tags) if same_series else None,
        )
        options = UploadOptions(
            method=cast("Method", method),
            tags=tags,
            title=title,
            conversion_type="SD" if conversion_type == "SD" else "WSD",
            reference=reference,
            now=dt.datetime.now(),
        )
        failures: list[err.Pdf2DcmError] = []
        stored: list[str] = []
        total = sum(_file_size(name) for name in sources)
        with _progress(not no_progress, total or None, len(sources)) as progress:
            outcomes = upload_many(
                client,
                [_stdin() if source == "-" else source for source in sources],
                options,
                per_file,
                concurrency=concurrency,
                fail_fast=fail_fast,
                progress=progress,
            )
            for outcome in outcomes:
                if outcome.error is not None:
                    if len(sources) > 1:
                        _say(f"error: {outcome.error}")
                    failures.append(outcome.error)
                    continue
                result = outcome.result
                if result is None:
                    continue
                if result.id is not None:
                    stored.append(result.id)
                for warning in result.warnings:
                    _say(f"warning: {warning}")
                if as_json:
                    _print_json(result.as_json())
                else:
                    where = result.id or result.sop_instance_uid
                    click.echo(
                        f"{result.input} -> {where} ({result.status})  {result.url or ''}".rstrip()
                    )
        job_error = None
        if stored and (send_to_modality is not None or send_to_peer is not None):
            job_error = _forward(
                client,
                stored,
                send_to_modality,
                send_to_peer,
                wait=wait,
                wait_timeout=wait_timeout,
                as_json=as_json,
                show_progress=not no_progress,
            )
    if failures:
        first = next((f for f in failures if not isinstance(f, err.NotAttemptedError)), failures[0])
        if len(sources) == 1:
            raise first
        _say(f"{len(failures)} of {len(sources)} files failed")
        click.get_current_context().exit(exit_status_for(first))
    if job_error is not None:
        click.get_current_context().exit(exit_status_for(job_error))


def _forward(
    client: Any,
    instance_ids: list[str],
    modality: str | None,
    peer: str | None,
    *,
    wait: bool,
    wait_timeout: float,
    as_json: bool,
    show_progress: bool,
) -> err.Pdf2DcmError | None:
    """Submit the store job and report it; with ``wait``, follow it and return its error."""
    from .jobs import submit_store

    if modality is not None:
        job_id = submit_store(client, "modality", modality, sorted(set(instance_ids)))
        target = f"modality {modality}"
    else:
        job_id = submit_store(client, "peer", str(peer), sorted(set(instance_ids)))
        target = f"peer {peer}"
    record: dict[str, Any] = {"Job": job_id, "Target": target}
    error = None
    if wait:
        [outcome] = _wait_with_display(client, [job_id], wait_timeout, 2.0, False, show_progress)
        if outcome.status is not None:
            record["State"] = outcome.status.state.value
        error = outcome.error
    if as_json:
        _print_json(record)
    else:
        state = f": {record['State']}" if "State" in record else " submitted"
        count = len(set(instance_ids))
        plural = "" if count == 1 else "s"
        click.echo(f"job {job_id} sending {count} instance{plural} to {target}{state}")
    if error is not None:
        _say(f"error: {error}")
    return error


def _is_dicom(name: str) -> bool:
    try:
        with open(name, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


# --- fetch -----------------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  pdf2dcm fetch 1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b -o report.pdf
  pdf2dcm fetch 1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b -o - | sha256sum
  pdf2dcm fetch --study 3e4024bc-a395a1e3-54254769-da9a9d72-b00f8968 -d reports/

\b
The PDF comes back byte for byte as stored (Orthanc's own /pdf route can drop its last
byte); file names under -d are made safe from tag values and never leave the directory."""
)
@click.argument("instance_id", required=False, metavar="[INSTANCE_ID]")
@_connection_options
@click.option("-o", "--output", metavar="FILE", help="Output PDF, or '-' for stdout.")
@click.option("--study", metavar="ORTHANC_ID", help="Fetch every PDF of this study.")
@click.option("--series", metavar="ORTHANC_ID", help="Fetch every PDF of this series.")
@click.option(
    "-d",
    "--outdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for --study/--series.",
)
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per PDF.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
def fetch(
    instance_id: str | None,
    url: str | None,
    username: str | None,
    password: str | None,
    token: str | None,
    ca_bundle: str | None,
    insecure: bool,
    timeout: float | None,
    output: str | None,
    study: str | None,
    series: str | None,
    outdir: Path | None,
    overwrite: bool,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Get PDFs back from Orthanc: one instance, or all of a study or series."""
    from .fetch import fetch_all, fetch_pdf

    chosen = [x for x in (instance_id, study, series) if x is not None]
    if len(chosen) != 1:
        raise click.UsageError("give one of INSTANCE_ID, --study or --series")
    if instance_id is not None and outdir is not None:
        raise click.UsageError("-d/--outdir goes with --study/--series; use -o for one instance")
    if instance_id is None and output is not None:
        raise click.UsageError("-o/--output takes one instance; use -d for --study/--series")
    client = _client(url, username, password, token, ca_bundle, insecure, timeout)
    with client, _progress(not no_progress, None) as progress:
        if instance_id is not None:
            target = output or f"{instance_id}.pdf"
            if target == "-":
                if as_json:
                    raise click.UsageError("--json prints to stdout, which already carries the PDF")
                _refuse_terminal(sys.stdout, "a PDF")
            result = fetch_pdf(
                client,
                instance_id,
                _stdout() if target == "-" else target,
                overwrite=overwrite,
                progress=progress,
            )
            results = [result]
        else:
            results = fetch_all(
                client,
                outdir or Path("."),
                study=study,
                series=series,
                overwrite=overwrite,
                progress=progress,
            )
            if not results:
                _say(
                    f"no PDF documents in {'study ' + study if study else 'series ' + str(series)}"
                )
    for result in results:
        if as_json:
            _print_json(result.as_json())
        elif result.output is not None:
            click.echo(f"{result.id} -> {result.output} ({_size_text(result.size)} PDF)")


# --- jobs ------------------------------------------------------------------------------------


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


def _job_line(status: Any) -> str:
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
@_connection_options_for("--request-timeout")
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
    url: str | None,
    username: str | None,
    password: str | None,
    token: str | None,
    ca_bundle: str | None,
    insecure: bool,
    timeout: float | None,
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
    client = _client(url, username, password, token, ca_bundle, insecure, timeout)
    with client:
        outcomes = _wait_with_display(
            client, job_ids, wait_timeout, interval, cancel_on_interrupt, not no_progress
        )
        for outcome in outcomes:
            if as_json and outcome.status is not None:
                _print_json(outcome.status.raw)
            if outcome.error is not None:
                _say(f"error: {outcome.error}")
            elif not as_json and outcome.status is not None:
                click.echo(_job_line(outcome.status))
        failed = [o.error for o in outcomes if o.error is not None]
        if failed:
            click.get_current_context().exit(exit_status_for(failed[0]))
        if download is not None:
            from .jobs import download_output

            if download == "-":
                _refuse_terminal(sys.stdout, "a download")
            size = download_output(
                client, job_ids[0], _stdout() if download == "-" else download, overwrite=overwrite
            )
            if download != "-" and not as_json:
                click.echo(f"{job_ids[0]} -> {download} ({_size_text(size)})")


def _wait_with_display(
    client: Any,
    job_ids: Sequence[str],
    wait_timeout: float,
    interval: float,
    cancel_on_interrupt: bool,
    show_progress: bool,
) -> list[Any]:
    from .jobs import JobStatus, job_action, wait_for_jobs

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
                    _say(_job_line(status))
                seen_states[status.id] = status.state.value

        try:
            return wait_for_jobs(
                client, job_ids, timeout=wait_timeout, interval=interval, on_status=on_status
            )
        except KeyboardInterrupt:
            if cancel_on_interrupt:
                for job_id in job_ids:
                    with contextlib.suppress(err.Pdf2DcmError):
                        job_action(client, job_id, "cancel")
                _say("interrupted; cancel requested for " + ", ".join(job_ids))
            else:
                _say("interrupted; the jobs go on in Orthanc: " + ", ".join(job_ids))
            raise click.exceptions.Exit(ExitStatus.INTERRUPTED) from None


@jobs.command(
    "list",
    epilog="""\b
Examples:
  pdf2dcm jobs list
  pdf2dcm jobs list --state Failure --json""",
)
@_connection_options
@click.option(
    "--state",
    type=click.Choice(["Pending", "Running", "Success", "Failure", "Paused", "Retry"]),
    help="Only jobs in this state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per job.")
def jobs_list(
    url: str | None,
    username: str | None,
    password: str | None,
    token: str | None,
    ca_bundle: str | None,
    insecure: bool,
    timeout: float | None,
    state: str | None,
    as_json: bool,
) -> None:
    """List the jobs Orthanc knows (running ones and its recent history)."""
    from .jobs import JobState, list_jobs

    with _client(url, username, password, token, ca_bundle, insecure, timeout) as client:
        found = list_jobs(client, JobState(state) if state else None)
    for status in found:
        if as_json:
            _print_json(status.raw)
        else:
            click.echo(_job_line(status))


@jobs.command(
    "show",
    epilog="""\b
Examples:
  pdf2dcm jobs show 32af28ce-d1f9-4655-b38e-3237a3cdcbaa --json""",
)
@click.argument("job_id")
@_connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the job's JSON.")
def jobs_show(
    job_id: str,
    url: str | None,
    username: str | None,
    password: str | None,
    token: str | None,
    ca_bundle: str | None,
    insecure: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Show one job's state, progress and error."""
    from .jobs import get_job

    with _client(url, username, password, token, ca_bundle, insecure, timeout) as client:
        status = get_job(client, job_id)
    if as_json:
        _print_json(status.raw)
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
    @_connection_options
    def command(
        job_id: str,
        url: str | None,
        username: str | None,
        password: str | None,
        token: str | None,
        ca_bundle: str | None,
        insecure: bool,
        timeout: float | None,
    ) -> None:
        from .jobs import job_action

        with _client(url, username, password, token, ca_bundle, insecure, timeout) as client:
            job_action(client, job_id, cast("Action", action))
        click.echo(f"job {job_id}: {action} requested")


_action_command("cancel", "Cancel a job (it ends as Failure, ErrorCode 37).")
_action_command("pause", "Pause a pending or running job.")
_action_command("resume", "Resume a paused job.")
_action_command("resubmit", "Run a failed job again.")
