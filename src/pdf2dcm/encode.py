"""Encode use case: a batch of PDFs into Encapsulated PDF files, file by file.

The single-file kernel is :func:`pdf2dcm.dicom.encode_pdf`; this module plans the batch
(shared UIDs, each file's own tags, the patient agreement of a shared study) and runs it,
yielding one outcome per file in input order, so that a caller reports each as it comes
and a bad file does not stop the others.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from .dicom import EncodeResult, ReferenceAttributes, encode_pdf, plan_pdf, refuse_truncated
from .errors import InputError, NotAttemptedError, Pdf2DcmError
from .files import stops_batch
from .identity import check_batch_identity
from .pertags import merge_tags
from .progress import ProgressCallback
from .tags import ValidatedTags
from .uids import batch_tags

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


def plan_tags(own_tags: Sequence[ValidatedTags], options: EncodeOptions) -> list[ValidatedTags]:
    """Each file's tags: the batch's shared UIDs and numbers under the file's own tags.

    Refuses (before anything is written) files that would split one study over two patients.
    """
    planned = batch_tags(
        options.tags,
        len(own_tags),
        same_series=options.same_series,
        reference=options.reference,
    )
    per_file = [merge_tags(p, own) for p, own in zip(planned, own_tags, strict=True)]
    check_batch_identity(per_file)
    return per_file


def check_batch(sources: Sequence[str], options: EncodeOptions, *, dry_run: bool) -> None:
    """What refuses a whole batch before its first file is written: with ``strict``, a PDF
    that may be truncated (a dry run reports it with its own file instead)."""
    if options.strict and not dry_run:
        refuse_truncated(sources)


def encode_many(
    work: Sequence[tuple[str, str, ValidatedTags]],
    options: EncodeOptions,
    *,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> Iterator[EncodeOutcome]:
    """Encode (or, with ``dry_run``, plan) each ``(source, target, tags)`` in order.

    ``-`` as a source reads ``stdin``, as a target writes ``stdout``. A full or read-only disk
    stops the batch, since every later file would fail the same way; so does the first
    failure with ``options.fail_fast``. A dry run reports each refusal and goes on, as a
    real run would, so that one run lists every file that would fail.
    """
    stopped = False
    for source, target, tags in work:
        if stopped:
            yield EncodeOutcome(source, target, error=NotAttemptedError(f"{source}: {_STOPPED}"))
            continue
        try:
            if dry_run:
                attributes, warnings = plan_pdf(
                    _source(source, stdin),
                    tags=tags,
                    title=options.title,
                    conversion_type=options.conversion_type,
                    reference=options.reference,
                    now=options.now,
                    source_name=_shown(source),
                    strict=options.strict,
                )
                yield EncodeOutcome(source, target, attributes=attributes, warnings=warnings)
                continue
            result = _encode_one(source, target, tags, options, stdin, stdout, progress)
        except InputError as error:
            stopped = options.fail_fast or stops_batch(error)
            yield EncodeOutcome(source, target, error=error)
            continue
        yield EncodeOutcome(source, target, result=result, warnings=result.warnings)


def _encode_one(
    source: str,
    target: str,
    tags: ValidatedTags,
    options: EncodeOptions,
    stdin: BinaryIO | None,
    stdout: BinaryIO | None,
    progress: ProgressCallback | None,
) -> EncodeResult:
    if target != STDIO and os.path.abspath(target) == os.path.abspath(source):
        # A DICOM file given to encode (a re-run over a folder of outputs).
        raise InputError(f"{source} would be overwritten by its own output; use -o")
    return encode_pdf(
        _source(source, stdin),
        _stream(target, stdout, "stdout"),
        tags=tags,
        title=options.title,
        conversion_type=options.conversion_type,
        reference=options.reference,
        overwrite=options.overwrite,
        now=options.now,
        progress=progress,
        source_name=_shown(source),
        checksum=options.checksum,
        strict=options.strict,
    )


def _source(name: str, stdin: BinaryIO | None) -> str | BinaryIO:
    return _stream(name, stdin, "stdin")


def _stream(name: str, stream: BinaryIO | None, what: str) -> str | BinaryIO:
    if name != STDIO:
        return name
    if stream is None:
        raise ValueError(f"'-' names {what}, and no {what} stream was given")
    return stream


def _shown(name: str) -> str:
    """How messages name an input: stdin as ``<stdin>``."""
    return "<stdin>" if name == STDIO else name
