"""A DICOM node as the archive documents are planned against and sent to.

The planning stage reads an archive through :class:`~pdf2dcm.plan.ArchiveView`; this is the
view of a node that speaks DIMSE, answered by C-FIND (Study Root): who owns a study, where a
SOPInstanceUID is filed (IMAGE level), the numbers in use. ``--study``, ``--patient`` and
``--series KEY=VALUE`` resolve here by the same rules as on Orthanc: one match, or a refusal
that lists the candidates. Copied attributes are those of the C-FIND answer, decoded with its
own character set (an archive answers study-level values, not those of one image).

Nothing here imports pynetdicom: :mod:`pdf2dcm.dimse` does so only when an association opens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pydicom.dataset import Dataset

from . import dimse
from .constants import DEFAULT_CALLING_AET
from .dicom import reference_from_header
from .errors import DicomRefusedError, InputError, NotFoundError
from .identity import Level, ReferenceAttributes
from .plan import JoinLevel, SopLocation, shown

_PATIENT_KEYS = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "PatientSex")
_STUDY_ONLY_KEYS = (
    "StudyInstanceUID",
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
)
_SERIES_ONLY_KEYS = (
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "SeriesDate",
)
_SERIES_RETURN = (*_SERIES_ONLY_KEYS, "SeriesTime", "NumberOfSeriesRelatedInstances")
MAX_CANDIDATES = 10
_T = TypeVar("_T")


_SOP_CLASS_NOT_SUPPORTED = 0x0122


@dataclass
class DicomArchive:
    """A DICOM node reached from one calling AE title: a read-only
    :class:`~pdf2dcm.plan.ArchiveView`, and where ``upload --via dimse`` stores.

    A node that stores but answers no C-FIND (a plain storage SCP such as DCMTK's storescp)
    cannot be asked what it holds: the view then knows nothing (every number free, no owner),
    and :attr:`unverified` says so, for the command to warn once. Looking a study up
    (:meth:`reference`) still needs C-FIND, and fails on such a node.
    """

    node: dimse.Node
    calling_aet: str = DEFAULT_CALLING_AET
    timeout: float = dimse.DEFAULT_TIMEOUT
    unverified: str | None = field(default=None, init=False)
    """Why what the node holds could not be checked, once it is known that it cannot be."""

    @property
    def name(self) -> str:
        return str(self.node)

    def find(
        self, level: dimse.Level, query: Mapping[str, str], return_keys: Sequence[str] | None = None
    ) -> list[dimse.FindAnswer]:
        """C-FIND (Study Root) on the node."""
        return dimse.find(
            self.node,
            level,
            query,
            calling_aet=self.calling_aet,
            timeout=self.timeout,
            return_keys=return_keys,
        )

    def _held(
        self, level: dimse.Level, query: Mapping[str, str], return_keys: Sequence[str]
    ) -> list[dimse.FindAnswer]:
        """What the node answers, or nothing when it answers no C-FIND at all."""
        if self.unverified is not None:
            return []
        try:
            return self.find(level, query, return_keys)
        except DicomRefusedError as exc:
            if exc.status != _SOP_CLASS_NOT_SUPPORTED:
                raise
            self.unverified = (
                f"{self.name} answers no C-FIND (Study Root), so what it holds was not "
                "checked: a study under another PatientID, a SOPInstanceUID already used, "
                "the SeriesNumbers and InstanceNumbers in use"
            )
            return []

    def study_owner(self, study_uid: str) -> tuple[str, str | None] | None:
        for answer in self._held("STUDY", {"StudyInstanceUID": study_uid}, ("PatientID",)):
            if (answer.text("StudyInstanceUID") or "").strip() == study_uid:
                return answer.text("PatientID") or "", None
        return None

    def sop_location(self, sop_uid: str) -> SopLocation | None:
        keys = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        answers = self._held("IMAGE", {"SOPInstanceUID": sop_uid}, keys)
        found = [a for a in answers if (a.text("SOPInstanceUID") or "").strip() == sop_uid]
        if not found:
            return None
        study_uid = (found[0].text("StudyInstanceUID") or "").strip()
        owner = self.study_owner(study_uid) if study_uid else None
        return SopLocation(
            instance_id=sop_uid,
            patient_id=owner[0] if owner is not None else "",
            study_uid=study_uid,
            series_uid=(found[0].text("SeriesInstanceUID") or "").strip(),
        )

    def next_series_number(self, study_uid: str) -> int:
        keys = ("SeriesInstanceUID", "SeriesNumber")
        return _one_past(self._held("SERIES", {"StudyInstanceUID": study_uid}, keys), keys[1])

    def stored_reference(self, level: JoinLevel, uid: str) -> ReferenceAttributes | None:
        key = "StudyInstanceUID" if level == "study" else "SeriesInstanceUID"
        try:
            return self.reference(level, {key: uid})
        except NotFoundError:
            return None

    def series_number(self, series_uid: str) -> int | None:
        keys = ("SeriesInstanceUID", "SeriesNumber")
        for answer in self._held("SERIES", {"SeriesInstanceUID": series_uid}, keys):
            if (answer.text("SeriesInstanceUID") or "").strip() == series_uid:
                text = (answer.text("SeriesNumber") or "").strip()
                return int(text) if text.isdigit() else None
        return None

    def next_instance_number(self, series_uid: str) -> int:
        # A strictly hierarchical archive answers IMAGE level only under a study's UID.
        answers = self._held("SERIES", {"SeriesInstanceUID": series_uid}, ("StudyInstanceUID",))
        study_uids = {(a.text("StudyInstanceUID") or "").strip() for a in answers} - {""}
        keys = ("SOPInstanceUID", "InstanceNumber")
        held = [
            answer
            for study_uid in sorted(study_uids)
            for answer in self._held(
                "IMAGE", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}, keys
            )
        ]
        return _one_past(held, keys[1])

    # --- what --study/--patient/--series name -------------------------------------------

    def reference(self, level: Level, query: Mapping[str, str]) -> ReferenceAttributes:
        """The attributes a document joining the one ``level`` matching ``query`` copies.

        Raises
        ------
        NotFoundError
            Nothing matches.
        InputError
            Several match (up to ten listed), or a key the C-FIND cannot match.
        """
        described = " ".join(f"{key}={value}" for key, value in query.items())
        upper = {k: v for k, v in query.items() if k not in _SERIES_ONLY_KEYS}
        if level == "patient":
            studies = self.find("STUDY", upper)
            patients = _one_per_patient(studies)
            answer = self._one(patients, level, described, _describe_patient)
            return reference_from_header(
                _header(answer, self.name), "patient", f"patient on {self.name}"
            )
        studies = self.find("STUDY", upper)
        if level == "study":
            answer = self._one(studies, level, described, _describe_study)
            study_uid = answer.text("StudyInstanceUID") or ""
            reference = reference_from_header(
                _header(answer, self.name), "study", f"study {study_uid} on {self.name}"
            )
            return dataclasses.replace(
                reference, next_series_number=self.next_series_number(study_uid)
            )
        series_query = {k: v for k, v in query.items() if k in _SERIES_ONLY_KEYS}
        matches: list[tuple[dimse.FindAnswer, dimse.FindAnswer]] = []
        for study in studies:
            study_uid = study.text("StudyInstanceUID") or ""
            found = self.find(
                "SERIES", {**series_query, "StudyInstanceUID": study_uid}, _SERIES_RETURN
            )
            matches.extend((study, series) for series in found)
            if len(matches) > MAX_CANDIDATES:
                break
        study, series = self._one(matches, level, described, _describe_series)
        header = _header(study, self.name)
        for keyword in _SERIES_ONLY_KEYS:
            if keyword in series.dataset:
                header[keyword] = series.dataset[keyword]
        series_uid = series.text("SeriesInstanceUID") or ""
        reference = reference_from_header(header, "series", f"series {series_uid} on {self.name}")
        return dataclasses.replace(
            reference, next_instance_number=self.next_instance_number(series_uid)
        )

    def _one(
        self, matches: Sequence[_T], level: Level, described: str, describe: Callable[[_T], str]
    ) -> _T:
        if not matches:
            raise NotFoundError(
                f"no {level} matches {described} on {self.name} (C-FIND)",
                status=0,
                url=self.name,
            )
        if len(matches) > 1:
            count = min(len(matches), MAX_CANDIDATES)
            more = "more than " if len(matches) > MAX_CANDIDATES else ""
            lines = [describe(match) for match in matches[:count]]
            plural = {"patient": "patients", "study": "studies", "series": "series"}[level]
            raise InputError(
                f"{more}{count} {plural} match {described} on {self.name}; add a term that "
                "tells them apart (AccessionNumber=..., StudyInstanceUID=..., "
                "SeriesInstanceUID=...):\n  " + "\n  ".join(lines)
            )
        return matches[0]


def _one_past(answers: Sequence[dimse.FindAnswer], keyword: str) -> int:
    numbers = [int(text) for a in answers if (text := (a.text(keyword) or "").strip()).isdigit()]
    return max(numbers, default=0) + 1


_NAME_FILLER = frozenset("^ -.,")
_PERSON_NAMES = ("PatientName", "ReferringPhysicianName")


def emptied_name_group(name: str) -> bool:
    """Whether a person name has a group of delimiters only (``Yamada^Tarou=^=^``): what is
    left of a group whose characters an archive that transcodes dropped."""
    return any(group and set(group) <= _NAME_FILLER for group in name.split("="))


def _header(answer: dimse.FindAnswer, archive: str) -> Dataset:
    """A C-FIND answer as a header to copy from: its values, their character set.

    Raises
    ------
    InputError
        A name the archive answered with characters dropped (it transcodes its answers into
        a set that cannot hold them, as Orthanc does into its DefaultEncoding): copied, it
        would file the document under a mangled name.
    """
    for keyword in _PERSON_NAMES:
        name = answer.text(keyword)
        if name is not None and emptied_name_group(name):
            declared = "\\".join(answer.character_set) or "ASCII"
            raise InputError(
                f"{archive} answered {keyword} {shown(name)} in {declared}: a name group of "
                "delimiters only, what is left when an archive drops characters its character "
                "set cannot hold (Orthanc: set DefaultEncoding to Utf8); nothing was copied"
            )
    header = Dataset()
    if answer.character_set:
        terms = list(answer.character_set)
        header.SpecificCharacterSet = terms[0] if len(terms) == 1 else terms
    for keyword in (*_PATIENT_KEYS, *_STUDY_ONLY_KEYS):
        if keyword in answer.dataset and answer.dataset[keyword].value not in (None, ""):
            header[keyword] = answer.dataset[keyword]
    return header


def _one_per_patient(studies: Sequence[dimse.FindAnswer]) -> list[dimse.FindAnswer]:
    patients: dict[tuple[str, str], dimse.FindAnswer] = {}
    for study in studies:
        key = ((study.text("PatientID") or "").strip(), (study.text("IssuerOfPatientID") or ""))
        patients.setdefault(key, study)
    return list(patients.values())


def _fields(answer: dimse.FindAnswer, keys: Sequence[str]) -> str:
    return "  ".join(f"{key}={shown(answer.text(key) or '')}" for key in keys)


def _describe_patient(answer: dimse.FindAnswer) -> str:
    return _fields(answer, ("PatientID", "PatientName", "PatientBirthDate", "PatientSex"))


def _describe_study(answer: dimse.FindAnswer) -> str:
    keys = ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "AccessionNumber")
    return _fields(answer, keys)


def _describe_series(match: tuple[dimse.FindAnswer, dimse.FindAnswer]) -> str:
    study, series = match
    keys = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription")
    return f"{_fields(series, keys)}  PatientID={shown(study.text('PatientID') or '')}"
