"""Commands that need no server: ``encode`` and ``extract``."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pdf2dcm import errors as err

from .app import SectionedCommand, cli
from .batch import Listing, batch_inputs, per_file_options
from .common import (
    Batch,
    collect_tags,
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
from .report import Reporter, failure_record

if TYPE_CHECKING:
    from pdf2dcm.encode import EncodeOptions
    from pdf2dcm.plan import DocumentPlan, Planner


@cli.command(
    cls=SectionedCommand,
    epilog="""\b
Examples:
  pdf2dcm encode report.pdf --tag PatientName=Doe^Jane --tag PatientID=123
  pdf2dcm encode *.pdf -d out/ --same-series --json
  pdf2dcm encode scan.pdf --conversion-type SD --series-from existing.dcm -o scan.dcm
  curl -s https://host/report.pdf | pdf2dcm encode - -o report.dcm

\b
Dates and times not given (StudyDate/Time, ContentDate/Time, InstanceCreationDate/Time,
AcquisitionDateTime) are the local time of this machine when the command starts.
Text with characters outside ASCII is written in UTF-8 (SpecificCharacterSet ISO_IR 192).""",
)
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
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
@tag_options
@per_file_options
@click.option("--recursive", is_flag=True, help="With a directory: its subdirectories' PDFs too.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file on stdout.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first file that fails.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@click.option(
    "--strict",
    is_flag=True,
    help="Turn warnings (a PDF that may be truncated, ...) into errors: every input is "
    "checked first, and if any is refused nothing is written (exit 2); for CI.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check everything and print every attribute that would be written (a table on a "
    "terminal, JSON in the tags-file shape otherwise); nothing is written.",
)
def encode(
    inputs: tuple[str, ...],
    output: str | None,
    outdir: Path | None,
    tag_assignments: tuple[str, ...],
    tags_file: Path | None,
    title: str | None,
    conversion_type: str,
    study_from: Path | None,
    series_from: tuple[Path, ...],
    same_series: bool,
    listing: Listing,
    recursive: bool,
    overwrite: bool,
    as_json: bool,
    fail_fast: bool,
    no_progress: bool,
    strict: bool,
    dry_run: bool,
) -> None:
    """Wrap PDF files (INPUT, or '-' for stdin) as DICOM Encapsulated PDF objects."""
    from pdf2dcm.encode import EncodeOptions, plan_batch
    from pdf2dcm.files import expand_directories

    sources, own_tags = batch_inputs(
        inputs,
        listing,
        expand=lambda names, notes: expand_directories(
            names, {".pdf"}, recursive=recursive, notes=notes
        ),
    )
    targets = _encode_targets(sources, output, outdir)
    if any(_is_stdout(target) for target in targets):
        if as_json:
            raise click.UsageError("--json prints to stdout, which already carries the DICOM file")
        refuse_terminal(sys.stdout, "a DICOM file")
    if title is not None and len(sources) > 1:
        raise click.UsageError("--title applies to one input; give it per file")
    reference = load_reference(study_from, series_from)
    report = Reporter(as_json, Batch(len(sources)), several=len(sources) > 1)
    report.warnings(reference.warnings if reference is not None else ())
    options = EncodeOptions(
        tags=collect_tags(tag_assignments, tags_file),
        title=title,
        conversion_type="SD" if conversion_type == "SD" else "WSD",
        reference=reference,
        same_series=same_series,
        overwrite=overwrite,
        # Only --json shows the checksum; without it the kernel copies the PDF.
        checksum=as_json,
        strict=strict,
        fail_fast=fail_fast,
    )
    planner, plans = plan_batch(sources, own_tags, options)
    work = list(zip(plans, targets, strict=True))
    _run(work, planner, options, report, dry_run, no_progress, outdir)
    report.end(summary=len(sources) > 1)


def _run(
    work: Sequence[tuple[DocumentPlan, str]],
    planner: Planner,
    options: EncodeOptions,
    report: Reporter,
    dry_run: bool,
    no_progress: bool,
    outdir: Path | None,
) -> None:
    """Encode (or plan) file by file, reporting each as it comes."""
    from pdf2dcm import records
    from pdf2dcm.encode import encode_many

    total = 0 if dry_run else sum(file_size(plan.source) for plan, _ in work)
    shown = not no_progress and not dry_run
    with progress_display(shown, total or None, len(work)) as progress:
        for outcome in encode_many(
            work,
            planner,
            options,
            # Asked for only when named: a closed stdout is an error only when it is used.
            stdin=stdin() if any(plan.source == "-" for plan, _ in work) else None,
            stdout=stdout() if any(target == "-" for _, target in work) else None,
            dry_run=dry_run,
            progress=progress,
            outdir=outdir,
        ):
            report.warnings(outcome.warnings)
            if outcome.error is not None:
                report.failure(outcome.source, outcome.error)
            elif outcome.attributes is not None:
                report.plan(outcome.source, outcome.attributes)
            elif outcome.result is not None:
                result, target = outcome.result, outcome.target
                line = f"{outcome.source} -> {target} ({size_text(result.pdf_size)} PDF)"
                record = records.encoded(outcome.source, result)
                report.result("written", record, None if _is_stdout(target) else line)
            if outcome.error is not None and not report.several:
                report.raise_single()


def _is_stdout(target: str) -> bool:
    """Whether an output is stdout, as '-' or under a name such as /dev/stdout.

    Then it carries the document, so no report line or JSON may be mixed into it.
    """
    if target == "-":
        return True
    try:
        ours = os.fstat(sys.stdout.fileno())
        theirs = os.stat(target)
    except (OSError, ValueError, err.Pdf2DcmError):
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


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
        if key == os.path.abspath(source):
            continue  # a DICOM file among the inputs: refused on its own turn, not here
        if key in seen:
            raise click.UsageError(
                f"{seen[key]} and {source} would both be written to {target}; "
                "encode them into different directories"
            )
        seen[key] = source
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
    from pdf2dcm.extract import extract_pdf

    if output is None:
        output = "-" if source == "-" else str(Path(source).with_suffix(".pdf"))
    if _is_stdout(output):
        if as_json:
            raise click.UsageError("--json prints to stdout, which already carries the PDF")
        refuse_terminal(sys.stdout, "a PDF")
    with (
        failure_record(as_json, "Input", source),
        progress_display(not no_progress, file_size(source) or None) as progress,
    ):
        if source != "-" and os.path.abspath(output) == os.path.abspath(source):
            raise err.InputError(f"{source} would be overwritten by its own output; use -o")
        result = extract_pdf(
            stdin() if source == "-" else source,
            stdout() if output == "-" else output,
            overwrite=overwrite,
            progress=progress,
            source_name="<stdin>" if source == "-" else source,
            checksum=as_json,
        )
    if as_json:
        from pdf2dcm import records

        print_json(records.extracted(source, result))
    elif not _is_stdout(output):
        result_line(f"{source} -> {output} ({size_text(result.size)} PDF)")
