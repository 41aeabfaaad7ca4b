"""The only code that speaks DICOM networking (DIMSE): C-ECHO and C-STORE on the upper layer
of :mod:`pdf2dcm.upperlayer`, C-FIND and storage commitment through pynetdicom.

Nodes are written ``AET@HOST:PORT``. Every operation opens one association from the calling
AE title (``PDF2DCM`` unless given), does its work and releases it; every wait is bounded by
``timeout``. Results are typed values, failures :class:`~pdf2dcm.errors.Pdf2DcmError`\\ s
whose one line names the node, the DIMSE status and its meaning: no pynetdicom exception
leaves this module. pydicom and pynetdicom are imported only for C-FIND and storage
commitment, which decode data sets: a command that never uses a DICOM node, and a C-STORE
or a C-ECHO, do not pay for them.

C-STORE streams the object: the PDF is read from its file in P-DATA-sized pieces while it is
sent, never held in memory; a receiver that accepts only Implicit VR Little Endian gets the
object re-encoded on the way (the values' bytes, the PDF's included, are unchanged).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import ipaddress
import os
import queue
import socket
import ssl
import stat
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol, runtime_checkable

from . import upperlayer
from .constants import DEFAULT_CALLING_AET, DEFAULT_DIMSE_TIMEOUT, MAX_SEQUENCE_DEPTH
from .errors import (
    CommitmentFailedError,
    CommitmentTimeoutError,
    ConfigurationError,
    DicomOutOfResourcesError,
    DicomRefusedError,
    DicomStatusError,
    FileSystemError,
    InputError,
    ServerUnreachableError,
    UnexpectedReplyError,
)
from .imports import load_pydicom, load_pynetdicom
from .progress import ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
    from pynetdicom.association import Association

DEFAULT_TIMEOUT = DEFAULT_DIMSE_TIMEOUT
MAX_AE_TITLE = 16
STORAGE_COMMITMENT_PUSH_MODEL = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
VERIFICATION = "1.2.840.10008.1.1"
ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
ImplicitVRLittleEndian = "1.2.840.10008.1.2"
_SOP_CLASS_NOT_SUPPORTED = 0x0122
_PROCESSING_FAILURE = 0x0110
"""A storage commitment failure reason; also given to an instance the report leaves out."""

PathLike = str | os.PathLike[str]
StoreSource = PathLike | BinaryIO | Iterable[bytes]
"""What :func:`store` sends: a file's path, a stream of it, or its encoded pieces."""
Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]


# --- nodes ---------------------------------------------------------------------------------


def check_ae_title(value: str, what: str = "AE title") -> str:
    """``value`` when it is a usable AE title: 1 to 16 characters of ASCII, no backslash and
    no control character, not only spaces (PS3.5 AE); otherwise an InputError naming it."""
    if not value.strip(" "):
        raise InputError(f"the {what} is empty; give 1 to {MAX_AE_TITLE} characters")
    if len(value) > MAX_AE_TITLE:
        raise InputError(
            f"the {what} {value!r} has {len(value)} characters; an AE title has at most "
            f"{MAX_AE_TITLE}"
        )
    bad = [c for c in value if not c.isascii() or c == "\\" or not c.isprintable()]
    if bad:
        raise InputError(
            f"the {what} {value!r} holds {bad[0]!r}; an AE title is printable ASCII "
            "without a backslash"
        )
    return value


@dataclass(frozen=True)
class Node:
    """A DICOM application entity on the network: ``AET@HOST:PORT``, reached over TLS when
    ``tls`` is given (see :func:`tls_context`)."""

    ae_title: str
    host: str
    port: int
    tls: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Node:
        """Read ``AET@HOST:PORT`` (an IPv6 host in brackets: ``AET@[::1]:104``).

        Raises
        ------
        InputError
            The text is not of that shape, or the AE title or the port is invalid.
        """
        shape = f"{text!r} is not a DICOM node; write it AET@HOST:PORT, e.g. ORTHANC@pacs:4242"
        ae_title, at, address = text.rpartition("@")
        if not at or not ae_title:
            raise InputError(shape)
        if address.startswith("["):
            host, bracket, rest = address[1:].partition("]")
            if not bracket or not rest.startswith(":"):
                raise InputError(shape)
            port_text = rest[1:]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise InputError(f"{host!r} in {text!r} is not an IPv6 address") from None
        else:
            host, colon, port_text = address.rpartition(":")
            if not colon or not host or ":" in host:
                raise InputError(shape)
        if not host or any(c.isspace() or not c.isprintable() for c in host):
            raise InputError(shape)
        if not address.startswith("["):
            try:
                host.encode("idna")  # what connecting does: empty or overlong labels fail
            except UnicodeError:
                raise InputError(f"{host!r} in {text!r} is not a host name") from None
        if not port_text.isdigit() or not port_text.isascii() or not 1 <= int(port_text) <= 65535:
            raise InputError(f"the port of {text!r} must be a number from 1 to 65535")
        return cls(check_ae_title(ae_title, f"AE title of {host}"), host, int(port_text))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"

    def over_tls(self, context: ssl.SSLContext | None) -> Node:
        """This node, reached with ``context`` (None: plain TCP)."""
        return dataclasses.replace(self, tls=context)


def tls_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """The TLS of DICOM associations (PS3.15 B.9, BCP 195): TLS 1.2 or later, the node's
    certificate verified and its name or address checked, against ``ca_file`` alone when
    given (a hospital's own CA: a certificate some public CA issued for the host is not
    taken for the node's), else against the system's CAs; ``cert_file``/``key_file``
    present this machine to nodes that ask (most do). An encrypted key is refused, never
    asked for on the terminal.

    Raises
    ------
    InputError
        A file is not a regular file, cannot be read, is not PEM, or the key is encrypted.
    """
    for role, path in (("CA file", ca_file), ("certificate", cert_file), ("key", key_file)):
        if path is not None and not _regular_file(path):
            raise InputError(f"the TLS {role} {path} is not a regular file; give a PEM file")
    if ca_file is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2

    def refuse_encrypted() -> bytes:
        raise InputError(
            f"the TLS key {key_file or cert_file} is encrypted; give a key without a passphrase "
            "(openssl pkey -in KEY -out PLAIN.key), readable by this user only"
        )

    try:
        if ca_file is not None:
            context.load_verify_locations(cafile=ca_file)
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file, password=refuse_encrypted)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise InputError(f"cannot use the TLS files ({reason}); give PEM files") from None
    return context


def _regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


# --- statuses ------------------------------------------------------------------------------

_GENERAL_STATUS = {
    0x0000: "Success",
    0x0105: "No such attribute",
    0x0106: "Invalid attribute value",
    0x0107: "Attribute list error",
    0x0110: "Processing failure",
    0x0111: "Duplicate SOP Instance",
    0x0112: "No such SOP Instance",
    0x0113: "No such event type",
    0x0114: "No such argument",
    0x0115: "Invalid argument value",
    0x0116: "Attribute value out of range",
    0x0117: "Invalid object instance",
    0x0118: "No such SOP Class",
    0x0119: "Class-instance conflict",
    0x0120: "Missing attribute",
    0x0121: "Missing attribute value",
    0x0122: "SOP Class not supported",
    0x0123: "No such action type",
    0x0124: "Not authorized",
    0x0210: "Duplicate invocation",
    0x0211: "Unrecognized operation",
    0x0212: "Mistyped argument",
    0x0213: "Resource limitation",
    0xB000: "Coercion of data elements",
    0xB006: "Elements discarded",
    0xB007: "Data set does not match SOP Class",
    0xFE00: "Cancelled",
    0xFF00: "Pending",
    0xFF01: "Pending (optional keys not supported)",
}
WARNING_STATUSES = frozenset({0x0001, 0x0107, 0x0116})
"""Warnings outside Bxxx, every one of which is a warning too (PS3.7 C.1.2): the request
was carried out, so a warning is never a failure to retry (which would store twice)."""


def status_meaning(code: int) -> str:
    """What a DIMSE status means (PS3.4 and PS3.7 Annex C), in a few words."""
    if code in _GENERAL_STATUS:
        return _GENERAL_STATUS[code]
    if 0xA700 <= code <= 0xA7FF:
        return "Refused: out of resources"
    if 0xA900 <= code <= 0xA9FF:
        return "Data set does not match SOP Class"
    if 0xC000 <= code <= 0xCFFF:
        return "Cannot understand"
    if 0xB000 <= code <= 0xBFFF:
        return "Warning"
    return "unknown status"


@dataclass(frozen=True)
class Status:
    """One DIMSE status: the code and its meaning; ``warning`` for B000, B006, B007, ..."""

    code: int
    meaning: str

    @classmethod
    def of(cls, code: int) -> Status:
        return cls(code, status_meaning(code))

    @property
    def success(self) -> bool:
        return self.code == 0x0000

    @property
    def warning(self) -> bool:
        return self.code in WARNING_STATUSES or 0xB000 <= self.code <= 0xBFFF

    def __str__(self) -> str:
        return f"{self.code:04X} ({self.meaning})"


def status_error(status: Status, what: str) -> DicomStatusError:
    """The error of a failure status: out of resources (A7xx, 0213) may pass, so it is a
    server failure; every other failure (A9xx, Cxxx, 01xx, ...) refused the request."""
    message = f"{what} failed with status {status}"
    if 0xA700 <= status.code <= 0xA7FF or status.code == 0x0213:
        return DicomOutOfResourcesError(message, status=status.code, meaning=status.meaning)
    return DicomRefusedError(message, status=status.code, meaning=status.meaning)


# --- associations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """How to reach one node: from which AE title, with which bound on every wait."""

    node: Node
    calling_aet: str = DEFAULT_CALLING_AET
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        check_ae_title(self.calling_aet, "calling AE title")
        check_ae_title(self.node.ae_title, f"AE title of {self.node.host}")
        if not self.timeout > 0:
            raise InputError(f"the timeout must be more than 0 seconds, not {self.timeout}")


def _application_entity(connection: Connection) -> Any:
    load_pynetdicom()
    from pynetdicom import AE

    ae = AE(ae_title=connection.calling_aet)
    ae.connection_timeout = connection.timeout
    ae.acse_timeout = connection.timeout
    ae.dimse_timeout = connection.timeout
    ae.network_timeout = connection.timeout
    return ae


@contextmanager
def _associated(
    connection: Connection,
    contexts: Sequence[tuple[str, Sequence[str]]],
    handlers: Sequence[tuple[Any, Callable[..., Any]]] = (),
) -> Iterator[Association]:
    """An established association, released on the way out (aborted after an error)."""
    ae = _application_entity(connection)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, list(syntaxes))
    node = connection.node
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            assoc = ae.associate(
                node.host,
                node.port,
                ae_title=node.ae_title,
                evt_handlers=list(handlers),
                tls_args=(node.tls, node.host) if node.tls is not None else None,
            )
        except OSError as exc:
            cause = upperlayer.connect_failure(exc, node.host, connection.timeout)
            raise ServerUnreachableError(f"cannot reach {node}: {cause}") from exc
    if not assoc.is_established:
        raise _association_failure(assoc, connection)
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    if assoc.is_established:
        assoc.release()


def _association_failure(assoc: Any, connection: Connection) -> Exception:
    node = connection.node
    if assoc.is_rejected and assoc.acceptor.primitive is not None:
        answer = assoc.acceptor.primitive
        return upperlayer.rejection(
            str(node),
            node.ae_title,
            connection.calling_aet,
            int(answer.result),
            int(answer.result_source),
            int(answer.diagnostic),
        )
    refused = [str(c.abstract_syntax) for c in assoc.rejected_contexts]
    if refused and not assoc.accepted_contexts:
        return _not_supported(node, refused)
    # pynetdicom reports a failed association without its cause, so the connection (and
    # the handshake) is tried once more to tell the user which it was.
    try:
        with socket.create_connection((node.host, node.port), timeout=connection.timeout) as raw:
            if node.tls is not None:
                try:
                    node.tls.wrap_socket(raw, server_hostname=node.host).close()
                except OSError as exc:
                    failed = upperlayer.tls_failure(exc, node.host, connection.timeout)
                    return ServerUnreachableError(f"cannot reach {node} over TLS: {failed}")
    except OSError as exc:
        cause = upperlayer.connect_failure(exc, node.host, connection.timeout)
        return ServerUnreachableError(f"cannot reach {node}: {cause}; is it running?")
    return upperlayer.not_associated(str(node), node.tls is not None)


def _not_supported(node: Node, refused: Sequence[str]) -> DicomRefusedError:
    return DicomRefusedError(
        f"{node} does not accept SOP Class {', '.join(refused)} in Explicit or Implicit "
        "VR Little Endian",
        status=_SOP_CLASS_NOT_SUPPORTED,
        meaning="SOP Class not supported",
    )


def _no_answer(node: Node, what: str, timeout: float) -> ServerUnreachableError:
    return ServerUnreachableError(
        f"{node} did not answer the {what} within {timeout:g} s, or aborted the association"
    )


def _status_of(answer: Dataset, node: Node, what: str, timeout: float) -> Status:
    if "Status" not in answer:
        raise _no_answer(node, what, timeout)
    return Status.of(int(answer.Status))


# --- C-ECHO --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EchoResult:
    """A node answered C-ECHO."""

    node: Node
    status: Status
    seconds: float


def echo(
    node: Node, *, calling_aet: str = DEFAULT_CALLING_AET, timeout: float = DEFAULT_TIMEOUT
) -> EchoResult:
    """Verify that ``node`` accepts an association and answers C-ECHO.

    Raises
    ------
    ServerUnreachableError
        Refused, unknown host, timed out; AssociationRejectedError when it rejected us.
    DicomStatusError
        It answered with a failure status.
    """
    connection = Connection(node, calling_aet, timeout)
    started = time.monotonic()
    with _association(connection, [(VERIFICATION, [ImplicitVRLittleEndian])]) as assoc:
        chosen = assoc.context_for(VERIFICATION, [ImplicitVRLittleEndian])
        if chosen is None:
            raise _not_supported(node, [VERIFICATION])
        command = upperlayer.command_set(
            [
                (0x00000002, upperlayer.ui(VERIFICATION)),
                (0x00000100, upperlayer.us(0x0030)),
                (0x00000110, upperlayer.us(1)),
                (0x00000800, upperlayer.us(0x0101)),  # no data set
            ]
        )
        try:
            for frames in _frames([command], chosen[0], assoc.fragment_size(_BLOCK), command=True):
                assoc.send(frames)
        except OSError as exc:
            raise ServerUnreachableError(
                f"{node} went away before the C-ECHO was sent ({exc.strerror or exc})"
            ) from exc
        answer = assoc.response("C-ECHO", chosen[0])
        status = _response_status(answer, assoc, "C-ECHO", _ECHO_RSP)
    if not status.success:
        raise status_error(status, f"C-ECHO to {node}")
    return EchoResult(node, status, time.monotonic() - started)


def check_reachable(
    node: Node, *, calling_aet: str = DEFAULT_CALLING_AET, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Verify that ``node`` accepts an association from ``calling_aet``, before any document
    is sent: C-ECHO where it offers Verification; a node that accepts the association but not
    Verification (a bare storage SCP) passes, since what it does accept is tried per request.

    Raises
    ------
    ServerUnreachableError
        Refused, unknown host, timed out; AssociationRejectedError when it rejected us.
    DicomStatusError
        It answered C-ECHO with a failure status.
    """
    try:
        echo(node, calling_aet=calling_aet, timeout=timeout)
    except DicomRefusedError as exc:
        if exc.status != _SOP_CLASS_NOT_SUPPORTED:
            raise


def check_commitment(
    node: Node, *, calling_aet: str = DEFAULT_CALLING_AET, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Verify that ``node`` takes storage commitment requests (it accepts the Storage
    Commitment Push Model in an association), before documents are stored and then found
    not committable one by one.

    Raises
    ------
    DicomRefusedError
        The node does not do storage commitment (status 0122).
    ServerUnreachableError
        As for any association.
    """
    connection = Connection(node, calling_aet, timeout)
    syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    try:
        with _association(connection, [(STORAGE_COMMITMENT_PUSH_MODEL, syntaxes)]) as assoc:
            if assoc.context_for(STORAGE_COMMITMENT_PUSH_MODEL, syntaxes) is None:
                raise _not_supported(node, [STORAGE_COMMITMENT_PUSH_MODEL])
    except DicomRefusedError as exc:
        if exc.status != _SOP_CLASS_NOT_SUPPORTED:
            raise
        raise DicomRefusedError(
            f"{node} does not do storage commitment (it refuses the Storage Commitment Push "
            "Model); leave --commit out, or ask its administrator to enable it",
            status=exc.status,
            meaning=exc.meaning,
        ) from None


# --- C-STORE -------------------------------------------------------------------------------

_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_BULK_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"UN"})
_BULK_THRESHOLD = 1 << 20
"""A top-level binary value this long (the PDF) is streamed, not read into memory."""
_MAX_SMALL = 64 << 20
"""What may be held in memory of everything but the streamed value."""
_MEDIA_CLASS, _MEDIA_INSTANCE, _TRANSFER_SYNTAX = 0x00020002, 0x00020003, 0x00020010
_META_UIDS = frozenset({_MEDIA_CLASS, _MEDIA_INSTANCE, _TRANSFER_SYNTAX})
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


@dataclass(frozen=True)
class StoreResult:
    """A C-STORE the receiver accepted; ``status.warning`` says it changed something."""

    node: Node
    sop_class_uid: str
    sop_instance_uid: str
    status: Status
    transfer_syntax: str
    """The transfer syntax the object was sent in (Explicit or Implicit VR Little Endian)."""
    sent: int
    """Bytes of the data set sent."""
    seconds: float

    @property
    def warning(self) -> str | None:
        """The warning to report, when the status is one."""
        if self.status.warning:
            return f"{self.node} stored {self.sop_instance_uid} with warning {self.status}"
        return None


@dataclass
class _Part10:
    """A DICOM file read as it streams: its meta, the small elements and the bulk value."""

    name: str
    reader: _Reader
    """The file, positioned at the bulk value (or at its end)."""
    sop_class_uid: str
    sop_instance_uid: str
    head: bytes
    """The data set's elements before the bulk value (Explicit VR Little Endian)."""
    bulk_header: tuple[int, bytes, int] | None
    """The bulk element's tag, VR and length; None when the data set has no bulk value."""


@runtime_checkable
class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _Reader:
    """Exact reads of a stream, with a clear error at a premature end."""

    def __init__(self, stream: _Readable, name: str) -> None:
        self.stream = stream
        self.name = name
        self.offset = 0
        self.budget = _MAX_SMALL
        """What may still be read into memory."""

    def read(self, size: int) -> bytes:
        data = self.raw_read(size)
        if len(data) != size:
            raise InputError(
                f"{self.name} is truncated at byte {self.offset + len(data)}; give a complete "
                "DICOM file"
            )
        self.offset += size
        return data

    def raw_read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the stream; what the system refuses is the file's error,
        never taken for the receiver's (the reads happen while the object is sent)."""
        try:
            return self.stream.read(size)
        except OSError as exc:
            raise self._refused(exc) from exc

    def _refused(self, exc: OSError) -> FileSystemError:
        return FileSystemError(
            f"cannot read {self.name} at byte {self.offset}: {exc.strerror or exc}",
            errno=exc.errno,
        )

    def read_into(self, target: memoryview) -> None:
        """Fill ``target`` from the stream, without a new buffer when the stream can."""
        readinto = getattr(self.stream, "readinto", None)
        filled, wanted = 0, target.nbytes
        while filled < wanted:
            try:
                if readinto is not None:
                    got = readinto(target[filled:]) or 0
                else:
                    piece = self.stream.read(wanted - filled)
                    got = len(piece)
                    target[filled : filled + got] = piece
            except OSError as exc:
                raise self._refused(exc) from exc
            if not got:
                break
            filled += got
        self.offset += filled
        if filled != wanted:
            raise InputError(
                f"{self.name} is truncated at byte {self.offset}; give a complete DICOM file"
            )

    def header(self) -> tuple[int, bytes, int, bytes] | None:
        """The next element's tag, VR, length and encoded header; None at the end."""
        first = self.raw_read(8)
        if not first:
            return None
        self.offset += len(first)
        if len(first) < 8:
            first += self.read(8 - len(first))
        group, number = struct.unpack("<HH", first[:4])
        tag = group << 16 | number
        if group == 0xFFFE:
            return tag, b"", struct.unpack("<I", first[4:])[0], first
        vr = first[4:6]
        if vr in _LONG_VRS:
            extra = self.read(4)
            return tag, vr, struct.unpack("<I", extra)[0], first + extra
        return tag, vr, struct.unpack("<H", first[6:])[0], first

    def element(self, found: tuple[int, bytes, int, bytes], depth: int = 0) -> bytes:
        """The whole encoded element whose header was just read (sequences included, at
        most :data:`~pdf2dcm.constants.MAX_SEQUENCE_DEPTH` deep, as extract reads them)."""
        tag, vr, length, header = found
        if depth > 2 * MAX_SEQUENCE_DEPTH:  # a sequence and its item are a level each here
            raise InputError(
                f"{self.name}: sequences nest more than {MAX_SEQUENCE_DEPTH} deep (at byte "
                f"{self.offset}); pdf2dcm reads at most {MAX_SEQUENCE_DEPTH} levels"
            )
        if length != _UNDEFINED:
            self.budget -= length
            if self.budget < 0:
                raise InputError(
                    f"{self.name} holds more than {_MAX_SMALL >> 20} MiB besides its "
                    "document; refusing to hold it in memory"
                )
            return header + self.read(length)
        if vr not in (b"SQ", b"UN", b"") and tag != _ITEM:
            raise InputError(
                f"{self.name} holds an undefined length in ({tag >> 16:04X},"
                f"{tag & 0xFFFF:04X}) {vr.decode('ascii', 'replace')}"
            )
        parts = [header]
        end = _ITEM_END if tag == _ITEM else _SEQUENCE_END
        while True:
            inner = self.header()
            if inner is None:
                raise InputError(f"{self.name} ends inside a sequence; give a complete file")
            if inner[0] == end:
                parts.append(inner[3])
                return b"".join(parts)
            parts.append(self.element(inner, depth + 1))


def _open_part10(stream: _Readable, name: str) -> _Part10:
    reader = _Reader(stream, name)
    preamble = reader.read(132)
    if preamble[128:] != b"DICM":
        raise InputError(f"{name} is not a DICOM file (no DICM prefix); encode it first")
    meta: dict[int, str] = {}
    found = reader.header()
    head: list[bytes] = []
    while found is not None and found[0] >> 16 == 0x0002:
        raw = reader.element(found)
        if found[0] in _META_UIDS:
            meta[found[0]] = raw[len(found[3]) :].rstrip(b"\0 ").decode("ascii", "replace")
        found = reader.header()
    syntax = meta.get(_TRANSFER_SYNTAX, "")
    if syntax != ExplicitVRLittleEndian:
        raise InputError(
            f"{name} is in transfer syntax {syntax or 'unknown'}; only Explicit VR Little "
            "Endian files are sent (encode it again with pdf2dcm)"
        )
    if not meta.get(_MEDIA_CLASS) or not meta.get(_MEDIA_INSTANCE):
        raise InputError(f"{name} has no SOP Class or Instance UID in its file meta")
    for uid in (meta[_MEDIA_CLASS], meta[_MEDIA_INSTANCE]):
        if len(uid) > 64 or uid.strip("0123456789.") or ".." in uid or uid[0] == ".":
            raise InputError(f"{name} holds {uid!r} in its file meta, which is not a UID")
    bulk: tuple[int, bytes, int] | None = None
    while found is not None:
        tag, vr, length, _header = found
        if vr in _BULK_VRS and length != _UNDEFINED and length >= _BULK_THRESHOLD:
            bulk = (tag, vr, length)
            break
        head.append(reader.element(found))
        found = reader.header()
    return _Part10(
        name=name,
        reader=reader,
        sop_class_uid=meta[_MEDIA_CLASS],
        sop_instance_uid=meta[_MEDIA_INSTANCE],
        head=b"".join(head),
        bulk_header=bulk,
    )


def implicit_elements(data: bytes) -> bytes:
    """Explicit VR Little Endian elements re-encoded as Implicit VR Little Endian.

    The values' bytes are copied unchanged (both are little endian): only the headers
    change, and sequences and items are written with undefined lengths, so no length has to
    be recomputed.
    """
    out = bytearray()
    position = _implicit_into(out, data, 0, len(data), None)
    if position != len(data):
        raise InputError("a data set ends inside an element")
    return bytes(out)


def _implicit_into(out: bytearray, data: bytes, position: int, end: int, stop: int | None) -> int:
    while position < end:
        group, number = struct.unpack_from("<HH", data, position)
        tag = group << 16 | number
        if tag == stop:
            return position + 8
        vr = data[position + 4 : position + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, position + 8)
            position += 12
        else:
            (length,) = struct.unpack_from("<H", data, position + 6)
            position += 8
        if vr == b"SQ":
            out += struct.pack("<HHI", group, number, _UNDEFINED)
            position = _implicit_items(out, data, position, length)
            out += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        elif length == _UNDEFINED:
            raise InputError(
                f"({group:04X},{number:04X}) has an undefined length that Implicit VR Little "
                "Endian cannot carry"
            )
        else:
            out += struct.pack("<HHI", group, number, length)
            out += data[position : position + length]
            position += length
    return position


def _implicit_items(out: bytearray, data: bytes, position: int, length: int) -> int:
    end = len(data) if length == _UNDEFINED else position + length
    while position < end:
        group, number, item_length = struct.unpack_from("<HHI", data, position)
        tag = group << 16 | number
        position += 8
        if tag == _SEQUENCE_END:
            return position
        if tag != _ITEM:
            raise InputError(f"a sequence holds ({group:04X},{number:04X}) instead of an item")
        out += struct.pack("<HHI", 0xFFFE, 0xE000, _UNDEFINED)
        if item_length == _UNDEFINED:
            position = _implicit_into(out, data, position, end, _ITEM_END)
        else:
            _implicit_into(out, data, position, position + item_length, None)
            position += item_length
        out += struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    return position


_BLOCK = 1 << 20
"""How much of the bulk value is read at a time, and about how much is sent per system call."""


def _blocks(part10: _Part10, implicit: bool) -> Iterator[bytes | memoryview]:
    """The data set as it is sent, in blocks: the bulk value is read as it goes, into one
    buffer used again for every block (so a block is valid only until the next is taken)."""
    yield implicit_elements(part10.head) if implicit else part10.head
    if part10.bulk_header is None:
        return
    tag, vr, length = part10.bulk_header
    group, number = tag >> 16, tag & 0xFFFF
    if implicit:
        yield struct.pack("<HHI", group, number, length)
    else:
        yield struct.pack("<HH2sHI", group, number, vr, 0, length)
    yield from _read_in_place(part10.reader, length)
    tail = part10.reader.raw_read(_MAX_SMALL + 1)
    if len(tail) > _MAX_SMALL:
        raise InputError(f"{part10.name} holds more than 64 MiB after its document")
    _check_elements(tail, part10.name, part10.reader.offset)
    yield implicit_elements(tail) if implicit else tail


def _check_elements(data: bytes, name: str, offset: int) -> None:
    """Refuse elements cut short (``offset``: where ``data`` starts in the file), before they
    are sent: a receiver would abort the association, or store the object cut."""
    reader = _Reader(io.BytesIO(data), name)
    reader.offset = offset
    while (found := reader.header()) is not None:
        reader.element(found)


def _read_in_place(reader: _Reader, length: int) -> Iterator[memoryview]:
    """``length`` bytes of ``reader`` in blocks read into one buffer, each valid until the next
    is taken (fresh memory for every block cost a page fault per 4 KiB).

    Read where they are sent, not ahead in a helper thread: that thread gained nothing
    measurable, kept reading the caller's stream after a failed send, and one blocked on a
    pipe could abort the interpreter at exit."""
    buffer = memoryview(bytearray(min(length, _BLOCK)))
    remaining = length
    while remaining:
        block = buffer[: min(remaining, _BLOCK)]
        reader.read_into(block)
        remaining -= len(block)
        yield block


def _counted(blocks: Iterable[bytes | memoryview], counter: list[int]) -> Iterator[memoryview]:
    """``blocks``, adding their sizes to ``counter[0]`` as they are taken."""
    for block in blocks:
        view = memoryview(block)
        counter[0] += view.nbytes
        yield view


_PDV_HEADER = struct.Struct(">BBIIBB")
"""A P-DATA-TF PDU's header with its one presentation data value's (PS3.8 9.3.5)."""


def _frames(
    blocks: Iterable[bytes | memoryview], context_id: int, size: int, *, command: bool = False
) -> Iterator[memoryview]:
    """P-DATA-TF PDUs of one presentation data value each, ``size`` bytes of the message
    apiece, batched about a block at a time; the last one is flagged as such and is never
    empty (unless the whole message is).

    The batches are written into one buffer used again for each, so a batch is valid only
    until the next is taken. A full PDU is held back until more data follows it, since only
    then is it known not to be the last.
    """
    middle, last = (0x01, 0x03) if command else (0x00, 0x02)
    unit = size + 12
    count = max(2, _BLOCK // size)
    out = bytearray(unit * count)
    view = memoryview(out)
    pdus = 0  # complete PDUs in ``out``
    filled = 0  # bytes of the message in the PDU after them
    for block in blocks:
        data = memoryview(block)
        offset, end = 0, data.nbytes
        while offset < end:
            if pdus == count:
                yield view[: (count - 1) * unit]
                view[:unit] = view[(count - 1) * unit :]
                pdus = 1
            start = pdus * unit + 12 + filled
            taken = min(size - filled, end - offset)
            view[start : start + taken] = data[offset : offset + taken]
            offset += taken
            filled += taken
            if filled == size:
                _PDV_HEADER.pack_into(
                    out, pdus * unit, 4, 0, unit - 6, size + 2, context_id, middle
                )
                pdus += 1
                filled = 0
    if filled or not pdus:
        _PDV_HEADER.pack_into(out, pdus * unit, 4, 0, filled + 6, filled + 2, context_id, last)
        yield view[: pdus * unit + 12 + filled]
    else:
        out[(pdus - 1) * unit + 11] = last
        yield view[: pdus * unit]


def store(
    node: Node,
    source: StoreSource,
    *,
    calling_aet: str = DEFAULT_CALLING_AET,
    timeout: float = DEFAULT_TIMEOUT,
    name: str | None = None,
    progress: ProgressCallback | None = None,
) -> StoreResult:
    """Send one DICOM file (an Encapsulated PDF from ``encode``) by C-STORE.

    ``source`` is the path of a Part 10 file in Explicit VR Little Endian, a binary stream of
    one positioned at its preamble (a pipe will do: it is read once, front to back), or the
    pieces of one as they are encoded (``EncodedPdf.chunks()``), so that nothing is written
    to disk first.
    Explicit and Implicit VR Little Endian are proposed; the bulk value is streamed.

    Raises
    ------
    InputError
        The source is not such a file.
    ServerUnreachableError
        Refused, timed out, or the association was rejected or aborted.
    DicomStatusError
        The receiver answered with a failure status (A7xx out of resources; A9xx, Cxxx and
        others refused).
    """
    connection = Connection(node, calling_aet, timeout)
    label = name or (os.fspath(source) if isinstance(source, str | os.PathLike) else "<stream>")
    with _source_stream(source, label) as stream:
        part10 = _open_part10(stream, label)
        syntaxes = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
        started = time.monotonic()
        with _association(connection, [(part10.sop_class_uid, syntaxes)]) as assoc:
            chosen = assoc.context_for(part10.sop_class_uid, syntaxes)
            if chosen is None:
                raise _not_supported(node, [part10.sop_class_uid])
            context_id, syntax = chosen
            status, sent = _send_store(
                assoc, context_id, part10, syntax == ImplicitVRLittleEndian, progress
            )
    if not (status.success or status.warning):
        raise status_error(status, f"C-STORE of {part10.sop_instance_uid} to {node}")
    return StoreResult(
        node=node,
        sop_class_uid=part10.sop_class_uid,
        sop_instance_uid=part10.sop_instance_uid,
        status=status,
        transfer_syntax=syntax,
        sent=sent,
        seconds=time.monotonic() - started,
    )


def _association(
    connection: Connection, contexts: Sequence[tuple[str, Sequence[str]]]
) -> contextlib.AbstractContextManager[upperlayer.Association]:
    """An association of the upper layer here (no pynetdicom): for C-STORE and C-ECHO."""
    from . import __version__

    node = connection.node
    return upperlayer.associated(
        node.host,
        node.port,
        label=str(node),
        called=node.ae_title,
        calling=connection.calling_aet,
        contexts=contexts,
        timeout=connection.timeout,
        tls=node.tls,
        version_name=f"PDF2DCM_{__version__}",
    )


@contextmanager
def _source_stream(source: StoreSource, label: str) -> Iterator[_Readable]:
    if isinstance(source, str | os.PathLike):
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise InputError(f"cannot read {label}: {exc.strerror}") from exc
        with stream:
            yield stream
    elif isinstance(source, _Readable):
        yield source
    else:
        yield _ChunkStream(iter(source))


class _ChunkStream:
    """The pieces of an encoded object (``EncodedPdf.chunks()``) read as one stream, each
    piece copied once, into the reader's buffer."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._piece = memoryview(b"")

    def _fill(self) -> bool:
        """Whether a piece with bytes left is in hand; the spent one is let go of first,
        since its producer may refill it (no view of it may be left then)."""
        while not self._piece:
            self._piece.release()
            piece = next(self._pieces, None)
            self._piece = memoryview(b"" if piece is None else piece)
            if piece is None:
                return False
        return True

    def _take(self, size: int) -> memoryview:
        """The next ``size`` bytes of the piece in hand (a view: use it at once)."""
        taken, rest = self._piece[:size], self._piece[size:]
        self._piece.release()
        self._piece = rest
        return taken

    def readinto(self, target: memoryview, /) -> int:
        """Some bytes into ``target``; 0 at the end (the reader asks again until it is full)."""
        if not self._fill():
            return 0
        with self._take(target.nbytes) as taken:
            target[: taken.nbytes] = taken
            return taken.nbytes

    def read(self, size: int, /) -> bytes:
        """Exactly ``size`` bytes unless the pieces end first, as a buffered file reads."""
        parts: list[bytes] = []
        while size > 0 and self._fill():
            with self._take(size) as taken:
                parts.append(taken.tobytes())
                size -= taken.nbytes
        return b"".join(parts)


def _accepted_context(assoc: Association, abstract: str, node: Node) -> Any:
    """The accepted context of ``abstract``: Explicit VR Little Endian if it was, else
    Implicit."""
    accepted = {
        str(context.transfer_syntax[0]): context
        for context in assoc.accepted_contexts
        if context.abstract_syntax == abstract
    }
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        if syntax in accepted:
            return accepted[syntax]
    raise DicomRefusedError(
        f"{node} does not accept SOP Class {abstract} in Explicit or Implicit VR Little Endian",
        status=0x0122,
        meaning="SOP Class not supported",
    )


_STORE_RSP, _ECHO_RSP = 0x8001, 0x8030


def _send_store(
    assoc: upperlayer.Association,
    context_id: int,
    part10: _Part10,
    implicit: bool,
    progress: ProgressCallback | None,
) -> tuple[Status, int]:
    """Send the C-STORE-RQ and its data set in P-DATA PDUs as the stream is read
    (re-encoded when the receiver wants Implicit VR); the response's status, and the bytes
    of the data set sent.

    Only a response read after the last fragment went out counts: one that comes earlier
    answers a message the receiver never had whole, so a success then is refused, and a
    failure (or an abort) is reported as the reason it stopped receiving.
    """
    command = upperlayer.command_set(
        [
            (0x00000002, upperlayer.ui(part10.sop_class_uid)),
            (0x00000100, upperlayer.us(0x0001)),
            (0x00000110, upperlayer.us(1)),
            (0x00000700, upperlayer.us(0)),  # MEDIUM
            (0x00000800, upperlayer.us(0x0000)),  # a data set follows
            (0x00001000, upperlayer.ui(part10.sop_instance_uid)),
        ]
    )
    size = assoc.fragment_size(_BLOCK)
    total = part10.bulk_header[2] if part10.bulk_header else 0
    counter = [0]
    written = 0
    try:
        for frames in _frames([command], context_id, size, command=True):
            assoc.send(frames)
        for frames in _frames(_counted(_blocks(part10, implicit), counter), context_id, size):
            if assoc.has_spoken():
                _answered_early(assoc, context_id, part10, written)
                raise ConnectionResetError(0, "it closed the connection")
            assoc.send(frames)
            written += len(frames)
            if progress is not None:
                progress(ProgressEvent(part10.name, min(counter[0], total), total or None))
    except OSError as exc:
        if not isinstance(exc, ConnectionResetError) or exc.errno:
            with contextlib.suppress(OSError):
                if assoc.has_spoken():
                    _answered_early(assoc, context_id, part10, written)
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ServerUnreachableError(
            f"{assoc.label} stopped receiving after {written} bytes were sent ({why.lower()})"
        ) from exc
    answer = assoc.response("C-STORE", context_id)
    return _store_status(answer, assoc, part10), counter[0]


def _answered_early(
    assoc: upperlayer.Association, context_id: int, part10: _Part10, written: int
) -> None:
    """The receiver spoke before the object was whole: why it stopped, as an error (it
    returns only when the receiver merely went away: the caller says so)."""
    answer = assoc.early_response("C-STORE", context_id, wait=_EARLY_WAIT)
    if answer is None:
        return
    status = _store_status(answer, assoc, part10)
    if not (status.success or status.warning):
        raise status_error(
            status, f"C-STORE of {part10.sop_instance_uid} to {assoc.label} (after {written} bytes)"
        )
    assoc.abort()
    raise UnexpectedReplyError(
        f"{assoc.label} answered the C-STORE with {status} after {written} bytes, before it "
        "had the whole object; it is not taken as stored"
    )


_EARLY_WAIT = 1.0
"""How long the rest of an answer that came while the object was sent may take to arrive."""


def _store_status(
    answer: Mapping[int, bytes], assoc: upperlayer.Association, part10: _Part10
) -> Status:
    """The status of the response to this C-STORE: the response to message 1, naming this
    SOP Instance and Class where it names one."""
    for tag, mine in ((0x00000002, part10.sop_class_uid), (0x00001000, part10.sop_instance_uid)):
        theirs = answer.get(tag)
        if theirs is not None and theirs.rstrip(b"\0 ") != mine.encode("ascii"):
            assoc.abort()
            raise UnexpectedReplyError(
                f"{assoc.label} answered the C-STORE of {mine} for "
                f"{upperlayer.shown(theirs.decode('ascii', 'replace'))}"
            )
    return _response_status(answer, assoc, "C-STORE", _STORE_RSP)


def _response_status(
    answer: Mapping[int, bytes], assoc: upperlayer.Association, what: str, field: int
) -> Status:
    """The status of a response to message 1, after checking that it is one."""
    if (
        answer.get(0x00000100) != upperlayer.us(field)
        or answer.get(0x00000120) != upperlayer.us(1)
        or len(answer.get(0x00000900, b"")) != 2
    ):
        assoc.abort()
        raise UnexpectedReplyError(
            f"{assoc.label} answered the {what} with a command that is not its response"
        )
    return Status.of(struct.unpack("<H", answer[0x00000900])[0])


# --- C-FIND --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindAnswer:
    """One C-FIND answer, decoded with its own SpecificCharacterSet.

    ``dataset`` holds the decoded values; ``raw`` the bytes of every top-level value as the
    archive sent them, so that a value copied into a document can be checked byte for byte.
    """

    dataset: Dataset
    raw: Mapping[str, bytes]
    character_set: tuple[str, ...]

    def text(self, keyword: str) -> str | None:
        """A top-level value as text (None when absent or empty)."""
        value = self.dataset.get(keyword)
        if value is None or value == "":
            return None
        return str(value)


_STUDY_KEYS = (
    "StudyInstanceUID",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
    "ReferringPhysicianName",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
_LEVEL_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex"),
    "STUDY": _STUDY_KEYS,
    "SERIES": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
    ),
    "IMAGE": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
    ),
}


def find(
    node: Node,
    level: Level,
    query: Mapping[str, str],
    *,
    calling_aet: str = DEFAULT_CALLING_AET,
    timeout: float = DEFAULT_TIMEOUT,
    return_keys: Sequence[str] | None = None,
    charset: str | None = None,
) -> list[FindAnswer]:
    """C-FIND (Study Root) at ``level``: the answers to ``query`` (keyword -> value).

    Keys are DICOM keywords with values as C-FIND matches them (``*`` and ``?`` are
    wildcards, ``A-B`` a date range); ``return_keys`` (default: the level's usual ones) are
    asked back empty. Answers are decoded with their SpecificCharacterSet; one that declares
    none but holds non-ASCII bytes is refused unless ``charset`` names its set.
    """
    identifier = _identifier(query, return_keys or _LEVEL_KEYS[level])
    identifier.QueryRetrieveLevel = level
    return _find(Connection(node, calling_aet, timeout), STUDY_ROOT_FIND, identifier, charset)


def find_studies(
    node: Node,
    query: Mapping[str, str],
    *,
    calling_aet: str = DEFAULT_CALLING_AET,
    timeout: float = DEFAULT_TIMEOUT,
    charset: str | None = None,
) -> list[FindAnswer]:
    """The studies matching ``query`` (C-FIND Study Root, STUDY level)."""
    return find(node, "STUDY", query, calling_aet=calling_aet, timeout=timeout, charset=charset)


def find_instance(
    node: Node,
    sop_instance_uid: str,
    *,
    study_instance_uid: str = "",
    series_instance_uid: str = "",
    calling_aet: str = DEFAULT_CALLING_AET,
    timeout: float = DEFAULT_TIMEOUT,
) -> FindAnswer | None:
    """Where the archive files ``sop_instance_uid`` (IMAGE level), or None if it has none.

    A strictly hierarchical archive needs the study's and series' UIDs too; Orthanc and most
    archives answer without them.
    """
    answers = find(
        node,
        "IMAGE",
        {
            "SOPInstanceUID": sop_instance_uid,
            "StudyInstanceUID": study_instance_uid,
            "SeriesInstanceUID": series_instance_uid,
        },
        calling_aet=calling_aet,
        timeout=timeout,
    )
    matching = [a for a in answers if a.text("SOPInstanceUID") == sop_instance_uid]
    return matching[0] if matching else None


def next_series_number(
    node: Node,
    study_instance_uid: str,
    *,
    calling_aet: str = DEFAULT_CALLING_AET,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """One past the highest SeriesNumber of the study's series (1 for none)."""
    answers = find(
        node,
        "SERIES",
        {"StudyInstanceUID": study_instance_uid},
        return_keys=("SeriesInstanceUID", "SeriesNumber"),
        calling_aet=calling_aet,
        timeout=timeout,
    )
    return _one_past(answers, "SeriesNumber")


def next_instance_number(
    node: Node,
    study_instance_uid: str,
    series_instance_uid: str,
    *,
    calling_aet: str = DEFAULT_CALLING_AET,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """One past the highest InstanceNumber in the series (1 for none)."""
    answers = find(
        node,
        "IMAGE",
        {"StudyInstanceUID": study_instance_uid, "SeriesInstanceUID": series_instance_uid},
        return_keys=("SOPInstanceUID", "InstanceNumber"),
        calling_aet=calling_aet,
        timeout=timeout,
    )
    return _one_past(answers, "InstanceNumber")


def _one_past(answers: Sequence[FindAnswer], keyword: str) -> int:
    numbers = [int(text) for a in answers if (text := (a.text(keyword) or "").strip()).isdigit()]
    return max(numbers, default=0) + 1


def _identifier(query: Mapping[str, str], return_keys: Sequence[str]) -> Dataset:
    load_pydicom()
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataset import Dataset

    identifier = Dataset()
    for keyword in (*return_keys, *query):
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise InputError(f"{keyword} is not a DICOM keyword; check the query key")
        identifier.add_new(tag, dictionary_VR(tag), query.get(keyword, ""))
    if any(not str(value).isascii() for value in query.values()):
        identifier.SpecificCharacterSet = "ISO_IR 192"
    return identifier


def _find(
    connection: Connection, model: str, identifier: Dataset, charset: str | None
) -> list[FindAnswer]:
    """The answers of one C-FIND, each read from the bytes as received.

    pynetdicom hands identifiers on already decoded (with a lenient decoder that replaces
    what it cannot read); the encoded identifiers are taken as they arrive instead, so the
    raw bytes are kept and decoding is strict.
    """
    load_pynetdicom()
    from pynetdicom import evt

    node = connection.node
    received: list[bytes] = []

    def keep(event: Any) -> None:
        message = event.message
        if type(message).__name__ == "C_FIND_RSP" and message.data_set is not None:
            encoded = message.data_set.getvalue()
            if encoded:
                received.append(encoded)

    answers: list[FindAnswer] = []
    with _associated(
        connection,
        [(model, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])],
        handlers=[(evt.EVT_DIMSE_RECV, keep)],
    ) as assoc:
        implicit = _accepted_context(assoc, model, node).transfer_syntax[0] == (
            ImplicitVRLittleEndian
        )
        with warnings.catch_warnings():
            # pydicom warns of query values it finds odd, and pynetdicom's lenient decoding
            # of the answers warns; the strict decoding below raises instead.
            warnings.simplefilter("ignore")
            try:
                responses = assoc.send_c_find(identifier, model)
            except (ValueError, RuntimeError) as exc:
                raise InputError(f"the C-FIND query cannot be encoded ({exc})") from exc
            for status_set, _decoded in responses:
                status = _status_of(status_set, node, "C-FIND", connection.timeout)
                if status.code in (0xFF00, 0xFF01):
                    if not received:
                        raise UnexpectedReplyError(f"{node} sent a C-FIND match without data")
                    identifier = _read_identifier(received.pop(0), implicit)
                    answers.append(_answer(identifier, node, charset))
                elif not status.success:
                    raise status_error(status, f"C-FIND on {node}")
    return answers


def _read_identifier(encoded: bytes, implicit: bool) -> Dataset:
    load_pydicom()
    from pydicom.filereader import read_dataset

    try:
        return read_dataset(io.BytesIO(encoded), is_implicit_VR=implicit, is_little_endian=True)
    except (ValueError, EOFError, struct.error) as exc:
        raise UnexpectedReplyError(f"a C-FIND answer cannot be read ({exc})") from exc


_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})


def _answer(identifier: Dataset, node: Node, charset: str | None) -> FindAnswer:
    """Decode an answer strictly in its own character set; keep each value's raw bytes."""
    load_pydicom()
    from pydicom.datadict import keyword_for_tag

    raw: dict[str, bytes] = {}
    for tag in list(identifier.keys()):
        value = identifier.get_item(tag).value
        if isinstance(value, bytes):
            raw[keyword_for_tag(tag) or f"{tag:08X}"] = value
    declared = identifier.get("SpecificCharacterSet")
    if declared is None or declared == "":
        suspect = _non_ascii_text(identifier)
        if suspect is not None:
            if charset is None:
                raise InputError(
                    f"{node} answered with non-ASCII bytes in {suspect} and no "
                    "SpecificCharacterSet; name the worklist's character set (e.g. ISO_IR 100, "
                    "ISO_IR 192, GB18030) to read it"
                )
            identifier.SpecificCharacterSet = charset
    terms = identifier.get("SpecificCharacterSet") or ""
    character_set = tuple(str(t) for t in terms) if not isinstance(terms, str) else (terms,)
    shown_set = "\\".join(character_set) or "ASCII"
    if all(term in ("", "ISO_IR 6") for term in character_set):
        suspect = _non_ascii_text(identifier)
        if suspect is not None:
            raise UnexpectedReplyError(
                f"{node} answered with non-ASCII bytes in {suspect} under {shown_set}; "
                "nothing was copied"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            identifier.decode()
        except (UserWarning, LookupError, ValueError) as exc:
            raise UnexpectedReplyError(
                f"{node} answered with text that is not valid {shown_set} ({exc}); "
                "nothing was copied"
            ) from exc
    return FindAnswer(identifier, raw, character_set if any(character_set) else ())


def _non_ascii_text(dataset: Dataset) -> str | None:
    """The keyword of the first text value holding non-ASCII bytes (in sequences too)."""
    load_pydicom()
    from pydicom.datadict import dictionary_VR, keyword_for_tag

    for tag in list(dataset.keys()):
        raw = dataset.get_item(tag)
        keyword = keyword_for_tag(tag) or f"{tag:08X}"
        vr = raw.VR or (dictionary_VR(tag) if keyword_for_tag(tag) else "UN")
        if vr == "SQ":
            for item in dataset[tag].value:
                inner = _non_ascii_text(item)
                if inner is not None:
                    return f"{keyword}/{inner}"
        elif vr in _TEXT_VRS and isinstance(raw.value, bytes) and not raw.value.isascii():
            return keyword
    return None


# --- the modality worklist -----------------------------------------------------------------

WORKLIST_QUERY_KEYS = (
    "AccessionNumber",
    "PatientID",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
)
"""What a worklist query may match on; the last four are keys of the scheduled step."""
_STEP_KEYS = frozenset(
    {
        "ScheduledProcedureStepID",
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStartDate",
    }
)
_WORKLIST_RETURN = (
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
    "RequestedProcedureID",
)
_STEP_RETURN = (
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription",
    "ScheduledProtocolCodeSequence",
    "ScheduledProcedureStepID",
)


@dataclass(frozen=True)
class WorklistItem:
    """One requested procedure: the order's attributes and its scheduled steps.

    Answers that differ only in their scheduled step (several steps of one order) are one
    item with several ``steps``.
    """

    answer: FindAnswer
    steps: tuple[Dataset, ...]

    @property
    def dataset(self) -> Dataset:
        return self.answer.dataset

    @property
    def character_set(self) -> tuple[str, ...]:
        return self.answer.character_set

    def text(self, keyword: str) -> str | None:
        return self.answer.text(keyword)


def worklist(
    node: Node,
    query: Mapping[str, str],
    *,
    charset: str | None = None,
    calling_aet: str = DEFAULT_CALLING_AET,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[WorklistItem]:
    """The scheduled procedures of a Modality Worklist SCP that match ``query``.

    ``query`` keys are :data:`WORKLIST_QUERY_KEYS` (``ScheduledProcedureStepStartDate``
    takes a date or a range ``20260101-20260131``). Answers are decoded with their own
    SpecificCharacterSet; an answer that declares none but holds non-ASCII bytes is refused
    unless ``charset`` names its set. Steps of one order that agree on everything else are
    merged into one item.
    """
    unknown = [key for key in query if key not in WORKLIST_QUERY_KEYS]
    if unknown:
        raise InputError(
            f"{unknown[0]} cannot select a scheduled procedure; keys for a worklist: "
            f"{', '.join(WORKLIST_QUERY_KEYS)}"
        )
    order = {k: v for k, v in query.items() if k not in _STEP_KEYS}
    step = {k: v for k, v in query.items() if k in _STEP_KEYS}
    identifier = _identifier(order, _WORKLIST_RETURN)
    step_identifier = _identifier(step, _STEP_RETURN)
    if "SpecificCharacterSet" in step_identifier:
        # The character set of a query is declared once, at its top level.
        del step_identifier.SpecificCharacterSet
        identifier.SpecificCharacterSet = "ISO_IR 192"
    identifier.ScheduledProcedureStepSequence = [step_identifier]
    answers = _find(
        Connection(node, calling_aet, timeout), MODALITY_WORKLIST_FIND, identifier, charset
    )
    return merge_steps([a for a in answers if _matches(a, query)])


def _matches(answer: FindAnswer, query: Mapping[str, str]) -> bool:
    """Whether an answer holds every exact value asked for.

    Not every SCP matches on every key (DCMTK's wlmscpfs ignores ScheduledProcedureStepID):
    an answer it should not have sent must not become the procedure a document is filed
    under. Wildcards and ranges are the SCP's to match.
    """
    steps = answer.dataset.get("ScheduledProcedureStepSequence") or [{}]
    for key, wanted in query.items():
        ranged = key.endswith("Date") and "-" in wanted
        if not wanted or ranged or any(mark in wanted for mark in "*?\\"):
            continue
        if key in _STEP_KEYS:
            if not any(str(step.get(key, "")).strip() == wanted for step in steps):
                return False
        elif (answer.text(key) or "").strip() != wanted:
            return False
    return True


def merge_steps(answers: Sequence[FindAnswer]) -> list[WorklistItem]:
    """Group worklist answers that agree on everything but their scheduled step."""
    groups: dict[tuple[object, ...], list[FindAnswer]] = {}
    for answer in answers:
        groups.setdefault(_order_key(answer), []).append(answer)
    items = []
    for group in groups.values():
        steps = tuple(
            step
            for answer in group
            for step in answer.dataset.get("ScheduledProcedureStepSequence", [])
        )
        items.append(WorklistItem(group[0], steps))
    return items


def _order_key(answer: FindAnswer) -> tuple[object, ...]:
    """Everything a document copies from an answer except its scheduled step: the raw
    bytes, so two answers that decode alike but differ in bytes stay apart."""
    return (
        answer.character_set,
        tuple(
            sorted((k, v) for k, v in answer.raw.items() if k != "ScheduledProcedureStepSequence")
        ),
        tuple(
            repr(answer.dataset.get(k))
            for k in ("IssuerOfAccessionNumberSequence", "RequestedProcedureCodeSequence")
        ),
    )


# --- storage commitment --------------------------------------------------------------------


@dataclass(frozen=True)
class CommitResult:
    """The archive's answer to a storage commitment request."""

    transaction_uid: str
    committed: tuple[tuple[str, str], ...]
    """(SOP Class UID, SOP Instance UID) of each instance the archive committed to."""
    failed: tuple[tuple[str, str, int], ...] = field(default_factory=tuple)
    """(SOP Class UID, SOP Instance UID, FailureReason) of each it did not."""


def commit(
    node: Node,
    instances: Sequence[tuple[str, str]],
    *,
    calling_aet: str = DEFAULT_CALLING_AET,
    timeout: float = DEFAULT_TIMEOUT,
    listen_port: int | None = None,
    listen_host: str = "",
    stop: threading.Event | None = None,
) -> CommitResult:
    """Ask ``node`` to commit to storing ``instances`` ((SOP Class, SOP Instance) pairs).

    Sends N-ACTION (Storage Commitment Push Model), then waits up to ``timeout`` for the
    N-EVENT-REPORT: on the same association, or, with ``listen_port``, on one the archive
    opens to ``calling_aet`` at this machine's port (the archive must know that AE title
    and address).

    Raises
    ------
    CommitmentFailedError
        The archive reported instances it did not commit (``failed`` on the error).
    CommitmentTimeoutError
        No report came within ``timeout`` (the archive may still commit later).
    """
    if not instances:
        raise InputError("no instances to commit")
    if listen_port is not None and node.tls is not None:
        raise InputError(
            "a commitment report over TLS comes on the request's association; the listening "
            "port takes plain TCP only: leave listen_port out"
        )
    load_pydicom()
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    connection = Connection(node, calling_aet, timeout)
    transaction = str(generate_uid())
    reports: queue.Queue[Dataset] = queue.Queue()

    def on_report(event: Any) -> tuple[int, None]:
        """Take the report of this transaction; answer every report with Success."""
        if event.request.EventTypeID in (1, 2):
            report = event.event_information
            if str(report.get("TransactionUID", "")) == transaction:
                reports.put(report)
        return 0x0000, None

    with _listening(connection, listen_host, listen_port, on_report):
        load_pynetdicom()
        from pynetdicom import evt

        with _associated(
            connection,
            [(STORAGE_COMMITMENT_PUSH_MODEL, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])],
            handlers=[(evt.EVT_N_EVENT_REPORT, on_report)],
        ) as assoc:
            request = Dataset()
            request.TransactionUID = transaction
            request.ReferencedSOPSequence = [
                _reference(sop_class, sop_instance) for sop_class, sop_instance in instances
            ]
            status_set, _reply = assoc.send_n_action(
                request, 1, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE
            )
            status = _status_of(status_set, node, "N-ACTION", timeout)
            if not status.success:
                raise status_error(status, f"storage commitment request to {node}")
            if listen_port is None:
                report = _wait_report(reports, timeout, node, transaction, stop)
        if listen_port is not None:
            report = _wait_report(reports, timeout, node, transaction, stop)
    return _commit_result(report, transaction, node, instances)


@contextmanager
def _listening(
    connection: Connection,
    host: str,
    port: int | None,
    on_report: Callable[[Any], tuple[int, None]],
) -> Iterator[None]:
    """A storage commitment SCU that accepts the archive's N-EVENT-REPORT association."""
    if port is None:
        yield
        return
    load_pynetdicom()
    from pynetdicom import evt

    ae = _application_entity(connection)
    ae.add_supported_context(
        STORAGE_COMMITMENT_PUSH_MODEL,
        [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
        scu_role=True,
        scp_role=True,
    )
    try:
        server = ae.start_server(
            (host, port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
        )
    except OSError as exc:
        # The setting's fault (a port in use, or one needing privileges), never a document's.
        raise ConfigurationError(
            f"cannot listen on port {port} for the storage commitment report: {exc.strerror}"
        ) from exc
    try:
        yield
    finally:
        server.shutdown()


def _wait_report(
    reports: queue.Queue[Dataset],
    timeout: float,
    node: Node,
    transaction: str,
    stop: threading.Event | None,
) -> Dataset:
    """The report, waited for up to ``timeout``, or until ``stop`` is set (a service being
    stopped must not wait out every pending commitment)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return reports.get(timeout=max(0.0, min(left, 0.2 if stop is not None else left)))
        except queue.Empty:
            pass
        if stop is not None and stop.is_set():
            raise CommitmentTimeoutError(
                f"stopped before {node} sent its storage commitment report for transaction "
                f"{transaction}; the archive may still commit"
            )
        if time.monotonic() >= deadline:
            raise CommitmentTimeoutError(
                f"{node} sent no storage commitment report for transaction {transaction} "
                f"within {timeout:g} s; the archive may still commit later"
            )


def _reference(sop_class: str, sop_instance: str) -> Dataset:
    load_pydicom()
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def _commit_result(
    report: Dataset, transaction: str, node: Node, requested: Sequence[tuple[str, str]]
) -> CommitResult:
    """The report read against the request: an instance counts as committed only when the
    report names it so, with its SOP Class; one it does not name at all is failed (0110),
    never taken as committed."""
    asked = {(str(c), str(i)) for c, i in requested}
    committed = tuple(
        (str(item.get("ReferencedSOPClassUID", "")), str(item.get("ReferencedSOPInstanceUID", "")))
        for item in report.get("ReferencedSOPSequence", [])
    )
    committed = tuple(pair for pair in committed if pair in asked)
    failed = [
        (
            str(item.get("ReferencedSOPClassUID", "")),
            str(item.get("ReferencedSOPInstanceUID", "")),
            int(item.get("FailureReason", _PROCESSING_FAILURE)),
        )
        for item in report.get("FailedSOPSequence", [])
    ]
    reported = set(committed) | {(c, i) for c, i, _reason in failed}
    failed += [
        (c, i, _PROCESSING_FAILURE) for c, i in requested if (str(c), str(i)) not in reported
    ]
    result = CommitResult(transaction, committed, tuple(failed))
    left_out = [pair for pair in requested if (str(pair[0]), str(pair[1])) not in committed]
    if failed or left_out:
        first = failed[0]
        raise CommitmentFailedError(
            f"{node} did not commit to {len(left_out)} of {len(requested)} "
            f"instances (first: {first[1]}, {Status.of(first[2])})",
            result=result,
        )
    return result
