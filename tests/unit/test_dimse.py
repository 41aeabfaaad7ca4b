"""dimse without a network: nodes, AE titles, statuses, re-encoding, step merging."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from pdf2dcm import dimse, errors
from pdf2dcm.constants import MAX_SEQUENCE_DEPTH
from pdf2dcm.worklist import worklist_reference
from tests.conftest import PdfFactory


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("ORTHANC@localhost:4242", ("ORTHANC", "localhost", 4242)),
        ("A B@10.0.0.1:1", ("A B", "10.0.0.1", 1)),
        ("PACS@[::1]:65535", ("PACS", "::1", 65535)),
        ("X@Y@host:104", ("X@Y", "host", 104)),
        ("ABCDEFGHIJKLMNOP@h:104", ("ABCDEFGHIJKLMNOP", "h", 104)),
    ],
)
def test_nodes_parse(text: str, node: tuple[str, str, int]) -> None:
    parsed = dimse.Node.parse(text)
    assert (parsed.ae_title, parsed.host, parsed.port) == node
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost:4242", "not a DICOM node"),
        ("@localhost:4242", "not a DICOM node"),
        ("AE@localhost", "not a DICOM node"),
        ("AE@:104", "not a DICOM node"),
        ("AE@host:0", "from 1 to 65535"),
        ("AE@host:65536", "from 1 to 65535"),
        ("AE@host:\uff11\uff10\uff14", "from 1 to 65535"),  # full-width digits
        ("AE@host:-1", "from 1 to 65535"),
        ("AE@[::1:104", "not a DICOM node"),
        ("AE@[nohost]:104", "not an IPv6 address"),
        ("AE@::1:104", "not a DICOM node"),
        ("ABCDEFGHIJKLMNOPQ@h:104", "17 characters; an AE title has at most 16"),
        ("A\\B@h:104", "without a backslash"),
        ("A\tB@h:104", "printable ASCII"),
        ("MÜLLER@h:104", "printable ASCII"),
        ("   @h:104", "is empty"),
        ("AE@ho st:104", "not a DICOM node"),
    ],
)
def test_bad_nodes_are_refused(text: str, message: str) -> None:
    with pytest.raises(errors.InputError, match=message):
        dimse.Node.parse(text)


def test_the_calling_title_and_timeout_are_checked() -> None:
    node = dimse.Node.parse("A@h:1")
    with pytest.raises(errors.InputError, match="calling AE title"):
        dimse.Connection(node, calling_aet="X" * 17)
    with pytest.raises(errors.InputError, match="more than 0 seconds"):
        dimse.Connection(node, timeout=0)


@pytest.mark.parametrize(
    ("code", "error", "meaning"),
    [
        (0xA700, errors.DicomOutOfResourcesError, "Refused: out of resources"),
        (0xA7FF, errors.DicomOutOfResourcesError, "Refused: out of resources"),
        (0x0213, errors.DicomOutOfResourcesError, "Resource limitation"),
        (0xA900, errors.DicomRefusedError, "Data set does not match SOP Class"),
        (0xC123, errors.DicomRefusedError, "Cannot understand"),
        (0x0122, errors.DicomRefusedError, "SOP Class not supported"),
        (0x0111, errors.DicomRefusedError, "Duplicate SOP Instance"),
        (0xD001, errors.DicomRefusedError, "unknown status"),
    ],
)
def test_failure_statuses_map_to_typed_errors(
    code: int, error: type[errors.DicomStatusError], meaning: str
) -> None:
    raised = dimse.status_error(dimse.Status.of(code), "C-STORE of 1.2 to A@h:1")
    assert type(raised) is error
    assert raised.status == code
    assert raised.meaning == meaning
    assert str(raised) == f"C-STORE of 1.2 to A@h:1 failed with status {code:04X} ({meaning})"


@pytest.mark.parametrize("code", [0x0001, 0xB000, 0xB001, 0xB006, 0xB007, 0xBFFF])
def test_warning_statuses_are_warnings(code: int) -> None:
    status = dimse.Status.of(code)
    assert status.warning
    assert not status.success


@pytest.mark.parametrize("code", [0xA700, 0xA7FF, 0xA900, 0xAFFF, 0xC000, 0x0110, 0x0122])
def test_failure_statuses_are_not_warnings(code: int) -> None:
    assert not dimse.Status.of(code).warning


def test_success_is_not_a_warning() -> None:
    assert dimse.Status.of(0).success
    assert not dimse.Status.of(0).warning


def _encoded(ds: Dataset, implicit: bool) -> bytes:
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit
    write_dataset(buffer, ds)
    return buffer.getvalue()


def test_implicit_re_encoding_keeps_every_value_byte() -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎"
    ds.PatientID = "4711"
    code = Dataset()
    code.CodeValue = "X"
    code.CodeMeaning = "Ein längerer Text"
    inner = Dataset()
    inner.CodeValue = "Y"
    code.ConceptNameCodeSequence = [inner]
    ds.ConceptNameCodeSequence = Sequence([code, Dataset()])
    ds.InstanceNumber = "1"
    ds.EncapsulatedDocumentLength = 5
    explicit = _encoded(ds, implicit=False)
    converted = dimse.implicit_elements(explicit)
    read = pydicom.filereader.read_dataset(
        io.BytesIO(converted), is_implicit_VR=True, is_little_endian=True
    )
    for tag in (0x00080005, 0x00100010, 0x00100020, 0x00200013, 0x00420015):
        assert read.get_item(tag).value == _raw(explicit, tag)
    assert read.ConceptNameCodeSequence[0].ConceptNameCodeSequence[0].CodeValue == "Y"
    assert len(read.ConceptNameCodeSequence) == 2


def _raw(explicit: bytes, tag: int) -> bytes:
    read = pydicom.filereader.read_dataset(
        io.BytesIO(explicit), is_implicit_VR=False, is_little_endian=True
    )
    value = read.get_item(tag).value
    assert isinstance(value, bytes)
    return value


def test_an_undefined_length_value_cannot_become_implicit() -> None:
    element = struct.pack("<HH2sHI", 0x0009, 0x0010, b"UN", 0, 0xFFFFFFFF)
    with pytest.raises(errors.InputError, match="undefined length"):
        dimse.implicit_elements(element)


def _answer(accession: str, step_id: str, name: bytes = b"Doe^Jane") -> dimse.FindAnswer:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.AccessionNumber = accession
    ds.PatientName = name.decode("latin-1")
    ds.PatientID = "4711"
    ds.StudyInstanceUID = "2.25.42"
    ds.RequestedProcedureID = "RP1"
    ds.RequestedProcedureDescription = "Consent"
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = "RIS"
    ds.IssuerOfAccessionNumberSequence = [issuer]
    code = Dataset()
    code.CodeValue = "C1"
    code.CodingSchemeDesignator = "99X"
    code.CodeMeaning = "Consent"
    code.CodingSchemeVersion = ""
    ds.RequestedProcedureCodeSequence = [code]
    step = Dataset()
    step.ScheduledProcedureStepID = step_id
    step.ScheduledProcedureStepDescription = f"step {step_id}"
    ds.ScheduledProcedureStepSequence = [step]
    raw = {"AccessionNumber": accession.encode(), "PatientName": name, "PatientID": b"4711"}
    return dimse.FindAnswer(ds, raw, ("ISO_IR 100",))


def test_steps_of_one_order_merge_and_other_orders_stay_apart() -> None:
    items = dimse.merge_steps(
        [_answer("A1", "S1"), _answer("A1", "S2"), _answer("A2", "S3"), _answer("A1", "S4", b"X")]
    )
    assert [[s.ScheduledProcedureStepID for s in item.steps] for item in items] == [
        ["S1", "S2"],
        ["S3"],
        ["S4"],
    ]


def test_the_reference_carries_the_order() -> None:
    (item,) = dimse.merge_steps([_answer("A1", "S1"), _answer("A1", "S2")])
    reference = worklist_reference(item, "the worklist of WL@ris:104")
    ds = reference.dataset
    assert reference.character_set == ("ISO_IR 100",)
    assert reference.level == "study"
    assert ds.StudyID == "RP1"
    assert ds.StudyDescription == "Consent"
    assert ds.IssuerOfAccessionNumberSequence[0].LocalNamespaceEntityID == "RIS"
    assert ds.ProcedureCodeSequence[0].CodeValue == "C1"
    assert "CodingSchemeVersion" not in ds.ProcedureCodeSequence[0]
    requests = ds.RequestAttributesSequence
    assert [r.ScheduledProcedureStepID for r in requests] == ["S1", "S2"]
    assert [r.ScheduledProcedureStepDescription for r in requests] == ["step S1", "step S2"]
    for request in requests:
        assert request.AccessionNumber == "A1"
        assert request.RequestedProcedureID == "RP1"
        assert request.StudyInstanceUID == "2.25.42"
        assert request.IssuerOfAccessionNumberSequence[0].LocalNamespaceEntityID == "RIS"
        assert request.RequestedProcedureCodeSequence[0].CodeMeaning == "Consent"


def test_a_procedure_without_a_study_uid_is_refused() -> None:
    answer = _answer("A1", "S1")
    del answer.dataset.StudyInstanceUID
    (item,) = dimse.merge_steps([answer])
    with pytest.raises(errors.InputError, match="has no StudyInstanceUID"):
        worklist_reference(item, "the worklist")


def test_worklist_keys_are_checked_before_any_network() -> None:
    with pytest.raises(errors.InputError, match="StudyDate cannot select a scheduled procedure"):
        dimse.worklist(dimse.Node.parse("WL@127.0.0.1:9"), {"StudyDate": "20260101"})


def test_a_file_that_is_not_dicom_is_refused_before_any_network() -> None:
    with pytest.raises(errors.InputError, match="not a DICOM file"):
        dimse.store(dimse.Node.parse("S@127.0.0.1:9"), io.BytesIO(b"%PDF-1.4" + bytes(200)))
    with pytest.raises(errors.InputError, match="truncated at byte 5"):
        dimse.store(dimse.Node.parse("S@127.0.0.1:9"), io.BytesIO(b"%PDF-"))


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("piece_size", [16378, 1 << 20])
def test_the_streamed_data_set_is_the_file_s(
    implicit: bool, piece_size: int, tmp_path: Path, pdf_file: PdfFactory
) -> None:
    from pdf2dcm.dicom import encode_pdf

    pdf = pdf_file(2 * piece_size + 7)
    dcm = tmp_path / "doc.dcm"
    encode_pdf(pdf, dcm, tags={"PatientName": "Müller^Jürgen"})
    data = dcm.read_bytes()
    with dcm.open("rb") as stream:
        part10 = dimse._open_part10(stream, "doc.dcm")
        frames = b"".join(
            bytes(batch) for batch in dimse._frames(dimse._blocks(part10, implicit), 7, piece_size)
        )
    values = []
    while frames:
        kind, _reserved, length, item, context, control = struct.unpack_from(">BBIIBB", frames)
        assert (kind, length, item, context) == (4, item + 4, len(frames[12 : 10 + item]) + 2, 7)
        values.append((control, frames[12 : 10 + item]))
        frames = frames[10 + item :]
    assert [control for control, _ in values] == [0] * (len(values) - 1) + [2]
    assert all(0 < len(value) <= piece_size for _, value in values)
    assert all(len(value) == piece_size for _, value in values[:-1])
    start = 132 + 12 + struct.unpack_from("<I", data, 140)[0]
    expected = dimse.implicit_elements(data[start:]) if implicit else data[start:]
    assert b"".join(value for _, value in values) == expected
    assert part10.sop_instance_uid == pydicom.dcmread(dcm).SOPInstanceUID


def test_a_message_that_fills_its_pieces_exactly_ends_on_a_full_piece() -> None:
    frames = b"".join(bytes(batch) for batch in dimse._frames([b"ab", b"cd"], 1, 2))
    assert frames == (
        bytes([4, 0, 0, 0, 0, 8, 0, 0, 0, 4, 1, 0])
        + b"ab"
        + bytes([4, 0, 0, 0, 0, 8, 0, 0, 0, 4, 1, 2])
        + b"cd"
    )
    command = b"".join(bytes(batch) for batch in dimse._frames([b"abc"], 1, 2, command=True))
    assert command[10:12] == bytes([1, 1])
    assert command[-3:] == bytes([1, 3]) + b"c"


def _report(
    committed: list[tuple[str, str]], failed: list[tuple[str, str]] | None = None
) -> Dataset:
    report = Dataset()
    report.TransactionUID = "2.25.7"
    items = []
    for sop_class, sop_instance in committed:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_instance
        items.append(item)
    report.ReferencedSOPSequence = items
    if failed:
        bad = []
        for sop_class, sop_instance in failed:
            item = Dataset()
            item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_instance
            item.FailureReason = 0x0112
            bad.append(item)
        report.FailedSOPSequence = bad
    return report


PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
NODE = dimse.Node("PACS", "127.0.0.1", 104)


@pytest.mark.parametrize(
    "committed",
    [[], [(PDF_CLASS, "2.25.99")], [("1.2.840.10008.5.1.4.1.1.7", "2.25.1")]],
    ids=["names-nothing", "names-another-instance", "names-another-class"],
)
def test_a_report_that_does_not_name_a_document_does_not_commit_it(
    committed: list[tuple[str, str]],
) -> None:
    with pytest.raises(errors.CommitmentFailedError, match="did not commit to 1 of 1") as raised:
        dimse._commit_result(_report(committed), "2.25.7", NODE, [(PDF_CLASS, "2.25.1")])
    result = raised.value.result
    assert isinstance(result, dimse.CommitResult)
    assert result.committed == ()
    assert [f[1] for f in result.failed] == ["2.25.1"]


def test_a_report_naming_every_document_commits_them_and_a_failure_fails() -> None:
    asked = [(PDF_CLASS, "2.25.1"), (PDF_CLASS, "2.25.2")]
    result = dimse._commit_result(_report(asked), "2.25.7", NODE, asked)
    assert result.committed == tuple(asked)
    with pytest.raises(errors.CommitmentFailedError, match="did not commit to 1 of 2"):
        dimse._commit_result(_report(asked[:1], asked[1:]), "2.25.7", NODE, asked)


@pytest.mark.parametrize("size", [3 << 19, 5 << 20])
def test_a_document_cut_short_is_an_input_error_read_ahead_or_not(
    size: int, tmp_path: Path, pdf_file: PdfFactory
) -> None:
    """The bulk value is read by a helper thread when large: its error reaches the sender."""
    from pdf2dcm.dicom import encode_pdf

    dcm = tmp_path / "doc.dcm"
    encode_pdf(pdf_file(size), dcm)
    cut = dcm.read_bytes()[: -size // 2]
    part10 = dimse._open_part10(io.BytesIO(cut), "doc.dcm")
    with pytest.raises(errors.InputError, match=r"^doc\.dcm is truncated at byte \d+; give"):
        for _block in dimse._blocks(part10, implicit=False):
            pass


def test_an_object_read_as_it_is_encoded_is_read_as_its_file(pdf_file: PdfFactory) -> None:
    """``EncodedPdf.chunks()`` through the sender's stream, as the same bytes in a file."""
    from pdf2dcm.dicom import open_encoded

    def data_set(stream: dimse._Readable) -> bytes:
        part10 = dimse._open_part10(stream, "doc")
        return b"".join(bytes(block) for block in dimse._blocks(part10, False))

    with open_encoded(pdf_file((5 << 20) + 3)) as document:
        pieces = list(document.chunks())
    assert len(pieces) > 3
    whole = b"".join(pieces)
    expected = data_set(io.BytesIO(whole))
    assert data_set(dimse._ChunkStream(iter(pieces))) == expected
    assert len(expected) == len(whole) - 132 - 12 - struct.unpack_from("<I", whole, 140)[0]


@pytest.mark.parametrize("implicit", [False, True])
def test_elements_cut_short_after_the_document_are_refused_before_they_are_sent(
    implicit: bool, pdf_file: PdfFactory
) -> None:
    """Sent as they were, a receiver aborted the association (or stored the object cut)."""
    from pdf2dcm.dicom import open_encoded

    with open_encoded(pdf_file((1 << 20) + 5)) as document:
        whole = b"".join(document.chunks())
    part10 = dimse._open_part10(io.BytesIO(whole[:-1]), "doc.dcm")
    with pytest.raises(errors.InputError, match=r"^doc\.dcm is truncated at byte \d+; give"):
        for _block in dimse._blocks(part10, implicit):
            pass


def test_pieces_refilled_by_their_producer_are_read_one_after_the_other() -> None:
    """The stream lets go of a piece before it asks for the next one."""

    def refilled() -> Iterator[bytes]:
        piece = bytearray()
        for text in (b"abc", b"defgh", b"", b"ij"):
            piece[:] = text  # resizing fails while a view of it is held
            yield piece  # type: ignore[misc]

    stream = dimse._ChunkStream(refilled())
    assert stream.read(4) == b"abcd"
    target = memoryview(bytearray(10))
    assert stream.readinto(target) == 4
    assert bytes(target[:4]) == b"efgh"
    assert stream.read(10) == b"ij"
    assert stream.read(1) == b""
    assert stream.readinto(target) == 0


def _nested(depth: int) -> bytes:
    """ContentSequence items nested ``depth`` deep, all of undefined length."""
    opening = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    opening += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return opening * depth + closing * depth


def _sent(data: bytes) -> None:
    part10 = dimse._open_part10(io.BytesIO(data), "deep.dcm")
    for _block in dimse._blocks(part10, implicit=True):
        pass


@pytest.mark.parametrize("where", ["before", "after"])
def test_sequences_nested_past_the_limit_are_refused_not_a_crash(
    where: str, pdf_file: PdfFactory
) -> None:
    """20,000 levels overflowed the stack (RecursionError); as many as extract reads are
    still sent."""
    from pdf2dcm.dicom import open_encoded

    with open_encoded(pdf_file((1 << 20) + 5)) as document:
        whole = b"".join(document.chunks())
    start = 132 + 12 + struct.unpack_from("<I", whole, 140)[0]

    def with_nesting(depth: int) -> bytes:
        if where == "before":
            return whole[:start] + _nested(depth) + whole[start:]
        return whole + _nested(depth)

    _sent(with_nesting(MAX_SEQUENCE_DEPTH))
    for depth in (MAX_SEQUENCE_DEPTH + 1, 20_000):
        with pytest.raises(errors.InputError) as refused:
            _sent(with_nesting(depth))
        assert re.fullmatch(
            r"deep\.dcm: sequences nest more than 64 deep \(at byte \d+\); pdf2dcm reads at "
            r"most 64 levels",
            str(refused.value),
        )
