"""pdf2dcm ls in the fast loop: a routing fake Orthanc, JSON through CliRunner, a table on a pty."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from pdf2dcm.cli import cli
from tests.fake_orthanc import FakeOrthanc, serving
from tests.pdfs import make_pdf
from tests.terminal import run_on_terminal

PDF_CLASS = b"1.2.840.10008.5.1.4.1.1.104.1"
PATIENT = "0946fcb6-cf12ab43-bad958c1-bf057ad5-0fc6f54c"
STUDY = "27f7126f-4f66fb14-03f4081b-f9341db2-53925988"
SERIES = (
    "11111111-4f66fb14-03f4081b-f9341db2-53925988",
    "22222222-4f66fb14-03f4081b-f9341db2-53925988",
)
PDFS = (
    "aaaaaaaa-4f66fb14-03f4081b-f9341db2-53925988",
    "bbbbbbbb-4f66fb14-03f4081b-f9341db2-53925988",
)
IMAGE = "cccccccc-4f66fb14-03f4081b-f9341db2-53925988"


def _routes() -> dict[tuple[str, str], bytes]:
    study = {
        "ID": STUDY,
        "ParentPatient": PATIENT,
        "MainDicomTags": {"StudyDate": "20260115", "AccessionNumber": "A123"},
        "PatientMainDicomTags": {"PatientID": "4711", "PatientName": "M?ller"},
        "Series": list(SERIES),
        "Type": "Study",
    }
    series = [
        {
            "ID": SERIES[0],
            "ParentStudy": STUDY,
            "MainDicomTags": {},
            "Instances": list(PDFS),
            "Type": "Series",
        },
        {
            "ID": SERIES[1],
            "ParentStudy": STUDY,
            "MainDicomTags": {},
            "Instances": [IMAGE],
            "Type": "Series",
        },
    ]
    routes: dict[tuple[str, str], bytes] = {
        ("POST", "/tools/find"): json.dumps(series).encode(),
        ("GET", f"/studies/{STUDY}"): json.dumps(study).encode(),
        ("GET", f"/instances/{IMAGE}/metadata/SopClassUid"): b"1.2.840.10008.5.1.4.1.1.7",
        ("GET", f"/series/{SERIES[0]}/instances"): json.dumps(
            [
                {
                    "ID": instance,
                    "ParentSeries": SERIES[0],
                    "MainDicomTags": {"SOPInstanceUID": f"1.2.3.{number}"},
                    "Type": "Instance",
                }
                for number, instance in enumerate(PDFS, start=1)
            ]
        ).encode(),
    }
    for number, instance in enumerate(PDFS, start=1):
        routes |= {
            ("GET", f"/instances/{instance}/metadata/SopClassUid"): PDF_CLASS,
            ("GET", f"/instances/{instance}/content/0042-0015"): (1000 * number).to_bytes(
                4, "little"
            ),
            ("GET", f"/instances/{instance}/file"): _stored(number),
        }
    return routes


def _stored(number: int) -> bytes:
    """The stored file of document ``number``, in Latin-1 as another writer might make it."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = PDF_CLASS.decode()
    ds.SOPInstanceUID = f"1.2.3.{number}"
    ds.PatientName = "Müller^Jürgen"
    ds.ContentDate = f"2026011{number}"
    ds.DocumentTitle = f"Consent {number}"
    ds.EncapsulatedDocument = make_pdf(1000 * number)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture
def fake() -> Iterator[FakeOrthanc]:
    with serving() as server:
        server.routes.update(_routes())
        yield server


def test_ls_json_lists_only_pdfs_newest_first_with_decoded_names(fake: FakeOrthanc) -> None:
    result = CliRunner().invoke(
        cli, ["ls", "--url", fake.url, "--patient", "PatientID=4711", "--since", "2026-01-01"]
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["ID"] for r in records] == [PDFS[1], PDFS[0]]
    assert records[0] == {
        "Kind": "document",
        "ID": PDFS[1],
        "ParentPatient": PATIENT,
        "ParentStudy": STUDY,
        "ParentSeries": SERIES[0],
        "SOPInstanceUID": "1.2.3.2",
        "PatientID": "4711",
        "PatientName": "Müller^Jürgen",
        "StudyDate": "20260115",
        "AccessionNumber": "A123",
        "DocumentTitle": "Consent 2",
        "ContentDate": "20260112",
        "Size": 2000,
    }
    find = json.loads(
        next(body for _method, path, body, _headers in fake.received if path == "/tools/find")
    )
    assert find["Level"] == "Series"
    assert find["Query"] == {"PatientID": "4711", "StudyDate": "20260101-"}
    # The image series is judged by its first instance's indexed SOP class, and no further.
    assert not [p for _m, p in fake.asked if p.startswith(f"/instances/{IMAGE}/content")]


def test_ls_title_filter_and_limit(fake: FakeOrthanc) -> None:
    result = CliRunner().invoke(
        cli, ["ls", "--url", fake.url, "--title", "CONSENT 1", "--limit", "5", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["ID"] for line in result.stdout.splitlines()] == [PDFS[0]]


def test_ls_draws_a_table_on_a_terminal(fake: FakeOrthanc) -> None:
    code, screen, err = run_on_terminal("ls", "--url", fake.url, columns=200)
    assert code == 0, err
    assert "PatientID" in screen
    assert "DocumentTitle" in screen
    assert "Müller^Jürgen" in screen
    assert PDFS[0] in screen
    assert "2.0 KiB" in screen
    assert err.strip() == "pdf2dcm: 2 documents"
