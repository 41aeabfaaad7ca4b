"""The rules that keep a document with the right patient, study and series, its text intact.

Three questions are answered here, in one place, for every path (encode, upload by any
method, a reference file or a server parent):

- does a value the user gave contradict the patient, study or series the document joins?
  (:func:`check_identity`: refuse, never split a study over two patients);
- in which character set are the values written? (:func:`choose_character_set`: the
  reference's own single-byte or ISO 2022 set when every value fits, so copied values stay
  byte-identical and the study stays consistent; else UTF-8);
- does every value, copied ones included, fit its VR once encoded?
  (:func:`check_encoded_lengths`: a copied value that grew past its limit is an error,
  never an object a validator rejects).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .charsets import strict_decode
from .errors import IdentityConflictError, TagError
from .imports import load_pydicom
from .tags import ValidatedTags, ValidatedValue, short_value, tag_name

if TYPE_CHECKING:
    # Only a reference object or pydicom's dataset build need pydicom; the usual path does not.
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

Level = Literal["patient", "study", "series"]

#: Attributes that say whose document it is and where it belongs, by the level that owns them.
PATIENT_IDENTITY = (
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
)
STUDY_IDENTITY = ("StudyInstanceUID", "AccessionNumber")
STUDY_VALUES = (
    "StudyDescription",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "ReferringPhysicianName",
)
"""Study-level values that every object of a study shares: a document joining a stored study
may restate them, never change them (the study would then disagree with itself)."""
SERIES_IDENTITY = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription")

_KEYWORD_TAGS = {
    "PatientID": 0x00100020,
    "IssuerOfPatientID": 0x00100021,
    "PatientName": 0x00100010,
    "PatientBirthDate": 0x00100030,
    "PatientSex": 0x00100040,
    "StudyInstanceUID": 0x0020000D,
    "AccessionNumber": 0x00080050,
    "SeriesInstanceUID": 0x0020000E,
    "Modality": 0x00080060,
    "SeriesNumber": 0x00200011,
    "SeriesDescription": 0x0008103E,
    "StudyDescription": 0x00081030,
    "StudyDate": 0x00080020,
    "StudyTime": 0x00080030,
    "StudyID": 0x00200010,
    "ReferringPhysicianName": 0x00080090,
}

UTF8 = "ISO_IR 192"
TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
"""VRs whose values may hold characters outside ASCII and so depend on the character set."""
_BYTE_LIMITS = {"LO": 64, "SH": 16, "ST": 1024, "LT": 10240}
_PN_GROUP_LIMIT = 64


@dataclass(frozen=True)
class ReferenceAttributes:
    """Attributes copied from an existing object so that a new document joins its study/series."""

    dataset: Dataset
    next_instance_number: int | None
    """Set when the series is copied: the next free InstanceNumber in it."""
    next_series_number: int | None = None
    """Set when only the study is copied and its series are known: the next free SeriesNumber."""
    level: Level = "study"
    """What the document joins: the patient (new study), the study (new series) or the series."""
    character_set: tuple[str, ...] = ()
    """The reference's SpecificCharacterSet, written again when every value fits in it."""
    source: str = "the reference"
    """How messages name where the values came from (a file, a server resource)."""
    warnings: tuple[str, ...] = ()
    stored_study: bool = True
    """Whether the study exists as objects already (a file, an archive's study), so that its
    study-level values are fixed; False for a scheduled procedure, whose study the document
    may be the first object of."""


def identity_keywords(level: Level, *, stored_study: bool = True) -> tuple[str, ...]:
    """The attributes a document may not contradict when it joins a resource of ``level``."""
    if level == "patient":
        return PATIENT_IDENTITY
    study = STUDY_IDENTITY + (STUDY_VALUES if stored_study else ())
    if level == "study":
        return PATIENT_IDENTITY + study
    return PATIENT_IDENTITY + study + SERIES_IDENTITY


def check_identity(
    tags: ValidatedTags,
    reference: Dataset,
    level: Level,
    source: str,
    *,
    stored_study: bool = True,
) -> ValidatedTags:
    """Refuse given values that contradict ``reference``; drop those that only restate it.

    A value equal to the reference's under the rules of its VR (trailing ``^``, ``=`` or
    spaces in a name, padding in a number) is removed from the result, so the reference's own
    bytes are written and the study stays consistent.

    Raises
    ------
    IdentityConflictError
        Naming the attribute and both values.
    """
    kept = dict(tags)
    for keyword in identity_keywords(level, stored_study=stored_study):
        tag = _KEYWORD_TAGS[keyword]
        if tag not in tags:
            continue
        given = tags[tag]
        known = element_text(reference[tag]) if tag in reference else ""
        if isinstance(given, list) or normalized(keyword, given) != normalized(keyword, known):
            shown = "a sequence" if isinstance(given, list) else repr(short_value(given))
            raise IdentityConflictError(
                f"{tag_name(tag)}: the value given, {shown}, contradicts "
                f"{short_value(known)!r} of {source}; the document would be filed under another "
                f"{_owner(keyword)}. Remove the value, or attach to the right {_owner(keyword)}"
            )
        del kept[tag]
    zone = 0x00080201  # TimezoneOffsetFromUTC: the zone the study's dates and times are in
    if level != "patient" and stored_study and zone in tags and zone in reference:
        known = element_text(reference[zone])
        if str(tags[zone]).strip() != known.strip():
            raise IdentityConflictError(
                f"{tag_name(zone)}: the value given, {short_value(str(tags[zone]))!r}, "
                f"contradicts {short_value(known)!r} of {source}, the zone of the study's dates "
                "and times; remove the value (the document is written in the study's zone)"
            )
        del kept[zone]
    return kept


def _owner(keyword: str) -> str:
    if keyword in PATIENT_IDENTITY:
        return "patient"
    if keyword in STUDY_IDENTITY + STUDY_VALUES:
        return "study"
    return "series"


def normalized(keyword: str, value: str) -> str:
    """A value in the form two equal values share: insignificant padding removed."""
    if keyword in ("PatientName", "ReferringPhysicianName"):
        groups = [_trim_name_group(group) for group in value.split("=")]
        while groups and not groups[-1]:
            groups.pop()
        return "=".join(groups)
    if keyword == "SeriesNumber":
        text = value.strip()
        try:
            return str(int(text))
        except ValueError:
            return text
    return value.strip(" \x00")


def _trim_name_group(group: str) -> str:
    components = [component.strip(" ") for component in group.split("^")]
    while components and not components[-1]:
        components.pop()
    return "^".join(components)


def element_text(element: DataElement) -> str:
    """A value as text; several values joined with ``\\``, as DICOM writes them."""
    load_pydicom()
    from pydicom.multival import MultiValue

    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def text_values(ds: Dataset) -> Iterator[tuple[DataElement, str]]:
    """Every single text value of ``ds`` (nested items included) that a character set affects."""
    load_pydicom()
    from pydicom.multival import MultiValue

    for element in ds.iterall():
        if element.VR not in TEXT_VRS or element.value is None:
            continue
        values = element.value if isinstance(element.value, MultiValue | list) else [element.value]
        for value in values:
            yield element, str(value)


def choose_character_set(
    ds: Dataset, preferred: Sequence[str], *, code_extensions: bool = True
) -> list[str]:
    """The SpecificCharacterSet to write: empty for ASCII, ``preferred`` when it holds every value.

    ``preferred`` is the reference's own set. Writing it again keeps copied values
    byte-identical to the reference's, which validators that compare a study's objects
    (dcentvfy) require; UTF-8 is the fallback that holds anything. Without
    ``code_extensions`` (a receiver such as Orthanc's create-dicom that knows single sets
    only), ISO 2022 sets are not kept. A set that uses code extensions is kept only when
    every value can be written in it with proper escape sequences (:func:`is_strict_iso2022`).
    """
    values = [value for _element, value in text_values(ds)]
    if all(value.isascii() for value in values):
        return []
    # An empty first term is meaningful: ASCII until an escape sequence switches sets.
    terms = [term.strip() for term in preferred]
    extended = uses_code_extensions(terms)
    if not any(terms) or terms == [UTF8] or (extended and not code_extensions):
        return [UTF8]
    if all(_encodable(value, terms) for value in values):
        return terms
    return [UTF8]


def charset_change_note(
    ds: Dataset,
    preferred: Sequence[str],
    written: Sequence[str],
    copied: frozenset[int],
    source: str,
) -> str | None:
    """The warning owed when copied values are written in another set than their study's.

    Their text is unchanged but their bytes differ from the study's other objects, which
    validators that compare a study (dcentvfy) report; the note names those attributes.
    """
    theirs = [term.strip() for term in preferred]
    if not any(theirs) or list(written) == theirs or not written:
        return None
    changed = sorted(
        {
            element.keyword or tag_name(element.tag)
            for element, value in text_values(ds)
            if element.tag in copied and not value.isascii()
        }
    )
    if not changed:
        return None
    charset = "\\".join(theirs)
    return (
        f"{source} is in {charset}, which cannot hold every value of this "
        f"document: it is written in UTF-8, so the bytes of {', '.join(changed)} differ "
        "from the study's (the text is the same)"
    )


def uses_code_extensions(terms: Sequence[str]) -> bool:
    """Whether a SpecificCharacterSet switches sets by ISO 2022 escape sequences."""
    return len(terms) > 1 or any(term.strip().startswith("ISO 2022") for term in terms)


def _encodable(value: str, terms: list[str]) -> bool:
    """Whether pydicom writes ``value`` under ``terms`` in bytes a strict reader reads back
    as ``value`` (pydicom's own reading is lenient: ISO_IR 6 as Latin-1, raw 8-bit bytes
    under ISO 2022)."""
    load_pydicom()
    from pydicom.charset import convert_encodings, encode_string

    encodings = convert_encodings(list(terms))
    with warnings.catch_warnings():
        # pydicom warns and substitutes '?' for what its ISO 2022 encoder cannot write.
        warnings.simplefilter("error")
        try:
            if len(encodings) == 1 and not uses_code_extensions(terms):
                data = value.encode(encodings[0])
            else:
                data = encode_string(value, encodings)
        except (UnicodeError, LookupError, UserWarning, ValueError):
            return False
    return strict_decode(data, terms) == value


def is_strict_iso2022(data: bytes, terms: Sequence[str]) -> bool:
    """Whether ``data`` is valid under the code extension technique of ``terms``.

    The default G0 set of ``''``/``ISO 2022 IR 6`` is ASCII and no G1 set is in force, so a
    byte from 0x80 up before an escape sequence has designated a G1 set is invalid, as is a
    byte that does not decode in the G1 set in force: strict readers (DCMTK, Orthanc) drop
    or reject it. pydicom reads such a byte as Latin-1, and so would write one (``für`` as
    ``66 fc 72``) if nothing checked.
    """
    return strict_decode(data, terms) is not None


def encoded_length(value: str, terms: Sequence[str]) -> int:
    """Length in bytes of ``value`` written under the character set ``terms``."""
    if value.isascii():
        return len(value)
    if not terms:
        return len(value.encode("utf-8"))
    load_pydicom()
    from pydicom.charset import convert_encodings, encode_string

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(encode_string(value, convert_encodings(list(terms))))


def check_encoded_lengths(ds: Dataset, terms: Sequence[str], copied: frozenset[int]) -> None:
    """Every text value must fit its VR in bytes of the character set actually written.

    ``copied`` holds the tags taken from a reference, so the message can say where a value
    that does not fit came from.

    Raises
    ------
    TagError
        Naming the attribute, the limit and the length found.
    """
    charset = "\\".join(terms) or "ASCII"
    for element, value in text_values(ds):
        origin = " (copied from the reference)" if element.tag in copied else ""
        if element.VR == "PN":
            for group in value.split("="):
                length = encoded_length(group, terms)
                if length > _PN_GROUP_LIMIT:
                    raise TagError(
                        f"{tag_name(element.tag)}{origin} = {short_value(value)!r}: a name group "
                        f"allows at most {_PN_GROUP_LIMIT} bytes, this has {length} in {charset}"
                    )
            continue
        limit = _BYTE_LIMITS.get(element.VR)
        if limit is None:
            continue
        length = encoded_length(value, terms)
        if length > limit:
            raise TagError(
                f"{tag_name(element.tag)}{origin} = {short_value(value)!r}: {element.VR} allows "
                f"at most {limit} bytes, this has {length} in {charset}"
            )


def cut_to_bytes(value: str, limit: int, terms: Sequence[str]) -> str:
    """The longest prefix of ``value`` that fits ``limit`` bytes, cut at a character boundary."""
    if encoded_length(value, terms) <= limit:
        return value
    low, high = 0, len(value)
    while low < high:
        middle = (low + high + 1) // 2
        if encoded_length(value[:middle], terms) <= limit:
            low = middle
        else:
            high = middle - 1
    return value[:low]


def given_value(tags: ValidatedTags, keyword: str) -> ValidatedValue | None:
    """The value given for one of the identity keywords, if any."""
    return tags.get(_KEYWORD_TAGS[keyword])


_STUDY_UID = 0x0020000D


def check_batch_identity(per_file: Sequence[ValidatedTags]) -> None:
    """Files of one batch that share a StudyInstanceUID must agree on the patient.

    Per-file tags (a manifest, a name pattern, a sidecar) can give files of a shared study
    or series different PatientIDs; written, that study would belong to two patients. It is
    refused before the first file is written or sent.

    Raises
    ------
    IdentityConflictError
        Naming the study, the attribute and the two values.
    """
    first: dict[str, ValidatedTags] = {}
    for tags in per_file:
        study = tags.get(_STUDY_UID)
        if not isinstance(study, str):
            continue
        seen = first.setdefault(study, tags)
        for keyword in PATIENT_IDENTITY:
            tag = _KEYWORD_TAGS[keyword]
            ours, theirs = tags.get(tag, ""), seen.get(tag, "")
            if (
                isinstance(ours, str)
                and isinstance(theirs, str)
                and normalized(keyword, ours) == normalized(keyword, theirs)
            ):
                continue
            raise IdentityConflictError(
                f"{tag_name(tag)}: files of study {study} in this batch give "
                f"{short_value(str(theirs))!r} and {short_value(str(ours))!r}; one study "
                "belongs to one patient. Give each patient's files their own batch or study"
            )
