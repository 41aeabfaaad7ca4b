"""TLS is verified by default: a real TLS server with a certificate of its own.

Orthanc 1.10.1 as packaged in Debian 12 crashes when it serves https (its embedded web
server segfaults on the first TLS connection), so the server here is the scripted HTTP
fake archive of tests/fake_orthanc.py, wrapped in TLS with a certificate made by openssl.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pdf2dcm.cli import cli
from tests.conftest import require_binary
from tests.fake_orthanc import FakeOrthanc, redirect, serving


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """ORTHANC_USERNAME or a ~/.netrc of the developer would change what is sent."""
    for name in ("ORTHANC_URL", "ORTHANC_USERNAME", "ORTHANC_PASSWORD", "ORTHANC_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tls")
    key, cert = root / "key.pem", root / "cert.pem"
    subprocess.run(
        [
            require_binary("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def https_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving(context) as httpd:
        httpd.route("GET", "/jobs", [])
        yield httpd.url


def test_unknown_certificate_is_refused(https_url: str) -> None:
    result = CliRunner().invoke(cli, ["jobs", "list", "--url", https_url])
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"pdf2dcm: error: TLS verification failed for {https_url}: certificate verify failed; "
        "give the server's CA with --ca-bundle FILE"
    )


def test_ca_bundle_is_trusted(https_url: str, certificate: tuple[Path, Path]) -> None:
    cert, _key = certificate
    result = CliRunner().invoke(cli, ["jobs", "list", "--url", https_url, "--ca-bundle", str(cert)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""


def test_insecure_connects_and_warns(https_url: str) -> None:
    result = CliRunner().invoke(cli, ["jobs", "list", "--url", https_url, "--insecure"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "pdf2dcm: warning: TLS certificates are not verified (--insecure)\n"


def test_certificate_failures_are_not_retried(
    https_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pdf2dcm")
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["jobs", "list", "--url", https_url])
    assert result.exit_code == 3
    assert [r for r in caplog.records if r.name == "pdf2dcm"] == []
    assert time.monotonic() - start < 1.0


def test_https_to_a_plain_http_port_says_so(
    server: FakeOrthanc, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"https://127.0.0.1:{server.server_address[1]}"
    caplog.set_level(logging.INFO, logger="pdf2dcm")
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["jobs", "list", "--url", url])
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"pdf2dcm: error: the server at {url} does not speak TLS on this port; use http:// or "
        "the server's https port"
    )
    assert [r for r in caplog.records if r.name == "pdf2dcm"] == []
    assert time.monotonic() - start < 1.0


def test_a_redirect_from_https_to_http_is_not_followed(certificate: tuple[Path, Path]) -> None:
    """Same host and port, plain HTTP: the credentials would go out in the clear."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving(context) as httpd:
        plain = f"http://127.0.0.1:{httpd.server_address[1]}/jobs"
        httpd.route("GET", "/jobs", redirect(302, plain))
        result = CliRunner().invoke(
            cli,
            ["jobs", "list", "--url", httpd.url, "--ca-bundle", str(cert), "--username", "u"],
            env={"ORTHANC_PASSWORD": "secret"},
        )
        assert [request.path for request in httpd.received] == ["/jobs?expand="]
    assert result.exit_code == 4, result.stderr
    assert result.stderr.strip() == (
        f"pdf2dcm: error: {httpd.url} redirected GET /jobs to {plain}; redirects to another "
        "server are not followed: use the final address as the server URL"
    )
