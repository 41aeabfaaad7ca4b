"""How ``pdf2dcm ls`` grows with the archive: documents of 200 kB, one per study, a day apart.

    .venv/bin/python bench/ls_bench.py [--counts 100,1000,10000] [--images 0] [--runs 5]

A private Orthanc is filled step by step to each count (documents built with pydicom and
posted directly, so the filling is quick), with ``--images`` Secondary Capture images beside
them, then at each step ``pdf2dcm ls --limit 20`` and ``pdf2dcm ls --json`` (every
document) run in fresh processes. Prints the median time, the client's peak RSS and the
number of lines; the figures go to the README.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from bench.ls_archive import fill  # noqa: E402
from bench.run import measure  # noqa: E402

PDF2DCM = [sys.executable, "-m", "pdf2dcm"]


def ls_commands(url: str) -> dict[str, list[str]]:
    return {
        "ls --limit 20": [*PDF2DCM, "ls", "--url", url, "--limit", "20"],
        "ls --json (all)": [*PDF2DCM, "ls", "--url", url, "--json"],
    }


@contextmanager
def private_orthanc(work: Path) -> Iterator[str]:
    from tests.integration.orthanc import OrthancServer

    with OrthancServer(work / "orthanc", extra={"StorageCompression": False}) as server:
        yield server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--counts", default="100,1000,10000")
    parser.add_argument("--images", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    counts = sorted(int(n) for n in args.counts.split(","))
    print(f"{'documents':>9}  {'case':<18} {'median s':>9} {'peak RSS':>10}")
    scratch = "/dev/shm" if Path("/dev/shm").exists() else None
    with tempfile.TemporaryDirectory(dir=scratch) as tmp, private_orthanc(Path(tmp)) as url:
        filled = 0
        for count in counts:
            fill(url, filled, count, images=args.images if filled == 0 else 0)
            filled = count
            for name, command in ls_commands(url).items():
                runs = [measure(command) for _ in range(args.runs)]
                seconds = statistics.median(s for s, _ in runs)
                rss = statistics.median(r for _, r in runs) / 2**20
                print(f"{count:9d}  {name:<18} {seconds:9.2f} {rss:7.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
