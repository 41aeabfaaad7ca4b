"""The upper layer against a scripted peer: what a receiver that misbehaves does to a C-STORE.

Well-behaved peers are pynetdicom's SCPs (test_echo, the watch and upload tests) and, in the
integration tests, DCMTK storescp and Orthanc. Here each test scripts the peer's bytes, PDUs
built by hand from PS3.8 (not by the code under test), to reach the paths those never take.
"""

from __future__ import annotations

import errno
import io
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pdf2dcm import dimse, errors, upperlayer
from pdf2dcm.dicom import IMPLEMENTATION_CLASS_UID, encode_pdf
from tests.conftest import PdfFactory

EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
Script = Callable[[socket.socket], None]


def pdu(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(body)) + body


def item(kind: int, value: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(value)) + value


def read_pdu(conn: socket.socket) -> tuple[int, bytes]:
    header = read_exactly(conn, 6)
    kind, _reserved, length = struct.unpack(">BBI", header)
    return kind, read_exactly(conn, length)


def read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = conn.recv(size - len(data))
        if not piece:
            raise ConnectionError("the client closed")
        data += piece
    return data


def accept(
    syntax: str = EXPLICIT, max_length: int = 16384, context_id: int = 1, result: int = 0
) -> bytes:
    """An A-ASSOCIATE-AC granting presentation context ``context_id`` in ``syntax``."""
    context = struct.pack(">BBBB", context_id, 0, result, 0) + item(0x40, syntax.encode())
    user = item(0x51, struct.pack(">I", max_length))
    body = struct.pack(">HH", 1, 0) + b"STORE".ljust(16) + b"PDF2DCM".ljust(16) + bytes(32)
    body += item(0x10, b"1.2.840.10008.3.1.1.1") + item(0x21, context) + item(0x50, user)
    return pdu(0x02, body)


def response(
    field: int,
    status: int,
    message_id: int = 1,
    context_id: int = 1,
    extra: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """A P-DATA-TF holding a whole response command set (Implicit VR Little Endian);
    ``extra`` elements (number, value) go in tag order."""
    elements = sorted(
        [
            (0x0100, struct.pack("<H", field)),
            (0x0120, struct.pack("<H", message_id)),
            (0x0800, struct.pack("<H", 0x0101)),
            (0x0900, struct.pack("<H", status)),
            *extra,
        ]
    )
    body = b"".join(struct.pack("<HHI", 0, n, len(v)) + v for n, v in elements)
    command = struct.pack("<HHII", 0, 0, 4, len(body)) + body
    return pdu(0x04, struct.pack(">IBB", len(command) + 2, context_id, 0x03) + command)


def read_message(conn: socket.socket) -> tuple[bytes, bytes]:
    """The command set and data set of the next message the client sends."""
    parts = {True: b"", False: b""}
    done = {True: False, False: False}
    while not done[True] or not done[False]:
        kind, body = read_pdu(conn)
        assert kind == 0x04
        position = 0
        while position < len(body):
            length, _context, control = struct.unpack_from(">IBB", body, position)
            parts[bool(control & 1)] += body[position + 6 : position + 4 + length]
            done[bool(control & 1)] = bool(control & 2)
            if control == 0x03 and b"\x00\x08\x02\x00\x00\x00\x01\x01" in parts[True]:
                done[False] = True  # no data set follows
            position += 4 + length
    return parts[True], parts[False]


@contextmanager
def peer(script: Script, connections: int = 1) -> Iterator[tuple[int, list[BaseException]]]:
    """A listening socket whose first ``connections`` connections are handed to ``script``
    in turn, in a thread."""
    failures: list[BaseException] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def run() -> None:
        for _ in range(connections):
            conn, _address = server.accept()
            with conn:
                try:
                    script(conn)
                except (OSError, ConnectionError):
                    pass
                except BaseException as exc:  # an assertion of the script, reported below
                    failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield port, failures
    finally:
        thread.join(timeout=10)
        server.close()
    assert not failures, failures


@pytest.fixture
def dcm(tmp_path: Path, pdf_file: PdfFactory) -> Path:
    path = tmp_path / "doc.dcm"
    encode_pdf(pdf_file(3 << 20), path, tags={"PatientID": "P1"})
    return path


def store(port: int, dcm: Path, timeout: float = 5) -> dimse.StoreResult:
    return dimse.store(dimse.Node.parse(f"STORE@127.0.0.1:{port}"), dcm, timeout=timeout)


def test_the_request_proposes_what_the_standard_asks(dcm: Path) -> None:
    seen: dict[str, bytes] = {}

    def script(conn: socket.socket) -> None:
        kind, body = read_pdu(conn)
        seen["rq"] = bytes([kind]) + body
        conn.sendall(accept())
        seen["command"], seen["data"] = read_message(conn)
        conn.sendall(response(0x8001, 0x0000))
        assert read_pdu(conn) == (0x05, bytes(4))
        conn.sendall(pdu(0x06, bytes(4)))

    with peer(script) as (port, _failures):
        result = store(port, dcm)
    assert result.status.success
    rq = seen["rq"]
    assert rq[:5] == b"\x01\x00\x01\x00\x00"  # A-ASSOCIATE-RQ, protocol version 1
    assert rq[5:21] == b"STORE".ljust(16)
    assert rq[21:37] == b"PDF2DCM".ljust(16)
    assert item(0x10, b"1.2.840.10008.3.1.1.1") in rq
    context = item(0x30, PDF_STORAGE.encode()) + item(0x40, EXPLICIT.encode())
    assert item(0x20, b"\x01\x00\x00\x00" + context + item(0x40, IMPLICIT.encode())) in rq
    assert item(0x52, IMPLEMENTATION_CLASS_UID.encode()) in rq
    assert item(0x51, struct.pack(">I", upperlayer.MAX_RECEIVE)) in rq
    data = dcm.read_bytes()
    start = 132 + 12 + struct.unpack_from("<I", data, 140)[0]
    assert seen["data"] == data[start:]
    uid = result.sop_instance_uid.encode()
    assert struct.pack("<HHI", 0, 0x1000, len(uid) + len(uid) % 2) + uid in seen["command"]
    assert struct.pack("<HHIH", 0, 0x0100, 2, 0x0001) in seen["command"]


@pytest.mark.parametrize(
    ("source", "reason", "words"),
    [
        (
            1,
            3,
            "rejected permanent, Service User: Calling AE title not recognised); the "
            "archive must know the calling AE title PDF2DCM (or give --calling-aet)",
        ),
        (
            1,
            7,
            "rejected permanent, Service User: Called AE title not recognised); check the "
            "AE title STORE",
        ),
        (3, 1, "rejected permanent, Service Provider (Presentation): Temporary congestion)"),
        (2, 2, "rejected permanent, Service Provider (ACSE): Protocol version not supported)"),
    ],
)
def test_a_rejection_says_who_rejected_and_why(
    dcm: Path, source: int, reason: int, words: str
) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(pdu(0x03, bytes([0, 1, source, reason])))

    with peer(script) as (port, _failures), pytest.raises(errors.AssociationRejectedError) as exc:
        store(port, dcm)
    assert str(exc.value) == f"STORE@127.0.0.1:{port} rejected the association ({words}"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 400 Bad Request\r\n\r\n",  # a web server
        b"\x15\x03\x03\x00\x02\x02\x46",  # a TLS alert: a TLS port spoken to in plain TCP
        pdu(0x07, bytes([0, 0, 2, 0])),  # an abort
        b"",  # closed
    ],
)
def test_a_port_that_does_not_associate_is_named_so(dcm: Path, answer: bytes) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(answer)

    with peer(script) as (port, _failures), pytest.raises(errors.ServerUnreachableError) as exc:
        store(port, dcm)
    assert str(exc.value) == (
        f"STORE@127.0.0.1:{port} accepted the connection but not the association (it was "
        "aborted or timed out); check the AE titles and that it is a DICOM port; a TLS port "
        "needs --tls"
    )


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (accept(syntax="1.2.840.10008.1.2.4.50"), "it chose transfer syntax"),
        (accept(context_id=3), "it answers presentation context 3, never proposed"),
        (accept()[:40], "cut short"),
    ],
)
def test_an_answer_granting_what_was_not_asked_is_refused(
    dcm: Path, answer: bytes, words: str
) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(pdu(0x02, answer[6:]))  # the length of what it holds
        read_pdu(conn)  # the abort

    with peer(script) as (port, _failures), pytest.raises(errors.UnexpectedReplyError) as exc:
        store(port, dcm)
    assert str(exc.value).startswith(
        f"STORE@127.0.0.1:{port} answered the association request with something DICOM does "
        "not allow ("
    )
    assert words in str(exc.value)


def test_a_receiver_that_takes_no_context_refuses_the_sop_class(dcm: Path) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept(result=3))  # abstract syntax not supported
        assert read_pdu(conn)[0] == 0x07

    with peer(script) as (port, _failures), pytest.raises(errors.DicomRefusedError) as exc:
        store(port, dcm)
    assert exc.value.status == 0x0122
    assert f"does not accept SOP Class {PDF_STORAGE}" in str(exc.value)


def test_an_implicit_only_receiver_gets_implicit_headers_and_the_same_value_bytes(
    dcm: Path,
) -> None:
    seen: dict[str, bytes] = {}

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept(syntax=IMPLICIT))
        _command, seen["data"] = read_message(conn)
        conn.sendall(response(0x8001, 0xB000))
        read_pdu(conn)
        conn.sendall(pdu(0x06, bytes(4)))

    with peer(script) as (port, _failures):
        result = store(port, dcm)
    assert result.transfer_syntax == IMPLICIT
    assert result.warning is not None
    assert "B000 (Coercion of data elements)" in result.warning
    data = dcm.read_bytes()
    start = 132 + 12 + struct.unpack_from("<I", data, 140)[0]
    assert seen["data"] == dimse.implicit_elements(data[start:])


def test_a_receiver_that_goes_away_mid_object_is_named_with_what_was_sent(
    tmp_path: Path, pdf_file: PdfFactory
) -> None:
    """The object is larger than what the two sockets' buffers can hold, so the sender is
    still sending when the receiver resets the connection."""
    dcm = tmp_path / "large.dcm"
    encode_pdf(pdf_file(24 << 20), dcm, tags={"PatientID": "P1"})

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_exactly(conn, 1 << 20)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with peer(script) as (port, _failures), pytest.raises(errors.ServerUnreachableError) as exc:
        store(port, dcm)
    assert str(exc.value).startswith(f"STORE@127.0.0.1:{port} stopped receiving after ")
    assert int(str(exc.value).split("after ")[1].split(" ")[0]) < dcm.stat().st_size


@pytest.mark.parametrize(
    ("answer", "cls", "words"),
    [
        (
            pdu(0x07, bytes([0, 0, 2, 2])),
            errors.ServerUnreachableError,
            "aborted the association (service provider: unexpected PDU)",
        ),
        (
            response(0x8001, 0, message_id=2),
            errors.UnexpectedReplyError,
            "answered the C-STORE with a command that is not its response",
        ),
        (
            response(0x8030, 0),
            errors.UnexpectedReplyError,
            "answered the C-STORE with a command that is not its response",
        ),
        (
            response(0x8001, 0, context_id=5),
            errors.UnexpectedReplyError,
            "it answered on presentation context 5",
        ),
        (
            pdu(0x04, bytes(upperlayer.MAX_RECEIVE + 1)),
            errors.UnexpectedReplyError,
            f"it sent a PDU of {upperlayer.MAX_RECEIVE + 1} bytes",
        ),
        (
            pdu(0x04, struct.pack(">IBB", 99, 1, 3)),
            errors.UnexpectedReplyError,
            "a presentation data value is cut short",
        ),
        (b"", errors.ServerUnreachableError, "went away before answering the C-STORE"),
    ],
)
def test_an_answer_that_is_not_a_response_fails_the_store(
    dcm: Path, answer: bytes, cls: type[Exception], words: str
) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_message(conn)
        conn.sendall(answer)

    with peer(script) as (port, _failures), pytest.raises(cls) as exc:
        store(port, dcm)
    assert str(exc.value).startswith(f"STORE@127.0.0.1:{port} ")
    assert words in str(exc.value)


def test_a_failure_status_is_the_store_s_failure(dcm: Path) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_message(conn)
        conn.sendall(response(0x8001, 0xA700))
        read_pdu(conn)
        conn.sendall(pdu(0x06, bytes(4)))

    with peer(script) as (port, _failures), pytest.raises(errors.DicomOutOfResourcesError) as exc:
        store(port, dcm)
    assert exc.value.status == 0xA700
    assert "failed with status A700 (Refused: out of resources)" in str(exc.value)


def test_a_receiver_that_never_answers_is_a_timeout_not_a_hang(dcm: Path) -> None:
    answered = threading.Event()

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_message(conn)
        answered.wait(10)  # says nothing until the client has given up

    with peer(script) as (port, _failures):
        try:
            with pytest.raises(errors.ServerUnreachableError) as exc:
                store(port, dcm, timeout=0.2)
        finally:
            answered.set()
    assert str(exc.value) == f"STORE@127.0.0.1:{port} did not answer the C-STORE within 0.2 s"


def test_a_success_whose_release_goes_unanswered_is_still_a_success(dcm: Path) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_message(conn)
        conn.sendall(response(0x8001, 0))
        read_pdu(conn)  # the release request; the connection closes unanswered

    with peer(script) as (port, _failures):
        assert store(port, dcm).status.success


def test_echo_sends_a_verification_command_without_data(dcm: Path) -> None:
    seen: dict[str, bytes] = {}

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept(syntax=IMPLICIT))
        seen["command"], _data = read_message(conn)
        conn.sendall(response(0x8030, 0))
        read_pdu(conn)
        conn.sendall(pdu(0x06, bytes(4)))

    with peer(script) as (port, _failures):
        dimse.echo(dimse.Node.parse(f"STORE@127.0.0.1:{port}"))
    assert struct.pack("<HHIH", 0, 0x0100, 2, 0x0030) in seen["command"]
    assert struct.pack("<HHIH", 0, 0x0800, 2, 0x0101) in seen["command"]


def test_a_store_and_an_echo_load_neither_pydicom_nor_pynetdicom(dcm: Path) -> None:
    """What a one-object send costs to start is Python and this module: pydicom and
    pynetdicom together took about 0.13 s to import, a third of storescu's whole time for
    500 MiB."""

    fields = [0x8030, 0x8001]  # the echo's association, then the store's

    def script(conn: socket.socket) -> None:
        field = fields.pop(0)
        read_pdu(conn)
        conn.sendall(accept(syntax=IMPLICIT if field == 0x8030 else EXPLICIT))
        read_message(conn)
        conn.sendall(response(field, 0))
        read_pdu(conn)
        conn.sendall(pdu(0x06, bytes(4)))

    code = (
        "import sys\n"
        "from pdf2dcm import dimse\n"
        "node = dimse.Node.parse(sys.argv[1])\n"
        "dimse.echo(node)\n"
        "print(dimse.store(node, sys.argv[2]).status)\n"
        "print('pydicom' in sys.modules, 'pynetdicom' in sys.modules)\n"
    )
    with peer(script, connections=2) as (port, _failures):
        done = subprocess.run(
            [sys.executable, "-c", code, f"STORE@127.0.0.1:{port}", str(dcm)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0000 (Success)", "False False"]


def test_a_response_trickled_a_byte_at_a_time_is_bounded_by_the_timeout_in_all(
    dcm: Path,
) -> None:
    """Each byte comes well within the timeout; the answer as a whole does not."""
    gave_up = threading.Event()

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_message(conn)
        for byte in response(0x8001, 0):
            if gave_up.wait(0.02):
                return
            conn.sendall(bytes([byte]))

    with peer(script) as (port, _failures):
        try:
            with pytest.raises(errors.ServerUnreachableError) as exc:
                store(port, dcm, timeout=0.3)
        finally:
            gave_up.set()
    assert str(exc.value) == f"STORE@127.0.0.1:{port} did not answer the C-STORE within 0.3 s"


def test_a_success_sent_before_the_object_was_received_is_not_a_store(dcm: Path) -> None:
    """The receiver answers with the association's acceptance, then reads the object: the
    answer was there before the object went out, so it answers nothing."""

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept() + response(0x8001, 0))
        while read_pdu(conn)[0] == 0x04:  # whatever comes of the object, until an abort
            pass

    with peer(script) as (port, _failures), pytest.raises(errors.UnexpectedReplyError) as exc:
        store(port, dcm)
    assert str(exc.value).startswith(
        f"STORE@127.0.0.1:{port} answered the C-STORE with 0000 (Success) after 0 bytes, "
    )
    assert str(exc.value).endswith("before it had the whole object; it is not taken as stored")


def test_a_failure_sent_before_the_object_was_received_is_the_reason(
    tmp_path: Path, pdf_file: PdfFactory
) -> None:
    dcm = tmp_path / "large.dcm"
    encode_pdf(pdf_file(24 << 20), dcm, tags={"PatientID": "P1"})

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_exactly(conn, 1 << 20)
        conn.sendall(response(0x8001, 0xA700))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with peer(script) as (port, _failures), pytest.raises(errors.DicomOutOfResourcesError) as exc:
        store(port, dcm)
    assert "failed with status A700 (Refused: out of resources)" in str(exc.value)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (((0x1000, b"1.2.3.4\0"),), "for 1.2.3.4"),
        (((0x0002, b"1.2.840.10008.5.1.4.1.1.7\0"),), "for 1.2.840.10008.5.1.4.1.1.7"),
    ],
)
def test_a_response_naming_another_instance_is_not_this_store_s(
    dcm: Path, extra: tuple[tuple[int, bytes], ...], words: str
) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_message(conn)
        conn.sendall(response(0x8001, 0, extra=extra))

    with peer(script) as (port, _failures), pytest.raises(errors.UnexpectedReplyError) as exc:
        store(port, dcm)
    assert words in str(exc.value)


def test_a_status_given_twice_is_refused_whichever_comes_last(dcm: Path) -> None:
    twice = response(0x8001, 0xA700, extra=((0x0900, struct.pack("<H", 0)),))

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_message(conn)
        conn.sendall(twice)

    with peer(script) as (port, _failures), pytest.raises(errors.UnexpectedReplyError) as exc:
        store(port, dcm)
    assert "the command holds (0000,0900) twice or out of order" in str(exc.value)


@pytest.mark.parametrize(("stated", "largest"), [(None, 16384), (4096, 4096), (0, None)])
def test_fragments_fit_the_length_the_receiver_takes(
    dcm: Path, stated: int | None, largest: int | None
) -> None:
    lengths: list[int] = []
    answer = accept(max_length=stated or 0)
    if stated is None:  # the user information item without its maximum length sub-item
        answer = answer[: -len(item(0x50, item(0x51, bytes(4))))]
        answer = pdu(0x02, answer[6:] + item(0x50, b""))

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(answer)
        while True:
            _kind, body = read_pdu(conn)
            lengths.append(len(body))
            if body[5] & 2 and not body[5] & 1:
                break
        conn.sendall(response(0x8001, 0))

    with peer(script) as (port, _failures):
        store(port, dcm)
    if largest is None:  # no limit: about a block per PDU
        assert max(lengths) > 16384
    else:
        assert max(lengths) == largest


@pytest.mark.parametrize("stated", [1, 6])
def test_a_receiver_taking_no_data_per_pdu_is_refused(dcm: Path, stated: int) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept(max_length=stated))

    with peer(script) as (port, _failures), pytest.raises(errors.UnexpectedReplyError) as exc:
        store(port, dcm)
    assert f"it takes PDUs of at most {stated} bytes" in str(exc.value)


def test_echo_fits_the_length_the_receiver_takes() -> None:
    lengths: list[int] = []

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept(syntax=IMPLICIT, max_length=32))
        while True:
            _kind, body = read_pdu(conn)
            lengths.append(len(body))
            if body[5] == 3:
                break
        conn.sendall(response(0x8030, 0))

    with peer(script) as (port, _failures):
        dimse.echo(dimse.Node.parse(f"STORE@127.0.0.1:{port}"))
    assert max(lengths) == 32
    assert len(lengths) > 1


def test_a_p_data_without_a_value_is_refused_not_waited_on(dcm: Path) -> None:
    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        read_message(conn)
        conn.sendall(pdu(0x04, b""))

    with peer(script) as (port, _failures), pytest.raises(errors.UnexpectedReplyError) as exc:
        store(port, dcm)
    assert "without a presentation data value" in str(exc.value)


def test_a_file_the_system_cannot_read_is_the_file_s_error_not_the_node_s(dcm: Path) -> None:
    class Failing(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data, self.position = data, 0

        def readable(self) -> bool:
            return True

        def readinto(self, target: Any) -> int:
            if self.position > 2 << 20:
                raise OSError(errno.EIO, "Input/output error")
            piece = self.data[self.position : self.position + len(target)]
            target[: len(piece)] = piece
            self.position += len(piece)
            return len(piece)

    def script(conn: socket.socket) -> None:
        read_pdu(conn)
        conn.sendall(accept())
        while read_pdu(conn)[0] == 0x04:
            pass

    with peer(script) as (port, _failures), pytest.raises(errors.FileSystemError) as exc:
        dimse.store(
            dimse.Node.parse(f"STORE@127.0.0.1:{port}"), Failing(dcm.read_bytes()), name="doc"
        )
    assert str(exc.value).startswith("cannot read doc at byte ")
    assert str(exc.value).endswith(": Input/output error")
