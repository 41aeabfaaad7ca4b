"""The inbox scanner: what is taken, what is ignored, and when a file counts as complete."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pdf2dcm.errors import FileSystemError
from pdf2dcm.watch import Inbox


def look(inbox: Inbox) -> tuple[list[str], int]:
    """The ready files and how many others wait (settling or still being written)."""
    scan = inbox.scan()
    return scan.ready, scan.settling + len(scan.incomplete)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_file_is_ready_after_settling_and_a_change_restarts_the_wait(tmp_path: Path) -> None:
    clock = Clock()
    inbox = Inbox(tmp_path, recursive=False, settle=2.0, clock=clock)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1\n%%EOF\n")
    assert look(inbox) == ([], 1)
    clock.now += 1.9
    assert look(inbox) == ([], 1)
    with pdf.open("ab") as handle:
        handle.write(b"more")
    clock.now += 0.2
    assert look(inbox) == ([], 1)
    clock.now += 1.99
    assert look(inbox) == ([], 1)
    clock.now += 0.01
    assert look(inbox) == (["a.pdf"], 0)


def test_a_change_of_the_sidecar_restarts_the_wait(tmp_path: Path) -> None:
    clock = Clock()
    inbox = Inbox(tmp_path, recursive=False, settle=1.0, clock=clock)
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1\n%%EOF\n")
    inbox.scan()
    clock.now += 0.5
    (tmp_path / "a.json").write_text("{}", encoding="utf-8")
    inbox.scan()
    clock.now += 0.9
    assert look(inbox) == ([], 1)
    clock.now += 0.1
    assert look(inbox) == (["a.pdf"], 0)


def test_a_file_that_stays_the_same_size_but_is_rewritten_waits(tmp_path: Path) -> None:
    clock = Clock()
    inbox = Inbox(tmp_path, recursive=False, settle=1.0, clock=clock)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1\n%%EOF\n")
    inbox.scan()
    clock.now += 0.9
    os.utime(pdf, ns=(0, 123_000_000_000))
    inbox.scan()
    clock.now += 0.9
    assert look(inbox) == ([], 1)


def test_ignored_names_and_folders(tmp_path: Path) -> None:
    clock = Clock()
    done = tmp_path / "done"
    inbox = Inbox(tmp_path, recursive=True, settle=0.0, excluded=(done,), clock=clock)
    for name in ("a.pdf", "B.PDF", "c.pdf.part", "d.pdf.tmp", ".e.pdf", "f.txt", "g.json"):
        (tmp_path / name).write_bytes(b"%PDF-1\n%%EOF\n")
    for folder in ("sub", ".hidden", "done"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.pdf").write_bytes(b"%PDF-1\n%%EOF\n")
    (tmp_path / "link.pdf").symlink_to(tmp_path / "a.pdf")
    inbox.scan()
    assert look(inbox) == (["B.PDF", "a.pdf", "link.pdf", "sub/x.pdf"], 0)
    flat = Inbox(tmp_path, recursive=False, settle=0.0, clock=clock)
    flat.scan()
    assert look(flat) == (["B.PDF", "a.pdf", "link.pdf"], 0)


def test_an_unreadable_file_is_not_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Permission bits do not stop root, so the refusal is the operating system's answer made
    # by hand: opening the file fails as it would for another user or under a lock.
    refused = {str(tmp_path / "a.pdf")}
    real_open = os.open

    def guarded(path: Any, flags: int, *args: Any) -> int:
        if os.fspath(path) in refused:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr("pdf2dcm.watch.os.open", guarded)
    clock = Clock()
    inbox = Inbox(tmp_path, recursive=False, settle=0.0, clock=clock)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1\n%%EOF\n")
    inbox.scan()
    assert look(inbox) == ([], 1)
    refused.clear()
    assert look(inbox) == (["a.pdf"], 0)


def test_a_missing_inbox_is_named(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "nope", recursive=False, settle=0.0)
    with pytest.raises(FileSystemError) as caught:
        inbox.scan()
    assert str(caught.value) == (
        f"inbox {tmp_path / 'nope'} does not exist; create it or give another folder"
    )
