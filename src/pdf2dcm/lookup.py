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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .client import Instance, OrthancClient, Patient, Series, Study, path_segment, shown
from .constants import DEFAULT_CALLING_AET, DEFAULT_DIMSE_TIMEOUT
from .dicom import reference_from_header
from .errors import (
    InputError,
    NotFoundError,
    ServerFailedError,
    ServerUnreachableError,
    UnexpectedReplyError,
)
from .identity import Level, ReferenceAttributes
from .imports import load_pydicom
from .pertags import fill_placeholders, keyword_values
from .plan import JoinLevel, SopLocation
from .tags import ValidatedTags

if TYPE_CHECKING:
    import ssl

    # Imported where a header is read or a worklist copied, not by a plain upload.
    from pydicom.dataset import Dataset

    from .dimse_archive import DicomArchive

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
    series its next free InstanceNumber. The attributes are read from the study's images,
    not from whichever instance Orthanc lists first (see :func:`reference_instance`).
    """
    resource = resolve_resource(client, orthanc_id)
    level: Level
    if isinstance(resource, Series):
        level = "series"
        instance_id = reference_instance(client, [resource])
    elif isinstance(resource, Study):
        level = "study"
        instance_id = reference_instance(client, client.study_series(resource.id), resource.id)
    else:
        level = "patient"
        study_id = _first(resource.studies, resource.id)
        instance_id = reference_instance(client, client.study_series(study_id), study_id)
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


DOCUMENT_MODALITIES = frozenset({"DOC"})
"""Series of documents (Encapsulated PDF and CDA): never the reference while images exist."""


def reference_instance(client: OrthancClient, series: Iterable[Series], owner: str = "") -> str:
    """The instance whose attributes a new document copies: the oldest of the study's images.

    Documents follow the images: a study's documents may have been written in another
    character set (or with other padding) than its images, and copying from whichever
    instance is listed first made each new document follow the last one. The oldest
    instance (InstanceCreationDate/Time, then InstanceNumber) of the oldest series that is
    not a document series is taken; a study of documents only gives its oldest document.
    """
    listed = list(series)
    images = [
        s for s in listed if s.main_tags.get("Modality", "").strip() not in DOCUMENT_MODALITIES
    ]
    for candidate in sorted(images or listed, key=_series_age):
        instances = client.series_instances(candidate.id)
        if instances:
            return min(instances, key=_instance_age).id
    raise UnexpectedReplyError(f"resource {owner} holds no instance to read attributes from")


def _series_age(series: Series) -> tuple[str, str, int, str]:
    tags = series.main_tags
    return (
        tags.get("SeriesDate", "").strip() or "99999999",
        tags.get("SeriesTime", "").strip() or "999999",
        _number(tags.get("SeriesNumber", "")),
        series.id,
    )


def _instance_age(instance: Instance) -> tuple[str, str, int, str]:
    tags = instance.main_tags
    return (
        tags.get("InstanceCreationDate", "").strip() or "99999999",
        tags.get("InstanceCreationTime", "").strip() or "999999",
        _number(tags.get("InstanceNumber", "")),
        instance.id,
    )


def _number(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return 2**31


def _first(ids: Iterable[str], owner: str) -> str:
    for orthanc_id in ids:
        return orthanc_id
    raise UnexpectedReplyError(f"resource {owner} holds no instance to read attributes from")


class OrthancArchive:
    """The planning stage's read-only view of an Orthanc server (a
    :class:`pdf2dcm.plan.ArchiveView`)."""

    def __init__(self, client: OrthancClient) -> None:
        self.client = client

    @property
    def name(self) -> str:
        return self.client.settings.url

    def study_owner(self, study_uid: str) -> tuple[str, str | None] | None:
        for match in self.client.lookup(study_uid):
            if match.type == "Study":
                study = self.client.study(match.id)
                return study.patient_main_tags.get("PatientID", ""), study.parent_patient
        return None

    def sop_location(self, sop_uid: str) -> SopLocation | None:
        for match in self.client.lookup(sop_uid):
            if match.type != "Instance":
                continue
            instance = self.client.instance(match.id)
            series = self.client.series(instance.parent_series)
            study = self.client.study(series.parent_study)
            return SopLocation(
                instance_id=match.id,
                patient_id=study.patient_main_tags.get("PatientID", ""),
                study_uid=study.main_tags.get("StudyInstanceUID", "").strip(),
                series_uid=series.main_tags.get("SeriesInstanceUID", "").strip(),
            )
        return None

    def next_series_number(self, study_uid: str) -> int:
        highest = 1
        for match in self.client.lookup(study_uid):
            if match.type == "Study":
                numbers = (s.main_tags for s in self.client.study_series(match.id))
                highest = max(highest, next_number(numbers, "SeriesNumber"))
        return highest

    def stored_reference(self, level: JoinLevel, uid: str) -> ReferenceAttributes | None:
        wanted = "Study" if level == "study" else "Series"
        for match in self.client.lookup(uid):
            if match.type == wanted:
                return parent_reference(self.client, match.id)
        return None

    def series_number(self, series_uid: str) -> int | None:
        for match in self.client.lookup(series_uid):
            if match.type == "Series":
                text = self.client.series(match.id).main_tags.get("SeriesNumber", "").strip()
                return int(text) if text.isdigit() else None
        return None

    def next_instance_number(self, series_uid: str) -> int:
        highest = 1
        for match in self.client.lookup(series_uid):
            if match.type == "Series":
                numbers = (i.main_tags for i in self.client.series_instances(match.id))
                highest = max(highest, next_number(numbers, "InstanceNumber"))
        return highest


def read_instance_header(client: OrthancClient, instance_id: str) -> Dataset:
    """The attributes of a stored instance up to its document or pixel data.

    Only the beginning of the file is fetched; more is asked for if the header is longer.
    """
    load_pydicom()
    from pydicom.filereader import read_partial

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


# --- selecting a target by the identifiers people have ---------------------------------------

PATIENT_KEYS = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "PatientSex")
STUDY_KEYS = (
    *PATIENT_KEYS,
    "StudyInstanceUID",
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
)
SERIES_KEYS = (
    *STUDY_KEYS,
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "SeriesDate",
)
KEYS_BY_LEVEL: dict[Level, tuple[str, ...]] = {
    "patient": PATIENT_KEYS,
    "study": STUDY_KEYS,
    "series": SERIES_KEYS,
}
MAX_CANDIDATES = 10
_NARROWING: dict[Level, tuple[str, ...]] = {
    "patient": ("IssuerOfPatientID", "PatientBirthDate"),
    "study": ("AccessionNumber", "StudyInstanceUID", "StudyDate"),
    "series": ("SeriesInstanceUID", "SeriesNumber"),
}
_ORTHANC_LEVEL: dict[Level, Literal["Patient", "Study", "Series"]] = {
    "patient": "Patient",
    "study": "Study",
    "series": "Series",
}


@dataclass(frozen=True)
class Selector:
    """Which patient, study or series a user means: DICOM identifiers, or an Orthanc ID."""

    level: Level
    query: Mapping[str, str]
    orthanc_id: str | None = None

    def __str__(self) -> str:
        if self.orthanc_id is not None:
            return self.orthanc_id
        return " ".join(f"{key}={value}" for key, value in self.query.items())


def parse_selector(level: Level, terms: Iterable[str]) -> Selector:
    """``KEY=VALUE`` terms (all must match) or one bare Orthanc ID, checked for ``level``.

    Raises
    ------
    InputError
        An unknown key, a key of another level (naming the keys this level accepts), an empty
        selection, or an ID mixed with keys.
    """
    query: dict[str, str] = {}
    orthanc_id: str | None = None
    accepted = KEYS_BY_LEVEL[level]
    for term in terms:
        key, sep, value = term.partition("=")
        key = key.strip()
        if not sep:
            try:
                path_segment(term.strip(), "study")
            except InputError:
                raise InputError(
                    f"{level} selection {shown(term)} is neither KEY=VALUE nor an Orthanc ID; "
                    f"keys for a {level}: {', '.join(accepted)}"
                ) from None
            orthanc_id = term.strip()
            continue
        if key not in accepted:
            raise InputError(
                f"{shown(key)} cannot select a {level}; keys for a {level}: {', '.join(accepted)}"
            )
        if key in query and query[key] != value:
            raise InputError(f"{key} is given twice for the {level}, with different values")
        query[key] = value
    if orthanc_id is not None and query:
        raise InputError(f"give the {level} as an Orthanc ID or as KEY=VALUE terms, not both")
    if orthanc_id is None and not any(value.strip() for value in query.values()):
        raise InputError(f"the {level} selection is empty; give e.g. {accepted[0]}=...")
    return Selector(level=level, query=query, orthanc_id=orthanc_id)


def find_resources(
    client: OrthancClient, level: Level, query: Mapping[str, str], *, limit: int | None = None
) -> list[Patient | Study | Series]:
    """The resources of ``level`` whose attributes match ``query`` (Orthanc's matching rules).

    ``*`` and ``?`` are wildcards only where the user typed them; other values must match
    exactly (names without regard to case, as DICOM matching has it).
    """
    found = client.find(_ORTHANC_LEVEL[level], dict(query), limit=limit)
    return [r for r in found if isinstance(r, Patient | Study | Series)]


def find_studies(client: OrthancClient, **query: str) -> list[Study]:
    """Studies whose attributes (and their patient's) match every ``KEY=value`` given."""
    return [r for r in find_resources(client, "study", query) if isinstance(r, Study)]


def find_patients(client: OrthancClient, **query: str) -> list[Patient]:
    """Patients whose attributes match every ``KEY=value`` given."""
    return [r for r in find_resources(client, "patient", query) if isinstance(r, Patient)]


def select_one(client: OrthancClient, selector: Selector) -> Patient | Study | Series:
    """The one resource a selector names; never a guess.

    Raises
    ------
    NotFoundError
        Nothing matches (or no resource has the ID).
    InputError
        Several match (listing up to ten, with how to narrow the choice), or the Orthanc ID
        is of another level.
    """
    if selector.orthanc_id is not None:
        resource = resolve_resource(client, selector.orthanc_id)
        actual = level_of(resource)
        if actual != selector.level:
            raise InputError(
                f"{selector.orthanc_id} is a {actual} on {client.settings.url}, not a "
                f"{selector.level}; give a {selector.level} ID or select by KEY=VALUE"
            )
        return resource
    matches = find_resources(client, selector.level, selector.query, limit=MAX_CANDIDATES + 1)
    if not matches:
        raise NotFoundError(
            f"no {selector.level} matches {selector} at {client.settings.url}",
            status=404,
            url=client.url("/tools/find"),
        )
    if len(matches) > 1:
        shown_count = min(len(matches), MAX_CANDIDATES)
        more = "more than " if len(matches) > MAX_CANDIDATES else ""
        lines = [describe(client, match) for match in matches[:shown_count]]
        narrow = [f"{k}=..." for k in _NARROWING[selector.level] if k not in selector.query]
        hint = f"add {' or '.join(narrow)}, or give" if narrow else "give"
        raise InputError(
            f"{more}{shown_count} {_plural(selector.level)} match {selector} at "
            f"{client.settings.url}; {hint} the Orthanc ID:\n  " + "\n  ".join(lines)
        )
    return matches[0]


def _plural(level: Level) -> str:
    return {"patient": "patients", "study": "studies", "series": "series"}[level]


def level_of(resource: Patient | Study | Series) -> Level:
    """``patient``, ``study`` or ``series``: what a resource is."""
    if isinstance(resource, Series):
        return "series"
    if isinstance(resource, Study):
        return "study"
    return "patient"


def describe(client: OrthancClient, resource: Patient | Study | Series) -> str:
    """One line that tells a candidate apart from the others."""
    keys: tuple[str, ...]
    if isinstance(resource, Study):
        tags = {**resource.patient_main_tags, **resource.main_tags}
        keys = ("PatientID", "PatientName", "StudyDate", "AccessionNumber", "StudyDescription")
    elif isinstance(resource, Series):
        tags = dict(resource.main_tags)
        keys = ("Modality", "SeriesNumber", "SeriesDescription", "SeriesInstanceUID")
    else:
        tags = dict(resource.main_tags)
        keys = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex")
    fields = "  ".join(f"{key}={tags.get(key, '')}" for key in keys)
    return f"{resource.id}  {fields}"


def attach_reference(client: OrthancClient, selector: Selector) -> ReferenceAttributes:
    """What a document selected this way joins: see :func:`parent_reference`."""
    return parent_reference(client, select_one(client, selector).id)


# --- the modality worklist ----------------------------------------------------------------

WORKLIST_KEYS = (
    "AccessionNumber",
    "StudyInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "RequestedProcedureID",
)
_WORKLIST_COPIED = {
    "PatientName": "PatientName",
    "PatientID": "PatientID",
    "IssuerOfPatientID": "IssuerOfPatientID",
    "PatientBirthDate": "PatientBirthDate",
    "PatientSex": "PatientSex",
    "StudyInstanceUID": "StudyInstanceUID",
    "AccessionNumber": "AccessionNumber",
    "ReferringPhysicianName": "ReferringPhysicianName",
    "RequestedProcedureDescription": "StudyDescription",
    "RequestedProcedureID": "StudyID",
}
"""What a scheduled procedure gives the document: worklist keyword -> document keyword."""
_SUSPECT_TEXT = ("\ufffd", "\x1b")
_ORTHANC_NETWORK_PROTOCOL = 9
"""OrthancStatus of a DICOM association that failed (the SCP is down or refused it)."""


def worklist_reference(
    client: OrthancClient,
    modality: str,
    selector: Selector,
    given: Mapping[int, object] | None = None,
) -> ReferenceAttributes:
    """Patient and study of the one scheduled procedure that matches, from a worklist SCP.

    The document then lands in the study the modality will create (same StudyInstanceUID
    and AccessionNumber), even before its images arrive. Orthanc answers worklist queries
    in decoded JSON without the character set, and passes ISO 2022 escape sequences through
    undecoded: such a value is never copied. The user must then give it (``given``, tag
    numbers as keys), or the lookup is refused, since a garbled name must not be filed.

    Raises
    ------
    NotFoundError
        No scheduled procedure matches (or no such modality).
    InputError
        Several match, an Orthanc ID or a key the worklist cannot match was given.
    """
    load_pydicom()
    from pydicom.dataset import Dataset

    _check_worklist_selector(selector)
    answer = _scheduled_procedure(client, modality, selector)
    _check_carried(answer, client.default_encoding(), modality, given)
    dataset = Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 192"
    notes: list[str] = []
    for source_key, keyword in _WORKLIST_COPIED.items():
        value = answer.get(source_key)
        if value is None:
            continue
        value, value_notes = _copied_value(source_key, keyword, value, modality, given)
        notes.extend(value_notes)
        setattr(dataset, keyword, value)
    reference = reference_from_header(dataset, "study", f"the worklist of {modality}")
    _carry_order(reference.dataset)
    return dataclasses.replace(
        reference,
        character_set=(),
        warnings=reference.warnings + tuple(notes),
        stored_study=False,
    )


_ORDER_FROM_DOCUMENT = {
    "AccessionNumber": "AccessionNumber",
    "StudyInstanceUID": "StudyInstanceUID",
    "StudyDescription": "RequestedProcedureDescription",
    "StudyID": "RequestedProcedureID",
}
"""The order's attributes in Orthanc's worklist JSON, as the document holds them ->
Request Attributes Macro keyword. Orthanc's JSON leaves the scheduled step's sequence out,
so the item names the requested procedure only."""


def _emptied_name_group(name: str) -> bool:
    load_pydicom()
    from .dimse_archive import emptied_name_group

    return emptied_name_group(name)


def _carry_order(dataset: Dataset) -> None:
    """One RequestAttributesSequence item (PS3.3 Table 10-9) from the copied values, as IHE
    Scheduled Workflow expects of an object made for scheduled work."""
    load_pydicom()
    from pydicom.dataset import Dataset

    item = Dataset()
    for keyword, request_keyword in _ORDER_FROM_DOCUMENT.items():
        value = dataset.get(keyword)
        if value not in (None, ""):
            setattr(item, request_keyword, value)
    if "RequestedProcedureID" in item:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset.RequestAttributesSequence = [item]


def _check_worklist_selector(selector: Selector) -> None:
    """Refuse before asking the server what a worklist query could never match."""
    if selector.orthanc_id is not None:
        raise InputError("a worklist is searched by KEY=VALUE terms, not by an Orthanc ID")
    unknown = [key for key in selector.query if key not in WORKLIST_KEYS]
    if unknown:
        raise InputError(
            f"{unknown[0]} cannot select a scheduled procedure; keys for a worklist: "
            f"{', '.join(WORKLIST_KEYS)}"
        )


def scheduled_procedures(
    client: OrthancClient, modality: str, query: Mapping[str, str]
) -> list[dict[str, str]]:
    """Every scheduled procedure in the worklist of ``modality`` matching ``query`` (keys of
    :data:`WORKLIST_KEYS`), with the attributes a document copies from one.

    Raises
    ------
    InputError
        A key the worklist cannot match.
    """
    _check_worklist_selector(Selector("study", query))
    return _find_worklist(client, modality, dict.fromkeys(_WORKLIST_COPIED, "") | dict(query))


def _scheduled_procedure(
    client: OrthancClient, modality: str, selector: Selector
) -> dict[str, str]:
    """The one answer that matches: none or several cannot say which study a document joins."""
    # The answer's SpecificCharacterSet says whether the worklist SCP declared one: Orthanc
    # then converted the values to its DefaultEncoding; if not, it read the bytes as that.
    query = dict.fromkeys((*_WORKLIST_COPIED, "SpecificCharacterSet"), "") | dict(selector.query)
    answers = _find_worklist(client, modality, query)
    if not answers:
        raise NotFoundError(
            f"no scheduled procedure in the worklist of {modality} matches {selector}",
            status=404,
            url=client.url("/modalities"),
        )
    if len(answers) > 1:
        lines = [
            "  ".join(f"{key}={answer.get(key, '')}" for key in _CANDIDATE_WORKLIST_KEYS)
            for answer in answers[:MAX_CANDIDATES]
        ]
        raise InputError(
            f"{len(answers)} scheduled procedures in the worklist of {modality} match "
            f"{selector}; add a term such as AccessionNumber=... or PatientID=...:\n  "
            + "\n  ".join(lines)
        )
    return answers[0]


def _find_worklist(
    client: OrthancClient, modality: str, query: Mapping[str, str]
) -> list[dict[str, str]]:
    """The worklist's answers; a worklist SCP that cannot be reached is told apart from a
    failing Orthanc, since the fix is on the modality's side."""
    try:
        return client.find_worklist(modality, query)
    except ServerFailedError as exc:
        if exc.orthanc_status != _ORTHANC_NETWORK_PROTOCOL:
            raise
        raise ServerUnreachableError(
            f"{client.settings.url} cannot reach the worklist SCP of modality {modality} "
            f"({exc.orthanc_details or exc.orthanc_message}); is it running?"
        ) from exc


UTF8_ENCODING = "Utf8"
_PN_KEYS = frozenset({"PatientName", "ReferringPhysicianName"})


def _check_carried(
    answer: Mapping[str, str],
    encoding: str,
    modality: str,
    given: Mapping[int, object] | None,
) -> None:
    """Refuse worklist values Orthanc cannot have carried exactly.

    Orthanc answers a worklist query in its DefaultEncoding (``encoding``). When the worklist
    SCP declared a character set, characters outside that encoding are dropped, leaving name
    groups of delimiters only (``Иванов^Пётр`` becomes ``^`` under Latin1); when it declared
    none, non-ASCII bytes are read as that encoding, which names another set's text wrongly.
    UTF-8 read as Latin-1 is recognised and repaired later; a value given as a tag is used
    instead. Everything else is refused, since a mangled name must not be filed.

    Raises
    ------
    InputError
        Naming the attribute, what Orthanc answered and the two ways to get it exactly.
    """
    load_pydicom()
    from pydicom.datadict import keyword_dict

    declared = bool(answer.get("SpecificCharacterSet", "").strip())
    for source_key, keyword in _WORKLIST_COPIED.items():
        value = answer.get(source_key)
        if not value or (given is not None and keyword_dict[keyword] in given):
            continue
        if any(mark in value for mark in _SUSPECT_TEXT):
            continue  # ISO 2022 passed through undecoded: _copied_value refuses or replaces it
        dropped = source_key in _PN_KEYS and _emptied_name_group(value)
        if declared and encoding != UTF8_ENCODING and dropped:
            raise InputError(
                f"{source_key} from the worklist of {modality} came through Orthanc as "
                f"{shown(value)}: Orthanc's DefaultEncoding is {encoding}, and it drops the "
                "characters it cannot hold. Ask the worklist directly with --worklist "
                "AET@HOST:PORT, or set Orthanc's DefaultEncoding to Utf8"
            )
        misread = not value.isascii() and _utf8_read_as_latin1(value) is None
        if not declared and (misread or dropped):
            raise InputError(
                f"{source_key} from the worklist of {modality} came through Orthanc as "
                f"{shown(value)}, but the worklist declares no character set, so Orthanc "
                f"read its bytes as its DefaultEncoding {encoding}, which may be wrong. Ask "
                "the worklist directly with --worklist AET@HOST:PORT --worklist-charset "
                "SET (e.g. ISO_IR 100), or give the value as a tag"
            )


def _copied_value(
    source_key: str,
    keyword: str,
    value: str,
    modality: str,
    given: Mapping[int, object] | None,
) -> tuple[str, list[str]]:
    """The value a worklist attribute gives the document, and the notes on how it was got.

    A value Orthanc passed through undecoded is replaced by the one given, or refused, since
    a garbled name must not be filed; UTF-8 read as Latin-1 is repaired.
    """
    load_pydicom()
    from pydicom.datadict import keyword_dict

    notes: list[str] = []
    if any(mark in value for mark in _SUSPECT_TEXT):
        if given is None or keyword_dict[keyword] not in given:
            raise InputError(
                f"{source_key} from the worklist of {modality} did not come through "
                f"Orthanc exactly ({shown(value)}: its character set, likely ISO 2022, "
                f"is passed on undecoded); give the {keyword} yourself as a tag"
            )
        notes.append(
            f"{source_key} from the worklist of {modality} did not come through Orthanc "
            f"exactly; the {keyword} given is used instead"
        )
        value = str(given[keyword_dict[keyword]])
    repaired = _utf8_read_as_latin1(value)
    if repaired is not None:
        notes.append(
            f"{source_key} from the worklist of {modality} arrived as UTF-8 read as "
            f"Latin-1 (Orthanc decodes worklist answers with its DefaultEncoding); "
            f"repaired to {shown(repaired)}"
        )
        value = repaired
    return value, notes


def _utf8_read_as_latin1(value: str) -> str | None:
    """The UTF-8 text that ``value`` is, when it is UTF-8 bytes mistaken for Latin-1.

    Such bytes never spell a real Latin-1 name ("MÃ¼ller"), so the repair cannot hit a name
    that was right; anything else is left alone.
    """
    if value.isascii():
        return None
    try:
        repaired = value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None
    return repaired if repaired != value else None


_CANDIDATE_WORKLIST_KEYS = (
    "PatientID",
    "PatientName",
    "AccessionNumber",
    "StudyInstanceUID",
    "RequestedProcedureDescription",
)


@dataclass(frozen=True)
class Target:
    """Where each file's document goes, as ``--parent``/``--study``/... name it.

    Terms may hold ``{Keyword}`` placeholders, filled from the file's own values (its name,
    sidecar and tags), so each file can find its own study. ``worklist`` is an Orthanc
    modality's name, or a worklist SCP written ``AET@HOST:PORT`` (asked directly, from
    ``calling_aet``, decoding an answer without a declared set as ``worklist_charset``).
    """

    parent: str | None = None
    study: tuple[str, ...] = ()
    patient: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    worklist: str | None = None
    placeholders: bool = True
    """Fill ``{Keyword}`` from each file's values (a hot folder); False takes terms as given
    (an upload, whose batch shares one target)."""
    worklist_charset: str | None = None
    calling_aet: str = DEFAULT_CALLING_AET
    timeout: float = DEFAULT_DIMSE_TIMEOUT
    tls: ssl.SSLContext | None = None
    """How the worklist node is reached: TLS, or None for plain TCP."""

    @property
    def worklist_node(self) -> bool:
        """Whether the worklist is a DICOM node (``AET@HOST:PORT``), asked directly, rather
        than an Orthanc modality's name."""
        return self.worklist is not None and "@" in self.worklist

    def reference(
        self, client: OrthancClient | DicomArchive, tags: ValidatedTags
    ) -> ReferenceAttributes | None:
        """The attributes the document copies, looked up for this file's values: on Orthanc
        through its REST API, on a DICOM node by C-FIND."""
        values = keyword_values(tags)

        def filled(term: str, flag: str) -> str:
            return fill_placeholders(term, values, flag) if self.placeholders else term

        if self.parent is not None:
            if not isinstance(client, OrthancClient):
                raise InputError(
                    f"--parent takes an Orthanc ID; on {client.name} select the study, "
                    "patient or series with --study/--patient/--series KEY=VALUE"
                )
            return parent_reference(client, filled(self.parent, "--parent"))
        levels: tuple[tuple[Level, tuple[str, ...]], ...] = (
            ("study", self.study),
            ("patient", self.patient),
            ("series", self.series),
        )
        for level, terms in levels:
            if not terms:
                continue
            filled_terms = [filled(term, f"--{level}") for term in terms]
            if self.worklist_node:
                return self._node_worklist(filled_terms)
            selector = parse_selector(level, filled_terms)
            if not isinstance(client, OrthancClient):
                return self._on_node(client, selector)
            if self.worklist is not None:
                return worklist_reference(client, self.worklist, selector, tags)
            return attach_reference(client, selector)
        return None

    def _on_node(self, archive: DicomArchive, selector: Selector) -> ReferenceAttributes:
        if self.worklist is not None:
            raise InputError(
                f"--worklist {self.worklist} names an Orthanc modality; without Orthanc give "
                "the worklist SCP itself, --worklist AET@HOST:PORT"
            )
        if selector.orthanc_id is not None:
            raise InputError(
                f"{selector.orthanc_id} is an Orthanc ID; on {archive.name} select the "
                f"{selector.level} by KEY=VALUE terms"
            )
        return archive.reference(selector.level, selector.query)

    def _node_worklist(self, terms: Sequence[str]) -> ReferenceAttributes:
        """The one scheduled procedure a worklist SCP answers to ``terms``, by C-FIND."""
        load_pydicom()
        from .worklist import worklist_reference as order_reference

        if self.worklist is None:
            raise AssertionError("no worklist to ask")
        load_pydicom()
        from . import dimse

        node = dimse.Node.parse(self.worklist).over_tls(self.tls)
        query: dict[str, str] = {}
        for term in terms:
            key, sep, value = term.partition("=")
            if not sep:
                raise InputError(
                    f"worklist selection {shown(term)} is not KEY=VALUE; keys for a worklist: "
                    f"{', '.join(dimse.WORKLIST_QUERY_KEYS)}"
                )
            query[key.strip()] = value
        items = dimse.worklist(
            node,
            query,
            charset=self.worklist_charset,
            calling_aet=self.calling_aet,
            timeout=self.timeout,
        )
        described = " ".join(f"{key}={value}" for key, value in query.items())
        if not items:
            raise NotFoundError(
                f"no scheduled procedure in the worklist of {node} matches {described}",
                status=0,
                url=str(node),
            )
        if len(items) > 1:
            lines = [
                "  ".join(f"{key}={shown(item.text(key) or '')}" for key in _NODE_CANDIDATE_KEYS)
                for item in items[:MAX_CANDIDATES]
            ]
            raise InputError(
                f"{len(items)} scheduled procedures in the worklist of {node} match "
                f"{described}; add a term such as AccessionNumber=... or "
                "RequestedProcedureID=...:\n  " + "\n  ".join(lines)
            )
        reference = order_reference(items[0], f"the worklist of {node}")
        return dataclasses.replace(reference, stored_study=False)


_NODE_CANDIDATE_KEYS = (
    "PatientID",
    "PatientName",
    "AccessionNumber",
    "RequestedProcedureID",
    "StudyInstanceUID",
)
