"""pdf2dcm show on files: JSON with every attribute, the PDF's size and hash, a table on a tty."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from pdf2dcm.errors import NotEncapsulatedPdfError
from pdf2dcm.show import is_instance_id, show_file
from tests.pdfs import make_pdf
from tests.terminal import run_on_terminal

INSTANCE = "3e4024bc-a395a1e3-54254769-da9a9d72-b00f8968"


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


@pytest.fixture
def encoded(tmp_path: Path) -> tuple[Path, bytes]:
    pdf = make_pdf(5001)
    source = tmp_path / "report.pdf"
    source.write_bytes(pdf)
    target = tmp_path / "report.dcm"
    result = run(
        "encode",
        str(source),
        "-o",
        str(target),
        "--tag",
        "PatientName=Müller^Jürgen",
        "--tag",
        "PatientID=P-7",
        "--tag",
        "AccessionNumber=A-1",
        "--title",
        "Befund",
    )
    assert result.exit_code == 0, result.stderr
    return target, pdf


def test_json_holds_every_group_and_the_pdfs_hash(encoded: tuple[Path, bytes]) -> None:
    target, pdf = encoded
    result = run("show", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert list(record) == ["Kind", "Input", "Patient", "Study", "Series", "Instance", "Document"]
    assert record["Kind"] == "object"
    assert record["Input"] == str(target)
    assert record["Patient"]["PatientName"] == "Müller^Jürgen"
    assert record["Patient"]["PatientID"] == "P-7"
    assert record["Patient"]["IssuerOfPatientID"] is None
    assert record["Study"]["AccessionNumber"] == "A-1"
    assert record["Instance"]["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.104.1"
    # Chosen by the encoder for the non-ASCII name, and used to decode it here.
    assert record["Instance"]["SpecificCharacterSet"] in ("ISO_IR 100", "ISO_IR 192")
    assert record["Series"]["Modality"] == "DOC"
    assert record["Document"] == {
        "DocumentTitle": "Befund",
        "MIMETypeOfEncapsulatedDocument": "application/pdf",
        "Size": len(pdf),
        "SHA256": hashlib.sha256(pdf).hexdigest(),
    }
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.dcm", "report.pdf"]


def test_stdin_gives_the_same_record(encoded: tuple[Path, bytes]) -> None:
    target, _pdf = encoded
    from_file = json.loads(run("show", str(target)).stdout)
    from_pipe = json.loads(run("show", "-", stdin=target.read_bytes()).stdout)
    assert from_pipe.pop("Input") == "-"
    from_file.pop("Input")
    assert from_pipe == from_file


def test_a_file_that_is_not_a_pdf_object_is_refused(tmp_path: Path) -> None:
    pdf = tmp_path / "plain.pdf"
    pdf.write_bytes(make_pdf(800))
    result = run("show", str(pdf))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"pdf2dcm: error: {pdf} is not a DICOM file (no DICM prefix after the preamble); give a "
        ".dcm file\n"
    )


def test_a_missing_name_that_is_no_instance_id_is_a_missing_file() -> None:
    result = run("show", "nothere.dcm")
    assert result.exit_code == 2
    assert result.stderr == "pdf2dcm: error: nothere.dcm: no such file; check the path\n"


def test_instance_ids_are_told_from_file_names() -> None:
    assert is_instance_id(INSTANCE)
    assert not is_instance_id(INSTANCE.upper())
    assert not is_instance_id("report.dcm")


def test_the_library_refuses_a_dicom_file_without_a_pdf(tmp_path: Path) -> None:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3"
    ds.PatientID = "X"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / "image.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    with pytest.raises(NotEncapsulatedPdfError):
        show_file(path)


def test_a_table_on_a_terminal(encoded: tuple[Path, bytes]) -> None:
    target, pdf = encoded
    code, screen, err = run_on_terminal("show", str(target))
    assert code == 0, err
    assert "Müller^Jürgen" in screen
    assert "MIMETypeOfEncapsulatedDocument" in screen
    assert f"{len(pdf)} bytes (4.9 KiB)" in screen
    assert hashlib.sha256(pdf).hexdigest() in screen
    assert "{" not in screen
