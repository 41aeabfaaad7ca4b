"""Finding what a new document joins on the server, read from the DICOM itself.

Orthanc's JSON views decode text with Orthanc's own character-set support, which gets some
sets wrong (``ISO 2022 IR 13\\ISO 2022 IR 87`` names come back garbled in 1.10). Attributes
that are copied into a new document are therefore read from the stored DICOM header of one
instance and decoded by pydicom with that object's own SpecificCharacterSet, the same way a
reference file is read; only numbers (SeriesNumber, InstanceNumber) come from the JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import warnings
from collections.abc import Iterable, Mapping

from pydicom.dataset import Dataset
from pydicom.filereader import read_partial

from .client import OrthancClient, Patient, Series, Study, path_segment, shown
from .dicom import ReferenceAttributes, reference_from_header
from .errors import InputError, NotFoundError, UnexpectedReplyError
from .identity import Level

HEADER_READS = (256 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024)
"""How much of a stored file is fetched to find its header: growing, so that a big PDF is
never downloaded whole just to read the patient's name."""
_DOCUMENT_TAG = 0x00420011


def resolve_resource(client: OrthancClient, orthanc_id: str) -> Patient | Study | Series:
    """The patient, study or series with this Orthanc ID, whichever it is."""
    try:
        path_segment(orthanc_id, "study")
    except InputError:
        raise InputError(
            f"{shown(orthanc_id)} is not an Orthanc ID; give five groups of 8 lowercase hex "
            "digits, as 'pdf2dcm upload --json' prints in ParentStudy"
        ) from None
    for getter in (client.series, client.study, client.patient):
        with contextlib.suppress(NotFoundError):
            return getter(orthanc_id)
    raise NotFoundError(
        f"no patient, study or series with ID {orthanc_id} on {client.settings.url}; "
        "give an Orthanc ID as shown by 'pdf2dcm upload --json'",
        status=404,
        url=client.url("/tools/lookup"),
    )


def parent_reference(client: OrthancClient, orthanc_id: str) -> ReferenceAttributes:
    """Patient, study and series attributes of an Orthanc resource, to attach new documents.

    A patient gives a new study; a study a new series with the next free SeriesNumber; a
    series its next free InstanceNumber.
    """
    resource = resolve_resource(client, orthanc_id)
    level: Level
    if isinstance(resource, Series):
        level, instance_id = "series", _first(resource.instances, resource.id)
    elif isinstance(resource, Study):
        instances = [instance.id for instance in client.study_instances(resource.id)]
        level, instance_id = "study", _first(instances, resource.id)
    else:
        study_id = _first(resource.studies, resource.id)
        instances = [instance.id for instance in client.study_instances(study_id)]
        level, instance_id = "patient", _first(instances, resource.id)
    header = read_instance_header(client, instance_id)
    reference = reference_from_header(header, level, f"{level} {orthanc_id}")
    if isinstance(resource, Series):
        numbers = (i.main_tags for i in client.series_instances(resource.id))
        return dataclasses.replace(
            reference, next_instance_number=next_number(numbers, "InstanceNumber")
        )
    if isinstance(resource, Study):
        numbers = (s.main_tags for s in client.study_series(resource.id))
        return dataclasses.replace(
            reference, next_series_number=next_number(numbers, "SeriesNumber")
        )
    return reference


def _first(ids: Iterable[str], owner: str) -> str:
    for orthanc_id in ids:
        return orthanc_id
    raise UnexpectedReplyError(f"resource {owner} holds no instance to read attributes from")


def read_instance_header(client: OrthancClient, instance_id: str) -> Dataset:
    """The attributes of a stored instance up to its document or pixel data.

    Only the beginning of the file is fetched; more is asked for if the header is longer.
    """
    last_error: Exception | None = None
    for size in HEADER_READS:
        data = client.instance_header_bytes(instance_id, size)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = read_partial(
                    io.BytesIO(data), stop_when=lambda tag, _vr, _length: tag >= _DOCUMENT_TAG
                )
                # Decoding needs the raw bytes, which may lie past a truncation: touch them now.
                for element in header:
                    _ = element.value
            return header
        except (EOFError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            last_error = exc
            if len(data) < size:
                break
    raise UnexpectedReplyError(
        f"the DICOM header of instance {instance_id} on {client.settings.url} cannot be "
        f"read ({last_error})"
    )


def next_number(tags: Iterable[Mapping[str, str]], keyword: str) -> int:
    """One past the highest ``keyword`` among the resources' main tags (1 when none)."""
    numbers = [0]
    for main in tags:
        with contextlib.suppress(ValueError):
            numbers.append(int(main.get(keyword, "").strip()))
    return max(numbers) + 1
