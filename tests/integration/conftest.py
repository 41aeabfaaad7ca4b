"""Fixtures shared by the DICOM networking tests of ``upload`` and ``watch``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dicom_nodes import write_worklist_file
from tests.integration.test_dimse_worklist import NAMES, _procedure

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


@pytest.fixture
def uncommitting_scp() -> Iterator[str]:
    """Stores every document, then reports (on the same association) that it commits to none."""
    import threading

    from pydicom.dataset import Dataset
    from pynetdicom import AE, evt

    from pdf2dcm import dimse

    pending: dict[Any, Any] = {}

    def on_action(event: Any) -> tuple[int, None]:
        request = event.action_information
        report = Dataset()
        report.TransactionUID = request.TransactionUID
        failed = list(request.ReferencedSOPSequence)
        for item in failed:
            item.FailureReason = 0x0110
        report.FailedSOPSequence = failed
        pending[event.assoc] = report
        return 0x0000, None

    def on_sent(event: Any) -> None:
        report = pending.pop(event.assoc, None)
        if report is not None:
            threading.Thread(
                target=event.assoc.send_n_event_report,
                args=(
                    report,
                    2,
                    dimse.STORAGE_COMMITMENT_PUSH_MODEL,
                    dimse.STORAGE_COMMITMENT_INSTANCE,
                ),
            ).start()

    ae = AE(ae_title="NOCOMMIT")
    ae.add_supported_context(ENCAPSULATED_PDF, ["1.2.840.10008.1.2.1"])
    ae.add_supported_context(dimse.STORAGE_COMMITMENT_PUSH_MODEL)
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[
            (evt.EVT_C_STORE, lambda _event: 0x0000),
            (evt.EVT_N_ACTION, on_action),
            (evt.EVT_DIMSE_SENT, on_sent),
        ],
    )
    assert server is not None
    try:
        yield f"NOCOMMIT@127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def worklist_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Worklist files for DCMTK wlmscpfs: one scheduled procedure per character set of
    test_dimse_worklist.NAMES, for upload and watch asking a worklist node directly."""
    root = tmp_path_factory.mktemp("worklist-node")
    folder = root / "PDF2DCMWL"
    folder.mkdir()
    for index, (charset, (_codec, name)) in enumerate(NAMES.items()):
        write_worklist_file(folder / f"{index}.wl", _procedure(charset, name))
    return root
