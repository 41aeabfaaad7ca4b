"""Inputs and outputs against the file system: devices, FIFOs, modes, names, OS refusals."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from pdf2dcm import files
from pdf2dcm.errors import FileSystemError, InputError, OutputExistsError
from pdf2dcm.files import atomic_output, make_directory, open_input, stops_batch

TEMPORARY = re.compile(r"\.pdf2dcm-[0-9a-f]{8}\.part")


def names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


# --- atomic_output: what is written where ---------------------------------------------------


def test_temporary_name_is_short_hidden_and_no_output_glob(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "x.dcm") as out:
        out.write(b"abc")
        (during,) = names(tmp_path)
        assert TEMPORARY.fullmatch(during), during
        assert not list(tmp_path.glob("*.dcm"))
        assert not list(tmp_path.glob("*.pdf"))
    assert names(tmp_path) == ["x.dcm"]
    assert (tmp_path / "x.dcm").read_bytes() == b"abc"


def test_a_name_of_254_bytes_fits(tmp_path: Path) -> None:
    target = tmp_path / ("n" * 250 + ".dcm")
    with atomic_output(target) as out:
        out.write(b"long")
    assert target.read_bytes() == b"long"
    assert names(tmp_path) == [target.name]


def test_a_name_too_long_is_one_line_naming_the_cause(tmp_path: Path) -> None:
    target = tmp_path / ("n" * 252 + ".dcm")
    with pytest.raises(FileSystemError) as caught, atomic_output(target) as out:
        out.write(b"x")
    assert str(caught.value) == f"cannot write {target}: File name too long; use a shorter name"
    assert caught.value.errno == errno.ENAMETOOLONG
    assert names(tmp_path) == []


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    def write_half() -> None:
        with atomic_output(tmp_path / "x.dcm") as out:
            out.write(b"half")
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        write_half()
    assert names(tmp_path) == []


def test_new_file_gets_the_umask_mode(tmp_path: Path, umask: None) -> None:
    with atomic_output(tmp_path / "x.dcm") as out:
        out.write(b"a")
    assert stat.S_IMODE((tmp_path / "x.dcm").stat().st_mode) == 0o644


def test_overwrite_keeps_a_private_mode(tmp_path: Path, umask: None) -> None:
    target = tmp_path / "x.dcm"
    target.write_bytes(b"old")
    target.chmod(0o600)
    with atomic_output(target, overwrite=True) as out:
        out.write(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert names(tmp_path) == ["x.dcm"]


def test_a_symbolic_link_is_written_through(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.dcm").write_bytes(b"old")
    (tmp_path / "link.dcm").symlink_to(tmp_path / "real" / "x.dcm")
    with atomic_output(tmp_path / "link.dcm", overwrite=True) as out:
        out.write(b"new")
    assert (tmp_path / "link.dcm").is_symlink()
    assert (tmp_path / "real" / "x.dcm").read_bytes() == b"new"
    assert names(tmp_path / "real") == ["x.dcm"]


def test_the_file_is_synced_before_it_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(descriptor: int) -> None:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            events.append("fsync")
        real_fsync(descriptor)

    def link(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        events.append("link")
        real_link(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    with atomic_output(tmp_path / "x.dcm") as out:
        out.write(b"a")
    assert events == ["fsync", "link"]


def test_a_fifo_is_written_into_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    with atomic_output(fifo, overwrite=True) as out:
        out.write(b"through the pipe")
    reader.join(5)
    assert received == [b"through the pipe"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert names(tmp_path) == ["pipe"]


def test_a_fifo_needs_no_overwrite(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    with atomic_output(fifo) as out:
        out.write(b"x")
    reader.join(5)
    assert received == [b"x"]


def test_a_character_device_is_written_into_not_replaced(tmp_path: Path) -> None:
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    with atomic_output(null, overwrite=True) as out:
        out.write(b"gone")
    assert stat.S_ISCHR(null.stat().st_mode)
    assert null.stat().st_rdev == os.makedev(1, 3)
    assert names(tmp_path) == ["null"]


def test_a_full_device_is_one_line() -> None:
    with pytest.raises(FileSystemError) as caught, atomic_output("/dev/full") as out:
        out.write(b"x")
    assert str(caught.value) == (
        "cannot write /dev/full: No space left on device; free some space or write elsewhere"
    )
    assert caught.value.errno == errno.ENOSPC
    assert stops_batch(caught.value)


def test_a_full_stream_names_the_stream() -> None:
    with (
        open("/dev/full", "wb", buffering=0) as full,
        pytest.raises(FileSystemError) as caught,
        atomic_output(full) as out,
    ):
        out.write(b"x")
    assert str(caught.value).startswith("cannot write /dev/full: No space left on device")


def test_a_broken_pipe_stays_a_broken_pipe() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with (
        open(write_end, "wb", buffering=0) as stream,
        pytest.raises(BrokenPipeError),
        atomic_output(stream) as out,
    ):
        out.write(b"x")


def test_a_directory_as_output_says_so(tmp_path: Path) -> None:
    with (
        pytest.raises(FileSystemError, match=r"is a directory; give a file name"),
        atomic_output(tmp_path, overwrite=True),
    ):
        pass


def test_an_existing_file_is_kept_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "x.dcm"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError), atomic_output(target):
        pass
    assert target.read_bytes() == b"old"


def test_below_a_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(FileSystemError) as caught, atomic_output(tmp_path / "f" / "x.dcm"):
        pass
    assert str(caught.value) == (
        f"cannot write {tmp_path}/f/x.dcm: Not a directory; "
        "a part of the path is a file, not a directory"
    )


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileSystemError) as caught, atomic_output(tmp_path / "no" / "x.dcm"):
        pass
    assert str(caught.value) == f"cannot write {tmp_path}/no/x.dcm: no such directory {tmp_path}/no"


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (errno.EROFS, "Read-only file system; write to another file system"),
        (errno.EACCES, "Permission denied; check the permissions"),
        (errno.ENOSPC, "No space left on device; free some space or write elsewhere"),
    ],
)
def test_refusals_creating_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, text: str
) -> None:
    real_open = os.open

    def refuse(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if os.fspath(path).endswith(".part"):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(FileSystemError) as caught, atomic_output(tmp_path / "x.dcm"):
        pass
    assert str(caught.value) == f"cannot write {tmp_path}/x.dcm: {text}"
    assert caught.value.errno == code


def test_a_failed_sync_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(_descriptor: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(FileSystemError) as caught, atomic_output(tmp_path / "x.dcm") as out:
        out.write(b"a")
    assert str(caught.value) == f"cannot write {tmp_path}/x.dcm: Input/output error"
    assert names(tmp_path) == []


def test_a_failed_rename_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def link(_source: object, _target: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "link", link)
    with (
        pytest.raises(FileSystemError, match="Read-only file system"),
        atomic_output(tmp_path / "x.dcm") as out,
    ):
        out.write(b"a")
    assert names(tmp_path) == []


# --- directories ------------------------------------------------------------------------------


def test_make_directory_creates_parents(tmp_path: Path) -> None:
    assert make_directory(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    make_directory(tmp_path / "a" / "b")


def test_make_directory_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(FileSystemError) as caught:
        make_directory(tmp_path / "f" / "sub")
    assert str(caught.value) == (
        f"cannot create the directory {tmp_path}/f/sub: Not a directory; "
        "a part of the path is a file, not a directory"
    )


def test_make_directory_on_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(FileSystemError, match=r"f as the output directory: it is a file$"):
        make_directory(tmp_path / "f")


# --- open_input -------------------------------------------------------------------------------


class Endless(io.RawIOBase):
    """A pipe that never ends, counting what was taken from it."""

    def __init__(self) -> None:
        self.taken = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self.taken += len(buffer)
        return len(buffer)


def test_an_endless_pipe_stops_at_the_cap() -> None:
    source = Endless()
    pipe: BinaryIO = source  # type: ignore[assignment]
    limit = 3 * files.CHUNK_SIZE + 5
    with pytest.raises(InputError) as caught, open_input(pipe, name="<stdin>", limit=limit):
        pass
    assert str(caught.value) == (
        f"<stdin> goes on past {3 * files.CHUNK_SIZE + 5} bytes, the most it may hold; "
        "reading stopped (an endless stream?)"
    )
    assert source.taken == 3 * files.CHUNK_SIZE + 6


def test_a_pipe_of_exactly_the_cap_is_read() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"%PDF-1.4 exact")
    os.close(write_end)
    with open(read_end, "rb") as pipe, open_input(pipe, name="<stdin>", limit=14) as (got, size):
        assert size == 14
        assert got.read() == b"%PDF-1.4 exact"


def test_the_default_cap_is_the_dicom_limit() -> None:
    assert files.MAX_SPOOL_SIZE == 0xFFFFFFFE


def test_a_named_fifo_is_spooled_and_capped(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), fifo.open("wb") as out:
            out.write(b"x" * 100)

    writer = threading.Thread(target=feed)
    writer.start()
    with (
        pytest.raises(InputError, match=r"pipe goes on past 10 bytes"),
        open_input(fifo, name=str(fifo), limit=10),
    ):
        pass
    writer.join(5)


@pytest.mark.parametrize(
    ("device", "kind"), [("/dev/zero", "character"), ("/dev/urandom", "character")]
)
def test_devices_are_refused_as_input(device: str, kind: str) -> None:
    with pytest.raises(InputError) as caught, open_input(device, name=device):
        pass
    assert str(caught.value) == (
        f"{device} is a {kind} device, not a file; give a file, or pipe the data in with '-'"
    )


def test_a_device_as_stdin_is_refused() -> None:
    with (
        open("/dev/zero", "rb") as zero,
        pytest.raises(InputError) as caught,
        open_input(zero, name="<stdin>"),
    ):
        pass
    assert str(caught.value) == (
        "<stdin> is a character device (a terminal or something like /dev/zero), not a file or "
        "a pipe; redirect a file or a pipe into it"
    )


def test_a_redirected_regular_file_is_not_spooled(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"%PDF-1.4 redirected")
    with (tmp_path / "in").open("rb") as stream, open_input(stream, name="<stdin>") as (got, size):
        assert got is stream
        assert size == 19


def test_a_failed_spool_names_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Full(io.BytesIO):
        def write(self, _data: object) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tempfile, "TemporaryFile", Full)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: "/spool")
    pipe: BinaryIO = Endless()  # type: ignore[assignment]
    with pytest.raises(FileSystemError) as caught, open_input(pipe, name="<stdin>"):
        pass
    assert str(caught.value) == (
        "cannot spool <stdin> to a temporary file in /spool: No space left on device; "
        "free some space or write elsewhere"
    )


def test_missing_input_is_a_filesystem_error(tmp_path: Path) -> None:
    with pytest.raises(FileSystemError) as caught, open_input(tmp_path / "no", name="no"):
        pass
    assert str(caught.value) == "no: no such file; check the path"
    assert caught.value.errno == errno.ENOENT


def test_a_fifo_named_twice_in_a_checked_batch_is_refused(tmp_path: Path) -> None:
    """Both names would read one spool at once; a pipe is one input."""
    fifo = tmp_path / "in.pdf"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="named twice"), files.replayable_inputs([str(fifo)] * 2):
        pass


def test_a_replayed_spool_starts_again_at_its_first_byte() -> None:
    stdin = io.BytesIO(b"%PDF-1.4 whole")
    with files.replayable_inputs(["-"], stdin) as replay:
        first = replay("-")
        assert not isinstance(first, str)
        assert first.read() == b"%PDF-1.4 whole"
        again = replay("-")
        assert not isinstance(again, str)
        assert again.read() == b"%PDF-1.4 whole"
        assert replay("a.pdf") == "a.pdf"
