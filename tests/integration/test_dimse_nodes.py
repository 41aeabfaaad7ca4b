"""C-ECHO, C-STORE, C-FIND and storage commitment against real nodes.

DCMTK storescp (accepting Explicit VR, and with ``+xi`` Implicit VR only) and Orthanc's DICOM
port; statuses a real archive cannot be made to send on demand (A700, B000, C000) come from
an in-process pynetdicom SCP.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from pdf2dcm import dimse, errors
from pdf2dcm.dicom import encode_pdf, open_encoded
from pdf2dcm.extract import extract_pdf
from tests.conftest import PdfFactory, require_binary
from tests.integration.dicom_nodes import storescp
from tests.integration.oracles import dciodvfy_errors
from tests.integration.orthanc import OrthancServer, free_port

NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


@pytest.fixture
def document(pdf_file: PdfFactory, tmp_path: Path) -> tuple[Path, Path]:
    """A 3 MB odd-length PDF (bigger than the streamed threshold) and its DICOM object."""
    pdf = pdf_file(3 * 1024 * 1024 + 1)
    dcm = tmp_path / "doc.dcm"
    encode_pdf(pdf, dcm, tags={"PatientName": NAME, "PatientID": "DIMSE-1"})
    return pdf, dcm


def _received(folder: Path) -> Path:
    (received,) = list(folder.iterdir())
    return received


@pytest.mark.parametrize(
    ("options", "syntax"),
    [((), "1.2.840.10008.1.2.1"), (("+xi",), "1.2.840.10008.1.2")],
    ids=["explicit", "implicit-only"],
)
def test_storescp_receives_the_pdf_byte_exact(
    options: tuple[str, ...], syntax: str, document: tuple[Path, Path], tmp_path: Path
) -> None:
    pdf, dcm = document
    with storescp(tmp_path / "scp", *options) as server:
        node = dimse.Node.parse(server.node)
        assert dimse.echo(node).status.success
        result = dimse.store(node, dcm)
    assert result.status.success
    assert result.warning is None
    assert result.transfer_syntax == syntax
    received = _received(tmp_path / "scp" / "in")
    stored = pydicom.dcmread(received)
    assert stored.file_meta.TransferSyntaxUID == syntax
    assert (
        stored.get_item("PatientName").value == pydicom.dcmread(dcm).get_item("PatientName").value
    )
    assert str(stored.PatientName) == NAME
    extract_pdf(received, tmp_path / "back.pdf")
    assert (tmp_path / "back.pdf").read_bytes() == pdf.read_bytes()
    assert dciodvfy_errors(received) == []


def test_a_stream_is_sent_as_a_file_is(document: tuple[Path, Path], tmp_path: Path) -> None:
    pdf, dcm = document
    with storescp(tmp_path / "scp") as server, dcm.open("rb") as stream:
        result = dimse.store(dimse.Node.parse(server.node), stream, name="doc.dcm")
    assert result.sent > pdf.stat().st_size
    extract_pdf(_received(tmp_path / "scp" / "in"), tmp_path / "back.pdf")
    assert (tmp_path / "back.pdf").read_bytes() == pdf.read_bytes()


def test_an_object_is_sent_as_it_is_encoded(pdf_file: PdfFactory, tmp_path: Path) -> None:
    """No DICOM file on disk: the encoder's pieces go straight into P-DATA."""
    pdf = pdf_file(2 * 1024 * 1024 + 3)
    with (
        storescp(tmp_path / "scp", "+xi") as server,
        open_encoded(pdf, tags={"PatientName": NAME}) as document,
    ):
        result = dimse.store(dimse.Node.parse(server.node), document.chunks(), name=pdf.name)
    assert result.sent > document.pdf_size
    received = _received(tmp_path / "scp" / "in")
    extract_pdf(received, tmp_path / "back.pdf")
    assert (tmp_path / "back.pdf").read_bytes() == pdf.read_bytes()
    assert str(pydicom.dcmread(received).PatientName) == NAME


@pytest.fixture(scope="module")
def status_scp() -> Iterator[tuple[Any, dict[str, int]]]:
    """A storage SCP answering each C-STORE with the status ``answer["status"]``."""
    from pynetdicom import AE, evt

    answer = {"status": 0}

    def on_store(_event: Any) -> int:
        return answer["status"]

    ae = AE(ae_title="STATUS")
    ae.add_supported_context(ENCAPSULATED_PDF, ["1.2.840.10008.1.2.1"])
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    assert server is not None
    try:
        yield server, answer
    finally:
        server.shutdown()


@pytest.mark.parametrize("code", [0xB000, 0xB006, 0xB007])
def test_warning_statuses_are_reported(
    code: int, status_scp: tuple[Any, dict[str, int]], document: tuple[Path, Path]
) -> None:
    server, answer = status_scp
    answer["status"] = code
    node = dimse.Node.parse(f"STATUS@127.0.0.1:{server.server_address[1]}")
    result = dimse.store(node, document[1])
    assert result.status.code == code
    assert result.warning is not None
    assert f"with warning {code:04X} (" in result.warning


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (0xA700, errors.DicomOutOfResourcesError),
        (0xA900, errors.DicomRefusedError),
        (0xC000, errors.DicomRefusedError),
    ],
)
def test_failure_statuses_are_typed_errors(
    code: int,
    error: type[errors.DicomStatusError],
    status_scp: tuple[Any, dict[str, int]],
    document: tuple[Path, Path],
) -> None:
    server, answer = status_scp
    answer["status"] = code
    node = dimse.Node.parse(f"STATUS@127.0.0.1:{server.server_address[1]}")
    with pytest.raises(error, match=f"failed with status {code:04X} ") as raised:
        dimse.store(node, document[1])
    assert raised.value.status == code


def test_a_receiver_without_the_sop_class_refuses(tmp_path: Path) -> None:
    from pynetdicom import AE

    ae = AE(ae_title="NOPDF")
    ae.add_supported_context("1.2.840.10008.1.1")
    server = ae.start_server(("127.0.0.1", 0), block=False)
    assert server is not None
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    encode_pdf(pdf, tmp_path / "a.dcm")
    try:
        node = dimse.Node.parse(f"NOPDF@127.0.0.1:{server.server_address[1]}")
        with pytest.raises(errors.DicomRefusedError, match="does not accept SOP Class"):
            dimse.store(node, tmp_path / "a.dcm")
    finally:
        server.shutdown()


# --- Orthanc's DICOM port ------------------------------------------------------------------

LISTEN_PORT = free_port()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc that knows pdf2dcm (for C-FIND and the commitment report) and checks the
    called AE title. Its C-FIND answers are in its DefaultEncoding (Latin-1 unless set, which
    drops the Japanese groups of a name): UTF-8 here."""
    config = {
        "DefaultEncoding": "Utf8",
        "DicomCheckCalledAet": True,
        "DicomModalities": {"pdf2dcm": ["PDF2DCM", "127.0.0.1", LISTEN_PORT]},
    }
    with OrthancServer(tmp_path_factory.mktemp("orthanc-dimse"), extra=config) as server:
        yield server


def _orthanc_node(server: OrthancServer, title: str = "PDF2DCMTEST") -> dimse.Node:
    return dimse.Node(title, "127.0.0.1", server.dicom_port)


def test_orthanc_stores_finds_and_commits(
    archive: OrthancServer, document: tuple[Path, Path], tmp_path: Path
) -> None:
    pdf, dcm = document
    node = _orthanc_node(archive)
    stored = dimse.store(node, dcm)
    assert stored.status.success
    (instance,) = archive.get("/instances").json()
    assert archive.get(f"/instances/{instance}/content/0042-0011").content[
        : pdf.stat().st_size
    ] == (pdf.read_bytes())

    (study,) = dimse.find_studies(node, {"PatientID": "DIMSE-1"})
    assert str(study.dataset.PatientName) == NAME
    assert study.raw["PatientName"].rstrip(b" ") == NAME.encode("utf-8")
    assert study.character_set == ("ISO_IR 192",)
    assert study.text("StudyInstanceUID") == pydicom.dcmread(dcm).StudyInstanceUID
    assert dimse.find_studies(node, {"PatientID": "NOBODY"}) == []

    found = dimse.find_instance(node, stored.sop_instance_uid)
    assert found is not None
    assert found.text("SeriesInstanceUID") == pydicom.dcmread(dcm).SeriesInstanceUID
    assert dimse.find_instance(node, "2.25.1") is None
    written = pydicom.dcmread(dcm)
    assert dimse.next_series_number(node, written.StudyInstanceUID) == 2
    assert (
        dimse.next_instance_number(node, written.StudyInstanceUID, written.SeriesInstanceUID) == 2
    )
    assert dimse.next_series_number(node, "2.25.404") == 1

    committed = dimse.commit(
        node,
        [(stored.sop_class_uid, stored.sop_instance_uid)],
        listen_port=LISTEN_PORT,
        timeout=20,
    )
    assert committed.committed == ((stored.sop_class_uid, stored.sop_instance_uid),)
    assert committed.failed == ()


def test_orthanc_does_not_commit_what_it_lacks(archive: OrthancServer) -> None:
    with pytest.raises(errors.CommitmentFailedError, match="did not commit to 1 of 1") as raised:
        dimse.commit(
            _orthanc_node(archive),
            [(ENCAPSULATED_PDF, "2.25.999")],
            listen_port=LISTEN_PORT,
            timeout=20,
        )
    result = raised.value.result
    assert isinstance(result, dimse.CommitResult)
    assert [failed[1] for failed in result.failed] == ["2.25.999"]


def test_orthanc_rejects_an_unknown_called_title(archive: OrthancServer) -> None:
    with pytest.raises(errors.AssociationRejectedError, match="Called AE title not recognised"):
        dimse.echo(_orthanc_node(archive, "WRONG"))


def test_storescu_reads_what_encode_wrote(document: tuple[Path, Path], tmp_path: Path) -> None:
    """The same object through DCMTK's own sender, as the benchmark compares them."""
    pdf, dcm = document
    storescu = require_binary("storescu")
    with storescp(tmp_path / "scp") as server:
        subprocess.run(
            [storescu, "-aec", "STORE", "127.0.0.1", str(server.port), str(dcm)], check=True
        )
    extract_pdf(_received(tmp_path / "scp" / "in"), tmp_path / "back.pdf")
    assert (tmp_path / "back.pdf").read_bytes() == pdf.read_bytes()


@pytest.fixture
def committing_scp() -> Iterator[Any]:
    """A storage commitment SCP that reports on the same association, right after its
    N-ACTION response has gone out: every instance committed except 2.25.666; a request
    for 2.25.0 is never reported on."""
    import threading

    from pydicom.dataset import Dataset
    from pynetdicom import AE, evt

    def on_action(event: Any) -> tuple[int, None]:
        request = event.action_information
        report = Dataset()
        report.TransactionUID = request.TransactionUID
        report.ReferencedSOPSequence = [
            item
            for item in request.ReferencedSOPSequence
            if item.ReferencedSOPInstanceUID != "2.25.666"
        ]
        failed = [
            item
            for item in request.ReferencedSOPSequence
            if item.ReferencedSOPInstanceUID == "2.25.666"
        ]
        for item in failed:
            item.FailureReason = 0x0112
        if failed:
            report.FailedSOPSequence = failed
        if not any(i.ReferencedSOPInstanceUID == "2.25.0" for i in request.ReferencedSOPSequence):
            pending[event.assoc] = report
        return 0x0000, None

    def on_sent(event: Any) -> None:
        report = pending.pop(event.assoc, None)
        if report is not None and type(event.message).__name__ == "N_ACTION_RSP":
            threading.Thread(target=send, args=(event.assoc, report)).start()

    def send(assoc: Any, report: Any) -> None:
        event_type = 2 if "FailedSOPSequence" in report else 1
        assoc.send_n_event_report(
            report,
            event_type,
            dimse.STORAGE_COMMITMENT_PUSH_MODEL,
            dimse.STORAGE_COMMITMENT_INSTANCE,
        )

    pending: dict[Any, Any] = {}
    ae = AE(ae_title="COMMIT")
    ae.add_supported_context(dimse.STORAGE_COMMITMENT_PUSH_MODEL)
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_N_ACTION, on_action), (evt.EVT_DIMSE_SENT, on_sent)],
    )
    assert server is not None
    try:
        yield server
    finally:
        server.shutdown()


def test_a_report_on_the_same_association(committing_scp: Any) -> None:
    node = dimse.Node.parse(f"COMMIT@127.0.0.1:{committing_scp.server_address[1]}")
    result = dimse.commit(node, [(ENCAPSULATED_PDF, "2.25.1"), (ENCAPSULATED_PDF, "2.25.2")])
    assert result.committed == ((ENCAPSULATED_PDF, "2.25.1"), (ENCAPSULATED_PDF, "2.25.2"))
    with pytest.raises(errors.CommitmentFailedError, match=r"2\.25\.666, 0112 \(No such SOP"):
        dimse.commit(node, [(ENCAPSULATED_PDF, "2.25.1"), (ENCAPSULATED_PDF, "2.25.666")])


def test_no_report_in_time(committing_scp: Any) -> None:
    node = dimse.Node.parse(f"COMMIT@127.0.0.1:{committing_scp.server_address[1]}")
    for listen_port in (None, free_port()):
        with pytest.raises(errors.CommitmentTimeoutError, match="no storage commitment report"):
            dimse.commit(node, [(ENCAPSULATED_PDF, "2.25.0")], listen_port=listen_port, timeout=0.5)
