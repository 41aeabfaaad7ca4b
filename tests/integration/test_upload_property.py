"""Whatever bytes ``pdf2dcm upload`` is given as DICOM, it stores them whole or refuses them.

Valid Encapsulated PDF objects (every transfer syntax) cut short or with bytes changed, and
random bytes, are sent to a real Orthanc: the exit code is 0 (stored, and the stored document
is the one in the file) or 2 (refused before anything was sent), never 1; nothing else.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdf2dcm.cli import cli
from pdf2dcm.extract import extract_pdf
from tests.integration.orthanc import OrthancServer
from tests.unit.test_extract_property import damaged


def run_upload(server: OrthancServer, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "in.dcm"
        source.write_bytes(data)
        before = server.instance_count()
        result = CliRunner().invoke(
            cli, ["upload", str(source), "--url", server.url, "--json", "--no-progress"]
        )
        assert result.exit_code in (0, 2, 8), result.output
        if result.exit_code == 0:
            [record] = [json.loads(line) for line in result.stdout.splitlines()]
            stored = server.get(f"/instances/{record['ID']}/file").content
            (Path(directory) / "stored.dcm").write_bytes(stored)
            original = extract_pdf(source, Path(directory) / "a.pdf")
            again = extract_pdf(Path(directory) / "stored.dcm", Path(directory) / "b.pdf")
            assert original.sha256 == again.sha256 == record["SHA256"]
        else:
            assert server.instance_count() == before
            errors = [
                x for x in result.stderr.splitlines() if not x.startswith("pdf2dcm: warning:")
            ]
            assert len(errors) == 1, result.stderr
            assert errors[0].startswith("pdf2dcm: error: "), result.stderr
            assert len(result.stderr) < 600, result.stderr


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=damaged())
def test_damaged_objects_are_stored_whole_or_refused(orthanc: OrthancServer, data: bytes) -> None:
    run_upload(orthanc, data)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.binary(max_size=600).map(lambda tail: b"\x00" * 128 + b"DICM" + tail),
    )
)
def test_random_bytes_are_refused(orthanc: OrthancServer, data: bytes) -> None:
    run_upload(orthanc, data)
