"""An archive for the ``ls`` benchmarks: documents of 200 kB, one per study, a day apart, and
small images beside them, built with pydicom and posted straight to Orthanc (quick to fill).

Shared by ``bench/ls_bench.py`` and ``bench/run.py``; it imports neither.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pdfs import make_pdf  # noqa: E402

DOCUMENT_BYTES = 200_000
UID_ROOT = "1.2.826.0.1.3680043.10.901"


def document(number: int, pdf: bytes, today: dt.date) -> bytes:
    """Document ``number``: its own patient of 500, its own study, ``number`` days ago."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.SOPInstanceUID = f"{UID_ROOT}.{number}.1"
    ds.StudyInstanceUID = f"{UID_ROOT}.{number}"
    ds.SeriesInstanceUID = f"{UID_ROOT}.{number}.2"
    ds.PatientID = f"LS{number % 500:04d}"
    ds.PatientName = f"Müller^Jürgen {number % 500}"
    ds.StudyDate = (today - dt.timedelta(days=number)).strftime("%Y%m%d")
    ds.StudyTime = "120000"
    ds.ContentDate, ds.ContentTime = ds.StudyDate, ds.StudyTime
    ds.AccessionNumber = f"A{number}"
    ds.Modality = "DOC"
    ds.DocumentTitle = f"Einverständnis Koloskopie {number}"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def image(number: int) -> bytes:
    """A small image in study ``number // 500``'s series ``number // 50`` (10 per study)."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = f"{UID_ROOT}.9.{number}"
    ds.StudyInstanceUID = f"{UID_ROOT}.8.{number // 500}"
    ds.SeriesInstanceUID = f"{UID_ROOT}.7.{number // 50}"
    ds.PatientID, ds.PatientName = f"IMG{number // 500}", "Image^Patient"
    ds.StudyDate, ds.Modality, ds.InstanceNumber = "20250101", "OT", str(number % 50 + 1)
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


def fill(url: str, start: int, stop: int, images: int = 0) -> None:
    """Documents ``start``..``stop - 1`` (and ``images`` images) posted four at a time."""
    session = requests.Session()
    pdf = make_pdf(DOCUMENT_BYTES)
    today = dt.date.today()

    def post(body: bytes) -> None:
        session.post(f"{url}/instances", data=body, timeout=60).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post, (document(n, pdf, today) for n in range(start, stop))))
        list(pool.map(post, (image(n) for n in range(images))))
