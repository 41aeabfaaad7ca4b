"""A strict reader of DICOM text bytes (PS3.5 6.1), the check behind every character-set choice.

pydicom reads leniently: a byte its codec cannot map becomes U+FFFD or a Latin-1 guess, and
under ISO 2022 a byte from 0x80 up is taken as Latin-1 whatever G1 set is in force. What it
writes is therefore checked here, by the rules strict readers (DCMTK, Orthanc) apply: the
default G0 set is ASCII, a byte from 0x80 up belongs to the G1 set an escape sequence (or the
first value of SpecificCharacterSet) put in force and must decode in it, an escape sequence
must designate a set the attribute declares, and after a delimiter (``^``, ``=``, ``\\``, CR,
LF, FF, TAB) the initial sets are in force again. Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

_SINGLE = {
    "": "ascii",
    "ISO_IR 6": "ascii",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 166": "iso8859_11",
    "ISO_IR 203": "iso8859_15",
    "ISO_IR 13": "shift_jis",
    "ISO_IR 192": "utf_8",
    "GB18030": "gb18030",
    "GBK": "gbk",
}
"""Character sets without code extensions: the whole value decodes in one codec."""

_G0, _G1 = 0, 1

_ESCAPES: dict[bytes, tuple[int, str]] = {
    b"\x1b(B": (_G0, "ascii"),
    b"\x1b(J": (_G0, "ascii"),  # JIS X 0201 Roman: ASCII but for two glyphs
    b"\x1b$B": (_G0, "jisx0208"),
    b"\x1b$(D": (_G0, "jisx0212"),
    b"\x1b)I": (_G1, "jisx0201_katakana"),
    b"\x1b$)C": (_G1, "euc_kr"),
    b"\x1b$)A": (_G1, "gb2312"),
    b"\x1b-A": (_G1, "latin_1"),
    b"\x1b-B": (_G1, "iso8859_2"),
    b"\x1b-C": (_G1, "iso8859_3"),
    b"\x1b-D": (_G1, "iso8859_4"),
    b"\x1b-L": (_G1, "iso8859_5"),
    b"\x1b-G": (_G1, "iso8859_6"),
    b"\x1b-F": (_G1, "iso8859_7"),
    b"\x1b-H": (_G1, "iso8859_8"),
    b"\x1b-M": (_G1, "iso8859_9"),
    b"\x1b-T": (_G1, "iso8859_11"),
    b"\x1b-b": (_G1, "iso8859_15"),
}
"""Escape sequences PS3.3 C.12.1.1.2 allows, and the set each puts in force."""

_TERM_ESCAPES: dict[str, tuple[bytes, ...]] = {
    "ISO 2022 IR 6": (b"\x1b(B",),
    "ISO 2022 IR 100": (b"\x1b-A",),
    "ISO 2022 IR 101": (b"\x1b-B",),
    "ISO 2022 IR 109": (b"\x1b-C",),
    "ISO 2022 IR 110": (b"\x1b-D",),
    "ISO 2022 IR 144": (b"\x1b-L",),
    "ISO 2022 IR 127": (b"\x1b-G",),
    "ISO 2022 IR 126": (b"\x1b-F",),
    "ISO 2022 IR 138": (b"\x1b-H",),
    "ISO 2022 IR 148": (b"\x1b-M",),
    "ISO 2022 IR 166": (b"\x1b-T",),
    "ISO 2022 IR 203": (b"\x1b-b",),
    "ISO 2022 IR 13": (b"\x1b)I", b"\x1b(J"),
    "ISO 2022 IR 87": (b"\x1b$B",),
    "ISO 2022 IR 159": (b"\x1b$(D",),
    "ISO 2022 IR 149": (b"\x1b$)C",),
    "ISO 2022 IR 58": (b"\x1b$)A",),
}
"""What each ISO 2022 term of SpecificCharacterSet designates."""

_DELIMITERS = frozenset(b"^=\\\r\n\f\t")


def strict_decode(data: bytes, terms: Sequence[str]) -> str | None:
    """``data`` decoded as a strict reader would, or None where it would refuse or guess.

    ``terms`` is the attribute's SpecificCharacterSet (empty: the default repertoire, ASCII).
    """
    cleaned = [term.strip() for term in terms] or [""]
    if len(cleaned) == 1 and not cleaned[0].startswith("ISO 2022"):
        codec = _SINGLE.get(cleaned[0])
        if codec is None:
            return None
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            return None
    return _decode_iso2022(data, cleaned)


def _decode_iso2022(data: bytes, terms: list[str]) -> str | None:
    first = terms[0] or "ISO 2022 IR 6"
    if first not in _TERM_ESCAPES or any(t and t not in _TERM_ESCAPES for t in terms[1:]):
        return None
    allowed = {escape for term in terms if term for escape in _TERM_ESCAPES[term]}
    allowed |= set(_TERM_ESCAPES[first]) | {b"\x1b(B"}
    initial: list[str | None] = ["ascii", None]
    for escape in _TERM_ESCAPES[first]:
        graphic, name = _ESCAPES[escape]
        initial[graphic] = name
    runs = _runs(data, allowed, initial)
    if runs is None:
        return None
    texts = [_decode_run(run, name) for name, run in runs]
    return None if any(text is None for text in texts) else "".join(t or "" for t in texts)


def _runs(
    data: bytes, allowed: set[bytes], initial: list[str | None]
) -> list[tuple[str | None, bytes]] | None:
    """``data`` cut into runs of one set each, or None at an escape sequence not allowed."""
    state = list(initial)
    runs: list[tuple[str | None, bytes]] = []
    index = 0
    while index < len(data):
        byte = data[index]
        if byte == 0x1B:
            escape = next((e for e in _ESCAPES if data.startswith(e, index)), None)
            if escape is None or escape not in allowed:
                return None
            graphic, name = _ESCAPES[escape]
            state[graphic] = name
            index += len(escape)
            continue
        current = state[_G1] if byte >= 0x80 else state[_G0]
        if runs and runs[-1][0] == current:
            runs[-1] = (current, runs[-1][1] + bytes([byte]))
        else:
            runs.append((current, bytes([byte])))
        index += 1
        if byte in _DELIMITERS and current == "ascii":
            state = list(initial)
    return runs


def _decode_run(run: bytes, name: str | None) -> str | None:
    """One run of bytes of one set, decoded strictly."""
    try:
        if name == "jisx0208":
            return (b"\x1b$B" + run + b"\x1b(B").decode("iso2022_jp")
        if name == "jisx0212":
            return (b"\x1b$(D" + run + b"\x1b(B").decode("iso2022_jp_2")
        if name == "jisx0201_katakana":
            if any(not 0xA1 <= byte <= 0xDF for byte in run):
                return None
            return run.decode("shift_jis")
        if name in ("euc_kr", "gb2312"):
            if any(byte < 0xA1 for byte in run):
                return None
            return run.decode(name)
        if name is None:
            return None
        return run.decode(name)
    except UnicodeDecodeError:
        return None
