"""Benchmarks: pdf2dcm against DCMTK and a plain copy, with wall time and peak memory.

    .venv/bin/python bench/run.py            # full sizes (1, 50, 500 MiB)
    .venv/bin/python bench/run.py --quick    # small sizes, for a smoke run

Every case runs several times, A/B interleaved, each run in a fresh process whose peak RSS is
read from the kernel (``getrusage`` of a waited child), and the table shows medians. A
reference tool that is not installed is skipped and named as such.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pdfs import make_pdf  # noqa: E402

MiB = 1024 * 1024
PDF2DCM = [sys.executable, "-m", "pdf2dcm"]


@dataclass
class Measurement:
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_rss_mib(self) -> float:
        return statistics.median(self.peak_rss) / MiB


@dataclass
class Case:
    """One benchmark row: our command and the commands it is compared with."""

    name: str
    ours: Sequence[str] | Callable[[], None]
    references: dict[str, Sequence[str] | Callable[[], None]]
    prepare: Callable[[], None] | None = None
    results: dict[str, Measurement] = field(default_factory=dict)


def measure(command: Sequence[str] | Callable[[], None]) -> tuple[float, int]:
    """Wall time and peak RSS of one run, in a fresh process so the peak is its own."""
    if callable(command):
        started = time.perf_counter()
        command()
        return time.perf_counter() - started, 0
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "t = time.perf_counter() - t\n"
        "print(t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True
    )
    seconds, rss_kib = done.stdout.split()
    return float(seconds), int(rss_kib) * 1024


def run_cases(cases: Sequence[Case], repeats: int) -> None:
    for case in cases:
        contenders = {"pdf2dcm": case.ours, **case.references}
        case.results = {label: Measurement() for label in contenders}
        for _ in range(repeats):
            for label, command in contenders.items():
                if case.prepare is not None:
                    case.prepare()
                seconds, rss = measure(command)
                case.results[label].seconds.append(seconds)
                case.results[label].peak_rss.append(rss)
        print_case(case)


def print_case(case: Case) -> None:
    ours = case.results["pdf2dcm"]
    for label, result in case.results.items():
        ratio = result.median_seconds / ours.median_seconds if ours.median_seconds else 0
        rss = f"{result.median_rss_mib:8.1f}" if result.peak_rss[0] else "       -"
        note = "" if label == "pdf2dcm" else f"  ({ratio:.2f}x our time)"
        print(
            f"{case.name:<34} {label:<22} {result.median_seconds:9.3f} s {rss} MiB{note}",
            flush=True,
        )


def have(tool: str, skipped: list[str]) -> bool:
    if shutil.which(tool) is None:
        skipped.append(tool)
        return False
    return True


def encode_cases(
    work: Path, sizes: Sequence[int], small_count: int, skipped: list[str]
) -> list[Case]:
    cases: list[Case] = []
    dcmtk = have("/usr/bin/pdf2dcm", skipped)
    for size in sizes:
        pdf = work / f"in-{size // MiB}.pdf"
        pdf.write_bytes(make_pdf(size, seed=None))
        out = work / "out.dcm"

        def clean(target: Path = out) -> None:
            target.unlink(missing_ok=True)

        references: dict[str, Sequence[str] | Callable[[], None]] = {
            "cp (floor)": ["cp", str(pdf), str(out)],
        }
        if dcmtk:
            references["DCMTK pdf2dcm"] = ["/usr/bin/pdf2dcm", str(pdf), str(out)]
        cases.append(
            Case(
                f"encode {size / MiB:g} MiB",
                [*PDF2DCM, "encode", str(pdf), "-o", str(out), "--overwrite"],
                references,
                prepare=clean,
            )
        )
    largest = work / f"in-{sizes[-1] // MiB}.pdf"
    encoded = work / "largest.dcm"
    subprocess.run(
        [*PDF2DCM, "encode", str(largest), "-o", str(encoded), "--overwrite"], check=True
    )
    back = work / "back.pdf"
    extract_refs: dict[str, Sequence[str] | Callable[[], None]] = {}
    if have("dcm2pdf", skipped):
        extract_refs["DCMTK dcm2pdf"] = ["dcm2pdf", str(encoded), str(back)]
    cases.append(
        Case(
            f"extract {sizes[-1] / MiB:g} MiB",
            [*PDF2DCM, "extract", str(encoded), "-o", str(back), "--overwrite"],
            extract_refs,
            prepare=lambda: back.unlink(missing_ok=True),
        )
    )
    small_dir = work / "small"
    small_dir.mkdir()
    smalls = []
    for index in range(small_count):
        path = small_dir / f"s{index:03d}.pdf"
        path.write_bytes(make_pdf(52 * 1024, seed=None))
        smalls.append(str(path))
    out_dir = work / "small-out"

    def clean_small() -> None:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()

    def dcmtk_loop() -> None:
        for path in smalls:
            subprocess.run(
                ["/usr/bin/pdf2dcm", path, str(out_dir / (Path(path).stem + ".dcmtk"))],
                check=True,
                stdout=subprocess.DEVNULL,
            )

    small_refs: dict[str, Sequence[str] | Callable[[], None]] = {}
    if dcmtk:
        small_refs[f"DCMTK x{small_count} calls"] = dcmtk_loop
    cases.append(
        Case(
            f"encode {small_count} x 52 KiB, one call",
            [*PDF2DCM, "encode", *smalls, "-d", str(out_dir)],
            small_refs,
            prepare=clean_small,
        )
    )
    cases.append(Case("start-up: --version", [*PDF2DCM, "--version"], {}))
    cases.append(
        Case(
            "start-up: encode one 52 KiB",
            [*PDF2DCM, "encode", smalls[0], "-o", str(work / "one.dcm"), "--overwrite"],
            {},
        )
    )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="runs per contender")
    options = parser.parse_args()
    sizes = [1 * MiB, 8 * MiB] if options.quick else [1 * MiB, 50 * MiB, 500 * MiB]
    repeats = options.repeats or (2 if options.quick else 5)
    small_count = 20 if options.quick else 200
    skipped: list[str] = []
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, repeats {repeats}")
    print(f"{'case':<34} {'contender':<22} {'median':>11} {'peak RSS':>12}")
    with tempfile.TemporaryDirectory(prefix="pdf2dcm-bench-") as work:
        run_cases(encode_cases(Path(work), sizes, small_count, skipped), repeats)
    for tool in skipped:
        print(f"skipped: {tool} is not installed")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this runner's own peak RSS: {baseline:.1f} MiB)")


if __name__ == "__main__":
    main()
