"""Commands that talk to Orthanc: ``upload`` and ``fetch``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pdf2dcm import errors as err
from pdf2dcm.imports import load_pydicom

from . import app
from .app import SectionedCommand, cli, exit_status_for, info, say
from .batch import Listing, batch_inputs, per_file_options
from .common import (
    Batch,
    Connection,
    Destination,
    collect_tags,
    connection_options,
    current_profile,
    destination_options,
    file_size,
    load_reference,
    print_json,
    progress_display,
    refuse_terminal,
    result_line,
    size_text,
    stdin,
    stdout,
    tag_options,
)
from .dimse import (
    DicomChoice,
    TlsChoice,
    dicom_destination,
    dimse_upload_options,
    tls_options,
)
from .report import Reporter, failure_record

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pdf2dcm.client import OrthancClient
    from pdf2dcm.dimse_archive import DicomArchive
    from pdf2dcm.listing import DocumentInfo
    from pdf2dcm.lookup import Selector
    from pdf2dcm.progress import ProgressCallback
    from pdf2dcm.upload import Forward, PreparedBatch, Server, UploadResult


@cli.command(
    cls=SectionedCommand,
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
AlreadyStored; transient failures are retried without ever creating a duplicate.""",
)
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@connection_options
@destination_options(per_file=False)
@tag_options
@per_file_options
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV (a 'file' column, one column per keyword) or JSON Lines ({\"file\": ..., "
    '"tags": {...}}): one set of tags per file, files relative to the manifest\'s folder.',
)
@click.option("--recursive", is_flag=True, help="Look for PDFs in subdirectories too.")
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
    default=4,
    show_default=True,
    help="Upload this many files at once (results still print in input order).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first file that fails.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check everything, find the target, plan the UIDs, and print every attribute that "
    "would be written (a table on a terminal, JSON in the tags-file shape otherwise); "
    "nothing is sent.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Turn warnings (no PatientID, a PDF that may be truncated, ...) into errors: every "
    "input is checked first, and if any is refused nothing is sent (exit 2); for CI.",
)
@dimse_upload_options
@tls_options
def upload(
    inputs: tuple[str, ...],
    connection: Connection,
    destination: Destination,
    tag_assignments: tuple[str, ...],
    tags_file: Path | None,
    title: str | None,
    conversion_type: str,
    study_from: Path | None,
    series_from: tuple[Path, ...],
    same_series: bool,
    listing: Listing,
    manifest: Path | None,
    recursive: bool,
    wait: bool,
    wait_timeout: float,
    concurrency: int,
    as_json: bool,
    fail_fast: bool,
    no_progress: bool,
    dry_run: bool,
    strict: bool,
    dicom: DicomChoice,
    tls: TlsChoice,
) -> None:
    """Send PDFs (encoded on the way) or DICOM files to Orthanc or a DICOM node; '-' reads
    stdin."""
    import contextlib
    import datetime as dt

    from pdf2dcm.client import OrthancClient
    from pdf2dcm.upload import UploadOptions, check_forward_target, collect_inputs, prepare_batch

    sources, own_tags = batch_inputs(
        inputs,
        listing,
        manifest=manifest,
        expand=lambda names, notes: collect_inputs(names, recursive=recursive, notes=notes),
    )
    if title is not None and len(sources) > 1:
        raise click.UsageError("--title applies to one input; give it per file")
    target = destination.target(has_reference_file=study_from is not None or bool(series_from))
    forward = destination.forward()
    if wait and forward is None:
        raise click.UsageError("--wait goes with --send-to-modality or --send-to-peer")
    profile = current_profile()
    method = destination.chosen_method(profile)
    archive, target = dicom_destination(dicom, tls, method, forward is not None, target)
    options = UploadOptions(
        method=method,
        tags=collect_tags(tag_assignments, tags_file, profile.tags if profile else None),
        title=title,
        conversion_type="SD" if conversion_type == "SD" else "WSD",
        reference=load_reference(study_from, series_from),
        now=dt.datetime.now(),
        dry_run=dry_run,
        strict=strict,
    )
    report = Reporter(as_json, Batch(len(sources)), several=len(sources) > 1)
    report.warnings(options.reference.warnings if options.reference is not None else ())
    client = archive or connection.open(
        pool_size=concurrency,
        dicomweb_url=destination.dicomweb_url,
        stdin_in_use="-" in sources or listing.files_from == "-",
    )
    with client if isinstance(client, OrthancClient) else contextlib.nullcontext():
        if forward is not None and isinstance(client, OrthancClient):
            check_forward_target(client, *forward)
        if dicom.commit and not dry_run and not isinstance(client, OrthancClient):
            # Before anything is stored: a node that cannot commit is said at once.
            load_pydicom()
            from pdf2dcm import dimse

            dimse.check_commitment(
                client.node, calling_aet=client.calling_aet, timeout=client.timeout
            )
        prepared = prepare_batch(
            client,
            sources,
            own_tags,
            options,
            target=target,
            same_series=same_series,
            warn=lambda text: report.warnings([text]),
        )
        stored = _send(
            client,
            sources,
            prepared,
            report,
            concurrency=concurrency,
            fail_fast=fail_fast,
            show_progress=not no_progress,
        )
        if not isinstance(client, OrthancClient) and client.unverified is not None:
            report.warnings([client.unverified])
        report.raise_single()
        # The uploads' summary comes before the forwarding job's report.
        info(report.batch.summary())
        job_error = None
        if stored and dicom.commit and not isinstance(client, OrthancClient) and not dry_run:
            job_error = _commit(client, stored, dicom.listen_port, as_json=as_json)
        ids = [result.id for result in stored if result.id is not None]
        if ids and forward is not None and not dry_run and isinstance(client, OrthancClient):
            job_error = _forward(
                client,
                ids,
                forward,
                wait_timeout=wait_timeout if wait else None,
                as_json=as_json,
                show_progress=not no_progress,
            )
    report.end(summary=False)
    if job_error is not None:
        click.get_current_context().exit(exit_status_for(job_error))


def _send(
    client: Server,
    sources: Sequence[str],
    prepared: PreparedBatch,
    report: Reporter,
    *,
    concurrency: int,
    fail_fast: bool,
    show_progress: bool,
) -> list[UploadResult]:
    """Upload the batch, reporting each file in input order; the stored ones."""
    from pdf2dcm import records
    from pdf2dcm.upload import upload_many

    stored: list[UploadResult] = []
    total = sum(file_size(name) for name in sources)
    with progress_display(show_progress, total or None, len(sources)) as progress:
        outcomes = upload_many(
            client,
            prepared,
            [stdin() if source == "-" else source for source in sources],
            concurrency=concurrency,
            fail_fast=fail_fast,
            progress=progress,
        )
        for source, outcome in zip(sources, outcomes, strict=False):
            result = outcome.result
            if outcome.error is not None or result is None:
                if outcome.error is not None:
                    report.failure(source, outcome.error)
                continue
            report.warnings(result.warnings)
            if result.attributes is not None:
                report.plan(source, result.attributes)
                continue
            stored.append(result)
            where = result.id or result.sop_instance_uid
            line = f"{result.input} -> {where} ({result.status})  {result.url or ''}"
            report.result(
                _OUTCOME_NAMES.get(result.status, result.status),
                records.uploaded(source, result),
                line.rstrip(),
            )
    return stored


_OUTCOME_NAMES = {
    "Success": "stored",
    "Warning": "stored with a warning",
    "AlreadyStored": "already stored",
    "DryRun": "planned",
}


def _commit(
    archive: DicomArchive, stored: list[UploadResult], listen_port: int | None, *, as_json: bool
) -> err.Pdf2DcmError | None:
    """Storage commitment of the stored documents, reported; its error, if any."""
    from pdf2dcm import records

    load_pydicom()
    from pdf2dcm.dimse import CommitResult
    from pdf2dcm.upload import commit_stored

    try:
        committed = commit_stored(archive, stored, listen_port=listen_port)
    except err.CommitmentFailedError as error:
        if as_json and isinstance(error.result, CommitResult):
            print_json(records.committed(archive.name, error.result))
        say(f"error: {error}")
        return error
    except err.Pdf2DcmError as error:
        say(f"error: {error}")
        return error
    if as_json:
        print_json(records.committed(archive.name, committed))
    else:
        count = len(committed.committed)
        plural = "" if count == 1 else "s"
        result_line(
            f"{archive.name} committed to {count} document{plural} "
            f"(transaction {committed.transaction_uid})"
        )
    return None


def _forward(
    client: OrthancClient,
    instance_ids: list[str],
    forward: Forward,
    *,
    wait_timeout: float | None,
    as_json: bool,
    show_progress: bool,
) -> err.Pdf2DcmError | None:
    """Submit the store job and report it; with a wait timeout, follow it; its error."""
    from pdf2dcm import records
    from pdf2dcm.jobs import submit_store

    kind, name = forward
    instances = sorted(set(instance_ids))
    job_id = submit_store(client, kind, name, instances)
    target = f"{kind} {name}"
    state: str | None = None
    error = None
    if wait_timeout is not None:
        from .jobs import wait_with_display  # the jobs command's display, for --wait only

        [outcome] = wait_with_display(client, [job_id], wait_timeout, 2.0, False, show_progress)
        if outcome.status is not None:
            state = outcome.status.state.value
        error = outcome.error
    if as_json:
        print_json(
            records.job({"ID": job_id}, Target=target, Instances=len(instances), State=state)
        )
    else:
        shown = f": {state}" if state is not None else " submitted"
        plural = "" if len(instances) == 1 else "s"
        result_line(f"job {job_id} sending {len(instances)} instance{plural} to {target}{shown}")
    if error is not None:
        say(f"error: {error}")
    return error


# --- fetch -----------------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  pdf2dcm fetch 1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b -o report.pdf
  pdf2dcm fetch 1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b -o - | sha256sum
  pdf2dcm fetch --study AccessionNumber=A123 -d reports/
  pdf2dcm fetch --patient PatientID=4711 -d 4711/ --skip-existing

\b
The PDF comes back byte for byte as stored (Orthanc's own /pdf route can drop its last
byte); file names under -d are made safe from tag values and never leave the directory.
Each file is reported as written, skipped or failed; one failure does not stop the others."""
)
@click.argument("instance_ids", nargs=-1, metavar="[INSTANCE_ID...]")
@connection_options
@click.option("-o", "--output", metavar="FILE", help="Output PDF for one instance; '-' for stdout.")
@click.option(
    "--study",
    "study_terms",
    multiple=True,
    metavar="KEY=VALUE",
    help="Every PDF of the one study matching (AccessionNumber=..., or an Orthanc ID).",
)
@click.option(
    "--patient",
    "patient_terms",
    multiple=True,
    metavar="KEY=VALUE",
    help="Every PDF of the one patient matching (PatientID=..., or an Orthanc ID).",
)
@click.option(
    "--series",
    "series_terms",
    multiple=True,
    metavar="KEY=VALUE",
    help="Every PDF of the one series matching (SeriesInstanceUID=..., or an Orthanc ID).",
)
@click.option(
    "-d",
    "--outdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for several PDFs (created if missing).",
)
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
@click.option(
    "--skip-existing", is_flag=True, help="With -d: leave files already there (incremental)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per PDF.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
def fetch(
    instance_ids: tuple[str, ...],
    connection: Connection,
    output: str | None,
    study_terms: tuple[str, ...],
    patient_terms: tuple[str, ...],
    series_terms: tuple[str, ...],
    outdir: Path | None,
    overwrite: bool,
    skip_existing: bool,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Get PDFs back from Orthanc: instances, or all of a patient, study or series."""
    from pdf2dcm.lookup import parse_selector

    given = [bool(instance_ids), bool(study_terms), bool(patient_terms), bool(series_terms)]
    if sum(given) != 1:
        raise click.UsageError("give INSTANCE_ID... or one of --study, --patient, --series")
    single = len(instance_ids) == 1 and outdir is None
    if not single and output is not None:
        raise click.UsageError("-o/--output takes one instance; use -d for several PDFs")
    if single and skip_existing:
        raise click.UsageError("--skip-existing goes with -d")
    if overwrite and skip_existing:
        raise click.UsageError("give --overwrite or --skip-existing, not both")
    selectors = [
        parse_selector(level, terms)  # type: ignore[arg-type]
        for level, terms in (
            ("study", study_terms),
            ("patient", patient_terms),
            ("series", series_terms),
        )
        if terms
    ]
    with connection.open() as client, progress_display(not no_progress, None) as progress:
        if single:
            _fetch_one(client, instance_ids[0], output, overwrite, as_json, progress)
            return
        _fetch_many(
            client,
            outdir or Path("."),
            instance_ids,
            selectors[0] if selectors else None,
            overwrite=overwrite,
            skip_existing=skip_existing,
            as_json=as_json,
            progress=progress,
        )


def _fetch_one(
    client: OrthancClient,
    instance_id: str,
    output: str | None,
    overwrite: bool,
    as_json: bool,
    progress: ProgressCallback | None,
) -> None:
    from pdf2dcm.fetch import fetch_pdf

    target = output or f"{instance_id}.pdf"
    if target == "-":
        if as_json:
            raise click.UsageError("--json prints to stdout, which already carries the PDF")
        refuse_terminal(sys.stdout, "a PDF")
    with failure_record(as_json, "ID", instance_id):
        result = fetch_pdf(
            client,
            instance_id,
            stdout() if target == "-" else target,
            overwrite=overwrite,
            progress=progress,
        )
    if as_json:
        from pdf2dcm import records

        print_json(records.fetched(result.id, result.output, result))
    elif result.output is not None:
        result_line(f"{result.id} -> {result.output} ({size_text(result.size)} PDF)")


def _fetch_many(
    client: OrthancClient,
    outdir: Path,
    instance_ids: Sequence[str],
    selector: Selector | None,
    *,
    overwrite: bool,
    skip_existing: bool,
    as_json: bool,
    progress: ProgressCallback | None,
) -> None:
    """Every PDF selected, each reported as written, skipped or failed; then the summary."""
    from pdf2dcm import records
    from pdf2dcm.fetch import fetch_each
    from pdf2dcm.lookup import level_of, select_one

    where: dict[str, str] = {}
    if selector is not None:
        resource = select_one(client, selector)
        where[level_of(resource)] = resource.id
    report = Reporter(as_json, Batch(0), key="ID")
    for outcome in fetch_each(
        client,
        outdir,
        instance_ids=instance_ids,
        overwrite=overwrite,
        skip_existing=skip_existing,
        progress=progress,
        **where,
    ):
        report.batch.count += 1
        if outcome.error is not None:
            report.failure(outcome.instance.id, outcome.error)
            continue
        result = outcome.result
        if outcome.skipped or result is None:
            line = f"{outcome.instance.id} -> {outcome.target} (exists, skipped)"
            record = records.fetched(outcome.instance.id, outcome.target, None)
            report.result("skipped", record, line)
        else:
            line = f"{result.id} -> {result.output} ({size_text(result.size)} PDF)"
            report.result("written", records.fetched(result.id, result.output, result), line)
    if report.batch.count == 0:
        info(f"no PDF documents in {selector.level if selector else 'the instances'} {selector}")
    report.end()


# --- ls --------------------------------------------------------------------------------------


def _date_option(value: str | None, flag: str) -> str | None:
    """YYYYMMDD or YYYY-MM-DD, checked as a calendar date."""
    if value is None:
        return None
    import datetime as dt

    text = value.replace("-", "")
    try:
        dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise click.UsageError(f"{flag} {value!r} is not a date YYYYMMDD or YYYY-MM-DD") from None
    return text


TERMINAL_LIMIT = 20
"""Documents a terminal is shown unless --limit says otherwise."""
_COLUMN_GAP = "  "
_COMFORTABLE = 24
"""Cells a name or title keeps before the instance ID may take a terminal's room."""
_SAMPLE_ID = "00000000-00000000-00000000-00000000-00000000"


@cli.command(
    "ls",
    epilog="""\b
Examples:
  pdf2dcm ls --patient PatientID=4711
  pdf2dcm ls --study AccessionNumber=A123 --json | jq -r .ID
  pdf2dcm ls --since 2026-01-01 --title consent --limit 50 -l

\b
Only Encapsulated PDF documents are listed, in any series and whatever their Modality,
newest study first; reading stops at --limit. On a terminal: a table of the newest 20 that
fits its width (-l adds AccessionNumber and the instance ID); otherwise (or with --json)
one JSON object per document, all of them unless --limit is given.""",
)
@connection_options
@click.option(
    "--patient", "patient_terms", multiple=True, metavar="KEY=VALUE", help="Only this patient."
)
@click.option("--study", "study_terms", multiple=True, metavar="KEY=VALUE", help="Only this study.")
@click.option("--since", metavar="DATE", help="StudyDate on or after DATE (YYYYMMDD).")
@click.option("--until", metavar="DATE", help="StudyDate on or before DATE (YYYYMMDD).")
@click.option("--title", metavar="TEXT", help="DocumentTitle contains TEXT (any case).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help=f"At most N documents (on a terminal {TERMINAL_LIMIT} unless given).",
)
@click.option(
    "-l", "--wide", is_flag=True, help="Add AccessionNumber and the instance ID to the table."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per document.")
def ls(
    connection: Connection,
    patient_terms: tuple[str, ...],
    study_terms: tuple[str, ...],
    since: str | None,
    until: str | None,
    title: str | None,
    limit: int | None,
    wide: bool,
    as_json: bool,
) -> None:
    """List the PDF documents on the server, newest first."""
    import itertools

    from pdf2dcm import records
    from pdf2dcm.listing import list_documents
    from pdf2dcm.lookup import parse_selector

    from .app import output

    patient = parse_selector("patient", patient_terms) if patient_terms else None
    study = parse_selector("study", study_terms) if study_terms else None
    table = not as_json and sys.stdout.isatty()
    with connection.open() as client:
        listing = list_documents(
            client,
            patient=patient,
            study=study,
            since=_date_option(since, "--since"),
            until=_date_option(until, "--until"),
            title=title,
        )
        documents = listing.documents()
        try:
            if not table:
                for document in itertools.islice(documents, limit):
                    print_json(records.document(document))
                    if output.report_cut:
                        break
                return
            shown_limit = limit or TERMINAL_LIMIT
            # One more than shown tells whether there are more.
            rows = list(itertools.islice(documents, shown_limit + 1))
        finally:
            documents.close()
    if rows:
        for line in document_table(rows[:shown_limit], _terminal_columns(), wide=wide):
            result_line(line)
    info(_listing_summary(len(rows), shown_limit, listing.found, exact=title is None))


def _terminal_columns() -> int:
    import shutil

    return shutil.get_terminal_size().columns


def _listing_summary(taken: int, limit: int, found: int, *, exact: bool) -> str:
    """``N documents``, or ``N of M+ documents`` when the listing stopped at the limit."""
    if taken <= limit:
        return f"{taken} document{'' if taken == 1 else 's'}"
    at_least = max(found, taken) if exact else taken
    return f"{limit} of {at_least}+ documents; --limit N to see more"


def document_table(documents: Sequence[DocumentInfo], columns: int, *, wide: bool) -> list[str]:
    """The table's lines, each at most ``columns`` cells wide where that is possible.

    PatientID, PatientName, StudyDate, DocumentTitle and the size are always there; with
    ``wide``, or when names and titles keep 24 cells beside it, the instance ID too. Values too
    long are cut in the middle; control characters are shown escaped.
    """
    header = ["PatientID", "PatientName", "StudyDate", "DocumentTitle", "Size"]
    cells = [
        [
            _printable(d.patient_id),
            _printable(d.patient_name),
            _printable(d.study_date),
            _printable(d.document_title),
            size_text(d.size) if d.size is not None else "",
        ]
        for d in documents
    ]
    if wide:
        header.insert(3, "AccessionNumber")
        for row, document in zip(cells, documents, strict=True):
            row.insert(3, _printable(document.accession_number))
    # Names and titles give way, never below their heading.
    flexible = {
        i: len(name)
        for i, name in enumerate(header)
        if name in {"PatientID", "PatientName", "AccessionNumber", "DocumentTitle"}
    }
    natural = [max(cell_width(row[i]) for row in [header, *cells]) for i in range(len(header))]
    comfortable = [min(w, _COMFORTABLE) if i in flexible else w for i, w in enumerate(natural)]
    if wide or _fits([*comfortable, len(_SAMPLE_ID)], columns):
        header.append("Instance")
        for row, document in zip(cells, documents, strict=True):
            row.append(document.id)
        natural = [*natural, max((len(d.id) for d in documents), default=len("Instance"))]
    widths = _fitted(natural, flexible, columns)
    right = {header.index("Size")}
    return [_line(row, widths, right).rstrip() for row in [header, *cells]]


def _fits(widths: Sequence[int], columns: int) -> bool:
    return sum(widths) + len(_COLUMN_GAP) * (len(widths) - 1) <= columns


def _fitted(natural: list[int], flexible: dict[int, int], columns: int) -> list[int]:
    """Column widths: the natural ones, the widest flexible column narrowed one cell at a
    time (never below its minimum) until the table fits."""
    widths = list(natural)
    while not _fits(widths, columns):
        narrowable = [i for i, least in flexible.items() if widths[i] > least]
        if not narrowable:
            break
        widest = max(narrowable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _line(row: Sequence[str], widths: Sequence[int], right: set[int]) -> str:
    cells = []
    for index, (text, width) in enumerate(zip(row, widths, strict=True)):
        cut = cut_middle(text, width)
        pad = " " * (width - cell_width(cut))
        cells.append(pad + cut if index in right else cut + pad)
    return _COLUMN_GAP.join(cells)


def cell_width(text: str) -> int:
    """Terminal cells ``text`` takes (East Asian wide characters take two)."""
    from rich.cells import cell_len

    return cell_len(text)


def cut_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells: its beginning and end around ``…`` if too long."""
    if cell_width(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head_room = (width - 1 + 1) // 2
    tail_room = width - 1 - head_room
    head = ""
    for char in text:
        if cell_width(head + char) > head_room:
            break
        head += char
    tail = ""
    for char in reversed(text):
        if cell_width(char + tail) > tail_room:
            break
        tail = char + tail
    return f"{head}…{tail}"


def _printable(text: str) -> str:
    """Text from the archive as the terminal shows it: control, bidirectional and other
    unprintable characters escaped (the cut to a column's width counts the escapes)."""
    text = app.terminal_safe(text)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
