"""The one planning stage: inputs, tags, the target and the options -> a plan per document.

Every way a document is made (``encode``, ``upload`` by any method, the hot folder, and each
of their dry runs) asks this module what the document will be: its complete attribute set,
character set, UIDs, SeriesNumber and InstanceNumber, the identity checks it must pass and
the warnings it earns. The commands only carry plans out (write, send, or print them), so a
document cannot be filed differently depending on the command that made it.

What the archive already holds is read through :class:`ArchiveView`, a small read-only view
(who owns a study, where a SOPInstanceUID lives, the numbers in use). The Orthanc client
implements it (:class:`pdf2dcm.lookup.OrthancArchive`); ``encode`` plans against
:class:`NoArchive`. Nothing here speaks to a server itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, Protocol

from .dicom import STDIN_NAME, EncodedPdf, open_encoded, strict_refusal
from .errors import ConflictError
from .files import CHUNK_SIZE
from .identity import ReferenceAttributes, check_batch_identity
from .pertags import merge_tags
from .tags import TagsInput, ValidatedTags, short_value, validate_tags
from .uids import batch_tags, document_uids, series_seed, shares_series

_SOP_INSTANCE_UID, _STUDY_UID, _SERIES_UID = 0x00080018, 0x0020000D, 0x0020000E
_SERIES_NUMBER, _INSTANCE_NUMBER = 0x00200011, 0x00200013
_PATIENT_ID, _DOCUMENT_TITLE = 0x00100020, 0x00420010

NO_PATIENT_ID = (
    "no PatientID given; an archive such as Orthanc files every such document under one "
    "patient; add --tag PatientID=..."
)


JoinLevel = Literal["study", "series"]
"""What a document joins when it is given the UID of a stored study or series."""


@dataclass(frozen=True)
class SopLocation:
    """Where an archive files an instance: its own ID and the UIDs above it."""

    instance_id: str
    patient_id: str
    study_uid: str
    series_uid: str


class ArchiveView(Protocol):
    """What planning needs to know of an archive, read-only."""

    @property
    def name(self) -> str:
        """How messages name the archive (its URL, its AE title and address)."""
        ...

    def study_owner(self, study_uid: str) -> tuple[str, str | None] | None:
        """The PatientID that holds the study (and the archive's own patient ID), if stored."""
        ...

    def sop_location(self, sop_uid: str) -> SopLocation | None:
        """Where an instance with this SOPInstanceUID is filed, if anywhere."""
        ...

    def next_series_number(self, study_uid: str) -> int:
        """One past the highest SeriesNumber of the study (1 when it is not stored)."""
        ...

    def stored_reference(
        self, level: Literal["study", "series"], uid: str
    ) -> ReferenceAttributes | None:
        """What a document joining the study or series of ``uid`` copies, when the archive
        holds it (None: it does not)."""
        ...

    def series_number(self, series_uid: str) -> int | None:
        """The SeriesNumber of a series the archive holds (None: not held, or none)."""
        ...

    def next_instance_number(self, series_uid: str) -> int:
        """One past the highest InstanceNumber of the series (1 when it is not stored)."""
        ...


class NoArchive:
    """The archive of ``encode``: nothing is stored, every number is free."""

    name = "no archive"

    def study_owner(self, study_uid: str) -> tuple[str, str | None] | None:
        return None

    def sop_location(self, sop_uid: str) -> SopLocation | None:
        return None

    def next_series_number(self, study_uid: str) -> int:
        return 1

    def stored_reference(
        self, level: Literal["study", "series"], uid: str
    ) -> ReferenceAttributes | None:
        return None

    def series_number(self, series_uid: str) -> int | None:
        return None

    def next_instance_number(self, series_uid: str) -> int:
        return 1


class Numbers:
    """SeriesNumbers and InstanceNumbers reserved in this process, after the archive's.

    Several documents of one study or series are planned before any of them is stored (a
    batch, or a hot folder's files in flight), so asking the archive per document would give
    two of them the same number. Each counter starts after the highest number the archive
    holds (and the reference's next) and is asked again after :meth:`refresh` (a hot folder
    calls it whenever nothing is in flight), so numbers stay unique within a run, across
    restarts and past other writers between rounds. A document that fails leaves a gap.
    """

    def __init__(self, archive: ArchiveView) -> None:
        self._archive = archive
        self._next: dict[tuple[str, str], int] = {}
        self._asked: set[tuple[str, str]] = set()
        self._series: dict[str, int] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Ask the archive again at the next reservation in each study and series."""
        with self._lock:
            self._asked.clear()

    def series_number(self, study_uid: str, first: int, series_uid: str | None = None) -> int:
        """The SeriesNumber of a new series in the study; the same one again for a series
        already numbered in this run (the files of one shared series)."""
        with self._lock:
            if series_uid is not None:
                # A shared series sent to again (a re-run, a hot folder's next round) keeps
                # the number the archive already gave it.
                held = self._series.get(series_uid) or self._archive.series_number(series_uid)
                if held is not None:
                    self._series[series_uid] = held
                    return held
            number = self._take(("study", study_uid), first, self._archive.next_series_number)
            if series_uid is not None:
                self._series[series_uid] = number
            return number

    def instance_number(self, series_uid: str, first: int) -> int:
        """The next free InstanceNumber of the series, at least ``first``."""
        with self._lock:
            return self._take(("series", series_uid), first, self._archive.next_instance_number)

    def _take(self, key: tuple[str, str], first: int, on_archive: _Ask) -> int:
        if key not in self._asked:
            self._next[key] = max(self._next.get(key, 1), on_archive(key[1]))
            self._asked.add(key)
        number = max(self._next.get(key, 1), first)
        self._next[key] = number + 1
        return number


class _Ask(Protocol):
    def __call__(self, uid: str, /) -> int: ...


class StudyOwners:
    """Which patient each StudyInstanceUID belongs to, asked once per study and run.

    Orthanc keys a study by PatientID and StudyInstanceUID together, so a document that
    reuses a study's UID under another PatientID is not refused by the server: it creates a
    second study of the same UID under a second patient. This refuses that first.
    """

    def __init__(self, archive: ArchiveView) -> None:
        self._archive = archive
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
                stored = self._archive.study_owner(study_uid)
                self._owners[study_uid] = stored or (patient_id, None)
            owner, archive_patient = self._owners[study_uid]
        if owner.strip() != patient_id.strip():
            where = f" (Orthanc patient {archive_patient})" if archive_patient else ""
            raise ConflictError(
                f"study {study_uid} already belongs to PatientID {shown(owner)}{where} on "
                f"{self._archive.name}, not to {shown(patient_id)}; nothing was "
                "stored. Attach to that patient's study, or give another StudyInstanceUID"
            )


def check_sop_uid(
    archive: ArchiveView, sop_uid: str, *, study_uid: str, series_uid: str, patient_id: str
) -> None:
    """Refuse a SOPInstanceUID that already names an instance of another series or patient.

    Orthanc keys an instance by its patient, study, series and SOP UIDs together, so the same
    SOPInstanceUID under another series would be stored a second time, not refused. Under
    the same ones, the archive answers AlreadyStored and the document is then compared.

    Raises
    ------
    ConflictError
        Naming the instance that holds the UID and where it is filed.
    """
    found = archive.sop_location(sop_uid)
    if found is None:
        return
    theirs = (found.patient_id.strip(), found.study_uid.strip(), found.series_uid.strip())
    if theirs != (patient_id.strip(), study_uid, series_uid):
        raise ConflictError(
            f"SOPInstanceUID {sop_uid} already names instance {found.instance_id} on "
            f"{archive.name}, filed under PatientID {shown(theirs[0])}, study "
            f"{theirs[1]}, series {theirs[2]}; nothing was stored. Give this document its "
            "own SOPInstanceUID"
        )


@dataclass(frozen=True)
class PlanOptions:
    """How every document of a run is made, whatever then writes or sends it."""

    tags: TagsInput = field(default_factory=dict)
    title: str | None = None
    conversion_type: Literal["WSD", "SD"] = "WSD"
    same_series: bool = False
    strict: bool = False
    """A warning refuses the document (and, in a batch, the whole batch)."""
    now: dt.datetime | None = None
    """The creation time of every document; None: the moment each is opened (a hot folder)."""
    code_extensions: bool = True
    """Whether the receiver can take ISO 2022 character sets (Orthanc's create-dicom cannot)."""
    warn_no_patient_id: bool = False
    """Whether a document without PatientID earns a warning (an archive files it badly)."""
    derive_uids: bool = True
    """Derive the document's own UIDs from its PDF and tags, so that sending it again names
    the same objects (AlreadyStored, never a twin). ``encode`` makes a new object each run
    (random UIDs) and so never reads a PDF only to hash it."""


@dataclass(frozen=True)
class DocumentPlan:
    """What one document will be, before its PDF is opened: its tags (given, per file, the
    batch's shared UIDs and reserved numbers), what it joins, and the warnings known so far."""

    source: str
    """The input's name; ``-`` for stdin."""
    tags: ValidatedTags
    reference: ReferenceAttributes | None = None
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """How messages name the input: stdin as ``<stdin>``."""
        return STDIN_NAME if self.source == "-" else self.source


class Planner:
    """Plans documents against one archive view; shared by every file of a run.

    The same planner (hence the same :class:`Numbers` and :class:`StudyOwners`) must serve
    all documents planned together, so that they never share a number or contradict each
    other's study owner.
    """

    def __init__(self, options: PlanOptions, archive: ArchiveView | None = None) -> None:
        self.options = options
        self.archive: ArchiveView = archive if archive is not None else NoArchive()
        self.numbers = Numbers(self.archive)
        self.owners = StudyOwners(self.archive)
        self._tags = _shared_tags(options)
        self._stored_references: dict[tuple[str, str], ReferenceAttributes | None] = {}

    def refresh(self) -> None:
        """Forget what was asked of the archive: the next documents see its current state."""
        self.numbers.refresh()
        self.owners = StudyOwners(self.archive)

    def plan(
        self,
        sources: Sequence[str],
        own_tags: Sequence[ValidatedTags],
        reference: ReferenceAttributes | None,
        *,
        seed_tags: ValidatedTags | None = None,
    ) -> list[DocumentPlan]:
        """The plans of documents made together (one batch, or one hot-folder file).

        Each gets the batch's shared UIDs (one series with ``same_series``, named by
        ``seed_tags``, by default the shared tags, and the reference), its own tags over them,
        and its numbers. Files that would split one study over two patients are refused
        before anything is written or sent.
        """
        shared = self._tags
        seed = None
        if self.options.same_series:
            named_by = shared if seed_tags is None else seed_tags
            # A title names the document, not the series: files of other titles share it.
            seed = series_seed(
                {tag: value for tag, value in named_by.items() if tag != _DOCUMENT_TITLE},
                reference.dataset if reference is not None else None,
            )
        per_batch = batch_tags(
            shared,
            len(sources),
            same_series=self.options.same_series,
            reference=reference,
            uid_seed=seed,
        )
        per_file = [merge_tags(p, own) for p, own in zip(per_batch, own_tags, strict=True)]
        check_batch_identity(per_file)
        plans = []
        for source, tags, own in zip(sources, per_file, own_tags, strict=True):
            joined = reference if reference is not None else self._stored(own)
            notes = joined.warnings if joined is not None else ()
            plans.append(
                DocumentPlan(
                    source,
                    self._numbered(tags, joined),
                    joined,
                    notes + self._patient_note(tags, joined),
                )
            )
        return plans

    def _stored(self, own: ValidatedTags) -> ReferenceAttributes | None:
        """The stored study or series a given StudyInstanceUID or SeriesInstanceUID names.

        A document given the UID of a study or series the archive holds joins it as if by
        ``--study``/``--series``: its attributes come from there and a given value that
        contradicts them is refused, so that the study never disagrees with itself.
        """
        levels: tuple[tuple[JoinLevel, int], ...] = (("series", _SERIES_UID), ("study", _STUDY_UID))
        for level, tag in levels:
            uid = _text(own.get(tag)) or _text(self._tags.get(tag))
            if uid is None:
                continue
            patient_id = _text(own.get(_PATIENT_ID)) or _text(self._tags.get(_PATIENT_ID))
            if level == "study" and patient_id is not None:
                # A study of another patient is refused as such (exit 8), not as a mismatch.
                self.owners.check(uid, patient_id)
            key = (level, uid)
            if key not in self._stored_references:
                self._stored_references[key] = self.archive.stored_reference(level, uid)
            found = self._stored_references[key]
            if found is not None:
                return found
        return None

    def _patient_note(
        self, tags: ValidatedTags, reference: ReferenceAttributes | None
    ) -> tuple[str, ...]:
        if not self.options.warn_no_patient_id or _PATIENT_ID in tags:
            return ()
        if reference is not None and "PatientID" in reference.dataset:
            return ()
        return (NO_PATIENT_ID,)

    def _numbered(
        self, tags: ValidatedTags, reference: ReferenceAttributes | None
    ) -> ValidatedTags:
        """One rule for the numbers of every path: a document joining a series takes the next
        free InstanceNumber there; one starting a series in a stored study the next free
        SeriesNumber; a new study starts at 1 (the defaults)."""
        numbered = dict(tags)
        joins_series = shares_series(self.options.same_series, reference)
        series_uid = _text(tags.get(_SERIES_UID)) or _reference_uid(reference, "SeriesInstanceUID")
        if joins_series and _INSTANCE_NUMBER not in tags and series_uid is not None:
            first = reference.next_instance_number if reference is not None else None
            numbered[_INSTANCE_NUMBER] = str(self.numbers.instance_number(series_uid, first or 1))
        starts_series = reference is not None and reference.level == "study"
        study_uid = _reference_uid(reference, "StudyInstanceUID")
        if starts_series and _SERIES_NUMBER not in tags and study_uid is not None:
            first = reference.next_series_number if reference is not None else None
            shared = series_uid if self.options.same_series else None
            numbered[_SERIES_NUMBER] = str(
                self.numbers.series_number(study_uid, first or 1, shared)
            )
        return numbered

    @contextlib.contextmanager
    def open(
        self, plan: DocumentPlan, handle: BinaryIO, *, check_archive: bool = True
    ) -> Iterator[EncodedPdf]:
        """The document of ``plan``, complete: its PDF read from ``handle`` (seekable, at 0),
        its UIDs derived, its attributes and character set chosen, checked against the
        archive (the study's owner, a given SOPInstanceUID's place), its warnings gathered.

        With ``options.strict`` any warning refuses the document (StrictModeError).
        """
        options = self.options
        pdf_sha256 = None
        tags = plan.tags
        if options.derive_uids:
            pdf_sha256 = _sha256(handle)
            tags = document_uids(
                plan.tags,
                pdf_sha256,
                plan.reference.dataset if plan.reference is not None else None,
                title=options.title,
                conversion_type=options.conversion_type,
            )
        with open_encoded(
            handle,
            tags=tags,
            pdf_sha256=pdf_sha256,
            conversion_type=options.conversion_type,
            reference=plan.reference,
            now=options.now,
            source_name=plan.name,
            code_extensions=options.code_extensions,
            strict=options.strict,
            notes=plan.warnings,
        ) as document:
            # After the PDF was read: what is wrong with the file itself is said first.
            if options.strict and plan.warnings:
                raise strict_refusal("; ".join(plan.warnings))
            if check_archive:
                self._check_archive(document, plan)
            yield document

    def _check_archive(self, document: EncodedPdf, plan: DocumentPlan) -> None:
        values = document.attributes
        patient_id = str(values.get("PatientID", ""))
        if _STUDY_UID in plan.tags or plan.reference is not None:
            # A derived StudyInstanceUID hashes the PatientID with the content, so it cannot
            # name another patient's study; a given or copied one can.
            self.owners.check(values["StudyInstanceUID"], patient_id)
        if _SOP_INSTANCE_UID in plan.tags:
            # A UID of the user's choosing may name an instance elsewhere; a derived one
            # names this content under these study and series UIDs only.
            check_sop_uid(
                self.archive,
                values["SOPInstanceUID"],
                study_uid=values["StudyInstanceUID"],
                series_uid=values["SeriesInstanceUID"],
                patient_id=patient_id,
            )


STRICT_NOT_SENT = "not attempted: another input was refused, and --strict writes or sends nothing"


def shown(value: str) -> str:
    """A value from outside as a message quotes it: in quotes, escaped, cut to a length."""
    return repr(short_value(value))


def _shared_tags(options: PlanOptions) -> ValidatedTags:
    tags = validate_tags(options.tags)
    if options.title is not None:
        tags |= validate_tags({"DocumentTitle": options.title})
    return tags


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _reference_uid(reference: ReferenceAttributes | None, keyword: str) -> str | None:
    if reference is None or keyword not in reference.dataset:
        return None
    return str(reference.dataset.get(keyword) or "") or None


def _sha256(handle: BinaryIO) -> str:
    """Checksum of a whole seekable file, which is left at offset 0."""
    handle.seek(0)
    digest = hashlib.sha256()
    while block := handle.read(CHUNK_SIZE):
        digest.update(block)
    handle.seek(0)
    return digest.hexdigest()
