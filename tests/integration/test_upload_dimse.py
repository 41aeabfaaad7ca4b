"""``upload --via dimse``: C-STORE to real nodes, the study found by C-FIND, the worklist
asked directly, storage commitment; every stored PDF byte-exact, every object dciodvfy-clean.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.conftest import PdfFactory
from tests.integration.dicom_nodes import storescp, wlmscpfs
from tests.integration.oracles import dciodvfy_errors
from tests.integration.orthanc import OrthancServer, free_port
from tests.integration.test_dimse_worklist import NAMES, _accession, _raw_name

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
LISTEN_PORT = free_port()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["upload", *args], catch_exceptions=False)


def records(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _stored_pdf(path: Path) -> bytes:
    return bytes(pydicom.dcmread(path).EncapsulatedDocument)


@pytest.mark.parametrize("options", [(), ("+xi",)], ids=["explicit", "implicit-only"])
def test_storescp_receives_the_pdf_byte_exact(
    options: tuple[str, ...], pdf_file: PdfFactory, tmp_path: Path
) -> None:
    pdf = pdf_file(3 * 1024 * 1024 + 2)
    with storescp(tmp_path / "scp", *options) as server:
        result = run(
            str(pdf),
            "--via",
            "dimse",
            "--scp",
            server.node,
            "--json",
            "--tag",
            "PatientID=DIMSE-UP",
            "--tag",
            "PatientName=Müller^Jürgen",
        )
    assert result.exit_code == 0, result.stderr
    [record] = records(result)
    assert (record["Kind"], record["Status"], record["DicomStatus"]) == (
        "uploaded",
        "Success",
        "0000",
    )
    (received,) = list((tmp_path / "scp" / "in").iterdir())
    assert _stored_pdf(received)[: pdf.stat().st_size] == pdf.read_bytes()
    assert str(pydicom.dcmread(received).SOPInstanceUID) == record["SOPInstanceUID"]
    assert dciodvfy_errors(received) == []


@pytest.fixture(scope="module")
def status_scp() -> Iterator[tuple[str, dict[str, int]]]:
    from pynetdicom import AE, evt

    answer = {"status": 0}
    ae = AE(ae_title="STATUS")
    ae.add_supported_context(ENCAPSULATED_PDF, ["1.2.840.10008.1.2.1"])
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, lambda _event: answer["status"])],
    )
    assert server is not None
    try:
        yield f"STATUS@127.0.0.1:{server.server_address[1]}", answer
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("code", "exit_code", "status", "meaning"),
    [
        (0xB000, 0, "Warning", "Coercion of data elements"),
        (0xA700, 5, None, "Refused: out of resources"),
        (0xA900, 4, None, "Data set does not match SOP Class"),
        (0xC000, 4, None, "Cannot understand"),
    ],
)
def test_statuses_are_reported_and_mapped_to_exit_codes(
    code: int,
    exit_code: int,
    status: str | None,
    meaning: str,
    status_scp: tuple[str, dict[str, int]],
    pdf_file: PdfFactory,
) -> None:
    node, answer = status_scp
    answer["status"] = code
    result = run(str(pdf_file()), "--via", "dimse", "--scp", node, "--json", "--tag", "PatientID=S")
    assert result.exit_code == exit_code, result.stderr
    [record] = records(result)
    if status is not None:
        assert (record["Status"], record["DicomStatus"]) == (status, f"{code:04X}")
        assert f"warning: {node} stored" in result.stderr
        assert f"{code:04X} ({meaning})" in result.stderr
    else:
        assert record["Kind"] == "failed"
        assert f"failed with status {code:04X} ({meaning})" in record["Error"]
        assert record["ExitCode"] == exit_code


# --- Orthanc's DICOM port: C-FIND for the study, storage commitment ---------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    config = {
        "DefaultEncoding": "Utf8",
        "DicomModalities": {"pdf2dcm": ["PDF2DCM", "127.0.0.1", LISTEN_PORT]},
    }
    with OrthancServer(tmp_path_factory.mktemp("orthanc-upload-dimse"), extra=config) as server:
        yield server


def test_a_study_found_by_c_find_is_joined_and_committed(
    archive: OrthancServer, pdf_file: PdfFactory, tmp_path: Path
) -> None:
    node = f"ORTHANC@127.0.0.1:{archive.dicom_port}"
    name = "Иванов^Пётр=山田^太郎"
    first = run(
        str(pdf_file(name="first.pdf")),
        *("--via", "dimse", "--scp", node, "--json"),
        *("--tag", "PatientID=CF-1", "--tag", f"PatientName={name}"),
        *("--tag", "AccessionNumber=CF-ACC"),
    )
    assert first.exit_code == 0, first.stderr
    [stored] = records(first)
    second = run(
        str(pdf_file(name="second.pdf")),
        *("--via", "dimse", "--scp", node, "--json", "--study", "AccessionNumber=CF-ACC"),
        *("--commit", "--listen-port", str(LISTEN_PORT), "--dimse-timeout", "20"),
    )
    assert second.exit_code == 0, second.stderr
    joined, committed = records(second)
    assert joined["StudyInstanceUID"] == stored["StudyInstanceUID"]
    assert joined["PatientID"] == "CF-1"
    assert committed["Kind"] == "committed"
    assert committed["Committed"] == [joined["SOPInstanceUID"]]
    assert committed["Failed"] == []
    [instance] = [
        i
        for i in archive.get("/instances").json()
        if archive.get(f"/instances/{i}/simplified-tags").json()["SOPInstanceUID"]
        == joined["SOPInstanceUID"]
    ]
    path = tmp_path / "joined.dcm"
    path.write_bytes(archive.get(f"/instances/{instance}/file").content)
    joined_ds = pydicom.dcmread(path)
    assert str(joined_ds.PatientName) == name
    assert joined_ds.SeriesNumber == 2
    assert dciodvfy_errors(path) == []

    missing = run(
        str(pdf_file(name="third.pdf")),
        *("--via", "dimse", "--scp", node, "--study", "AccessionNumber=NOPE"),
    )
    assert missing.exit_code == 4, missing.stderr
    assert "no study matches AccessionNumber=NOPE" in missing.stderr
    other = run(
        str(pdf_file(name="fourth.pdf")),
        *("--via", "dimse", "--scp", node, "--study", "AccessionNumber=CF-ACC"),
        *("--tag", "PatientID=SOMEONE-ELSE"),
    )
    assert other.exit_code == 2, other.stderr
    assert "PatientID" in other.stderr


def test_patient_series_candidates_and_dry_run_by_c_find(
    archive: OrthancServer, pdf_file: PdfFactory
) -> None:
    node = f"ORTHANC@127.0.0.1:{archive.dicom_port}"
    dimse_args = ("--via", "dimse", "--scp", node, "--json")
    stored = []
    for accession in ("PS-A1", "PS-A2"):
        result = run(
            str(pdf_file()),
            *dimse_args,
            *("--tag", "PatientID=PS-1", "--tag", "PatientName=Weiß^Anna"),
            *("--tag", f"AccessionNumber={accession}"),
        )
        assert result.exit_code == 0, result.stderr
        stored.extend(records(result))

    several = run(str(pdf_file()), *dimse_args, "--study", "PatientID=PS-1")
    assert several.exit_code == 2, several.stderr
    assert f"2 studies match PatientID=PS-1 on {node}" in several.stderr
    assert all(r["StudyInstanceUID"] in several.stderr for r in stored)

    patient = run(str(pdf_file()), *dimse_args, "--patient", "PatientID=PS-1")
    assert patient.exit_code == 0, patient.stderr
    [new_study] = records(patient)
    assert new_study["PatientID"] == "PS-1"
    assert new_study["StudyInstanceUID"] not in {r["StudyInstanceUID"] for r in stored}

    series_uid = stored[0]["SeriesInstanceUID"]
    before = archive.instance_count()
    planned = run(
        str(pdf_file()), *dimse_args, "--dry-run", "--series", f"SeriesInstanceUID={series_uid}"
    )
    assert planned.exit_code == 0, planned.stderr
    [plan] = records(planned)
    assert plan["Kind"] == "planned"
    assert plan["Tags"]["SeriesInstanceUID"] == series_uid
    assert plan["Tags"]["InstanceNumber"] == "2"
    assert plan["Tags"]["PatientName"] == "Weiß^Anna"
    assert archive.instance_count() == before

    joined = run(str(pdf_file()), *dimse_args, "--series", f"SeriesInstanceUID={series_uid}")
    assert joined.exit_code == 0, joined.stderr
    assert records(joined)[0]["SeriesInstanceUID"] == series_uid
    refused = run(
        str(pdf_file()), *dimse_args, "--study", "5d3bb2a1-ff6b8d23-3fbb0e2d-b1b3b6ab-5a2d2a1c"
    )
    assert refused.exit_code == 2
    assert "is an Orthanc ID" in refused.stderr


def test_no_commitment_report_in_time_exits_7(archive: OrthancServer, pdf_file: PdfFactory) -> None:
    """Orthanc reports on a new association, to an AE nobody listens as here."""
    node = f"ORTHANC@127.0.0.1:{archive.dicom_port}"
    result = run(
        str(pdf_file()),
        *("--via", "dimse", "--scp", node, "--commit", "--dimse-timeout", "2"),
        *("--tag", "PatientID=CT-1"),
    )
    assert result.exit_code == 7, result.stderr
    assert "sent no storage commitment report" in result.stderr
    assert "(Success)" in result.stdout


def test_a_refused_commitment_exits_5_with_its_record(
    uncommitting_scp: str, pdf_file: PdfFactory
) -> None:
    result = run(
        str(pdf_file()),
        str(pdf_file()),
        *("--via", "dimse", "--scp", uncommitting_scp, "--commit", "--json"),
        *("--tag", "PatientID=NC-1"),
    )
    assert result.exit_code == 5, result.stderr
    first, second, report = records(result)
    assert (first["Kind"], second["Kind"], report["Kind"]) == ("uploaded", "uploaded", "committed")
    assert report["Committed"] == []
    assert [f["SOPInstanceUID"] for f in report["Failed"]] == [
        first["SOPInstanceUID"],
        second["SOPInstanceUID"],
    ]
    assert {f["FailureReason"] for f in report["Failed"]} == {"0110"}
    assert "did not commit to 2 of 2 instances" in result.stderr


def test_a_name_the_archive_answered_without_its_characters_is_not_copied(
    tmp_path: Path, pdf_file: PdfFactory
) -> None:
    """Orthanc answers C-FIND in its DefaultEncoding (Latin1 here) and drops what it cannot
    hold: the study's Japanese name groups come back as delimiters."""
    config = {"DicomModalities": {"pdf2dcm": ["PDF2DCM", "127.0.0.1", free_port()]}}
    with OrthancServer(tmp_path / "latin1", extra=config) as latin1:
        node = f"ORTHANC@127.0.0.1:{latin1.dicom_port}"
        stored = run(
            str(pdf_file()),
            *("--via", "dimse", "--scp", node, "--tag", "PatientID=L1-1"),
            *("--tag", "PatientName=Yamada^Tarou=山田^太郎", "--tag", "AccessionNumber=L1-A"),
        )
        assert stored.exit_code == 0, stored.stderr
        before = latin1.instance_count()
        joined = run(
            str(pdf_file()), "--via", "dimse", "--scp", node, "--study", "AccessionNumber=L1-A"
        )
        assert latin1.instance_count() == before
    assert joined.exit_code == 2, joined.stderr
    assert "answered PatientName 'Yamada^Tarou=^' in ISO_IR 100" in joined.stderr
    assert "DefaultEncoding to Utf8" in joined.stderr


# --- the worklist, asked directly ------------------------------------------------------------


@pytest.mark.parametrize("charset", list(NAMES))
def test_a_worklist_node_gives_the_names_byte_exact(
    charset: str, worklist_files: Path, tmp_path: Path, pdf_file: PdfFactory
) -> None:
    with wlmscpfs(worklist_files, "-csk") as wl, storescp(tmp_path / "scp") as store:
        result = run(
            str(pdf_file()),
            *("--via", "dimse", "--scp", store.node, "--worklist", wl.node),
            *("--study", f"AccessionNumber={_accession(charset)}"),
        )
    assert result.exit_code == 0, result.stderr
    # storescp stores but answers no C-FIND: what it holds could not be checked, and is said.
    assert f"{store.node} answers no C-FIND" in result.stderr
    (received,) = list((tmp_path / "scp" / "in").iterdir())
    raw_name = pydicom.dcmread(received).get_item(0x00100010).value
    assert raw_name.rstrip(b" ") == _raw_name(charset)
    ds = pydicom.dcmread(received)
    terms = ds.SpecificCharacterSet
    assert ([terms] if isinstance(terms, str) else list(terms)) == charset.split("\\")
    assert str(ds.PatientName) == NAMES[charset][1]
    assert "RequestAttributesSequence" in ds
    assert dciodvfy_errors(received) == []


def test_an_undeclared_worklist_set_must_be_named(
    worklist_files: Path, tmp_path: Path, pdf_file: PdfFactory
) -> None:
    accession = _accession("ISO_IR 144")
    with wlmscpfs(worklist_files, "-cs0") as wl, storescp(tmp_path / "scp") as store:
        common = ("--via", "dimse", "--scp", store.node, "--worklist", wl.node)
        refused = run(str(pdf_file()), *common, "--study", f"AccessionNumber={accession}")
        assert refused.exit_code == 2, refused.stderr
        assert "no SpecificCharacterSet" in refused.stderr
        named = run(
            str(pdf_file()),
            *common,
            *("--study", f"AccessionNumber={accession}", "--worklist-charset", "ISO_IR 144"),
        )
    assert named.exit_code == 0, named.stderr
    (received,) = list((tmp_path / "scp" / "in").iterdir())
    assert str(pydicom.dcmread(received).PatientName) == NAMES["ISO_IR 144"][1]


def test_strict_sends_nothing_to_a_node_it_cannot_check(
    worklist_files: Path, tmp_path: Path, pdf_file: PdfFactory
) -> None:
    with wlmscpfs(worklist_files, "-csk") as wl, storescp(tmp_path / "scp") as store:
        result = run(
            str(pdf_file()),
            str(pdf_file()),
            *("--via", "dimse", "--scp", store.node, "--worklist", wl.node, "--strict"),
            *("--study", f"AccessionNumber={_accession('ISO_IR 100')}"),
        )
    assert result.exit_code == 2, result.stderr
    assert "answers no C-FIND" in result.stderr
    assert "refused in strict mode" in result.stderr
    assert list((tmp_path / "scp" / "in").iterdir()) == []


# --- the Orthanc route: what Orthanc's DefaultEncoding (Latin1 here) cannot carry -----------


@pytest.fixture(scope="module", params=["-csk", "-cs0"])
def relayed(
    request: pytest.FixtureRequest, orthanc: OrthancServer, worklist_files: Path
) -> Iterator[str]:
    """A worklist SCP declared in Orthanc as a modality; its name."""
    option: str = request.param
    with wlmscpfs(worklist_files, option) as wl:
        name = f"wl{option}"
        requests.put(
            f"{orthanc.url}/modalities/{name}",
            json={"AET": wl.ae_title, "Host": "127.0.0.1", "Port": wl.port},
            auth=orthanc.auth,
            timeout=30,
        ).raise_for_status()
        yield name


@pytest.mark.parametrize("charset", list(NAMES))
def test_the_orthanc_route_never_stores_a_mangled_name(
    charset: str, relayed: str, orthanc: OrthancServer, pdf_file: PdfFactory, tmp_path: Path
) -> None:
    assert orthanc.get("/tools/default-encoding").text.strip() == "Latin1"
    before = orthanc.instance_count()
    result = run(
        str(pdf_file()),
        *("--url", orthanc.url, "--json", "--worklist", relayed),
        *("--study", f"AccessionNumber={_accession(charset)}"),
    )
    declared = relayed.endswith("csk")
    if declared and charset == "ISO_IR 100":
        assert result.exit_code == 0, result.stderr
        [record] = records(result)
        path = tmp_path / "stored.dcm"
        path.write_bytes(orthanc.get(f"/instances/{record['ID']}/file").content)
        assert str(pydicom.dcmread(path).PatientName) == NAMES[charset][1]
        return
    if not declared and charset == "ISO_IR 192":
        # UTF-8 read as Latin-1 is recognised, repaired and said so.
        assert result.exit_code == 0, result.stderr
        assert "arrived as UTF-8 read as Latin-1" in result.stderr
        [record] = records(result)
        path = tmp_path / "stored.dcm"
        path.write_bytes(orthanc.get(f"/instances/{record['ID']}/file").content)
        assert str(pydicom.dcmread(path).PatientName) == NAMES[charset][1]
        return
    assert result.exit_code == 2, result.stderr
    assert orthanc.instance_count() == before
    if not declared and charset.startswith("\\"):
        assert "did not come through Orthanc exactly" in result.stderr
    elif declared:
        assert "DefaultEncoding is Latin1" in result.stderr
        assert "--worklist AET@HOST:PORT" in result.stderr
        assert "Utf8" in result.stderr
    else:
        assert "declares no character set" in result.stderr
