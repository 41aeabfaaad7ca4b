"""How long ``pdf2dcm ls`` takes on a server full of images: 5,000 non-PDF instances, 200 PDFs.

    .venv/bin/python bench/ls_bench.py [--images 5000] [--pdfs 200] [--runs 5]

A private Orthanc is filled with small Secondary Capture images (50 per series, 10 series
per study) and Encapsulated PDFs, then ``pdf2dcm ls`` (whole server, one patient, a title
filter) is timed in fresh processes, beside the obvious alternative, Orthanc's own
``/tools/find`` on SOPClassUID at instance level, which reads every instance's file.
Medians are printed; the figures go to the README.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.orthanc import OrthancServer  # noqa: E402
from tests.pdfs import make_pdf  # noqa: E402

PDF2DCM = [sys.executable, "-m", "pdf2dcm"]


def image(study: str, series: str, patient: str, number: int) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientID, ds.PatientName = patient, "Image^Patient"
    ds.StudyDate, ds.Modality, ds.InstanceNumber = "20250101", "OT", str(number)
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(64)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def fill(server: OrthancServer, images: int, pdfs: int, work: Path) -> None:
    session = requests.Session()

    def post(data: bytes) -> None:
        session.post(f"{server.url}/instances", data=data, timeout=60).raise_for_status()

    bodies = []
    for index in range(images):
        study_index, series_index = index // 500, index // 50
        bodies.append(
            image(
                f"1.2.826.0.1.3680043.10.500.{study_index}",
                f"1.2.826.0.1.3680043.10.500.{study_index}.{series_index}",
                f"IMG{study_index % 20}",
                index % 50 + 1,
            )
        )
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post, bodies))
    folder = work / "pdfs"
    folder.mkdir()
    for index in range(pdfs):
        (folder / f"doc{index:04d}.pdf").write_bytes(make_pdf(3000 + 2 * index, seed=index))
    for patient in range(10):
        names = [str(folder / f"doc{i:04d}.pdf") for i in range(patient, pdfs, 10)]
        subprocess.run(
            [
                *PDF2DCM,
                "upload",
                *names,
                "--url",
                server.url,
                "--tag",
                f"PatientID=DOC{patient}",
                "--no-progress",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def timed(command: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, len(done.stdout.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--pdfs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").exists() else None) as tmp:
        work = Path(tmp)
        with OrthancServer(work / "orthanc") as server:
            started = time.perf_counter()
            fill(server, args.images, args.pdfs, work)
            print(
                f"filled with {args.images} images and {args.pdfs} PDFs in "
                f"{time.perf_counter() - started:.1f} s"
            )
            cases = {
                "pdf2dcm ls (all)": [*PDF2DCM, "ls", "--url", server.url],
                "pdf2dcm ls --patient PatientID=DOC3": [
                    *PDF2DCM,
                    "ls",
                    "--url",
                    server.url,
                    "--patient",
                    "PatientID=DOC3",
                ],
                "pdf2dcm ls --title doc": [*PDF2DCM, "ls", "--url", server.url, "--title", "doc"],
            }
            find_body = (
                '{"Level": "Instance", "Query": {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.104.1"}}'
            )
            cases["curl /tools/find SOPClassUID (IDs only)"] = [
                "curl",
                "-s",
                "-X",
                "POST",
                f"{server.url}/tools/find",
                "-d",
                find_body,
            ]
            print(f"{'case':45} {'median s':>9} {'lines':>6}")
            for name, command in cases.items():
                runs = [timed(command) for _ in range(args.runs)]
                median = statistics.median(seconds for seconds, _ in runs)
                print(f"{name:45} {median:9.2f} {runs[0][1]:6d}")


if __name__ == "__main__":
    main()
