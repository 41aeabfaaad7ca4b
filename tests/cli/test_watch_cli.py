"""``pdf2dcm watch`` options: usage errors, the start checks and the example systemd unit."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.fake_orthanc import FakeOrthanc, serving

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "examples" / "pdf2dcm-watch.service"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def archive() -> Iterator[FakeOrthanc]:
    with serving() as server:
        yield server


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --done DIR or --delete (what to do with a stored file)"),
        (("--delete", "--done", "d"), "give --done DIR or --delete"),
        (
            ("--delete", "--name-pattern", "{PatientID}.pdf", "--name-regex", "(?P<PatientID>.*)"),
            "give --name-pattern or --name-regex, not both",
        ),
        (("--delete", "--worklist", "wl"), "--worklist goes with --study KEY=VALUE"),
        (("--delete", "--parent", "x", "--series", "y=1"), "give one of --parent, --series"),
        (
            ("--delete", "--study", "AccessionNumber=1", "--study-from", "ref.dcm"),
            "give one of --study, --study-from/--series-from, not several",
        ),
        (
            ("--delete", "--parent", "x", "--series-from", "ref.dcm"),
            "give one of --parent, --study-from/--series-from, not several",
        ),
        (
            ("--delete", "--study-from", "a.dcm", "--series-from", "b.dcm"),
            "give --study-from or --series-from, not both",
        ),
    ],
)
def test_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run("watch", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_missing_inbox_is_a_usage_error(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path / "nope"), "--delete")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_once_on_an_empty_inbox_exits_0_with_its_start_line_and_summary(
    tmp_path: Path, archive: FakeOrthanc
) -> None:
    result = run("watch", str(tmp_path), "--url", archive.url, "--delete", "--once", "--json")
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == (
        "",
        f"pdf2dcm: watching {tmp_path}; filing to {archive.url} by instances; settle 2 s; "
        "hold 24 h; deleted; failed left in place\n"
        "pdf2dcm: 0 files: 0 stored, 0 left in the inbox, 0 failed\n",
    )


def test_an_unreachable_server_ends_the_start_with_exit_3_and_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    result = run("watch", str(tmp_path), "--url", closed, "--delete", "--timeout", "0.3", "--once")
    assert result.exit_code == 3
    assert result.stderr.startswith("pdf2dcm: error: ")
    assert closed in result.stderr
    assert result.stderr.count("\n") == 1
    assert (tmp_path / "a.pdf").exists()


def exec_start() -> list[str]:
    lines = UNIT.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    [command] = [line.split("=", 1)[1] for line in lines if line.startswith("ExecStart=")]
    return shlex.split(command)


def test_the_example_unit_runs_a_valid_watch_command(tmp_path: Path, archive: FakeOrthanc) -> None:
    program, command, inbox, *options = exec_start()
    # Inside the venv the README's install makes (Debian 12's system pip refuses to install).
    assert (program, command, inbox) == ("/opt/pdf2dcm/bin/pdf2dcm", "watch", "/srv/pdf2dcm/inbox")
    text = UNIT.read_text(encoding="utf-8")
    assert "EnvironmentFile=/etc/pdf2dcm/watch.env" in text
    assert "ORTHANC_PASSWORD=" not in text.split("[Service]")[1]
    local = [
        str(tmp_path / value.rsplit("/", 1)[1]) if value.startswith("/") else value
        for value in options
    ]
    (tmp_path / "inbox").mkdir()
    result = run("watch", str(tmp_path / "inbox"), *local, "--once", "--url", archive.url)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "journal.jsonl").exists()


def test_the_example_unit_installs_into_folders_it_creates_first() -> None:
    """Every folder a step writes into is made by an earlier step (``install -d``)."""
    steps = [
        line.removeprefix("#").strip()
        for line in UNIT.read_text(encoding="utf-8").split("[Unit]")[0].splitlines()
    ]
    made: set[str] = set()
    for step in steps:
        if step.startswith("install -d"):
            made |= {word for word in step.split() if word.startswith("/")}
        elif step.startswith("install -m 0600"):
            target = step.split("/dev/null ")[1].split()[0]
            assert str(Path(target).parent) in made, f"{target}: its folder is not made first"
    assert "python3 -m venv /opt/pdf2dcm && /opt/pdf2dcm/bin/pip install pdf2dcm" in steps
    text = UNIT.read_text(encoding="utf-8")
    assert "Restart=on-failure" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_example_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "pdf2dcm-watch.service"
    unit.write_text(UNIT.read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    # The program and the user exist only on a machine where the unit is installed.
    problems = [
        line
        for line in done.stderr.splitlines()
        if line.strip()
        and "/opt/pdf2dcm/bin/pdf2dcm" not in line
        and "pdf2dcm-watch.service" not in line.split(":")[0]
    ]
    assert problems == [], done.stderr


def test_a_title_no_document_can_carry_is_refused_before_any_file_is_taken(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    result = run("watch", str(tmp_path), "--delete", "--once", "--title", "x" * 1025)
    assert result.exit_code == 2
    assert result.stderr.startswith("pdf2dcm: error: --title: DocumentTitle ")
    assert (tmp_path / "a.pdf").exists()


def test_a_missing_reference_file_is_refused_at_the_start(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    missing = tmp_path / "nowhere.dcm"
    result = run("watch", str(tmp_path), "--delete", "--once", "--series-from", str(missing))
    assert result.exit_code == 2
    assert result.stderr == f"pdf2dcm: error: {missing}: no such file; check the path\n"
    assert (tmp_path / "a.pdf").exists()


def test_wait_for_server_waits_through_refused_credentials_saying_it_once(
    tmp_path: Path, archive: FakeOrthanc, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pdf2dcm.cli import watch as watch_command

    monkeypatch.setattr(watch_command, "START_RETRY_FIRST", 0.01)  # the back-off, not its length
    refused = (401, {"Message": "Unauthorized"})
    archive.route("GET", "/system", refused, refused, {"Version": "1.12.0", "Name": "FAKE"})
    result = run(
        *("watch", str(tmp_path), "--url", archive.url, "--delete", "--once"),
        "--wait-for-server",
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len([line for line in lines if "waiting for the server" in line]) == 1
    assert lines[1] == "pdf2dcm: the server answers and accepts the credentials; watching"
    assert lines[2].startswith(f"pdf2dcm: watching {tmp_path}; filing to {archive.url}")


def test_refused_credentials_end_the_start_with_exit_4(
    tmp_path: Path, archive: FakeOrthanc
) -> None:
    archive.route("GET", "/system", (401, {"Message": "Unauthorized"}))
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    result = run("watch", str(tmp_path), "--url", archive.url, "--delete", "--once")
    assert result.exit_code == 4
    assert result.stderr.count("\n") == 1
    assert (tmp_path / "a.pdf").exists()


def test_done_and_failed_folders_others_can_write_are_warned_about(
    tmp_path: Path, archive: FakeOrthanc
) -> None:
    inbox, done, failed = tmp_path / "in", tmp_path / "done", tmp_path / "failed"
    for folder in (inbox, done, failed):
        folder.mkdir()
    done.chmod(0o777)
    failed.chmod(0o770)
    journal = tmp_path / "journal.jsonl"
    result = run(
        *("watch", str(inbox), "--url", archive.url, "--once", "--log", str(journal)),
        *("--done", str(done), "--failed", str(failed)),
    )
    assert result.exit_code == 0, result.stderr
    for folder in (done, failed):
        assert f"warning: {folder} can be written by other users" in result.stderr
    assert journal.stat().st_mode & 0o777 == 0o600


def test_a_journal_that_is_a_fifo_is_refused_without_blocking(
    tmp_path: Path, archive: FakeOrthanc
) -> None:
    import os

    fifo = tmp_path / "journal.jsonl"
    os.mkfifo(fifo)
    (tmp_path / "in").mkdir()
    result = run(
        *("watch", str(tmp_path / "in"), "--url", archive.url, "--once", "--delete"),
        *("--log", str(fifo)),
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("24h", 86400.0), ("2d", 172800.0), ("0", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    from pdf2dcm.watch import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-5", "nan", "inf", "3 weeks"])
def test_a_duration_that_is_not_one_is_a_usage_error(tmp_path: Path, text: str) -> None:
    result = run("watch", str(tmp_path), "--delete", "--hold-for", text)
    assert result.exit_code == 2
    assert "--hold-for" in result.stderr
    assert "is not a duration" in result.stderr


def test_a_link_planted_in_the_inbox_is_renamed_into_failed_never_sent(
    tmp_path: Path, archive: FakeOrthanc
) -> None:
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(b"%PDF-1.4\n%%EOF\n")
    inbox, failed = tmp_path / "in", tmp_path / "failed"
    inbox.mkdir()
    (inbox / "x.pdf").symlink_to(secret)
    result = run(
        *("watch", str(inbox), "--url", archive.url, "--once", "--settle", "0", "--delete"),
        *("--failed", str(failed), "--tag", "PatientID=L"),
    )
    assert result.exit_code == 2
    assert "is a symbolic link, which is not followed here" in result.stderr
    assert (failed / "x.pdf").is_symlink()
    assert (failed / "x.pdf.error.json").stat().st_mode & 0o777 == 0o600
    assert secret.read_bytes() == b"%PDF-1.4\n%%EOF\n"
    assert archive.instances == {}


def test_sigterm_while_waiting_for_the_server_is_a_clean_stop(tmp_path: Path) -> None:
    """A service stopped before its server ever answered exits 0 with its summary, as a
    service stopped while watching does; nothing in the inbox is touched."""
    import select
    import signal
    import socket
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "pdf2dcm", "watch", str(inbox), "--url", closed),
            *("--delete", "--timeout", "0.3", "--wait-for-server", "--no-progress"),
        ],
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + 60
    while b"waiting for the server" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 1)
        if ready:
            seen += process.stderr.read1(4096)  # type: ignore[attr-defined]
    assert b"waiting for the server" in seen, seen
    process.send_signal(signal.SIGTERM)
    _out, rest = process.communicate(timeout=60)
    lines = (seen + rest).decode().splitlines()
    assert process.returncode == 0, lines
    assert lines[-1] == "pdf2dcm: 0 files: 0 stored, 0 failed, 0 held, 0 waiting"
    assert (inbox / "a.pdf").exists()
