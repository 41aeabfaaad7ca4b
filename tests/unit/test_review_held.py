"""Held documents on the review page: listed from a running hot folder's inbox with why they
wait, and filed by a person or by the watcher, never by both.

The held file and its journal record are made by a real ``watch --once`` against the fake
archive; the watcher's side of the lock is :func:`pdf2dcm.watch.take_file`, as it runs.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from pdf2dcm.cli import cli
from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from pdf2dcm.errors import InputError
from pdf2dcm.lookup import Target
from pdf2dcm.pertags import NameRule
from pdf2dcm.review import Choice, Desk, ReviewOptions
from pdf2dcm.review import desk as desk_module
from pdf2dcm.review.desk import CLAIM_FOLDER, CLAIM_RECORD
from pdf2dcm.upload import UploadOptions, upload_file
from pdf2dcm.watch import lock_inbox, take_file
from tests.fake_orthanc import FakeOrthanc, serving
from tests.pdfs import make_pdf

PATTERN = "{AccessionNumber}_{*}.pdf"
NAME = "NOPE_consent.pdf"


@dataclass
class Held:
    fake: FakeOrthanc
    client: OrthancClient
    inbox: Path
    journal: Path
    pdf: bytes
    study: str
    options: ReviewOptions


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Held]:
    with serving() as fake:
        inbox, journal = tmp_path / "in", tmp_path / "watch.jsonl"
        inbox.mkdir()
        pdf = make_pdf(3000, seed=17)
        (inbox / NAME).write_bytes(pdf)
        (inbox / "NOPE_consent.json").write_text('{"PatientName": "Doe^Jane"}', "utf-8")
        result = CliRunner().invoke(
            cli,
            [
                *("watch", str(inbox), "--url", fake.url, "--once", "--settle", "0"),
                *("--name-pattern", PATTERN, "--study", "AccessionNumber={AccessionNumber}"),
                *("--hold-for", "1h", "--done", str(tmp_path / "done"), "--log", str(journal)),
            ],
        )
        assert result.exit_code == 0, result.stderr
        assert (inbox / NAME).read_bytes() == pdf
        settings = resolve_settings(url=fake.url, environ={}, netrc_file="/dev/null")
        client = OrthancClient(settings, sleep=lambda _seconds: None)
        image = tmp_path / "image.pdf"
        image.write_bytes(make_pdf(2000, seed=1))
        tags = {"PatientID": "P-1", "PatientName": "Doe^Jane", "AccessionNumber": "ACC-1"}
        stored = upload_file(client, str(image), UploadOptions(tags=tags))
        assert stored.id is not None
        assert stored.parent_study is not None
        encoded = io.BytesIO()
        pydicom.dcmwrite(encoded, fake.datasets[stored.id], enforce_file_format=True)
        fake.route("GET", f"/instances/{stored.id}/file", encoded.getvalue())
        options = ReviewOptions(
            folders=(inbox,),
            target=Target(study=("AccessionNumber={AccessionNumber}",)),
            name_rule=NameRule.from_pattern(PATTERN),
            journal=journal,
            done=tmp_path / "filed",
            rejected=tmp_path / "rejected",
        )
        yield Held(fake, client, inbox, journal, pdf, stored.parent_study, options)
        client.close()


def test_a_held_document_is_listed_with_why_and_when_it_is_looked_up_again(held: Held) -> None:
    [document] = Desk(held.client, held.options).documents()
    assert document.key == f"0/{NAME}"
    assert document.reason is not None
    assert document.reason.startswith(f"no study matches AccessionNumber=NOPE at {held.fake.url}")
    assert "held, looked up again at " in document.reason
    assert document.kind == "nothing matches"


def test_an_older_held_record_does_not_explain_a_newer_file(held: Held) -> None:
    later = os.stat(held.inbox / NAME).st_mtime + 3600
    os.utime(held.inbox / NAME, (later, later))
    [document] = Desk(held.client, held.options).documents()
    assert document.reason is None


def _file(desk: Desk, key: str, study: str) -> None:
    choice = Choice("study", study)
    desk.file(key, choice, desk.preview(key, choice).confirmation)


def test_a_file_the_watcher_holds_locked_is_not_filed_by_the_page_until_it_lets_go(
    held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(desk_module, "CLAIM_WAIT", 0.2)
    desk = Desk(held.client, held.options)
    before = set(held.fake.instances)
    with (held.inbox / NAME).open("rb") as watcher:
        fcntl.flock(watcher.fileno(), fcntl.LOCK_EX)
        with pytest.raises(InputError, match=r"the hot folder is filing 0/NOPE_consent\.pdf"):
            _file(desk, f"0/{NAME}", held.study)
        assert (held.inbox / NAME).read_bytes() == held.pdf
        assert set(held.fake.instances) == before
    _file(desk, f"0/{NAME}", held.study)
    [new] = set(held.fake.instances) - before
    assert held.fake.instances[new].rstrip(b"\0") == held.pdf.rstrip(b"\0")
    assert (held.options.done or Path()).joinpath(NAME).read_bytes() == held.pdf
    assert (held.options.done or Path()).joinpath("NOPE_consent.json").exists()
    assert sorted(os.listdir(held.inbox)) == [CLAIM_FOLDER]
    assert list((held.inbox / CLAIM_FOLDER).iterdir()) == []


@pytest.mark.parametrize("replaced", [False, True], ids=["gone", "a-new-file-of-that-name"])
def test_a_watcher_that_opened_the_file_before_the_page_moved_it_files_nothing(
    tmp_path: Path, replaced: bool
) -> None:
    """The page locks, moves the file aside, lets go; the watcher, which opened the file
    before, gets the lock only then and finds its name gone, or naming another file: in
    every order of events."""
    path = tmp_path / NAME
    path.write_bytes(b"%PDF-1.4\n%%EOF\n")
    outcome: list[bool] = []
    with path.open("rb") as page, path.open("rb") as watcher:
        fcntl.flock(page.fileno(), fcntl.LOCK_EX)
        taking = threading.Thread(target=lambda: outcome.append(take_file(watcher, path)))
        taking.start()
        path.rename(tmp_path / "aside.pdf")
        if replaced:
            path.write_bytes(b"%PDF-1.4\n%%EOF\n")
        fcntl.flock(page.fileno(), fcntl.LOCK_UN)
        taking.join()
    assert outcome == [False]
    with (tmp_path / "aside.pdf").open("rb") as still:
        assert take_file(still, tmp_path / "aside.pdf") is True


def test_a_failed_filing_puts_the_held_file_back(held: Held) -> None:
    desk = Desk(held.client, held.options)
    with pytest.raises(InputError, match="changed since its preview"):
        desk.file(f"0/{NAME}", Choice("study", held.study), "0" * 64)
    assert (held.inbox / NAME).read_bytes() == held.pdf
    assert (held.inbox / "NOPE_consent.json").exists()
    assert list((held.inbox / CLAIM_FOLDER).iterdir()) == []


def _left_aside(inbox: Path, token: str = "0123456789abcdef") -> Path:
    """What a page killed while filing leaves: the PDF and its sidecar in a claim folder."""
    aside = inbox / CLAIM_FOLDER / token
    aside.mkdir(parents=True)
    (aside / CLAIM_RECORD).write_text(json.dumps({"Input": NAME}), "utf-8")
    (inbox / NAME).rename(aside / NAME)
    if (inbox / "NOPE_consent.json").exists():
        (inbox / "NOPE_consent.json").rename(aside / "NOPE_consent.json")
    return aside


def test_what_a_killed_page_left_aside_is_put_back_at_the_next_start(held: Held) -> None:
    _left_aside(held.inbox)
    Desk(held.client, held.options)
    assert (held.inbox / NAME).read_bytes() == held.pdf
    assert (held.inbox / "NOPE_consent.json").exists()


def test_the_inbox_of_a_running_watcher_needs_done_and_rejected_outside_it(held: Held) -> None:
    lock = lock_inbox(held.inbox)
    try:
        inside = ReviewOptions(folders=(held.inbox,), journal=held.journal)
        refused = "is inside the inbox of a running pdf2dcm watch: give --done"
        with pytest.raises(InputError, match=refused):
            Desk(held.client, inside)
        Desk(held.client, held.options)  # done and rejected outside it: fine
    finally:
        os.close(lock)
    Desk(held.client, ReviewOptions(folders=(held.inbox,)))  # no watcher: done/ below is fine


def test_a_page_starting_leaves_alone_what_another_page_is_filing(held: Held) -> None:
    aside = _left_aside(held.inbox)
    with (aside / NAME).open("rb") as other_page:
        fcntl.flock(other_page.fileno(), fcntl.LOCK_EX)
        Desk(held.client, held.options)
        assert (aside / NAME).exists()
        assert not (held.inbox / NAME).exists()
    Desk(held.client, held.options)
    assert (held.inbox / NAME).read_bytes() == held.pdf


def test_two_pages_never_put_two_documents_of_one_name_in_one_place(held: Held) -> None:
    """Page A is filing NAME when the scanner sends another NAME, which page B rejects."""
    first, second = Desk(held.client, held.options), Desk(held.client, held.options)
    later = make_pdf(2600, seed=99)
    with first._claimed(first.document(f"0/{NAME}")) as claimed:
        (held.inbox / NAME).write_bytes(later)
        second.reject(f"0/{NAME}", "a second scan")
        assert claimed.path.read_bytes() == held.pdf
    assert (held.options.rejected or Path()).joinpath(NAME).read_bytes() == later


def test_a_fifo_left_in_the_claim_folder_neither_blocks_the_page_nor_is_moved(
    held: Held,
) -> None:
    aside = held.inbox / CLAIM_FOLDER / "fedcba9876543210"
    aside.mkdir(parents=True)
    (aside / CLAIM_RECORD).write_text(json.dumps({"Input": "trap.pdf"}), "utf-8")
    os.mkfifo(aside / "trap.pdf")
    started = threading.Thread(target=Desk, args=(held.client, held.options), daemon=True)
    started.start()
    started.join(timeout=30)
    assert not started.is_alive()
    assert not (held.inbox / "trap.pdf").exists()


def test_a_claim_folder_that_is_a_link_is_refused_and_the_file_stays(
    held: Held, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (held.inbox / CLAIM_FOLDER).symlink_to(elsewhere)
    desk = Desk(held.client, held.options)
    with pytest.raises(InputError, match="is not a folder pdf2dcm can put documents aside in"):
        desk.reject(f"0/{NAME}", "planted link")
    assert (held.inbox / NAME).read_bytes() == held.pdf
    assert list(elsewhere.iterdir()) == []


def test_a_folder_inside_a_watched_inbox_needs_done_and_rejected_outside_it(
    held: Held,
) -> None:
    ward = held.inbox / "ward7"
    ward.mkdir()
    lock = lock_inbox(held.inbox)
    try:
        with pytest.raises(InputError, match=r"ward7 is inside .*/in, which is the inbox of a"):
            Desk(held.client, ReviewOptions(folders=(ward,)))
    finally:
        os.close(lock)


def test_a_watcher_started_later_never_takes_what_the_page_filed(held: Held) -> None:
    """The page files into done/ inside the folder; a recursive watcher started afterwards
    on a folder above it leaves that done/ alone, by its mark."""
    options = ReviewOptions(folders=(held.inbox,), journal=held.journal)
    desk = Desk(held.client, options)
    desk.reject(f"0/{NAME}", "not ours")
    assert (held.inbox / "rejected" / NAME).exists()
    result = CliRunner().invoke(
        cli,
        [
            *("watch", str(held.inbox), "--url", held.fake.url, "--once", "--settle", "0"),
            *("--recursive", "--delete", "--json", "--tag", "PatientID=W"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert (held.inbox / "rejected" / NAME).read_bytes() == held.pdf


def test_a_half_finished_move_aside_puts_the_file_back_with_its_sidecar(
    held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PDF is moved aside, its sidecar cannot be: both end where they were."""
    import errno

    real_rename = os.rename
    calls = [0]

    def rename(source: object, target: object, **kwargs: object) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.EACCES, "Permission denied")
        real_rename(source, target, **kwargs)  # type: ignore[arg-type]

    desk = Desk(held.client, held.options)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(InputError, match="Permission denied"):
        desk.reject(f"0/{NAME}", "cannot move")
    monkeypatch.undo()
    assert (held.inbox / NAME).read_bytes() == held.pdf
    assert (held.inbox / "NOPE_consent.json").exists()
    assert list((held.inbox / CLAIM_FOLDER).iterdir()) == []
