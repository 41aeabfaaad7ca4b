"""The differential test of the planning stage: ``encode --dry-run``, ``upload --dry-run`` and
``watch --dry-run --once`` plan the same inputs with the same options into the same attributes.

Only what README's "One plan" section names may differ: ``encode`` gives each run new UIDs,
``upload`` and ``watch`` derive them from the PDF and its tags (so that a re-run is
AlreadyStored), the creation time is the moment each document is planned, and ``watch``
gives the numbers of one series in the order its workers take the files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pdf2dcm.cli import cli
from tests.fake_orthanc import FakeOrthanc, serving
from tests.pdfs import make_pdf, titled_pdf

MAY_DIFFER = {
    "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "InstanceCreationDate", "InstanceCreationTime", "ContentDate", "ContentTime",
    "AcquisitionDateTime", "StudyDate", "StudyTime", "InstanceNumber",
}  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeOrthanc]:
    with serving() as server:
        yield server


def planned(*args: str) -> dict[str, dict[str, Any]]:
    result = CliRunner().invoke(cli, [*args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["Kind"] for r in records} == {"planned"}
    return {Path(r["Input"]).name: r["Tags"] for r in records}


@pytest.mark.parametrize(
    "options",
    [
        ["--tag", "PatientID=D17", "--tag", "PatientName=Müller^Jürgen"],
        ["--tag", "PatientID=D17", "--same-series", "--conversion-type", "SD"],
        ["--tag", "PatientID=D17", "--tag", "DocumentTitle=Befund", "--tag", "Modality=OT"],
    ],
    ids=["names", "same-series", "given-title"],
)
def test_encode_upload_and_watch_plan_the_same_attributes(
    fake: FakeOrthanc, tmp_path: Path, options: list[str]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "consent-0042.pdf").write_bytes(make_pdf(2400, seed=17))
    (inbox / "titled.pdf").write_bytes(titled_pdf(b"/Title (Aufkl\\344rung)"))
    files = sorted(str(p) for p in inbox.iterdir())
    copy = tmp_path / "copy"
    shutil.copytree(inbox, copy)
    encoded = planned("encode", *files, "-d", str(tmp_path / "out"), *options)
    uploaded = planned("upload", *files, "--url", fake.url, *options)
    watched = planned("watch", str(copy), "--url", fake.url, "--once", "--settle", "0", *options)
    assert (
        sorted(encoded)
        == sorted(uploaded)
        == sorted(watched)
        == sorted(Path(f).name for f in files)
    )
    for name in encoded:
        kept = {k: v for k, v in encoded[name].items() if k not in MAY_DIFFER}
        assert kept == {k: v for k, v in uploaded[name].items() if k not in MAY_DIFFER}, name
        assert kept == {k: v for k, v in watched[name].items() if k not in MAY_DIFFER}, name
        assert set(encoded[name]) == set(uploaded[name]) == set(watched[name])
    # watch numbers files in the order its workers take them; the numbers are the same.
    for path in (uploaded, watched):
        assert sorted(tags.get("InstanceNumber", "") for tags in path.values()) == sorted(
            tags.get("InstanceNumber", "") for tags in encoded.values()
        )
    assert encoded["consent-0042.pdf"]["DocumentTitle"] == (
        "Befund" if "DocumentTitle=Befund" in options else "consent-0042"
    )
    assert sorted(p.name for p in copy.iterdir()) == sorted(Path(f).name for f in files)
    assert fake.instances == {}


def test_watch_dry_run_moves_no_failed_file(fake: FakeOrthanc, tmp_path: Path) -> None:
    inbox, failed = tmp_path / "inbox", tmp_path / "failed"
    inbox.mkdir()
    (inbox / "x.pdf").write_bytes(b"junk, not a PDF\n")
    (inbox / "a.pdf").write_bytes(make_pdf(2400, seed=19))
    args = ["watch", str(inbox), "--url", fake.url, "--once", "--settle", "0", "--dry-run"]
    result = CliRunner().invoke(cli, [*args, "--failed", str(failed), "--strict"])
    assert result.exit_code == 2, result.stderr
    assert sorted(p.name for p in inbox.iterdir()) == ["a.pdf", "x.pdf"]
    assert not failed.exists() or list(failed.iterdir()) == []
    assert fake.instances == {}
