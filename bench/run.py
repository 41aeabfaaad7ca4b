"""Benchmarks: pdf2dcm against DCMTK, the documented curl recipes and plain copies.

    .venv/bin/python bench/run.py            # full sizes (1, 50, 500 MiB; 200 and 2,000 PDFs)
    .venv/bin/python bench/run.py --quick    # small sizes, for a smoke run
    .venv/bin/python bench/run.py --only orthanc
    .venv/bin/python bench/run.py --scaling  # how cost grows: 1..10,000 files, 1 MiB..2 GiB
    .venv/bin/python bench/run.py --scaling --skip-2gib   # without the 2 GiB case
    .venv/bin/python bench/ls_bench.py       # ls over 100, 1,000 and 10,000 documents
    .venv/bin/python bench/startup_bench.py  # one file in one call: --version, encode, upload

Inputs are generated (incompressible PDFs), a private Orthanc is started for the server cases,
every case runs several times with the contenders interleaved, each run in a fresh process
whose peak RSS is read from the kernel, and the table shows medians. The peak RSS of a child
includes the measuring Python process it was forked from, so about 11 MiB is the floor: a
figure near it means "almost nothing". Orthanc's own peak memory
is read from /proc (VmHWM, reset before each run). A reference tool that is not installed is
skipped and named. Work files live on /dev/shm when it exists, so that disk write-back does not
blur the figures.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pdfs import make_pdf  # noqa: E402

MiB = 1024 * 1024
PDF2DCM = [sys.executable, "-m", "pdf2dcm"]
Command = Sequence[str] | Callable[[], None]


@dataclass
class Measurement:
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    server_rss: list[int] = field(default_factory=list)
    failure: str | None = None
    """Why a reference could not do the job (it is then left out of further runs)."""

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @staticmethod
    def median_mib(values: list[int]) -> float | None:
        return statistics.median(values) / MiB if values and values[0] else None


@dataclass
class Case:
    """One benchmark row: our command and the commands it is compared with."""

    name: str
    ours: Command
    references: dict[str, Command]
    prepare: Callable[[], None] | None = None
    server_pid: int | None = None
    units: float | None = None
    """Work per run (files, MiB) for a throughput column."""
    unit_name: str = ""
    results: dict[str, Measurement] = field(default_factory=dict)
    single: float | None = None
    """The median time of the same command for one file: the cost of each further file is
    shown without the start-up."""


def measure(command: Command) -> tuple[float, int]:
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


def server_peak(pid: int, reset: bool) -> int:
    """Orthanc's peak RSS (VmHWM); writing 5 to clear_refs starts a new peak."""
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_case(case: Case, repeats: int, printer: Callable[[Case], None] | None = None) -> None:
    contenders = {"pdf2dcm": case.ours, **case.references}
    case.results = {label: Measurement() for label in contenders}
    for _ in range(repeats):
        for label, command in contenders.items():
            result = case.results[label]
            if result.failure is not None:
                continue
            if case.prepare is not None:
                case.prepare()
            if case.server_pid is not None:
                server_peak(case.server_pid, reset=True)
            try:
                seconds, rss = measure(command)
            except subprocess.CalledProcessError as exc:
                if label == "pdf2dcm":
                    raise
                result.failure = f"failed (exit {exc.returncode})"
                continue
            result.seconds.append(seconds)
            result.peak_rss.append(rss)
            if case.server_pid is not None:
                result.server_rss.append(server_peak(case.server_pid, reset=False))
    (printer or print_case)(case)


def print_case(case: Case) -> None:
    ours = case.results["pdf2dcm"].median_seconds
    for label, result in case.results.items():
        if result.failure is not None:
            print(f"{case.name:<32} {label:<24} {result.failure}", flush=True)
            continue
        seconds = result.median_seconds
        rss = Measurement.median_mib(result.peak_rss)
        server = Measurement.median_mib(result.server_rss)
        columns = [
            f"{case.name:<32}",
            f"{label:<24}",
            f"{seconds:8.3f} s",
            f"{rss:8.1f} MiB" if rss is not None else f"{'-':>12}",
            f"{server:8.1f} MiB" if server is not None else f"{'':>12}",
        ]
        if case.units:
            columns.append(f"{case.units / seconds:8.1f} {case.unit_name}/s")
        if label != "pdf2dcm":
            columns.append(f"(ours is {seconds / ours:.2f}x as fast)")
        print(" ".join(columns), flush=True)


def have(tool: str, skipped: list[str]) -> bool:
    if shutil.which(tool) is None:
        skipped.append(tool)
        return False
    return True


def write_pdf(path: Path, size: int) -> Path:
    path.write_bytes(make_pdf(size, seed=None))
    return path


def small_pdfs(folder: Path, count: int) -> list[str]:
    folder.mkdir(exist_ok=True)
    return [str(write_pdf(folder / f"s{i:05d}.pdf", 52 * 1024)) for i in range(count)]


def write_large_pdf(path: Path, size: int) -> Path:
    """A PDF of exactly ``size`` bytes, laid out like ``make_pdf``'s but written in blocks.

    Its bulk is one comment line of random bytes (incompressible), so a 2 GiB input never has
    to fit in memory.
    """
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    body = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % number + content + b"\nendobj\n"
    table = b"xref\n0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)

    def trailer(xref: int) -> bytes:
        return b"trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%010d\n%%%%EOF\n" % xref

    comment = size - len(body) - len(table) - len(trailer(0))
    with path.open("wb") as out:
        out.write(body + b"%")
        left = comment - 2
        while left:
            block = os.urandom(min(8 * MiB, left))
            out.write(block.replace(b"\n", b" ").replace(b"\r", b" "))
            left -= len(block)
        out.write(b"\n" + table + trailer(len(body) + comment))
    return path


# --- local cases -----------------------------------------------------------------------------


def local_cases(
    work: Path, sizes: Sequence[int], smalls: list[str], skipped: list[str]
) -> Iterator[Case]:
    dcmtk = have("/usr/bin/pdf2dcm", skipped)
    for size in sizes:
        pdf = work / f"in-{size // MiB}.pdf"
        out = work / "out.dcm"
        references: dict[str, Command] = {"cp (floor)": ["cp", str(pdf), str(out)]}
        if dcmtk:
            references["DCMTK pdf2dcm"] = ["/usr/bin/pdf2dcm", str(pdf), str(out)]
        yield Case(
            f"encode {size / MiB:g} MiB",
            [*PDF2DCM, "encode", str(pdf), "-o", str(out), "--overwrite"],
            references,
            prepare=functools.partial(out.unlink, missing_ok=True),
            units=size / MiB,
            unit_name="MiB",
        )
    largest = sizes[-1]
    encoded = work / f"in-{largest // MiB}.dcm"
    back = work / "back.pdf"
    extract_refs: dict[str, Command] = {}
    if have("dcm2pdf", skipped):
        extract_refs["DCMTK dcm2pdf"] = ["dcm2pdf", str(encoded), str(back)]
    yield Case(
        f"extract {largest / MiB:g} MiB",
        [*PDF2DCM, "extract", str(encoded), "-o", str(back), "--overwrite"],
        extract_refs,
        prepare=functools.partial(back.unlink, missing_ok=True),
        units=largest / MiB,
        unit_name="MiB",
    )
    out_dir = work / "small-out"

    def clean_small() -> None:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()

    def dcmtk_loop() -> None:
        for path in smalls:
            target = out_dir / (Path(path).stem + ".dcmtk.dcm")
            subprocess.run(
                ["/usr/bin/pdf2dcm", path, str(target)], check=True, stdout=subprocess.DEVNULL
            )

    small_refs: dict[str, Command] = {}
    if dcmtk:
        small_refs[f"DCMTK, {len(smalls)} calls"] = dcmtk_loop
    yield Case(
        f"encode {len(smalls)} x 52 KiB",
        [*PDF2DCM, "encode", *smalls, "-d", str(out_dir)],
        small_refs,
        prepare=clean_small,
        units=len(smalls),
        unit_name="files",
    )
    yield Case("start-up: --version", [*PDF2DCM, "--version"], {})
    yield Case(
        "start-up: encode one 52 KiB",
        [*PDF2DCM, "encode", smalls[0], "-o", str(work / "one.dcm"), "--overwrite"],
        {},
    )


# --- Orthanc cases ---------------------------------------------------------------------------


@contextmanager
def private_orthanc(work: Path) -> Iterator[tuple[str, int]]:
    from tests.integration.orthanc import OrthancServer

    with OrthancServer(work / "orthanc", extra={"StorageCompression": False}) as server:
        assert server.process is not None
        yield server.url, server.process.pid


def clear_orthanc(url: str) -> Callable[[], None]:
    def clear() -> None:
        for patient in requests.get(f"{url}/patients", timeout=60).json():
            requests.delete(f"{url}/patients/{patient}", timeout=60).raise_for_status()

    return clear


def path_list(work: Path, name: str, paths: Sequence[str]) -> Path:
    """A file listing ``paths``, one a line: thousands of them do not fit in one argument."""
    listing = work / f"{name}-{len(paths)}.txt"
    listing.write_text("".join(f"{path}\n" for path in paths))
    return listing


def recipe_script(url: str, pdfs: Sequence[str], *, large: bool, work: Path) -> list[str]:
    """The documented create-dicom workflow: base64 into a JSON body, posted by curl.

    As documented it uses ``base64`` (wrapped lines) and ``curl -d @-``; for a large file the
    documented form fails (curl caps -d at 256 MiB), so it uses ``base64 -w0`` and
    ``--data-binary``, as a user would after the first failure. It runs once per file of a
    list, as a shell loop would.
    """
    encode = "base64 -w0" if large else "base64"
    flag = "--data-binary" if large else "-d"
    script = (
        "set -e\nwhile IFS= read -r pdf; do\n"
        f'  (echo -n \'{{"Tags": {{"PatientName": "Benjamino", "Modality": "CT"}}, '
        f'"Content": "data:application/pdf;base64,\'; {encode} "$pdf"; '
        f"echo '\"}}') | curl -sf {url}/tools/create-dicom -X POST {flag} @- -o /dev/null\n"
        f"done < {shlex.quote(str(path_list(work, 'recipe', pdfs)))}\n"
    )
    return ["bash", "-c", script]


def curl_parallel(work: Path, url: str, dicoms: Sequence[str]) -> list[str]:
    """One curl process posting every file, four at a time over kept-alive connections.

    Unlike ``xargs -P4 curl`` it starts no process per file, so on a small machine it shows
    what Orthanc itself can ingest.
    """
    config = work / f"curl-parallel-{len(dicoms)}.cfg"
    config.write_text(
        "\nnext\n".join(
            f'url = "{url}/instances"\ndata-binary = "@{path}"\noutput = "/dev/null"\nfail\nsilent'
            for path in dicoms
        )
        + "\n"
    )
    return ["curl", "--parallel", "--parallel-max", "4", "--no-progress-meter", "-K", str(config)]


def orthanc_cases(
    work: Path,
    sizes: Sequence[int],
    smalls: list[str],
    counts: Sequence[int],
    skipped: list[str],
    url: str,
    pid: int,
) -> Iterator[Case]:
    clear = clear_orthanc(url)
    if not have("curl", skipped):
        return
    yield headline_upload(url, work, clear, pid)
    encoded_dir = work / "small-encoded"
    subprocess.run(
        [*PDF2DCM, "encode", *smalls, "-d", str(encoded_dir), "--overwrite", "--no-progress"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    encoded = sorted(str(p) for p in encoded_dir.iterdir())
    for count in counts:
        listing = path_list(work, "encoded", encoded[:count])
        parallel = (
            f"xargs -a {shlex.quote(str(listing))} -P4 -I{{}} "
            f"curl -sf -X POST --data-binary @{{}} {url}/instances -o /dev/null"
        )
        yield Case(
            f"upload {count} x 52 KiB",
            # The default concurrency, as a user runs it.
            [*PDF2DCM, "upload", *smalls[:count], "--url", url, "--tag", "PatientID=B"],
            {
                "recipe (create-dicom)": recipe_script(url, smalls[:count], large=False, work=work),
                "curl -P4 /instances": ["bash", "-c", parallel],
                "curl --parallel, 1 process": curl_parallel(work, url, encoded[:count]),
            },
            prepare=clear,
            server_pid=pid,
            units=count,
            unit_name="files",
        )
    largest = sizes[-1]
    pdf = str(work / f"in-{largest // MiB}.pdf")
    dicom = str(work / f"in-{largest // MiB}.dcm")
    yield Case(
        f"upload {largest / MiB:g} MiB",
        [*PDF2DCM, "upload", pdf, "--url", url, "--tag", "PatientID=L"],
        {
            "recipe (base64 -w0)": recipe_script(url, [pdf], large=True, work=work),
            # Without "Expect:", curl waits a second for a 100-continue Orthanc never sends.
            "curl -T pre-encoded": [
                "curl",
                "-sf",
                "-H",
                "Expect:",
                "-T",
                dicom,
                "-X",
                "POST",
                f"{url}/instances",
                "-o",
                "/dev/null",
            ],
        },
        prepare=clear,
        server_pid=pid,
        units=largest / MiB,
        unit_name="MiB",
    )
    clear()
    for size in sorted({sizes[1], largest}):
        source = str(work / f"in-{size // MiB}.dcm")
        answer = requests.post(
            f"{url}/instances", data=Path(source).read_bytes(), timeout=300
        ).json()
        instance = answer["ID"]
        out = work / "fetched.pdf"
        yield Case(
            f"fetch {size / MiB:g} MiB",
            [*PDF2DCM, "fetch", instance, "--url", url, "-o", str(out), "--overwrite"],
            {"curl /pdf": ["curl", "-sf", f"{url}/instances/{instance}/pdf", "-o", str(out)]},
            prepare=functools.partial(out.unlink, missing_ok=True),
            server_pid=pid,
            units=size / MiB,
            unit_name="MiB",
        )


def headline_upload(url: str, work: Path, clear: Callable[[], None], pid: int) -> Case:
    """The README's first command, one file in one call, beside the seed's curl recipe."""
    hello = str(ROOT / "examples" / "HelloWorld2.pdf")
    return Case(
        "upload HelloWorld2.pdf (headline)",
        [*PDF2DCM, "upload", hello, "--url", url, "--tag", "PatientName=Benjamino"],
        {"recipe (create-dicom)": recipe_script(url, [hello], large=False, work=work)},
        prepare=clear,
        server_pid=pid,
    )


def ls_cases(url: str, clear: Callable[[], None], pid: int, count: int) -> Iterator[Case]:
    """ls over ``count`` documents of 200 kB, one per study: the newest 20, and every one."""
    from bench.ls_archive import fill

    clear()
    fill(url, 0, count)
    find = '{"Level": "Instance", "Query": {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.104.1"}}'
    ids_only: dict[str, Command] = {
        "curl /tools/find (IDs)": ["curl", "-sf", "-X", "POST", f"{url}/tools/find", "-d", find]
    }
    yield Case(
        f"ls --limit 20 of {count:,}",
        [*PDF2DCM, "ls", "--url", url, "--limit", "20"],
        ids_only,
        server_pid=pid,
    )
    yield Case(f"ls --json, all {count:,}", [*PDF2DCM, "ls", "--url", url, "--json"], ids_only)


# --- scaling ---------------------------------------------------------------------------------

SCALING_COUNTS = (1, 10, 100, 1000, 10000)
SCALING_SIZES = (1 * MiB, 50 * MiB, 500 * MiB, 2048 * MiB)
GiB = 1024 * MiB


def print_scaling(case: Case) -> None:
    """One line per contender: the time, the time per file or the speed, and memory."""
    for label, result in case.results.items():
        if result.failure is not None:
            print(f"{case.name:<24} {label:<24} {result.failure}", flush=True)
            continue
        seconds = result.median_seconds
        rss = Measurement.median_mib(result.peak_rss)
        server = Measurement.median_mib(result.server_rss)
        units = case.units or 1
        rate = (
            f"{1000 * seconds / units:9.2f} ms/file"
            if case.unit_name == "files"
            else f"{units / seconds:9.0f} MiB/s"
        )
        further = ""
        if case.single is not None and units > 1:
            further = f"{1000 * (seconds - case.single) / (units - 1):9.2f} ms"
        columns = [
            f"{case.name:<24}",
            f"{label:<24}",
            f"{seconds:9.3f} s",
            rate,
            f"{further:>12}",
            f"{rss:8.1f} MiB" if rss is not None else f"{'-':>12}",
            f"{server:8.1f} MiB" if server is not None else "",
        ]
        print(" ".join(columns), flush=True)


def scratch_for(size: int, base: Path) -> Path:
    """Where a case of ``size`` bytes works: memory (/dev/shm) when it can hold about seven
    copies (inputs, outputs, Orthanc's storage and its buffers), else /tmp's disk."""
    available = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    if str(base).startswith("/dev/shm") and available > 7 * size + 2 * GiB:
        return base
    tmp = Path(tempfile.gettempdir())
    if shutil.disk_usage(tmp).free < 4 * size + GiB:
        raise SystemExit(f"not enough space for a {size // MiB} MiB case in {base} or {tmp}")
    return Path(tempfile.mkdtemp(prefix="pdf2dcm-bench-", dir=tmp))


def scaling(
    work: Path, counts: Sequence[int], sizes: Sequence[int], repeats: int, skipped: list[str]
) -> None:
    """How time and memory grow with the number of files and with the size of one file."""
    smalls = small_pdfs(work / "small", max(counts, default=0))
    print(
        f"{'case':<24} {'contender':<24} {'median':>11} {'per file/speed':>16} "
        f"{'next files':>12} {'peak RSS':>12} {'Orthanc peak':>12}"
    )
    out_dir = work / "small-out"

    def clean_small() -> None:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()

    single: float | None = None
    for count in counts:
        case = Case(
            f"encode {count} x 52 KiB",
            [*PDF2DCM, "encode", *smalls[:count], "-d", str(out_dir), "--no-progress"],
            {},
            prepare=clean_small,
            units=count,
            unit_name="files",
            single=single,
        )
        run_case(case, repeats, print_scaling)
        if count == 1:
            single = case.results["pdf2dcm"].median_seconds
    shutil.rmtree(out_dir, ignore_errors=True)
    dcm2pdf = have("dcm2pdf", skipped)
    with private_orthanc(work) as (url, pid):
        clear = clear_orthanc(url)
        single = None
        for count in counts:
            case = Case(
                f"upload {count} x 52 KiB",
                [*PDF2DCM, "upload", *smalls[:count], "--url", url, "--tag", "PatientID=S"],
                {},
                prepare=clear,
                server_pid=pid,
                units=count,
                unit_name="files",
                single=single,
            )
            run_case(case, repeats, print_scaling)
            if count == 1:
                single = case.results["pdf2dcm"].median_seconds
        clear()
        for size in sizes:
            scratch = scratch_for(size, work)
            where = "memory (/dev/shm)" if scratch == work else f"disk ({scratch})"
            print(f"-- {size // MiB} MiB: files in {where}", flush=True)
            try:
                for case in large_cases(scratch, size, url, pid, dcm2pdf):
                    run_case(case, repeats, print_scaling)
            finally:
                clear()
                for name in ("in.pdf", "in.dcm", "out.dcm", "out.pdf", "copy"):
                    (scratch / name).unlink(missing_ok=True)
                if scratch != work:
                    shutil.rmtree(scratch, ignore_errors=True)


def large_cases(work: Path, size: int, url: str, pid: int, dcm2pdf: bool) -> Iterator[Case]:
    """encode, extract, upload and fetch of one PDF of ``size`` bytes, each beside its limit."""
    label = f"{size / MiB:g} MiB" if size < GiB else f"{size / GiB:g} GiB"
    pdf, dicom = work / "in.pdf", work / "in.dcm"
    write_large_pdf(pdf, size)
    subprocess.run([*PDF2DCM, "encode", str(pdf), "-o", str(dicom)], check=True, stdout=DEVNULL)
    out_dcm, out_pdf, copy = work / "out.dcm", work / "out.pdf", work / "copy"

    def remove(*paths: Path) -> Callable[[], None]:
        def clean() -> None:
            for path in paths:
                path.unlink(missing_ok=True)

        return clean

    megabytes = size / MiB
    yield Case(
        f"encode {label}",
        [*PDF2DCM, "encode", str(pdf), "-o", str(out_dcm), "--no-progress"],
        {"cp (copy limit)": ["cp", str(pdf), str(copy)]},
        prepare=remove(out_dcm, copy),
        units=megabytes,
        unit_name="MiB",
    )
    extract_refs: dict[str, Command] = {"cp (copy limit)": ["cp", str(pdf), str(copy)]}
    if dcm2pdf:
        extract_refs["DCMTK dcm2pdf"] = ["dcm2pdf", str(dicom), str(out_pdf)]
    yield Case(
        f"extract {label}",
        [*PDF2DCM, "extract", str(dicom), "-o", str(out_pdf), "--no-progress"],
        extract_refs,
        prepare=remove(out_pdf, copy),
        units=megabytes,
        unit_name="MiB",
    )
    clear = clear_orthanc(url)
    yield Case(
        f"upload {label}",
        [*PDF2DCM, "upload", str(pdf), "--url", url, "--tag", "PatientID=L", "--no-progress"],
        {"curl -T pre-encoded": curl_upload(url, dicom)},
        prepare=clear,
        server_pid=pid,
        units=megabytes,
        unit_name="MiB",
    )
    clear()
    answer = requests.post(
        f"{url}/instances", data=dicom.open("rb"), timeout=600, headers={"Expect": ""}
    ).json()
    instance = answer["ID"]
    yield Case(
        f"fetch {label}",
        [*PDF2DCM, "fetch", instance, "--url", url, "-o", str(out_pdf), "--no-progress"],
        {"curl /pdf": ["curl", "-sf", f"{url}/instances/{instance}/pdf", "-o", str(out_pdf)]},
        prepare=remove(out_pdf),
        server_pid=pid,
        units=megabytes,
        unit_name="MiB",
    )


def curl_upload(url: str, dicom: Path) -> list[str]:
    # Without "Expect:", curl waits a second for a 100-continue Orthanc never sends.
    return [
        "curl", "-sf", "-H", "Expect:", "-T", str(dicom), "-X", "POST", f"{url}/instances",
        "-o", "/dev/null",
    ]  # fmt: skip


def run_scaling(options: argparse.Namespace, base: str | None, skipped: list[str]) -> None:
    sizes = list(SCALING_SIZES[:-1] if options.skip_2gib else SCALING_SIZES)
    repeats = options.repeats or 3
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {repeats} runs")
    counts = [1, 10] if options.quick else list(SCALING_COUNTS)
    if options.quick:
        sizes = [MiB, 8 * MiB]
    if options.counts is not None:
        counts = [int(n) for n in options.counts.split(",") if n]
    if options.sizes is not None:
        sizes = [int(n) * MiB for n in options.sizes.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="pdf2dcm-bench-", dir=base) as name:
        scaling(Path(name), counts, sizes, repeats, skipped)
    for tool in skipped:
        print(f"skipped: {tool} is not installed")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="runs per contender")
    parser.add_argument("--only", choices=["local", "orthanc"], help="run one group of cases")
    parser.add_argument("--scaling", action="store_true", help="print how cost grows instead")
    parser.add_argument("--skip-2gib", action="store_true", help="--scaling without 2 GiB")
    parser.add_argument("--counts", help="--scaling: numbers of small PDFs, e.g. 1,100 ('' none)")
    parser.add_argument("--sizes", help="--scaling: PDF sizes in MiB, e.g. 1,500 ('' for none)")
    options = parser.parse_args()
    sizes = [1 * MiB, 8 * MiB] if options.quick else [1 * MiB, 50 * MiB, 500 * MiB]
    repeats = options.repeats or (2 if options.quick else 5)
    counts = [20] if options.quick else [200, 2000]
    skipped: list[str] = []
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    if options.scaling:
        run_scaling(options, base, skipped)
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {repeats} runs per contender")
    print(f"{'case':<32} {'contender':<24} {'median':>10} {'peak RSS':>12} {'Orthanc peak':>12}")
    with tempfile.TemporaryDirectory(prefix="pdf2dcm-bench-", dir=base) as name:
        work = Path(name)
        for size in sizes:
            pdf = write_pdf(work / f"in-{size // MiB}.pdf", size)
            subprocess.run(
                [*PDF2DCM, "encode", str(pdf), "-o", str(pdf.with_suffix(".dcm"))],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        smalls = small_pdfs(work / "small", max(counts))
        if options.only in (None, "local"):
            for case in local_cases(work, sizes, smalls[: counts[0]], skipped):
                run_case(case, repeats)
        if options.only in (None, "orthanc") and have("Orthanc", skipped):
            with private_orthanc(work) as (url, pid):
                for case in orthanc_cases(work, sizes, smalls, counts, skipped, url, pid):
                    run_case(case, repeats)
                for case in ls_cases(url, clear_orthanc(url), pid, 100 if options.quick else 1000):
                    run_case(case, repeats)
    for tool in skipped:
        print(f"skipped: {tool} is not installed")


if __name__ == "__main__":
    main()
