"""Upload use case: PDFs (encoded on the fly) and ready-made DICOM files into Orthanc.

Three ways in, one result shape:

- ``instances`` (default): our own conformant encoding streamed to ``POST /instances``;
- ``create-dicom``: Orthanc's server-side dicomization, given the complete attribute set our
  encoder would write (so the object is as valid) and client-generated UIDs (so a retried
  request finds ``AlreadyStored`` instead of creating a twin);
- ``stow``: DICOMweb STOW-RS, for archives other than Orthanc.

Every body is streamed from disk with a known length and rebuilt from its first byte when a
request is retried, so client memory stays flat for any PDF size.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .client import (
    OrthancClient,
    Patient,
    RepeatableBody,
    Series,
    StoredInstance,
    Study,
)
from .dicom import (
    PATIENT_KEYWORDS,
    SERIES_KEYWORDS,
    STUDY_KEYWORDS,
    EncodedPdf,
    ReferenceAttributes,
    new_uid,
    open_encoded,
)
from .errors import (
    InputError,
    NotAttemptedError,
    NotFoundError,
    Pdf2DcmError,
    ServerError,
    ServerUnreachableError,
)
from .extract import extract_pdf
from .files import CHUNK_SIZE, open_input
from .progress import ProgressCallback, ProgressEvent
from .tags import TagsInput, ValidatedTags, validate_tags

Method = Literal["instances", "create-dicom", "stow"]
NOT_ATTEMPTED = "not attempted: the batch stopped at an earlier error"
_BASE64_BLOCK = 3 * 256 * 1024
"""A multiple of 3, so that base64 pieces concatenate into one valid encoding."""
_ENCODER_OWNED = frozenset(
    {"SOPClassUID", "MIMETypeOfEncapsulatedDocument", "EncapsulatedDocument"}
)


@dataclass(frozen=True)
class UploadResult:
    """Where one uploaded document now lives."""

    input: str
    id: str | None
    parent_patient: str | None
    parent_study: str | None
    parent_series: str | None
    status: str
    sop_instance_uid: str
    sha256: str
    url: str | None
    """An address that returns exactly the PDF's bytes (see :func:`exact_pdf_url`)."""
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "ID": self.id,
            "ParentPatient": self.parent_patient,
            "ParentStudy": self.parent_study,
            "ParentSeries": self.parent_series,
            "Status": self.status,
            "SOPInstanceUID": self.sop_instance_uid,
            "sha256": self.sha256,
            "URL": self.url,
        }


@dataclass(frozen=True)
class UploadOptions:
    """How every file of a batch is turned into DICOM and sent."""

    method: Method = "instances"
    tags: TagsInput = field(default_factory=dict)
    title: str | None = None
    conversion_type: Literal["WSD", "SD"] = "WSD"
    reference: ReferenceAttributes | None = None
    now: dt.datetime | None = None


def exact_pdf_url(client: OrthancClient, instance_id: str, pdf_size: int) -> str:
    """A URL whose body is exactly the PDF.

    Orthanc's ``/pdf`` route drops the value's last byte unless it is a newline: right for an
    odd-length PDF (the dropped byte is the pad), wrong for an even-length one, whose raw
    value, unpadded, is the PDF itself.
    """
    if pdf_size % 2:
        return client.url(f"/instances/{instance_id}/pdf")
    return client.url(f"/instances/{instance_id}/content/0042-0011")


def collect_inputs(paths: Sequence[str], *, recursive: bool = False) -> list[str]:
    """Expand directories into the PDFs they hold (sorted); files and ``-`` stay as given."""
    found: list[str] = []
    for name in paths:
        path = Path(name)
        if name != "-" and path.is_dir():
            pattern = path.rglob("*") if recursive else path.glob("*")
            pdfs = sorted(p for p in pattern if p.is_file() and p.suffix.lower() == ".pdf")
            if not pdfs:
                hint = "" if recursive else " (add --recursive to look in subdirectories)"
                raise InputError(f"{name} holds no .pdf files{hint}")
            found.extend(str(p) for p in pdfs)
        else:
            found.append(name)
    return found


def parent_reference(client: OrthancClient, orthanc_id: str) -> ReferenceAttributes:
    """Patient, study and series attributes of an Orthanc resource, to attach new documents.

    A patient gives a new study; a study a new series with the next free SeriesNumber; a
    series its next free InstanceNumber. Values arrive decoded (Orthanc answers in UTF-8),
    and our encoder writes them under one character set, so no mixture can arise.
    """
    lookups: tuple[Callable[[str], Patient | Study | Series], ...] = (
        client.series,
        client.study,
        client.patient,
    )
    for lookup in lookups:
        try:
            resource = lookup(orthanc_id)
        except NotFoundError:
            continue
        return _reference_from(client, resource)
    raise NotFoundError(
        f"no patient, study or series with ID {orthanc_id} on {client.settings.url}; "
        "give an Orthanc ID as shown by 'pdf2dcm upload --json'",
        status=404,
        url=client.url(f"/studies/{orthanc_id}"),
    )


def _reference_from(
    client: OrthancClient, resource: Patient | Study | Series
) -> ReferenceAttributes:
    values: dict[str, str] = {}
    next_series = next_instance = None
    if isinstance(resource, Patient):
        values |= _main_tags(resource.main_tags, PATIENT_KEYWORDS)
    else:
        if isinstance(resource, Series):
            values |= _main_tags(resource.main_tags, SERIES_KEYWORDS)
            instances = client.series_instances(resource.id)
            next_instance = _next_number((i.main_tags for i in instances), "InstanceNumber")
            study = client.study(resource.parent_study)
        else:
            study = resource
            series = client.study_series(resource.id)
            next_series = _next_number((s.main_tags for s in series), "SeriesNumber")
        values |= _main_tags(study.main_tags, STUDY_KEYWORDS)
        values |= _main_tags(study.patient_main_tags, PATIENT_KEYWORDS)
    dataset = Dataset()
    for keyword, value in values.items():
        setattr(dataset, keyword, value)
    return ReferenceAttributes(
        dataset=dataset, next_instance_number=next_instance, next_series_number=next_series
    )


def _main_tags(tags: Mapping[str, str], keywords: Sequence[str]) -> dict[str, str]:
    return {k: tags[k] for k in keywords if k in tags}


def _next_number(tag_sets: Iterable[Mapping[str, str]], keyword: str) -> int:
    numbers = [0]
    for tags in tag_sets:
        with contextlib.suppress(ValueError):
            numbers.append(int(tags.get(keyword, "").strip()))
    return max(numbers) + 1


_SOP_INSTANCE_UID, _STUDY_UID, _SERIES_UID = 0x00080018, 0x0020000D, 0x0020000E
_BATCH_NUMBERS = frozenset({0x00200011, 0x00200013})
"""SeriesNumber and InstanceNumber: assigned per batch from the server's state, so they
must not change a document's identity when the batch is sent again."""


def file_sha256(handle: BinaryIO) -> str:
    """Checksum of a whole seekable file, which is left at offset 0."""
    handle.seek(0)
    digest = hashlib.sha256()
    while block := handle.read(CHUNK_SIZE):
        digest.update(block)
    handle.seek(0)
    return digest.hexdigest()


def identity_tags(tags: ValidatedTags, pdf_sha256: str, options: UploadOptions) -> ValidatedTags:
    """Add UIDs derived from the PDF's content and the tags, where none are given.

    The same PDF sent with the same tags to the same parent is the same document: a re-run
    after a failure is answered ``AlreadyStored`` instead of creating a duplicate.
    """
    reference = options.reference.dataset if options.reference is not None else Dataset()
    key = json.dumps(
        {
            "pdf": pdf_sha256,
            "tags": {f"{t:08X}": v for t, v in tags.items() if t not in _BATCH_NUMBERS},
            "reference": {
                k: str(reference.get(k, ""))
                for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")
            },
            "title": options.title,
            "conversion": options.conversion_type,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    identified = dict(tags)
    identified.setdefault(_SOP_INSTANCE_UID, new_uid(key, "sop"))
    if _STUDY_UID not in identified and "StudyInstanceUID" not in reference:
        identified[_STUDY_UID] = new_uid(key, "study")
    if _SERIES_UID not in identified and "SeriesInstanceUID" not in reference:
        identified[_SERIES_UID] = new_uid(key, "series")
    return identified


def batch_seed(sources: Sequence[str], tags: ValidatedTags) -> str:
    """A seed naming a batch by its files' contents and tags, for its shared series UIDs."""
    digest = hashlib.sha256(repr(sorted(tags.items())).encode())
    for source in sources:
        if source != "-":
            with contextlib.suppress(OSError), open(source, "rb") as handle:
                digest.update(file_sha256(handle).encode())
    return digest.hexdigest()


def upload_file(
    client: OrthancClient,
    source: str | BinaryIO,
    options: UploadOptions,
    *,
    tags: TagsInput | None = None,
    progress: ProgressCallback | None = None,
    source_name: str | None = None,
) -> UploadResult:
    """Send one PDF (encoded here) or one Encapsulated PDF DICOM file (sent unchanged).

    ``tags`` overrides ``options.tags`` for this file (a batch gives each file its own
    InstanceNumber). Raises InputError for the file, ServerError for the server's part.
    """
    name = source_name or (source if isinstance(source, str) else "<stdin>")
    file_tags = validate_tags(options.tags if tags is None else tags)
    with open_input(source, name=name) as (handle, size):
        handle.seek(128)
        is_dicom = handle.read(4) == b"DICM"
        handle.seek(0)
        if is_dicom:
            return _upload_dicom(client, handle, size, name, options, file_tags, progress)
        pdf_sha256 = file_sha256(handle)
        with open_encoded(
            handle,
            tags=identity_tags(file_tags, pdf_sha256, options),
            pdf_sha256=pdf_sha256,
            title=options.title,
            conversion_type=options.conversion_type,
            reference=options.reference,
            now=options.now,
            source_name=name,
        ) as document:
            return _upload_encoded(client, document, options.method, progress)


def _upload_encoded(
    client: OrthancClient,
    document: EncodedPdf,
    method: Method,
    progress: ProgressCallback | None,
) -> UploadResult:
    sop_uid = str(document.dataset.SOPInstanceUID)
    restart = _restarter(document.name, document.pdf_size, progress)
    stored: StoredInstance | None
    if method == "instances":
        body = RepeatableBody(document.length, lambda: document.chunks(progress))
        stored = client.store_instance(body, on_retry=restart)
    elif method == "create-dicom":
        stored = client.create_dicom(_create_dicom_body(document, progress), on_retry=restart)
    else:
        body = RepeatableBody(document.length, lambda: document.chunks(progress))
        stored = _stow(client, body, sop_uid)
    if document.sha256 is None:
        raise AssertionError("the request body was not sent to its end")
    return _result(
        client,
        document.name,
        stored,
        sop_uid,
        document.sha256,
        document.pdf_size,
        document.warnings,
    )


def _result(
    client: OrthancClient,
    name: str,
    stored: StoredInstance | None,
    sop_uid: str,
    digest: str,
    pdf_size: int,
    warnings: tuple[str, ...],
) -> UploadResult:
    return UploadResult(
        input=name,
        id=stored.id if stored else None,
        parent_patient=stored.parent_patient if stored else None,
        parent_study=stored.parent_study if stored else None,
        parent_series=stored.parent_series if stored else None,
        status=stored.status if stored else "Success",
        sop_instance_uid=sop_uid,
        sha256=digest,
        url=exact_pdf_url(client, stored.id, pdf_size) if stored else None,
        warnings=warnings,
    )


def _restarter(name: str, total: int, progress: ProgressCallback | None) -> Callable[[], None]:
    def restart() -> None:
        if progress is not None:
            progress(ProgressEvent(label=name, done=0, total=total, restart=True))

    return restart


def _upload_dicom(
    client: OrthancClient,
    handle: BinaryIO,
    size: int,
    name: str,
    options: UploadOptions,
    tags: ValidatedTags,
    progress: ProgressCallback | None,
) -> UploadResult:
    if tags or options.title is not None or options.reference is not None:
        raise InputError(
            f"{name} is already a DICOM file and is sent unchanged; tag, title and parent "
            "options apply to PDFs only, so upload it without them"
        )
    if options.method == "create-dicom":
        raise InputError(
            f"{name} is already a DICOM file; create-dicom takes PDFs, use --via instances or stow"
        )
    with open(os.devnull, "wb") as sink:
        # Reading the PDF out proves the file holds one and gives its checksum.
        extracted = extract_pdf(handle, sink, source_name=name)
    handle.seek(0)
    from pydicom import dcmread

    sop_uid = str(dcmread(handle, stop_before_pixels=True, defer_size=1024).SOPInstanceUID)

    def chunks() -> Iterator[bytes]:
        handle.seek(0)
        done = 0
        while chunk := handle.read(CHUNK_SIZE):
            done += len(chunk)
            if progress is not None:
                progress(ProgressEvent(label=name, done=done, total=size))
            yield chunk

    body = RepeatableBody(size, chunks)
    if options.method == "instances":
        stored: StoredInstance | None = client.store_instance(
            body, on_retry=_restarter(name, size, progress)
        )
    else:
        stored = _stow(client, body, sop_uid)
    return _result(client, name, stored, sop_uid, extracted.sha256, extracted.size, ())


def _create_dicom_body(document: EncodedPdf, progress: ProgressCallback | None) -> RepeatableBody:
    """The create-dicom JSON, streamed: the base64 of the PDF is made piece by piece."""
    tags = {
        element.keyword: _json_value(element.value, element.VR)
        for element in document.dataset
        if element.keyword not in _ENCODER_OWNED
    }
    head = (
        json.dumps({"Force": True, "Tags": tags}, ensure_ascii=True)[:-1]
        + ', "Content": "data:application/pdf;base64,'
    ).encode("ascii")
    tail = b'"}'

    def chunks() -> Iterator[bytes]:
        yield head
        for block in document.pdf_blocks(_BASE64_BLOCK, progress):
            yield base64.b64encode(block)
        yield tail

    encoded_size = 4 * ((document.pdf_size + 2) // 3)
    return RepeatableBody(len(head) + encoded_size + len(tail), chunks)


def _json_value(value: Any, vr: str) -> Any:
    if vr == "SQ":
        return [
            {element.keyword: _json_value(element.value, element.VR) for element in item}
            for item in value
        ]
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def _stow(client: OrthancClient, dicom: RepeatableBody, sop_uid: str) -> StoredInstance | None:
    """STOW-RS to the DICOMweb root; then, if the server is Orthanc, find the stored instance."""
    existed = _lookup_instance(client, sop_uid) is not None
    answer = client.stow(dicom)
    if answer.failure_reasons:
        raise ServerError(
            f"{client.settings.stow_root} refused the instance {sop_uid} "
            f"(STOW-RS failure reason {answer.failure_reasons[0]})"
        )
    found = _lookup_instance(client, sop_uid)
    if found is None:
        return None
    return StoredInstance(
        id=found.id,
        parent_patient=found.parent_patient,
        parent_study=found.parent_study,
        parent_series=found.parent_series,
        status="AlreadyStored" if existed else "Success",
    )


def _lookup_instance(client: OrthancClient, sop_uid: str) -> StoredInstance | None:
    """The Orthanc instance with this SOPInstanceUID, or None (also when not an Orthanc)."""
    try:
        matches = client.lookup(sop_uid)
    except (NotFoundError, ServerError):
        return None
    for match in matches:
        if match.type == "Instance":
            instance = client.instance(match.id)
            series = client.series(instance.parent_series)
            study = client.study(series.parent_study)
            return StoredInstance(
                id=match.id,
                parent_patient=study.parent_patient,
                parent_study=series.parent_study,
                parent_series=instance.parent_series,
                status="Success",
            )
    return None


@dataclass(frozen=True)
class Outcome:
    """One file's fate in a batch: a result, or the error that stopped it."""

    input: str
    result: UploadResult | None = None
    error: Pdf2DcmError | None = None


def upload_many(
    client: OrthancClient,
    sources: Sequence[str | BinaryIO],
    options: UploadOptions,
    per_file_tags: Sequence[TagsInput],
    *,
    concurrency: int = 1,
    fail_fast: bool = False,
    progress: ProgressCallback | None = None,
) -> Iterator[Outcome]:
    """Upload a batch, yielding outcomes in input order.

    A bad file or a refused upload is reported and the batch goes on (unless ``fail_fast``);
    an unreachable server ends it, since every further file would fail the same way. Files
    not attempted are reported too, so the caller can list them.
    """
    stop = threading.Event()

    def work(source: str | BinaryIO, tags: TagsInput) -> Outcome:
        name = source if isinstance(source, str) else "<stdin>"
        if stop.is_set():
            return Outcome(name, error=NotAttemptedError(f"{name}: {NOT_ATTEMPTED}"))
        try:
            result = upload_file(
                client, source, options, tags=tags, progress=progress, source_name=name
            )
        except ServerUnreachableError as error:
            stop.set()
            return Outcome(name, error=error)
        except Pdf2DcmError as error:
            if fail_fast:
                stop.set()
            return Outcome(name, error=error)
        return Outcome(name, result=result)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(work, s, t) for s, t in zip(sources, per_file_tags, strict=True)]
        for future in futures:
            yield future.result()
