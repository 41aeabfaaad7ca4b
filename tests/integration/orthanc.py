"""A private Orthanc for tests: own storage, free loopback ports, generated configuration.

Each server is started from the ``Orthanc`` binary and stopped by its PID; the system
service is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from tests.conftest import require_binary

DICOMWEB_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def dicomweb_plugin() -> str:
    for candidate in DICOMWEB_PLUGIN_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    require_binary("__orthanc-dicomweb-plugin__ (Debian package orthanc-dicomweb)")
    raise AssertionError("unreachable")


class OrthancServer:
    """One Orthanc process with its own directory; ``url`` is where it answers."""

    def __init__(self, root: Path, *, extra: dict[str, Any] | None = None) -> None:
        self.binary = require_binary("Orthanc")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config: dict[str, Any] = {
            "Name": f"pdf2dcm-test-{self.http_port}",
            "StorageDirectory": str(root / "storage"),
            "IndexDirectory": str(root / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": "PDF2DCMTEST",
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpDescribeErrors": True,
            "StableAge": 1,
            "Plugins": [dicomweb_plugin()],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        self.config.update(extra or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.auth: tuple[str, str] | None = None
        users = self.config.get("RegisteredUsers")
        if isinstance(users, dict) and users:
            self.auth = next(iter(users.items()))

    def start(self) -> None:
        config_path = self.root / "orthanc.json"
        config_path.write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        log = (self.root / "orthanc.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start; see {self.root / 'orthanc.log'}")
            try:
                if requests.get(f"{self.url}/system", auth=self.auth, timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within 30 s; see {self.root / 'orthanc.log'}")

    def __enter__(self) -> OrthancServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """Stop abruptly, as a crash or an operator's kill would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        response = requests.get(f"{self.url}{path}", auth=self.auth, timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def instance_count(self) -> int:
        return len(self.get("/instances").json())
