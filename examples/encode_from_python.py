"""Encode the sample PDF from Python, read the result with pydicom, and extract it again.

python examples/encode_from_python.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pydicom

from pdf2dcm import encode_pdf, extract_pdf

SAMPLE = Path(__file__).with_name("HelloWorld2.pdf")


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        dicom_path = Path(work, "hello.dcm")
        result = encode_pdf(
            SAMPLE,
            dicom_path,
            tags={"PatientName": "Müller^Jürgen", "PatientID": "EX-0002", "PatientSex": "M"},
        )
        dataset = pydicom.dcmread(dicom_path)
        print(f"SOPInstanceUID  {result.sop_instance_uid}")
        print(f"PatientName     {dataset.PatientName}  ({dataset.SpecificCharacterSet})")
        print(f"DocumentTitle   {dataset.DocumentTitle}")
        back = extract_pdf(dicom_path, Path(work, "back.pdf"))  # checksum=True by default
        assert back.sha256 is not None, "extract_pdf computes the sha256 unless told not to"
        assert back.sha256 == result.sha256, "the PDF changed on the way"
        print(f"PDF round trip  {back.size} bytes, sha256 {back.sha256[:16]}...")


if __name__ == "__main__":
    main()
