"""What an Encapsulated PDF object holds: patient, study, series, instance and document.

For a file or for an instance on the server, so that one can check an object before or after
sending it without a DICOM viewer. The document is read through to the end, into a hashing
sink, so that its size and SHA-256 are those of the PDF that ``extract``/``fetch`` would
write, checked the same way; nothing is written anywhere.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from .files import PathLike, display_name, open_input

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from .client import OrthancClient

GROUPS: Mapping[str, tuple[str, ...]] = {
    "Patient": ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex"),
    "Study": (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyDescription",
        "AccessionNumber",
        "StudyID",
        "ReferringPhysicianName",
    ),
    "Series": ("SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription"),
    "Instance": (
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceNumber",
        "ContentDate",
        "ContentTime",
        "ConversionType",
        "SpecificCharacterSet",
    ),
    "Document": ("DocumentTitle", "MIMETypeOfEncapsulatedDocument"),
}
"""The attributes shown, by group, in the order shown; an absent one is None."""

_MIME_TYPE_TAG = "0042-0012"


@dataclass(frozen=True)
class DocumentFacts:
    """The attributes of one Encapsulated PDF object, and the size and SHA-256 of its PDF.

    ``source`` is the file's name (``-`` for stdin) or the Orthanc instance ID.
    """

    source: str
    on_server: bool
    groups: Mapping[str, Mapping[str, str | None]]
    size: int
    sha256: str


class _HashingSink(io.RawIOBase):
    """Takes the PDF and keeps nothing; the copy computes the digest on the way."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(memoryview(data))


def _sink() -> BinaryIO:
    return cast("BinaryIO", _HashingSink())


def is_instance_id(text: str) -> bool:
    """Whether ``text`` has the shape of an Orthanc instance ID (five groups of 8 hex)."""
    from .client import path_segment
    from .errors import InputError

    try:
        path_segment(text, "instance")
    except InputError:
        return False
    return True


def show_file(source: PathLike | BinaryIO, *, name: str | None = None) -> DocumentFacts:
    """The facts of a DICOM file (or a stream, spooled once and read twice).

    Raises
    ------
    InputError
        Not DICOM, damaged or truncated; NotEncapsulatedPdfError when it holds no PDF.
    """
    from .extract import extract_pdf, quiet_pydicom, read_header

    name = name or display_name(source)
    with open_input(source, name=name) as (handle, _size):
        with quiet_pydicom():
            dataset = read_header(handle, name)
            groups = _groups(dataset)
        handle.seek(0)
        result = extract_pdf(handle, _sink(), source_name=name)
    if result.sha256 is None:
        raise AssertionError("extract_pdf gives the checksum unless told not to")
    return DocumentFacts(name, False, groups, result.size, result.sha256)


def show_instance(client: OrthancClient, instance_id: str) -> DocumentFacts:
    """The facts of an instance on the server; its PDF is streamed, hashed and dropped.

    Raises
    ------
    NotFoundError
        No such instance.
    NotEncapsulatedPdfError
        The instance holds no PDF.
    ServerError
        The header could not be read, or the document did not arrive whole.
    """
    from .errors import NotFoundError
    from .fetch import fetch_pdf
    from .lookup import read_instance_header

    result = fetch_pdf(client, instance_id, _sink())
    header = read_instance_header(client, instance_id)
    groups = _groups(header)
    try:
        # After the document in the file, so not in the header read above.
        mime = client.instance_content(instance_id, _MIME_TYPE_TAG, max_bytes=256)
    except NotFoundError:
        mime = None
    document = dict(groups["Document"])
    document["MIMETypeOfEncapsulatedDocument"] = (
        mime.decode("ascii", errors="replace").rstrip("\0 ") if mime is not None else None
    )
    return DocumentFacts(
        instance_id, True, {**groups, "Document": document}, result.size, result.sha256
    )


def _groups(dataset: Dataset) -> dict[str, dict[str, str | None]]:
    return {
        group: {keyword: _text(dataset, keyword) for keyword in keywords}
        for group, keywords in GROUPS.items()
    }


def _text(dataset: Dataset, keyword: str) -> str | None:
    """An attribute's value as text (values joined by ``\\``), decoded with the object's
    character set; None when absent or unreadable."""
    try:
        element = dataset.data_element(keyword)
        if element is None:
            return None
        value = element.value
    except (ValueError, KeyError, TypeError, LookupError):
        return None
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(item) for item in value)
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    return str(value)
