"""The command line against a hostile file system: closed and full streams, devices, FIFOs,
long names, full disks, endless pipes. One line on stderr and a documented exit code each."""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from pdf2dcm.cli.app import _Group
from tests.conftest import PdfFactory

EXAMPLE = Path(__file__).parents[2] / "examples" / "HelloWorld2.pdf"
FULL = "No space left on device; free some space or write elsewhere"


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def shell(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``pdf2dcm`` (as ``$PDF2DCM``) under a shell, for redirections Python cannot make."""
    command = f"{sys.executable} -m pdf2dcm"
    return subprocess.run(
        ["sh", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PDF2DCM": command, **env},
        timeout=60,
        check=False,
    )


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "a.pdf"
    path.write_bytes(EXAMPLE.read_bytes())
    return path


# --- closed and refusing standard streams ---------------------------------------------------


def test_closed_stdin(example: Path, tmp_path: Path) -> None:
    done = shell("$PDF2DCM encode - -o x.dcm <&-", tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "pdf2dcm: error: stdin is closed; give the input as a file, or redirect one into stdin\n"
    )
    assert os.listdir(tmp_path) == ["a.pdf"]


def test_closed_stdout(example: Path, tmp_path: Path) -> None:
    done = shell("$PDF2DCM encode a.pdf -o - >&-", tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "pdf2dcm: error: stdout is closed; give -o FILE, or redirect stdout to a file\n"
    )
    assert os.listdir(tmp_path) == ["a.pdf"]


def test_closed_stdout_does_not_capture_the_output_file(example: Path, tmp_path: Path) -> None:
    # With descriptor 1 closed, the output file must not become descriptor 1.
    done = shell("$PDF2DCM encode a.pdf -o x.dcm --json >&-", tmp_path)
    assert done.returncode == 2
    assert done.stderr.endswith("stdout is closed; give -o FILE, or redirect stdout to a file\n")
    assert (tmp_path / "x.dcm").read_bytes()[128:132] == b"DICM"


@pytest.mark.parametrize("command", ["encode a.pdf -o -", "extract a.dcm -o -"])
def test_document_to_a_full_stdout(example: Path, tmp_path: Path, command: str) -> None:
    assert run("encode", str(example)).exit_code == 0
    done = shell(f"$PDF2DCM {command} > /dev/full", tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"pdf2dcm: error: cannot write <stdout>: {FULL}\n"
    assert sorted(os.listdir(tmp_path)) == ["a.dcm", "a.pdf"]


def test_report_line_to_a_full_stdout(example: Path, tmp_path: Path) -> None:
    done = shell("$PDF2DCM encode a.pdf > /dev/full", tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"pdf2dcm: error: cannot write <stdout>: {FULL}\n"


def test_a_reader_that_leaves_a_document_is_exit_141_without_traceback(tmp_path: Path) -> None:
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"\0" * (8 * 1024 * 1024) + b"\n%%EOF\n")
    # The document itself went to stdout and was cut: the work is undone, and 141 says so.
    status = subprocess.run(
        ["bash", "-c", "set -o pipefail; $PDF2DCM encode big.pdf -o - | head -c 10 > /dev/null"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PDF2DCM": f"{sys.executable} -m pdf2dcm"},
        timeout=60,
        check=False,
    )
    assert status.returncode == 141
    assert status.stderr == ""


def test_a_reader_that_leaves_the_report_gets_the_work_finished_and_exit_141(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    sources = [pdf_file(name=f"r{n:02d}.pdf") for n in range(40)]
    out = tmp_path / "out"
    status = subprocess.run(
        ["bash", "-c", f"set -o pipefail; $PDF2DCM encode r*.pdf -d {out} | head -1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PDF2DCM": f"{sys.executable} -m pdf2dcm"},
        timeout=120,
        check=False,
    )
    assert status.returncode == 141, status.stderr
    assert status.stdout.startswith("r00.pdf -> ")
    assert len(list(out.iterdir())) == len(sources)
    assert "the work was finished, the report was cut" in status.stderr
    assert "Traceback" not in status.stderr


# --- devices, FIFOs and directories as outputs ----------------------------------------------


def test_overwrite_of_a_device_writes_into_it(example: Path, tmp_path: Path) -> None:
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    result = run("encode", str(example), "-o", str(null), "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISCHR(null.stat().st_mode)
    assert sorted(os.listdir(tmp_path)) == ["a.pdf", "null"]


@pytest.mark.parametrize("overwrite", ["", "--overwrite"])
def test_dev_stdout_onto_a_regular_file(example: Path, tmp_path: Path, overwrite: str) -> None:
    link = os.readlink("/dev/stdout")
    done = shell(f"$PDF2DCM encode a.pdf -o /dev/stdout {overwrite} > out.dcm", tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.dcm").read_bytes()[128:132] == b"DICM"
    assert sorted(os.listdir(tmp_path)) == ["a.pdf", "out.dcm"]
    assert os.readlink("/dev/stdout") == link


def test_dev_stdout_appends_like_its_descriptor(example: Path, tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"before\n")
    done = shell("$PDF2DCM extract a.dcm -o /dev/stdout >> log", tmp_path)
    assert done.returncode == 2  # a.dcm does not exist yet: nothing may be written
    assert (tmp_path / "log").read_bytes() == b"before\n"
    assert run("encode", str(example)).exit_code == 0
    done = shell("$PDF2DCM extract a.dcm -o /dev/stdout >> log", tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "log").read_bytes() == b"before\n" + example.read_bytes()


def test_output_into_a_fifo(example: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = run("extract", str(_encoded(example)), "-o", str(fifo), "--overwrite")
    reader.join(10)
    assert result.exit_code == 0, result.stderr
    assert received == [example.read_bytes()]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def _encoded(example: Path) -> Path:
    assert run("encode", str(example)).exit_code == 0
    return example.with_suffix(".dcm")


def test_output_that_is_a_directory(example: Path, tmp_path: Path) -> None:
    (tmp_path / "dd").mkdir()
    result = run("encode", str(example), "-o", str(tmp_path / "dd"), "--overwrite")
    assert result.exit_code == 2
    assert result.stderr == (
        f"pdf2dcm: error: {tmp_path}/dd is a directory; give a file name for the output\n"
    )


def test_outdir_is_created(example: Path, tmp_path: Path) -> None:
    result = run("encode", str(example), "-d", str(tmp_path / "new" / "sub"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "new" / "sub" / "a.dcm").is_file()


def test_outdir_below_a_file(example: Path, tmp_path: Path) -> None:
    result = run("encode", str(example), "-d", str(example / "sub"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"pdf2dcm: error: cannot create the directory {example}/sub: Not a directory; "
        "a part of the path is a file, not a directory\n"
    )


# --- batches --------------------------------------------------------------------------------


def test_a_name_too_long_fails_that_file_only(pdf_file: PdfFactory, tmp_path: Path) -> None:
    first = pdf_file(name="first.pdf")
    long = pdf_file(name="n" * 252 + ".pd")  # 255 bytes; as .dcm it is 256
    last = pdf_file(name="last.pdf")
    result = run("encode", str(first), str(long), str(last))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"pdf2dcm: error: cannot write {tmp_path}/{'n' * 252}.dcm: File name too long; "
        "use a shorter name"
    )
    assert re.fullmatch(r"pdf2dcm: 3 files: 2 written, 1 failed in \d+\.\d s", lines[1])
    assert len(lines) == 2
    assert (tmp_path / "first.dcm").is_file()
    assert (tmp_path / "last.dcm").is_file()


def test_a_254_byte_name_is_encoded(pdf_file: PdfFactory, tmp_path: Path) -> None:
    source = pdf_file(name="n" * 250 + ".pdf")
    result = run("encode", str(source))
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == sorted([source.name, "n" * 250 + ".dcm"])


def test_a_full_disk_stops_the_batch_with_its_summary(
    pdf_file: PdfFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = [pdf_file(name=f"{n}.pdf") for n in "abc"]
    out = tmp_path / "out"

    def full(_descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    result = run("encode", *map(str, sources), "-d", str(out))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[:3] == [
        f"pdf2dcm: error: cannot write {out}/a.dcm: {FULL}",
        f"pdf2dcm: error: {sources[1]}: not attempted: the batch stopped at an earlier error",
        f"pdf2dcm: error: {sources[2]}: not attempted: the batch stopped at an earlier error",
    ]
    assert re.fullmatch(r"pdf2dcm: 3 files: 1 failed, 2 not attempted in \d+\.\d s", lines[3])
    assert os.listdir(out) == []


# --- endless and device inputs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "device"), [("encode", "/dev/urandom"), ("extract", "/dev/zero")]
)
def test_a_device_as_input_is_refused(tmp_path: Path, command: str, device: str) -> None:
    result = run(command, device, "-o", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"pdf2dcm: error: {device} is a character device, not a file; give a file, or pipe the "
        "data in with '-'\n"
    )
    assert os.listdir(tmp_path) == []


ENDLESS = (
    "import sys, pdf2dcm.files\n"
    "pdf2dcm.files.MAX_SPOOL_SIZE = 3 * 1024 * 1024\n"
    "from pdf2dcm.cli import main\n"
    "sys.argv = ['pdf2dcm', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.mark.parametrize(
    "args",
    [
        ["encode", "-", "-o", "x.dcm"],
        ["extract", "-", "-o", "x.pdf"],
        ["upload", "-", "--url", "http://127.0.0.1:9"],
    ],
)
def test_an_endless_pipe_ends_in_bounded_disk(tmp_path: Path, args: list[str]) -> None:
    spool = tmp_path / "tmp"
    spool.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", ENDLESS, *args],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(spool)},
    )
    assert process.stdin is not None
    block = b"%PDF-1.4\n" + b"\0" * 65536
    try:
        while True:  # until the reader gives up
            process.stdin.write(block)
    except BrokenPipeError:
        pass
    _stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stderr.decode() == (
        f"pdf2dcm: error: <stdin> goes on past {3 * 1024 * 1024} bytes, the most it may hold; "
        "reading stopped (an endless stream?)\n"
    )
    assert os.listdir(spool) == []
    assert sorted(os.listdir(tmp_path)) == ["tmp"]


# --- the last-resort mapping of OS errors ---------------------------------------------------


@click.group(cls=_Group)
def probe() -> None:
    """A root like pdf2dcm's, to raise what no command raises today."""


@probe.command()
@click.argument("kind")
def fail(kind: str) -> None:
    if kind == "os":
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/mnt/ro/x.dcm")
    import http.client

    raise http.client.RemoteDisconnected("leaked")


def test_an_unwrapped_os_error_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(probe, ["fail", "os"], obj={})
    assert result.exit_code == 2
    assert result.stderr == "pdf2dcm: error: /mnt/ro/x.dcm: Read-only file system\n"


def test_a_leaked_network_error_stays_a_bug() -> None:
    result = CliRunner().invoke(probe, ["fail", "net"], obj={})
    assert result.exit_code == 1
    assert result.stderr == (
        "pdf2dcm: unexpected error: RemoteDisconnected: leaked; run with --debug for details\n"
    )
