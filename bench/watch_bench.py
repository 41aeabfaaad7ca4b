"""Hot-folder figures: backlog rate against ``upload``, pick-up delay, idle CPU.

    .venv/bin/python bench/watch_bench.py            # 1,000 PDFs, 60 s idle, 3 rounds
    .venv/bin/python bench/watch_bench.py --quick    # 200 PDFs, 10 s idle, 1 round

A private Orthanc is started. Each round, with the same concurrency:

- ``upload``: ``pdf2dcm upload DIR`` of N small PDFs, timed from start to exit;
- ``watch``: a watcher already running on an empty inbox; the N PDFs are renamed into it at
  once (as a scanner's spool does), timed until the inbox is empty, once with the default
  ``--settle 2`` and once with ``--settle 0.5``. The rate is also given without the settle
  time, which every file waits once by design.

Each run tags its documents with its own PatientID, so every run really stores N documents
(nothing is answered AlreadyStored). Then one file is dropped into an idle watcher and the
time until it is stored and moved is taken (minus the settle time); then the watcher's CPU
time over the idle period is read from /proc.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.orthanc import OrthancServer  # noqa: E402
from tests.pdfs import make_pdf  # noqa: E402

PDF2DCM = [sys.executable, "-m", "pdf2dcm"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def make_inputs(folder: Path, count: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True)
    for number in range(count):
        (folder / f"doc{number:05}.pdf").write_bytes(make_pdf(size, seed=seed + number))


def count_files(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.pdf")) if folder.exists() else 0


def start_watcher(server: OrthancServer, work: Path, tag: str, settle: float, concurrency: int):
    inbox, done = work / "inbox", work / "done"
    inbox.mkdir(parents=True, exist_ok=True)
    command = [*PDF2DCM, "watch", str(inbox), "--url", server.url, "--done", str(done)]
    command += ["--settle", str(settle), "--concurrency", str(concurrency), "--tag", tag]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)  # started and idle
    return process, inbox, done


def run_upload(server: OrthancServer, source: Path, tag: str, concurrency: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            *PDF2DCM,
            *("upload", str(source), "--url", server.url, "--tag", tag, "--no-progress"),
            *("--concurrency", str(concurrency)),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def run_watch(
    server: OrthancServer, source: Path, work: Path, tag: str, settle: float, concurrency: int
) -> tuple[float, float]:
    process, inbox, done = start_watcher(server, work, tag, settle, concurrency)
    staged = work / "staged"
    shutil.copytree(source, staged)
    try:
        started = time.perf_counter()
        for entry in sorted(staged.iterdir()):
            os.rename(entry, inbox / entry.name)
        total = count_files(inbox)
        first = None
        while (stored := count_files(done)) < total:
            if first is None and stored:
                first = time.perf_counter() - started
            time.sleep(0.02)
        return time.perf_counter() - started, first or 0.0
    finally:
        process.terminate()
        process.wait(timeout=60)


def pickup_and_idle(server: OrthancServer, work: Path, idle: float) -> tuple[float, float]:
    settle = 2.0
    process, inbox, done = start_watcher(server, work, "PatientID=BENCH-IDLE", settle, 4)
    try:
        before = cpu_seconds(process.pid)
        time.sleep(idle)
        idle_cpu = (cpu_seconds(process.pid) - before) / idle
        (work / "one.pdf").write_bytes(make_pdf(20_000, seed=424242))
        started = time.perf_counter()
        os.rename(work / "one.pdf", inbox / "one.pdf")
        while not (done / "one.pdf").exists():
            time.sleep(0.005)
        return time.perf_counter() - started - settle, idle_cpu
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--files", type=int)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    count = args.files or (200 if args.quick else 1000)
    rounds = 1 if args.quick else 3
    idle = 10.0 if args.quick else 60.0
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base) as scratch:
        root = Path(scratch)
        source = root / "source"
        make_inputs(source, count, 20_000, seed=1)
        times: dict[str, list[float]] = {"upload": [], "watch 2": [], "watch 0.5": []}
        firsts: dict[str, list[float]] = {"watch 2": [], "watch 0.5": []}
        with OrthancServer(root / "orthanc") as server:
            for number in range(rounds):
                tag = f"PatientID=BENCH-U{number}"
                times["upload"].append(run_upload(server, source, tag, args.concurrency))
                for settle in (2.0, 0.5):
                    work = root / f"watch-{number}-{settle}"
                    tag = f"PatientID=BENCH-W{number}-{settle}"
                    elapsed, first = run_watch(server, source, work, tag, settle, args.concurrency)
                    times[f"watch {settle:g}"].append(elapsed)
                    firsts[f"watch {settle:g}"].append(first)
            pickup, idle_cpu = pickup_and_idle(server, root / "idle", idle)
    upload = statistics.median(times["upload"])
    print(f"{count} PDFs of 20 kB, concurrency {args.concurrency}, {rounds} round(s), medians")
    print(f"  upload                     {upload:6.2f} s  {count / upload:7.1f} files/s")
    for settle in (2.0, 0.5):
        elapsed = statistics.median(times[f"watch {settle:g}"])
        first = statistics.median(firsts[f"watch {settle:g}"])
        print(
            f"  watch --settle {settle:<4g}       {elapsed:6.2f} s  {count / elapsed:7.1f} files/s "
            f"({100 * upload / elapsed:3.0f} % of upload); first file stored after "
            f"{first:.2f} s, the rest at {(count - 1) / (elapsed - first):.1f} files/s "
            f"({100 * upload * (count - 1) / count / (elapsed - first):3.0f} % of upload)"
        )
    print(f"  pick-up after settling     {pickup:6.2f} s")
    print(f"  idle CPU over {idle:g} s        {100 * idle_cpu:6.3f} %")


if __name__ == "__main__":
    main()
