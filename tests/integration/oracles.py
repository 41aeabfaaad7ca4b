"""Independent judges of our files: dicom3tools' dciodvfy and DCMTK's dcm2pdf and dcmdump."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_binary


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for a file (empty when the object is valid)."""
    done = subprocess.run(
        [require_binary("dciodvfy"), str(path)], capture_output=True, text=True, check=False
    )
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "Error" in line]
    if done.returncode != 0 and not errors:
        errors.append(f"dciodvfy exited {done.returncode}")
    return errors


def dcm2pdf(path: Path, target: Path) -> bytes:
    """The PDF as DCMTK extracts it."""
    subprocess.run([require_binary("dcm2pdf"), str(path), str(target)], check=True)
    return target.read_bytes()


def dcmdump_value(path: Path, keyword: str) -> str:
    """One attribute's value as dcmdump prints it, converted to UTF-8 by DCMTK itself."""
    done = subprocess.run(
        [require_binary("dcmdump"), "-q", "+U8", "+P", keyword, str(path)],
        capture_output=True,
        check=True,
    )
    line = done.stdout.decode("utf-8").strip()
    if "(no value available)" in line:
        return ""
    return line[line.index("[") + 1 : line.rindex("]")]


def dcm2pdf_expected(pdf: bytes) -> bytes:
    """What DCMTK 3.6.7's dcm2pdf returns: it ignores EncapsulatedDocumentLength and trims
    an even-length PDF's last byte unless that byte is CR, LF or 'F'."""
    if len(pdf) % 2 == 0 and pdf[-1:] not in (b"\r", b"\n", b"F"):
        return pdf[:-1]
    return pdf


def dcentvfy_errors(*paths: Path) -> list[str]:
    """dicom3tools' cross-object check: objects of one study must agree on patient and study."""
    done = subprocess.run(
        [require_binary("dcentvfy"), *map(str, paths)], capture_output=True, check=False
    )
    text = (done.stdout + done.stderr).decode("utf-8", "replace")
    errors = [line for line in text.splitlines() if "Error" in line]
    if done.returncode != 0 and not errors:
        errors.append(f"dcentvfy exited {done.returncode}")
    return errors
