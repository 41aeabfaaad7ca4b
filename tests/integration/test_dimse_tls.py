"""DICOM over TLS against DCMTK ``storescp +tls``, which verifies this machine's certificate
(its default, as most archives set up for TLS do): certificates made by openssl for the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.conftest import PdfFactory
from tests.integration.dicom_nodes import DcmtkNode
from tests.integration.oracles import dciodvfy_errors
from tests.pki import make_ca, openssl


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, the node's certificate for 127.0.0.1 and this machine's, all signed by it."""
    root = tmp_path_factory.mktemp("pki")
    make_ca(root, "Test CA")
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    (root / "other.ext").write_text("subjectAltName=DNS:pacs.example.org\n")
    for name, subject, extra in (
        ("node", "/CN=127.0.0.1", ["-extfile", str(root / "san.ext")]),
        ("elsewhere", "/CN=pacs.example.org", ["-extfile", str(root / "other.ext")]),
        ("client", "/CN=PDF2DCM", []),
    ):
        openssl(
            *("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject),
            *("-keyout", str(root / f"{name}.key"), "-out", str(root / f"{name}.csr")),
        )
        openssl(
            *("x509", "-req", "-in", str(root / f"{name}.csr"), "-days", "2"),
            *("-CA", str(root / "ca.crt"), "-CAkey", str(root / "ca.key"), "-CAcreateserial"),
            *("-out", str(root / f"{name}.crt"), *extra),
        )
    openssl(
        *("rsa", "-in", str(root / "client.key"), "-aes256", "-passout", "pass:secret"),
        *("-out", str(root / "encrypted.key")),
    )
    return root


def tls_storescp(root: Path, pki: Path, certificate: str = "node") -> DcmtkNode:
    (root / "in").mkdir(parents=True, exist_ok=True)
    return DcmtkNode(
        "storescp",
        root,
        [
            *("--aetitle", "SECURE", "-od", str(root / "in")),
            *("+tls", str(pki / f"{certificate}.key"), str(pki / f"{certificate}.crt")),
            *("+cf", str(pki / "ca.crt")),
        ],
        "SECURE",
    )


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def tls_args(pki: Path, *, client: bool = True) -> list[str]:
    args = ["--tls", "--tls-ca", str(pki / "ca.crt")]
    if client:
        args += ["--tls-cert", str(pki / "client.crt"), "--tls-key", str(pki / "client.key")]
    return args


def test_a_document_is_stored_over_tls_byte_exact(
    pki: Path, tmp_path: Path, pdf_file: PdfFactory
) -> None:
    pdf = pdf_file(300_000)
    with tls_storescp(tmp_path / "scp", pki) as node:
        echoed = run("echo", node.node, *tls_args(pki))
        result = run(
            *("upload", str(pdf), "--via", "dimse", "--scp", node.node, "--json"),
            *("--tag", "PatientID=TLS-1", *tls_args(pki)),
        )
    assert echoed.exit_code == 0, echoed.stderr
    assert result.exit_code == 0, result.stderr
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["DicomStatus"] == "0000"
    [received] = list((tmp_path / "scp" / "in").iterdir())
    ds = pydicom.dcmread(received)
    assert bytes(ds.EncapsulatedDocument)[: pdf.stat().st_size] == pdf.read_bytes()
    assert dciodvfy_errors(received) == []


def test_what_keeps_tls_from_working_is_said_in_one_line(pki: Path, tmp_path: Path) -> None:
    with tls_storescp(tmp_path / "scp", pki) as node:
        untrusted = run("echo", node.node, "--tls")
        no_certificate = run("echo", node.node, *tls_args(pki, client=False))
        plain = run("echo", node.node)
    assert untrusted.exit_code == 3
    assert untrusted.stderr == (
        f"pdf2dcm: error: cannot reach {node.node} over TLS: its certificate is not trusted "
        "(self-signed certificate in certificate chain); give --tls-ca with the CA that issued "
        "it\n"
    )
    assert no_certificate.exit_code == 3
    assert "it may want this machine's certificate (--tls-cert)" in no_certificate.stderr
    assert plain.exit_code == 3
    assert "a TLS port needs --tls" in plain.stderr
    for result in (untrusted, no_certificate, plain):
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr


def test_a_certificate_made_out_to_another_host_is_refused_with_why(
    pki: Path, tmp_path: Path
) -> None:
    with tls_storescp(tmp_path / "scp", pki, "elsewhere") as node:
        result = run("echo", node.node, *tls_args(pki))
    assert result.exit_code == 3
    assert "IP address mismatch" in result.stderr
    assert "it is not made out to 127.0.0.1" in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_encrypted_key_is_refused_without_asking_for_its_passphrase(pki: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pdf2dcm", "echo", "A@127.0.0.1:104", "--tls"),
            *("--tls-ca", str(pki / "ca.crt")),
            *("--tls-cert", str(pki / "client.crt"), "--tls-key", str(pki / "encrypted.key")),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"pdf2dcm: error: the TLS key {pki / 'encrypted.key'} is encrypted; give a key without "
        "a passphrase (openssl pkey -in KEY -out PLAIN.key), readable by this user only\n"
    )
