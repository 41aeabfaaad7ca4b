"""The requesting side of one DICOM Upper Layer association (PS3.8), on a plain socket.

C-STORE and C-ECHO go this way, C-FIND and storage commitment through pynetdicom. Neither of
the first two needs a data set decoded: a command set of a few fixed elements goes out, and
one comes back with a status. pynetdicom's association costs what these two cannot afford
for a one-object send: importing it and pydicom takes about 0.13 s (more than a third of
storescu's whole time for a 500 MiB object), and its reactor thread polls the socket every
millisecond while the object is sent, on a machine whose other core the receiver needs.
Sending through its socket from outside also meant pausing that thread by its private
attributes. Here the association is synchronous: one socket, written and read by the caller
alone, every wait bounded by the timeout, every PDU from the peer bounded in size.

Failures are :mod:`pdf2dcm.errors` values whose one line names the node (``label``): a
refused or timed-out connection, a TLS handshake that failed and why, a rejection with its
result, source and reason as PS3.8 words them, an abort.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import (
    AssociationRejectedError,
    InputError,
    ServerUnreachableError,
    UnexpectedReplyError,
)

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLEMENTATION_CLASS_UID = "2.25.96049378734582463290374981003592740123"
"""dicom.py's implementation UID (a test holds the two equal)."""
MAX_RECEIVE = 1 << 16
"""The longest P-DATA-TF PDU this side accepts, as announced in the association request."""
_MAX_NEGOTIATION = 1 << 16
"""The longest association answer, release or abort PDU taken from a peer."""
_MAX_COMMAND = 1 << 16
"""The longest command set (or data set after a response) taken from a peer."""
UNSTATED_MAX_LENGTH = 16384
"""The PDU length used with a peer that states no maximum: what every implementation takes."""
_ABORT_WAIT = 1.0
"""The longest an A-ABORT may take to go out: it is sent only on the way out of a failure."""

_ASSOCIATE_RQ, _ASSOCIATE_AC, _ASSOCIATE_RJ = 0x01, 0x02, 0x03
_P_DATA, _RELEASE_RQ, _RELEASE_RP, _ABORT = 0x04, 0x05, 0x06, 0x07
_PDU_HEADER = struct.Struct(">BBI")
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
_ELEMENT = struct.Struct("<HHI")
"""An element's header in Implicit VR Little Endian: group, element number, length."""

_RESULTS = {1: "rejected permanent", 2: "rejected transient"}
_SOURCES = {1: "Service User", 2: "Service Provider (ACSE)", 3: "Service Provider (Presentation)"}
_REASONS = {
    1: {
        1: "No reason given",
        2: "Application context name not supported",
        3: "Calling AE title not recognised",
        7: "Called AE title not recognised",
    },
    2: {1: "No reason given", 2: "Protocol version not supported"},
    3: {1: "Temporary congestion", 2: "Local limit exceeded"},
}
_ABORT_REASONS = {
    0: "reason not specified",
    1: "unrecognized PDU",
    2: "unexpected PDU",
    4: "unrecognized PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}


def connect_failure(exc: OSError, host: str, timeout: float) -> str:
    """Why a TCP connection failed, in a few words: refused, timed out, unknown host."""
    if isinstance(exc, socket.gaierror):
        return f"unknown host {host} ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s (timed out)"
    return (exc.strerror or str(exc)).lower()


def tls_failure(exc: OSError, host: str, timeout: float) -> str:
    """Why a TLS handshake failed: the certificate (and what to do about it), the protocol,
    or no answer in time, in a few words."""
    if isinstance(exc, TimeoutError):
        return f"the handshake got no answer within {timeout:g} s (timed out)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        verify = str(exc.verify_message)
        hint = {
            "certificate has expired": "; the node must renew it",
            "certificate is not yet valid": "; check the clocks",
        }.get(verify, "")
        if "mismatch" in verify or "match" in str(exc.reason or ""):
            hint = f"; it is not made out to {host}: use the name it is made out to"
        elif not hint:
            hint = "; give --tls-ca with the CA that issued it"
        return f"its certificate is not trusted ({verify}){hint}"
    if isinstance(exc, ssl.SSLError):
        return f"the handshake failed ({exc.reason or exc}); is it a DICOM TLS port?"
    return (exc.strerror or str(exc)).lower()


def rejection(
    label: str, called: str, calling: str, result: int, source: int, reason: int
) -> AssociationRejectedError:
    """The error of an A-ASSOCIATE-RJ, with what to do for an AE title the node does not know."""
    words = _REASONS.get(source, {}).get(reason, f"reason {reason}")
    fix = {
        "Called AE title not recognised": f"; check the AE title {called}",
        "Calling AE title not recognised": (
            f"; the archive must know the calling AE title {calling} (or give --calling-aet)"
        ),
    }.get(words, "")
    return AssociationRejectedError(
        f"{label} rejected the association ({_RESULTS.get(result, f'result {result}')}, "
        f"{_SOURCES.get(source, f'source {source}')}: {words}){fix}",
        reason=words,
    )


def not_associated(label: str, tls: bool) -> ServerUnreachableError:
    """The error of a node that took the connection but gave no association: it aborted,
    closed, answered something else or nothing in time (a TLS port spoken to in plain TCP,
    or a web server, does one of these)."""
    hint = (
        "; over TLS it may want this machine's certificate (--tls-cert)"
        if tls
        else "; a TLS port needs --tls"
    )
    return ServerUnreachableError(
        f"{label} accepted the connection but not the association (it was aborted or "
        f"timed out); check the AE titles and that it is a DICOM port{hint}"
    )


def _ae(title: str) -> bytes:
    return title.encode("ascii").ljust(16)


def _item(kind: int, value: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(value)) + value


def shown(text: str) -> str:
    """A value a peer sent, fit for a message: printable ASCII, at most 64 characters."""
    clean = "".join(c if c.isascii() and c.isprintable() else "?" for c in text[:64])
    return clean + ("..." if len(text) > 64 else "")


def _uid(value: bytes) -> str:
    """A UID as the peer wrote it: some pad it with a NUL or a space, which is not part of it."""
    return value.rstrip(b"\0 ").decode("ascii", "replace")


def associate_request(
    called: str,
    calling: str,
    contexts: Sequence[tuple[str, Sequence[str]]],
    version_name: str,
) -> bytes:
    """An A-ASSOCIATE-RQ PDU proposing each (abstract syntax, transfer syntaxes) as one
    presentation context, numbered 1, 3, 5, ..."""
    items = [_item(0x10, APPLICATION_CONTEXT.encode())]
    for index, (abstract, syntaxes) in enumerate(contexts):
        sub = _item(0x30, abstract.encode()) + b"".join(_item(0x40, s.encode()) for s in syntaxes)
        items.append(_item(0x20, struct.pack(">B3x", 2 * index + 1) + sub))
    user = (
        _item(0x51, struct.pack(">I", MAX_RECEIVE))
        + _item(0x52, IMPLEMENTATION_CLASS_UID.encode())
        + _item(0x55, version_name.encode("ascii")[:16])
    )
    items.append(_item(0x50, user))
    body = struct.pack(">HH", 1, 0) + _ae(called) + _ae(calling) + bytes(32) + b"".join(items)
    return _PDU_HEADER.pack(_ASSOCIATE_RQ, 0, len(body)) + body


@dataclass(frozen=True)
class Accepted:
    """What the peer's A-ASSOCIATE-AC granted: per accepted context id, its abstract syntax
    and transfer syntax; the longest P-DATA-TF PDU it takes (0: no limit)."""

    contexts: dict[int, tuple[str, str]]
    max_length: int


def _items(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The (type, value) items of a PDU's variable field; a cut item is a protocol error."""
    position = 0
    while position < len(data):
        if position + 4 > len(data):
            raise ValueError("an item is cut short")
        kind, _reserved, length = struct.unpack_from(">BBH", data, position)
        value = data[position + 4 : position + 4 + length]
        if len(value) != length:
            raise ValueError("an item is cut short")
        yield kind, value
        position += 4 + length


def parse_accept(body: bytes, contexts: Sequence[tuple[str, Sequence[str]]]) -> Accepted:
    """Read an A-ASSOCIATE-AC's variable field against what was proposed.

    Raises ValueError for a PDU the standard does not allow: cut short, a context not
    proposed, a transfer syntax not offered for it.
    """
    if len(body) < 68:
        raise ValueError("the association answer is cut short")
    proposed = {2 * i + 1: (abstract, syntaxes) for i, (abstract, syntaxes) in enumerate(contexts)}
    accepted: dict[int, tuple[str, str]] = {}
    answered: set[int] = set()
    lengths: list[int] = []
    for kind, value in _items(body[68:]):
        if kind == 0x21:
            context_id, answer = _context_answer(value, proposed)
            if context_id in answered:
                raise ValueError(f"it answers presentation context {context_id} twice")
            answered.add(context_id)
            if answer is not None:
                accepted[context_id] = answer
        elif kind == 0x50:
            lengths += [_max_length(v) for sub, v in _items(value) if sub == 0x51]
    if len(lengths) > 1:
        raise ValueError("it states its maximum PDU length twice")
    max_length = lengths[0] if lengths else UNSTATED_MAX_LENGTH
    if 0 < max_length <= 6:
        raise ValueError(f"it takes PDUs of at most {max_length} bytes, too few to carry data")
    return Accepted(accepted, max_length)


def _max_length(value: bytes) -> int:
    if len(value) != 4:
        raise ValueError("its maximum length sub-item is not 4 bytes long")
    length: int = struct.unpack(">I", value)[0]
    return length


def _context_answer(
    value: bytes, proposed: dict[int, tuple[str, Sequence[str]]]
) -> tuple[int, tuple[str, str] | None]:
    """A context's id, and its abstract and transfer syntax when it was accepted."""
    if len(value) < 4:
        raise ValueError("a presentation context answer is cut short")
    context_id, result = value[0], value[2]
    if context_id not in proposed:
        raise ValueError(f"it answers presentation context {context_id}, never proposed")
    if result != 0:
        return context_id, None
    abstract, syntaxes = proposed[context_id]
    chosen = [_uid(v) for k, v in _items(value[4:]) if k == 0x40]
    if len(chosen) != 1:
        raise ValueError(f"it chose {len(chosen)} transfer syntaxes for context {context_id}")
    if chosen[0] not in syntaxes:
        raise ValueError(
            f"it chose transfer syntax {shown(chosen[0])} for context {context_id}, never offered"
        )
    return context_id, (abstract, chosen[0])


def command_set(elements: Iterable[tuple[int, bytes]]) -> bytes:
    """A command set in Implicit VR Little Endian, with its group length first; each value is
    given encoded (a UI padded to even length with a NUL, a US as two bytes)."""
    body = b"".join(
        _ELEMENT.pack(tag >> 16, tag & 0xFFFF, len(value)) + value for tag, value in elements
    )
    return _ELEMENT.pack(0, 0, 4) + struct.pack("<I", len(body)) + body


def ui(value: str) -> bytes:
    data = value.encode("ascii")
    return data + b"\0" if len(data) % 2 else data


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def parse_command(data: bytes) -> dict[int, bytes]:
    """The elements of a command set (Implicit VR Little Endian) by tag.

    Raises ValueError when an element runs past the end or is not of group 0000.
    """
    elements: dict[int, bytes] = {}
    position, previous = 0, -1
    while position < len(data):
        if position + 8 > len(data):
            raise ValueError("an element of the command is cut short")
        group, number, length = _ELEMENT.unpack_from(data, position)
        tag = group << 16 | number
        value = data[position + 8 : position + 8 + length]
        if tag >> 16 != 0 or len(value) != length:
            raise ValueError(f"the command holds ({tag >> 16:04X},{tag & 0xFFFF:04X}) cut short")
        if tag <= previous:
            raise ValueError(f"the command holds (0000,{tag & 0xFFFF:04X}) twice or out of order")
        elements[tag] = value
        previous = tag
        position += 8 + length
    return elements


class Association:
    """One established association: write P-DATA-TF PDUs, read a response, release.

    Made by :func:`associated`; ``sock`` is the caller's alone while it lasts."""

    def __init__(self, sock: socket.socket, label: str, accepted: Accepted, timeout: float):
        self.sock = sock
        self.label = label
        self.accepted = accepted
        self.timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._aborted = False

    def start_wait(self, seconds: float | None = None) -> None:
        """Bound what is read from now on (an answer, a release) by ``seconds`` in all
        (the timeout unless given): a peer trickling a byte at a time must not stretch it."""
        self._deadline = time.monotonic() + (self.timeout if seconds is None else seconds)

    def fragment_size(self, largest: int) -> int:
        """How many bytes of a message one P-DATA-TF may carry: what the peer takes (its
        maximum length less a PDV's 6 bytes of header), at most ``largest``."""
        maximum = self.accepted.max_length
        return min(maximum - 6, largest) if maximum else largest

    def send(self, data: bytes | memoryview) -> None:
        """Write ``data`` whole; a peer that stops reading fails it after the timeout."""
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def has_spoken(self) -> bool:
        """Whether the peer has sent something not yet read (while a message is still
        going out, that can only be an abort or a response that came too early)."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        poller = select.poll()  # not select(): a busy process may hold fds past 1024
        poller.register(self.sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))

    def context_for(self, abstract: str, preference: Sequence[str]) -> tuple[int, str] | None:
        """The accepted context of ``abstract`` in the first transfer syntax of
        ``preference`` that was accepted for it, or None."""
        found = {
            syntax: context_id
            for context_id, (name, syntax) in self.accepted.contexts.items()
            if name == abstract
        }
        for syntax in preference:
            if syntax in found:
                return found[syntax], syntax
        return None

    def _read_exact(self, size: int) -> bytes:
        data = bytearray(size)
        view, filled = memoryview(data), 0
        while filled < size:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the wait is over")
            self.sock.settimeout(left)
            self._acknowledge_at_once()
            got = self.sock.recv_into(view[filled:])
            if not got:
                raise ConnectionResetError(0, "the node closed the connection")
            filled += got
        return bytes(data)

    def _acknowledge_at_once(self) -> None:
        """Ask Linux to acknowledge what arrives without the usual delay (TCP_QUICKACK,
        which lapses by itself, hence before every read). A peer that writes a PDU in two
        pieces, as DCMTK does, otherwise waits up to 40 ms for the acknowledgement of the
        first before sending the second: a C-ECHO took 44 ms, 1 ms with it."""
        if _QUICKACK is not None:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def read_pdu(self, limit: int) -> tuple[int, bytes]:
        """The next PDU's type and variable field, at most ``limit`` bytes of it."""
        kind, _reserved, length = _PDU_HEADER.unpack(self._read_exact(6))
        if kind not in range(_ASSOCIATE_RQ, _ABORT + 1):
            raise ValueError(f"it sent PDU type {kind:#04x}, which is not DICOM")
        if length > limit:
            raise ValueError(f"it sent a PDU of {length} bytes, over the {limit} it may")
        return kind, self._read_exact(length)

    def response(self, what: str, context_id: int) -> dict[int, bytes]:
        """The elements of the command set the peer answers with (a data set that follows
        it, which no C-STORE or C-ECHO response has, is read and let go of).

        Raises ServerUnreachableError when the node aborts, closes or says nothing within
        the timeout, UnexpectedReplyError when what it sends is not a response.
        """
        self.start_wait()
        try:
            return self._response(context_id)
        except TimeoutError:
            raise ServerUnreachableError(
                f"{self.label} did not answer the {what} within {self.timeout:g} s"
            ) from None
        except ValueError as exc:
            self.abort()
            raise UnexpectedReplyError(
                f"{self.label} answered the {what} with something that is not a DIMSE "
                f"response ({exc})"
            ) from None
        except OSError as exc:
            raise ServerUnreachableError(
                f"{self.label} went away before answering the {what} ({_os_words(exc)})"
            ) from None

    def early_response(self, what: str, context_id: int, wait: float) -> dict[int, bytes] | None:
        """What the peer said while a message was still going out: a response (returned),
        an abort (raised, with its reason), or nothing whole within ``wait`` or a closed
        connection (None: the caller reports that it stopped receiving)."""
        self.start_wait(wait)
        try:
            return self._response(context_id)
        except OSError:  # closed, reset or timed out
            return None
        except ValueError as exc:
            self.abort()
            raise UnexpectedReplyError(
                f"{self.label} answered the {what} with something that is not a DIMSE "
                f"response ({exc})"
            ) from None

    def _response(self, context_id: int) -> dict[int, bytes]:
        message = _Message()
        while True:
            kind, body = self.read_pdu(MAX_RECEIVE)
            if kind == _ABORT:
                self._aborted = True  # nothing more goes out on an aborted association
                raise ServerUnreachableError(
                    f"{self.label} aborted the association{_abort_words(body)}"
                )
            if kind != _P_DATA:
                raise ValueError(f"it sent PDU type {kind:#04x} instead of a response")
            for pdv_context, control, value in _pdvs(body):
                if pdv_context != context_id:
                    raise ValueError(f"it answered on presentation context {pdv_context}")
                message.take(control, value)
            if message.complete:
                return message.elements or {}

    def release(self) -> None:
        """A-RELEASE-RQ, and its answer within the timeout; any failure here only closes the
        socket, since what was asked has been answered already."""
        self.start_wait()
        with contextlib.suppress(OSError, ValueError):
            self.send(_PDU_HEADER.pack(_RELEASE_RQ, 0, 4) + bytes(4))
            for _ in range(8):  # a release answer, after a few stray PDUs at most
                if self.read_pdu(MAX_RECEIVE)[0] in (_RELEASE_RP, _ABORT):
                    break

    def abort(self) -> None:
        """A-ABORT (service user, no reason), once, best effort and briefly: the socket may
        be gone already, or the peer may have stopped reading."""
        if self._aborted:
            return
        self._aborted = True
        with contextlib.suppress(OSError):
            self.sock.settimeout(min(self.timeout, _ABORT_WAIT))
            self.sock.sendall(_PDU_HEADER.pack(_ABORT, 0, 4) + bytes(4))


class _Message:
    """A response message taken fragment by fragment: its command set, then the data set
    that follows when the command says one does (read, bounded, and let go of)."""

    def __init__(self) -> None:
        self.command = bytearray()
        self.elements: dict[int, bytes] | None = None
        self.data_expected = False
        self.data_read = 0

    @property
    def complete(self) -> bool:
        return self.elements is not None and not self.data_expected

    def take(self, control: int, value: bytes) -> None:
        if control & 1 and self.elements is None:
            self.command += value
            if len(self.command) > _MAX_COMMAND:
                raise ValueError("its command set is over 64 KiB long")
            if control & 2:
                self.elements = parse_command(bytes(self.command))
                self.data_expected = self.elements.get(0x00000800, us(0x0101)) != us(0x0101)
        elif not control & 1 and self.elements is not None and self.data_expected:
            self.data_read += len(value)
            if self.data_read > _MAX_COMMAND:
                raise ValueError("its response carries over 64 KiB of data")
            self.data_expected = not control & 2
        else:
            raise ValueError("its fragments come out of order")


def _pdvs(body: bytes) -> Iterator[tuple[int, int, bytes]]:
    """The presentation data values of a P-DATA-TF: context id, control header, fragment."""
    if not body:
        raise ValueError("it sent a P-DATA-TF without a presentation data value")
    position = 0
    while position < len(body):
        if position + 6 > len(body):
            raise ValueError("a presentation data value is cut short")
        (length,) = struct.unpack_from(">I", body, position)
        if length < 2 or position + 4 + length > len(body):
            raise ValueError("a presentation data value is cut short")
        yield body[position + 4], body[position + 5], body[position + 6 : position + 4 + length]
        position += 4 + length


def _abort_words(body: bytes) -> str:
    if len(body) < 4:
        return ""
    source, reason = body[2], body[3]
    if source == 2:
        return f" (service provider: {_ABORT_REASONS.get(reason, f'reason {reason}')})"
    return " (service user)" if source == 0 else ""


def _os_words(exc: OSError) -> str:
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


@contextmanager
def associated(
    host: str,
    port: int,
    *,
    label: str,
    called: str,
    calling: str,
    contexts: Sequence[tuple[str, Sequence[str]]],
    timeout: float,
    tls: ssl.SSLContext | None,
    version_name: str,
) -> Iterator[Association]:
    """An established association, released on the way out (aborted after an error)."""
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except UnicodeError:
        raise InputError(f"cannot reach {label}: {shown(host)!r} is not a host name") from None
    except OSError as exc:
        cause = connect_failure(exc, host, timeout)
        tail = "" if isinstance(exc, socket.gaierror) else "; is it running?"
        raise ServerUnreachableError(f"cannot reach {label}: {cause}{tail}") from None
    with contextlib.ExitStack() as closing:
        sock = closing.enter_context(raw)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                sock = closing.enter_context(tls.wrap_socket(raw, server_hostname=host))
            except OSError as exc:
                raise ServerUnreachableError(
                    f"cannot reach {label} over TLS: {tls_failure(exc, host, timeout)}"
                ) from None
        association = Association(sock, label, Accepted({}, 0), timeout)
        association.accepted = _negotiate(association, called, calling, contexts, version_name)
        try:
            yield association
        except BaseException:
            association.abort()
            raise
        association.release()


def _negotiate(
    probe: Association,
    called: str,
    calling: str,
    contexts: Sequence[tuple[str, Sequence[str]]],
    version_name: str,
) -> Accepted:
    """What the peer accepted of the proposal, read within the probe's timeout."""
    label, tls = probe.label, isinstance(probe.sock, ssl.SSLSocket)
    try:
        probe.send(associate_request(called, calling, contexts, version_name))
        kind, body = probe.read_pdu(_MAX_NEGOTIATION)
        if kind == _ASSOCIATE_RJ and len(body) >= 4:
            raise rejection(label, called, calling, body[1], body[2], body[3])
        if kind != _ASSOCIATE_AC:
            raise ValueError(f"it answered with PDU type {kind:#04x}")
    except (OSError, ValueError):
        probe.abort()
        raise not_associated(label, tls) from None
    try:
        return parse_accept(body, contexts)
    except ValueError as exc:
        probe.abort()
        raise UnexpectedReplyError(
            f"{label} answered the association request with something DICOM does not allow ({exc})"
        ) from None
