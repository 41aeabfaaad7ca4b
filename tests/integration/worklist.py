"""A real modality worklist SCP for tests: DCMTK's wlmscpfs serving files made by dump2dcm.

The worklist files are written from dcmdump-style text, encoded in the character set the
test names, so the SCP answers with exactly the bytes a hospital's RIS would send.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import require_binary
from tests.integration.orthanc import free_port

AE_TITLE = "PDF2DCMWL"


def procedure_dump(
    *,
    accession: str,
    patient_id: str,
    patient_name: str,
    study_uid: str,
    description: str = "Consent form",
    charset: str = "ISO_IR 100",
) -> str:
    """The text of one scheduled procedure, complete enough for wlmscpfs to serve it."""
    return f"""(0008,0005) CS [{charset}]
(0008,0050) SH [{accession}]
(0008,0090) PN [Referring^Doctor]
(0010,0010) PN [{patient_name}]
(0010,0020) LO [{patient_id}]
(0010,0030) DA [19700101]
(0010,0040) CS [F]
(0020,000d) UI [{study_uid}]
(0032,1060) LO [{description}]
(0040,0100) SQ (Sequence with explicit length #=1)
  (fffe,e000) na (Item with explicit length #=7)
    (0008,0060) CS [OT]
    (0040,0001) AE [SCANNER]
    (0040,0002) DA [20261128]
    (0040,0003) TM [120000]
    (0040,0006) PN [Performing^Doctor]
    (0040,0007) LO [Scan]
    (0040,0009) SH [SPS-{accession}]
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)
(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)
(0040,1001) SH [RP-{accession}]
(0040,1003) SH [LOW]
"""


class WorklistServer:
    """wlmscpfs on a free loopback port, serving ``root/AE_TITLE/*.wl``."""

    def __init__(self, root: Path) -> None:
        self.binary = require_binary("wlmscpfs")
        self.dump2dcm = require_binary("dump2dcm")
        self.root = root
        self.folder = root / AE_TITLE
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "lockfile").touch()
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def add(self, name: str, dump: str, encoding: str = "latin-1") -> Path:
        """Write one worklist file from dump text, encoded as the SCP should send it."""
        text = self.root / f"{name}.dump"
        text.write_bytes(dump.encode(encoding))
        return self.add_raw(name, text)

    def add_raw(self, name: str, text: Path) -> Path:
        """Write one worklist file from a dump file whose bytes are already encoded."""
        target = self.folder / f"{name}.wl"
        subprocess.run(
            [self.dump2dcm, "-q", "--write-xfer-little", str(text), str(target)], check=True
        )
        return target

    def __enter__(self) -> WorklistServer:
        log = (self.root / "wlmscpfs.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-dfp", str(self.root), str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("wlmscpfs did not listen within 10 s")

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
