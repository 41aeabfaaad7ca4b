"""User tags: parse ``KEY=VALUE`` and JSON tag files, and validate them before anything is written.

Validation happens here, against the DICOM dictionary, rather than being left to pydicom's
writer, because a PACS that receives a malformed value may reject the object long after the
user has gone home; a one-line error naming the tag and the rule is the cheaper moment.
The JSON shape follows Orthanc's ``/tools/create-dicom`` ``Tags`` object (keywords or
``gggg,eeee`` mapped to strings; sequences as arrays of objects), so one file serves both.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Mapping
from pathlib import Path

from .errors import Pdf2DcmError, TagError
from .files import read_bounded
from .imports import load_pydicom

COMMON_ELEMENTS: dict[str, tuple[int, str, str]] = {
    "SpecificCharacterSet": (0x00080005, "CS", "1-n"),
    "InstanceCreationDate": (0x00080012, "DA", "1"),
    "InstanceCreationTime": (0x00080013, "TM", "1"),
    "SOPClassUID": (0x00080016, "UI", "1"),
    "SOPInstanceUID": (0x00080018, "UI", "1"),
    "StudyDate": (0x00080020, "DA", "1"),
    "SeriesDate": (0x00080021, "DA", "1"),
    "ContentDate": (0x00080023, "DA", "1"),
    "AcquisitionDateTime": (0x0008002A, "DT", "1"),
    "StudyTime": (0x00080030, "TM", "1"),
    "SeriesTime": (0x00080031, "TM", "1"),
    "ContentTime": (0x00080033, "TM", "1"),
    "AccessionNumber": (0x00080050, "SH", "1"),
    "Modality": (0x00080060, "CS", "1"),
    "ConversionType": (0x00080064, "CS", "1"),
    "Manufacturer": (0x00080070, "LO", "1"),
    "InstitutionName": (0x00080080, "LO", "1"),
    "ReferringPhysicianName": (0x00080090, "PN", "1"),
    "TimezoneOffsetFromUTC": (0x00080201, "SH", "1"),
    "StationName": (0x00081010, "SH", "1"),
    "StudyDescription": (0x00081030, "LO", "1"),
    "SeriesDescription": (0x0008103E, "LO", "1"),
    "InstitutionalDepartmentName": (0x00081040, "LO", "1"),
    "PerformingPhysicianName": (0x00081050, "PN", "1-n"),
    "OperatorsName": (0x00081070, "PN", "1-n"),
    "ManufacturerModelName": (0x00081090, "LO", "1"),
    "PatientName": (0x00100010, "PN", "1"),
    "PatientID": (0x00100020, "LO", "1"),
    "IssuerOfPatientID": (0x00100021, "LO", "1"),
    "PatientBirthDate": (0x00100030, "DA", "1"),
    "PatientSex": (0x00100040, "CS", "1"),
    "PatientAge": (0x00101010, "AS", "1"),
    "PatientComments": (0x00104000, "LT", "1"),
    "DeviceSerialNumber": (0x00181000, "LO", "1"),
    "SecondaryCaptureDeviceManufacturer": (0x00181016, "LO", "1"),
    "SecondaryCaptureDeviceSoftwareVersions": (0x00181019, "LO", "1-n"),
    "SoftwareVersions": (0x00181020, "LO", "1-n"),
    "StudyInstanceUID": (0x0020000D, "UI", "1"),
    "SeriesInstanceUID": (0x0020000E, "UI", "1"),
    "StudyID": (0x00200010, "SH", "1"),
    "SeriesNumber": (0x00200011, "IS", "1"),
    "InstanceNumber": (0x00200013, "IS", "1"),
    "BurnedInAnnotation": (0x00280301, "CS", "1"),
    "ConceptNameCodeSequence": (0x0040A043, "SQ", "1"),
    "DocumentTitle": (0x00420010, "ST", "1"),
    "MIMETypeOfEncapsulatedDocument": (0x00420012, "LO", "1"),
    "EncapsulatedDocumentLength": (0x00420015, "UL", "1"),
}
"""The keywords an ordinary document uses (its defaults and the tags people give most), with
tag, VR and VM as in pydicom's dictionary (a test holds them equal), so that tags given with
these keywords can be checked without importing it."""
_COMMON_BY_TAG = {tag: (keyword, vr, vm) for keyword, (tag, vr, vm) in COMMON_ELEMENTS.items()}


def dictionary_VR(tag: int) -> str:
    """The VR of a tag in the DICOM dictionary; pydicom's is imported only past the common ones."""
    if tag in _COMMON_BY_TAG:
        return _COMMON_BY_TAG[tag][1]
    load_pydicom()
    from pydicom.datadict import dictionary_VR as full

    return str(full(tag))


def dictionary_VM(tag: int) -> str:
    """The VM of a tag in the DICOM dictionary, as :func:`dictionary_VR` finds it."""
    if tag in _COMMON_BY_TAG:
        return _COMMON_BY_TAG[tag][2]
    load_pydicom()
    from pydicom.datadict import dictionary_VM as full

    return str(full(tag))


def keyword_for_tag(tag: int) -> str:
    """The keyword of a tag ('' when the dictionary has none), as :func:`dictionary_VR`."""
    if tag in _COMMON_BY_TAG:
        return _COMMON_BY_TAG[tag][0]
    load_pydicom()
    from pydicom.datadict import keyword_for_tag as full

    return str(full(tag))


def dictionary_has_tag(tag: int) -> bool:
    """Whether the DICOM dictionary has the tag, as :func:`dictionary_VR` finds it."""
    if tag in _COMMON_BY_TAG:
        return True
    load_pydicom()
    from pydicom.datadict import dictionary_has_tag as full

    return bool(full(tag))


def tag_for_keyword(keyword: str) -> int | None:
    """The tag of a dictionary keyword, None for anything else, as :func:`dictionary_VR`."""
    if keyword in COMMON_ELEMENTS:
        return COMMON_ELEMENTS[keyword][0]
    load_pydicom()
    from pydicom.datadict import keyword_dict

    return keyword_dict.get(keyword)


TagValue = str | list[dict[str, "TagValue"]]
"""A tag value as the user gives it: text (``\\`` separates multiple values) or sequence items."""

ValidatedTags = dict[int, "ValidatedValue"]
ValidatedValue = str | list[ValidatedTags]
TagsInput = Mapping[str, object] | Mapping[int, object] | Mapping[str | int, object]
"""What the API accepts as tags: keywords, ``gggg,eeee`` strings or tag numbers as keys."""

#: Attributes the encoder computes itself; a user value would make the object lie about itself.
OWNED_TAGS: frozenset[int] = frozenset(
    {
        0x00080005,  # SpecificCharacterSet: chosen from the values actually written
        0x00080016,  # SOPClassUID
        0x00420011,  # EncapsulatedDocument
        0x00420012,  # MIMETypeOfEncapsulatedDocument
        0x00420015,  # EncapsulatedDocumentLength
    }
)

_TAG_NUMBER = re.compile(r"^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$")

_MAX_CHARS = {"AE": 16, "CS": 16, "DS": 16, "IS": 12, "LO": 64, "SH": 16, "ST": 1024}
_MAX_CHARS |= {"LT": 10240, "UI": 64}
_TEXT_VRS = frozenset({"ST", "LT", "UT"})  # single-valued free text: CR, LF, FF, ESC allowed
_CONTROLS = re.compile("[\x00-\x1f\x7f]")
_TEXT_CONTROLS = re.compile("[\x00-\x09\x0b\x0e-\x1a\x1c-\x1f\x7f]")
"""Control characters refused in a value (a regular expression: values can be 100 kB long)."""
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_INT_RANGES = {
    "US": (0, 0xFFFF),
    "SS": (-0x8000, 0x7FFF),
    "UL": (0, 0xFFFFFFFF),
    "SL": (-0x80000000, 0x7FFFFFFF),
    "UV": (0, 0xFFFFFFFFFFFFFFFF),
    "SV": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}
_TM = r"(?:[01]\d|2[0-3])(?:[0-5]\d(?:(?:[0-5]\d|60)(?:\.\d{1,6})?)?)?"
_PATTERNS = {
    "AS": (re.compile(r"\d{3}[DWMY]"), "nnnD, nnnW, nnnM or nnnY, e.g. 042Y"),
    "CS": (re.compile(r"[A-Z0-9 _]*"), "upper-case letters, digits, space and _ only"),
    "DA": (re.compile(r"\d{8}"), "a date YYYYMMDD, e.g. 20240131"),
    "DS": (
        re.compile(r" *[+-]?(?:\d+|\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)? *"),
        "a decimal number, e.g. 72.5",
    ),
    "DT": (
        re.compile(
            r"\d{4}(?:(?:0[1-9]|1[0-2])(?:(?:[0-2]\d|3[01])(?:" + _TM + r")?)?)?(?:[+-]\d{4})?"
        ),
        "a date-time YYYYMMDDHHMMSS[.FFFFFF][&ZZXX], e.g. 20240131154500",
    ),
    "IS": (re.compile(r" *[+-]?\d+ *"), "an integer, e.g. 3"),
    "TM": (re.compile(_TM), "a time HHMMSS[.FFFFFF] (HH and HHMM allowed), e.g. 154500"),
    "UI": (
        re.compile(r"(?:0|[1-9]\d*)(?:\.(?:0|[1-9]\d*))*"),
        "a UID: digits in dot-separated components without leading zeros",
    ),
    "UR": (re.compile(r"[A-Za-z_\d:/?#\[\]@!$&'()*+,;=%\-.~]*"), "a URI"),
    "AE": (re.compile(r"[\x20-\x7e]*"), "printable ASCII only"),
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_TIMEZONE_OFFSET = 0x00080201
_ENUMERATED = {
    0x00100040: ("M", "F", "O"),  # PatientSex
    0x00280301: ("YES", "NO"),  # BurnedInAnnotation
}


MAX_SHOWN_CHARS = 80
"""Messages quote at most this much of a value, so a huge value never makes a huge line."""
MAX_JSON_DEPTH = 32
"""Sequences nest at most this deep in a tags file (real ones nest two or three levels)."""


def short_value(value: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """``value`` as a message may quote it: cut to ``limit`` characters, with its full length."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value)} characters)"


def free_text(value: str) -> str:
    """Free text (ST, LT, UT) with the control characters those VRs forbid made spaces.

    TAB, BEL and the like come from PDF metadata, file names and pasted text; a space keeps
    the words apart where a refusal would stop a batch over an invisible character.
    """
    return _TEXT_CONTROLS.sub(" ", value)


def tag_name(tag: int) -> str:
    """``Keyword (gggg,eeee)``, the way every message names an attribute."""
    keyword = keyword_for_tag(tag) or "private or unknown attribute"
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def resolve_key(key: str | int) -> int:
    """Turn a keyword, ``gggg,eeee`` or an int into a tag number known to the DICOM dictionary."""
    if isinstance(key, int):
        tag = key
    else:
        text = key.strip()
        match = _TAG_NUMBER.match(text)
        if match:
            tag = int(match.group(1) + match.group(2), 16)
        else:
            known = tag_for_keyword(text)
            if known is None:
                raise TagError(f"unknown DICOM keyword {text!r}{_suggest(text)}")
            tag = known
    if tag >> 16 == 0x0002 or tag & 0xFFFF == 0:
        raise TagError(
            f"{tag_name(tag)} is file meta information or a group length; pdf2dcm writes it"
        )
    if (tag >> 16) % 2:
        raise TagError(
            f"private attribute ({tag >> 16:04X},{tag & 0xFFFF:04X}) cannot be set: its VR "
            "and creator are unknown; use a standard attribute"
        )
    if not dictionary_has_tag(tag):
        raise TagError(
            f"attribute ({tag >> 16:04X},{tag & 0xFFFF:04X}) is not in the DICOM dictionary; "
            "use a standard keyword"
        )
    if tag in OWNED_TAGS:
        raise TagError(f"{tag_name(tag)} is set by pdf2dcm from the PDF itself and cannot be given")
    return tag


def _suggest(keyword: str) -> str:
    load_pydicom()
    from pydicom.datadict import keyword_dict

    lowered = {name.lower(): name for name in keyword_dict}
    if keyword.lower() in lowered:
        return f"; did you mean {lowered[keyword.lower()]}?"
    import difflib

    close = difflib.get_close_matches(keyword, list(keyword_dict), n=3, cutoff=0.75)
    if close:
        return f"; did you mean {' or '.join(close)}?"
    return "; use a DICOM keyword such as PatientName or a tag number gggg,eeee"


def parse_assignment(text: str) -> tuple[str, TagValue]:
    """Split ``KEY=VALUE`` at the first ``=`` (values such as PN groups contain ``=`` too).

    A sequence attribute takes its items as a JSON array, the same shape as in a tags file.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise TagError(f"tag {short_value(text)!r} is not KEY=VALUE, e.g. PatientName=Doe^Jane")
    key = key.strip()
    tag = resolve_key(key)
    if dictionary_VR(tag) == "SQ":
        if json_depth_exceeds(value, 2 * MAX_JSON_DEPTH):
            raise TagError(f"{tag_name(tag)} nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            items = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TagError(
                f"{tag_name(tag)} is a sequence: give its items as a JSON array of objects, "
                f'e.g. [{{"CodeValue": "...", ...}}] ({exc.msg})'
            ) from exc
        return key, items
    return key, value


def load_tags_file(
    path: str | Path, *, what: str = "tags file", follow_links: bool = True
) -> dict[str, TagValue]:
    """Read a JSON object of tags, in the shape of Orthanc's create-dicom ``Tags``.

    A regular file (or a pipe) of at most :data:`~pdf2dcm.files.MAX_LIST_FILE` bytes; a key
    given twice in one object is refused, not silently overridden. Without
    ``follow_links`` a symbolic link is refused (a sidecar in a folder others write to).
    """
    try:
        data = read_bounded(path, what=what, fifo_ok=follow_links, follow_links=follow_links)
    except Pdf2DcmError as exc:
        raise TagError(str(exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TagError(f"{what} {str(path)!r} is not UTF-8 text") from exc
    return parse_tags_json(text, f"{what} {str(path)!r}")


def parse_tags_json(text: str, where: str) -> dict[str, TagValue]:
    """A JSON object of tags from ``text``; ``where`` names it in messages.

    Raises
    ------
    TagError
        Not JSON, not an object, nested too deep, or a key given twice in one object.
    """
    if json_depth_exceeds(text, 2 * MAX_JSON_DEPTH):
        raise TagError(
            f"{where} nests sequences deeper than {MAX_JSON_DEPTH} levels; "
            "no DICOM attribute needs that"
        )
    try:
        data = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise TagError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except DuplicateKeyError as exc:
        raise TagError(f"{where} gives {exc} twice; keep one") from None
    if not isinstance(data, dict):
        raise TagError(f'{where} must hold a JSON object such as {{"PatientName": "Doe^Jane"}}')
    return data


class DuplicateKeyError(ValueError):
    """A JSON object that names a key twice (the key, quoted, is the message)."""


def unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``object_pairs_hook`` for :func:`json.loads` that refuses a key given twice."""
    found: dict[str, object] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKeyError(repr(short_value(key)))
        found[key] = value
    return found


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than ``limit``, found without parsing (no recursion)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def validate_tags(
    tags: TagsInput, *, check_lengths: bool = True, _within: str = ""
) -> ValidatedTags:
    """Check every key and value; return them keyed by tag number.

    Raises
    ------
    TagError
        For the first unusable key or value, naming the attribute and the rule.
    """
    validated: ValidatedTags = {}
    for key, value in tags.items():
        try:
            tag = resolve_key(key)
        except TagError as exc:
            raise TagError(f"{_within}{exc}") from None
        validated[tag] = _validate_value(tag, value, _within, check_lengths)
    return validated


def _validate_value(tag: int, value: object, within: str, check_lengths: bool) -> ValidatedValue:
    vr = dictionary_VR(tag)
    name = f"{within}{tag_name(tag)}"
    if vr == "SQ":
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise TagError(f"{name} is a sequence: its value must be a JSON array of objects")
        items = []
        for index, item in enumerate(value):
            item_tags = validate_tags(
                item, check_lengths=check_lengths, _within=f"{name} item {index + 1}: "
            )
            if tag_name(tag).split(" ")[0].endswith("CodeSequence"):
                _check_code_item(item_tags, f"{name} item {index + 1}")
            items.append(item_tags)
        return items
    if not isinstance(value, str):
        raise TagError(f"{name}: value must be a string, not {type(value).__name__}")
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        raise TagError(
            f"{name} = {short_value(value)!r}: U+{ord(surrogate.group()):04X} at character "
            f"{surrogate.start() + 1} is no character (bytes that are not UTF-8, or a lone "
            "surrogate escape); give the value as UTF-8 text"
        )
    if vr in _BINARY_VRS or "or" in vr:
        raise TagError(f"{name} holds binary data ({vr}) and cannot be set from text")
    if vr in _TEXT_VRS:
        value = free_text(value)
    _check_text(tag, vr, value, name, check_lengths)
    return value


def _check_code_item(item: ValidatedTags, where: str) -> None:
    has_value = any(t in item for t in (0x00080100, 0x00080119, 0x00080120))
    if not has_value or 0x00080104 not in item or (0x00080100 in item and 0x00080102 not in item):
        raise TagError(
            f"{where} must give CodeValue, CodingSchemeDesignator and CodeMeaning, "
            'e.g. {"CodeValue": "11488-4", "CodingSchemeDesignator": "LN", '
            '"CodeMeaning": "Consult note"}'
        )


def _check_text(tag: int, vr: str, value: str, name: str, check_lengths: bool = True) -> None:
    shown = short_value(value)
    if vr in _TEXT_VRS or dictionary_VM(tag) == "1":
        values = [value]
        if "\\" in value and vr not in _TEXT_VRS:
            raise TagError(f"{name} takes a single value; remove the backslash from {shown!r}")
    else:
        values = value.split("\\")
    for single in values:
        _check_single(tag, vr, single, name, check_lengths)


def _check_single(tag: int, vr: str, value: str, name: str, check_lengths: bool) -> None:
    shown = short_value(value)
    if (_TEXT_CONTROLS if vr in _TEXT_VRS else _CONTROLS).search(value):
        raise TagError(f"{name} = {shown!r}: control characters are not allowed in {vr}")
    if value == "":
        return
    limit = _MAX_CHARS.get(vr)
    if check_lengths and limit is not None and _length(value) > limit:
        raise TagError(f"{name} = {shown!r}: {vr} allows at most {limit} {_length_text(value)}")
    enumerated = _ENUMERATED.get(tag)
    if enumerated is not None and value not in enumerated:
        choices = ", ".join(enumerated[:-1]) + f" or {enumerated[-1]}"
        raise TagError(f"{name} = {shown!r}: must be {choices}")
    if vr == "PN":
        _check_person_name(value, name, check_lengths)
    pattern = _PATTERNS.get(vr)
    if pattern is not None and not pattern[0].fullmatch(value):
        raise TagError(f"{name} = {shown!r}: must be {pattern[1]}")
    _check_dates_and_numbers(tag, vr, value, name)


def _check_dates_and_numbers(tag: int, vr: str, value: str, name: str) -> None:
    """The checks that parse the value: a calendar date, a UTC offset that exists, a number
    in range. They come after the pattern, so a value of the wrong shape is reported as such."""
    if vr in ("DA", "DT"):
        _check_calendar(value, name)
    if vr == "DT" or tag == _TIMEZONE_OFFSET:
        _check_offset(value, name, required=tag == _TIMEZONE_OFFSET)
    if vr in _INT_RANGES:
        _check_int(value, name, *_INT_RANGES[vr])
    if vr == "IS":
        _check_int(value.strip(), name, -(2**31), 2**31 - 1)
    if vr in ("FL", "FD"):
        _check_float(value, name)


def _check_float(value: str, name: str) -> None:
    try:
        float(value)
    except ValueError:
        raise TagError(f"{name} = {short_value(value)!r}: must be a number, e.g. 1.5") from None


def _check_person_name(value: str, name: str, check_lengths: bool) -> None:
    shown = short_value(value)
    groups = value.split("=")
    if len(groups) > 3:
        raise TagError(
            f"{name} = {shown!r}: a person name has at most 3 groups "
            "(alphabetic=ideographic=phonetic)"
        )
    for group in groups:
        if check_lengths and _length(group) > 64:
            raise TagError(
                f"{name} = {shown!r}: each name group allows at most 64 {_length_text(group)}"
            )
        if group.count("^") > 4:
            raise TagError(
                f"{name} = {shown!r}: a name group has at most 5 components "
                "(family^given^middle^prefix^suffix)"
            )


def _length(value: str) -> int:
    """Length as receivers check it: in bytes of the UTF-8 the value will be written in.

    The standard counts characters, but validators (dciodvfy) and many archives with fixed
    database columns count bytes; staying within both keeps the object accepted everywhere.
    """
    return len(value) if value.isascii() else len(value.encode("utf-8"))


def _length_text(value: str) -> str:
    if value.isascii():
        return f"characters, this has {len(value)}"
    return f"bytes of UTF-8, this has {_length(value)}"


def _check_calendar(value: str, name: str) -> None:
    shown = short_value(value)
    # Only the leading digits are the date: a DT may be just a year with an offset.
    date = "".join(itertools.takewhile(str.isdigit, value.strip()))[:8]
    if len(date) < 8:
        return
    try:
        dt.date(int(date[:4]), int(date[4:6]), int(date[6:8]))
    except ValueError:
        raise TagError(f"{name} = {shown!r}: {date} is not a calendar date") from None
    if not "1000" <= date[:4] <= "2999":
        # Validators (dicom3tools' dciodvfy among them) reject other years as typing errors.
        raise TagError(f"{name} = {shown!r}: the year must be between 1000 and 2999")


def _check_offset(value: str, name: str, *, required: bool) -> None:
    """UTC offsets exist from -12:00 to +14:00 (PS3.5 6.2, DT)."""
    shown = short_value(value)
    match = re.search(r"([+-])(\d{2})(\d{2})$", value.strip())
    if match is None:
        if required:
            raise TagError(f"{name} = {shown!r}: must be an offset &HHMM, e.g. +0100")
        return
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    signed = -minutes if match.group(1) == "-" else minutes
    if int(match.group(3)) > 59 or not -12 * 60 <= signed <= 14 * 60:
        raise TagError(f"{name} = {shown!r}: a UTC offset must be between -1200 and +1400")


def _check_int(value: str, name: str, low: int, high: int) -> None:
    shown = short_value(value)
    try:
        number = int(value)
    except ValueError:
        raise TagError(f"{name} = {shown!r}: must be a whole number") from None
    if not low <= number <= high:
        raise TagError(f"{name} = {shown!r}: must be between {low} and {high}")
