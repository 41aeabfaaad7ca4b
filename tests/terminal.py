"""Run ``pdf2dcm`` with its stdout on a pseudo-terminal and read what the screen received."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys


def run_on_terminal(*args: str, columns: int = 160) -> tuple[int, str, str]:
    """Exit code, what stdout's terminal showed, and stderr (a pipe)."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORTHANC_", "PDF2DCM_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "pdf2dcm", *args],
        stdout=secondary,
        stderr=subprocess.PIPE,
        env=env | {"COLUMNS": str(columns), "TERM": "xterm", "NO_COLOR": "1"},
    )
    os.close(secondary)
    received = read_to_end(primary)
    _out, err = process.communicate(timeout=30)
    os.close(primary)
    return process.returncode, received.decode("utf-8"), err.decode("utf-8")


def read_to_end(primary: int, quiet_for: float = 30) -> bytes:
    """Everything the pseudo-terminal received until the process closed its end (or was
    silent for ``quiet_for`` seconds)."""
    received = b""
    while True:
        ready, _, _ = select.select([primary], [], [], quiet_for)
        if not ready:
            break
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        received += chunk
    return received
