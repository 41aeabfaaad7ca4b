"""Start-up: one file in one call, beside the tools it replaces (issue 21's targets).

    .venv/bin/python bench/startup_bench.py          # 15 runs of each, interleaved
    .venv/bin/python bench/startup_bench.py --runs 31

Rows: ``pdf2dcm --version``; ``encode`` of one 52 KiB PDF beside DCMTK's ``pdf2dcm``; the
README's headline ``upload HelloWorld2.pdf --tag PatientName=Benjamino`` beside the seed's
curl recipe, into a private Orthanc emptied before every run (so each upload stores a new
instance, as a first upload does). The package's bytecode is compiled first, as installing
a wheel does: without it (``PYTHONDONTWRITEBYTECODE``, an editable install never run) every
run compiles pdf2dcm's sources again, about 40 ms more.
"""

from __future__ import annotations

import argparse
import compileall
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    PDF2DCM,
    Case,
    Command,
    clear_orthanc,
    have,
    headline_upload,
    private_orthanc,
    run_case,
    write_pdf,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    compileall.compile_dir(str(ROOT / "src" / "pdf2dcm"), quiet=1)
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        work = Path(tmp)
        pdf = str(write_pdf(work / "one.pdf", 52 * 1024))
        dcmtk: dict[str, Command] = {"DCMTK pdf2dcm": ["pdf2dcm", pdf, str(work / "dcmtk.dcm")]}
        cases = [
            Case("start-up: --version", [*PDF2DCM, "--version"], {}),
            Case(
                "start-up: encode one 52 KiB",
                [*PDF2DCM, "encode", pdf, "-o", str(work / "one.dcm"), "--overwrite"],
                dcmtk if have("pdf2dcm", skipped) else {},
            ),
        ]
        print(f"python {sys.version.split()[0]}, {options.runs} runs, medians")
        for case in cases:
            run_case(case, options.runs)
        if have("Orthanc", skipped):
            with private_orthanc(work) as (url, pid):
                run_case(headline_upload(url, work, clear_orthanc(url), pid), options.runs)
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}")


if __name__ == "__main__":
    main()
