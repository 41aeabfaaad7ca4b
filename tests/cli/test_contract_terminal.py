"""The terminal contract: results and messages above a live display, summaries, stdin on a tty."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from typing import Any

import click
import pytest
from click.testing import CliRunner

from pdf2dcm import errors as err
from pdf2dcm.cli import app
from pdf2dcm.cli.app import displaying, say
from pdf2dcm.cli.common import (
    Batch,
    batch_summary,
    print_json,
    refuse_terminal_stdin,
    result_line,
    size_text,
)
from tests.cli.test_contract import JOB, fake, job_json
from tests.fake_orthanc import FakeOrthanc

__all__ = ["fake"]  # the fixture, imported so that pytest finds it here


class FakeConsole:
    """Stands for the console of a rich live display: records what is printed through it."""

    def __init__(self) -> None:
        self.printed: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def print(self, *objects: Any, **options: Any) -> None:
        self.printed.append((objects, options))


@pytest.fixture(autouse=True)
def _fresh_output() -> None:
    app._reset_output()


def test_result_line_goes_through_the_live_display(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    console = FakeConsole()
    with displaying(console):
        result_line("a.pdf -> 1234 (Success)  http://h/instances/1234")
        print_json({"Input": "b.pdf"})
        say("warning: no PatientID")
    assert [objects for objects, _options in console.printed] == [
        ("a.pdf -> 1234 (Success)  http://h/instances/1234",),
        ('{"Input": "b.pdf"}',),
        ("pdf2dcm: warning: no PatientID",),
    ]
    # Printed as text: no markup, highlighting or emoji codes, and never wrapped or cut.
    assert all(
        options == {"markup": False, "highlight": False, "emoji": False, "soft_wrap": True}
        for _objects, options in console.printed
    )
    assert capsys.readouterr() == ("", "")
    result_line("after")
    assert capsys.readouterr().out == "after\n"
    assert len(console.printed) == 3


def test_result_line_into_a_pipe_bypasses_the_display(capsys: pytest.CaptureFixture[str]) -> None:
    console = FakeConsole()
    with displaying(console):
        result_line("x -> y")
    assert console.printed == []
    assert capsys.readouterr().out == "x -> y\n"


def test_quiet_drops_text_results_and_warnings_but_not_json_or_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app.output.quiet = True
    result_line("x -> y")
    say("warning: something")
    print_json({"a": 1})
    say("error: broken")
    assert capsys.readouterr() == ('{"a": 1}\n', "pdf2dcm: error: broken\n")


def test_displays_nest_and_unregister() -> None:
    outer, inner = FakeConsole(), FakeConsole()
    with displaying(outer):
        with displaying(inner):
            assert app.output.display is inner
        assert app.output.display is outer
    assert app.output.display is None


def test_batch_summary_line() -> None:
    assert (
        batch_summary(300, {"stored": 120, "already stored": 180}, seconds=1.43)
        == "300 files: 120 stored, 180 already stored, 0 failed in 1.4 s"
    )
    assert batch_summary(1, {"written": 1}) == "1 file: 1 written, 0 failed"
    assert (
        batch_summary(3, {"written": 1}, failed=1, not_attempted=1, noun="PDF")
        == "3 PDFs: 1 written, 1 failed, 1 not attempted"
    )


def _ending(batch: Batch) -> tuple[int, str]:
    @click.command()
    def command() -> None:
        batch.end()

    result = CliRunner().invoke(command, [])
    return result.exit_code, result.stderr


def test_batch_end_prints_one_summary_also_on_success_and_exits_with_the_first_failure() -> None:
    batch = Batch(2)
    batch.done("stored")
    batch.done("already stored")
    code, stderr = _ending(batch)
    assert code == 0
    assert re.fullmatch(
        r"pdf2dcm: 2 files: 1 stored, 1 already stored, 0 failed in \d+\.\d s\n", stderr
    )
    failing = Batch(3)
    failing.done("stored")
    failing.failed(err.NotAttemptedError("not attempted"))
    failing.failed(err.ServerUnreachableError("down"))
    code, stderr = _ending(failing)
    assert code == 3
    assert stderr.startswith("pdf2dcm: 3 files: 1 stored, 1 failed, 1 not attempted in ")


def test_batch_summary_is_quiet_under_q() -> None:
    app.output.quiet = True
    batch = Batch(1)
    batch.done("stored")
    assert _ending(batch) == (0, "")


def test_sizes_are_in_kib() -> None:
    assert [size_text(n) for n in (900, 1024, 1536, 5 * 1024**2)] == [
        "900 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
    ]


def test_stdin_on_a_terminal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    with pytest.raises(click.UsageError, match=r"refusing to read a PDF from a terminal"):
        refuse_terminal_stdin()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    refuse_terminal_stdin()


class Screen:
    """What a terminal shows: enough of a VT100 for rich's live display.

    Handles CR, LF, cursor up/down/column moves and line erasing; colours and cursor
    visibility are ignored.
    """

    _TOKENS = re.compile(r"\x1b\[(\??)([0-9;]*)([A-Za-z])|\x1b[()][A-Z0-9]|(.)", re.DOTALL)

    def __init__(self, width: int = 100) -> None:
        self.width = width
        self.lines: list[list[str]] = [[]]
        self.row = self.column = 0

    def feed(self, data: bytes) -> list[str]:
        for token in self._TOKENS.finditer(data.decode("utf-8", errors="replace")):
            char = token.group(4)
            if char is not None:
                self._char(char)
            elif token.group(3) and not token.group(1):
                self._control(token.group(3), token.group(2))
        return ["".join(line).rstrip() for line in self.lines]

    def _line(self) -> list[str]:
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def _control(self, command: str, argument: str) -> None:
        number = int(argument or "1")
        if command == "A":
            self.row = max(0, self.row - number)
        elif command == "B":
            self.row += number
        elif command == "G":
            self.column = number - 1
        elif command == "K":
            line = self._line()
            if int(argument or "0") == 2:
                line[:] = [" "] * len(line)
            else:
                del line[self.column :]

    def _char(self, char: str) -> None:
        if char == "\r":
            self.column = 0
        elif char == "\n":
            self.row, self.column = self.row + 1, 0
        elif char >= " ":
            if self.column >= self.width:
                self.row, self.column = self.row + 1, 0
            line = self._line()
            line.extend(" " * (self.column + 1 - len(line)))
            line[self.column] = char
            self.column += 1


def test_interrupted_jobs_wait_leaves_a_clean_screen(fake: FakeOrthanc) -> None:
    """The message of an interruption starts at column 0, whole, with no bar left behind."""
    fake.route("GET", f"/jobs/{JOB}", (200, job_json("Running", 40)))
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORTHANC_", "PDF2DCM_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "pdf2dcm", "jobs", "wait", JOB, "--url", fake.url],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env | {"COLUMNS": "100", "LINES": "30", "TERM": "xterm", "NO_COLOR": "1"},
    )
    os.close(secondary)
    received = b""
    interrupted = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            received += chunk
        if not interrupted and received.count("━".encode()) and len(fake.asked) >= 3:
            process.send_signal(signal.SIGINT)
            interrupted = True
    process.wait(30)
    os.close(primary)
    assert interrupted, received
    assert process.returncode == 130
    shown = [line for line in Screen().feed(received) if line.strip()]
    assert shown == [f"pdf2dcm: interrupted; the jobs go on in Orthanc: {JOB}"]
