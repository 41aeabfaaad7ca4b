"""The typed client against a real Orthanc: every reply shape it checks is the one Orthanc sends."""

from __future__ import annotations

import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdf2dcm.client import Instance, OrthancClient, Patient, Series, Study
from pdf2dcm.config import resolve_settings
from pdf2dcm.errors import NotFoundError
from pdf2dcm.jobs import JobState, download_output, wait_for_job
from pdf2dcm.upload import UploadOptions, UploadResult, upload_file
from tests.integration.orthanc import OrthancServer
from tests.pdfs import make_pdf


@pytest.fixture
def client(orthanc: OrthancServer) -> Iterator[OrthancClient]:
    settings = resolve_settings(url=orthanc.url, environ={}, netrc_file="/dev/null")
    with OrthancClient(settings) as opened:
        yield opened


@pytest.fixture
def stored(client: OrthancClient, tmp_path: Path) -> tuple[UploadResult, str, bytes]:
    patient_id = f"TYPED-{secrets.token_hex(4)}"
    document = make_pdf(4001, seed=None)
    path = tmp_path / "typed.pdf"
    path.write_bytes(document)
    options = UploadOptions(
        tags={"PatientID": patient_id, "PatientName": "Typed^Client", "SeriesNumber": "7"},
        title="Typed client",
    )
    return upload_file(client, str(path), options), patient_id, document


def test_resources_read_back_typed(
    client: OrthancClient, stored: tuple[UploadResult, str, bytes]
) -> None:
    result, patient_id, _document = stored
    assert result.id is not None
    assert result.parent_series is not None
    instance = client.instance(result.id)
    assert instance == Instance(
        id=result.id, parent_series=result.parent_series, main_tags=instance.main_tags
    )
    assert instance.main_tags["SOPInstanceUID"] == result.sop_instance_uid
    series = client.series(instance.parent_series)
    assert series.instances == (result.id,)
    assert series.main_tags["SeriesNumber"] == "7"
    study = client.study(series.parent_study)
    assert study.id == result.parent_study
    assert study.patient_main_tags["PatientID"] == patient_id
    assert study.series == (series.id,)
    patient = client.patient(study.parent_patient)
    assert patient.main_tags["PatientName"] == "Typed^Client"
    assert patient.studies == (study.id,)
    assert client.study_series(study.id) == [series]
    assert [i.id for i in client.study_instances(study.id)] == [result.id]
    assert [i.id for i in client.series_instances(series.id)] == [result.id]


def test_find_and_lookup(client: OrthancClient, stored: tuple[UploadResult, str, bytes]) -> None:
    result, patient_id, _document = stored
    [study] = client.find("Study", {"PatientID": patient_id})
    assert isinstance(study, Study)
    assert study.id == result.parent_study
    assert study.patient_main_tags["PatientName"] == "Typed^Client"
    assert client.find("Study", {"PatientID": patient_id}, expand=False) == [study.id]
    [patient] = client.find("Patient", {"PatientID": patient_id}, limit=1)
    assert isinstance(patient, Patient)
    [series] = client.find("Series", {"PatientID": patient_id})
    assert isinstance(series, Series)
    assert client.find("Instance", {"PatientID": "NO-SUCH-" + patient_id}) == []
    [match] = client.lookup(result.sop_instance_uid)
    assert (match.type, match.id) == ("Instance", result.id)


def test_attribute_values_and_the_header(
    client: OrthancClient, stored: tuple[UploadResult, str, bytes]
) -> None:
    result, _patient_id, document = stored
    assert result.id is not None
    assert client.instance_content(result.id, "0042-0012") == b"application/pdf "
    assert client.instance_content(result.id, "0042-0010").rstrip(b" ") == b"Typed client"
    with pytest.raises(NotFoundError, match=rf"^instance {result.id} not found"):
        client.instance_content(result.id, "0040-a730")
    assert client.instance_metadata(result.id, "SopClassUid") == "1.2.840.10008.5.1.4.1.1.104.1"
    assert client.instance_metadata(result.id, "NoSuchMetadata") is None
    header = client.instance_header_bytes(result.id, 132)
    assert len(header) == 132
    assert header[128:] == b"DICM"
    whole = client.instance_header_bytes(result.id, 10**9)
    assert len(whole) > len(document)
    with client.instance_document(result.id) as download:
        assert download.read(len(document)).startswith(b"%PDF-")


def test_system_and_jobs(client: OrthancClient) -> None:
    system = client.system()
    assert system.version
    assert system.name
    assert isinstance(client.jobs(), list)


def test_an_archive_job_and_its_output(
    client: OrthancClient, stored: tuple[UploadResult, str, bytes], tmp_path: Path
) -> None:
    result, _patient_id, _document = stored
    assert result.parent_study is not None
    job_id = client.submit_archive("study", result.parent_study)
    status = wait_for_job(client, job_id, timeout=60)
    assert status.state is JobState.SUCCESS
    size = download_output(client, job_id, tmp_path / "study.zip")
    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        assert len(archive.namelist()) == 1
    assert size == (tmp_path / "study.zip").stat().st_size
