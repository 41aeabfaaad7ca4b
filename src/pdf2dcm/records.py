"""The JSON records the commands print: one schema, one place.

Scripts read these records (``--json``, or ``ls``/``show``/``--dry-run`` into a pipe), so
their shape is a contract, documented in the README's table and kept here only:

- every record is one JSON object on one line, with a ``Kind`` that says which shape it is
  (``encoded``, ``planned``, ``extracted``, ``uploaded``, ``fetched``, ``document``,
  ``object``, ``job``, ``waiting``, ``committed``, ``held``, ``changed``, ``failed``), so
  ``jq 'select(.Kind == "uploaded")'`` never meets a surprise;
- keys are PascalCase, the casing of DICOM keywords and of Orthanc's own JSON, so a
  record's DICOM attributes and the tool's own fields read alike;
- an input read from stdin is named ``-`` in ``Input``, as on the command line (messages,
  and so ``Error``, call it ``<stdin>``);
- ``Size`` is the PDF's length in bytes, ``SHA256`` its SHA-256 in lower-case hex;
- every key of a kind is always present; what is unknown is ``null``;
- a file that fails gives a ``failed`` record with its ``Error`` (the message printed on
  stderr) and ``ExitCode`` (what the file alone would have exited with).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .dicom import EncodeResult
    from .dimse import CommitResult
    from .errors import Pdf2DcmError
    from .extract import ExtractResult
    from .fetch import FetchResult
    from .listing import DocumentInfo
    from .show import DocumentFacts
    from .upload import UploadResult

Record = dict[str, Any]


def dumps(record: Mapping[str, Any], *, indent: int | None = None) -> str:
    """A record as JSON text that is always valid UTF-8.

    A file name that is not UTF-8 arrives with surrogate escapes; then the whole record is
    written with JSON escapes (``ensure_ascii``), which any reader decodes back.
    """
    text = json.dumps(record, ensure_ascii=False, indent=indent)
    if any("\ud800" <= char <= "\udfff" for char in text):
        text = json.dumps(record, ensure_ascii=True, indent=indent)
    return text


def encoded(source: str, result: EncodeResult) -> Record:
    return {
        "Kind": "encoded",
        "Input": source,
        "Output": result.output,
        "PatientID": result.patient_id,
        "StudyInstanceUID": result.study_instance_uid,
        "SeriesInstanceUID": result.series_instance_uid,
        "SOPInstanceUID": result.sop_instance_uid,
        "DocumentTitle": result.document_title,
        "Size": result.pdf_size,
        "SHA256": result.sha256,
    }


def planned(source: str, attributes: Mapping[str, Any]) -> Record:
    """``Tags`` has the shape of a ``--tags-file``: it can be edited and given back."""
    return {"Kind": "planned", "Input": source, "Tags": dict(attributes)}


def extracted(source: str, result: ExtractResult) -> Record:
    return {
        "Kind": "extracted",
        "Input": source,
        "Output": result.output,
        "Size": result.size,
        "SHA256": result.sha256,
    }


def uploaded(source: str, result: UploadResult) -> Record:
    return {
        "Kind": "uploaded",
        "Input": source,
        "Status": result.status,
        "ID": result.id,
        "ParentPatient": result.parent_patient,
        "ParentStudy": result.parent_study,
        "ParentSeries": result.parent_series,
        "PatientID": result.patient_id,
        "StudyInstanceUID": result.study_instance_uid,
        "SeriesInstanceUID": result.series_instance_uid,
        "SOPInstanceUID": result.sop_instance_uid,
        "Size": result.size,
        "SHA256": result.sha256,
        "URL": result.url,
        "DicomStatus": result.dicom_status,
    }


def fetched(instance_id: str, output: str | None, result: FetchResult | None) -> Record:
    """A PDF written (``Status`` ``Written``) or left as it was (``Skipped``: no checksum)."""
    return {
        "Kind": "fetched",
        "ID": instance_id,
        "Output": output,
        "Status": "Written" if result is not None else "Skipped",
        "Size": result.size if result is not None else None,
        "SHA256": result.sha256 if result is not None else None,
    }


def document(info: DocumentInfo) -> Record:
    return {
        "Kind": "document",
        "ID": info.id,
        "ParentPatient": info.parent_patient,
        "ParentStudy": info.parent_study,
        "ParentSeries": info.parent_series,
        "SOPInstanceUID": info.sop_instance_uid,
        "PatientID": info.patient_id,
        "PatientName": info.patient_name,
        "StudyDate": info.study_date,
        "AccessionNumber": info.accession_number,
        "DocumentTitle": info.document_title,
        "ContentDate": info.content_date,
        "Size": info.size,
    }


def shown(facts: DocumentFacts) -> Record:
    """``Input`` (a file) or ``ID`` (an instance), then one object per group of attributes."""
    record: Record = {"Kind": "object", "ID" if facts.on_server else "Input": facts.source}
    for group, values in facts.groups.items():
        record[group] = dict(values)
    record["Document"] |= {"Size": facts.size, "SHA256": facts.sha256}
    return record


def job(status: Mapping[str, Any], **extra: Any) -> Record:
    """Orthanc's own job object (``ID``, ``Type``, ``State``, ``Progress``...), marked."""
    return {"Kind": "job", **status, **extra}


def failed(key: str, name: str, error: Pdf2DcmError, exit_code: int) -> Record:
    """A file (``Input``) or an instance (``ID``) that failed, with why and its exit code."""
    return {
        "Kind": "failed",
        key: name,
        "Error": str(error),
        "ExitCode": exit_code,
    }


def committed(node: str, result: CommitResult) -> Record:
    """A storage commitment report: what the node committed to, and what it did not."""
    return {
        "Kind": "committed",
        "Node": node,
        "TransactionUID": result.transaction_uid,
        "Committed": [sop_instance for _sop_class, sop_instance in result.committed],
        "Failed": [
            {"SOPInstanceUID": sop_instance, "FailureReason": f"{reason:04X}"}
            for _sop_class, sop_instance, reason in result.failed
        ],
    }


class Watched(Protocol):
    """What a hot folder's record is made of (:class:`pdf2dcm.watch.WatchEvent`)."""

    @property
    def time(self) -> dt.datetime: ...
    @property
    def file(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def result(self) -> UploadResult | None: ...
    @property
    def error(self) -> Pdf2DcmError | None: ...
    @property
    def destination(self) -> str | None: ...
    @property
    def retry_in(self) -> float | None: ...
    @property
    def job(self) -> str | None: ...


def watched(event: Watched, exit_code: int | None) -> Record:
    """A hot folder's file: ``uploaded``, ``failed``, ``waiting`` (a retry, or a PDF still
    being written), ``held`` (its target not found yet; ``NextTry`` says when it is looked
    up again), ``changed`` (stored, then found changed: the record is the earlier document's,
    to be removed; the file is sent again) or ``vanished``.

    Beside each kind's fields: ``Time`` (ISO 8601), ``Destination`` (where the file went, a
    path below the done or failed folder, ``deleted``, or null: still in the inbox) and
    ``Job`` (the forwarding job, or null); ``failed`` and ``waiting`` add the file's
    ``SHA256``. ``Input`` is the path below the inbox.
    """
    record: Record
    if event.status == "stored" and event.result is not None:
        record = uploaded(event.file, event.result)
    elif event.status == "planned" and event.result is not None:
        record = planned(event.file, event.result.attributes or {})
    elif event.status == "failed" and event.error is not None:
        record = failed("Input", event.file, event.error, exit_code or 1)
        record["SHA256"] = event.sha256
    elif event.status in ("retry", "incomplete", "held"):
        error = str(event.error) if event.error is not None else None
        kind = "held" if event.status == "held" else "waiting"
        record = {"Kind": kind, "Input": event.file, "Error": error}
        record |= {"RetryIn": event.retry_in, "SHA256": event.sha256}
        if event.retry_in is not None:
            next_try = event.time + dt.timedelta(seconds=event.retry_in)
            record["NextTry"] = next_try.isoformat(timespec="seconds")
    elif event.status == "changed" and event.result is not None:
        record = uploaded(event.file, event.result)
        record |= {"Kind": "changed", "Error": str(event.error)}
    else:
        record = {"Kind": event.status, "Input": event.file}
    record["Time"] = event.time.isoformat(timespec="seconds")
    record["Destination"] = event.destination
    record["Job"] = event.job
    return record


def matched(source: str, result: UploadResult, choice: str) -> Record:
    """A waiting file a person filed on the review page: its ``uploaded`` record, with the
    ``Choice`` made (``study ID``, ``patient ID``, ``worklist KEY=VALUE`` or ``as-is``)."""
    return uploaded(source, result) | {"Kind": "matched", "Choice": choice}


def rejected(source: str, reason: str) -> Record:
    """A waiting file a person rejected on the review page, with the ``Reason`` given."""
    return {"Kind": "rejected", "Input": source, "Reason": reason}
