"""The examples in examples/ keep working, and the bundled PDF is what its script makes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.orthanc import OrthancServer

ROOT = Path(__file__).parents[2]


def run_example(*command: str, env: dict[str, str] | None = None) -> str:
    bin_dir = str(Path(sys.executable).parent)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **(env or {})}
    done = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sample_pdf_is_regenerated_identically(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import make_hello_pdf
    finally:
        sys.path.pop(0)
    assert make_hello_pdf.build() == (ROOT / "examples" / "HelloWorld2.pdf").read_bytes()


def test_shell_example() -> None:
    assert "round trip identical" in run_example("bash", "examples/encode_and_extract.sh")


def test_python_example() -> None:
    out = run_example(sys.executable, "examples/encode_from_python.py")
    assert "PatientName     Müller^Jürgen  (ISO_IR 192)" in out


def test_orthanc_example(orthanc: OrthancServer) -> None:
    out = run_example(
        sys.executable, "examples/upload_and_fetch.py", env={"ORTHANC_URL": orthanc.url}
    )
    assert "identical to HelloWorld2.pdf" in out
    assert ": Success, " in out
