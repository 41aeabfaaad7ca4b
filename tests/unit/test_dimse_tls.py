"""The TLS settings of DICOM associations, as built from --tls-ca/--tls-cert/--tls-key:
files made by openssl, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pdf2dcm.dimse import tls_context
from pdf2dcm.errors import InputError
from tests.pki import make_ca, openssl


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dicom-tls")
    make_ca(root, "Ward CA")
    openssl(
        *("rsa", "-in", str(root / "ca.key"), "-aes256", "-passout", "pass:secret"),
        *("-out", str(root / "encrypted.key")),
    )
    return root


def test_a_ca_file_given_is_the_only_ca_trusted(pki: Path) -> None:
    """A hospital's own CA: a certificate a public CA issued for the host is not the node's."""
    context = tls_context(str(pki / "ca.crt"))
    assert context.cert_store_stats()["x509_ca"] == 1
    assert context.check_hostname
    assert context.minimum_version.name == "TLSv1_2"


def test_an_encrypted_key_is_refused_without_asking(pki: Path) -> None:
    with pytest.raises(InputError, match=r"encrypted.key is encrypted; give a key without"):
        tls_context(str(pki / "ca.crt"), str(pki / "ca.crt"), str(pki / "encrypted.key"))


def test_a_fifo_or_folder_for_a_file_is_refused_without_blocking(pki: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(InputError, match="is not a regular file; give a PEM file"):
            tls_context(str(path))
