"""Every safety rule of the client and the upload, each held by a test that fails when the rule
is weakened by one token, run against the fake archive in the fast loop.

The path gate (an ID followed by a path never reaches another route), the redirect rule
(same scheme, host and port), credentials bound to their server, AlreadyStored believed only
for the same document, and a SOPInstanceUID that names a document elsewhere.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from pdf2dcm.client import OrthancClient
from pdf2dcm.config import Settings, resolve_settings
from pdf2dcm.errors import InputError, RedirectError, UnexpectedReplyError
from tests.fake_orthanc import FakeOrthanc, redirect, reply, serving
from tests.pdfs import make_pdf

ORTHANC_ID = "1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b"
JOB = "32af28ce-d1f9-4655-b38e-3237a3cdcbaa"
ESCAPE = "/../../tools/shutdown?"


@pytest.fixture
def fake() -> Iterator[FakeOrthanc]:
    with serving() as server:
        yield server


def client_of(server: FakeOrthanc, **options: Any) -> OrthancClient:
    settings = resolve_settings(url=server.url, environ={}, netrc_file="/dev/null", **options)
    return OrthancClient(settings, sleep=lambda _seconds: None)


# --- the path gate ---------------------------------------------------------------------------

CALLS: dict[str, Callable[[OrthancClient, str], object]] = {
    "patient": lambda c, i: c.patient(i),
    "study": lambda c, i: c.study(i),
    "series": lambda c, i: c.series(i),
    "instance": lambda c, i: c.instance(i),
    "series_instances": lambda c, i: c.series_instances(i),
    "study_instances": lambda c, i: c.study_instances(i),
    "study_series": lambda c, i: c.study_series(i),
    "instance_content": lambda c, i: c.instance_content(i, "0042-0011"),
    "instance_metadata": lambda c, i: c.instance_metadata(i, "Origin"),
    "instance_header_bytes": lambda c, i: c.instance_header_bytes(i, 100),
    "instance_document": lambda c, i: c.instance_document(i).__enter__(),
    "submit_archive patient": lambda c, i: c.submit_archive("patient", i),
    "submit_archive study": lambda c, i: c.submit_archive("study", i),
    "submit_archive series": lambda c, i: c.submit_archive("series", i),
}
JOB_CALLS: dict[str, Callable[[OrthancClient, str], object]] = {
    "job": lambda c, i: c.job(i),
    "job_action": lambda c, i: c.job_action(i, "cancel"),
    "job_output": lambda c, i: c.job_output(i).__enter__(),
}


@pytest.mark.parametrize(
    ("call", "valid"),
    [(call, ORTHANC_ID) for call in CALLS.values()] + [(call, JOB) for call in JOB_CALLS.values()],
    ids=[*CALLS, *JOB_CALLS],
)
@pytest.mark.parametrize("tail", [ESCAPE, "\n", "/archive", "?x=1"])
def test_a_valid_id_followed_by_anything_never_leaves_its_route(
    fake: FakeOrthanc, call: Callable[[OrthancClient, str], object], valid: str, tail: str
) -> None:
    with client_of(fake) as client, pytest.raises(InputError, match=r"is not an Orthanc"):
        call(client, valid + tail)
    assert fake.received == []


@pytest.mark.parametrize("tag", ["0042-0011/../../tools/shutdown?", "0042-0011\n", "x0042-0011"])
def test_a_tag_segment_is_exactly_a_tag(fake: FakeOrthanc, tag: str) -> None:
    with client_of(fake) as client, pytest.raises(InputError, match=r"is not of the form"):
        client.instance_content(ORTHANC_ID, tag)
    assert fake.received == []


@pytest.mark.parametrize("kind", ["ID", "ParentSeries"])
def test_an_id_in_a_reply_followed_by_a_path_is_refused(fake: FakeOrthanc, kind: str) -> None:
    answer = {"ID": ORTHANC_ID, "ParentSeries": ORTHANC_ID, "MainDicomTags": {}}
    answer[kind] = ORTHANC_ID + ESCAPE
    fake.route("GET", f"/instances/{ORTHANC_ID}", answer)
    with client_of(fake) as client, pytest.raises(UnexpectedReplyError, match=r"is not an"):
        client.instance(ORTHANC_ID)


def test_a_name_is_one_segment(fake: FakeOrthanc) -> None:
    fake.route("POST", "/modalities/..%2F..%2Ftools%2Fshutdown%3F/store", {"ID": JOB})
    with client_of(fake) as client:
        assert client.store_to("modality", "../../tools/shutdown?", [ORTHANC_ID]) == JOB
    assert fake.asked == [("POST", "/modalities/..%2F..%2Ftools%2Fshutdown%3F/store")]


# --- redirects and credentials ---------------------------------------------------------------


def test_a_redirect_to_the_same_host_on_another_port_is_not_followed(fake: FakeOrthanc) -> None:
    with serving() as other:
        other.route("GET", "/system", {"Version": "1"})
        fake.route("GET", "/system", redirect(302, f"{other.url}/system"))
        with (
            client_of(fake, username="u", password="secret") as client,
            pytest.raises(RedirectError, match=r"redirects to another server are not followed"),
        ):
            client.system()
        assert other.received == []


def test_a_redirect_to_the_same_server_keeps_the_credentials(fake: FakeOrthanc) -> None:
    fake.route("GET", "/system", redirect(302, f"{fake.url}/v2/system"))
    fake.route("GET", "/v2/system", {"Version": "1"})
    with client_of(fake, username="u", password="secret") as client:
        client.system()
    expected = "Basic " + base64.b64encode(b"u:secret").decode()
    assert [r.headers.get("Authorization") for r in fake.received] == [expected, expected]


def test_credentials_go_only_to_their_own_server(fake: FakeOrthanc) -> None:
    """Even a request to an absolute URL elsewhere (a DICOMweb root) gets none."""
    with serving() as other:
        other.route("GET", "/x", {})
        fake.route("GET", "/y", {})
        settings = Settings(url=fake.url, username="u", password="secret")
        with OrthancClient(settings) as client:
            client.request("GET", f"{other.url}/x")
            client.request("GET", "/y")
        assert "Authorization" not in other.received[0].headers
    assert fake.received[0].headers["Authorization"].startswith("Basic ")


def test_a_token_goes_only_to_its_own_server(fake: FakeOrthanc) -> None:
    with serving() as other:
        other.route("GET", "/x", {})
        settings = Settings(url=fake.url, token="t0ken")
        with OrthancClient(settings) as client:
            client.request("GET", f"{other.url}/x")
        assert "Authorization" not in other.received[0].headers


# --- AlreadyStored and the SOPInstanceUID ----------------------------------------------------


def upload(fake: FakeOrthanc, source: Path, *tags: str) -> Result:
    args = ["upload", str(source), "--url", fake.url, "--same-series", "--json"]
    for tag in tags:
        args += ["--tag", tag]
    return CliRunner().invoke(cli, args)


def test_already_stored_is_believed_for_the_same_document_only(
    fake: FakeOrthanc, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.pdf", tmp_path / "second.pdf"
    first.write_bytes(make_pdf(3000, seed=1))
    second.write_bytes(make_pdf(3000, seed=2))
    tags = ("PatientID=P1", "SOPInstanceUID=1.2.826.0.1.3680043.10.1")
    assert upload(fake, first, *tags).exit_code == 0
    again = upload(fake, first, *tags)
    assert again.exit_code == 0, again.stderr
    assert '"Status": "AlreadyStored"' in again.stdout
    other = upload(fake, second, *tags)
    assert other.exit_code == 8, other.stderr
    assert "is already used on" in other.stderr
    assert "with another document" in other.stderr
    [kept] = fake.instances.values()
    assert kept == first.read_bytes()


def test_a_sop_instance_uid_filed_elsewhere_is_refused_before_sending(
    fake: FakeOrthanc, tmp_path: Path
) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(3000, seed=3))
    uid = "SOPInstanceUID=1.2.826.0.1.3680043.10.2"
    assert upload(fake, source, "PatientID=P1", uid).exit_code == 0
    stores = [r for r in fake.received if r.path == "/instances"]
    result = upload(fake, source, "PatientID=P2", uid)
    assert result.exit_code == 8, result.stderr
    assert "already names instance" in result.stderr
    assert "filed under PatientID 'P1'" in result.stderr
    assert [r for r in fake.received if r.path == "/instances"] == stores
    assert len(fake.instances) == 1


@pytest.mark.parametrize(
    "elsewhere",
    [
        ("StudyInstanceUID=1.2.826.0.1.3680043.10.5", "SeriesInstanceUID=1.2.826.0.1.3680043.10.9"),
        ("StudyInstanceUID=1.2.826.0.1.3680043.10.7", "SeriesInstanceUID=1.2.826.0.1.3680043.10.6"),
    ],
    ids=["another study", "another series of the same study"],
)
def test_a_sop_instance_uid_of_the_same_patient_elsewhere_is_refused(
    fake: FakeOrthanc, tmp_path: Path, elsewhere: tuple[str, ...]
) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(3000, seed=7))
    uid = "SOPInstanceUID=1.2.826.0.1.3680043.10.4"
    first = (
        "PatientID=P1",
        "StudyInstanceUID=1.2.826.0.1.3680043.10.7",
        "SeriesInstanceUID=1.2.826.0.1.3680043.10.8",
        uid,
    )
    assert upload(fake, source, *first).exit_code == 0
    result = upload(fake, source, "PatientID=P1", *elsewhere, uid)
    assert result.exit_code == 8, result.stderr
    assert "already names instance" in result.stderr
    assert len(fake.instances) == 1


def test_a_stored_series_given_under_another_study_is_refused(
    fake: FakeOrthanc, tmp_path: Path
) -> None:
    """A given SeriesInstanceUID joins its stored series: it cannot be split over studies."""
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(3000, seed=8))
    series = "SeriesInstanceUID=1.2.826.0.1.3680043.10.8"
    assert (
        upload(
            fake, source, "PatientID=P1", "StudyInstanceUID=1.2.826.0.1.3680043.10.7", series
        ).exit_code
        == 0
    )
    other = tmp_path / "b.pdf"
    other.write_bytes(make_pdf(3000, seed=9))
    result = upload(
        fake, other, "PatientID=P1", "StudyInstanceUID=1.2.826.0.1.3680043.10.5", series
    )
    assert result.exit_code == 2, result.stderr
    assert "would be filed under another study" in result.stderr
    assert len(fake.instances) == 1


def test_a_given_study_uid_joins_the_stored_study_and_its_values_are_checked(
    fake: FakeOrthanc, tmp_path: Path
) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(3000, seed=10))
    study = "StudyInstanceUID=1.2.826.0.1.3680043.10.11"
    first = ("PatientID=P1", "PatientName=Doe^Jane", "StudyDescription=Images", study)
    assert upload(fake, source, *first).exit_code == 0
    other = tmp_path / "b.pdf"
    other.write_bytes(make_pdf(3000, seed=11))
    result = upload(fake, other, "PatientID=P1", "StudyDescription=Other", study)
    assert result.exit_code == 2, result.stderr
    assert "StudyDescription" in result.stderr
    assert "'Images'" in result.stderr
    joined = upload(fake, other, study)  # nothing but the UID: the study's values are copied
    assert joined.exit_code == 0, joined.stderr
    [new] = [
        ds
        for ds in fake.datasets.values()
        if ds.SOPInstanceUID != next(iter(fake.datasets.values())).SOPInstanceUID
    ]
    assert (new.PatientID, str(new.PatientName), new.StudyDescription) == (
        "P1",
        "Doe^Jane",
        "Images",
    )
    assert new.SeriesNumber == 2


def test_a_study_of_another_patient_is_refused(fake: FakeOrthanc, tmp_path: Path) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(3000, seed=4))
    study = "StudyInstanceUID=1.2.826.0.1.3680043.10.3"
    assert upload(fake, source, "PatientID=P1", study).exit_code == 0
    result = upload(fake, source, "PatientID=P2", study)
    assert result.exit_code == 8, result.stderr
    assert "already belongs to PatientID 'P1'" in result.stderr
    assert len(fake.instances) == 1


# --- replies that cannot be read -------------------------------------------------------------


@pytest.mark.parametrize("answer", [b"<html>stored?</html>", b"[]", b'"ok"'])
def test_a_stow_answer_that_cannot_be_read_is_never_success(
    fake: FakeOrthanc, tmp_path: Path, answer: bytes
) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(3000, seed=5))
    fake.route("POST", "/dicom-web/studies", reply(200, answer))
    result = CliRunner().invoke(
        cli,
        ["upload", str(source), "--url", fake.url, "--via", "stow", "--tag", "PatientID=S"],
    )
    assert result.exit_code == 5, result.stderr
    assert "Success" not in result.stdout
    assert f"unexpected reply from {fake.url}/dicom-web/studies" in result.stderr


def test_an_empty_stow_answer_is_accepted(fake: FakeOrthanc, tmp_path: Path) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(3000, seed=6))
    fake.route("POST", "/dicom-web/studies", reply(200, b""))
    result = CliRunner().invoke(
        cli, ["upload", str(source), "--url", fake.url, "--via", "stow", "--tag", "PatientID=S"]
    )
    assert result.exit_code == 0, result.stderr


def test_a_ready_made_dicom_file_is_compared_when_already_stored(
    fake: FakeOrthanc, tmp_path: Path
) -> None:
    uids = [
        "--tag", "PatientID=P1",
        "--tag", "StudyInstanceUID=1.2.826.0.1.3680043.10.9",
        "--tag", "SeriesInstanceUID=1.2.826.0.1.3680043.10.10",
        "--tag", "SOPInstanceUID=1.2.826.0.1.3680043.10.11",
    ]  # fmt: skip
    objects = []
    for seed in (8, 9):
        pdf, dcm = tmp_path / f"{seed}.pdf", tmp_path / f"{seed}.dcm"
        pdf.write_bytes(make_pdf(3000, seed=seed))
        made = CliRunner().invoke(cli, ["encode", str(pdf), "-o", str(dcm), *uids])
        assert made.exit_code == 0, made.stderr
        objects.append(dcm)
    send = ["upload", "--url", fake.url, "--json"]
    assert CliRunner().invoke(cli, [*send, str(objects[0])]).exit_code == 0
    again = CliRunner().invoke(cli, [*send, str(objects[0])])
    assert again.exit_code == 0, again.stderr
    assert '"Status": "AlreadyStored"' in again.stdout
    other = CliRunner().invoke(cli, [*send, str(objects[1])])
    assert other.exit_code == 8, other.stderr
    assert "with another document" in other.stderr
