"""``pdf2dcm echo`` against an in-process pynetdicom SCP: exit codes and one-line messages."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.scp import serve


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def scp() -> Iterator[Any]:
    """A Verification SCP called ECHOSCP that accepts the calling title WARD3 only."""
    from pynetdicom import AE

    ae = AE(ae_title="ECHOSCP")
    ae.add_supported_context("1.2.840.10008.1.1")
    ae.require_calling_aet = ["WARD3"]
    ae.require_called_aet = True
    server = serve(ae)
    try:
        yield server
    finally:
        server.shutdown()


def node(server: Any, title: str = "ECHOSCP") -> str:
    return f"{title}@127.0.0.1:{server.server_address[1]}"


def test_a_node_that_answers(scp: Any) -> None:
    result = run("echo", node(scp), "--calling-aet", "WARD3")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{node(scp)} answered C-ECHO in ")
    assert result.stderr == ""


def test_an_unknown_calling_title_is_rejected_with_its_reason(scp: Any) -> None:
    result = run("echo", node(scp))
    assert result.exit_code == 3
    assert result.stderr == (
        f"pdf2dcm: error: {node(scp)} rejected the association (rejected permanent, "
        "Service User: Calling AE title not recognised); the archive must know the calling "
        "AE title PDF2DCM (or give --calling-aet)\n"
    )


def test_an_unknown_called_title_is_rejected_with_its_reason(scp: Any) -> None:
    result = run("echo", node(scp, "OTHER"), "--calling-aet", "WARD3")
    assert result.exit_code == 3
    assert "Called AE title not recognised); check the AE title OTHER" in result.stderr


def test_the_calling_title_comes_from_the_environment_or_the_profile(
    scp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("echo", node(scp), env={"PDF2DCM_CALLING_AET": "WARD3"}).exit_code == 0
    folder = tmp_path / "xdg" / "pdf2dcm"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text('[profiles.ward]\ncalling-aet = "WARD3"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert run("--profile", "ward", "echo", node(scp)).exit_code == 0
    (folder / "config.toml").write_text('[profiles.ward]\ncalling-aet = "WARD\\\\3"\n')
    result = run("--profile", "ward", "echo", node(scp))
    assert result.exit_code == 2
    assert "calling-aet of profile ward in" in result.stderr


def test_a_refused_connection() -> None:
    port = closed_port()
    result = run("echo", f"PACS@127.0.0.1:{port}")
    assert result.exit_code == 3
    assert result.stderr == (
        f"pdf2dcm: error: cannot reach PACS@127.0.0.1:{port}: connection refused; is it running?\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("PACS@host",), "is not a DICOM node; write it AET@HOST:PORT"),
        (("PACS@host:70000",), "must be a number from 1 to 65535"),
        (("PACS@h:104", "--calling-aet", "A" * 17), "has 17 characters"),
        (("PACS@h:104", "--timeout", "0"), "--timeout"),
    ],
)
def test_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = run("echo", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_pynetdicom_is_imported_only_when_a_node_is_used() -> None:
    code = (
        "import sys\n"
        "from pdf2dcm.cli import main\n"
        "from pdf2dcm import dimse\n"
        "dimse.Node.parse('A@h:104')\n"
        "sys.argv = ['pdf2dcm', 'echo', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('LOADED', 'pynetdicom' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED False" in done.stderr


def test_a_port_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        result = run("echo", f"PACS@127.0.0.1:{port}", "--timeout", "0.1")
    assert result.exit_code == 3
    assert result.stderr == (
        f"pdf2dcm: error: PACS@127.0.0.1:{port} accepted the connection but not the "
        "association (it was aborted or timed out); check the AE titles and that it is a "
        "DICOM port; a TLS port needs --tls\n"
    )
