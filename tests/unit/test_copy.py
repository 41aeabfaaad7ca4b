"""The document copy: kernel routes and the plain fallback give the same bytes and the same
refusals, and report progress per block.

Each test runs on every route: ``copy_file_range``, ``sendfile`` (copy_file_range refused as
on a file system without support) and read/write (both refused), so the fallbacks are proven
on a machine where the fast route works.
"""

from __future__ import annotations

import datetime as dt
import errno
import gzip
import hashlib
import io
import json
import math
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

import pydicom
import pytest
from click.testing import CliRunner

from pdf2dcm import files
from pdf2dcm.cli import cli
from pdf2dcm.dicom import encode_pdf
from pdf2dcm.errors import InputError
from pdf2dcm.extract import extract_pdf
from pdf2dcm.files import copy_document
from pdf2dcm.progress import ProgressEvent
from tests.pdfs import make_pdf

MOMENT = dt.datetime(2024, 3, 5, 14, 7, 9)
BLOCK = 64 * 1024
FIXED_UIDS = {
    "SOPInstanceUID": "1.2.826.0.1.3680043.10.1.1",
    "StudyInstanceUID": "1.2.826.0.1.3680043.10.1.2",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.10.1.3",
}
ROUTES = ("copy_file_range", "sendfile", "read/write")


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Refuse the kernel routes before the one under test; count the calls that copy."""
    chosen = ROUTES.index(request.param)
    used: Counter[str] = Counter()
    real: dict[str, Callable[[int, int, int, int], int]] = {
        "copy_file_range": files._copy_file_range,
        "sendfile": files._sendfile,
    }

    def kernel(name: str) -> Callable[[int, int, int, int], int]:
        def call(source: int, out: int, count: int, offset: int) -> int:
            if ROUTES.index(name) < chosen:
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
            used[name] += 1
            return real[name](source, out, count, offset)

        return call

    monkeypatch.setattr(files, "_copy_file_range", kernel("copy_file_range"))
    monkeypatch.setattr(files, "_sendfile", kernel("sendfile"))
    monkeypatch.setattr(files, "KERNEL_BLOCK", BLOCK)
    monkeypatch.setattr(files, "CHUNK_SIZE", BLOCK)
    used["route:" + request.param] = 0
    return used


def route_of(used: Counter[str]) -> str:
    return next(key.split(":", 1)[1] for key in used if key.startswith("route:"))


def assert_route_taken(used: Counter[str]) -> None:
    name = route_of(used)
    if name == "read/write":
        assert used["copy_file_range"] == used["sendfile"] == 0
    else:
        assert used[name] > 0
        assert sum(used[other] for other in ("copy_file_range", "sendfile") if other != name) == 0


@pytest.mark.parametrize("size", [1000, 1001, 5 * BLOCK + 3])
def test_encode_without_checksum_writes_the_same_file_as_with_it(
    route: Counter[str], tmp_path: Path, size: int
) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf(size, seed=size))
    fast = encode_pdf(source, tmp_path / "fast.dcm", tags=FIXED_UIDS, now=MOMENT, checksum=False)
    assert_route_taken(route)
    route.clear()
    hashed = encode_pdf(source, tmp_path / "hashed.dcm", tags=FIXED_UIDS, now=MOMENT)
    assert fast.sha256 is None
    assert hashed.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert route["copy_file_range"] == route["sendfile"] == 0
    assert (tmp_path / "fast.dcm").read_bytes() == (tmp_path / "hashed.dcm").read_bytes()
    ds = pydicom.dcmread(tmp_path / "fast.dcm")
    # Odd lengths get one pad byte, and the recorded length says how much is the PDF.
    assert ds.EncapsulatedDocument == source.read_bytes() + b"\x00" * (size % 2)
    assert ds.EncapsulatedDocumentLength == size
    back = extract_pdf(tmp_path / "fast.dcm", tmp_path / "back.pdf")
    assert (tmp_path / "back.pdf").read_bytes() == source.read_bytes()
    assert back.sha256 == hashed.sha256


def test_a_source_that_shrinks_while_copied_is_refused_and_leaves_nothing(
    route: Counter[str], tmp_path: Path
) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf(6 * BLOCK, seed=1))

    def truncate_once(event: ProgressEvent) -> None:
        if event.done == BLOCK:
            os.truncate(source, 2 * BLOCK + 10)

    with pytest.raises(InputError) as caught:
        encode_pdf(source, tmp_path / "out.dcm", progress=truncate_once, checksum=False)
    assert str(caught.value) == (
        f"{source} shrank while being read; is another program writing it?"
    )
    assert sorted(os.listdir(tmp_path)) == ["in.pdf"]


def test_copy_stops_short_with_the_bytes_copied(route: Counter[str], tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(3 * BLOCK + 7))
    shortfalls: list[int] = []

    def short(got: int) -> Exception:
        shortfalls.append(got)
        return InputError("short")

    with (
        source.open("rb") as pdf,
        (tmp_path / "out.bin").open("wb") as out,
        pytest.raises(InputError),
    ):
        copy_document(pdf, out, 4 * BLOCK, label="in", progress=None, short=short, checksum=False)
    assert shortfalls == [3 * BLOCK + 7]
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()


def test_progress_is_reported_once_per_block(route: Counter[str], tmp_path: Path) -> None:
    size = 5 * BLOCK + 3
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf(size, seed=2))
    events: list[ProgressEvent] = []
    encode_pdf(source, tmp_path / "out.dcm", progress=events.append, checksum=False)
    assert [event.done for event in events] == [
        min(BLOCK * n, size) for n in range(1, math.ceil(size / BLOCK) + 1)
    ]
    assert {(event.label, event.total, event.restart) for event in events} == {
        (str(source), size, False)
    }


def test_the_copy_starts_at_the_source_position_and_leaves_both_positions_right(
    route: Counter[str], tmp_path: Path
) -> None:
    data = os.urandom(3 * BLOCK)
    (tmp_path / "in.bin").write_bytes(data)
    with (tmp_path / "in.bin").open("rb") as source, (tmp_path / "out.bin").open("wb") as out:
        source.read(10)
        out.write(b"HEAD")
        digest = copy_document(
            source, out, 2 * BLOCK, label="in", progress=None, short=InputError, checksum=False
        )
        assert (source.tell(), out.tell()) == (10 + 2 * BLOCK, 4 + 2 * BLOCK)
        out.write(b"TAIL")
        assert source.read(5) == data[10 + 2 * BLOCK : 15 + 2 * BLOCK]
    assert digest is None
    assert (tmp_path / "out.bin").read_bytes() == b"HEAD" + data[10 : 10 + 2 * BLOCK] + b"TAIL"


def test_an_output_opened_for_appending_is_appended_to(route: Counter[str], tmp_path: Path) -> None:
    data = os.urandom(2 * BLOCK + 1)
    (tmp_path / "in.bin").write_bytes(data)
    (tmp_path / "out.bin").write_bytes(b"before")
    with (tmp_path / "in.bin").open("rb") as source, (tmp_path / "out.bin").open("ab") as out:
        copy_document(
            source, out, len(data), label="in", progress=None, short=InputError, checksum=False
        )
    assert (tmp_path / "out.bin").read_bytes() == b"before" + data


def test_a_pipe_output_gets_every_byte(route: Counter[str], tmp_path: Path) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf(4 * BLOCK + 1, seed=3))
    encode_pdf(source, tmp_path / "file.dcm", tags=FIXED_UIDS, now=MOMENT, checksum=False)
    reading, writing = os.pipe()
    received = bytearray()

    def drain() -> None:
        with os.fdopen(reading, "rb") as pipe:
            while block := pipe.read(BLOCK):
                received.extend(block)

    reader = threading.Thread(target=drain)
    reader.start()
    with os.fdopen(writing, "wb") as pipe:
        result = encode_pdf(source, pipe, tags=FIXED_UIDS, now=MOMENT, checksum=False)
    reader.join()
    assert result.output is None
    assert bytes(received) == (tmp_path / "file.dcm").read_bytes()


def test_streams_without_a_plain_descriptor_are_read_not_kernel_copied(
    route: Counter[str], tmp_path: Path
) -> None:
    """A gzip file answers fileno() with its compressed file: copying that would be wrong."""
    data = os.urandom(BLOCK) * 3
    with gzip.open(tmp_path / "in.gz", "wb") as packed:
        packed.write(data)
    out = io.BytesIO()
    with gzip.open(tmp_path / "in.gz", "rb") as unpacked:
        copy_document(
            cast(BinaryIO, unpacked),
            out,
            len(data),
            label="in",
            progress=None,
            short=InputError,
            checksum=False,
        )
    assert out.getvalue() == data
    with (tmp_path / "out.bin").open("wb") as target:
        copy_document(
            io.BytesIO(data), target, len(data), label="in", progress=None, short=InputError
        )
    assert (tmp_path / "out.bin").read_bytes() == data
    assert route["copy_file_range"] == route["sendfile"] == 0


def test_checksum_is_of_the_bytes_copied(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "in.bin").write_bytes(data)
    with (tmp_path / "in.bin").open("rb") as source, (tmp_path / "out.bin").open("wb") as out:
        digest = copy_document(
            source, out, len(data), label="in", progress=None, short=InputError, checksum=True
        )
    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "out.bin").read_bytes() == data


def test_cli_encode_gives_the_checksum_only_with_json(tmp_path: Path) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(make_pdf(3001, seed=4))
    runner = CliRunner()
    plain = runner.invoke(cli, ["encode", str(source), "-o", str(tmp_path / "a.dcm")])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == f"{source} -> {tmp_path / 'a.dcm'} (2.9 KiB PDF)\n"
    listed = runner.invoke(cli, ["encode", str(source), "-o", str(tmp_path / "b.dcm"), "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["SHA256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    for name in ("a.dcm", "b.dcm"):
        assert pydicom.dcmread(tmp_path / name).EncapsulatedDocument == source.read_bytes() + b"\0"
