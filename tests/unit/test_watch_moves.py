"""Where a finished file goes: across file systems, and beside a namesake."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pdf2dcm.watch import _free_name, _move


def test_a_move_across_file_systems_copies_then_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "a.pdf", tmp_path / "out" / "a.pdf"
    target.parent.mkdir()
    source.write_bytes(b"%PDF-1 data")
    renamed: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        renamed.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    _move(source, target)
    assert not source.exists()
    assert target.read_bytes() == b"%PDF-1 data"
    # The copy is written under a fresh name nobody could plant, then linked into place (a
    # link never writes through what stands at the target); nothing else is left.
    assert renamed == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.pdf"]


def test_a_move_across_file_systems_never_writes_through_a_planted_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "a.pdf", tmp_path / "out" / "a.pdf"
    target.parent.mkdir()
    source.write_bytes(b"%PDF-1 data")
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    target.symlink_to(victim)
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(FileExistsError):
        _move(source, target)
    assert victim.read_bytes() == b"keep"
    assert source.read_bytes() == b"%PDF-1 data"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.pdf"]


def test_another_error_of_the_rename_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def replace(_src: object, _dst: object) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PermissionError):
        _move(tmp_path / "a.pdf", tmp_path / "b.pdf")


def test_free_name(tmp_path: Path) -> None:
    target = tmp_path / "scan.pdf"
    assert _free_name(target, "0" * 64) == target
    target.write_bytes(b"one")
    same = "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
    assert _free_name(target, same) == target
    assert _free_name(target, "0" * 64) == tmp_path / "scan.2.pdf"
    (tmp_path / "scan.2.pdf").write_bytes(b"two")
    assert _free_name(target, "0" * 64) == tmp_path / "scan.3.pdf"
