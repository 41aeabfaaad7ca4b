"""Operator input and folders others can write to: bounded, crash-free, never followed.

Lone surrogates, deep nesting, duplicate keys and columns, endless devices, FIFOs and
symbolic links where a file was expected: each is one error naming the file, never a
traceback, a hang or an unbounded read.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

import pytest

from pdf2dcm.errors import FileSystemError, InputError, TagError
from pdf2dcm.files import create_exclusive, open_regular, read_bounded
from pdf2dcm.pertags import (
    NameRule,
    batch_file_tags,
    fill_placeholders,
    read_file_list,
    read_manifest,
    sidecar_tags,
)
from pdf2dcm.tags import load_tags_file, validate_tags
from tests.pdfs import make_pdf

# --- the helpers for untrusted places --------------------------------------------------------


def test_open_regular_refuses_a_link_without_following_it(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root only")
    link = tmp_path / "x.pdf"
    link.symlink_to(secret)
    with pytest.raises(InputError, match=r"x\.pdf is a symbolic link, which is not followed"):
        open_regular(link, what="inbox file", follow_links=False)
    with open_regular(link, what="file") as followed:
        assert followed.read() == b"root only"


def test_open_regular_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.pdf"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            open_regular(fifo, what="inbox file", follow_links=False)
        except InputError as exc:
            outcome.append(exc)

    opener = threading.Thread(target=attempt, daemon=True)
    opener.start()
    opener.join(timeout=5)
    if opener.is_alive():  # release the blocked open, then fail
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("opening a FIFO blocked")
    [error] = outcome
    assert "x.pdf is a FIFO, not a regular file" in str(error)


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a character device"), ("/", "a dir")])
def test_open_regular_refuses_devices_and_directories(path: str, kind: str) -> None:
    with pytest.raises(InputError, match=rf"{path} is {kind}"):
        open_regular(path, what="file")


def test_a_fifo_may_be_read_where_a_pipe_is_expected(tmp_path: Path) -> None:
    fifo = tmp_path / "list"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as writer:
            writer.write(b"a.pdf\nb.pdf\n")

    writer = threading.Thread(target=feed)
    writer.start()
    assert read_bounded(fifo, what="file list", fifo_ok=True) == b"a.pdf\nb.pdf\n"
    writer.join()


def test_read_bounded_stops_after_its_limit(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1001)
    assert read_bounded(big, what="list", limit=1001) == b"x" * 1001
    with pytest.raises(InputError, match=r"list .*big holds more than 1000 bytes"):
        read_bounded(big, what="list", limit=1000)
    with open("/dev/zero", "rb") as endless, pytest.raises(InputError, match=r"is a device"):
        read_bounded(endless, what="file list")


def test_an_endless_pipe_is_read_only_to_the_limit() -> None:
    read, write = os.pipe()
    stop = threading.Event()

    def flood() -> None:
        with os.fdopen(write, "wb") as out:
            while not stop.is_set():
                try:
                    out.write(b"a" * 65536)
                except BrokenPipeError:
                    return

    threading.Thread(target=flood, daemon=True).start()
    with os.fdopen(read, "rb") as stream, pytest.raises(InputError, match=r"more than 1 MiB"):
        read_bounded(stream, what="file list", limit=1024 * 1024)
    stop.set()


def test_create_exclusive_makes_a_private_file_under_a_new_name(tmp_path: Path) -> None:
    first, first_path = create_exclusive(tmp_path, prefix=".x-", suffix=".part")
    second, second_path = create_exclusive(tmp_path, prefix=".x-", suffix=".part")
    with first, second:
        first.write(b"patient data")
    assert first_path != second_path
    assert first_path.name.startswith(".x-")
    assert first_path.name.endswith(".part")
    assert stat.S_IMODE(first_path.stat().st_mode) == 0o600
    assert first_path.read_bytes() == b"patient data"


def test_create_exclusive_never_opens_a_planted_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    names = iter(["planted", "planted", "fresh"])
    monkeypatch.setattr("pdf2dcm.files.secrets.token_hex", lambda _n: next(names))
    (tmp_path / ".p-planted.part").symlink_to(victim)
    out, path = create_exclusive(tmp_path, prefix=".p-", suffix=".part")
    with out:
        out.write(b"record")
    assert path.name == ".p-fresh.part"
    assert victim.read_text() == "keep me"


def test_create_exclusive_names_the_folder_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(FileSystemError, match=r"cannot create a file in .*missing"):
        create_exclusive(tmp_path / "missing")


# --- operator files: surrogates, nesting, duplicates ------------------------------------------


def test_a_lone_surrogate_is_a_tag_error() -> None:
    with pytest.raises(TagError, match=r"U\+D800 at character 2 is no character"):
        validate_tags({"PatientName": "a\ud800"})
    with pytest.raises(TagError, match=r"U\+DCFF"):
        validate_tags({"ContentSequence": [{"TextValue": "\udcff"}]})


def test_a_surrogate_in_a_tags_file_or_sidecar_is_refused(tmp_path: Path) -> None:
    tags = tmp_path / "tags.json"
    tags.write_text('{"PatientName": "\\ud800"}')
    with pytest.raises(TagError, match=r"U\+D800"):
        validate_tags(load_tags_file(tags))
    pdf = tmp_path / "r.pdf"
    (tmp_path / "r.json").write_text('{"PatientID": "\\udfff"}')
    with pytest.raises(TagError, match=r"^sidecar .*r\.json: PatientID .*U\+DFFF"):
        sidecar_tags(pdf)


def test_a_name_that_is_not_utf8_is_refused_with_its_value(tmp_path: Path) -> None:
    rule = NameRule.from_pattern("{PatientID}_{*}.pdf")
    with pytest.raises(TagError, match=r"value from its name: PatientID .*U\+DCFF"):
        batch_file_tags([os.fsdecode(b"P\xff_x.pdf")], rule=rule)


def test_a_manifest_row_with_a_surrogate_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(make_pdf(1000))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"file": "a.pdf", "tags": {"PatientID": "\\ud800"}}\n')
    with pytest.raises(TagError, match=r"row 1: PatientID .*U\+D800"):
        read_manifest(manifest)


def test_deep_json_lines_are_refused_without_recursion(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"file": "a.pdf", "tags": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(InputError, match=r"row 1 nests deeper than 32 levels"):
        read_manifest(manifest)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("file,PatientID,PatientID", r"column 'PatientID' twice; keep one"),
        ("file,PatientID,0010,0020", None),
        ('file,PatientID,"0010,0020"', r"column '0010,0020' twice \(as 'PatientID'\)"),
        ("file,file,PatientID", r"column 'file' twice"),
    ],
)
def test_duplicate_manifest_columns_are_refused(
    tmp_path: Path, header: str, message: str | None
) -> None:
    (tmp_path / "a.pdf").write_bytes(make_pdf(1000))
    manifest = tmp_path / "m.csv"
    cells = ",".join(["a.pdf"] + ["X"] * (len(header.split(",")) - 1))
    manifest.write_text(f"{header}\n{cells}\n")
    if message is None:  # "0010" and "0020" alone are no keywords: refused as such
        with pytest.raises(TagError):
            read_manifest(manifest)
        return
    with pytest.raises(InputError, match=message):
        read_manifest(manifest)


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(make_pdf(1000))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"file": "a.pdf", "tags": {"PatientID": "A", "PatientID": "B"}}\n')
    with pytest.raises(InputError, match=r"row 1 gives 'PatientID' twice"):
        read_manifest(manifest)
    tags = tmp_path / "t.json"
    tags.write_text('{"PatientID": "A", "PatientID": "B"}')
    with pytest.raises(TagError, match=r"gives 'PatientID' twice"):
        load_tags_file(tags)


# --- sidecars in folders others write to ------------------------------------------------------


def test_a_sidecar_link_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.json"
    secret.write_text('{"PatientID": "ROOT"}')
    (tmp_path / "r.json").symlink_to(secret)
    with pytest.raises(TagError, match=r"sidecar .*r\.json is a symbolic link"):
        sidecar_tags(tmp_path / "r.pdf")


def test_a_sidecar_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "r.json")
    with pytest.raises(TagError, match=r"sidecar .*r\.json is a FIFO"):
        sidecar_tags(tmp_path / "r.pdf")


def test_a_file_list_is_bounded_and_never_a_device() -> None:
    read, write = os.pipe()
    stop = threading.Event()

    def flood() -> None:
        with os.fdopen(write, "wb") as out:
            while not stop.is_set():
                try:
                    out.write(b"a.pdf\n" * 10000)
                except BrokenPipeError:
                    return

    threading.Thread(target=flood, daemon=True).start()
    with os.fdopen(read, "rb") as stream, pytest.raises(InputError, match=r"more than 64 MiB"):
        read_file_list(stream)
    stop.set()
    with pytest.raises(InputError, match=r"/dev/zero is a character device"):
        read_file_list("/dev/zero")


# --- values are literal -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["UNIQ4*", "UNIQ?2", "A\\B"])
def test_a_value_from_a_file_never_becomes_a_wildcard(value: str) -> None:
    with pytest.raises(InputError, match=r"which a query reads as a wildcard"):
        fill_placeholders("StudyID={StudyID}", {"StudyID": value}, "--study")
    assert fill_placeholders("StudyID=UNIQ*", {}, "--study") == "StudyID=UNIQ*"


def test_a_producer_that_finished_before_the_wait_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The producer writes and closes between the type check and the wait for a writer:
    the wait must see that it came and went, not wait for a second one forever."""
    from pdf2dcm import files

    fifo = tmp_path / "list"
    os.mkfifo(fifo)
    waiting = files._wait_for_writer

    def producer_first(descriptor: int) -> int:
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a reader exists: no block
        os.write(writer, b"a.pdf\n")
        os.close(writer)
        return waiting(descriptor)

    monkeypatch.setattr(files, "_wait_for_writer", producer_first)
    read: list[bytes] = []
    reader = threading.Thread(
        target=lambda: read.append(read_bounded(fifo, what="file list", fifo_ok=True)),
        daemon=True,
    )
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "the list waited for a second producer"
    assert read == [b"a.pdf\n"]
