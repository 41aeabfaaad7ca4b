"""Upload use case: PDFs (encoded on the fly) and ready-made DICOM files into Orthanc.

Three ways in, one result shape:

- ``instances`` (default): our own conformant encoding streamed to ``POST /instances``;
- ``create-dicom``: Orthanc's server-side dicomization, given the complete attribute set our
  encoder would write (so the object is as valid) and client-generated UIDs (so a retried
  request finds ``AlreadyStored`` instead of creating a twin);
- ``stow``: DICOMweb STOW-RS, for archives other than Orthanc;
- ``dimse``: C-STORE to a DICOM node (``AET@HOST:PORT``), the same encoding streamed in
  P-DATA pieces; the node is then also the archive the documents are planned against (C-FIND).

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
from collections.abc import Callable, Iterator, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeAlias

from .client import OrthancClient, RepeatableBody, StoredInstance
from .dicom import EncodedPdf, attribute_values, strict_refusal, tag_json_value
from .errors import (
    ConflictError,
    InputError,
    NotAttemptedError,
    NotEncapsulatedPdfError,
    NotFoundError,
    Pdf2DcmError,
    ServerError,
    ServerUnreachableError,
)
from .files import CHUNK_SIZE, expand_directories, open_input, replayable_inputs
from .identity import ReferenceAttributes
from .imports import load_pydicom
from .lookup import OrthancArchive, Target
from .plan import (
    STRICT_NOT_SENT,
    ArchiveView,
    DocumentPlan,
    Planner,
    PlanOptions,
    check_sop_uid,
)
from .progress import ProgressCallback, ProgressEvent
from .sniff import looks_like_dicom
from .tags import TagsInput, ValidatedTags, validate_tags

if TYPE_CHECKING:
    # A plain PDF is sent from its attributes; pydicom is imported only for DICOM inputs,
    # create-dicom and dry runs (its import is most of a one-file upload's time), and the
    # DICOM networking only when a node is the destination.
    from pydicom.dataset import Dataset

    from . import dimse
    from .dimse_archive import DicomArchive

Method = Literal["instances", "create-dicom", "stow", "dimse"]
Server: TypeAlias = "OrthancClient | DicomArchive"
"""Where documents go: Orthanc's REST API, or a DICOM node spoken to directly."""
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
    sop_class_uid: str | None = None
    dicom_status: str | None = None
    """By DIMSE: the C-STORE status, ``0000`` or a warning such as ``B000``."""


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


@dataclass(frozen=True)
class PreparedBatch:
    """A batch ready to send: every file planned, the reference resolved, one planner for all."""

    options: UploadOptions
    """The batch's options, with the reference looked up on the server if a target named it."""
    planner: Planner
    plans: list[DocumentPlan]
    warnings: tuple[str, ...]

    @property
    def per_file(self) -> list[ValidatedTags]:
        """Each file's planned tags."""
        return [plan.tags for plan in self.plans]


def plan_options(options: UploadOptions, *, same_series: bool = False) -> PlanOptions:
    """The planning options of an upload: an archive files documents without PatientID
    under one patient (a warning), and create-dicom cannot take ISO 2022 sets."""
    return PlanOptions(
        tags=options.tags,
        title=options.title,
        conversion_type=options.conversion_type,
        same_series=same_series,
        strict=options.strict,
        now=options.now,
        code_extensions=options.method != "create-dicom",
        warn_no_patient_id=True,
    )


def archive_view(client: Server) -> ArchiveView:
    """The archive documents sent to ``client`` are planned against."""
    return client if not isinstance(client, OrthancClient) else OrthancArchive(client)


def prepare_batch(
    client: Server,
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
    each file is planned by the one planning stage (:mod:`pdf2dcm.plan`): the batch's UIDs
    and numbers (continuing the server's) under its own tags (name, sidecar, manifest);
    files that would split one study over two patients are refused. ``sources`` are names
    (``-`` for stdin). The reference's warnings go to ``warn`` as soon as they are known, so
    that a refusal after them does not hide them; each file's own come with its result.
    """
    if options.reference is not None and target is not None:
        raise ValueError("give the batch a reference or a target to look up, not both")
    warnings: list[str] = []
    reference = options.reference
    if reference is None and target is not None:
        reference = target.reference(client, validate_tags(options.tags))
    for text in reference.warnings if reference is not None else ():
        warnings.append(text)
        if warn is not None:
            warn(text)
    planner = Planner(plan_options(options, same_series=same_series), archive_view(client))
    plans = planner.plan(sources, own_tags, reference)
    return PreparedBatch(
        dataclasses.replace(options, reference=reference), planner, plans, tuple(warnings)
    )


def check_forward_target(
    client: OrthancClient, target: Literal["modality", "peer"], name: str
) -> None:
    """Refuse an unknown modality or peer before anything is uploaded, naming the known ones."""
    known = client.targets(target)
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise InputError(f"{client.settings.url} knows no {target} named {name!r}; known: {listed}")


def upload_file(
    client: Server,
    source: str | BinaryIO,
    options: UploadOptions,
    *,
    tags: TagsInput | None = None,
    progress: ProgressCallback | None = None,
    source_name: str | None = None,
    plan: DocumentPlan | None = None,
    planner: Planner | None = None,
) -> UploadResult:
    """Send one PDF (encoded here) or one Encapsulated PDF DICOM file (sent unchanged).

    ``plan`` and ``planner`` come from :func:`prepare_batch` (or a hot folder), which plans
    every file of a batch together; without them the file is planned alone, with ``tags``
    (default ``options.tags``). Raises InputError for the file, ConflictError when the
    server holds another patient's study or another document under the same UID,
    ServerError for the server's part.
    """
    name = source_name or (source if isinstance(source, str) else "<stdin>")
    if planner is None:
        planner = Planner(plan_options(options), archive_view(client))
    if plan is None:
        own = validate_tags(options.tags if tags is None else tags)
        key = source if isinstance(source, str) else "-"
        [plan] = planner.plan([key], [own], options.reference)
    plan = dataclasses.replace(plan, source=name if plan.source != "-" else "-")
    with open_input(source, name=name) as (handle, size):
        if looks_like_dicom(handle):
            return _upload_dicom(client, handle, size, name, options, plan.tags, progress, planner)
        with planner.open(plan, handle) as document:
            if options.dry_run:
                return _planned(
                    name,
                    document.dataset,
                    document.sha256 or "",
                    document.pdf_size,
                    document.warnings,
                )
            if not isinstance(client, OrthancClient):
                return _store_encoded(client, document, progress)
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


def _identifiers(ds: Dataset | Mapping[str, Any]) -> dict[str, Any]:
    """The PatientID and the study and series UIDs, as the record of an upload shows them."""
    return {
        "patient_id": _optional_text(ds, "PatientID"),
        "study_instance_uid": _optional_text(ds, "StudyInstanceUID"),
        "series_instance_uid": _optional_text(ds, "SeriesInstanceUID"),
    }


def _optional_text(ds: Dataset | Mapping[str, Any], keyword: str) -> str | None:
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
    sop_uid = str(document.attributes["SOPInstanceUID"])
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
        document.attributes,
        document.sha256,
        document.pdf_size,
        document.warnings,
    )


def _result(
    client: OrthancClient,
    name: str,
    stored: StoredInstance | None,
    ds: Dataset | Mapping[str, Any],
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


def _store_encoded(
    archive: DicomArchive, document: EncodedPdf, progress: ProgressCallback | None
) -> UploadResult:
    """C-STORE the document as it is encoded (no file on disk)."""
    load_pydicom()
    from . import dimse

    stored = dimse.store(
        archive.node,
        document.chunks(progress),
        calling_aet=archive.calling_aet,
        timeout=archive.timeout,
        name=document.name,
    )
    if document.sha256 is None:
        raise AssertionError("the data set was not sent to its end")
    return _stored_result(
        document.name,
        stored,
        document.dataset,
        document.sha256,
        document.pdf_size,
        document.warnings,
    )


def _store_file(
    archive: DicomArchive, handle: BinaryIO, name: str, progress: ProgressCallback | None
) -> dimse.StoreResult:
    """C-STORE a ready-made DICOM file as it is."""
    load_pydicom()
    from . import dimse

    return dimse.store(
        archive.node,
        handle,
        calling_aet=archive.calling_aet,
        timeout=archive.timeout,
        name=name,
        progress=progress,
    )


def _stored_result(
    name: str,
    stored: dimse.StoreResult,
    ds: Dataset,
    digest: str,
    pdf_size: int,
    warnings: tuple[str, ...],
) -> UploadResult:
    warning = stored.warning
    return UploadResult(
        input=name,
        id=None,
        parent_patient=None,
        parent_study=None,
        parent_series=None,
        status="Warning" if warning is not None else "Success",
        sop_instance_uid=stored.sop_instance_uid,
        sha256=digest,
        url=None,
        size=pdf_size,
        **_identifiers(ds),
        warnings=warnings + ((warning,) if warning is not None else ()),
        sop_class_uid=stored.sop_class_uid,
        dicom_status=f"{stored.status.code:04X}",
    )


def _upload_dicom(
    client: Server,
    handle: BinaryIO,
    size: int,
    name: str,
    options: UploadOptions,
    tags: ValidatedTags,
    progress: ProgressCallback | None,
    planner: Planner,
) -> UploadResult:
    from .extract import extract_pdf, read_header  # only for DICOM inputs

    _check_sent_unchanged(name, options, tags)
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
    planner.owners.check(study_uid, patient_id)
    check_sop_uid(
        planner.archive,
        sop_uid,
        study_uid=study_uid,
        series_uid=_uid_of(header, "SeriesInstanceUID", name),
        patient_id=patient_id,
    )

    if options.dry_run:
        return _planned(name, header, extracted.sha256, extracted.size, ())
    if not isinstance(client, OrthancClient):
        handle.seek(0)
        return _stored_result(
            name,
            _store_file(client, handle, name, progress),
            header,
            extracted.sha256,
            extracted.size,
            (),
        )

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


def _check_sent_unchanged(name: str, options: UploadOptions, tags: ValidatedTags) -> None:
    """Refuse options that a DICOM file, sent as it is, cannot follow."""
    if tags or options.title is not None or options.reference is not None:
        raise InputError(
            f"{name} is already a DICOM file and is sent unchanged; tag, title and parent "
            "options apply to PDFs only, so upload it without them"
        )
    if options.method == "create-dicom":
        raise InputError(
            f"{name} is already a DICOM file; create-dicom takes PDFs, send it by "
            "instances, stow or dimse"
        )


def _uid_of(header: Dataset, keyword: str, name: str) -> str:
    value = _text_of(header, keyword).strip(" \x00")
    if not value:
        raise InputError(f"{name} has no {keyword}; an archive cannot file it")
    return value


def _text_of(header: Dataset | Mapping[str, Any], keyword: str) -> str:
    try:
        value = header.get(keyword)
    except (ValueError, TypeError, LookupError) as exc:
        raise InputError(f"cannot read {keyword}: {exc}") from exc
    if isinstance(value, MutableSequence):  # pydicom's MultiValue or a list
        raise InputError(f"{keyword} holds {len(value)} values where one is allowed")
    return "" if value is None else str(value)


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
    from .fetch import fetch_pdf  # only when a document is already stored

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
    client: Server,
    batch: PreparedBatch,
    sources: Sequence[str | BinaryIO],
    *,
    concurrency: int = 1,
    fail_fast: bool = False,
    progress: ProgressCallback | None = None,
) -> Iterator[Outcome]:
    """Upload a planned batch, yielding outcomes in input order.

    A bad file or a refused upload is reported and the batch goes on (unless ``fail_fast``);
    an unreachable server ends it, since every further file would fail the same way. Files
    not attempted are reported too, so the caller can list them. With ``strict`` every file
    is first carried out as a dry run: if any is refused (a warning included), nothing is
    sent, each refusal is reported and the other files are not attempted.
    """
    if len(sources) != len(batch.plans):
        raise ValueError(f"{len(sources)} sources but {len(batch.plans)} plans")
    if not batch.options.strict or batch.options.dry_run:
        yield from _run_batch(client, batch, sources, concurrency, fail_fast, progress)
        return
    names = [source if isinstance(source, str) else "-" for source in sources]
    streams = [source for source in sources if not isinstance(source, str)]
    if len(streams) > 1:
        raise ValueError("one stream (stdin) at most")
    with replayable_inputs(names, streams[0] if streams else None) as replay:
        trial = dataclasses.replace(batch, options=dataclasses.replace(batch.options, dry_run=True))
        checked = list(_run_batch(client, trial, names, concurrency, False, None, replay))
        if not isinstance(client, OrthancClient) and client.unverified is not None:
            # What the node holds could not be checked: a warning, so nothing is sent.
            refusal = strict_refusal(client.unverified)
            checked = [
                Outcome(outcome.input, error=outcome.error or refusal) for outcome in checked
            ]
        if any(outcome.error is not None for outcome in checked):
            for outcome in checked:
                yield (
                    outcome
                    if outcome.error is not None
                    else Outcome(
                        outcome.input,
                        error=NotAttemptedError(f"{outcome.input}: {STRICT_NOT_SENT}"),
                    )
                )
            return
        batch.planner.refresh()
        # What the check could not foresee (a stored twin whose bytes differ) stops the rest.
        yield from _run_batch(client, batch, names, concurrency, True, progress, replay)


def _run_batch(
    client: Server,
    batch: PreparedBatch,
    sources: Sequence[str | BinaryIO],
    concurrency: int,
    fail_fast: bool,
    progress: ProgressCallback | None,
    replay: Callable[[str], str | BinaryIO] | None = None,
) -> Iterator[Outcome]:
    stop = threading.Event()

    def work(source: str | BinaryIO, plan: DocumentPlan) -> Outcome:
        name = plan.name
        if replay is not None and isinstance(source, str):
            source = replay(source)
        if stop.is_set():
            return Outcome(name, error=NotAttemptedError(f"{name}: {NOT_ATTEMPTED}"))
        try:
            result = upload_file(
                client,
                source,
                batch.options,
                progress=progress,
                source_name=name,
                plan=plan,
                planner=batch.planner,
            )
        except ServerUnreachableError as error:
            stop.set()
            return Outcome(name, error=error)
        except Pdf2DcmError as error:
            if fail_fast:
                stop.set()
            return Outcome(name, error=error)
        return Outcome(name, result=result)

    workers = max(1, concurrency)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    # Only a few files are queued ahead of the one being reported, so a batch of any length
    # holds a bounded number of results in memory, and every worker still has a next file.
    pending: collections.deque[concurrent.futures.Future[Outcome]] = collections.deque()
    try:
        for source, plan in zip(sources, batch.plans, strict=True):
            pending.append(pool.submit(work, source, plan))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        # On Ctrl-C, SIGTERM or an abandoned iterator, files not yet started never start;
        # the ones in flight finish (a half-sent upload is simply not stored).
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def commit_stored(
    archive: DicomArchive,
    results: Sequence[UploadResult],
    *,
    listen_port: int | None = None,
    stop: threading.Event | None = None,
) -> dimse.CommitResult:
    """Ask the node to commit to every document it stored (one storage commitment
    transaction), and wait for its report; see :func:`pdf2dcm.dimse.commit`.

    Raises
    ------
    CommitmentFailedError
        The node reported documents it did not commit to.
    CommitmentTimeoutError
        No report came within the archive's timeout (it may still commit later).
    """
    instances = [
        (result.sop_class_uid, result.sop_instance_uid)
        for result in results
        if result.sop_class_uid is not None and result.dicom_status is not None
    ]
    load_pydicom()
    from . import dimse

    return dimse.commit(
        archive.node,
        instances,
        calling_aet=archive.calling_aet,
        timeout=archive.timeout,
        listen_port=listen_port,
        stop=stop,
    )
