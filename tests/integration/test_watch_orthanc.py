"""``pdf2dcm watch`` against a real Orthanc: per-file tags, moves, failures, exit codes."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.integration.orthanc import OrthancServer
from tests.pdfs import make_pdf


def watch_once(server: OrthancServer, inbox: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["watch", str(inbox), "--url", server.url, "--once", "--settle", "0", "--json", *args],
        catch_exceptions=False,
    )


def records(result: Result) -> dict[str, dict[str, Any]]:
    return {r["Input"]: r for r in map(json.loads, result.stdout.splitlines())}


def drop(inbox: Path, name: str, seed: int, size: int = 3000) -> bytes:
    path = inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make_pdf(size, seed=seed)
    path.write_bytes(data)
    return data


def stored_tags(server: OrthancServer, instance_id: str) -> dict[str, str]:
    tags: dict[str, str] = server.get(f"/instances/{instance_id}/simplified-tags").json()
    return tags


def test_pattern_sidecar_done_folder_and_journal(orthanc: OrthancServer, tmp_path: Path) -> None:
    inbox, done, failed = tmp_path / "in", tmp_path / "done", tmp_path / "failed"
    first = drop(inbox, "WP-1_AW-1_consent form.pdf", 101)
    drop(inbox, "ward/WP-2_AW-2_report.pdf", 102)
    (inbox / "ward" / "WP-2_AW-2_report.json").write_text(
        '{"PatientName": "Doe^Jane", "AccessionNumber": "AW-2b"}', encoding="utf-8"
    )
    (inbox / "scan.pdf.part").write_bytes(b"%PDF-half")
    (inbox / ".hidden.pdf").write_bytes(b"%PDF-")
    log = tmp_path / "journal.jsonl"
    result = watch_once(
        orthanc,
        inbox,
        "--recursive",
        "--name-pattern",
        "{PatientID}_{AccessionNumber}_{*}.pdf",
        "--tag",
        "PatientName=Default^Name",
        "--done",
        str(done),
        "--failed",
        str(failed),
        "--log",
        str(log),
    )
    assert result.exit_code == 0, result.stderr
    found = records(result)
    assert set(found) == {"WP-1_AW-1_consent form.pdf", "ward/WP-2_AW-2_report.pdf"}
    one = found["WP-1_AW-1_consent form.pdf"]
    assert one["Status"] == "Success"
    assert one["Kind"] == "uploaded"
    assert one["Destination"] == str(done / "WP-1_AW-1_consent form.pdf")
    assert one["SHA256"] == hashlib.sha256(first).hexdigest()
    tags = stored_tags(orthanc, one["ID"])
    assert (tags["PatientID"], tags["AccessionNumber"], tags["PatientName"]) == (
        "WP-1",
        "AW-1",
        "Default^Name",
    )
    # The sidecar wins over the name and the command line; it moves with its PDF.
    two = found["ward/WP-2_AW-2_report.pdf"]
    tags = stored_tags(orthanc, two["ID"])
    assert (tags["PatientID"], tags["AccessionNumber"], tags["PatientName"]) == (
        "WP-2",
        "AW-2b",
        "Doe^Jane",
    )
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "done/WP-1_AW-1_consent form.pdf",
        "done/ward/WP-2_AW-2_report.json",
        "done/ward/WP-2_AW-2_report.pdf",
        "in/.hidden.pdf",
        "in/scan.pdf.part",
        "journal.jsonl",
    ]
    assert (done / "WP-1_AW-1_consent form.pdf").read_bytes() == first
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["Input"] for line in lines) == sorted(found)
    entry = next(line for line in lines if line["Input"] == "WP-1_AW-1_consent form.pdf")
    # The journal holds the --json records, timed to the millisecond.
    assert {k: v for k, v in entry.items() if k != "Time"} == {
        k: v for k, v in one.items() if k != "Time"
    }
    assert entry["Time"][:19] == one["Time"][:19]
    assert entry["Time"][19] == "."  # milliseconds
    assert entry["Kind"] == "uploaded"
    assert entry["StudyInstanceUID"] == tags_of_study(orthanc, one["ParentStudy"])
    assert entry["PatientID"] == "WP-1"
    assert "WP-1_AW-1_consent form.pdf -> " in result.stderr
    assert f"(Success); moved to {done / 'WP-1_AW-1_consent form.pdf'}" in result.stderr


def tags_of_study(server: OrthancServer, study_id: str) -> str:
    uid: str = server.get(f"/studies/{study_id}").json()["MainDicomTags"]["StudyInstanceUID"]
    return uid


def test_failures_go_to_failed_with_their_reason_and_set_the_exit_code(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    inbox, done, failed = tmp_path / "in", tmp_path / "done", tmp_path / "failed"
    drop(inbox, "RX-1_ok.pdf", 201)
    (inbox / "RX-2_broken.pdf").write_bytes(b"this is not a PDF at all")
    drop(inbox, "nomatch.pdf", 202)
    drop(inbox, "sub/RX-3_x.pdf", 203)
    result = watch_once(
        orthanc,
        inbox,
        "--recursive",
        "--name-regex",
        r"(?P<PatientID>RX-\d+)_.*\.pdf",
        "--done",
        str(done),
        "--failed",
        str(failed),
    )
    assert result.exit_code == 2, result.stderr
    found = records(result)
    assert {name: r["Kind"] for name, r in found.items()} == {
        "RX-1_ok.pdf": "uploaded",
        "RX-2_broken.pdf": "failed",
        "nomatch.pdf": "failed",
        "sub/RX-3_x.pdf": "uploaded",
    }
    assert found["RX-2_broken.pdf"]["ExitCode"] == 2
    assert (failed / "RX-2_broken.pdf").read_bytes() == b"this is not a PDF at all"
    reason = json.loads((failed / "RX-2_broken.pdf.error.json").read_text(encoding="utf-8"))
    # The file's --json record, with the error's class.
    assert reason == found["RX-2_broken.pdf"] | {"ErrorType": "NotAPdfError"}
    assert reason["Destination"] == str(failed / "RX-2_broken.pdf")
    assert reason["Kind"] == "failed"
    assert reason["Input"] == "RX-2_broken.pdf"
    assert reason["ExitCode"] == 2
    assert reason["ErrorType"] == "NotAPdfError"
    assert "RX-2_broken.pdf" in reason["Error"]
    assert reason["Error"] == found["RX-2_broken.pdf"]["Error"]
    reason = json.loads((failed / "nomatch.pdf.error.json").read_text(encoding="utf-8"))
    assert reason["Error"] == (
        r"nomatch.pdf does not match the name regex '(?P<PatientID>RX-\d+)_.*\.pdf'; "
        "rename it, or give its tags in a sidecar"
    )
    assert list(inbox.rglob("*.pdf")) == []
    assert "pdf2dcm: 4 files: 2 stored, 0 left in the inbox, 2 failed\n" in result.stderr

    # Without --failed a failing file stays, and is not tried again until it changes.
    (inbox / "RX-4_bad.pdf").write_bytes(b"nope")
    result = watch_once(orthanc, inbox, "--name-pattern", "{PatientID}_{*}.pdf", "--delete")
    assert result.exit_code == 2
    assert (inbox / "RX-4_bad.pdf").read_bytes() == b"nope"
    assert "; left in the inbox" in result.stderr


def test_selector_placeholders_attach_each_file_to_its_own_study(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    parents = {}
    for accession in ("SEL-A", "SEL-B"):
        parent = tmp_path / f"{accession}.pdf"
        parent.write_bytes(make_pdf(2500, seed=hash(accession) % 1000))
        tags = ["--tag", f"AccessionNumber={accession}", "--tag", f"PatientID=P-{accession}"]
        uploaded = CliRunner().invoke(
            cli, ["upload", str(parent), "--url", orthanc.url, "--json", *tags]
        )
        assert uploaded.exit_code == 0, uploaded.stderr
        parents[accession] = json.loads(uploaded.stdout)["ParentStudy"]
    inbox = tmp_path / "in"
    drop(inbox, "SEL-A_consent.pdf", 301)
    drop(inbox, "SEL-B_consent.pdf", 302)
    drop(inbox, "SEL-Z_consent.pdf", 303)
    result = watch_once(
        orthanc,
        inbox,
        "--name-pattern",
        "{AccessionNumber}_{*}.pdf",
        "--study",
        "AccessionNumber={AccessionNumber}",
        "--delete",
        "--failed",
        str(tmp_path / "failed"),
        # Not held: a file whose study is missing fails at once (see test_watch_hotfolder).
        "--hold-for",
        "0",
    )
    assert result.exit_code == 4, result.stderr
    found = records(result)
    assert found["SEL-A_consent.pdf"]["ParentStudy"] == parents["SEL-A"]
    assert found["SEL-B_consent.pdf"]["ParentStudy"] == parents["SEL-B"]
    assert found["SEL-A_consent.pdf"]["Destination"] == "deleted"
    assert stored_tags(orthanc, found["SEL-B_consent.pdf"]["ID"])["PatientID"] == "P-SEL-B"
    assert found["SEL-Z_consent.pdf"]["Error"] == (
        f"no study matches AccessionNumber=SEL-Z at {orthanc.url}"
    )
    assert sorted(p.name for p in (tmp_path / "failed").iterdir()) == [
        "SEL-Z_consent.pdf",
        "SEL-Z_consent.pdf.error.json",
    ]
    assert list(inbox.iterdir()) == []


def test_a_second_run_of_the_same_file_is_already_stored_and_a_name_clash_keeps_both(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    inbox, done = tmp_path / "in", tmp_path / "done"
    first = drop(inbox, "scan001.pdf", 401)
    result = watch_once(orthanc, inbox, "--tag", "PatientID=CLASH", "--done", str(done))
    assert records(result)["scan001.pdf"]["Status"] == "Success"
    # The same document again (a copy kept elsewhere): AlreadyStored, and it replaces itself.
    (inbox / "scan001.pdf").write_bytes(first)
    result = watch_once(orthanc, inbox, "--tag", "PatientID=CLASH", "--done", str(done))
    assert records(result)["scan001.pdf"]["Status"] == "AlreadyStored"
    assert sorted(p.name for p in done.iterdir()) == ["scan001.pdf"]
    # Tomorrow's scan001.pdf is another document: both are kept.
    second = drop(inbox, "scan001.pdf", 402)
    result = watch_once(orthanc, inbox, "--tag", "PatientID=CLASH", "--done", str(done))
    assert records(result)["scan001.pdf"]["Destination"] == str(done / "scan001.2.pdf")
    assert (done / "scan001.pdf").read_bytes() == first
    assert (done / "scan001.2.pdf").read_bytes() == second


def test_usage_errors(orthanc: OrthancServer, tmp_path: Path) -> None:
    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["watch", str(tmp_path), "--url", orthanc.url, *args])

    result = run()
    assert result.exit_code == 2
    assert "give --done DIR or --delete" in result.stderr
    result = run("--delete", "--name-pattern", "{Nope}.pdf")
    assert result.exit_code == 2
    assert "name pattern '{Nope}.pdf': unknown DICOM keyword 'Nope'" in result.stderr
    result = run("--delete", "--study", "AccessionNumber=1", "--patient", "PatientID=2")
    assert "give one of --study, --patient, not several" in result.stderr


def test_quiet_keeps_only_the_errors(orthanc: OrthancServer, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    drop(inbox, "Q-1.pdf", 601)
    (inbox / "Q-2.pdf").write_bytes(b"not a PDF")
    options = ["--once", "--settle", "0", "--tag", "PatientID=Q", "--delete"]
    result = CliRunner().invoke(cli, ["-q", "watch", str(inbox), "--url", orthanc.url, *options])
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("pdf2dcm: error: Q-2.pdf")
    assert line.endswith("; left in the inbox")


@pytest.mark.parametrize("method", ["create-dicom", "stow"])
def test_other_methods(orthanc: OrthancServer, tmp_path: Path, method: str) -> None:
    inbox = tmp_path / "in"
    drop(inbox, "M-1.pdf", 500 + len(method))
    result = watch_once(orthanc, inbox, "--via", method, "--tag", "PatientID=M-1", "--delete")
    assert result.exit_code == 0, result.stderr
    assert records(result)["M-1.pdf"]["Status"] == "Success"
    assert list(inbox.iterdir()) == []


@pytest.fixture(scope="module")
def hub(
    orthanc: OrthancServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OrthancServer]:
    """An Orthanc that knows the session's Orthanc as the peer 'archive'."""
    extra = {"OrthancPeers": {"archive": {"Url": orthanc.url}}}
    with OrthancServer(tmp_path_factory.mktemp("hub"), extra=extra) as server:
        yield server


def test_each_stored_file_is_forwarded_before_it_moves(
    orthanc: OrthancServer, hub: OrthancServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    drop(inbox, "F-1.pdf", 701)
    result = watch_once(
        hub, inbox, "--tag", "PatientID=FWD-1", "--delete", "--send-to-peer", "archive"
    )
    assert result.exit_code == 0, result.stderr
    record = records(result)["F-1.pdf"]
    job = record["Job"]
    assert f"; forwarded by job {job}; deleted" in result.stderr
    deadline = time.monotonic() + 30
    while hub.get(f"/jobs/{job}").json()["State"] not in ("Success", "Failure"):
        assert time.monotonic() < deadline, "the forwarding job did not end"
        time.sleep(0.1)
    assert hub.get(f"/jobs/{job}").json()["State"] == "Success"
    answer = requests.post(f"{orthanc.url}/tools/lookup", data=record["SOPInstanceUID"], timeout=30)
    assert [match["Type"] for match in answer.json()] == ["Instance"]

    drop(inbox, "F-2.pdf", 702)
    result = watch_once(hub, inbox, "--delete", "--send-to-modality", "nowhere")
    assert result.exit_code == 2
    assert f"{hub.url} knows no modality named 'nowhere'; known: none" in result.stderr
    assert (inbox / "F-2.pdf").exists()


def test_worklist_lookup_by_the_accession_number_in_the_name(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    from tests.integration.worklist import AE_TITLE, WorklistServer, procedure_dump

    with WorklistServer(tmp_path / "worklist") as worklist:
        worklist.add(
            "one",
            procedure_dump(
                accession="WW-A1",
                patient_id="WW-P1",
                patient_name="Scheduled^Sam",
                study_uid="1.2.826.0.1.3680043.10.200.71",
            ),
        )
        requests.put(
            f"{orthanc.url}/modalities/watchwl",
            json={"AET": AE_TITLE, "Host": "127.0.0.1", "Port": worklist.port},
            timeout=30,
        ).raise_for_status()
        inbox = tmp_path / "in"
        drop(inbox, "WW-A1_consent.pdf", 901)
        result = watch_once(
            orthanc,
            inbox,
            "--name-pattern",
            "{AccessionNumber}_{*}.pdf",
            "--worklist",
            "watchwl",
            "--study",
            "AccessionNumber={AccessionNumber}",
            "--delete",
        )
    assert result.exit_code == 0, result.stderr
    tags = stored_tags(orthanc, records(result)["WW-A1_consent.pdf"]["ID"])
    assert (tags["PatientID"], tags["PatientName"], tags["StudyInstanceUID"]) == (
        "WW-P1",
        "Scheduled^Sam",
        "1.2.826.0.1.3680043.10.200.71",
    )


def download(server: OrthancServer, instance_id: str, path: Path) -> Path:
    path.write_bytes(server.get(f"/instances/{instance_id}/file").content)
    return path


def series_numbers(server: OrthancServer, series_id: str) -> list[int]:
    instances = server.get(f"/series/{series_id}/instances").json()
    return sorted(int(i["MainDicomTags"]["InstanceNumber"]) for i in instances)


def test_series_from_numbers_after_the_server_across_runs_and_fails_a_conflict(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    first_pdf = tmp_path / "refs" / "a.pdf"
    first_pdf.parent.mkdir(parents=True, exist_ok=True)
    first_pdf.write_bytes(make_pdf(2000, seed=811))
    second_pdf = tmp_path / "refs" / "b.pdf"
    second_pdf.write_bytes(make_pdf(2000, seed=812))
    uploaded = CliRunner().invoke(
        cli,
        [
            *("upload", str(first_pdf), str(second_pdf), "--url", orthanc.url, "--json"),
            *("--same-series", "--concurrency", "1", "--tag", "PatientID=SF-1"),
        ],
        catch_exceptions=False,
    )
    assert uploaded.exit_code == 0, uploaded.stderr
    ids = [json.loads(line)["ID"] for line in uploaded.stdout.splitlines()]
    series = stored_series(orthanc, ids[0])
    assert series_numbers(orthanc, series) == [1, 2]
    # The reference file holds InstanceNumber 1; the server already holds 2.
    reference = download(orthanc, ids[0], tmp_path / "ref.dcm")
    inbox, done, failed = tmp_path / "in", tmp_path / "done", tmp_path / "failed"
    for index in range(3):
        drop(inbox, f"page-{index}.pdf", 820 + index)
    options = ("--series-from", str(reference), "--done", str(done), "--failed", str(failed))
    result = watch_once(orthanc, inbox, "--concurrency", "4", *options)
    assert result.exit_code == 0, result.stderr
    found = records(result)
    assert {r["ParentSeries"] for r in found.values()} == {series}
    assert series_numbers(orthanc, series) == [1, 2, 3, 4, 5]

    # A restart numbers from what the server holds; a file of another patient fails for good.
    drop(inbox, "a-next.pdf", 830)
    drop(inbox, "z-other.pdf", 831)
    (inbox / "z-other.json").write_text('{"PatientID": "SF-OTHER"}', encoding="utf-8")
    result = watch_once(orthanc, inbox, "--concurrency", "1", *options)
    assert result.exit_code == 2, result.stderr
    found = records(result)
    assert found["a-next.pdf"]["ParentSeries"] == series
    assert stored_tags(orthanc, found["a-next.pdf"]["ID"])["InstanceNumber"] == "6"
    assert series_numbers(orthanc, series) == [1, 2, 3, 4, 5, 6]
    reason = json.loads((failed / "z-other.pdf.error.json").read_text(encoding="utf-8"))
    assert reason["ErrorType"] == "IdentityConflictError"
    assert reason["ExitCode"] == 2
    assert reason["Error"] == found["z-other.pdf"]["Error"]
    assert sorted(p.name for p in failed.iterdir()) == [
        "z-other.json",
        "z-other.pdf",
        "z-other.pdf.error.json",
    ]
    assert list(inbox.iterdir()) == []


def stored_series(server: OrthancServer, instance_id: str) -> str:
    parent: str = server.get(f"/instances/{instance_id}").json()["ParentSeries"]
    return parent


def test_study_from_puts_every_file_in_the_reference_study_in_a_series_of_its_own(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    pdf = tmp_path / "ref.pdf"
    pdf.write_bytes(make_pdf(2000, seed=851))
    uploaded = CliRunner().invoke(
        cli,
        ["upload", str(pdf), "--url", orthanc.url, "--json", "--tag", "PatientID=STF-1"],
        catch_exceptions=False,
    )
    assert uploaded.exit_code == 0, uploaded.stderr
    stored = json.loads(uploaded.stdout)
    reference = download(orthanc, stored["ID"], tmp_path / "ref.dcm")
    inbox, failed = tmp_path / "in", tmp_path / "failed"
    drop(inbox, "one.pdf", 852)
    drop(inbox, "two.pdf", 853)
    drop(inbox, "three.pdf", 854)
    (inbox / "three.json").write_text('{"PatientID": "STF-OTHER"}', encoding="utf-8")
    result = watch_once(
        orthanc, inbox, "--study-from", str(reference), "--delete", "--failed", str(failed)
    )
    assert result.exit_code == 2, result.stderr
    found = records(result)
    assert found["one.pdf"]["ParentStudy"] == stored["ParentStudy"]
    assert found["two.pdf"]["ParentStudy"] == stored["ParentStudy"]
    series = {found["one.pdf"]["ParentSeries"], found["two.pdf"]["ParentSeries"]}
    assert len(series) == 2
    assert stored["ParentSeries"] not in series
    assert stored_tags(orthanc, found["two.pdf"]["ID"])["PatientID"] == "STF-1"
    assert found["three.pdf"]["Kind"] == "failed"
    reason = json.loads((failed / "three.pdf.error.json").read_text(encoding="utf-8"))
    assert reason["ErrorType"] == "IdentityConflictError"
    assert "STF-OTHER" in reason["Error"]
    assert list(inbox.iterdir()) == []


def test_same_series_run_twice_adds_only_the_new_files(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    inbox, done = tmp_path / "in", tmp_path / "done"
    first = drop(inbox, "b-1.pdf", 871)
    drop(inbox, "b-2.pdf", 872)
    options = ("--same-series", "--tag", "PatientID=SS-1", "--done", str(done))
    result = watch_once(orthanc, inbox, "--concurrency", "4", *options)
    assert result.exit_code == 0, result.stderr
    found = records(result)
    [series] = {r["ParentSeries"] for r in found.values()}
    assert series_numbers(orthanc, series) == [1, 2]
    # Later: a new file, and an old one dropped again (AlreadyStored: nothing added).
    drop(inbox, "a-3.pdf", 873)
    (inbox / "b-1.pdf").write_bytes(first)
    result = watch_once(orthanc, inbox, "--concurrency", "1", *options)
    assert result.exit_code == 0, result.stderr
    found = records(result)
    assert {name: r["Status"] for name, r in found.items()} == {
        "a-3.pdf": "Success",
        "b-1.pdf": "AlreadyStored",
    }
    assert found["a-3.pdf"]["ParentSeries"] == series
    assert series_numbers(orthanc, series) == [1, 2, 3]
    # Other tags name another series.
    drop(inbox, "c.pdf", 874)
    result = watch_once(orthanc, inbox, "--same-series", "--tag", "PatientID=SS-2", "--delete")
    assert result.exit_code == 0, result.stderr
    other = records(result)["c.pdf"]
    assert other["ParentSeries"] != series
    assert stored_tags(orthanc, other["ID"])["InstanceNumber"] == "1"


def test_title_names_every_document_unless_its_sidecar_gives_one(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    drop(inbox, "t-1.pdf", 891)
    drop(inbox, "t-2.pdf", 892)
    (inbox / "t-2.json").write_text('{"DocumentTitle": "Own title"}', encoding="utf-8")
    result = watch_once(
        orthanc, inbox, "--title", "Consent form", "--tag", "PatientID=TT-1", "--delete"
    )
    assert result.exit_code == 0, result.stderr
    found = records(result)
    assert stored_tags(orthanc, found["t-1.pdf"]["ID"])["DocumentTitle"] == "Consent form"
    assert stored_tags(orthanc, found["t-2.pdf"]["ID"])["DocumentTitle"] == "Own title"


def test_same_series_with_study_from_fills_one_new_series_of_the_reference_study(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    pdf = tmp_path / "ref.pdf"
    pdf.write_bytes(make_pdf(2000, seed=951))
    uploaded = CliRunner().invoke(
        cli,
        ["upload", str(pdf), "--url", orthanc.url, "--json", "--tag", "PatientID=SSF-1"],
        catch_exceptions=False,
    )
    assert uploaded.exit_code == 0, uploaded.stderr
    stored = json.loads(uploaded.stdout)
    reference = download(orthanc, stored["ID"], tmp_path / "ref.dcm")
    inbox = tmp_path / "in"
    for index in range(3):
        drop(inbox, f"s-{index}.pdf", 952 + index)
    result = watch_once(orthanc, inbox, "--study-from", str(reference), "--same-series", "--delete")
    assert result.exit_code == 0, result.stderr
    found = records(result)
    assert {r["ParentStudy"] for r in found.values()} == {stored["ParentStudy"]}
    [series] = {r["ParentSeries"] for r in found.values()}
    assert series != stored["ParentSeries"]
    assert series_numbers(orthanc, series) == [1, 2, 3]


def test_the_reference_s_warning_is_printed_once_and_its_values_are_copied(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    import pydicom

    pdf = tmp_path / "ref.pdf"
    pdf.write_bytes(make_pdf(2000, seed=971))
    uploaded = CliRunner().invoke(
        cli,
        ["upload", str(pdf), "--url", orthanc.url, "--json", "--tag", "PatientID=RW-1"],
        catch_exceptions=False,
    )
    assert uploaded.exit_code == 0, uploaded.stderr
    stored = json.loads(uploaded.stdout)
    reference = download(orthanc, stored["ID"], tmp_path / "ref.dcm")
    dataset = pydicom.dcmread(reference)
    if "SpecificCharacterSet" in dataset:
        del dataset.SpecificCharacterSet
    dataset[0x00100010].value = b"M\xfcller^Hans"  # Latin-1, undeclared
    dataset.save_as(reference)
    inbox = tmp_path / "in"
    drop(inbox, "w-1.pdf", 972)
    drop(inbox, "w-2.pdf", 973)
    result = watch_once(orthanc, inbox, "--series-from", str(reference), "--delete")
    assert result.exit_code == 0, result.stderr
    warning = (
        f"warning: {reference} declares no SpecificCharacterSet but PatientName holds "
        "non-ASCII bytes; decoded as Latin-1 (a guess)"
    )
    assert result.stderr.count(warning) == 1
    found = records(result)
    assert {r["ParentSeries"] for r in found.values()} == {stored["ParentSeries"]}
    assert stored_tags(orthanc, found["w-2.pdf"]["ID"])["PatientName"] == "Müller^Hans"
