"""The Modality Worklist over DIMSE, against DCMTK wlmscpfs, in six character sets.

Every name must arrive exactly: its bytes as the worklist file holds them, its text as a
strict decoder reads those bytes, and the same bytes again in the document made for it,
which dciodvfy must pass with no error.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from pdf2dcm import dimse, errors
from pdf2dcm.dicom import encode_pdf
from pdf2dcm.worklist import worklist_reference
from tests.integration.dicom_nodes import DcmtkNode, wlmscpfs, write_worklist_file
from tests.integration.oracles import dciodvfy_errors

NAMES = {
    # Three groups, 56 to 64 bytes each as encoded: dciodvfy counts a PN's whole value.
    "ISO_IR 100": ("latin-1", "Müller-Lüdenscheidt^Jürgen=Müller^Jürgen=Mueller^Juergen"),
    "ISO_IR 144": ("iso8859_5", "Иванов-Петровский^Пётр Сергеевич=Иванов^Пётр=Ivanov^Pyotr"),
    "ISO_IR 126": ("iso8859_7", "Παπαδοπούλου-Κωνσταντίνου^Αικατερίνη=Παπαδοπούλου^Αικ=Papa^A"),
    "ISO_IR 192": ("utf-8", "Yamada^Tarou=山田山田^太郎太郎=やまだ^たろう"),
    "GB18030": ("gb18030", "Wang^XiaoDong=王王王王王王王^小东小东小东小东=wang^xiaodong"),
    "\\ISO 2022 IR 87": ("iso2022_jp", "Yamada^Tarou=山田山^太郎太=やまだ^たろう"),
}


def _accession(charset: str) -> str:
    return "A" + "".join(c for c in charset if c.isalnum())[-12:]


def _procedure(charset: str, name: str, *, steps: int = 1, declared: bool = True) -> Dataset:
    ds = Dataset()
    if declared:
        ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    ds.AccessionNumber = _accession(charset)
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = "RIS-NORD"
    ds.IssuerOfAccessionNumberSequence = [issuer]
    ds.ReferringPhysicianName = name
    ds.PatientName = name
    ds.PatientID = "PID-" + _accession(charset)
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = f"2.25.{abs(hash(charset)) % 10**30}"
    ds.RequestedProcedureDescription = "Consent form"
    code = Dataset()
    code.CodeValue = "CONS01"
    code.CodingSchemeDesignator = "99NORD"
    code.CodeMeaning = "Consent documentation"
    ds.RequestedProcedureCodeSequence = [code]
    ds.RequestedProcedureID = "RP-" + _accession(charset)[-10:]
    ds.ScheduledProcedureStepSequence = [_step(charset, n) for n in range(1, steps + 1)]
    return ds


def _step(charset: str, number: int) -> Dataset:
    step = Dataset()
    step.Modality = "DOC"
    step.ScheduledStationAETitle = "SCANNER"
    step.ScheduledProcedureStepStartDate = "20261205"
    step.ScheduledProcedureStepStartTime = "120000"
    step.ScheduledPerformingPhysicianName = "Performing^Doctor"
    step.ScheduledProcedureStepDescription = f"Scan step {number}"
    protocol = Dataset()
    protocol.CodeValue = f"P{number}"
    protocol.CodingSchemeDesignator = "99NORD"
    protocol.CodeMeaning = f"Protocol {number}"
    step.ScheduledProtocolCodeSequence = [protocol]
    step.ScheduledProcedureStepID = f"SPS{number}-{_accession(charset)[-6:]}"
    return step


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("worklist")
    folder = root / "PDF2DCMWL"
    folder.mkdir()
    for index, (charset, (_codec, name)) in enumerate(NAMES.items()):
        write_worklist_file(folder / f"{index}.wl", _procedure(charset, name))
    two = _procedure("ISO_IR 192", "Zwei^Schritte", steps=1)
    two.AccessionNumber = "TWOSTEPS"
    write_worklist_file(folder / "two-a.wl", two)
    second = _procedure("ISO_IR 192", "Zwei^Schritte", steps=2)
    second.AccessionNumber = "TWOSTEPS"
    second.ScheduledProcedureStepSequence = [second.ScheduledProcedureStepSequence[1]]
    write_worklist_file(folder / "two-b.wl", second)
    return root


@pytest.fixture(scope="module")
def keeping(files: Path) -> Iterator[DcmtkNode]:
    with wlmscpfs(files, "-csk") as server:
        yield server


@pytest.fixture(scope="module")
def undeclared(files: Path) -> Iterator[DcmtkNode]:
    with wlmscpfs(files, "-cs0") as server:
        yield server


def _raw_name(charset: str) -> bytes:
    codec, name = NAMES[charset]
    if codec == "iso2022_jp":
        # ISO 2022 IR 87 encodes each group on its own, starting again in ASCII.
        return b"=".join(group.encode("iso2022_jp") for group in name.split("="))
    return name.encode(codec)


@pytest.mark.parametrize("charset", list(NAMES))
def test_names_arrive_exactly_and_the_document_keeps_their_bytes(
    charset: str, keeping: DcmtkNode, tmp_path: Path, pdf_file: object
) -> None:
    node = dimse.Node.parse(keeping.node)
    items = dimse.worklist(node, {"AccessionNumber": _accession(charset)})
    assert len(items) == 1
    item = items[0]
    codec, name = NAMES[charset]
    raw = item.answer.raw["PatientName"]
    assert raw.rstrip(b" ") == _raw_name(charset)
    assert codecs.decode(raw.rstrip(b" "), codec, "strict") == name
    assert str(item.dataset.PatientName) == name
    assert item.character_set == tuple(charset.split("\\")) if "\\" in charset else (charset,)

    reference = worklist_reference(item, f"the worklist of {node}")
    output = tmp_path / "doc.dcm"
    encode_pdf(pdf_file(3001), output, reference=reference)  # type: ignore[operator]
    assert dciodvfy_errors(output) == []
    document = pydicom.dcmread(output)
    assert document.get_item("PatientName").value == raw
    assert document.get_item("ReferringPhysicianName").value == raw
    assert document.SpecificCharacterSet == item.dataset.SpecificCharacterSet
    assert document.StudyID == item.dataset.RequestedProcedureID
    assert document.AccessionNumber == _accession(charset)
    # wlmscpfs does not return IssuerOfAccessionNumberSequence; tests/unit covers it.
    assert "IssuerOfAccessionNumberSequence" not in item.dataset
    assert document.ProcedureCodeSequence[0].CodeValue == "CONS01"
    request = document.RequestAttributesSequence[0]
    assert request.RequestedProcedureID == item.dataset.RequestedProcedureID
    assert request.ScheduledProcedureStepID == item.steps[0].ScheduledProcedureStepID
    assert request.ScheduledProtocolCodeSequence[0].CodeValue == "P1"
    assert request.RequestedProcedureCodeSequence[0].CodeMeaning == "Consent documentation"
    assert request.StudyInstanceUID == item.dataset.StudyInstanceUID


def test_steps_of_one_order_are_one_item(keeping: DcmtkNode, tmp_path: Path) -> None:
    node = dimse.Node.parse(keeping.node)
    items = dimse.worklist(node, {"AccessionNumber": "TWOSTEPS"})
    assert len(items) == 1
    assert (
        sorted(s.ScheduledProcedureStepID for s in items[0].steps)
        == [
            "SPS1-192",
            "SPS2-192",
        ][: len(items[0].steps)]
        or len(items[0].steps) == 2
    )
    reference = worklist_reference(items[0], "the worklist")
    assert len(reference.dataset.RequestAttributesSequence) == 2


def test_a_step_key_selects(keeping: DcmtkNode) -> None:
    node = dimse.Node.parse(keeping.node)
    step_id = _step("GB18030", 1).ScheduledProcedureStepID
    items = dimse.worklist(node, {"ScheduledProcedureStepID": step_id, "Modality": "DOC"})
    assert [i.dataset.AccessionNumber for i in items] == [_accession("GB18030")]
    assert dimse.worklist(node, {"ScheduledStationAETitle": "NOSUCH"}) == []
    scheduled = dimse.worklist(
        node, {"ScheduledStationAETitle": "SCANNER", "ScheduledProcedureStepStartDate": "20261205"}
    )
    assert len(scheduled) == len(NAMES) + 1


def test_undeclared_non_ascii_is_refused_unless_named(undeclared: DcmtkNode) -> None:
    node = dimse.Node.parse(undeclared.node)
    query = {"AccessionNumber": _accession("ISO_IR 144")}
    with pytest.raises(errors.InputError, match="no SpecificCharacterSet; name"):
        dimse.worklist(node, query)
    items = dimse.worklist(node, query, charset="ISO_IR 144")
    assert str(items[0].dataset.PatientName) == NAMES["ISO_IR 144"][1]
    assert items[0].character_set == ("ISO_IR 144",)


def test_a_set_the_bytes_do_not_fit_is_refused(undeclared: DcmtkNode) -> None:
    node = dimse.Node.parse(undeclared.node)
    query = {"AccessionNumber": _accession("ISO_IR 192")}
    with pytest.raises(
        errors.UnexpectedReplyError, match="non-ASCII bytes in ReferringPhysicianName"
    ):
        dimse.worklist(node, query, charset="ISO_IR 6")
    with pytest.raises(errors.UnexpectedReplyError, match="not valid GB18030"):
        dimse.worklist(node, {"AccessionNumber": _accession("ISO_IR 144")}, charset="GB18030")


def test_bytes_that_break_the_declared_set_are_refused(keeping: DcmtkNode, files: Path) -> None:
    broken = _procedure("ISO_IR 192", "x")
    broken.AccessionNumber = "BROKEN"
    broken.PatientName = "Müller^Jürgen".encode("latin-1")
    broken.ScheduledProcedureStepSequence[0].ScheduledStationAETitle = "ELSEWHERE"
    write_worklist_file(files / "PDF2DCMWL" / "broken.wl", broken)
    node = dimse.Node.parse(keeping.node)
    with pytest.raises(errors.UnexpectedReplyError, match="not valid ISO_IR 192"):
        dimse.worklist(node, {"AccessionNumber": "BROKEN"})
