"""PDF + tags -> Encapsulated PDF Storage object, streamed; and the PDF back out, byte-exact.

An ordinary document (no reference, the keywords :mod:`pdf2dcm.fastwrite` knows, ASCII or
UTF-8 text) is built here as plain values and written by fastwrite, without importing
pydicom; pydicom builds and encodes every other one, with the same result. The PDF itself
never passes through either: the file is written in three parts (the attributes before
(0042,0011), that element's header and the PDF copied in chunks, then the attributes after
it). This keeps memory flat for any size and lets the copy hash the bytes on the way
through. Extraction mirrors this: pydicom parses the header with the document deferred, and
the PDF is copied from the recorded file offset.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import hashlib
import os
import struct
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator, MutableSequence
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from . import __version__, fastwrite
from .charsets import strict_decode
from .constants import ENCAPSULATED_PDF_STORAGE as _ENCAPSULATED_PDF_STORAGE
from .constants import PDF_MIME_TYPE
from .errors import InputError, StrictModeError, TagError
from .files import (
    CHUNK_SIZE,
    PathLike,
    atomic_output,
    copy_document,
    display_name,
    hashed_blocks,
    is_regular_file,
    open_input,
)
from .identity import (
    TEXT_VRS,
    UTF8,
    Level,
    ReferenceAttributes,
    charset_change_note,
    check_encoded_lengths,
    check_identity,
    choose_character_set,
    cut_to_bytes,
    element_text,
    uses_code_extensions,
)
from .imports import load_pydicom
from .pdf import inspect_pdf
from .progress import ProgressCallback
from .tags import (
    COMMON_ELEMENTS,
    TagsInput,
    ValidatedTags,
    ValidatedValue,
    dictionary_has_tag,
    dictionary_VR,
    free_text,
    keyword_for_tag,
    tag_for_keyword,
    tag_name,
    validate_tags,
)
from .uids import new_uid

if TYPE_CHECKING:
    # pydicom is imported where a document needs it (a reference, a sequence, another
    # character set, a keyword fastwrite does not know): its import is most of a plain
    # encode's time.
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO

ENCAPSULATED_PDF_STORAGE = _ENCAPSULATED_PDF_STORAGE
IMPLEMENTATION_CLASS_UID = "2.25.96049378734582463290374981003592740123"
"""This implementation's own UID, under the UUID-derived root 2.25 (fixed, never regenerated)."""
IMPLEMENTATION_VERSION_NAME = f"PDF2DCM_{__version__}"[:16]
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
MAX_PDF_SIZE = 0xFFFFFFFE
"""The largest even value length; 0xFFFFFFFF means 'undefined length'."""

_DOCUMENT_TAG = 0x00420011
_DOCUMENT_LENGTH_TAG = 0x00420015
_DEFER_SIZE = 64 * 1024
_DOCUMENT_TITLE = 0x00420010
_TIMEZONE_OFFSET = 0x00080201
MAX_TITLE_BYTES = 1024
"""DocumentTitle is ST: at most 1024 bytes in the character set written."""
_BYTE_LIMITS = {"LO": 64, "SH": 16, "ST": MAX_TITLE_BYTES, "LT": 10240}
"""The limits of :func:`pdf2dcm.identity.check_encoded_lengths`, in bytes."""
DEFAULT_TITLE = "PDF document"
"""The title of a document read from a stream whose PDF has no Title of its own."""
UTF8_CHARSET = UTF8

#: Patient, Clinical Trial Subject and Patient Study attributes that identify whose document it is.
PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "TypeOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "EthnicGroup",
    "PatientComments",
    "PatientSpeciesDescription",
    "PatientBreedDescription",
    "ResponsiblePerson",
    "ResponsiblePersonRole",
    "ResponsibleOrganization",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
)
STUDY_KEYWORDS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "ReferringPhysicianIdentificationSequence",
    "StudyID",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "StudyDescription",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "ProcedureCodeSequence",
    "AdmittingDiagnosesDescription",
    "TimezoneOffsetFromUTC",
)
SERIES_KEYWORDS = (
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDate",
    "SeriesTime",
    "SeriesDescription",
    "InstitutionName",
    "InstitutionalDepartmentName",
)


@dataclass(frozen=True)
class EncodeResult:
    """What was written, with the identifiers a caller needs to find it again."""

    output: str | None
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    pdf_size: int
    sha256: str | None
    """The PDF's checksum; None when it was not asked for (``encode_pdf(checksum=False)``)."""
    document_title: str
    warnings: tuple[str, ...] = ()
    patient_id: str | None = None
    """The PatientID written; None when the object has none."""


def read_reference(
    path: PathLike | Seq[PathLike], level: Literal["study", "series"]
) -> ReferenceAttributes:
    """Read the patient and study (and, at ``series`` level, series) attributes of a file.

    Values are decoded with the file's own character set and validated like given tags. At
    ``series`` level, several files (or directories of them) of one series may be given: the
    next InstanceNumber is then one past the highest of them all.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths:
        raise InputError("no reference file given")
    files = _reference_files(paths)
    references = [_read_one_reference(file, level) for file in files]
    first = references[0]
    if level == "series":
        for other, file in zip(references[1:], files[1:], strict=True):
            if other.dataset.SeriesInstanceUID != first.dataset.SeriesInstanceUID:
                raise InputError(
                    f"{file} belongs to series {other.dataset.SeriesInstanceUID}, "
                    f"{files[0]} to {first.dataset.SeriesInstanceUID}; give files of one series"
                )
        highest = max((r.next_instance_number or 1) for r in references)
        first = dataclasses.replace(first, next_instance_number=highest)
    elif level == "study":
        highest = max((r.next_series_number or 1) for r in references)
        first = dataclasses.replace(first, next_series_number=highest)
    return first


def _reference_files(paths: Seq[PathLike]) -> list[str]:
    files: list[str] = []
    for item in paths:
        name = os.fspath(item)
        if os.path.isdir(name):
            found = sorted(
                str(p) for p in Path(name).iterdir() if p.is_file() and not p.name.startswith(".")
            )
            if not found:
                raise InputError(f"{name} holds no files to take the series from")
            files.extend(found)
        else:
            files.append(name)
    return files


def _read_one_reference(name: str, level: Literal["study", "series"]) -> ReferenceAttributes:
    from .extract import read_header

    with open_input(name, name=name) as (handle, _size):
        source = read_header(handle, name)
    return reference_from_header(source, level, name)


def _number_after(source: Dataset, keyword: str) -> int:
    """One past an IS value of the reference (1 when it has none or an unreadable one)."""
    try:
        return int(source.get(keyword) or 0) + 1
    except (TypeError, ValueError):
        return 1


def reference_from_header(source: Dataset, level: Level, name: str) -> ReferenceAttributes:
    with warnings.catch_warnings():
        # pydicom's own value checks warn on stderr; ours below say the same in one line.
        warnings.simplefilter("ignore")
        return _reference_from_header(source, level, name)


def _reference_from_header(source: Dataset, level: Level, name: str) -> ReferenceAttributes:
    """The attributes of ``level`` and above in a DICOM header, decoded and validated.

    Shared by reference files and server parents, so both copy the same attributes by the
    same rules: decoded with the object's own character set (guessed, with a warning, when
    the object does not declare one), validated like given tags, then written again in one
    character set by the encoder.
    """
    load_pydicom()
    from pydicom.dataset import Dataset
    from pydicom.multival import MultiValue

    notes = _settle_character_set(source, name)
    keywords: tuple[str, ...] = PATIENT_KEYWORDS
    if level in ("study", "series"):
        keywords += STUDY_KEYWORDS
    if level == "series":
        keywords += SERIES_KEYWORDS
    _check_strictly_readable(source, keywords, name)
    copied = Dataset()
    try:
        for keyword in keywords:
            if keyword in source:
                copied.add(_detached(source[keyword]))
    except (ValueError, TypeError, KeyError, LookupError) as exc:
        raise InputError(f"{name} has an attribute that cannot be read ({exc})") from exc
    _validate_copied(copied, name)
    if level != "patient" and "StudyInstanceUID" not in copied:
        raise InputError(f"{name} has no StudyInstanceUID to copy the study from")
    next_number = next_series = None
    if level == "series":
        if "SeriesInstanceUID" not in copied:
            raise InputError(f"{name} has no SeriesInstanceUID to copy the series from")
        next_number = _number_after(source, "InstanceNumber")
    elif level == "study":
        # A floor: an archive that knows the study's other series raises it.
        next_series = _number_after(source, "SeriesNumber")
    charset = source.get("SpecificCharacterSet")
    terms = tuple(charset) if isinstance(charset, MultiValue | list) else (charset or "",)
    return ReferenceAttributes(
        dataset=copied,
        next_instance_number=next_number,
        next_series_number=next_series,
        level=level,
        character_set=tuple(str(t or "") for t in terms) if any(terms) else (),
        source=name,
        warnings=notes,
    )


def _settle_character_set(source: Dataset, name: str) -> tuple[str, ...]:
    """Decide how to decode a header without SpecificCharacterSet that holds non-ASCII text.

    The standard's default repertoire is ASCII, but such files exist: UTF-8 when every value
    is valid UTF-8 (it rarely is by accident), else Latin-1, and say so once.
    """
    if "SpecificCharacterSet" in source:
        return ()
    suspects: list[tuple[str, bytes]] = []
    for tag in list(source.keys()):
        # get_item leaves the value raw: reading it as an element would decode it too early.
        raw = source.get_item(tag)
        value = getattr(raw, "value", None)
        vr = getattr(raw, "VR", None) or (dictionary_VR(tag) if dictionary_has_tag(tag) else None)
        if vr in TEXT_VRS and isinstance(value, bytes) and not value.isascii():
            suspects.append((keyword_for_tag(tag) or tag_name(tag), value))
    if not suspects:
        return ()
    load_pydicom()
    from pydicom.charset import convert_encodings

    try:
        for _keyword, value in suspects:
            value.decode("utf-8")
        guess, label = UTF8, "UTF-8"
    except UnicodeDecodeError:
        guess, label = "ISO_IR 100", "Latin-1"
    # pydicom decodes raw values with the set it read from the file, not the element's.
    implicit, little = source.original_encoding
    source.set_original_encoding(implicit, little, convert_encodings([guess]))
    return (
        f"{name} declares no SpecificCharacterSet but {suspects[0][0]} holds non-ASCII bytes; "
        f"decoded as {label} (a guess)",
    )


def _check_strictly_readable(source: Dataset, keywords: Seq[str], name: str) -> None:
    """Refuse a copied text whose bytes its own declared set cannot read exactly.

    pydicom would read it anyway (U+FFFD for a bad UTF-8 byte, Latin-1 for a byte no G1
    set covers) and the new document would carry a name that is not the patient's. A
    header that declares no set was settled before (:func:`_settle_character_set`).
    """
    load_pydicom()
    from pydicom.multival import MultiValue

    if "SpecificCharacterSet" not in source:
        return
    declared = source.SpecificCharacterSet
    terms = (
        [str(t or "") for t in declared]
        if isinstance(declared, MultiValue | list)
        else [str(declared or "")]
    )
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None or tag not in source:
            continue
        # get_item leaves the value raw: reading it as an element would decode it leniently.
        value = getattr(source.get_item(tag), "value", None)
        if not isinstance(value, bytes) or value.isascii() or dictionary_VR(tag) not in TEXT_VRS:
            continue
        if strict_decode(value, terms) is None:
            charset = "\\".join(terms)
            raise InputError(
                f"{name}: the bytes of {keyword} are not valid in its character set "
                f"{charset!r}, so the value cannot be copied exactly; correct the "
                "reference's value or its SpecificCharacterSet"
            )


def _validate_copied(copied: Dataset, name: str) -> None:
    """Copied values obey the rules given ones do; lengths are checked once the set is chosen."""
    as_tags: dict[int, object] = {e.tag: _as_tag_value(e) for e in copied}
    try:
        validate_tags(as_tags, check_lengths=False)
    except TagError as exc:
        raise TagError(f"{name}: {exc}") from None


def _as_tag_value(element: DataElement) -> object:
    if element.VR == "SQ":
        return [{e.tag: _as_tag_value(e) for e in item} for item in element.value]
    return element_text(element)


def _detached(element: DataElement) -> DataElement:
    """A copy holding plain decoded values, free of the source file's raw bytes and charset."""
    load_pydicom()
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence

    if element.VR == "SQ":
        items = Sequence()
        for item in element.value:
            clean = Dataset()
            for child in item:
                clean.add(_detached(child))
            items.append(clean)
        return DataElement(element.tag, "SQ", items)
    value = element.value
    if element.VR == "PN":
        value = [str(v) for v in value] if isinstance(value, MultiValue) else str(value or "")
    return DataElement(element.tag, element.VR, copy.deepcopy(value))


class EncodedPdf:
    """A PDF ready to be written as DICOM: its attributes encoded, its bytes still on disk.

    The head (preamble, file meta, attributes before the document and the document's element
    header) and the tail (pad byte and the attributes after it) are small and built in
    memory; :meth:`chunks` yields head, PDF and tail, so the same object can go to a file or
    straight into an HTTP request body of known :attr:`length`, as often as needed.

    An ordinary document (see :mod:`pdf2dcm.fastwrite`) is made from its :attr:`attributes`
    alone, without pydicom; :attr:`dataset` is then built only if a caller asks for it.
    """

    def __init__(
        self,
        contents: Dataset | dict[str, Any],
        pdf: BinaryIO,
        size: int,
        name: str,
        warnings: tuple[str, ...],
        sha256: str | None = None,
    ) -> None:
        if isinstance(contents, dict):
            self.attributes = contents
            self._dataset: Dataset | None = None
            self._head, self._tail = fastwrite.encode_around_document(contents, size)
        else:
            self.attributes = attribute_values(contents)
            self._dataset = contents
            self._head, self._tail = _encode_around_document(contents, size)
        self.pdf_size = size
        self.name = name
        self.warnings = warnings
        self.sha256 = sha256
        """Known in advance, or set once :meth:`chunks` or a checksummed :meth:`write_to` has
        run to the end."""
        self._pdf = pdf
        self._written = sha256 is not None

    @property
    def dataset(self) -> Dataset:
        """The attributes as a pydicom dataset (the document itself left out)."""
        if self._dataset is None:
            self._dataset = _dataset_from_attributes(self.attributes)
        return self._dataset

    @property
    def length(self) -> int:
        """Size of the complete DICOM file in bytes."""
        return len(self._head) + self.pdf_size + len(self._tail)

    def chunks(self, progress: ProgressCallback | None = None) -> Iterator[bytes]:
        """The DICOM file, from its first byte, in pieces of at most ``CHUNK_SIZE``."""
        yield self._head
        yield from self.pdf_blocks(CHUNK_SIZE, progress)
        yield self._tail

    def pdf_blocks(
        self, block_size: int, progress: ProgressCallback | None = None
    ) -> Iterator[bytes]:
        """The PDF alone, from its first byte; sets :attr:`sha256` when it reaches the end."""
        self._pdf.seek(0)
        digest = None if self.sha256 is not None else hashlib.sha256()
        yield from hashed_blocks(
            self._pdf, self.pdf_size, digest, block_size, self.name, progress, _shrank(self.name)
        )
        if digest is not None:
            self.sha256 = digest.hexdigest()
        self._written = True

    def write_to(
        self, out: BinaryIO, progress: ProgressCallback | None = None, *, checksum: bool = True
    ) -> None:
        """Write the DICOM file to ``out``; the PDF is copied by the kernel unless hashed.

        Without ``checksum`` (and no checksum known yet) :attr:`sha256` stays None: hashing
        500 MiB costs more than copying them, and a plain ``encode`` has no use for it.
        """
        out.write(self._head)
        self._pdf.seek(0)
        digest = copy_document(
            self._pdf,
            out,
            self.pdf_size,
            label=self.name,
            progress=progress,
            short=_shrank(self.name),
            checksum=checksum and self.sha256 is None,
        )
        if digest is not None:
            self.sha256 = digest
        out.write(self._tail)
        self._written = True

    def result(self, output: str | None) -> EncodeResult:
        if not self._written:
            raise RuntimeError("the document has not been written yet")
        values = self.attributes
        return EncodeResult(
            output=output,
            sop_instance_uid=values["SOPInstanceUID"],
            series_instance_uid=values["SeriesInstanceUID"],
            study_instance_uid=values["StudyInstanceUID"],
            pdf_size=self.pdf_size,
            sha256=self.sha256,
            document_title=values.get("DocumentTitle", ""),
            warnings=self.warnings,
            patient_id=values.get("PatientID"),
        )


def _dataset_from_attributes(attributes: dict[str, Any]) -> Dataset:
    """The dataset :func:`_build_dataset` would have built for these final attributes."""
    load_pydicom()
    from pydicom.dataset import Dataset

    ds = Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in attributes.items():
            ds.add(_element(COMMON_ELEMENTS[keyword][0], value))
    return ds


@contextlib.contextmanager
def open_encoded(
    source: PathLike | BinaryIO,
    *,
    tags: TagsInput | None = None,
    title: str | None = None,
    conversion_type: Literal["WSD", "SD"] = "WSD",
    reference: ReferenceAttributes | None = None,
    now: dt.datetime | None = None,
    source_name: str | None = None,
    pdf_sha256: str | None = None,
    code_extensions: bool = True,
    strict: bool = False,
    notes: Seq[str] = (),
) -> Iterator[EncodedPdf]:
    """Check a PDF and its tags and prepare its DICOM encoding; see :func:`encode_pdf`.

    The source stays open while the context lasts, so the result can be streamed (and
    streamed again, for a retried upload) without a temporary DICOM file. A caller that has
    already hashed the PDF passes ``pdf_sha256`` so that it is not hashed again. Without
    ``code_extensions`` the object is never written in an ISO 2022 character set. With
    ``strict``, a warning (a PDF that may be truncated, ...) is a StrictModeError instead;
    ``notes`` are the planning stage's warnings for this document, kept first.
    """
    name = source_name or display_name(source)
    user_tags = validate_tags(dict(tags or {}))
    if title is not None:
        user_tags |= validate_tags({"DocumentTitle": title})
    moment = now or dt.datetime.now()
    with open_input(source, name=name) as (pdf, size):
        if size == 0:
            raise InputError(f"{name} is empty; give a non-empty PDF")
        if size > MAX_PDF_SIZE:
            raise InputError(
                f"{name} is {size} bytes; DICOM cannot hold a document over {MAX_PDF_SIZE} bytes"
            )
        facts = inspect_pdf(pdf, size, name)
        notes = list(notes)
        if facts.truncated:
            notes.append(truncation_note(name))
        # The reference's own warnings are its caller's to show, once per batch.
        if (
            reference is not None
            and not code_extensions
            and uses_code_extensions(reference.character_set)
        ):
            charset = "\\".join(reference.character_set)
            notes.append(
                f"{reference.source} is in {charset}, which "
                "this receiver cannot write: the document is in UTF-8, its names decode "
                "the same but their bytes differ from the study's"
            )
        defaults = _default_values(
            document_title=facts.title or title_from_name(source, name),
            conversion_type=conversion_type,
            moment=moment,
            created=facts.creation_date,
            zone=_time_zone(user_tags, moment, reference.dataset if reference else None),
        )
        contents: Dataset | dict[str, Any] | None = None
        if reference is None:
            contents = plain_attributes(user_tags, defaults, size)
        if contents is None:
            with warnings.catch_warnings():
                # pydicom's value checks warn on stderr; ours raise one clear line instead.
                warnings.simplefilter("ignore")
                contents, charset_note = _build_dataset(
                    user_tags,
                    defaults,
                    reference=reference,
                    size=size,
                    code_extensions=code_extensions,
                )
            if charset_note is not None:
                notes.append(charset_note)
        if strict and notes:
            raise strict_refusal(notes[0])
        yield EncodedPdf(contents, pdf, size, name, tuple(notes), pdf_sha256)


def truncation_note(name: str) -> str:
    return f"{name} has no %%EOF marker near its end; it may be truncated"


def strict_refusal(note: str) -> StrictModeError:
    return StrictModeError(f"{note} (a warning, refused in strict mode)")


def refuse_truncated(names: Iterable[str]) -> None:
    """Strict mode, before a batch writes or sends anything: refuse it if one of its PDFs
    may be truncated, so that no file of it is written or sent first.

    Inputs that are not PDFs (DICOM files, unreadable names, stdin) are left to their own
    turn in the batch, which reports them.
    """
    from .pdf import may_be_truncated
    from .sniff import looks_like_dicom

    for name in names:
        if name == "-" or not is_regular_file(name):
            continue
        try:
            with open(name, "rb") as handle:
                if not looks_like_dicom(handle) and may_be_truncated(handle):
                    raise strict_refusal(truncation_note(name))
        except OSError:
            continue


STDIN_NAME = "<stdin>"


def title_from_name(source: PathLike | BinaryIO, name: str) -> str:
    """The file name stem as a title; stdin has no name worth showing, so a fixed one.

    An open file handed in by a caller that read it first (upload, the hot folder) is titled
    by the name it was given under: only stdin gets the fixed title.
    """
    if not isinstance(source, str | os.PathLike) and (name == STDIN_NAME or not name):
        return DEFAULT_TITLE
    stem = Path(name).stem
    # A name that is not valid UTF-8 arrives with surrogate escapes, which no charset encodes.
    readable = stem.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    # A name is never text with escapes or line breaks of its own: every control is a space.
    plain = "".join(" " if unicodedata.category(char) == "Cc" else char for char in readable)
    return free_text(plain).strip() or DEFAULT_TITLE


def encode_pdf(
    source: PathLike | BinaryIO,
    destination: PathLike | BinaryIO,
    *,
    tags: TagsInput | None = None,
    title: str | None = None,
    conversion_type: Literal["WSD", "SD"] = "WSD",
    reference: ReferenceAttributes | None = None,
    overwrite: bool = False,
    now: dt.datetime | None = None,
    progress: ProgressCallback | None = None,
    source_name: str | None = None,
    checksum: bool = True,
    strict: bool = False,
) -> EncodeResult:
    """Wrap a PDF in a conformant Encapsulated PDF Storage object.

    Parameters
    ----------
    source
        A path or a binary stream (a pipe is spooled to a temporary file, not to memory).
    destination
        A path (written to a temporary file and moved into place when complete) or a stream.
    tags
        Keywords or ``gggg,eeee`` mapped to strings, sequences as lists of dicts; they override
        the defaults and ``reference``. Validated before anything is written.
    title
        DocumentTitle; by default the PDF's own Title metadata, else the file name stem.
    reference
        Patient/study (and series) attributes from :func:`read_reference`.
    now
        The creation time for every date and time not given (local time, naive).
    checksum
        Whether to compute the PDF's sha256 for the result. Without it the result's
        ``sha256`` is None and the PDF is copied file to file by the kernel, never read into
        this process.

    Raises
    ------
    InputError
        Missing or unreadable input, not a PDF, too large, a bad tag, an existing output.
    """
    with (
        open_encoded(
            source,
            tags=tags,
            title=title,
            conversion_type=conversion_type,
            reference=reference,
            now=now,
            source_name=source_name,
            strict=strict,
        ) as document,
        atomic_output(destination, overwrite=overwrite) as out,
    ):
        document.write_to(out, progress, checksum=checksum)
    output = os.fspath(destination) if isinstance(destination, (str, os.PathLike)) else None
    return document.result(output)


def attribute_values(ds: Dataset) -> dict[str, Any]:
    """The attributes of a dataset in the shape of a tags file (the document itself left out)."""
    values: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating the dataset would read the document
        if tag == _DOCUMENT_TAG:
            continue
        element = ds[tag]
        if element.keyword:
            values[element.keyword] = tag_json_value(element.value, element.VR)
    return values


def tag_json_value(value: Any, vr: str) -> Any:
    """One attribute's value as a tags file (and Orthanc's create-dicom) writes it."""
    load_pydicom()
    from pydicom.multival import MultiValue

    if vr == "SQ":
        return [
            {element.keyword: tag_json_value(element.value, element.VR) for element in item}
            for item in value
        ]
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


def plan_pdf(
    source: PathLike | BinaryIO,
    *,
    tags: TagsInput | None = None,
    title: str | None = None,
    conversion_type: Literal["WSD", "SD"] = "WSD",
    reference: ReferenceAttributes | None = None,
    now: dt.datetime | None = None,
    source_name: str | None = None,
    strict: bool = False,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Every attribute :func:`encode_pdf` would write, and its warnings; nothing is written."""
    with open_encoded(
        source,
        tags=tags,
        title=title,
        conversion_type=conversion_type,
        reference=reference,
        now=now,
        source_name=source_name,
        strict=strict,
    ) as document:
        return attribute_values(document.dataset), document.warnings


_COMMON_KEYWORDS = {tag: keyword for keyword, (tag, _vr, _vm) in COMMON_ELEMENTS.items()}


def plain_attributes(
    user_tags: ValidatedTags, defaults: dict[str, Any], size: int
) -> dict[str, Any] | None:
    """The final attributes of a document without a reference, as :func:`attribute_values`
    gives those of :func:`_build_dataset`'s dataset; or None unless fastwrite writes them
    exactly and nothing is left for pydicom to decide or refuse.

    Without a reference the character set is none (ASCII) or UTF-8, and nothing is copied,
    so no note is owed. Whatever else (a sequence, a keyword fastwrite does not know, a
    value too long in bytes, a title to cut) goes to the full build, which decides or raises.
    """
    given: dict[str, str] = {}
    for tag, value in user_tags.items():
        keyword = _COMMON_KEYWORDS.get(tag)
        if keyword is None or not isinstance(value, str):
            return None
        given[keyword] = _as_pydicom_keeps(COMMON_ELEMENTS[keyword][1], value)
    values = dict(defaults) | given
    values["MIMETypeOfEncapsulatedDocument"] = PDF_MIME_TYPE
    values["EncapsulatedDocumentLength"] = str(size)
    texts = [
        (COMMON_ELEMENTS[keyword][1], value)
        for keyword, value in values.items()
        if COMMON_ELEMENTS[keyword][1] in TEXT_VRS
    ]
    if not all(_fits(vr, value) for vr, value in texts):
        return None
    if not all(value.isascii() for _vr, value in texts):
        values["SpecificCharacterSet"] = UTF8
    return values if fastwrite.supports(values) else None


def _as_pydicom_keeps(vr: str, value: str) -> str:
    """A given value as pydicom's dataset holds and writes it: an IS without its padding, a
    name without empty trailing groups (``Doe^Jane==`` is ``Doe^Jane``); others unchanged."""
    if vr == "IS":
        return "\\".join(single.strip() for single in value.split("\\"))
    if vr == "PN":
        return "\\".join(
            "=".join(_without_empty_tail(name.split("="))) for name in value.split("\\")
        )
    return value


def _without_empty_tail(groups: list[str]) -> list[str]:
    while groups and not groups[-1]:
        groups.pop()
    return groups


def _fits(vr: str, value: str) -> bool:
    """Whether a value, all of it, fits its VR's limit in UTF-8 bytes (then so does each of
    its values under the rules of :func:`pdf2dcm.identity.check_encoded_lengths`)."""
    if vr == "PN":
        return all(len(group.encode("utf-8")) <= 64 for group in value.split("="))
    limit = _BYTE_LIMITS.get(vr)
    return limit is None or len(value.encode("utf-8")) <= limit


def _build_dataset(
    user_tags: ValidatedTags,
    defaults: dict[str, Any],
    *,
    reference: ReferenceAttributes | None,
    size: int,
    code_extensions: bool = True,
) -> tuple[Dataset, str | None]:
    """The object's attributes, and the warning owed when the study's character set could not
    be kept (see :func:`pdf2dcm.identity.charset_change_note`).

    ``defaults`` (:func:`_default_values`) are what the reference and the tags are laid over.
    """
    load_pydicom()
    from pydicom.dataset import Dataset

    ds = Dataset()
    for keyword, value in defaults.items():
        setattr(ds, keyword, value)
    copied: frozenset[int] = frozenset()
    preferred: tuple[str, ...] = ()
    if reference is not None:
        user_tags = check_identity(
            user_tags,
            reference.dataset,
            reference.level,
            reference.source,
            stored_study=reference.stored_study,
        )
        for element in reference.dataset:
            ds.add(copy.deepcopy(element))
        copied = frozenset(element.tag for element in reference.dataset)
        preferred = reference.character_set
        if reference.next_instance_number is not None:
            ds.InstanceNumber = str(reference.next_instance_number)
        if reference.next_series_number is not None:
            ds.SeriesNumber = str(reference.next_series_number)
    for tag, value in user_tags.items():
        ds.add(_element(tag, value))
    ds.MIMETypeOfEncapsulatedDocument = PDF_MIME_TYPE
    ds.EncapsulatedDocumentLength = size
    terms = choose_character_set(ds, preferred, code_extensions=code_extensions)
    if _DOCUMENT_TITLE not in user_tags:
        ds.DocumentTitle = cut_to_bytes(str(ds.DocumentTitle), MAX_TITLE_BYTES, terms)
    check_encoded_lengths(ds, terms, copied - user_tags.keys())
    if terms:
        ds.SpecificCharacterSet = terms[0] if len(terms) == 1 else terms
    note = None
    if code_extensions or not uses_code_extensions(preferred):
        source = reference.source if reference is not None else "the reference"
        note = charset_change_note(ds, preferred, terms, copied - user_tags.keys(), source)
    return ds, note


def _default_values(
    *,
    document_title: str,
    conversion_type: str,
    moment: dt.datetime,
    created: dt.datetime | None,
    zone: dt.tzinfo,
) -> dict[str, str | list[Any]]:
    """The object before the reference and the user's tags are laid over it, keyword ->
    value (an empty sequence as []).

    Every attribute starts with a default (empty where the standard allows it), so whatever
    the reference and the tags leave out is still written; the dates are in ``zone``, since
    TimezoneOffsetFromUTC applies to all of them.
    """
    local = moment.astimezone(zone)
    date, time = local.strftime("%Y%m%d"), local.strftime("%H%M%S")
    made = (created.astimezone(zone) if created.tzinfo else created) if created else local
    made_date, made_time = made.strftime("%Y%m%d"), made.strftime("%H%M%S")
    return {
        "SOPClassUID": ENCAPSULATED_PDF_STORAGE,
        "SOPInstanceUID": new_uid(),
        "InstanceCreationDate": date,
        "InstanceCreationTime": time,
        "StudyDate": date,
        "StudyTime": time,
        "AccessionNumber": "",
        "Modality": "DOC",
        "ConversionType": conversion_type,
        "Manufacturer": "",
        "ReferringPhysicianName": "",
        "PatientName": "",
        "PatientID": "",
        "PatientBirthDate": "",
        "PatientSex": "",
        "StudyInstanceUID": new_uid(),
        "SeriesInstanceUID": new_uid(),
        "StudyID": "",
        "SeriesNumber": "1",
        "InstanceNumber": "1",
        "ContentDate": made_date,
        "ContentTime": made_time,
        "AcquisitionDateTime": made_date + made_time,
        "TimezoneOffsetFromUTC": _offset_text(zone),
        "BurnedInAnnotation": "YES",
        "SecondaryCaptureDeviceManufacturer": "pdf2dcm",
        "SecondaryCaptureDeviceSoftwareVersions": __version__,
        "DocumentTitle": document_title,
        "ConceptNameCodeSequence": [],
    }


def _time_zone(
    user_tags: ValidatedTags, moment: dt.datetime, reference: Dataset | None = None
) -> dt.tzinfo:
    """The zone of every date and time written: the one given, else the reference's (a
    document joining a study keeps the study's clock), else this machine's then.

    TimezoneOffsetFromUTC applies to every DA, TM and DT of the object (PS3.3 C.12.1.1.8),
    so the PDF's creation time is converted to it rather than written in its own zone.
    """
    given = user_tags.get(_TIMEZONE_OFFSET)
    if not (isinstance(given, str) and given.strip()) and reference is not None:
        copied = reference.get("TimezoneOffsetFromUTC")
        given = str(copied) if copied is not None else None
    text = given.strip() if isinstance(given, str) else ""
    if len(text) == 5 and text[0] in "+-" and text[1:].isdigit():
        minutes = int(text[1:3]) * 60 + int(text[3:5])
        return dt.timezone(dt.timedelta(minutes=-minutes if text[0] == "-" else minutes))
    offset = (moment if moment.tzinfo else moment.astimezone()).utcoffset() or dt.timedelta(0)
    return dt.timezone(offset)


def _offset_text(zone: dt.tzinfo) -> str:
    offset = zone.utcoffset(None) or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _element(tag: int, value: ValidatedValue) -> DataElement:
    load_pydicom()
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    vr = dictionary_VR(tag)
    if isinstance(value, list):
        items = Sequence()
        for item_tags in value:
            item = Dataset()
            for child_tag, child_value in item_tags.items():
                item.add(_element(child_tag, child_value))
            items.append(item)
        return DataElement(tag, "SQ", items)
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        numbers = [int(v) for v in value.split("\\")] if value else None
        return DataElement(tag, vr, numbers[0] if numbers and len(numbers) == 1 else numbers)
    if vr in ("FL", "FD"):
        floats = [float(v) for v in value.split("\\")] if value else None
        return DataElement(tag, vr, floats[0] if floats and len(floats) == 1 else floats)
    return DataElement(tag, vr, value)


def _file_meta(ds: Dataset) -> list[DataElement]:
    """The file meta elements after the group length, in tag order, as pydicom completes them
    (``enforce_standard``: the version 00\\01 first)."""
    load_pydicom()
    from pydicom.dataelem import DataElement

    return [
        DataElement(0x00020001, "OB", b"\x00\x01"),
        DataElement(0x00020002, "UI", ds.SOPClassUID),
        DataElement(0x00020003, "UI", ds.SOPInstanceUID),
        DataElement(0x00020010, "UI", EXPLICIT_VR_LITTLE_ENDIAN),
        DataElement(0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
        DataElement(0x00020013, "SH", IMPLEMENTATION_VERSION_NAME),
    ]


def _encode_around_document(ds: Dataset, size: int) -> tuple[bytes, bytes]:
    """The encoded bytes before and after the PDF.

    They are encoded in memory (they are small) so that the output may be a pipe or a
    socket, where pydicom's writer could not tell() or seek(). They are the bytes pydicom's
    ``write_file_meta_info`` and ``write_dataset`` write, made faster for the common values
    (see :func:`_write_elements`): for a batch of small files this encoding was half the
    client's work per file.
    """
    before: list[DataElement] = []
    after: list[DataElement] = []
    for element in ds:
        (before if element.tag < _DOCUMENT_TAG else after).append(element)
    charset = ds.get("SpecificCharacterSet")
    meta = _encoder()
    _write_elements(meta, _file_meta(ds), None)
    head = _encoder()
    head.write(b"\x00" * 128 + b"DICM")
    head.write(struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, meta.tell()))
    head.write(meta.getvalue())
    _write_elements(head, before, charset)
    head.write(struct.pack("<HH2sHI", 0x0042, 0x0011, b"OB", 0, size + size % 2))
    tail = _encoder()
    if size % 2:
        tail.write(b"\x00")
    _write_elements(tail, after, charset or "ISO_IR 6")
    return head.getvalue(), tail.getvalue()


_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})
"""VRs pydicom always writes in its default encoding, whatever the character set."""
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
"""VRs written in the data set's character set (PN is left to pydicom)."""
_ASCII_CODECS = frozenset({"iso8859", "latin_1", "utf_8"})
"""Python codecs of ISO_IR 6, 100 and 192, in which ASCII text is its own encoding."""
_LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})
_INTEGER_FORMATS = {"UL": "<I", "US": "<H", "SL": "<i", "SS": "<h"}


def _write_elements(
    out: DicomBytesIO, elements: Seq[DataElement], charset: str | MutableSequence[str] | None
) -> None:
    """Write elements (in tag order) in Explicit VR Little Endian, byte for byte as pydicom's
    ``write_dataset`` does.

    ASCII strings and single integers, nearly every value of an Encapsulated PDF object, are
    encoded here; pydicom writes every other one (names, numbers as text, sequences, other
    character sets), and the whole list when a VR is still ambiguous, as pydicom then first
    resolves it.
    """
    load_pydicom()
    from pydicom.charset import convert_encodings
    from pydicom.dataset import Dataset
    from pydicom.filewriter import write_data_element, write_dataset

    if any(len(element.VR) != 2 for element in elements):
        dataset = Dataset()
        for element in elements:
            dataset.add(element)
        parent = charset if isinstance(charset, str) else list(charset or ["iso8859"])
        write_dataset(out, dataset, parent_encoding=parent)
        return
    encodings = convert_encodings(charset or "iso8859")
    ascii_text = len(encodings) == 1 and encodings[0] in _ASCII_CODECS
    for element in elements:
        if element.tag & 0xFFFF == 0 and element.tag >> 16 > 6:
            continue  # retired group lengths, which pydicom leaves out too
        value = _simple_value(element, ascii_text)
        if value is None:
            write_data_element(out, element, encodings)
            continue
        group, number, vr = element.tag >> 16, element.tag & 0xFFFF, element.VR.encode()
        if element.VR in _LONG_LENGTH_VRS:
            header = struct.pack("<HH2sHI", group, number, vr, 0, len(value))
        else:
            header = struct.pack("<HH2sH", group, number, vr, len(value))
        out.write(header + value)


def _simple_value(element: DataElement, ascii_text: bool) -> bytes | None:
    """The encoded value of an element this module encodes itself, or None for pydicom."""
    vr = element.VR
    value = element.value
    data: bytes | None
    if vr in _ASCII_VRS or (ascii_text and vr in _TEXT_VRS):
        data = _ascii_value(vr, value)
    elif vr == "OB" and type(value) is bytes:
        data = value + b"\x00" * (len(value) % 2)
    elif vr in _INTEGER_FORMATS and type(value) is int:
        data = _integer_value(vr, value)
    else:
        return None
    if data is None:
        return None
    if vr not in _LONG_LENGTH_VRS and len(data) > 0xFFFF:
        return None  # pydicom writes it as UN, with a warning
    return data


def _ascii_value(vr: str, value: object) -> bytes | None:
    """A string value padded to even length as pydicom pads it, or None unless it is ASCII
    text: anything else depends on the character set or on pydicom's own conversions."""
    load_pydicom()
    from pydicom.multival import MultiValue

    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    elif isinstance(value, MultiValue | list | tuple) and all(
        isinstance(item, str) for item in value
    ):
        text = "\\".join(value)
    else:
        return None
    if not text.isascii():
        return None
    if len(text) % 2:
        text += "\0" if vr == "UI" else " "
    return text.encode("ascii")


def _integer_value(vr: str, value: int) -> bytes | None:
    """The packed integer, or None when it is out of the VR's range, for pydicom to report."""
    try:
        return struct.pack(_INTEGER_FORMATS[vr], value)
    except struct.error:
        return None


def _encoder() -> DicomBytesIO:
    load_pydicom()
    from pydicom.filebase import DicomBytesIO

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    return buffer


def _shrank(name: str) -> Callable[[int], Exception]:
    def error(_got: int) -> Exception:
        return InputError(f"{name} shrank while being read; is another program writing it?")

    return error
