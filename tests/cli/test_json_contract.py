"""The --json contract of every command, in the fast loop: one shape per Kind, PascalCase keys,
stdin named '-', a record for every failed file, valid UTF-8 for any file name.

upload, fetch, ls, show and jobs run through CliRunner against a scripted archive that keeps
what it is sent (POST /instances) and gives it back (GET .../content/0042-0011), so the
records can be checked against the bytes; the integration tests check the same against
the real Orthanc.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.fake_orthanc import FakeOrthanc, reply, serving
from tests.pdfs import make_pdf

JOB = "6f0a3c2e-1b4d-4e5f-8a9b-0c1d2e3f4a5b"
KINDS = {
    "encoded",
    "planned",
    "extracted",
    "uploaded",
    "fetched",
    "document",
    "object",
    "job",
    "waiting",
    "failed",
}
PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")


@pytest.fixture
def archive() -> Iterator[FakeOrthanc]:
    with serving() as server:
        server.route(
            "GET",
            f"/jobs/{JOB}",
            {"ID": JOB, "Type": "DicomModalityStore", "State": "Success", "Progress": 100},
        )
        yield server


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def records(result: Result) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in result.stdout.splitlines()]
    for record in found:
        assert record["Kind"] in KINDS, record
        assert all(PASCAL.match(key) for key in record), record
    return found


def test_upload_records_name_the_patient_and_every_uid_and_stdin_as_dash(
    archive: FakeOrthanc, tmp_path: Path
) -> None:
    pdf = make_pdf(3001, seed=1)
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(2000, seed=2))
    result = run(
        "upload", str(source), "-", "--url", archive.url, "--tag", "PatientID=J-1", "--json",
        stdin=pdf,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    first, second = records(result)
    assert [first["Input"], second["Input"]] == [str(source), "-"]
    for record, data in ((first, source.read_bytes()), (second, pdf)):
        assert record["Kind"] == "uploaded"
        assert record["Status"] == "Success"
        assert record["PatientID"] == "J-1"
        assert record["Size"] == len(data)
        assert record["SHA256"] == hashlib.sha256(data).hexdigest()
        # The value as stored: the PDF, with a pad byte when its length is odd.
        assert archive.instances[record["ID"]] == data + b"\0" * (len(data) % 2)
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            assert re.fullmatch(r"2\.25\.\d+", record[key]), record
        assert record["URL"].startswith(f"{archive.url}/instances/{record['ID']}/")
    assert first["StudyInstanceUID"] != second["StudyInstanceUID"]


def test_upload_writes_a_record_for_every_failed_file_and_goes_on(
    archive: FakeOrthanc, tmp_path: Path
) -> None:
    good = tmp_path / "good.pdf"
    good.write_bytes(make_pdf(2500, seed=3))
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a PDF")
    result = run(
        "upload", str(bad), str(good), "--url", archive.url, "--tag", "PatientID=F", "--json"
    )
    assert result.exit_code == 2
    failed, stored = records(result)
    assert failed == {
        "Kind": "failed",
        "Input": str(bad),
        "Error": failed["Error"],
        "ExitCode": 2,
    }
    assert str(bad) in failed["Error"]
    assert f"error: {failed['Error']}" in result.stderr
    assert stored["Kind"] == "uploaded"
    assert result.stderr.strip().splitlines()[-1].startswith("pdf2dcm: 2 files: 1 stored, 1 failed")


def test_one_failed_file_gives_its_record_and_one_error_line(
    archive: FakeOrthanc, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a PDF")
    result = run("upload", str(bad), "--url", archive.url, "--tag", "PatientID=F", "--json")
    assert result.exit_code == 2
    [failed] = records(result)
    assert (failed["Kind"], failed["ExitCode"]) == ("failed", 2)
    assert result.stderr.count(failed["Error"]) == 1


def test_a_second_upload_is_already_stored_and_checked(
    archive: FakeOrthanc, tmp_path: Path
) -> None:
    source = tmp_path / "again.pdf"
    source.write_bytes(make_pdf(4000, seed=5))
    args = ("upload", str(source), "--url", archive.url, "--tag", "PatientID=A", "--json")
    [first] = records(run(*args))
    [again] = records(run(*args))
    assert again["Status"] == "AlreadyStored"
    assert {k: v for k, v in again.items() if k != "Status"} == {
        k: v for k, v in first.items() if k != "Status"
    }


def test_fetch_records_written_skipped_and_failed(archive: FakeOrthanc, tmp_path: Path) -> None:
    source = tmp_path / "f.pdf"
    source.write_bytes(make_pdf(3333, seed=6))
    [stored] = records(
        run("upload", str(source), "--url", archive.url, "--tag", "PatientID=G", "--json")
    )
    missing = "00000000-00000000-00000000-00000000-00000000"
    out = tmp_path / "out"
    args = ("fetch", stored["ID"], missing, "--url", archive.url, "-d", str(out), "--json")
    first = run(*args, "--skip-existing")
    assert first.exit_code == 4
    written, failed = records(first)
    assert written == {
        "Kind": "fetched",
        "ID": stored["ID"],
        "Output": written["Output"],
        "Status": "Written",
        "Size": 3333,
        "SHA256": stored["SHA256"],
    }
    assert Path(written["Output"]).read_bytes() == source.read_bytes()
    assert (failed["Kind"], failed["ID"], failed["ExitCode"]) == ("failed", missing, 4)
    again = run(*args[:2], *args[3:], "--skip-existing")
    [skipped] = records(again)
    assert (skipped["Status"], skipped["Size"], skipped["SHA256"]) == ("Skipped", None, None)


def test_encode_and_extract_name_stdin_as_dash(tmp_path: Path) -> None:
    pdf = make_pdf(1500, seed=7)
    encoded = run("encode", "-", "-d", str(tmp_path), "--tag", "PatientID=S", "--json", stdin=pdf)
    assert encoded.exit_code == 0, encoded.stderr
    [record] = records(encoded)
    assert (record["Kind"], record["Input"], record["PatientID"]) == ("encoded", "-", "S")
    dicom = Path(record["Output"]).read_bytes()
    extracted = run("extract", "-", "-o", str(tmp_path / "x.pdf"), "--json", stdin=dicom)
    [out] = records(extracted)
    assert (out["Kind"], out["Input"], out["Size"]) == ("extracted", "-", len(pdf))
    planned = run("encode", "-", "--dry-run", "--tag", "PatientID=S", stdin=pdf)
    [plan] = records(planned)
    assert (plan["Kind"], plan["Input"], plan["Tags"]["PatientID"]) == ("planned", "-", "S")


def test_encode_failed_files_get_records_too(tmp_path: Path) -> None:
    good = tmp_path / "good.pdf"
    good.write_bytes(make_pdf(1200, seed=8))
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"no PDF here")
    result = run("encode", str(bad), str(good), "-d", str(tmp_path / "o"), "--json")
    assert result.exit_code == 2
    failed, written = records(result)
    assert (failed["Kind"], failed["Input"], failed["ExitCode"]) == ("failed", str(bad), 2)
    assert written["Kind"] == "encoded"
    assert not (tmp_path / "o" / "bad.dcm").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="Linux file names are bytes")
def test_a_name_that_is_not_utf8_is_written_as_valid_json(tmp_path: Path) -> None:
    name = tmp_path / "caf\udce9.pdf"  # b"caf\xe9.pdf": Latin-1 on disk
    name.write_bytes(make_pdf(1000, seed=9))
    result = run("encode", str(name), "-d", str(tmp_path / "o"), "--json")
    assert result.exit_code == 0, result.stderr
    result.stdout_bytes.decode("utf-8")  # valid UTF-8
    [record] = records(result)
    assert record["Input"].endswith("caf\udce9.pdf")


def test_the_forwarding_job_is_a_job_record(archive: FakeOrthanc, tmp_path: Path) -> None:
    source = tmp_path / "j.pdf"
    source.write_bytes(make_pdf(1000, seed=10))
    archive.route("GET", "/modalities", ["pacs"])
    archive.route("POST", "/modalities/pacs/store", {"ID": JOB, "Path": f"/jobs/{JOB}"})
    result = run(
        "upload", str(source), "--url", archive.url, "--tag", "PatientID=J",
        "--send-to-modality", "pacs", "--wait", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    uploaded, job = records(result)
    assert uploaded["Kind"] == "uploaded"
    assert job == {
        "Kind": "job",
        "ID": JOB,
        "Target": "modality pacs",
        "Instances": 1,
        "State": "Success",
    }


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """CliRunner's streams answer isatty() with True, so progress bars and tables are drawn."""
    import click.testing

    monkeypatch.setattr(click.testing._NamedTextIOWrapper, "isatty", lambda _self: True)
    monkeypatch.setenv("COLUMNS", "100")


def test_on_a_terminal_upload_and_fetch_draw_bars_and_keep_result_lines_whole(
    archive: FakeOrthanc, tmp_path: Path, terminal: None
) -> None:
    sources = []
    for number in range(3):
        source = tmp_path / f"t{number}.pdf"
        source.write_bytes(make_pdf(200_000 + number, seed=20 + number))
        sources.append(source)
    sent = run("upload", *map(str, sources), "--url", archive.url, "--tag", "PatientID=T")
    assert sent.exit_code == 0, sent.output
    assert "━" in sent.output  # the bar was drawn
    lines = _screen_lines(sent.output)
    for source in sources:
        [line] = [line for line in lines if line.startswith(f"{source} -> ")]
        assert line.endswith("(Success)  " + line.split("  ")[-1])
    assert "3 files: 3 stored, 0 failed" in sent.output
    assert len(archive.instances) == 3
    ids = sorted(archive.instances)
    got = run("fetch", *ids, "--url", archive.url, "-d", str(tmp_path / "back"))
    assert got.exit_code == 0, got.output
    assert "3 files: 3 written, 0 failed" in got.output
    back = sorted(p.read_bytes() for p in (tmp_path / "back").iterdir())
    assert back == sorted(p.read_bytes() for p in sources)


def _screen_lines(output: str) -> list[str]:
    """The lines as a terminal shows them: control sequences and carriage returns resolved
    to what stays on screen (the transient bar erases itself)."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")]


def test_upload_and_watch_both_take_the_profiles_default_tags(
    archive: FakeOrthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[profiles.ward]\nurl = "{archive.url}"\n'
        '[profiles.ward.tags]\nPatientID = "PRO-1"\nInstitutionName = "Klinikum"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("PDF2DCM_CONFIG", str(config))
    sent = tmp_path / "sent.pdf"
    sent.write_bytes(make_pdf(1100, seed=30))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "dropped.pdf").write_bytes(make_pdf(1200, seed=31))
    uploaded = run("--profile", "ward", "upload", str(sent), "--json")
    watched = run(
        "--profile", "ward", "watch", str(inbox), "--once", "--settle", "0", "--delete",
        "--tag", "PatientID=PRO-2", "--json",
    )  # fmt: skip
    assert uploaded.exit_code == 0, uploaded.stderr
    assert watched.exit_code == 0, watched.stderr
    [first], [second] = records(uploaded), records(watched)
    assert (first["PatientID"], second["PatientID"]) == ("PRO-1", "PRO-2")
    for record in (first, second):
        stored = archive.datasets[record["ID"]]
        assert stored.InstitutionName == "Klinikum"
        assert stored.PatientID == record["PatientID"]
    assert not (inbox / "dropped.pdf").exists()


def test_extract_and_fetch_of_one_input_give_a_failed_record(
    archive: FakeOrthanc, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(make_pdf(900, seed=40))
    extracted = run("extract", str(plain), "-o", str(tmp_path / "x.pdf"), "--json")
    assert extracted.exit_code == 2
    [failed] = records(extracted)
    assert (failed["Kind"], failed["Input"], failed["ExitCode"]) == ("failed", str(plain), 2)
    assert extracted.stderr == f"pdf2dcm: error: {failed['Error']}\n"
    assert not (tmp_path / "x.pdf").exists()
    missing = "00000000-00000000-00000000-00000000-00000000"
    fetched = run("fetch", missing, "--url", archive.url, "-o", str(tmp_path / "y.pdf"), "--json")
    assert fetched.exit_code == 4
    [failed] = records(fetched)
    assert (failed["Kind"], failed["ID"], failed["ExitCode"]) == ("failed", missing, 4)
    assert fetched.stderr == f"pdf2dcm: error: {failed['Error']}\n"


def test_on_a_terminal_jobs_wait_draws_and_reports_the_job(
    archive: FakeOrthanc, terminal: None
) -> None:
    waited = run("jobs", "wait", JOB, "--url", archive.url)
    assert waited.exit_code == 0, waited.output
    assert f"job {JOB} (DicomModalityStore): Success 100%" in _screen_lines(waited.output)
    shown = run("jobs", "show", JOB, "--url", archive.url, "--json")
    assert json.loads(shown.stdout) == {
        "Kind": "job",
        "ID": JOB,
        "Type": "DicomModalityStore",
        "State": "Success",
        "Progress": 100,
    }


def test_fetch_records_every_instance_when_the_server_goes_away_midway(
    archive: FakeOrthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pdf2dcm.fetch
    from pdf2dcm.errors import ServerUnreachableError

    ids = []
    for number in range(3):
        source = tmp_path / f"s{number}.pdf"
        source.write_bytes(make_pdf(1000 + number, seed=50 + number))
        sent = run("upload", str(source), "--url", archive.url, "--tag", "PatientID=U", "--json")
        ids.append(records(sent)[0]["ID"])
    real, calls = pdf2dcm.fetch.fetch_pdf, []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise ServerUnreachableError("cannot reach the archive")
        return real(*args, **kwargs)

    monkeypatch.setattr(pdf2dcm.fetch, "fetch_pdf", flaky)
    result = run("fetch", *ids, "--url", archive.url, "-d", str(tmp_path / "o"), "--json")
    assert result.exit_code == 3
    got = records(result)
    assert [r["ID"] for r in got] == ids
    assert [(r["Kind"], r.get("ExitCode")) for r in got] == [
        ("fetched", None),
        ("failed", 3),
        ("failed", 1),
    ]
    assert "not attempted" in got[2]["Error"]
    assert len(calls) == 2  # the third was not tried
    assert "3 files: 1 written, 1 failed, 1 not attempted" in result.stderr


def test_encode_dry_run_reports_every_refused_file_and_goes_on(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a PDF")
    good = tmp_path / "good.pdf"
    good.write_bytes(make_pdf(900, seed=61))
    result = run("encode", str(bad), str(good), "--dry-run", "--json")
    assert result.exit_code == 2
    failed, planned = records(result)
    assert (failed["Kind"], failed["Input"], failed["ExitCode"]) == ("failed", str(bad), 2)
    assert (planned["Kind"], planned["Input"]) == ("planned", str(good))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pdf", "good.pdf"]


def test_extract_onto_itself_gives_a_failed_record(tmp_path: Path) -> None:
    dcm = tmp_path / "x.dcm"
    assert run("encode", "-", "-o", str(dcm), stdin=make_pdf(900, seed=60)).exit_code == 0
    before = dcm.read_bytes()
    result = run("extract", str(dcm), "-o", str(dcm), "--json")
    assert result.exit_code == 2
    [failed] = records(result)
    assert (failed["Kind"], failed["Input"]) == ("failed", str(dcm))
    assert dcm.read_bytes() == before


def test_stdin_is_dash_in_records_and_stdin_in_messages(tmp_path: Path) -> None:
    result = run("encode", "-", "-d", str(tmp_path), "--json", stdin=b"not a PDF")
    [failed] = records(result)
    assert failed["Input"] == "-"
    assert failed["Error"].startswith("<stdin> is not a PDF")


def test_upload_takes_its_target_terms_as_given(archive: FakeOrthanc, tmp_path: Path) -> None:
    """Placeholders are a hot folder's (one target per file); an upload's batch shares one
    target, so a brace in a term is part of the value looked up."""
    source = tmp_path / "ACC1_x.pdf"
    source.write_bytes(make_pdf(900, seed=70))
    result = run(
        "upload", str(source), "--url", archive.url, "--name-pattern", "{AccessionNumber}_{*}.pdf",
        "--study", "AccessionNumber={AccessionNumber}", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 4, result.stderr
    assert "AccessionNumber={AccessionNumber}" in result.stderr
    assert "this file gave none" not in result.stderr
    assert archive.instances == {}


@pytest.mark.skipif(sys.platform != "linux", reason="Linux file names are bytes")
def test_watch_journal_and_failed_folder_take_names_that_are_not_utf8(
    archive: FakeOrthanc, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "caf\udce9.pdf").write_bytes(make_pdf(1000, seed=80))
    (inbox / "b\udce4d.pdf").write_bytes(b"not a PDF")
    log = tmp_path / "log.jsonl"
    result = run(
        "watch", str(inbox), "--url", archive.url, "--once", "--settle", "0",
        "--delete", "--failed", str(tmp_path / "failed"), "--tag", "PatientID=W",
        "--log", str(log), "--json",
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr
    printed = records(result)
    journal = [json.loads(line) for line in log.read_bytes().decode("utf-8").splitlines()]
    assert {r["Kind"] for r in journal} == {"uploaded", "failed"}
    assert [r["Input"] for r in journal] == [r["Input"] for r in printed]
    reason = tmp_path / "failed" / "b\udce4d.pdf.error.json"
    kept = json.loads(reason.read_bytes().decode("utf-8"))
    [failed] = [r for r in printed if r["Kind"] == "failed"]
    assert kept == failed | {"ErrorType": "NotAPdfError"}
    assert kept["Destination"] == str(tmp_path / "failed" / "b\udce4d.pdf")
    assert kept["SHA256"] == hashlib.sha256(b"not a PDF").hexdigest()


def test_a_record_that_cannot_be_printed_does_not_hide_the_error(
    archive: FakeOrthanc, tmp_path: Path
) -> None:
    import os
    import subprocess

    missing = "00000000-00000000-00000000-00000000-00000000"
    done = subprocess.run(
        [sys.executable, "-m", "pdf2dcm", "fetch", missing, "--url", archive.url,
         "-o", str(tmp_path / "y.pdf"), "--json"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1),
        check=False,
    )  # fmt: skip
    assert done.returncode == 4
    assert done.stderr.decode().startswith(f"pdf2dcm: error: instance {missing} not found")


@pytest.mark.parametrize("command", ["encode", "upload"])
def test_strict_refuses_a_batch_with_a_truncated_pdf_before_the_first_file(
    archive: FakeOrthanc, tmp_path: Path, command: str
) -> None:
    whole = tmp_path / "a-whole.pdf"
    whole.write_bytes(make_pdf(2000, seed=90))
    cut = tmp_path / "b-cut.pdf"
    cut.write_bytes(make_pdf(2000, seed=91)[:1500])
    where = ["-d", str(tmp_path / "out")] if command == "encode" else ["--url", archive.url]
    result = run(command, str(whole), str(cut), *where, "--tag", "PatientID=S", "--strict")
    assert result.exit_code == 2
    assert f"{cut} has no %%EOF marker near its end" in result.stderr
    assert "refused in strict mode" in result.stderr
    assert not (tmp_path / "out").exists()
    assert archive.instances == {}


def test_watch_once_counts_the_files_left_for_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archive: FakeOrthanc
) -> None:
    from pdf2dcm import client as client_module

    monkeypatch.setattr(client_module, "BACKOFF_SECONDS", 0.01)
    # The server passes the start checks, then fails every store.
    archive.route("POST", "/instances", reply(503, {"Message": "busy"}))
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.pdf").write_bytes(make_pdf(900, seed=95))
    result = run(
        "watch", str(inbox), "--url", archive.url, "--once", "--settle", "0", "--delete",
        "--tag", "PatientID=R", "--json",
    )  # fmt: skip
    assert result.exit_code == 5
    [waiting] = records(result)
    assert (waiting["Kind"], waiting["Input"]) == ("waiting", "a.pdf")
    assert waiting["SHA256"] == hashlib.sha256((inbox / "a.pdf").read_bytes()).hexdigest()
    assert "1 file: 0 stored, 1 left in the inbox, 0 failed" in result.stderr


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("encode", ["--strict"]),
        ("upload", ["--strict", "--tag", "PatientID=F"]),
        ("upload", []),  # no PatientID: each input is looked at for being DICOM
    ],
)
def test_the_look_ahead_at_a_batch_never_reads_a_fifo(
    archive: FakeOrthanc, tmp_path: Path, command: str, options: list[str]
) -> None:
    """--strict and the PatientID check look at every input first; a FIFO must be read once,
    by the real read, or its first bytes would be lost."""
    import os

    fifo = tmp_path / "fifo.pdf"
    os.mkfifo(fifo)
    pdf = make_pdf(3000, seed=99)

    def feed() -> None:
        with fifo.open("wb") as writer:
            writer.write(pdf)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    where = ["-o", str(tmp_path / "out.dcm")] if command == "encode" else ["--url", archive.url]
    result = run(command, str(fifo), *where, *options, "--json")
    feeder.join(timeout=10)
    assert result.exit_code == 0, result.stderr
    [record] = records(result)
    assert (record["Size"], record["SHA256"]) == (len(pdf), hashlib.sha256(pdf).hexdigest())
