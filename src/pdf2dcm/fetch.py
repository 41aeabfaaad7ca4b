"""Fetch use case: PDFs out of Orthanc, byte-exact.

Orthanc's ``/instances/{id}/pdf`` ignores EncapsulatedDocumentLength and drops the value's
last byte unless it is a newline, so an even-length PDF ending in ``%%EOF`` comes back one
byte short. We read the declared length and stream the raw value of (0042,0011), cut to that
length, straight into the output: exact, and no temporary DICOM file.

Attributes are read one by one from ``/content/gggg-eeee``, which Orthanc answers from the
stored file directly; ``/tags`` converts the whole dataset and takes seconds for a large PDF.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .client import Download, Instance, OrthancClient
from .constants import ENCAPSULATED_PDF_STORAGE, PDF_MIME_TYPE
from .errors import (
    FileSystemError,
    NotAttemptedError,
    NotEncapsulatedPdfError,
    NotFoundError,
    Pdf2DcmError,
    ServerError,
    ServerUnreachableError,
)
from .files import (
    CHUNK_SIZE,
    PathLike,
    atomic_output,
    display_name,
    hashed_blocks,
    make_directory,
)
from .imports import load_pydicom
from .progress import ProgressCallback, ProgressEvent

_UNSAFE = re.compile(r"[^\w .()+,-]+")
MAX_NAME_CHARS = 80
NAME_MAX_FALLBACK = 255
"""Bytes in a file name where the file system does not say (``PC_NAME_MAX``)."""
TEMPORARY_NAME_EXTRA = 16
"""Bytes the temporary ``.NAME.xxxxxxxx.part`` adds to a name while it is written."""


@dataclass(frozen=True)
class FetchResult:
    """One fetched PDF."""

    id: str
    output: str | None
    size: int
    sha256: str


@dataclass(frozen=True)
class PdfInstance:
    """An Encapsulated PDF instance found under a study or series."""

    id: str
    title: str
    series_number: str
    instance_number: str


def kept(destination: PathLike | BinaryIO, written: int) -> str:
    """What a broken download left: nothing for a file, ``written`` bytes for a stream."""
    if isinstance(destination, (str, os.PathLike)):
        return "nothing was kept"
    return (
        f"{written} bytes had already been written to {display_name(destination, 'the output')},"
        " which now holds an incomplete copy"
    )


def fetch_pdf(
    client: OrthancClient,
    instance_id: str,
    destination: PathLike | BinaryIO,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> FetchResult:
    """Write the PDF of one Orthanc instance, byte for byte as it was stored.

    A body that breaks off or stalls leaves no file; written to a stream, the error says how
    many bytes had gone out.

    Raises
    ------
    NotFoundError
        No such instance.
    NotEncapsulatedPdfError
        The instance holds no PDF.
    ServerError
        The document's bytes did not arrive whole.
    """
    declared = _declared_length(client, instance_id)
    digest = hashlib.sha256()
    written = 0
    with (
        client.instance_document(instance_id) as download,
        atomic_output(destination, overwrite=overwrite) as out,
    ):
        if declared is None:
            blocks = _without_pad(download.chunks(CHUNK_SIZE), digest, instance_id, progress)
        else:
            blocks = _declared(download, declared, digest, instance_id, progress)
        try:
            for block in blocks:
                out.write(block)
                written += len(block)
        except ServerError as exc:
            raise ServerError(f"{exc}; {kept(destination, written)}") from exc
    output = os.fspath(destination) if isinstance(destination, (str, os.PathLike)) else None
    return FetchResult(id=instance_id, output=output, size=written, sha256=digest.hexdigest())


def _declared(
    download: Download,
    length: int,
    digest: Any,
    instance_id: str,
    progress: ProgressCallback | None,
) -> Iterator[bytes]:
    """Exactly ``length`` bytes, then proof that at most the one pad byte was left over."""

    def short(got: int) -> Exception:
        return ServerError(
            f"instance {instance_id}: the document holds {got} bytes but its "
            f"EncapsulatedDocumentLength says {length}"
        )

    yield from hashed_blocks(download, length, digest, CHUNK_SIZE, instance_id, progress, short)  # type: ignore[arg-type]
    rest = download.read(2)
    if len(rest) == 1:
        rest += download.read(1)
    if len(rest) > 1:
        raise ServerError(
            f"instance {instance_id}: the document is longer than its "
            f"EncapsulatedDocumentLength ({length})"
        )


def _without_pad(
    chunks: Iterator[bytes], digest: Any, instance_id: str, progress: ProgressCallback | None
) -> Iterator[bytes]:
    """Without a declared length only a final 0x00 pad may go: one byte is held back."""
    received = 0
    held = b""
    for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        data = held + chunk
        held = data[-1:]
        if data[:-1]:
            digest.update(data[:-1])
            if progress is not None:
                progress(ProgressEvent(label=instance_id, done=received - 1, total=None))
            yield data[:-1]
    if held and not (received % 2 == 0 and held == b"\x00"):
        digest.update(held)
        yield held


def _content(client: OrthancClient, instance_id: str, tag: str) -> bytes | None:
    """One attribute's raw value, or None when the instance does not have it."""
    try:
        return client.instance_content(instance_id, tag)
    except NotFoundError:
        return None


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", errors="replace").strip(" \x00")


def _declared_length(client: OrthancClient, instance_id: str) -> int | None:
    """EncapsulatedDocumentLength, after checking that the instance exists and holds a PDF."""
    client.instance(instance_id)
    mime = _text(_content(client, instance_id, "0042-0012")).lower()
    if mime != PDF_MIME_TYPE:
        sop_class = _text(_content(client, instance_id, "0008-0016"))
        if sop_class == ENCAPSULATED_PDF_STORAGE:
            what = f"an Encapsulated PDF with MIME type {mime[:64] or 'none'!r}"
        elif sop_class:
            load_pydicom()
            from pydicom.uid import UID

            what = UID(sop_class[:64]).name
        else:
            what = "an object without SOPClassUID"
        raise NotEncapsulatedPdfError(
            f"instance {instance_id} is {what}, not a PDF document; nothing was fetched"
        )
    raw = _content(client, instance_id, "0042-0015")
    return int.from_bytes(raw[:4], "little") if raw is not None and len(raw) >= 4 else None


def pdf_instances(
    client: OrthancClient,
    *,
    study: str | None = None,
    series: str | None = None,
    patient: str | None = None,
    instance_ids: Sequence[str] = (),
) -> list[PdfInstance]:
    """Every Encapsulated PDF instance of a patient, a study, a series or a list, in order.

    Instances named explicitly must be PDFs (NotEncapsulatedPdfError otherwise); those found
    under a resource are filtered, since a study may hold images too.
    """
    instances: list[Instance]
    if instance_ids:
        instances = [client.instance(instance_id) for instance_id in instance_ids]
    elif study is not None:
        instances = client.study_instances(study)
    elif series is not None:
        instances = client.series_instances(series)
    elif patient is not None:
        instances = [
            instance
            for study_id in client.patient(patient).studies
            for instance in client.study_instances(study_id)
        ]
    else:
        raise ValueError("give a patient, a study, a series or instance IDs")
    series_numbers: dict[str, str] = {}
    found = []
    for instance in instances:
        if _text(_content(client, instance.id, "0042-0012")).lower() != PDF_MIME_TYPE:
            if instance_ids:
                _declared_length(client, instance.id)  # raises, naming what it is
            continue
        parent = instance.parent_series
        if parent not in series_numbers:
            tags = client.series(parent).main_tags
            series_numbers[parent] = tags.get("SeriesNumber", "").strip()
        found.append(
            PdfInstance(
                id=instance.id,
                title=_title(client, instance.id),
                series_number=series_numbers[parent],
                instance_number=instance.main_tags.get("InstanceNumber", "").strip(),
            )
        )
    return found if instance_ids else sorted(found, key=_order)


def _title(client: OrthancClient, instance_id: str) -> str:
    raw = _content(client, instance_id, "0042-0010")
    if not raw:
        return ""
    charset = _text(_content(client, instance_id, "0008-0005"))
    encoding = "utf-8" if not charset or "192" in charset else "latin-1"
    return raw.decode(encoding, errors="replace").strip(" \x00")


def _order(instance: PdfInstance) -> tuple[int, int, str]:
    def number(text: str) -> int:
        return int(text) if text.isdigit() else 0

    return number(instance.series_number), number(instance.instance_number), instance.id


def name_max(directory: PathLike) -> int:
    """The longest file name, in bytes, that ``directory``'s file system takes."""
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return NAME_MAX_FALLBACK


def _cut_to_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``limit`` bytes."""
    return text.encode("utf-8")[: max(0, limit)].decode("utf-8", errors="ignore")


def safe_file_name(
    instance: PdfInstance,
    taken: set[str],
    max_bytes: int = NAME_MAX_FALLBACK - TEMPORARY_NAME_EXTRA,
) -> str:
    """A file name made from tag values that cannot leave its directory, clash, or be too long.

    Tag values may hold ``/``, ``..``, control characters or nothing at all; everything but
    letters, digits and a little punctuation becomes ``_``, leading dots go, the length is
    capped at ``MAX_NAME_CHARS`` characters and at ``max_bytes`` bytes of UTF-8 (cut at a
    character boundary, the counter and ``.pdf`` included), and a counter keeps names unique
    within one fetch.
    """
    series = instance.series_number
    number = instance.instance_number
    title = unicodedata.normalize("NFC", instance.title)
    title = _UNSAFE.sub("_", "".join(c if c.isprintable() else "_" for c in title))
    title = title.strip(" ._") or instance.id[:8]
    prefix = "-".join(part for part in (series, number) if part.isdigit())
    stem = (f"{prefix}-{title}" if prefix else title)[:MAX_NAME_CHARS]
    counter = 1
    while True:
        suffix = f"-{counter}.pdf" if counter > 1 else ".pdf"
        candidate = _cut_to_bytes(stem, max_bytes - len(suffix)).rstrip(" .") + suffix
        if candidate.lower() not in taken:
            taken.add(candidate.lower())
            return candidate
        counter += 1


@dataclass(frozen=True)
class FetchOutcome:
    """One PDF of a ``fetch -d``: its result, or the error that stopped it."""

    instance: PdfInstance
    target: str
    result: FetchResult | None = None
    error: Pdf2DcmError | None = None
    skipped: bool = False
    """With ``skip_existing``: the target was there already and was left alone."""


def fetch_each(
    client: OrthancClient,
    outdir: PathLike,
    *,
    study: str | None = None,
    series: str | None = None,
    patient: str | None = None,
    instance_ids: Sequence[str] = (),
    overwrite: bool = False,
    skip_existing: bool = False,
    progress: ProgressCallback | None = None,
) -> Iterator[FetchOutcome]:
    """Fetch every PDF of a patient, study, series or list into ``outdir``, one by one.

    Names are safe and stable (series, instance number and title), so a re-run with
    ``skip_existing`` fetches only what is missing. A PDF that fails (its file refused, its
    document broken) is reported and the next one fetched; an unreachable server ends the
    batch, since every further PDF would fail alike.
    """
    directory = Path(outdir)
    found: list[PdfInstance | FetchOutcome]
    if instance_ids:
        found = _named_instances(client, instance_ids)
    else:
        found = list(pdf_instances(client, study=study, series=series, patient=patient))
    make_directory(directory)
    limit = name_max(directory) - TEMPORARY_NAME_EXTRA
    taken: set[str] = set()
    unreachable: ServerUnreachableError | None = None
    for instance in found:
        if isinstance(instance, FetchOutcome):
            yield instance
            continue
        target = directory / safe_file_name(instance, taken, limit)
        if target.resolve().parent != directory.resolve():
            raise AssertionError(f"unsafe file name {target}")
        if unreachable is not None:
            error = NotAttemptedError(f"{instance.id}: {_STOPPED}")
            yield FetchOutcome(instance, str(target), error=error)
        elif skip_existing and os.path.lexists(target):
            yield FetchOutcome(instance, str(target), skipped=True)
        else:
            try:
                yield _fetch_one(client, instance, target, overwrite=overwrite, progress=progress)
            except ServerUnreachableError as error:
                # Every further PDF would fail alike: they are reported, not tried.
                unreachable = error
                yield FetchOutcome(instance, str(target), error=error)


_STOPPED = "not attempted: the server could not be reached for an earlier PDF"


def _named_instances(
    client: OrthancClient, instance_ids: Sequence[str]
) -> list[PdfInstance | FetchOutcome]:
    """The PDFs named, looked up one by one, so that an unknown ID or an image is one failure
    among others rather than the end of the batch."""
    found: list[PdfInstance | FetchOutcome] = []
    for instance_id in instance_ids:
        try:
            found.extend(pdf_instances(client, instance_ids=[instance_id]))
        except ServerUnreachableError:
            raise
        except Pdf2DcmError as error:
            found.append(FetchOutcome(PdfInstance(instance_id, "", "", ""), "", error=error))
    return found


def _fetch_one(
    client: OrthancClient,
    instance: PdfInstance,
    target: Path,
    *,
    overwrite: bool,
    progress: ProgressCallback | None,
) -> FetchOutcome:
    """One PDF's outcome: a failure of this PDF alone is reported, not raised, so the batch
    goes on; an unreachable server is raised, since every further PDF would fail alike."""
    try:
        result = fetch_pdf(client, instance.id, target, overwrite=overwrite, progress=progress)
    except ServerUnreachableError:
        raise
    except Pdf2DcmError as error:
        return FetchOutcome(instance, str(target), error=error)
    except OSError as exc:
        refused = FileSystemError(f"{target}: {exc.strerror or exc}", errno=exc.errno or errno.EIO)
        return FetchOutcome(instance, str(target), error=refused)
    return FetchOutcome(instance, str(target), result=result)


def fetch_all(
    client: OrthancClient,
    outdir: PathLike,
    *,
    study: str | None = None,
    series: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    on_error: Callable[[FetchOutcome], None] | None = None,
) -> list[FetchResult]:
    """Fetch every PDF of a study or series into ``outdir``; the results that succeeded.

    Failures go to ``on_error`` and the rest is still fetched; without ``on_error``, the
    first failure is raised once every PDF was tried.
    """
    results = []
    failures: list[FetchOutcome] = []
    for outcome in fetch_each(
        client, outdir, study=study, series=series, overwrite=overwrite, progress=progress
    ):
        if outcome.result is not None:
            results.append(outcome.result)
        elif on_error is not None:
            on_error(outcome)
        else:
            failures.append(outcome)
    if failures and failures[0].error is not None:
        raise failures[0].error
    return results
