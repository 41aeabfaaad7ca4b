"""Fetch use case: PDFs out of Orthanc, byte-exact.

Orthanc's ``/instances/{id}/pdf`` ignores EncapsulatedDocumentLength and drops the value's
last byte unless it is a newline, so an even-length PDF ending in ``%%EOF`` comes back one
byte short. We read the length from the instance's tags and stream the raw value of
(0042,0011), cut to that length, straight into the output: exact, and no temporary DICOM.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .client import OrthancClient
from .dicom import ENCAPSULATED_PDF_STORAGE, PDF_MIME_TYPE
from .errors import NotEncapsulatedPdfError, ServerError
from .files import CHUNK_SIZE, PathLike, atomic_output
from .progress import ProgressCallback, ProgressEvent

_UNSAFE = re.compile(r"[^\w .()+,-]+")
MAX_NAME_CHARS = 80


@dataclass(frozen=True)
class FetchResult:
    """One fetched PDF."""

    id: str
    output: str | None
    size: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"ID": self.id, "output": self.output, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class PdfInstance:
    """An Encapsulated PDF instance found under a study or series."""

    id: str
    tags: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.tags.get("0042,0010") or "")

    @property
    def instance_number(self) -> str:
        return str(self.tags.get("0020,0013") or "").strip()


def fetch_pdf(
    client: OrthancClient,
    instance_id: str,
    destination: PathLike | BinaryIO,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    tags: dict[str, Any] | None = None,
) -> FetchResult:
    """Write the PDF of one Orthanc instance, byte for byte as it was stored.

    Raises
    ------
    NotFoundError
        No such instance.
    NotEncapsulatedPdfError
        The instance holds no PDF.
    """
    tags = tags if tags is not None else client.instance_tags(instance_id)
    _check_is_pdf(instance_id, tags)
    declared = _declared_length(tags)
    digest = hashlib.sha256()
    written = 0
    with (
        client.download(
            f"/instances/{instance_id}/content/0042-0011",
            what=f"the document of instance {instance_id}",
        ) as response,
        atomic_output(destination, overwrite=overwrite) as out,
    ):
        chunks = response.iter_content(CHUNK_SIZE)
        for block in _exact(chunks, declared, instance_id):
            digest.update(block)
            out.write(block)
            written += len(block)
            if progress is not None:
                progress(ProgressEvent(label=instance_id, done=written, total=declared))
    output = os.fspath(destination) if isinstance(destination, (str, os.PathLike)) else None
    return FetchResult(id=instance_id, output=output, size=written, sha256=digest.hexdigest())


def _check_is_pdf(instance_id: str, tags: dict[str, Any]) -> None:
    sop_class = str(tags.get("0008,0016") or "")
    mime = str(tags.get("0042,0012") or "").strip().lower()
    if mime != PDF_MIME_TYPE:
        what = "an Encapsulated PDF with another MIME type"
        if sop_class != ENCAPSULATED_PDF_STORAGE:
            from pydicom.uid import UID

            what = UID(sop_class).name if sop_class else "an object without SOPClassUID"
        raise NotEncapsulatedPdfError(
            f"instance {instance_id} is {what}, not a PDF document; nothing was fetched"
        )


def _declared_length(tags: dict[str, Any]) -> int | None:
    value = tags.get("0042,0015")
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _exact(chunks: Iterator[bytes], declared: int | None, instance_id: str) -> Iterator[bytes]:
    """The raw value cut to the PDF: to the declared length, else minus one 0x00 pad byte."""
    received = 0
    held = b""
    for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        if declared is not None:
            remaining = declared - (received - len(chunk))
            if remaining > 0:
                yield chunk[:remaining]
            continue
        # Without a declared length, only a final 0x00 pad may go: hold back one byte.
        data = held + chunk
        held = data[-1:]
        if data[:-1]:
            yield data[:-1]
    if declared is not None:
        if received not in (declared, declared + 1):
            raise ServerError(
                f"instance {instance_id}: the document holds {received} bytes but its "
                f"EncapsulatedDocumentLength says {declared}; nothing was kept"
            )
        return
    if held and not (received % 2 == 0 and held == b"\x00"):
        yield held


def pdf_instances(
    client: OrthancClient, *, study: str | None = None, series: str | None = None
) -> list[PdfInstance]:
    """Every Encapsulated PDF instance of a study or a series, in series/instance order."""
    level, orthanc_id = ("studies", study) if study is not None else ("series", series)
    if orthanc_id is None:
        raise ValueError("give a study or a series")
    name = "study" if level == "studies" else "series"
    instances = client.get_json(f"/{level}/{orthanc_id}/instances", what=f"{name} {orthanc_id}")
    found = []
    for instance in instances:
        tags = client.instance_tags(str(instance["ID"]))
        if str(tags.get("0042,0012") or "").strip().lower() == PDF_MIME_TYPE:
            found.append(PdfInstance(id=str(instance["ID"]), tags=tags))
    return sorted(found, key=_order)


def _order(instance: PdfInstance) -> tuple[int, int, str]:
    def number(key: str) -> int:
        try:
            return int(str(instance.tags.get(key) or "0").strip())
        except ValueError:
            return 0

    return number("0020,0011"), number("0020,0013"), instance.id


def safe_file_name(instance: PdfInstance, taken: set[str]) -> str:
    """A file name made from tag values that cannot leave its directory or clash.

    Tag values may hold ``/``, ``..``, control characters or nothing at all; everything but
    letters, digits and a little punctuation becomes ``_``, leading dots go, the length is
    capped, and a counter keeps names unique within one fetch.
    """
    series = str(instance.tags.get("0020,0011") or "").strip()
    number = instance.instance_number
    title = unicodedata.normalize("NFC", instance.title)
    title = _UNSAFE.sub("_", "".join(c if c.isprintable() else "_" for c in title))
    title = title.strip(" ._") or instance.id[:8]
    prefix = "-".join(part for part in (series, number) if part.isdigit())
    stem = (f"{prefix}-{title}" if prefix else title)[:MAX_NAME_CHARS].rstrip(" .")
    candidate = f"{stem}.pdf"
    counter = 2
    while candidate.lower() in taken:
        candidate = f"{stem}-{counter}.pdf"
        counter += 1
    taken.add(candidate.lower())
    return candidate


def fetch_all(
    client: OrthancClient,
    outdir: PathLike,
    *,
    study: str | None = None,
    series: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> list[FetchResult]:
    """Fetch every PDF of a study or series into ``outdir`` under safe names."""
    directory = Path(outdir)
    directory.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    results = []
    for instance in pdf_instances(client, study=study, series=series):
        target = directory / safe_file_name(instance, taken)
        if target.resolve().parent != directory.resolve():
            raise AssertionError(f"unsafe file name {target}")
        results.append(
            fetch_pdf(
                client,
                instance.id,
                target,
                overwrite=overwrite,
                progress=progress,
                tags=instance.tags,
            )
        )
    return results
