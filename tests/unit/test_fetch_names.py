"""File names for ``fetch -d``: made from tag values, safe, unique, and short enough in bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pdf2dcm.fetch import PdfInstance, name_max, safe_file_name

WIDE = "\U00020000"
"""A CJK character of 4 bytes in UTF-8: 76 of them make a 304-byte title."""


def instance(title: str, series: str = "1", number: str = "1", id_: str = "ab" * 4) -> PdfInstance:
    return PdfInstance(id=id_ * 5, title=title, series_number=series, instance_number=number)


def test_a_long_title_is_cut_to_fit_in_bytes_at_a_character_boundary() -> None:
    taken: set[str] = set()
    name = safe_file_name(instance(WIDE * 76), taken, max_bytes=239)
    assert len(name.encode()) <= 239
    assert name == "1-1-" + WIDE * 57 + ".pdf"
    assert len(name.encode()) == 4 + 57 * 4 + 4


def test_cut_names_stay_unique_and_within_the_limit() -> None:
    taken: set[str] = set()
    names = [safe_file_name(instance(WIDE * 76, number=""), taken, 50) for _ in range(12)]
    assert len(set(names)) == 12
    assert all(len(name.encode()) <= 50 for name in names)
    assert names[0] == "1-" + WIDE * 11 + ".pdf"
    assert names[1] == "1-" + WIDE * 10 + "-2.pdf"
    assert names[11] == "1-" + WIDE * 10 + "-12.pdf"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("../../etc/passwd", "1-1-etc_passwd.pdf"),
        ("\x00\x1b[31m", "1-1-31m.pdf"),
        ("", "1-1-abababab.pdf"),
        ("é" * 200, "1-1-" + "é" * 76 + ".pdf"),
    ],
)
def test_names_are_safe(title: str, expected: str) -> None:
    assert safe_file_name(instance(title), set()) == expected


def test_the_name_limit_comes_from_the_file_system(tmp_path: Path) -> None:
    assert name_max(tmp_path) == os.pathconf(tmp_path, "PC_NAME_MAX")
    assert name_max(tmp_path / "missing") == 255


def test_the_cut_name_can_be_created(tmp_path: Path) -> None:
    name = safe_file_name(instance(WIDE * 76), set(), name_max(tmp_path) - 16)
    (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".{name}.0123abcd.part").write_bytes(b"x")
