"""Per-file tags in upload and encode batches: manifests, file lists, name patterns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.integration.orthanc import OrthancServer
from tests.pdfs import make_pdf


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def write(folder: Path, name: str, seed: int) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_pdf(2500, seed=seed))
    return path


def tags_of(server: OrthancServer, record: dict[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = server.get(f"/instances/{record['ID']}/simplified-tags").json()
    return tags


def test_upload_manifest_csv_and_jsonl(orthanc: OrthancServer, tmp_path: Path) -> None:
    write(tmp_path / "m", "a.pdf", 801)
    write(tmp_path / "m", "sub/b.pdf", 802)
    manifest = tmp_path / "m" / "list.csv"
    manifest.write_text("file,PatientID,PatientName\na.pdf,MF-1,One^A\nsub/b.pdf,MF-2,\n", "utf-8")
    result = run("upload", "--url", orthanc.url, "--json", "--manifest", str(manifest))
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [tags_of(orthanc, r)["PatientID"] for r in records] == ["MF-1", "MF-2"]
    assert tags_of(orthanc, records[0])["PatientName"] == "One^A"
    lines = tmp_path / "m" / "list.jsonl"
    row = {"file": "a.pdf", "tags": {"PatientID": "MF-1", "PatientName": "One^A"}}
    lines.write_text(json.dumps(row) + "\n", "utf-8")
    result = run("upload", "--url", orthanc.url, "--json", "--manifest", str(lines))
    assert json.loads(result.stdout)["Status"] == "AlreadyStored"


def test_a_bad_manifest_row_stops_before_anything_is_sent(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    write(tmp_path, "a.pdf", 811)
    manifest = tmp_path / "list.csv"
    manifest.write_text("file,StudyDate\na.pdf,20260101\na.pdf,yesterday\n", "utf-8")
    before = orthanc.instance_count()
    result = run("upload", "--url", orthanc.url, "--manifest", str(manifest))
    assert result.exit_code == 2
    assert f"manifest {manifest} row 3: StudyDate (0008,0020)" in result.stderr
    assert orthanc.instance_count() == before


def test_upload_files_from_nul_list_with_a_name_pattern(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    names = [write(tmp_path, "NP-1_A_two\nlines.pdf", 821), write(tmp_path, "NP-2_B_.pdf", 822)]
    listing = b"\0".join(str(p).encode() for p in names) + b"\0"
    result = run(
        "upload",
        "--url",
        orthanc.url,
        "--json",
        "--files-from",
        "-",
        "-0",
        "--name-pattern",
        "{PatientID}_{AccessionNumber}_{*}.pdf",
        stdin=listing,
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [
        (tags_of(orthanc, r)["PatientID"], tags_of(orthanc, r)["AccessionNumber"]) for r in records
    ] == [
        ("NP-1", "A"),
        ("NP-2", "B"),
    ]


def test_upload_name_regex_refuses_a_batch_with_names_that_do_not_fit(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    write(tmp_path, "RG-1.pdf", 831)
    write(tmp_path, "other.pdf", 832)
    before = orthanc.instance_count()
    result = run(
        "upload", "--url", orthanc.url, str(tmp_path), "--name-regex", r"(?P<PatientID>RG-\d+)\.pdf"
    )
    assert result.exit_code == 2
    assert "other.pdf does not match the name regex" in result.stderr
    assert orthanc.instance_count() == before


def test_encode_files_from_and_name_pattern(tmp_path: Path) -> None:
    first, second = write(tmp_path, "4711_x.pdf", 841), write(tmp_path, "4712_y.pdf", 842)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{first}\n{second}\n", "utf-8")
    out = tmp_path / "out"
    result = run(
        "encode",
        "--files-from",
        str(listing),
        "--name-pattern",
        "{PatientID}_{*}.pdf",
        "-d",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    assert pydicom.dcmread(out / "4711_x.dcm").PatientID == "4711"
    assert pydicom.dcmread(out / "4712_y.dcm").PatientID == "4712"
    result = run("encode", "-0", str(first))
    assert result.exit_code == 2
    assert "-0/--null goes with --files-from" in result.stderr
