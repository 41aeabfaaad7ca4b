"""``pdf2dcm watch`` as a running process: slow writers, a server that goes away, kill -9,
SIGTERM, a terminal. Tests that count instances share a private Orthanc; the one that stops
its server has its own."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pty
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.orthanc import OrthancServer
from tests.pdfs import make_pdf

SETTLE = "0.5"


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc of the test's own, which it may stop and start."""
    with OrthancServer(tmp_path_factory.mktemp("orthanc")) as started:
        yield started


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc for this module's tests that count instances (by difference)."""
    with OrthancServer(tmp_path_factory.mktemp("orthanc")) as started:
        yield started


def start_watch(server: OrthancServer, root: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "pdf2dcm", "watch", str(root / "in"), "--url", server.url]
    command += ["--done", str(root / "done"), "--failed", str(root / "failed"), *args]
    log = (root / "stderr.log").open("ab")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def files(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def stop(process: subprocess.Popen[bytes]) -> tuple[int, list[dict[str, object]]]:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    return process.returncode, [json.loads(line) for line in out.decode().splitlines()]


def test_a_slow_writer_is_never_taken_early(counted: OrthancServer, tmp_path: Path) -> None:
    """Written in pieces 0.3 s apart for 5 s (settle 0.5 s): taken whole, once."""
    server, before = counted, counted.instance_count()
    (tmp_path / "in").mkdir()
    watcher = start_watch(server, tmp_path, "--settle", SETTLE, "--json", "--tag", "PatientID=S")
    try:
        data = make_pdf(170_000, seed=7)
        pieces = [data[i : i + 10_000] for i in range(0, len(data), 10_000)]
        target = tmp_path / "in" / "slow.pdf"
        with target.open("wb") as handle:
            for piece in pieces:
                handle.write(piece)
                handle.flush()
                time.sleep(0.3)
                assert target.exists(), "taken while still being written"
        wait_for(lambda: files(tmp_path / "done") == ["slow.pdf"], 20, "the slow file to be done")
    finally:
        code, events = stop(watcher)
    assert code == 0
    assert [e["Kind"] for e in events] == ["uploaded"]
    assert events[0]["SHA256"] == hashlib.sha256(data).hexdigest()
    assert files(tmp_path / "failed") == []
    assert server.instance_count() == before + 1


def all_waiting(journal: Path, count: int) -> bool:
    """Whether ``count`` different files are journaled as waiting for the server."""
    try:
        lines = journal.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return False
    waiting = {r["Input"] for r in map(json.loads, lines) if r["Kind"] == "waiting"}
    return len(waiting) >= count


def test_files_wait_while_the_server_is_down_then_go(server: OrthancServer, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    for number in range(5):
        (inbox / f"before{number}.pdf").write_bytes(make_pdf(3000, seed=1000 + number))
    journal = tmp_path / "journal.jsonl"
    watcher = start_watch(
        server, tmp_path, "--settle", "0.2", "--json", "--tag", "PatientID=O", "--log", str(journal)
    )
    try:
        wait_for(lambda: len(files(tmp_path / "done")) == 5, 20, "the first files")
        server.stop()
        for number in range(5):
            (inbox / f"during{number}.pdf").write_bytes(make_pdf(3000, seed=2000 + number))
        # The event: every new file journaled as waiting (not a time that a loaded machine
        # may not reach).
        wait_for(functools.partial(all_waiting, journal, 5), 60, "the files to wait")
        assert len(files(inbox)) == 5, "files moved while the server was down"
        server.start()
        wait_for(lambda: files(inbox) == [], 60, "the inbox to empty after the restart")
    finally:
        code, events = stop(watcher)
    assert code == 0
    assert files(tmp_path / "failed") == []
    assert server.instance_count() == 10
    retries = [e for e in events if e["Kind"] == "waiting"]
    assert retries, "no retry was reported while the server was down"
    assert all(str(e["Input"]).startswith("during") for e in retries)
    assert sorted(str(e["Input"]) for e in events if e["Kind"] == "uploaded") == sorted(
        [f"before{n}.pdf" for n in range(5)] + [f"during{n}.pdf" for n in range(5)]
    )
    stderr = (tmp_path / "stderr.log").read_text(encoding="utf-8")
    assert "; left in the inbox, next try in " in stderr


def uploaded_count(journal: Path) -> int:
    """Files journaled as stored so far (0 before the watcher has created the journal)."""
    try:
        text = journal.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    return text.count('"Kind":"uploaded"') + text.count('"Kind": "uploaded"')


def journaled_or_ended(
    journal: Path, wanted: int, watcher: subprocess.Popen[bytes], inbox: Path
) -> bool:
    """The event a kill waits for: enough files journaled (or nothing left to do)."""
    return uploaded_count(journal) >= wanted or watcher.poll() is not None or not files(inbox)


def test_kill_9_at_any_moment_loses_and_duplicates_nothing(
    counted: OrthancServer, tmp_path: Path
) -> None:
    """200 files; each watcher is killed after it has journaled 1 to 12 more files (an event,
    not a time: under load a watcher may take seconds to start), then left to finish."""
    server, before = counted, counted.instance_count()
    inbox = tmp_path / "in"
    inbox.mkdir()
    for number in range(200):
        (inbox / f"doc{number:03}.pdf").write_bytes(make_pdf(2000, seed=5000 + number))
    (inbox / "doc000.json").write_text('{"PatientName": "Side^Car"}', encoding="utf-8")
    journal = tmp_path / "journal.jsonl"
    chooser = random.Random(9)
    kills = 0
    while files(inbox) and kills < 12:
        seen = uploaded_count(journal)
        wanted = seen + chooser.randint(1, 12)
        watcher = start_watch(
            server, tmp_path, "--settle", "0", "--concurrency", "4", "--log", str(journal)
        )
        wait_for(
            functools.partial(journaled_or_ended, journal, wanted, watcher, inbox),
            120,
            f"{wanted - seen} more files journaled",
        )
        if watcher.poll() is None:
            watcher.kill()
            kills += 1
        watcher.wait(timeout=30)
    watcher = start_watch(server, tmp_path, "--settle", "0", "--once")
    assert watcher.wait(timeout=120) == 0
    assert kills >= 5
    assert files(inbox) == []
    assert files(tmp_path / "failed") == []
    done = files(tmp_path / "done")
    assert done == sorted([f"doc{n:03}.pdf" for n in range(200)] + ["doc000.json"])
    assert server.instance_count() == before + 200
    names = [
        server.get(f"/instances/{i}/simplified-tags").json().get("PatientName", "")
        for i in server.get("/instances").json()
    ]
    assert names.count("Side^Car") == 1
    stored = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    journaled = {line["Input"] for line in stored if line["Kind"] == "uploaded"}
    assert journaled
    assert journaled <= set(done)


def test_sigterm_finishes_the_file_in_hand(counted: OrthancServer, tmp_path: Path) -> None:
    server, before = counted, counted.instance_count()
    inbox = tmp_path / "in"
    inbox.mkdir()
    big = inbox / "a-big.pdf"
    with big.open("wb") as handle:
        handle.write(b"%PDF-1.4\n")
        handle.truncate(150 * 1024 * 1024)
        handle.seek(0, os.SEEK_END)
        handle.write(b"\n%%EOF\n")
    (inbox / "b-next.pdf").write_bytes(make_pdf(3000, seed=77))
    watcher = start_watch(
        server, tmp_path, "--settle", "0", "--concurrency", "1", "--json", "--tag", "PatientID=T"
    )
    fd_folder = Path(f"/proc/{watcher.pid}/fd")

    def holds_big() -> bool:
        try:
            return any(os.readlink(fd_folder / fd) == str(big) for fd in os.listdir(fd_folder))
        except OSError:
            return False

    wait_for(holds_big, 30, "the watcher to open the big file")
    code, events = stop(watcher)
    assert code == 0
    assert [(e["Input"], e["Kind"]) for e in events] == [("a-big.pdf", "uploaded")]
    assert files(tmp_path / "done") == ["a-big.pdf"]
    assert files(inbox) == ["b-next.pdf"]
    assert server.instance_count() == before + 1


def test_a_status_line_on_a_terminal(orthanc: OrthancServer, tmp_path: Path) -> None:
    """Under the event lines: files waiting, stored, failed and the last error, one line."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.pdf").write_bytes(make_pdf(3000, seed=88))
    (inbox / "b.pdf").write_bytes(b"bad")
    command = [sys.executable, "-m", "pdf2dcm", "watch", str(inbox), "--url", orthanc.url]
    command += ["--delete", "--settle", "0", "--tag", "PatientID=PTY"]
    pid, terminal = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes pdf2dcm
        os.execv(sys.executable, command)
    seen = b""
    deadline = time.monotonic() + 30
    while b"1 stored, 1 failed" not in seen and time.monotonic() < deadline:
        if select.select([terminal], [], [], 0.2)[0]:
            seen += os.read(terminal, 65536)
    os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(OSError):
        while select.select([terminal], [], [], 2)[0]:
            chunk = os.read(terminal, 65536)
            if not chunk:
                break
            seen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0
    text = seen.decode("utf-8", "replace")
    assert "pdf2dcm: error: b.pdf is not a PDF" in text
    assert "watching: 0 waiting, 1 stored, 1 failed; last error: b.pdf is not a PDF" in text
    # The status line is cut to the terminal's width, never wrapped onto a second line.
    assert "\u2026\r" in text
    # On SIGTERM the status line is erased, and one summary line stands alone at the end.
    summary = "pdf2dcm: 2 files: 1 stored, 1 failed, 0 held, 0 waiting"
    assert text.rstrip().endswith(summary)
    after_status = text[text.rindex("watching: ") : text.rindex(summary)]
    assert "\x1b[2K" in after_status
