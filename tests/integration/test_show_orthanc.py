"""pdf2dcm show of an instance on a real Orthanc: the same facts as the file that was sent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.integration.orthanc import OrthancServer
from tests.pdfs import make_pdf

pytestmark = pytest.mark.orthanc

MISSING = "00000000-00000000-00000000-00000000-00000000"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_show_of_an_instance_matches_show_of_the_file(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    pdf = make_pdf(70_001, seed=None)
    source = tmp_path / "sent.pdf"
    source.write_bytes(pdf)
    encoded = tmp_path / "sent.dcm"
    made = run(
        "encode",
        str(source),
        "-o",
        str(encoded),
        "--tag",
        "PatientName=Größe^Anna",
        "--tag",
        "PatientID=SHOW-1",
        "--title",
        "Arztbrief",
    )
    assert made.exit_code == 0, made.stderr
    sent = run("upload", str(encoded), "--url", orthanc.url, "--json")
    assert sent.exit_code == 0, sent.stderr
    instance = json.loads(sent.stdout.splitlines()[0])["ID"]

    on_server = run("show", instance, "--url", orthanc.url)
    assert on_server.exit_code == 0, on_server.stderr
    from_server = json.loads(on_server.stdout)
    from_file = json.loads(run("show", str(encoded)).stdout)
    assert from_server.pop("ID") == instance
    assert from_file.pop("Input") == str(encoded)
    assert from_server == from_file
    assert from_server["Document"]["SHA256"] == hashlib.sha256(pdf).hexdigest()
    assert from_server["Document"]["Size"] == len(pdf)
    assert from_server["Patient"]["PatientName"] == "Größe^Anna"
    assert from_server["Document"]["MIMETypeOfEncapsulatedDocument"] == "application/pdf"


def test_show_of_an_unknown_instance_exits_4(orthanc: OrthancServer) -> None:
    result = run("show", MISSING, "--url", orthanc.url)
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.startswith("pdf2dcm: error: ")
    assert MISSING in result.stderr
