"""Writing an ordinary Encapsulated PDF object without pydicom, byte for byte as dicom.py does.

An ordinary document is one whose final attributes (as :func:`pdf2dcm.dicom.attribute_values`
gives them: keyword -> text) use only the keywords of :data:`ELEMENTS`, hold text in ASCII,
Latin-1 (ISO_IR 100) or UTF-8 (ISO_IR 192), and no sequence but an empty
ConceptNameCodeSequence. Such a document is written here in Explicit VR Little Endian exactly
as pydicom's writer writes the same dataset; :func:`supports` says which documents qualify,
and anything else is left to dicom.py. Importing this module imports no third-party package,
so a command that writes an ordinary document starts without pydicom's import time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import BinaryIO

from . import __version__
from .errors import InputError
from .files import copy_document
from .progress import ProgressCallback
from .tags import COMMON_ELEMENTS

Attributes = Mapping[str, object]
"""Keyword -> value in the shape of a tags file: text, or a list of items for a sequence."""

ELEMENTS = COMMON_ELEMENTS
"""The keywords this writer knows (:data:`pdf2dcm.tags.COMMON_ELEMENTS`)."""

DOCUMENT_TAG = 0x00420011
IMPLEMENTATION_CLASS_UID = "2.25.96049378734582463290374981003592740123"
"""dicom.py's implementation UID (a test holds the two equal)."""
IMPLEMENTATION_VERSION_NAME = f"PDF2DCM_{__version__}"[:16]
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
_CODECS = {None: "ascii", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}
"""Character sets written here, with the codec pydicom encodes their text in (ASCII only
without a SpecificCharacterSet: pydicom's default set is ISO 646)."""
_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})


def supports(attributes: Attributes) -> bool:
    """Whether :func:`encode_around_document` writes this document exactly as dicom.py does."""
    charset = attributes.get("SpecificCharacterSet")
    if charset not in _CODECS:
        return False
    codec = _CODECS[charset]
    return all(
        keyword in ELEMENTS and _writable(ELEMENTS[keyword][1], value, codec)
        for keyword, value in attributes.items()
    )


def _writable(vr: str, value: object, codec: str) -> bool:
    if vr == "SQ":
        return value == []
    if not isinstance(value, str):
        return False
    if vr == "UL":
        return value.isascii() and value.isdigit() and int(value) <= 0xFFFFFFFF
    try:
        encoded = value.encode(codec if vr in _TEXT_VRS else "ascii")
    except UnicodeError:
        return False
    return vr in _LONG_LENGTH_VRS or len(encoded) + len(encoded) % 2 <= 0xFFFF


def encode_around_document(attributes: Attributes, size: int) -> tuple[bytes, bytes]:
    """The file's bytes before the PDF (preamble, file meta, attributes, the document's
    element header) and after it (pad byte, the attributes after the document).

    Only for attributes :func:`supports` accepts; ``size`` is the PDF's length in bytes.
    """
    codec = _CODECS[_text(attributes.get("SpecificCharacterSet")) or None]
    elements = sorted(
        (ELEMENTS[keyword][0], ELEMENTS[keyword][1], value) for keyword, value in attributes.items()
    )
    meta = b"".join(
        _element(tag, vr, value, "ascii")
        for tag, vr, value in (
            (0x00020001, "OB", b"\x00\x01"),
            (0x00020002, "UI", _text(attributes["SOPClassUID"])),
            (0x00020003, "UI", _text(attributes["SOPInstanceUID"])),
            (0x00020010, "UI", EXPLICIT_VR_LITTLE_ENDIAN),
            (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
            (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME),
        )
    )
    head = [
        b"\x00" * 128 + b"DICM",
        struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(meta)),
        meta,
    ]
    head += [_element(t, vr, v, codec) for t, vr, v in elements if t < DOCUMENT_TAG]
    head.append(struct.pack("<HH2sHI", 0x0042, 0x0011, b"OB", 0, size + size % 2))
    tail = [b"\x00" * (size % 2)]
    tail += [_element(t, vr, v, codec) for t, vr, v in elements if t > DOCUMENT_TAG]
    return b"".join(head), b"".join(tail)


def write(
    attributes: Attributes,
    pdf: BinaryIO,
    size: int,
    out: BinaryIO,
    *,
    name: str,
    progress: ProgressCallback | None = None,
    checksum: bool = True,
) -> str | None:
    """Write the whole object to ``out``, the PDF streamed from ``pdf``'s start.

    Returns the PDF's sha256 when ``checksum`` (else the kernel may copy the PDF).

    Raises
    ------
    InputError
        The PDF ended before ``size`` bytes (another program is writing it).
    """
    head, tail = encode_around_document(attributes, size)
    out.write(head)
    pdf.seek(0)
    digest = copy_document(
        pdf, out, size, label=name, progress=progress, short=_shrank(name), checksum=checksum
    )
    out.write(tail)
    return digest


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _element(tag: int, vr: str, value: object, codec: str) -> bytes:
    """One element as pydicom's ``write_data_element`` writes it in Explicit VR LE."""
    group, number = tag >> 16, tag & 0xFFFF
    if vr == "SQ":
        return struct.pack("<HH2sHI", group, number, b"SQ", 0, 0)  # empty: defined length 0
    if isinstance(value, bytes):
        data = value + b"\x00" * (len(value) % 2)
    elif vr == "UL":
        data = struct.pack("<I", int(_text(value)))
    else:
        data = _text(value).encode(codec if vr in _TEXT_VRS else "ascii")
        if len(data) % 2:
            data += b"\x00" if vr == "UI" else b" "
    if vr in _LONG_LENGTH_VRS:
        return struct.pack("<HH2sHI", group, number, vr.encode(), 0, len(data)) + data
    return struct.pack("<HH2sH", group, number, vr.encode(), len(data)) + data


def _shrank(name: str) -> Callable[[int], Exception]:
    def error(_got: int) -> Exception:
        return InputError(f"{name} shrank while being read; is another program writing it?")

    return error
