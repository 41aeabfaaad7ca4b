"""Encode use case: a batch of PDFs into Encapsulated PDF files, file by file.

The batch is planned by the one planning stage (:mod:`pdf2dcm.plan`: shared UIDs, each
file's own tags, numbers, the patient agreement of a shared study); this module carries the
plans out, yielding one outcome per file in input order, so that a caller reports each as it
comes and a bad file does not stop the others.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from .dicom import EncodeResult
from .errors import InputError, NotAttemptedError, Pdf2DcmError
from .files import (
    PathLike,
    atomic_output,
    check_output,
    make_directory,
    open_input,
    replayable_inputs,
    stops_batch,
)
from .identity import ReferenceAttributes
from .plan import STRICT_NOT_SENT, DocumentPlan, Planner, PlanOptions
from .progress import ProgressCallback
from .tags import ValidatedTags

_STOPPED = "not attempted: the batch stopped at an earlier error"
STDIO = "-"
"""The name of stdin as an input and of stdout as an output."""


@dataclass(frozen=True)
class EncodeOptions:
    """How every file of a batch is encoded."""

    tags: ValidatedTags = field(default_factory=dict)
    title: str | None = None
    conversion_type: Literal["WSD", "SD"] = "WSD"
    reference: ReferenceAttributes | None = None
    same_series: bool = False
    overwrite: bool = False
    checksum: bool = True
    """Compute each PDF's SHA-256; without it the kernel copies the PDF (faster)."""
    strict: bool = False
    fail_fast: bool = False
    """Stop at the first file that fails; the rest are reported as not attempted."""
    now: dt.datetime = field(default_factory=dt.datetime.now)


@dataclass(frozen=True)
class EncodeOutcome:
    """One file of the batch: written (``result``), planned (``attributes``) or failed."""

    source: str
    target: str
    result: EncodeResult | None = None
    attributes: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    error: Pdf2DcmError | None = None


def planner_for(options: EncodeOptions) -> Planner:
    """The planner of an encode batch: no archive, a new object (random UIDs) per run."""
    return Planner(
        PlanOptions(
            tags=options.tags,
            title=options.title,
            conversion_type=options.conversion_type,
            same_series=options.same_series,
            strict=options.strict,
            now=options.now,
            derive_uids=False,
        )
    )


def plan_batch(
    sources: Sequence[str], own_tags: Sequence[ValidatedTags], options: EncodeOptions
) -> tuple[Planner, list[DocumentPlan]]:
    """Each file's plan: the batch's shared UIDs and numbers under the file's own tags.

    Refuses (before anything is written) files that would split one study over two patients.
    """
    planner = planner_for(options)
    return planner, planner.plan(sources, own_tags, options.reference)


def encode_many(
    work: Sequence[tuple[DocumentPlan, str]],
    planner: Planner,
    options: EncodeOptions,
    *,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    outdir: PathLike | None = None,
) -> Iterator[EncodeOutcome]:
    """Encode (or, with ``dry_run``, plan) each ``(plan, target)`` in order.

    ``-`` as a source reads ``stdin``, as a target writes ``stdout``. A full or read-only disk
    stops the batch, since every later file would fail the same way; so does the first
    failure with ``options.fail_fast``. A dry run reports each refusal and goes on, as a
    real run would, so that one run lists every file that would fail. With ``strict``
    every file is planned first: if any is refused (a warning included), nothing is written
    (not even ``outdir``, made before the first file otherwise).
    """
    if not options.strict or dry_run:
        make_directory_for(outdir, dry_run)
        yield from _carry_out(work, planner, options, _streams(stdin), stdout, dry_run, progress)
        return
    with replayable_inputs([plan.source for plan, _ in work], stdin) as replay:
        checked = list(_carry_out(work, planner, options, replay, None, True, None))
        if any(outcome.error is not None for outcome in checked):
            for outcome in checked:
                yield (
                    outcome
                    if outcome.error is not None
                    else EncodeOutcome(
                        outcome.source,
                        outcome.target,
                        error=NotAttemptedError(f"{outcome.source}: {STRICT_NOT_SENT}"),
                    )
                )
            return
        make_directory_for(outdir, dry_run)
        # Whatever the check could not foresee (a full disk) ends the batch at once.
        strict_run = dataclasses.replace(options, fail_fast=True)
        yield from _carry_out(work, planner, strict_run, replay, stdout, False, progress)


def make_directory_for(outdir: PathLike | None, dry_run: bool) -> None:
    """The output directory, made only once something will be written into it."""
    if outdir is not None and not dry_run:
        make_directory(outdir)


def _streams(stdin: BinaryIO | None) -> Callable[[str], str | BinaryIO]:
    def named(name: str) -> str | BinaryIO:
        return _stream(name, stdin, "stdin")

    return named


def _carry_out(
    work: Sequence[tuple[DocumentPlan, str]],
    planner: Planner,
    options: EncodeOptions,
    inputs: Callable[[str], str | BinaryIO],
    stdout: BinaryIO | None,
    dry_run: bool,
    progress: ProgressCallback | None,
) -> Iterator[EncodeOutcome]:
    stopped = False
    for plan, target in work:
        source = plan.source
        if stopped:
            yield EncodeOutcome(source, target, error=NotAttemptedError(f"{source}: {_STOPPED}"))
            continue
        try:
            if dry_run:
                if options.strict and target != STDIO:
                    check_output(target, overwrite=options.overwrite)
                attributes, warnings = _plan_one(plan, planner, inputs)
                yield EncodeOutcome(source, target, attributes=attributes, warnings=warnings)
                continue
            result = _encode_one(plan, target, planner, options, inputs, stdout, progress)
        except InputError as error:
            stopped = options.fail_fast or stops_batch(error)
            yield EncodeOutcome(source, target, error=error)
            continue
        yield EncodeOutcome(source, target, result=result, warnings=result.warnings)


def _plan_one(
    plan: DocumentPlan, planner: Planner, inputs: Callable[[str], str | BinaryIO]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    with (
        open_input(inputs(plan.source), name=plan.name) as (handle, _size),
        planner.open(plan, handle) as document,
    ):
        return document.attributes, document.warnings


def _encode_one(
    plan: DocumentPlan,
    target: str,
    planner: Planner,
    options: EncodeOptions,
    inputs: Callable[[str], str | BinaryIO],
    stdout: BinaryIO | None,
    progress: ProgressCallback | None,
) -> EncodeResult:
    source = plan.source
    if target != STDIO and os.path.abspath(target) == os.path.abspath(source):
        # A DICOM file given to encode (a re-run over a folder of outputs).
        raise InputError(f"{source} would be overwritten by its own output; use -o")
    with (
        open_input(inputs(source), name=plan.name) as (handle, _size),
        planner.open(plan, handle) as document,
        atomic_output(_stream(target, stdout, "stdout"), overwrite=options.overwrite) as out,
    ):
        document.write_to(out, progress, checksum=options.checksum)
    return document.result(None if target == STDIO else target)


def _stream(name: str, stream: BinaryIO | None, what: str) -> str | BinaryIO:
    if name != STDIO:
        return name
    if stream is None:
        raise ValueError(f"'-' names {what}, and no {what} stream was given")
    return stream
