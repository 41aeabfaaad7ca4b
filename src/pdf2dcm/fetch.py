"""Fetch use case: PDFs out of Orthanc, byte-exact.

Orthanc's ``/instances/{id}/pdf`` ignores EncapsulatedDocumentLength and drops the value's
last byte unless it is a newline, so an even-length PDF ending in ``%%EOF`` comes back one
byte short. We read the declared length and stream the raw value of (0042,0011), cut to that
length, straight into the output: exact, and no temporary DICOM file.

Attributes are read one by one from ``/content/gggg-eeee``, which Orthanc answers from the
stored file directly; ``/tags`` converts the whole dataset and takes seconds for a large PDF.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from .client import OrthancClient
from .constants import ENCAPSULATED_PDF_STORAGE, PDF_MIME_TYPE
from .errors import NotEncapsulatedPdfError, NotFoundError, ServerError
from .files import CHUNK_SIZE, PathLike, atomic_output, hashed_blocks
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
    title: str
    series_number: str
    instance_number: str


def fetch_pdf(
    client: OrthancClient,
    instance_id: str,
    destination: PathLike | BinaryIO,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> FetchResult:
    """Write the PDF of one Orthanc instance, byte for byte as it was stored.

    Raises
    ------
    NotFoundError
        No such instance.
    NotEncapsulatedPdfError
        The instance holds no PDF.
    """
    declared = _declared_length(client, instance_id)
    digest = hashlib.sha256()
    with (
        client.download(
            f"/instances/{instance_id}/content/0042-0011",
            what=f"the document of instance {instance_id}",
            # Orthanc would gzip the PDF on the fly: slow, and PDFs barely compress.
            headers={"Accept-Encoding": "identity"},
        ) as response,
        atomic_output(destination, overwrite=overwrite) as out,
    ):
        if declared is None:
            blocks = _without_pad(response.iter_content(CHUNK_SIZE), digest, instance_id, progress)
        else:
            blocks = _declared(
                cast(BinaryIO, response.raw), declared, digest, instance_id, progress
            )
        written = 0
        for block in blocks:
            out.write(block)
            written += len(block)
    output = os.fspath(destination) if isinstance(destination, (str, os.PathLike)) else None
    return FetchResult(id=instance_id, output=output, size=written, sha256=digest.hexdigest())


def _declared(
    raw: BinaryIO, length: int, digest: Any, instance_id: str, progress: ProgressCallback | None
) -> Iterator[bytes]:
    """Exactly ``length`` bytes, then proof that at most the one pad byte was left over."""

    def short(got: int) -> Exception:
        return ServerError(
            f"instance {instance_id}: the document holds {got} bytes but its "
            f"EncapsulatedDocumentLength says {length}; nothing was kept"
        )

    yield from hashed_blocks(raw, length, digest, CHUNK_SIZE, instance_id, progress, short)
    rest = raw.read(2)
    if len(rest) > 1:
        raise ServerError(
            f"instance {instance_id}: the document is longer than its "
            f"EncapsulatedDocumentLength ({length}); nothing was kept"
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
        with client.download(
            f"/instances/{instance_id}/content/{tag}", what=f"instance {instance_id}"
        ) as response:
            return response.content
    except NotFoundError:
        return None


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", errors="replace").strip(" \x00")


def _declared_length(client: OrthancClient, instance_id: str) -> int | None:
    """EncapsulatedDocumentLength, after checking that the instance exists and holds a PDF."""
    metadata = client.get_json(
        f"/instances/{instance_id}/metadata", params={"expand": ""}, what=f"instance {instance_id}"
    )
    mime = _text(_content(client, instance_id, "0042-0012")).lower()
    if mime != PDF_MIME_TYPE:
        sop_class = str(metadata.get("SopClassUid") or "")
        if sop_class == ENCAPSULATED_PDF_STORAGE:
            what = f"an Encapsulated PDF with MIME type {mime or 'none'!r}"
        elif sop_class:
            from pydicom.uid import UID

            what = UID(sop_class).name
        else:
            what = "an object without SOPClassUID"
        raise NotEncapsulatedPdfError(
            f"instance {instance_id} is {what}, not a PDF document; nothing was fetched"
        )
    raw = _content(client, instance_id, "0042-0015")
    return int.from_bytes(raw[:4], "little") if raw is not None and len(raw) >= 4 else None


def pdf_instances(
    client: OrthancClient, *, study: str | None = None, series: str | None = None
) -> list[PdfInstance]:
    """Every Encapsulated PDF instance of a study or a series, in series/instance order."""
    level, orthanc_id = ("studies", study) if study is not None else ("series", series)
    if orthanc_id is None:
        raise ValueError("give a study or a series")
    name = "study" if level == "studies" else "series"
    instances = client.get_json(f"/{level}/{orthanc_id}/instances", what=f"{name} {orthanc_id}")
    series_numbers: dict[str, str] = {}
    found = []
    for instance in instances:
        instance_id = str(instance["ID"])
        if _text(_content(client, instance_id, "0042-0012")).lower() != PDF_MIME_TYPE:
            continue
        parent = str(instance.get("ParentSeries", ""))
        if parent not in series_numbers:
            tags = client.get_json(f"/series/{parent}").get("MainDicomTags", {})
            series_numbers[parent] = str(tags.get("SeriesNumber") or "").strip()
        number = instance.get("MainDicomTags", {}).get("InstanceNumber")
        found.append(
            PdfInstance(
                id=instance_id,
                title=_title(client, instance_id),
                series_number=series_numbers[parent],
                instance_number=str(number or "").strip(),
            )
        )
    return sorted(found, key=_order)


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


def safe_file_name(instance: PdfInstance, taken: set[str]) -> str:
    """A file name made from tag values that cannot leave its directory or clash.

    Tag values may hold ``/``, ``..``, control characters or nothing at all; everything but
    letters, digits and a little punctuation becomes ``_``, leading dots go, the length is
    capped, and a counter keeps names unique within one fetch.
    """
    series = instance.series_number
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
            fetch_pdf(client, instance.id, target, overwrite=overwrite, progress=progress)
        )
    return results
