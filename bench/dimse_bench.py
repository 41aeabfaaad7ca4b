"""C-STORE of a large Encapsulated PDF: ``pdf2dcm.dimse.store`` against DCMTK ``storescu``.

    .venv/bin/python bench/dimse_bench.py              # a 500 MiB PDF, 3 rounds
    .venv/bin/python bench/dimse_bench.py --mib 300 --rounds 1

One PDF is encoded once; a DCMTK storescp on a free loopback port receives every send (with
``--ignore``, so its disk does not count, unless ``--keep``). Each round sends the object once
with storescu and once with pdf2dcm (Explicit VR), once to ``storescp +xi`` with pdf2dcm
(re-encoded to Implicit VR on the way), once encoding the PDF while sending it (no DICOM
file), and once as ``pdf2dcm upload --via dimse`` (planned, checksummed, encoded and sent),
each in its own process: the wall time from start to
exit, its ratio to storescu's, and the process's peak resident memory (from /usr/bin/time)
are printed. Also printed: what importing ``pdf2dcm.dimse`` costs, and that it loads
neither pydicom nor pynetdicom (C-STORE needs neither).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.dicom_nodes import storescp  # noqa: E402
from tests.pdfs import make_pdf  # noqa: E402

SEND = """
import sys
from pdf2dcm import dimse
dimse.store(dimse.Node.parse(sys.argv[1]), sys.argv[2])
"""
SEND_ENCODING = """
import sys
from pdf2dcm import dimse
from pdf2dcm.dicom import open_encoded
with open_encoded(sys.argv[2]) as document:
    dimse.store(dimse.Node.parse(sys.argv[1]), document.chunks())
"""
IMPORT_COST = """
import sys, time
started = time.perf_counter()
from pdf2dcm import dimse
print(time.perf_counter() - started, "pydicom" in sys.modules, "pynetdicom" in sys.modules)
"""


def measured(command: list[str]) -> tuple[float, float]:
    """Seconds from start to exit, and peak RSS in MiB, of one process.

    Run under /usr/bin/time, whose child is forked from a small process: one forked from
    this Python would count this Python's memory in its peak.
    """
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *command], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr.strip()}")
    seconds, kib = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024


def big_pdf(path: Path, mib: int) -> None:
    """A valid small PDF followed by ``mib`` MiB of a comment, written in pieces."""
    head = make_pdf(2000)
    body, tail = head[: head.rindex(b"%%EOF")], b"%%EOF\n"
    with path.open("wb") as out:
        out.write(body)
        piece = b"%" + b"x" * (1024 * 1024 - 2) + b"\n"
        for _ in range(mib):
            out.write(piece)
        out.write(tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="let storescp write to disk")
    options = parser.parse_args()
    receive = () if options.keep else ("--ignore",)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pdf, dcm = root / "big.pdf", root / "big.dcm"
        big_pdf(pdf, options.mib)
        subprocess.run(
            [sys.executable, "-m", "pdf2dcm", "encode", str(pdf), "-o", str(dcm)], check=True
        )
        print(f"object: {dcm.stat().st_size / 2**20:.0f} MiB")
        imports = [
            subprocess.run(
                [sys.executable, "-c", IMPORT_COST], capture_output=True, text=True, check=True
            ).stdout.split()
            for _ in range(5)
        ]
        seconds = statistics.median(float(run[0]) for run in imports)
        print(
            f"import pdf2dcm.dimse: {seconds * 1000:.0f} ms (loads pydicom: {imports[0][1]}, "
            f"pynetdicom: {imports[0][2]})"
        )
        results: dict[str, list[tuple[float, float]]] = {}
        with (
            storescp(root / "explicit", *receive) as explicit,
            storescp(root / "implicit", "+xi", *receive) as implicit,
        ):
            for _ in range(options.rounds):
                runs = {
                    "storescu": ["storescu", "-aec", "STORE", "127.0.0.1", str(explicit.port)],
                    "pdf2dcm": [sys.executable, "-c", SEND, explicit.node],
                    "pdf2dcm to +xi": [sys.executable, "-c", SEND, implicit.node],
                }
                for name, command in runs.items():
                    results.setdefault(name, []).append(measured([*command, str(dcm)]))
                encoding = [sys.executable, "-c", SEND_ENCODING, explicit.node, str(pdf)]
                results.setdefault("encode + send", []).append(measured(encoding))
                upload = [sys.executable, "-m", "pdf2dcm", "upload", str(pdf), "--no-progress"]
                upload += ["--via", "dimse", "--scp", explicit.node, "--tag", "PatientID=BENCH"]
                results.setdefault("upload --via dimse", []).append(measured(upload))
        reference = statistics.median(f[0] for f in results["storescu"])
        for name, figures in results.items():
            seconds = statistics.median(f[0] for f in figures)
            peak = max(f[1] for f in figures)
            rate = dcm.stat().st_size / 2**20 / seconds
            print(
                f"{name:18} {seconds:6.2f} s  {seconds / reference:5.2f}x  {rate:6.0f} MiB/s  "
                f"peak RSS {peak:6.1f} MiB"
            )


if __name__ == "__main__":
    main()
