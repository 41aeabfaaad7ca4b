"""``fetch -d`` against a real Orthanc: names too long for the file system, failures per file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.integration.orthanc import OrthancServer
from tests.pdfs import make_pdf

WIDE = "\U00020000"
TITLE = WIDE * 76
"""312 bytes of UTF-8 in the file name with its prefix: more than any file system allows."""


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ORTHANC_URL", "ORTHANC_USERNAME", "ORTHANC_PASSWORD", "ORTHANC_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def upload(server: OrthancServer, path: Path, *options: str) -> dict[str, str]:
    result = run("upload", str(path), "--url", server.url, "--json", "--title", TITLE, *options)
    assert result.exit_code == 0, result.stderr
    record: dict[str, str] = json.loads(result.stdout)
    return record


@pytest.fixture
def study(orthanc: OrthancServer, tmp_path: Path) -> tuple[str, list[bytes]]:
    documents = [make_pdf(3000 + n, seed=None) for n in range(3)]
    paths = []
    for number, document in enumerate(documents):
        path = tmp_path / f"doc{number}.pdf"
        path.write_bytes(document)
        paths.append(path)
    first = upload(orthanc, paths[0], "--tag", f"PatientID=LONGNAME-{tmp_path.name[-12:]}")
    for path in paths[1:]:
        upload(orthanc, path, "--parent", first["ParentSeries"])
    return first["ParentStudy"], documents


def test_names_too_long_are_cut_to_fit(
    orthanc: OrthancServer, study: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    study_id, documents = study
    out = tmp_path / "out"
    result = run("fetch", "--study", study_id, "-d", str(out), "--url", orthanc.url, "--json")
    assert result.exit_code == 0, result.stderr
    names = sorted(path.name for path in out.iterdir())
    assert len(names) == 3
    assert all(len(name.encode()) <= 255 - 16 for name in names)
    assert all(name.endswith(".pdf") and WIDE * 50 in name for name in names)
    assert sorted(path.read_bytes() for path in out.iterdir()) == sorted(documents)


def test_one_file_failing_does_not_stop_the_others(
    orthanc: OrthancServer, study: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    study_id, documents = study
    out = tmp_path / "out"
    first = run("fetch", "--study", study_id, "-d", str(out), "--url", orthanc.url)
    assert first.exit_code == 0, first.stderr
    names = sorted(path.name for path in out.iterdir())
    (out / names[0]).write_bytes(b"mine")
    for name in names[1:]:
        (out / name).unlink()
    again = run("fetch", "--study", study_id, "-d", str(out), "--url", orthanc.url)
    assert again.exit_code == 2
    assert f"{out / names[0]} already exists" in again.stderr
    assert (out / names[0]).read_bytes() == b"mine"
    assert sorted(path.name for path in out.iterdir()) == names
    fetched = {(out / name).read_bytes() for name in names[1:]}
    assert len(fetched) == 2
    assert fetched <= set(documents)
