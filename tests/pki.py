"""Certificates for the TLS tests, made by openssl (the oracle the tests require)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_binary


def openssl(*args: str) -> None:
    subprocess.run([require_binary("openssl"), *args], check=True, capture_output=True)


def make_ca(root: Path, name: str) -> None:
    """A self-signed CA, valid two days: ``root/ca.key`` and ``root/ca.crt``."""
    openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}"),
        *("-keyout", str(root / "ca.key"), "-out", str(root / "ca.crt")),
    )
