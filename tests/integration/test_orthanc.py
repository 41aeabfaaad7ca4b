"""upload and fetch against a real, private Orthanc: exact bytes, valid objects, safe failures."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from pdf2dcm.upload import UploadOptions, prepare_batch, upload_many
from tests.integration.oracles import dciodvfy_errors
from tests.integration.orthanc import OrthancServer
from tests.pdfs import make_pdf

METHODS = ["instances", "create-dicom", "stow"]
PDFS = {
    "odd": (3001, b"\n"),
    "even-eof-no-newline": (3000, b""),
    "ends-in-nul": (3000, b"\x00"),
    "even-ends-in-newline": (3000, b"\n"),
}


def run(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Result:
    return CliRunner(env=env).invoke(cli, list(args), input=stdin, catch_exceptions=False)


def upload_json(
    server: OrthancServer, *args: str, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    result = run("upload", "--url", server.url, "--json", *args, env=env)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def write_pdf(tmp_path: Path, name: str, size: int, tail: bytes = b"\n") -> Path:
    path = tmp_path / name
    path.write_bytes(make_pdf(size, tail=tail, seed=None))
    return path


def check_stored(server: OrthancServer, record: dict[str, Any], pdf: Path, tmp_path: Path) -> None:
    """Fetch gives the bytes back; the URL printed does too; the stored file is valid."""
    fetched = tmp_path / f"{record['ID']}.fetched.pdf"
    result = run("fetch", record["ID"], "--url", server.url, "-o", str(fetched))
    assert result.exit_code == 0, result.stderr
    assert fetched.read_bytes() == pdf.read_bytes()
    assert record["SHA256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert requests.get(record["URL"], timeout=30).content == pdf.read_bytes()
    stored = tmp_path / f"{record['ID']}.dcm"
    stored.write_bytes(server.get(f"/instances/{record['ID']}/file").content)
    assert dciodvfy_errors(stored) == []


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pdf_case", list(PDFS))
def test_round_trip_is_exact_and_valid(
    orthanc: OrthancServer, tmp_path: Path, method: str, pdf_case: str
) -> None:
    size, tail = PDFS[pdf_case]
    pdf = write_pdf(tmp_path, f"{pdf_case}.pdf", size, tail)
    [record] = upload_json(
        orthanc, str(pdf), "--via", method, "--tag", f"PatientID=RT-{method}-{pdf_case}"
    )
    assert record["Status"] == "Success"
    assert list(record) == [
        "Kind",
        "Input",
        "Status",
        "ID",
        "ParentPatient",
        "ParentStudy",
        "ParentSeries",
        "PatientID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "Size",
        "SHA256",
        "URL",
    ]
    assert record["Kind"] == "uploaded"
    assert record["Size"] == size
    check_stored(orthanc, record, pdf, tmp_path)
    tags = orthanc.get(f"/instances/{record['ID']}/simplified-tags").json()
    for keyword in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert tags[keyword] == record[keyword]
    assert tags["EncapsulatedDocumentLength"] == str(size)


@pytest.mark.parametrize("method", METHODS)
def test_names_read_back_exactly(orthanc: OrthancServer, tmp_path: Path, method: str) -> None:
    pdf = write_pdf(tmp_path, "names.pdf", 2001)
    for index, name in enumerate(["Doe^Jane", "Müller^Jürgen", "山田^太郎"]):
        [record] = upload_json(
            orthanc,
            str(pdf),
            "--via",
            method,
            "--tag",
            f"PatientName={name}",
            "--tag",
            f"PatientID=N-{method}-{index}",
            "--tag",
            "StudyDescription=Kardiologie Überweisung 紹介状",
        )
        tags = orthanc.get(f"/instances/{record['ID']}/simplified-tags").json()
        assert tags["PatientName"] == name
        assert tags["StudyDescription"] == "Kardiologie Überweisung 紹介状"
        check_stored(orthanc, record, pdf, tmp_path)


@pytest.mark.parametrize("method", METHODS)
def test_fifty_megabytes_round_trip(orthanc: OrthancServer, tmp_path: Path, method: str) -> None:
    pdf = write_pdf(tmp_path, "big.pdf", 50 * 1024 * 1024, b"")
    [record] = upload_json(orthanc, str(pdf), "--via", method, "--tag", f"PatientID=BIG-{method}")
    fetched = tmp_path / "big.out.pdf"
    result = run("fetch", record["ID"], "--url", orthanc.url, "-o", str(fetched))
    assert result.exit_code == 0, result.stderr
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == record["SHA256"]
    assert fetched.read_bytes() == pdf.read_bytes()


def test_orthanc_pdf_route_really_drops_a_byte(orthanc: OrthancServer, tmp_path: Path) -> None:
    """Why fetch does not use /pdf: guards the premise of the exact-fetch design."""
    pdf = write_pdf(tmp_path, "eof.pdf", 3000, b"")
    [record] = upload_json(orthanc, str(pdf), "--tag", "PatientID=PREMISE")
    assert orthanc.get(f"/instances/{record['ID']}/pdf").content == pdf.read_bytes()[:-1]


def test_reupload_reports_already_stored(orthanc: OrthancServer, tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path, "again.pdf", 2500)
    dicom = tmp_path / "again.dcm"
    assert run("encode", str(pdf), "-o", str(dicom), "--tag", "PatientID=AGAIN").exit_code == 0
    first = upload_json(orthanc, str(dicom))
    second = upload_json(orthanc, str(dicom))
    assert first[0]["Status"] == "Success"
    assert second[0]["Status"] == "AlreadyStored"
    assert first[0]["ID"] == second[0]["ID"]
    assert first[0]["SHA256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    again = upload_json(orthanc, str(pdf), "--tag", "PatientID=AGAIN2")
    assert upload_json(orthanc, str(pdf), "--tag", "PatientID=AGAIN2")[0] == {
        **again[0],
        "Status": "AlreadyStored",
    }


def test_encode_then_upload_in_a_pipeline(orthanc: OrthancServer, tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path, "pipe.pdf", 4001)
    encoded = run("encode", "-", "--tag", "PatientID=PIPE", stdin=pdf.read_bytes())
    assert encoded.exit_code == 0, encoded.stderr
    result = run("upload", "-", "--url", orthanc.url, "--json", stdin=encoded.stdout_bytes)
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    fetched = run("fetch", record["ID"], "--url", orthanc.url, "-o", "-")
    assert fetched.stdout_bytes == pdf.read_bytes()


def test_parent_study_keeps_patient_and_character_set(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    first_pdf = write_pdf(tmp_path, "first.pdf", 2000)
    [first] = upload_json(
        orthanc,
        str(first_pdf),
        "--tag",
        "PatientName=Müller^Jürgen",
        "--tag",
        "PatientID=PARENT-1",
        "--tag",
        "AccessionNumber=ACC-77",
    )
    addendum = write_pdf(tmp_path, "addendum.pdf", 2001)
    [added] = upload_json(orthanc, str(addendum), "--parent", first["ParentStudy"])
    assert added["ParentStudy"] == first["ParentStudy"]
    assert added["ParentPatient"] == first["ParentPatient"]
    assert added["ParentSeries"] != first["ParentSeries"]
    tags = orthanc.get(f"/instances/{added['ID']}/simplified-tags").json()
    assert tags["PatientName"] == "Müller^Jürgen"
    assert tags["AccessionNumber"] == "ACC-77"
    assert tags["SpecificCharacterSet"] == "ISO_IR 192"
    assert tags["SeriesNumber"] == "2"
    check_stored(orthanc, added, addendum, tmp_path)
    [in_series] = upload_json(
        orthanc, str(write_pdf(tmp_path, "third.pdf", 2002)), "--parent", first["ParentSeries"]
    )
    assert in_series["ParentSeries"] == first["ParentSeries"]
    tags = orthanc.get(f"/instances/{in_series['ID']}/simplified-tags").json()
    assert tags["InstanceNumber"] == "2"


def test_unknown_parent_and_unknown_instance(orthanc: OrthancServer, tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path, "orphan.pdf", 2000)
    unknown = "00000000-00000000-00000000-00000000-00000000"
    result = run("upload", str(pdf), "--url", orthanc.url, "--parent", "nope")
    assert result.exit_code == 2
    assert "'nope' is not an Orthanc ID" in result.stderr
    result = run("upload", str(pdf), "--url", orthanc.url, "--parent", unknown)
    assert result.exit_code == 4
    assert f"no patient, study or series with ID {unknown}" in result.stderr
    result = run("fetch", unknown, "--url", orthanc.url, "-o", str(tmp_path / "x.pdf"))
    assert result.exit_code == 4
    assert f"instance {unknown} not found on {orthanc.url}" in result.stderr
    assert not (tmp_path / "x.pdf").exists()


def test_fetch_refuses_an_instance_without_pdf(orthanc: OrthancServer, tmp_path: Path) -> None:
    made = requests.post(
        f"{orthanc.url}/tools/create-dicom",
        json={"Tags": {"PatientID": "NOTPDF", "Modality": "OT"}},
        timeout=30,
    ).json()
    result = run("fetch", made["ID"], "--url", orthanc.url, "-o", str(tmp_path / "x.pdf"))
    assert result.exit_code == 2
    assert "not a PDF document; nothing was fetched" in result.stderr
    assert not (tmp_path / "x.pdf").exists()


def test_fetch_study_uses_safe_names(orthanc: OrthancServer, tmp_path: Path) -> None:
    titles = ["../../etc/passwd", "a/b\\c", "..", ".hidden", "tab\there", "same", "same"]
    records = []
    for index, title in enumerate(titles):
        pdf = write_pdf(tmp_path, f"t{index}.pdf", 2000 + index)
        records += upload_json(
            orthanc,
            str(pdf),
            "--title",
            title,
            "--tag",
            "PatientID=SAFE",
            "--tag",
            "StudyInstanceUID=1.2.826.0.1.99.1",
        )
    outdir = tmp_path / "out"
    result = run(
        "fetch",
        "--study",
        records[0]["ParentStudy"],
        "--url",
        orthanc.url,
        "-d",
        str(outdir),
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    written = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(written) == len(titles)
    for item in written:
        path = Path(item["Output"])
        assert path.parent == outdir
        assert path.name.endswith(".pdf")
        assert not path.name.startswith(".")
    assert sorted(p.name for p in outdir.iterdir()) == sorted(
        Path(i["Output"]).name for i in written
    )
    by_id = {r["ID"]: r["SHA256"] for r in records}
    assert all(by_id[item["ID"]] == item["SHA256"] for item in written)
    assert list(tmp_path.parent.glob("passwd")) == []


def test_batch_with_bad_files_reports_each_and_fails(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    good = write_pdf(tmp_path, "good.pdf", 2000)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"GIF89a not a pdf")
    later = write_pdf(tmp_path, "later.pdf", 2001)
    result = run(
        "upload",
        str(good),
        str(bad),
        str(later),
        "--url",
        orthanc.url,
        "--json",
        "--tag",
        "PatientID=BATCH",
    )
    assert result.exit_code == 2
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["Kind"], r["Input"]) for r in records] == [
        ("uploaded", str(good)),
        ("failed", str(bad)),
        ("uploaded", str(later)),
    ]
    assert records[1]["ExitCode"] == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"pdf2dcm: error: {records[1]['Error']}"
    assert lines[0] == (
        f"pdf2dcm: error: {bad} is not a PDF (it starts with b'GIF89a n', not %PDF-); "
        "give a PDF file"
    )
    assert re.fullmatch(r"pdf2dcm: 3 files: 2 stored, 1 failed in \d+\.\d s", lines[1])
    assert len(lines) == 2


def test_directory_input_with_concurrency(orthanc: OrthancServer, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    (folder / "sub").mkdir(parents=True)
    pdfs = [write_pdf(folder, f"d{i}.pdf", 2000 + i) for i in range(6)]
    pdfs.append(write_pdf(folder / "sub", "deep.pdf", 2100))
    records = upload_json(
        orthanc,
        str(folder),
        "--recursive",
        "--concurrency",
        "4",
        "--same-series",
        "--tag",
        "PatientID=DIR",
    )
    assert [r["Input"] for r in records] == sorted(str(p) for p in pdfs)
    assert len({r["ParentSeries"] for r in records}) == 1
    numbers = sorted(
        int(orthanc.get(f"/instances/{r['ID']}/simplified-tags").json()["InstanceNumber"])
        for r in records
    )
    assert numbers == list(range(1, 8))


def test_server_killed_mid_batch_then_rerun_completes_without_duplicates(
    tmp_path: Path,
) -> None:
    with OrthancServer(tmp_path / "server") as server:
        sources = [str(write_pdf(tmp_path, f"k{i}.pdf", 3000 + i)) for i in range(6)]
        settings = resolve_settings(url=server.url, retries=1)
        options = UploadOptions(tags={0x00100020: "KILL"})
        outcomes = []
        with OrthancClient(settings, sleep=lambda _s: None) as client:
            batch = prepare_batch(client, sources, [{}] * 6, options)
            for outcome in upload_many(client, batch, sources):
                outcomes.append(outcome)
                if len(outcomes) == 2:
                    server.kill()
        assert [o.error is None for o in outcomes[:2]] == [True, True]
        assert all(o.error is not None for o in outcomes[3:])
        server.start()
        assert server.instance_count() in (2, 3)
        args = ["upload", *sources, "--url", server.url, "--json", "--tag", "PatientID=KILL"]
        result = run(*args)
        assert result.exit_code == 0, result.stderr
        statuses = [json.loads(line)["Status"] for line in result.stdout.splitlines()]
        assert statuses[:2] == ["AlreadyStored", "AlreadyStored"]
        assert statuses[3:] == ["Success"] * 3
        assert server.instance_count() == 6


def test_killed_batch_reports_unreachable_server(tmp_path: Path) -> None:
    server = OrthancServer(tmp_path / "server")
    server.start()
    url = server.url
    server.kill()
    pdfs = [str(write_pdf(tmp_path, f"u{i}.pdf", 2000 + i)) for i in range(3)]
    result = run("upload", *pdfs, "--url", url, "--tag", "PatientID=X", "--concurrency", "1")
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert (
        lines[0]
        == f"pdf2dcm: error: cannot reach {url}: connection refused; is Orthanc running there?"
    )
    assert lines[1:3] == [
        f"pdf2dcm: error: {pdfs[1]}: not attempted: the batch stopped at an earlier error",
        f"pdf2dcm: error: {pdfs[2]}: not attempted: the batch stopped at an earlier error",
    ]
    assert re.fullmatch(r"pdf2dcm: 3 files: 1 failed, 2 not attempted in \d+\.\d s", lines[3])


def test_missing_patient_id_is_warned_once(orthanc: OrthancServer, tmp_path: Path) -> None:
    pdfs = [str(write_pdf(tmp_path, f"np{i}.pdf", 2000 + i)) for i in range(2)]
    result = run("upload", *pdfs, "--url", orthanc.url, "--tag", "PatientName=Nobody^Known")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "pdf2dcm: warning: no PatientID given; an archive such as Orthanc files every such "
        "document under one "
        "patient; add --tag PatientID=..."
    )
    assert re.fullmatch(r"pdf2dcm: 2 files: 2 stored, 0 failed in \d+\.\d s", lines[1])
    assert len(lines) == 2


def test_an_unknown_forwarding_target_is_refused_before_anything_is_sent(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    pdf = write_pdf(tmp_path, "f.pdf", 2001)
    before = orthanc.instance_count()
    for flag, kind in (("--send-to-modality", "modality"), ("--send-to-peer", "peer")):
        result = run(
            "upload", str(pdf), "--url", orthanc.url, "--tag", "PatientID=FWD", flag, "nosuch"
        )
        assert result.exit_code == 2, result.stderr
        assert f"knows no {kind} named 'nosuch'; known: " in result.stderr
    assert orthanc.instance_count() == before


def test_a_directory_contributes_pdfs_and_dicom_files(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    write_pdf(folder, "a.pdf", 2001)
    write_pdf(folder / "sub", "deep.pdf", 2003)
    (folder / ".b.pdf.part").write_bytes(b"%PDF-1.4 half")
    encoded = run(
        "encode",
        str(write_pdf(tmp_path, "c.pdf", 2005)),
        "--tag",
        "PatientID=DIR",
        "-o",
        str(folder / "c.dcm"),
    )
    assert encoded.exit_code == 0, encoded.stderr
    # Tags apply to PDFs only; a DICOM file is sent unchanged, so the batch gives none.
    records = upload_json(orthanc, str(folder))
    assert sorted(Path(r["Input"]).name for r in records) == ["a.pdf", "c.dcm"]
    result = run("upload", str(folder), "--url", orthanc.url)
    assert "subdirectories were not looked in; add --recursive" in result.stderr
    deep = upload_json(orthanc, str(folder), "--recursive")
    assert sorted(Path(r["Input"]).name for r in deep) == ["a.pdf", "c.dcm", "deep.pdf"]


def test_dry_run_plans_exactly_what_the_upload_then_stores(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    pdf = write_pdf(tmp_path, "plan.pdf", 2001)
    before = orthanc.instance_count()
    planned = run("upload", str(pdf), "--url", orthanc.url, "--tag", "PatientID=PLAN", "--dry-run")
    assert planned.exit_code == 0, planned.stderr
    [plan] = [json.loads(line) for line in planned.stdout.splitlines()]
    assert plan["Input"] == str(pdf)
    assert plan["Tags"]["PatientID"] == "PLAN"
    assert plan["Tags"]["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.104.1"
    assert "EncapsulatedDocument" not in plan["Tags"]
    assert orthanc.instance_count() == before
    [record] = upload_json(orthanc, str(pdf), "--tag", "PatientID=PLAN")
    assert record["SOPInstanceUID"] == plan["Tags"]["SOPInstanceUID"]
    stored = orthanc.get(f"/instances/{record['ID']}/simplified-tags").json()
    assert stored["StudyInstanceUID"] == plan["Tags"]["StudyInstanceUID"]
    assert stored["SeriesInstanceUID"] == plan["Tags"]["SeriesInstanceUID"]
    # A refusal shows in a dry run too, and still nothing is sent.
    refused = run(
        "upload",
        str(pdf),
        "--url",
        orthanc.url,
        "--parent",
        record["ParentStudy"],
        "--tag",
        "PatientID=OTHER",
        "--dry-run",
    )
    assert refused.exit_code == 2
    assert orthanc.instance_count() == before + 1


def test_strict_refuses_a_document_without_patient_id(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    pdf = write_pdf(tmp_path, "anon.pdf", 2001)
    before = orthanc.instance_count()
    result = run("upload", str(pdf), "--url", orthanc.url, "--strict")
    assert result.exit_code == 2
    assert "no PatientID given" in result.stderr
    assert "refused in strict mode" in result.stderr
    assert orthanc.instance_count() == before
