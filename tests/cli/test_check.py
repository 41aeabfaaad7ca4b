"""pdf2dcm check: what would be used, and whether each part works, against the fake archive."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from pdf2dcm import client as client_module
from pdf2dcm.cli import cli
from tests.fake_orthanc import FakeOrthanc, reply, serving


@pytest.fixture
def fake() -> Iterator[FakeOrthanc]:
    with serving() as server:
        server.route("GET", "/system", {"Version": "1.12.3", "Name": "PACS"})
        server.route("GET", "/dicom-web/studies", [])
        server.route("POST", "/modalities/pacs/echo", {})
        server.route("GET", "/peers/twin/system", {"Version": "1.12.3"})
        server.route("POST", "/modalities/ris/find-worklist", [])
        yield server


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["check", *args], env=env)


def test_everything_works(fake: FakeOrthanc) -> None:
    result = run(
        "--url", fake.url, "--username", "alice", "--modality", "pacs", "--peer", "twin",
        "--worklist", "ris", env={"ORTHANC_PASSWORD": "s3cret"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"URL:            {fake.url} (from --url)",
        "user:           alice",
        "authentication: HTTP Basic with a password, from options",
        "TLS:            none (http): credentials and documents travel unencrypted",
        f"DICOMweb:       {fake.url}/dicom-web",
        "ok      server: Orthanc PACS 1.12.3",
        "ok      credentials: accepted",
        f"ok      DICOMweb: {fake.url}/dicom-web answers",
        "ok      modality pacs: answers a C-ECHO",
        "ok      peer twin: answers",
        "ok      worklist ris: answers a worklist query",
    ]
    assert "s3cret" not in result.stdout + result.stderr
    assert ("POST", "/modalities/pacs/echo") in fake.asked


def test_the_url_source_is_named(fake: FakeOrthanc) -> None:
    result = run(env={"ORTHANC_URL": fake.url})
    assert result.exit_code == 0, result.stderr
    assert f"URL:            {fake.url} (from ORTHANC_URL)" in result.stdout
    assert "authentication: none" in result.stdout


def test_refused_credentials_exit_4_and_skip_nothing_else_silently(fake: FakeOrthanc) -> None:
    fake.route("GET", "/system", reply(401, b""))
    result = run("--url", fake.url, "--token", "t0ken", "--modality", "pacs")
    assert result.exit_code == 4
    assert "authentication: Bearer token, from options" in result.stdout
    assert "FAILED  credentials: authentication failed at" in result.stdout
    assert "skipped modality pacs: the server check failed" in result.stdout
    assert "t0ken" not in result.stdout + result.stderr


def test_an_unknown_modality_gives_its_code(fake: FakeOrthanc) -> None:
    result = run("--url", fake.url, "--modality", "nope", "--modality", "pacs")
    assert result.exit_code == 4
    assert "FAILED  modality nope: modality nope not found on" in result.stdout
    assert "ok      modality pacs: answers a C-ECHO" in result.stdout


def test_an_unreachable_server_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_SECONDS", 0.01)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = run("--url", closed)
    assert result.exit_code == 3
    assert f"FAILED  server: cannot reach {closed}: connection refused" in result.stdout
    assert "skipped credentials: the server did not answer" in result.stdout
