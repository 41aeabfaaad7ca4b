"""Whether a file is DICOM, from its first bytes: asked of every input of encode and upload,
so it lives apart from the reader of DICOM files (:mod:`pdf2dcm.extract`), which only DICOM
inputs need."""

from __future__ import annotations

import struct
from typing import BinaryIO

PREAMBLE_LENGTH = 128
MAGIC = b"DICM"
SNIFF_WINDOW = 1024
VALID_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)
VRS_WITH_32BIT_LENGTH = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
UNDEFINED_LENGTH = 0xFFFFFFFF
SANE_LEADING_LENGTH = 64 * 1024


def looks_like_dicom(handle: BinaryIO) -> bool:
    """Whether a seekable file is DICOM, with or without its preamble; ``handle`` is left at 0.

    True for the 128-byte preamble followed by ``DICM`` (or by a prefix one byte off it), and
    for a file whose first element
    (at offset 0, or at 132 after a preamble whose prefix is damaged) is a plausible leading
    element of group 0002 or 0008 in Explicit or Implicit VR Little Endian: such files are
    DICOM that other tools wrote carelessly, and must never be taken for something else
    (a PDF, because of the document inside them) nor wrapped again.
    """
    handle.seek(0)
    head = handle.read(SNIFF_WINDOW)
    handle.seek(0)
    magic = head[PREAMBLE_LENGTH : PREAMBLE_LENGTH + 4]
    if magic == MAGIC:
        return True
    if len(magic) == 4 and sum(a != b for a, b in zip(magic, MAGIC, strict=True)) == 1:
        # A prefix one byte off: a damaged DICOM file, whatever follows it. Wrapped as a
        # PDF (its document holds %PDF- within 1024 bytes) it would be stored mislabelled;
        # a PDF's own junk before its header does not look like this by chance.
        return not head.startswith(b"%PDF-")
    return leading_element(head, 0) or leading_element(head, PREAMBLE_LENGTH + 4)


def leading_element(data: bytes, offset: int) -> bool:
    """Whether ``data[offset:]`` starts with a plausible first element of group 0002 or 0008."""
    header = data[offset : offset + 12]
    if len(header) < 8:
        return False
    group, _element = struct.unpack_from("<HH", header)
    if group not in (0x0002, 0x0008):
        return False
    vr = header[4:6]
    length: int
    if vr in VALID_VRS:
        if vr in VRS_WITH_32BIT_LENGTH:
            if len(header) < 12 or header[6:8] != b"\x00\x00":
                return False
            (length,) = struct.unpack_from("<I", header, 8)
            if length == UNDEFINED_LENGTH:
                return vr in (b"SQ", b"UN")
        else:
            (length,) = struct.unpack_from("<H", header, 6)
    else:
        (length,) = struct.unpack_from("<I", header, 4)
    return length % 2 == 0 and length <= SANE_LEADING_LENGTH
