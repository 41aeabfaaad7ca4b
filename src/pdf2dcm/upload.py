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
import collections
import concurrent.futures
import dataclasses
import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .client import OrthancClient, RepeatableBody, StoredInstance, shown
from .dicom import (
    EncodedPdf,
    ReferenceAttributes,
    attribute_values,
    open_encoded,
    refuse_truncated,
    tag_json_value,
)
from .errors import (
    ConflictError,
    InputError,
    NotAttemptedError,
    NotEncapsulatedPdfError,
    NotFoundError,
    Pdf2DcmError,
    ServerError,
    ServerUnreachableError,
    StrictModeError,
)
from .extract import extract_pdf, looks_like_dicom, read_header
from .fetch import fetch_pdf
from .files import CHUNK_SIZE, expand_directories, is_regular_file, open_input
from .identity import check_batch_identity
from .lookup import Target
from .pertags import merge_tags
from .progress import ProgressCallback, ProgressEvent
from .tags import TagsInput, ValidatedTags, validate_tags
from .uids import document_uids, plan_batch

Method = Literal["instances", "create-dicom", "stow"]
Forward = tuple[Literal["modality", "peer"], str]
"""Where stored documents are sent on: a DICOM modality or an Orthanc peer, by name."""
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
    size: int = 0
    """The PDF's length in bytes."""
    patient_id: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    warnings: tuple[str, ...] = ()
    attributes: dict[str, Any] | None = None
    """With ``dry_run``: every attribute that would be written, in the tags-file shape."""


@dataclass(frozen=True)
class UploadOptions:
    """How every file of a batch is turned into DICOM and sent."""

    method: Method = "instances"
    tags: TagsInput = field(default_factory=dict)
    title: str | None = None
    conversion_type: Literal["WSD", "SD"] = "WSD"
    reference: ReferenceAttributes | None = None
    now: dt.datetime | None = None
    dry_run: bool = False
    """Check everything and plan the UIDs, asking the server only questions; send nothing."""
    strict: bool = False
    """Refuse a file that gives a warning (a PDF that may be truncated) instead of sending it."""


def exact_pdf_url(client: OrthancClient, instance_id: str, pdf_size: int) -> str:
    """A URL whose body is exactly the PDF.

    Orthanc's ``/pdf`` route drops the value's last byte unless it is a newline: right for an
    odd-length PDF (the dropped byte is the pad), wrong for an even-length one, whose raw
    value, unpadded, is the PDF itself.
    """
    if pdf_size % 2:
        return client.url(f"/instances/{instance_id}/pdf")
    return client.url(f"/instances/{instance_id}/content/0042-0011")


UPLOADABLE_SUFFIXES = frozenset({".pdf", ".dcm", ".dicom"})
"""What a directory contributes to an upload: PDFs, and DICOM files (sent as they are)."""


def collect_inputs(
    paths: Sequence[str], *, recursive: bool = False, notes: list[str] | None = None
) -> list[str]:
    """Expand directories into the PDFs and DICOM files they hold (sorted); see
    :func:`pdf2dcm.files.expand_directories`."""
    return expand_directories(paths, UPLOADABLE_SUFFIXES, recursive=recursive, notes=notes)


def file_sha256(handle: BinaryIO) -> str:
    """Checksum of a whole seekable file, which is left at offset 0."""
    handle.seek(0)
    digest = hashlib.sha256()
    while block := handle.read(CHUNK_SIZE):
        digest.update(block)
    handle.seek(0)
    return digest.hexdigest()


_INSTANCE_NUMBER, _SOP_INSTANCE_UID = 0x00200013, 0x00080018
_STUDY_UID, _SERIES_UID = 0x0020000D, 0x0020000E


@dataclass(frozen=True)
class PreparedBatch:
    """A batch ready to send: every file's tags planned, the reference resolved."""

    options: UploadOptions
    """The batch's options, with the reference looked up on the server if a target named it."""
    per_file: list[ValidatedTags]
    warnings: tuple[str, ...]


_NO_PATIENT_ID = (
    "no PatientID given; Orthanc files every such document under one patient; "
    "add --tag PatientID=..."
)


def prepare_batch(
    client: OrthancClient,
    sources: Sequence[str],
    own_tags: Sequence[ValidatedTags],
    options: UploadOptions,
    *,
    target: Target | None = None,
    same_series: bool = False,
    warn: Callable[[str], None] | None = None,
) -> PreparedBatch:
    """Everything decided before the first file is sent, so that a refusal sends nothing.

    The target (``--parent``, ``--study``, a worklist...) is looked up once for the batch;
    each file's tags are the batch's UIDs and numbers (continuing the server's) under its own
    (name, sidecar, manifest); files that would split one study over two patients are refused.
    ``sources`` are names (``-`` for stdin); a PDF with no PatientID anywhere is a warning,
    an error with ``options.strict``. Each warning goes to ``warn`` as soon as it is known,
    so that a refusal after it does not hide it, and is also kept in the result.
    """
    if options.reference is not None and target is not None:
        raise ValueError("give the batch a reference or a target to look up, not both")
    warnings: list[str] = []

    def note(text: str) -> None:
        warnings.append(text)
        if warn is not None:
            warn(text)

    tags = validate_tags(options.tags)
    reference = options.reference
    if reference is None and target is not None:
        reference = target.reference(client, tags)
        for text in reference.warnings if reference is not None else ():
            note(text)
    if not _has_patient_id(tags, own_tags, reference) and any(
        source != "-" and not _is_dicom_file(source) for source in sources
    ):
        if options.strict:
            raise StrictModeError(
                "no PatientID given; Orthanc would file every such document under one "
                "patient (a warning, refused by --strict); add --tag PatientID=..."
            )
        note(_NO_PATIENT_ID)
    if options.strict and not options.dry_run:
        refuse_truncated(sources)
    planned = plan_batch(client, tags, len(sources), same_series=same_series, reference=reference)
    per_file = [merge_tags(p, own) for p, own in zip(planned, own_tags, strict=True)]
    check_batch_identity(per_file)
    return PreparedBatch(
        dataclasses.replace(options, reference=reference), per_file, tuple(warnings)
    )


def _has_patient_id(
    tags: ValidatedTags,
    own_tags: Sequence[ValidatedTags],
    reference: ReferenceAttributes | None,
) -> bool:
    return (
        _PATIENT_ID in tags
        or all(_PATIENT_ID in own for own in own_tags)
        or (reference is not None and "PatientID" in reference.dataset)
    )


def _is_dicom_file(name: str) -> bool:
    if not is_regular_file(name):
        return False
    try:
        with open(name, "rb") as handle:
            return looks_like_dicom(handle)
    except OSError:
        return False


_PATIENT_ID = 0x00100020


def check_forward_target(
    client: OrthancClient, target: Literal["modality", "peer"], name: str
) -> None:
    """Refuse an unknown modality or peer before anything is uploaded, naming the known ones."""
    known = client.targets(target)
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise InputError(f"{client.settings.url} knows no {target} named {name!r}; known: {listed}")


class StudyGuard:
    """Which patient each StudyInstanceUID of a batch belongs to, asked once per study.

    Orthanc keys a study by PatientID and StudyInstanceUID together, so a document that
    reuses a study's UID under another PatientID is not refused by the server: it creates a
    second study of the same UID under a second patient. The guard refuses that first.
    """

    def __init__(self, client: OrthancClient) -> None:
        self._client = client
        self._owners: dict[str, tuple[str, str | None]] = {}
        self._lock = threading.Lock()

    def check(self, study_uid: str, patient_id: str) -> None:
        """Refuse a document whose study already belongs to another patient.

        Raises
        ------
        ConflictError
            Naming the study, the patient that holds it and the one given.
        """
        with self._lock:
            if study_uid not in self._owners:
                self._owners[study_uid] = self._owner_on_server(study_uid) or (patient_id, None)
            owner, orthanc_patient = self._owners[study_uid]
        if owner.strip() != patient_id.strip():
            where = f" (Orthanc patient {orthanc_patient})" if orthanc_patient else ""
            raise ConflictError(
                f"study {study_uid} already belongs to PatientID {shown(owner)}{where} on "
                f"{self._client.settings.url}, not to {shown(patient_id)}; nothing was "
                "stored. Attach to that patient's study, or give another StudyInstanceUID"
            )

    def _owner_on_server(self, study_uid: str) -> tuple[str, str | None] | None:
        for match in self._client.lookup(study_uid):
            if match.type == "Study":
                study = self._client.study(match.id)
                return study.patient_main_tags.get("PatientID", ""), study.parent_patient
        return None


def upload_file(
    client: OrthancClient,
    source: str | BinaryIO,
    options: UploadOptions,
    *,
    tags: TagsInput | None = None,
    progress: ProgressCallback | None = None,
    source_name: str | None = None,
    guard: StudyGuard | None = None,
) -> UploadResult:
    """Send one PDF (encoded here) or one Encapsulated PDF DICOM file (sent unchanged).

    ``tags`` overrides ``options.tags`` for this file (a batch gives each file its own
    InstanceNumber); ``guard`` is shared by a batch so that each study is looked up once.
    Raises InputError for the file, ConflictError when the server holds another patient's
    study or another document under the same UID, ServerError for the server's part.
    """
    name = source_name or (source if isinstance(source, str) else "<stdin>")
    file_tags = validate_tags(options.tags if tags is None else tags)
    guard = guard or StudyGuard(client)
    with open_input(source, name=name) as (handle, size):
        if looks_like_dicom(handle):
            return _upload_dicom(client, handle, size, name, options, file_tags, progress, guard)
        pdf_sha256 = file_sha256(handle)
        with open_encoded(
            handle,
            tags=document_uids(
                file_tags,
                pdf_sha256,
                options.reference.dataset if options.reference else None,
                title=options.title,
                conversion_type=options.conversion_type,
            ),
            pdf_sha256=pdf_sha256,
            title=options.title,
            conversion_type=options.conversion_type,
            reference=options.reference,
            now=options.now,
            source_name=name,
            # Orthanc's create-dicom knows single character sets only.
            code_extensions=options.method != "create-dicom",
            strict=options.strict,
        ) as document:
            ds = document.dataset
            patient_id = str(ds.get("PatientID", "") or "")
            if _STUDY_UID in file_tags or options.reference is not None:
                # A derived StudyInstanceUID hashes the PatientID with the content, so it
                # cannot name another patient's study; a given or copied one can.
                guard.check(str(ds.StudyInstanceUID), patient_id)
            if _SOP_INSTANCE_UID in file_tags:
                # A UID of the user's choosing may name an instance elsewhere; a derived one
                # names this content under these study and series UIDs only.
                check_sop_uid(
                    client,
                    str(ds.SOPInstanceUID),
                    study_uid=str(ds.StudyInstanceUID),
                    series_uid=str(ds.SeriesInstanceUID),
                    patient_id=patient_id,
                )
            if options.dry_run:
                return _planned(name, ds, pdf_sha256, document.pdf_size, document.warnings)
            return _upload_encoded(client, document, options.method, progress)


def _planned(
    name: str, ds: Dataset, sha256: str, size: int, warnings: tuple[str, ...]
) -> UploadResult:
    return UploadResult(
        input=name,
        id=None,
        parent_patient=None,
        parent_study=None,
        parent_series=None,
        status="DryRun",
        sop_instance_uid=str(ds.SOPInstanceUID),
        sha256=sha256,
        url=None,
        size=size,
        **_identifiers(ds),
        warnings=warnings,
        attributes=attribute_values(ds),
    )


def _identifiers(ds: Dataset) -> dict[str, Any]:
    """The PatientID and the study and series UIDs, as the record of an upload shows them."""
    return {
        "patient_id": _optional_text(ds, "PatientID"),
        "study_instance_uid": _optional_text(ds, "StudyInstanceUID"),
        "series_instance_uid": _optional_text(ds, "SeriesInstanceUID"),
    }


def _optional_text(ds: Dataset, keyword: str) -> str | None:
    """A record's value: the text, padding stripped; None when absent or unreadable."""
    try:
        text = _text_of(ds, keyword)
    except InputError:
        return None
    return text.strip(" \x00") if keyword in ds else None


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
    if stored is not None and stored.status == "AlreadyStored":
        verify_same_document(client, stored.id, sop_uid, document.sha256, document.pdf_size)
    return _result(
        client,
        document.name,
        stored,
        document.dataset,
        document.sha256,
        document.pdf_size,
        document.warnings,
    )


def _result(
    client: OrthancClient,
    name: str,
    stored: StoredInstance | None,
    ds: Dataset,
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
        sop_instance_uid=_optional_text(ds, "SOPInstanceUID") or "",
        sha256=digest,
        url=exact_pdf_url(client, stored.id, pdf_size) if stored else None,
        size=pdf_size,
        **_identifiers(ds),
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
    guard: StudyGuard,
) -> UploadResult:
    if tags or options.title is not None or options.reference is not None:
        raise InputError(
            f"{name} is already a DICOM file and is sent unchanged; tag, title and parent "
            "options apply to PDFs only, so upload it without them"
        )
    if options.method == "create-dicom":
        raise InputError(
            f"{name} is already a DICOM file; create-dicom takes PDFs, send it by instances or stow"
        )
    with open(os.devnull, "wb") as sink:
        # Reading the PDF out proves the file holds one and gives its checksum.
        extracted = extract_pdf(handle, sink, source_name=name)
    if extracted.sha256 is None:
        raise AssertionError("extract_pdf gives the checksum unless told not to")
    handle.seek(0)
    header = read_header(handle, name)
    sop_uid = _uid_of(header, "SOPInstanceUID", name)
    study_uid = _uid_of(header, "StudyInstanceUID", name)
    patient_id = _text_of(header, "PatientID")
    guard.check(study_uid, patient_id)
    check_sop_uid(
        client,
        sop_uid,
        study_uid=study_uid,
        series_uid=_uid_of(header, "SeriesInstanceUID", name),
        patient_id=patient_id,
    )

    if options.dry_run:
        return _planned(name, header, extracted.sha256, extracted.size, ())

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
    if stored is not None and stored.status == "AlreadyStored":
        verify_same_document(client, stored.id, sop_uid, extracted.sha256, extracted.size)
    return _result(client, name, stored, header, extracted.sha256, extracted.size, ())


def _uid_of(header: Dataset, keyword: str, name: str) -> str:
    value = _text_of(header, keyword).strip(" \x00")
    if not value:
        raise InputError(f"{name} has no {keyword}; an archive cannot file it")
    return value


def _text_of(header: Dataset, keyword: str) -> str:
    try:
        value = header.get(keyword)
    except (ValueError, TypeError, LookupError) as exc:
        raise InputError(f"cannot read {keyword}: {exc}") from exc
    if isinstance(value, MultiValue | list):
        raise InputError(f"{keyword} holds {len(value)} values where one is allowed")
    return "" if value is None else str(value)


def check_sop_uid(
    client: OrthancClient, sop_uid: str, *, study_uid: str, series_uid: str, patient_id: str
) -> None:
    """Refuse a SOPInstanceUID that already names an instance of another series or patient.

    Orthanc keys an instance by its patient, study, series and SOP UIDs together, so the same
    SOPInstanceUID under another series would be stored a second time, not refused. Under
    the same ones, the server answers AlreadyStored and the document is then compared.

    Raises
    ------
    ConflictError
        Naming the instance that holds the UID and where it is filed.
    """
    for match in client.lookup(sop_uid):
        if match.type != "Instance":
            continue
        instance = client.instance(match.id)
        series = client.series(instance.parent_series)
        study = client.study(series.parent_study)
        theirs = (
            study.patient_main_tags.get("PatientID", "").strip(),
            study.main_tags.get("StudyInstanceUID", "").strip(),
            series.main_tags.get("SeriesInstanceUID", "").strip(),
        )
        if theirs != (patient_id.strip(), study_uid, series_uid):
            raise ConflictError(
                f"SOPInstanceUID {sop_uid} already names instance {match.id} on "
                f"{client.settings.url}, filed under PatientID {shown(theirs[0])}, study "
                f"{theirs[1]}, series {theirs[2]}; nothing was stored. Give this document its "
                "own SOPInstanceUID"
            )


def verify_same_document(
    client: OrthancClient, instance_id: str, sop_uid: str, sha256: str, size: int
) -> None:
    """An ``AlreadyStored`` answer is believed only if the stored PDF is the one sent.

    The server compared nothing but the UIDs; the stored document is streamed back and hashed
    (never held in memory), so a different PDF under a reused SOPInstanceUID is caught.

    Raises
    ------
    ConflictError
        The stored document differs, or the instance holds none. Nothing was changed.
    """
    try:
        with open(os.devnull, "wb") as sink:
            stored = fetch_pdf(client, instance_id, sink)
    except NotEncapsulatedPdfError as exc:
        raise ConflictError(
            f"SOPInstanceUID {sop_uid} is already used on {client.settings.url} by instance "
            f"{instance_id}, which holds no PDF ({exc}); nothing was stored"
        ) from exc
    if stored.size != size or stored.sha256 != sha256:
        raise ConflictError(
            f"SOPInstanceUID {sop_uid} is already used on {client.settings.url} by instance "
            f"{instance_id} with another document ({stored.size} bytes, sha256 "
            f"{stored.sha256[:16]}...; this one {size} bytes, {sha256[:16]}...); nothing was "
            "changed. Give this document its own SOPInstanceUID"
        )


def _create_dicom_body(document: EncodedPdf, progress: ProgressCallback | None) -> RepeatableBody:
    """The create-dicom JSON, streamed: the base64 of the PDF is made piece by piece."""
    tags = {
        element.keyword: tag_json_value(element.value, element.VR)
        for element in document.dataset
        if element.keyword not in _ENCODER_OWNED
    }
    tags |= _dates_orthanc_would_add(document.dataset)
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


def _dates_orthanc_would_add(ds: Dataset) -> dict[str, str]:
    """SeriesDate/Time and AcquisitionDate/Time, which create-dicom fills from its own clock.

    Orthanc adds them when missing, in the server's time zone; given here, they agree with
    the dates the encoder wrote in the client's, whatever the two zones are.
    """
    added: dict[str, str] = {}
    if "SeriesDate" not in ds:
        added["SeriesDate"] = str(ds.get("InstanceCreationDate", ""))
        added["SeriesTime"] = str(ds.get("InstanceCreationTime", ""))
    acquired = str(ds.get("AcquisitionDateTime", ""))
    if acquired and "AcquisitionDate" not in ds:
        added["AcquisitionDate"] = acquired[:8]
        added["AcquisitionTime"] = acquired[8:14] or "000000"
    return added


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
    guard = StudyGuard(client)

    def work(source: str | BinaryIO, tags: TagsInput) -> Outcome:
        name = source if isinstance(source, str) else "<stdin>"
        if stop.is_set():
            return Outcome(name, error=NotAttemptedError(f"{name}: {NOT_ATTEMPTED}"))
        try:
            result = upload_file(
                client,
                source,
                options,
                tags=tags,
                progress=progress,
                source_name=name,
                guard=guard,
            )
        except ServerUnreachableError as error:
            stop.set()
            return Outcome(name, error=error)
        except Pdf2DcmError as error:
            if fail_fast:
                stop.set()
            return Outcome(name, error=error)
        return Outcome(name, result=result)

    if len(sources) != len(per_file_tags):
        raise ValueError(f"{len(sources)} sources but {len(per_file_tags)} sets of tags")
    workers = max(1, concurrency)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    # Only a few files are queued ahead of the one being reported, so a batch of any length
    # holds a bounded number of results in memory, and every worker still has a next file.
    pending: collections.deque[concurrent.futures.Future[Outcome]] = collections.deque()
    try:
        for source, tags in zip(sources, per_file_tags, strict=True):
            pending.append(pool.submit(work, source, tags))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        # On Ctrl-C, SIGTERM or an abandoned iterator, files not yet started never start;
        # the ones in flight finish (a half-sent upload is simply not stored).
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
