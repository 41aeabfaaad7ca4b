"""Upload the sample PDF to Orthanc, archive its study as a job, and fetch the PDF back.

Needs a running Orthanc; the connection comes from ORTHANC_URL (default
http://localhost:8042), ORTHANC_USERNAME/ORTHANC_PASSWORD or ~/.netrc:

    ORTHANC_URL=http://localhost:8042 python examples/upload_and_fetch.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pdf2dcm import OrthancClient, UploadOptions, fetch_pdf, resolve_settings, upload_file
from pdf2dcm.jobs import download_output, wait_for_job

SAMPLE = Path(__file__).with_name("HelloWorld2.pdf")


def main() -> None:
    with OrthancClient(resolve_settings()) as client, tempfile.TemporaryDirectory() as work:
        stored = upload_file(
            client,
            str(SAMPLE),
            UploadOptions(tags={"PatientName": "Benjamino", "PatientID": "EX-0003"}),
        )
        print(f"{stored.status}: instance {stored.id} in study {stored.parent_study}")
        back = fetch_pdf(client, str(stored.id), Path(work, "back.pdf"))
        assert Path(work, "back.pdf").read_bytes() == SAMPLE.read_bytes()
        print(f"fetched {back.size} bytes, identical to {SAMPLE.name}")
        job = client.request(
            "POST", f"/studies/{stored.parent_study}/archive", json={"Asynchronous": True}
        ).json()
        status = wait_for_job(client, job["ID"], timeout=120)
        size = download_output(client, status.id, Path(work, "study.zip"))
        print(f"archive job {status.id}: {status.state.value}, {size} bytes")


if __name__ == "__main__":
    main()
