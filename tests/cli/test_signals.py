"""SIGTERM and SIGHUP in a real process: temporary files removed, cursor restored, 128+signal."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pdf2dcm.cli import ExitStatus
from tests.terminal import read_to_end

BIG = 200 * 1024 * 1024


@pytest.fixture(scope="module")
def big_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200 MB PDF made in no time: a header, a sparse hole of zeros, an end marker."""
    path = tmp_path_factory.mktemp("big") / "big.pdf"
    with path.open("wb") as handle:
        handle.write(b"%PDF-1.4\n")
        handle.truncate(BIG)
        handle.seek(0, os.SEEK_END)
        handle.write(b"\n%%EOF\n")
    return path


@pytest.fixture(scope="module")
def big_dcm(big_pdf: Path) -> Path:
    from pdf2dcm.dicom import encode_pdf

    path = big_pdf.with_suffix(".dcm")
    encode_pdf(big_pdf, path)
    return path


def start(*args: str, **options: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pdf2dcm", *args], **options)


def wait_for_part(directory: Path, process: subprocess.Popen[bytes]) -> bool:
    """Wait until the output's temporary file exists; False if the process ended first."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if any(name.endswith(".part") for name in os.listdir(directory)):
            return True
        time.sleep(0.002)
    return False


def interrupt(out: Path, signum: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run pdf2dcm and send ``signum`` once its temporary output exists in ``out``."""
    for _attempt in range(5):
        process = start(*args, stderr=subprocess.PIPE)
        seen = wait_for_part(out, process)
        if seen:
            process.send_signal(signum)
        _stdout, stderr = process.communicate(timeout=60)
        if seen:
            return subprocess.CompletedProcess(process.args, process.returncode, b"", stderr)
    pytest.fail("pdf2dcm never got as far as its temporary file")


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, ExitStatus.TERMINATED), (signal.SIGHUP, ExitStatus.HANGUP)],
)
def test_a_signal_mid_encode_removes_the_temporary_file(
    big_pdf: Path, tmp_path: Path, signum: int, code: int
) -> None:
    done = interrupt(tmp_path, signum, "encode", str(big_pdf), "-d", str(tmp_path))
    assert done.returncode == code == 128 + signum
    assert os.listdir(tmp_path) == []
    name = signal.Signals(signum).name
    assert done.stderr.decode() == f"pdf2dcm: terminated by {name}\n"


def test_sigterm_mid_extract_removes_the_temporary_file(big_dcm: Path, tmp_path: Path) -> None:
    done = interrupt(tmp_path, signal.SIGTERM, "extract", str(big_dcm), "-o", str(tmp_path / "x"))
    assert done.returncode == 143
    assert os.listdir(tmp_path) == []
    assert done.stderr.decode() == "pdf2dcm: terminated by SIGTERM\n"


def test_exit_codes_are_128_plus_the_signal() -> None:
    codes = [ExitStatus.HANGUP, ExitStatus.INTERRUPTED, ExitStatus.TERMINATED]
    assert [code.value for code in codes] == [129, 130, 143]


def test_sigterm_while_spooling_a_pipe_leaves_no_spool(tmp_path: Path) -> None:
    spool = tmp_path / "tmp"
    spool.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    process = start(
        "encode",
        "-",
        "-o",
        str(out / "x.dcm"),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(spool)},
    )
    assert process.stdin is not None
    process.stdin.write(b"%PDF-1.4\n" + b"\0" * (4 * 1024 * 1024))
    process.stdin.flush()
    # The write returned, so pdf2dcm has read all but a pipe's buffer of it: it is spooling,
    # waiting for the rest, when the signal comes (the spool has no name to wait for).
    process.send_signal(signal.SIGTERM)
    _stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 143
    assert stderr == b"pdf2dcm: terminated by SIGTERM\n"
    assert os.listdir(spool) == []
    assert os.listdir(out) == []


def test_sigterm_restores_the_cursor_of_the_progress_bar(big_pdf: Path, tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    process = start(
        "encode",
        str(big_pdf),
        "-d",
        str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(secondary)
    seen = wait_for_part(tmp_path, process)
    if seen:
        process.send_signal(signal.SIGTERM)
    received = read_to_end(primary)
    process.wait(30)
    os.close(primary)
    if not seen:
        pytest.skip("the encode finished before it could be interrupted")
    assert process.returncode == 143
    hide, show = b"\x1b[?25l", b"\x1b[?25h"
    assert hide in received
    assert received.rindex(show) > received.rindex(hide)
    assert received.rstrip().endswith(b"pdf2dcm: terminated by SIGTERM")
    assert os.listdir(tmp_path) == []


def test_an_ignored_hangup_stays_ignored(big_pdf: Path, tmp_path: Path) -> None:
    """Under nohup the hangup must not stop the encode."""

    def ignore_hangup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    process = start(
        "encode",
        str(big_pdf),
        "-d",
        str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=ignore_hangup,
    )
    if wait_for_part(tmp_path, process):
        process.send_signal(signal.SIGHUP)
    _stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert os.listdir(tmp_path) == ["big.dcm"]
