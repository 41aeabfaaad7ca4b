"""``watch --via dimse`` and the ``scp`` profile key, against an in-process pynetdicom storage
SCP: what it received, where the file went, and the usage rules of the DICOM options."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.integration.orthanc import free_port as closed_port
from tests.pdfs import make_pdf
from tests.scp import serve

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
VERIFICATION = "1.2.840.10008.1.1"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def archive_scp() -> Iterator[tuple[str, list[Any]]]:
    """A storage SCP called ARCHIVE that keeps every data set it receives, as received
    (started once: stopping one waits for its half-second poll)."""
    from pynetdicom import AE, evt

    received: list[Any] = []

    def on_store(event: Any) -> int:
        received.append(pydicom.dcmread(io.BytesIO(event.encoded_dataset()), force=True))
        return 0x0000

    ae = AE(ae_title="ARCHIVE")
    ae.add_supported_context(ENCAPSULATED_PDF, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    ae.add_supported_context(VERIFICATION)
    server = serve(ae, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        yield f"ARCHIVE@127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()


@pytest.fixture
def store_scp(archive_scp: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    """The storage SCP, with nothing received yet in this test."""
    archive_scp[1].clear()
    return archive_scp


def inbox_with(tmp_path: Path, name: str = "consent.pdf") -> tuple[Path, bytes]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = make_pdf(2400, seed=5)
    (inbox / name).write_bytes(data)
    return inbox, data


def watch_args(inbox: Path, *args: str) -> list[str]:
    folders = ["--done", str(inbox.parent / "done"), "--failed", str(inbox.parent / "failed")]
    return ["watch", str(inbox), "--once", "--settle", "0", "--no-progress", *folders, *args]


def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    folder = tmp_path / "xdg" / "pdf2dcm"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(body, encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def test_watch_stores_on_a_dicom_node_and_moves_the_file(
    store_scp: tuple[str, list[Any]], tmp_path: Path
) -> None:
    node, received = store_scp
    inbox, data = inbox_with(tmp_path)
    result = run(*watch_args(inbox, "--via", "dimse", "--scp", node, "--tag", "PatientID=W1"))
    assert result.exit_code == 0, result.stderr
    assert f"filing to {node} by dimse;" in result.stderr
    [ds] = received
    assert bytes(ds.EncapsulatedDocument)[: len(data)] == data
    assert (ds.PatientID, ds.DocumentTitle) == ("W1", "consent")
    assert (tmp_path / "done" / "consent.pdf").read_bytes() == data
    assert list(inbox.iterdir()) == []


def test_the_profile_names_the_node_and_the_method(
    store_scp: tuple[str, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, received = store_scp
    profile(
        tmp_path,
        monkeypatch,
        f'[profiles.default]\nmethod = "dimse"\nscp = "{node}"\ncalling-aet = "WARD3"\n',
    )
    inbox, data = inbox_with(tmp_path)
    result = run(*watch_args(inbox, "--tag", "PatientID=W2"))
    assert result.exit_code == 0, result.stderr
    [ds] = received
    assert bytes(ds.EncapsulatedDocument)[: len(data)] == data

    # --scp beats the profile's scp: a closed port is tried, not the profile's node.
    closed = f"OTHER@127.0.0.1:{closed_port()}"
    upload = run("upload", str(tmp_path / "done" / "consent.pdf"), "--scp", closed)
    assert upload.exit_code == 3, upload.stderr
    assert f"cannot reach {closed}" in upload.stderr
    assert len(received) == 1


def test_a_malformed_scp_in_the_profile_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile(tmp_path, monkeypatch, '[profiles.default]\nmethod = "dimse"\nscp = "PACS@host"\n')
    inbox, data = inbox_with(tmp_path)
    result = run(*watch_args(inbox))
    assert result.exit_code == 2
    assert result.stderr.startswith("pdf2dcm: error: scp of profile default in ")
    assert "Traceback" not in result.stderr
    assert (inbox / "consent.pdf").read_bytes() == data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--commit",), "--commit goes with --via dimse"),
        (("--via", "dimse"), "--via dimse needs --scp AET@HOST:PORT"),
        (
            ("--via", "dimse", "--scp", "A@127.0.0.1:104", "--send-to-modality", "X"),
            "forward from Orthanc",
        ),
        (("--via", "dimse", "--scp", "A@127.0.0.1:104", "--listen-port", "1104"), "--listen-port"),
    ],
)
def test_dicom_options_that_do_not_go_together_are_usage_errors(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    inbox, data = inbox_with(tmp_path)
    result = run(*watch_args(inbox, *args))
    assert result.exit_code == 2
    assert message in result.stderr
    assert (inbox / "consent.pdf").read_bytes() == data


@pytest.fixture(scope="module")
def bare_scp() -> Iterator[tuple[str, list[Any]]]:
    """A storage SCP called BARE that offers no Verification (no C-ECHO)."""
    from pynetdicom import AE, evt

    received: list[Any] = []

    def on_store(event: Any) -> int:
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    ae = AE(ae_title="BARE")
    ae.add_supported_context(ENCAPSULATED_PDF, ["1.2.840.10008.1.2.1"])
    server = serve(ae, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        yield f"BARE@127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()


def test_a_node_without_verification_still_passes_the_start_check(
    bare_scp: tuple[str, list[Any]], tmp_path: Path
) -> None:
    """A bare storage SCP offers no C-ECHO: it accepted the association, so it is there."""
    node, received = bare_scp
    received.clear()
    inbox, _data = inbox_with(tmp_path)
    result = run(*watch_args(inbox, "--via", "dimse", "--scp", node, "--tag", "PatientID=B"))
    assert result.exit_code == 0, result.stderr
    assert len(received) == 1


def test_a_node_that_is_not_there_ends_the_start_with_exit_3(tmp_path: Path) -> None:
    inbox, data = inbox_with(tmp_path)
    node = f"GONE@127.0.0.1:{closed_port()}"
    result = run(*watch_args(inbox, "--via", "dimse", "--scp", node))
    assert result.exit_code == 3
    assert result.stderr.startswith(f"pdf2dcm: error: cannot reach {node}")
    assert (inbox / "consent.pdf").read_bytes() == data


def test_tls_options_go_with_dicom_nodes(tmp_path: Path) -> None:
    pdf = tmp_path / "x.pdf"
    pdf.write_bytes(make_pdf(2000, seed=3))
    orthanc = run("upload", str(pdf), "--url", "http://127.0.0.1:9", "--tls")
    assert orthanc.exit_code == 2
    assert "--tls goes with --via dimse or --worklist AET@HOST:PORT" in orthanc.stderr
    files_only = run("echo", "A@127.0.0.1:104", "--tls-ca", str(pdf))
    assert files_only.exit_code == 2
    assert "--tls-ca goes with --tls" in files_only.stderr
    listen = run(
        *("upload", str(pdf), "--via", "dimse", "--scp", "A@127.0.0.1:104", "--commit"),
        *("--listen-port", "11112", "--tls"),
    )
    assert listen.exit_code == 2
    assert "leave --listen-port out" in listen.stderr
    not_pem = run("echo", "A@127.0.0.1:104", "--tls", "--tls-ca", str(pdf))
    assert not_pem.exit_code == 2
    assert not_pem.stderr.startswith("pdf2dcm: error: cannot use the TLS files (")


def test_a_node_without_storage_commitment_is_found_out_before_anything_is_stored(
    store_scp: tuple[str, list[Any]], tmp_path: Path
) -> None:
    node, received = store_scp
    inbox, data = inbox_with(tmp_path)
    watched = run(*watch_args(inbox, "--via", "dimse", "--scp", node, "--commit"))
    uploaded = run(
        *("upload", str(inbox / "consent.pdf"), "--via", "dimse", "--scp", node, "--commit"),
        *("--tag", "PatientID=C"),
    )
    for result in (watched, uploaded):
        assert result.exit_code == 4, result.stderr
        assert f"{node} does not do storage commitment" in result.stderr
        assert "leave --commit out" in result.stderr
    assert received == []
    assert (inbox / "consent.pdf").read_bytes() == data


def test_a_stop_does_not_wait_out_a_pending_commitment(tmp_path: Path) -> None:
    """A node that takes the commitment request and never reports: SIGTERM ends the watcher
    at once (not after --dimse-timeout), and the file, never committed, stays."""
    import signal
    import subprocess
    import sys
    import threading

    from pynetdicom import AE, evt

    from pdf2dcm import dimse

    asked = threading.Event()

    def on_action(_event: Any) -> tuple[int, None]:
        asked.set()
        return 0x0000, None

    ae = AE(ae_title="SILENT")
    ae.add_supported_context(ENCAPSULATED_PDF, ["1.2.840.10008.1.2.1"])
    ae.add_supported_context(VERIFICATION)
    ae.add_supported_context(dimse.STORAGE_COMMITMENT_PUSH_MODEL)
    server = serve(
        ae, evt_handlers=[(evt.EVT_C_STORE, lambda _e: 0x0000), (evt.EVT_N_ACTION, on_action)]
    )
    inbox, data = inbox_with(tmp_path)
    node = f"SILENT@127.0.0.1:{server.server_address[1]}"
    watcher = subprocess.Popen(
        [
            *(sys.executable, "-m", "pdf2dcm", "watch", str(inbox), "--settle", "0"),
            *("--done", str(tmp_path / "done"), "--no-progress", "--via", "dimse"),
            *("--scp", node, "--commit", "--dimse-timeout", "300", "--tag", "PatientID=S"),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        assert asked.wait(60), "the commitment request never came"
        watcher.send_signal(signal.SIGTERM)
        _out, stderr = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        server.shutdown()
    assert watcher.returncode == 0, stderr.decode()
    assert stderr.decode().splitlines()[-1] == (
        "pdf2dcm: 1 file: 0 stored, 0 failed, 0 held, 1 waiting"
    )
    assert (inbox / "consent.pdf").read_bytes() == data


def test_a_listen_port_in_use_is_said_at_start(tmp_path: Path) -> None:
    inbox, data = inbox_with(tmp_path)
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(
            *watch_args(inbox, "--via", "dimse", "--scp", "A@127.0.0.1:104", "--commit"),
            *("--listen-port", str(port)),
        )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"pdf2dcm: error: cannot listen on port {port} for storage")
    assert (inbox / "consent.pdf").read_bytes() == data
