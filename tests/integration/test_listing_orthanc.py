"""ls against a real Orthanc: how many requests a limited listing makes, and that every row
shows what pydicom reads from the stored file, in every character set."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from pdf2dcm.listing import ENCAPSULATED_PDF_SOP_CLASS, READ_AHEAD, list_documents
from pdf2dcm.transport import Response, Transport
from tests.integration.orthanc import OrthancServer
from tests.integration.test_orthanc import run
from tests.pdfs import make_pdf

TODAY = dt.date.today()
ROOT = "1.2.826.0.1.3680043.10.900"
NAMES = (
    ("ISO_IR 100", "Müller^Jürgen", "Einverständnis"),
    ("ISO_IR 192", "Gößmann^Zoë=山田^太郎", "Aufklärung \u2013 Koloskopie"),
    ("ISO 2022 IR 6\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎", "同意書"),
    ("", "Smith^John", "Consent"),
)


def _day(days_ago: int) -> str:
    return (TODAY - dt.timedelta(days=days_ago)).strftime("%Y%m%d")


def _dicom(
    number: int, study_date: str, charset: str, name: str, title: str, **extra: Any
) -> bytes:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    ds.SOPClassUID = extra.pop("SOPClassUID", ENCAPSULATED_PDF_SOP_CLASS)
    ds.SOPInstanceUID = f"{ROOT}.{number}.1"
    ds.StudyInstanceUID = extra.pop("StudyInstanceUID", f"{ROOT}.{number}")
    ds.SeriesInstanceUID = extra.pop("SeriesInstanceUID", f"{ROOT}.{number}.2")
    ds.PatientID = f"LS{number % 7}"
    ds.PatientName = name
    if study_date:
        ds.StudyDate = study_date
    ds.ContentDate = study_date or "20200101"
    ds.Modality = "DOC"
    if ds.SOPClassUID == ENCAPSULATED_PDF_SOP_CLASS:
        pdf = make_pdf(1000 + number, seed=number)
        ds.DocumentTitle = title
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.EncapsulatedDocument = pdf
        ds.EncapsulatedDocumentLength = len(pdf)
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """40 documents a day apart in four character sets, a document inside an image series
    (after the image), and one in a study without a StudyDate."""
    with OrthancServer(tmp_path_factory.mktemp("listing")) as server:
        bodies = [_dicom(number, _day(number), *NAMES[number % len(NAMES)]) for number in range(40)]
        image_series = {"StudyInstanceUID": f"{ROOT}.500", "SeriesInstanceUID": f"{ROOT}.500.2"}
        bodies.append(
            _dicom(
                500,
                _day(2),
                "",
                "Image^Only",
                "",
                SOPClassUID="1.2.840.10008.5.1.4.1.1.7",
                **image_series,
            )
        )
        bodies.append(
            _dicom(501, _day(2), "ISO_IR 100", "Bild^Serie", "In der Bildserie", **image_series)
        )
        bodies.append(_dicom(502, "", "ISO_IR 192", "Ohne^Datum", "undatiert"))
        for body in bodies:
            requests.post(f"{server.url}/instances", data=body, timeout=30).raise_for_status()
        yield server


class _Counting(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.paths.append(f"{method} {url}")
        return super().request(method, url, **kwargs)


def _client(server: OrthancServer, transport: Transport) -> OrthancClient:
    return OrthancClient(resolve_settings(url=server.url), transport=transport)


def test_a_limited_listing_reads_about_what_it_shows(archive: OrthancServer) -> None:
    session = _Counting()
    with _client(archive, session) as client:
        documents = list_documents(client).documents()
        first = list(itertools.islice(documents, 5))
        documents.close()
    assert [d.study_date for d in first] == [_day(n) for n in (0, 1, 2, 2, 3)]
    assert "In der Bildserie" in {d.document_title for d in first}
    finds = [p for p in session.paths if p.endswith("/tools/find")]
    assert len(finds) == 2
    assert not [p for p in session.paths if p.endswith("/file")]
    assert len(session.paths) <= len(finds) + 5 + READ_AHEAD


def test_every_row_is_what_pydicom_reads_from_the_stored_file(archive: OrthancServer) -> None:
    with _client(archive, Transport()) as client:
        listing = list_documents(client)
        documents = list(listing)
    assert listing.complete
    assert listing.found == len(documents) == 42
    assert documents[-1].document_title == "undatiert"
    dates = [d.study_date for d in documents[:-1]]
    assert dates == sorted(dates, reverse=True)
    for document in documents:
        stored = requests.get(f"{archive.url}/instances/{document.id}/file", timeout=30)
        ds = pydicom.dcmread(io.BytesIO(stored.content))
        assert document.patient_name == str(ds.PatientName), document
        assert document.document_title == str(ds.DocumentTitle), document
        assert document.content_date == ds.ContentDate
        assert document.size == ds.EncapsulatedDocumentLength
        assert document.sop_instance_uid == ds.SOPInstanceUID


def test_ls_command_limit_and_date_range(archive: OrthancServer, tmp_path: Path) -> None:
    limited = run("ls", "--url", archive.url, "--limit", "3")
    assert limited.exit_code == 0, limited.stderr
    assert [json.loads(line)["StudyDate"] for line in limited.stdout.splitlines()] == [
        _day(0),
        _day(1),
        _day(2),
    ]
    ranged = run("ls", "--url", archive.url, "--since", _day(30), "--until", _day(10), "--json")
    dates = [json.loads(line)["StudyDate"] for line in ranged.stdout.splitlines()]
    assert dates == [_day(n) for n in range(10, 31)]
