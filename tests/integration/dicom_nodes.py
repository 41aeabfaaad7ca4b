"""Real DICOM nodes for tests: DCMTK storescp and wlmscpfs on free loopback ports.

Each is started from its binary, waited for until its port accepts connections, and stopped
by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from tests.conftest import require_binary
from tests.integration.orthanc import free_port


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    """Return once ``port`` accepts connections; fail if the process ends or 10 s pass."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} before listening")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{name} did not listen within 10 s")


class DcmtkNode:
    """One DCMTK server process on a free port, with its output in ``root/NAME.log``."""

    def __init__(self, binary: str, root: Path, arguments: Sequence[str], ae_title: str) -> None:
        self.binary = require_binary(binary)
        self.root = root
        self.arguments = list(arguments)
        self.ae_title = ae_title
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def __enter__(self) -> DcmtkNode:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f"{Path(self.binary).name}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, *self.arguments, str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_port(self.port, self.process, self.binary)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)


def storescp(root: Path, *options: str) -> DcmtkNode:
    """storescp writing what it receives into ``root/in``; ``+xi`` accepts Implicit only."""
    (root / "in").mkdir(parents=True, exist_ok=True)
    return DcmtkNode(
        "storescp", root, ["--aetitle", "STORE", "-od", str(root / "in"), *options], "STORE"
    )


WORKLIST_AET = "PDF2DCMWL"


def wlmscpfs(root: Path, *options: str) -> DcmtkNode:
    """wlmscpfs serving ``root/PDF2DCMWL/*.wl``; ``-csk`` passes each file's character set
    on, ``-cs0`` (DCMTK's default) sends none."""
    folder = root / WORKLIST_AET
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lockfile").touch()
    return DcmtkNode("wlmscpfs", root, ["-dfp", str(root), *options], WORKLIST_AET)


def write_worklist_file(path: Path, dataset: Dataset) -> Path:
    """Write a worklist answer as wlmscpfs reads it (a DICOM file, Explicit VR LE)."""
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.31")
    dataset.file_meta.MediaStorageSOPInstanceUID = UID("2.25.1")
    dataset.save_as(path, enforce_file_format=True)
    return path
