"""OrthancClient: the only code that speaks Orthanc's REST API.

One pooled HTTP session with deadlines, retries and Orthanc's errors made typed, and one
method per Orthanc operation, each returning a frozen dataclass checked at the boundary: a
reply of the wrong shape (``[1,2,3]``, ``null``, ``{}`` without ``ID``, an ``ID`` that is not an
Orthanc ID) is one :class:`~pdf2dcm.errors.UnexpectedReplyError`, raised here and nowhere else.

Every ID and name placed in a URL path goes through :func:`path_segment`: Orthanc IDs and job
IDs must have their known shapes, names are percent-encoded as one segment. So a job ID such
as ``../tools/shutdown?`` can never address another route.

Time: a request for a JSON answer has a total deadline (``Settings.timeout``), from the first
byte sent to the last byte read, retries included; a watchdog shuts the socket down when it
passes, so a server that trickles one byte at a time cannot hold the caller. Downloads (a
document, a job's archive) have the deadline until the headers arrive, then a stall timeout
of the same length between two reads; they may last as long as bytes keep coming. Requests
that carry a document (stores, STOW-RS) have the stall timeout only, since sending a large
file legitimately takes long. JSON answers are read in pieces and refused beyond
:data:`MAX_JSON_BYTES`.

Retries are split by what a repeat can do. GETs are retried on connection errors and
502/503/504. POSTs are retried here, explicitly, and only for the uploads where a repeat
cannot duplicate data (the same SOPInstanceUID is answered ``AlreadyStored``); their bodies
are re-iterable objects that start over from the first byte on every attempt. Certificate
failures are never retried. Each retry is logged on the ``pdf2dcm`` logger (INFO).

Redirects are followed only for requests without a body and only on the same scheme, host
and port; anything else is a :class:`~pdf2dcm.errors.RedirectError` naming the Location.

The HTTP exchange itself is :mod:`pdf2dcm.transport` (the standard library's http.client);
none of its exceptions escapes: every failure becomes a :class:`~pdf2dcm.errors.ServerError`
whose message names the server and never a credential.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json as _json_module
import logging
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Literal, TypeAlias, overload
from urllib.parse import quote, urlencode, urljoin, urlsplit

from . import __version__
from .config import Settings, origin_of, redact_url
from .errors import (
    AuthenticationError,
    InputError,
    NotFoundError,
    RedirectError,
    ServerError,
    ServerFailedError,
    ServerRefusedError,
    ServerUnreachableError,
    UnexpectedReplyError,
)
from .transport import ProxyError, Response, Transport

USER_AGENT = f"pdf2dcm/{__version__}"
TRANSIENT_STATUSES = frozenset({502, 503, 504})
BACKOFF_SECONDS = 0.5
MAX_JSON_BYTES = 64 * 1024 * 1024
"""The largest JSON answer read; Orthanc's answers are far smaller, a larger one is refused."""
MAX_ATTRIBUTE_BYTES = 1024 * 1024
"""Default bound of one attribute value read with :meth:`OrthancClient.instance_content`."""
MAX_RETRY_AFTER = 10.0
"""A server's Retry-After is obeyed up to this many seconds."""
MAX_REDIRECTS = 5
_READ_PIECE = 64 * 1024

logger = logging.getLogger("pdf2dcm")

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
Level = Literal["Patient", "Study", "Series", "Instance"]
IdKind = Literal["instance", "series", "study", "patient", "job"]

_ORTHANC_ID = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{8}){4}")
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TAG = re.compile(r"[0-9a-fA-F]{4}-[0-9a-fA-F]{4}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- paths -----------------------------------------------------------------------------------


def shown(value: str, limit: int = 80) -> str:
    """A value for a message: quoted, and cut at ``limit`` characters with its length."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def path_segment(value: str, kind: IdKind | Literal["name"] = "name") -> str:
    """One URL path segment, made safe: the one gate for everything put in a path.

    Orthanc IDs (five groups of 8 lowercase hex digits) and job IDs (UUIDs) must have their
    shape; names (modalities, peers, output keys) are percent-encoded as a single segment.

    Raises
    ------
    InputError
        An ID of the wrong shape, or an empty name, ``.`` or ``..``.
    """
    if kind == "name":
        if value in ("", ".", ".."):
            raise InputError(f"{shown(value)} is not a usable name; give the name as configured")
        return quote(value, safe="")
    pattern = _JOB_ID if kind == "job" else _ORTHANC_ID
    if pattern.fullmatch(value) is None:
        shape = (
            "a UUID such as 32af28ce-d1f9-4655-b38e-3237a3cdcbaa"
            if kind == "job"
            else "five groups of 8 lowercase hex digits such as "
            "1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b"
        )
        raise InputError(f"{kind} ID {shown(value)} is not an Orthanc {kind} ID; give {shape}")
    return value


def _tag_segment(tag: str) -> str:
    if _TAG.fullmatch(tag) is None:
        raise InputError(f"tag {shown(tag)} is not of the form gggg-eeee")
    return tag.lower()


# --- typed replies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemInfo:
    """``GET /system``: what the server says it is."""

    version: str
    name: str
    api_version: int | None


@dataclass(frozen=True)
class StoredInstance:
    """Orthanc's answer to a store: where the instance now lives."""

    id: str
    parent_patient: str | None
    parent_study: str | None
    parent_series: str | None
    status: str
    """``Success`` or ``AlreadyStored``."""


@dataclass(frozen=True)
class LookupMatch:
    """One answer of ``/tools/lookup``: a resource whose DICOM UID was looked up."""

    type: str
    """``Patient``, ``Study``, ``Series`` or ``Instance``."""
    id: str


@dataclass(frozen=True)
class Patient:
    id: str
    main_tags: dict[str, str]
    studies: tuple[str, ...]


@dataclass(frozen=True)
class Study:
    id: str
    parent_patient: str
    main_tags: dict[str, str]
    patient_main_tags: dict[str, str]
    series: tuple[str, ...]


@dataclass(frozen=True)
class Series:
    id: str
    parent_study: str
    main_tags: dict[str, str]
    instances: tuple[str, ...]


@dataclass(frozen=True)
class Instance:
    id: str
    parent_series: str
    main_tags: dict[str, str]


Resource: TypeAlias = "Patient | Study | Series | Instance"


@dataclass(frozen=True)
class StowAnswer:
    """A STOW-RS answer: the failure reasons (0008,1197) of refused instances, if any."""

    failure_reasons: tuple[str, ...]


CANCELLED_ERROR_CODE = 37
"""Orthanc's ErrorCode for a job ended by a cancel request."""


class JobState(str, Enum):
    """Orthanc's job states."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILURE = "Failure"
    PAUSED = "Paused"
    RETRY = "Retry"

    @property
    def is_final(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILURE)


@dataclass(frozen=True)
class JobStatus:
    """One reading of ``GET /jobs/{id}``; ``raw`` keeps every field Orthanc sent."""

    id: str
    type: str
    state: JobState
    progress: int
    error_code: int
    error_description: str
    error_details: str
    raw: dict[str, JSONValue] = field(repr=False)

    @property
    def cancelled(self) -> bool:
        return self.state is JobState.FAILURE and self.error_code == CANCELLED_ERROR_CODE

    def failure_text(self) -> str:
        """``ErrorCode N: description (details)``, the way failures are reported."""
        details = f" ({self.error_details})" if self.error_details else ""
        return f"ErrorCode {self.error_code}: {self.error_description}{details}"


class _Reply:
    """A decoded JSON answer and the URL it came from, read with shape checks."""

    def __init__(self, url: str, value: JSONValue) -> None:
        self.url = redact_url(url)
        self.value = value

    def error(self, detail: str) -> UnexpectedReplyError:
        return UnexpectedReplyError(f"unexpected reply from {self.url}: {detail}")

    def obj(self) -> dict[str, JSONValue]:
        """The answer, which must be a JSON object."""
        return self._object(self.value, "the answer")

    def items(self) -> list[dict[str, JSONValue]]:
        """The answer, which must be a JSON array of objects."""
        if not isinstance(self.value, list):
            raise self.error(f"the answer is {_kind(self.value)}, not a JSON array")
        return [self._object(item, "an item of the array") for item in self.value]

    def _object(self, value: JSONValue, what: str) -> dict[str, JSONValue]:
        if not isinstance(value, dict):
            raise self.error(f"{what} is {_kind(value)}, not a JSON object")
        return value

    def string(self, data: Mapping[str, JSONValue], key: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            missing = key not in data
            raise self.error(f"'{key}' is {'missing' if missing else _kind(value)}, not a string")
        return value

    def optional_string(self, data: Mapping[str, JSONValue], key: str) -> str | None:
        return None if data.get(key) is None else self.string(data, key)

    def integer(self, data: Mapping[str, JSONValue], key: str, default: int) -> int:
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"'{key}' is {_kind(value)}, not an integer")
        return value

    def orthanc_id(self, data: Mapping[str, JSONValue], key: str, kind: IdKind) -> str:
        value = self.string(data, key)
        pattern = _JOB_ID if kind == "job" else _ORTHANC_ID
        if pattern.fullmatch(value) is None:
            raise self.error(f"'{key}' {shown(value)} is not an Orthanc {kind} ID")
        return value

    def optional_id(self, data: Mapping[str, JSONValue], key: str, kind: IdKind) -> str | None:
        return None if data.get(key) is None else self.orthanc_id(data, key, kind)

    def id_list(self, data: Mapping[str, JSONValue], key: str, kind: IdKind) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.error(f"'{key}' is {_kind(value)}, not a list of IDs")
        return tuple(self.orthanc_id({key: item}, key, kind) for item in value)

    def tags(self, data: Mapping[str, JSONValue], key: str) -> dict[str, str]:
        """Main DICOM tags: string values only (sequences and binary values are not ours)."""
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(f"'{key}' is {_kind(value)}, not a JSON object")
        return {name: text for name, text in value.items() if isinstance(text, str)}

    def patient(self, data: dict[str, JSONValue]) -> Patient:
        return Patient(
            id=self.orthanc_id(data, "ID", "patient"),
            main_tags=self.tags(data, "MainDicomTags"),
            studies=self.id_list(data, "Studies", "study"),
        )

    def study(self, data: dict[str, JSONValue]) -> Study:
        return Study(
            id=self.orthanc_id(data, "ID", "study"),
            parent_patient=self.orthanc_id(data, "ParentPatient", "patient"),
            main_tags=self.tags(data, "MainDicomTags"),
            patient_main_tags=self.tags(data, "PatientMainDicomTags"),
            series=self.id_list(data, "Series", "series"),
        )

    def series(self, data: dict[str, JSONValue]) -> Series:
        return Series(
            id=self.orthanc_id(data, "ID", "series"),
            parent_study=self.orthanc_id(data, "ParentStudy", "study"),
            main_tags=self.tags(data, "MainDicomTags"),
            instances=self.id_list(data, "Instances", "instance"),
        )

    def instance(self, data: dict[str, JSONValue]) -> Instance:
        return Instance(
            id=self.orthanc_id(data, "ID", "instance"),
            parent_series=self.orthanc_id(data, "ParentSeries", "series"),
            main_tags=self.tags(data, "MainDicomTags"),
        )

    def resource(self, level: Level, data: dict[str, JSONValue]) -> Resource:
        readers: dict[str, Callable[[dict[str, JSONValue]], Resource]] = {
            "Patient": self.patient,
            "Study": self.study,
            "Series": self.series,
            "Instance": self.instance,
        }
        return readers[level](data)

    def stored(self, data: dict[str, JSONValue]) -> StoredInstance:
        """A store's answer; create-dicom has no Status, and Orthanc then means Success."""
        return StoredInstance(
            id=self.orthanc_id(data, "ID", "instance"),
            parent_patient=self.optional_id(data, "ParentPatient", "patient"),
            parent_study=self.optional_id(data, "ParentStudy", "study"),
            parent_series=self.optional_id(data, "ParentSeries", "series"),
            status=self.string(data, "Status", "Success"),
        )

    def job(self, data: dict[str, JSONValue]) -> JobStatus:
        try:
            state = JobState(self.string(data, "State"))
        except ValueError:
            state = JobState.RUNNING  # a state newer than this client: keep waiting
        return JobStatus(
            id=self.orthanc_id(data, "ID", "job"),
            type=self.string(data, "Type", ""),
            state=state,
            progress=self.integer(data, "Progress", 0),
            error_code=self.integer(data, "ErrorCode", 0),
            error_description=self.optional_string(data, "ErrorDescription") or "",
            error_details=self.optional_string(data, "ErrorDetails") or "",
            raw=data,
        )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {dict: "an object", list: "an array", str: "a string", int: "a number"}
    return names.get(type(value), "a number")


_ID_KINDS: dict[str, IdKind] = {
    "Patient": "patient",
    "Study": "study",
    "Series": "series",
    "Instance": "instance",
}


# --- bodies, retries, deadlines --------------------------------------------------------------


class RepeatableBody:
    """A streamed request body of known length that can be sent again from the start.

    It is sent with a Content-Length header; every iteration calls ``factory`` anew.
    """

    def __init__(self, length: int, factory: Callable[[], Iterator[bytes]]) -> None:
        self.length = length
        self._factory = factory

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        return self._factory()


class _Guard:
    """A request's total deadline: when it passes, the sockets it used are shut down.

    Shutting the socket down makes the blocked read return at once, wherever it is (headers,
    chunked body, TLS); the failure that follows is reported as the deadline. The transport
    hands over each connection's socket before it sends on it (:meth:`attach`).
    """

    def __init__(self, seconds: float | None, wait: float) -> None:
        self.seconds = seconds
        self.wait = wait
        """The stall timeout of each connect and read."""
        self._end = None if seconds is None else time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self._done = False

    def __enter__(self) -> _Guard:
        if self.seconds is not None:
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Stop the deadline (a download's body has only the stall timeout)."""
        with self._lock:
            self._done = True
            self._sockets.clear()
        if self._timer is not None:
            self._timer.cancel()

    def remaining(self) -> float | None:
        """Seconds left, or None without a deadline (or once released)."""
        if self._end is None or self._done:
            return None
        return self._end - time.monotonic()

    def within(self, seconds: float) -> float:
        """A pause between retries, never past the deadline (a sleep is not cut)."""
        left = self.remaining()
        return seconds if left is None else max(0.0, min(seconds, left))

    def let_go(self, response: Response) -> None:
        """Close an answer, first taking its socket out of reach of this deadline: the
        connection goes back to the pool, where another request (thread) may take it."""
        if response.socket is not None:
            with self._lock:
                self._sockets = [sock for sock in self._sockets if sock is not response.socket]
        response.close()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            if self._done:
                return
            self._sockets.append(sock)
            if self.expired:
                _cut(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _cut(sock)


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        # The plain socket's shutdown, also for TLS: the TLS layer then reads an EOF.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
"""What the transport raises for a failed exchange (TLS, timeouts and resets are OSErrors)."""


def _pause(seconds: float) -> None:
    """The pause between two attempts (a name of its own, for tests to count pauses)."""
    time.sleep(seconds)


def _retry_after(response: Response) -> float | None:
    """A Retry-After header in seconds (a number or an HTTP date); None if absent or odd."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if re.fullmatch(r"[0-9]+", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _authorization(settings: Settings) -> str | bytes | None:
    """The Authorization header of the settings' credentials, UTF-8 encoded (RFC 7617).

    Settings made in code skip the checks of :mod:`pdf2dcm.config`: a control character in
    a token would end the header (http.client refuses it with the header, secret included,
    in its message), so it is refused here, without the value. Basic credentials go out
    base64-encoded and cannot.
    """
    if settings.token is not None and _CONTROL.search(settings.token):
        raise InputError("the token contains a control character; give it without")
    if settings.token is not None:
        # Bytes, so that a non-ASCII token goes out as UTF-8 instead of failing in latin-1.
        return b"Bearer " + settings.token.encode("utf-8")
    if settings.username is not None:
        pair = settings.username.encode("utf-8") + b":" + (settings.password or "").encode("utf-8")
        return "Basic " + base64.b64encode(pair).decode("ascii")
    return None


class _Credentials:
    """Credentials that go only to their own servers (scheme, host and port).

    Redirects are followed only on the same origin already; this holds for every request,
    an absolute URL (a DICOMweb root elsewhere) included.
    """

    def __init__(self, header: str | bytes | None, origins: frozenset[str]) -> None:
        self._header = header
        self._origins = origins

    def for_url(self, url: str) -> str | bytes | None:
        return self._header if origin_of(url) in self._origins else None

    def __repr__(self) -> str:
        return "_Credentials(<hidden>)"


class Download:
    """A streamed answer body; read failures become ServerError naming the bytes received.

    ``length`` is the announced Content-Length, if any. Reading past a stall of
    ``Settings.timeout`` seconds, or a body that ends before its announced length, raises.
    """

    def __init__(self, response: Response, what: str, server: str) -> None:
        self._response = response
        self._what = what
        self._server = server
        self.received = 0
        announced = response.headers.get("Content-Length", "")
        self.length = int(announced) if announced.isdigit() else None
        self.headers: Mapping[str, str] = response.headers  # type: ignore[assignment]

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes as they arrive (fewer than asked is not the end; empty is)."""
        try:
            block = self._response.read1(size)
        except _TRANSPORT_ERRORS as exc:
            if isinstance(exc, TimeoutError):
                cause = "no data came for the stall timeout"
            elif isinstance(exc, http.client.IncompleteRead):
                cause = "the server ended it early"
            elif isinstance(exc, OSError) and exc.strerror:
                cause = exc.strerror
            else:
                cause = _reason(exc)
            raise ServerError(
                f"the download of {self._what} from {self._server} broke off after "
                f"{self.received} bytes: {cause}"
            ) from exc
        self.received += len(block)
        return block

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most ``size``, decoded (Orthanc may gzip it)."""
        while block := self.read(size):
            yield block


# --- the client ------------------------------------------------------------------------------


class OrthancClient:
    """A connection to one Orthanc server.

    Parameters
    ----------
    settings
        URL, credentials, TLS and timeout (see :func:`pdf2dcm.config.resolve_settings`).
    transport
        A ready transport to use instead of a new one (a subclass that records or adds to
        each request, tests); the client does not close it.
    pool_size
        Connections kept open; match it to the number of threads sharing the client.
    """

    log_exchanges = False
    """Log one line per HTTP exchange on the ``pdf2dcm.http`` logger (INFO), for -v."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Transport | None = None,
        pool_size: int = 10,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep if sleep is not None else _pause
        self._own_transport = transport is None
        self.transport = (
            transport
            if transport is not None
            else Transport(verify=settings.ca_bundle or settings.verify_tls, pool_size=pool_size)
        )
        self._credentials = _Credentials(_authorization(settings), settings.origins)

    def close(self) -> None:
        if self._own_transport:
            self.transport.close()

    def __enter__(self) -> OrthancClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of a path of the server (an absolute URL is kept as it is)."""
        return path if "://" in path else f"{self.settings.url}/{path.lstrip('/')}"

    def _server(self) -> str:
        return redact_url(self.settings.url)

    @contextlib.contextmanager
    def _exchange(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        budget: float | None,
        headers: Mapping[str, str] | None = None,
        data: bytes | RepeatableBody | None = None,
        json: JSONValue = None,
        params: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[Response, _Guard]]:
        """One request (GETs retried on transient failures), every failure a ServerError.

        ``budget`` is the total deadline in seconds, or None for the stall timeout only;
        ``what`` names the resource in a 404 message ("instance 1b3a...").
        """
        url = self.url(path)
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        fields = dict(headers or {})
        if json is not None:
            data = _json_module.dumps(json, allow_nan=False).encode("utf-8")
            fields.setdefault("Content-Type", "application/json")
        if budget is not None:
            budget = max(budget, 0.001)
        wait = self.settings.timeout if budget is None else min(self.settings.timeout, budget)
        with _Guard(budget, wait) as guard:
            with self._translated(method, url, guard):
                response = self._send(method, url, guard, fields, data)
            try:
                if response.status_code >= 400:
                    self._raise_for(response, method, what)
                yield response, guard
            finally:
                guard.let_go(response)

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | RepeatableBody | None = None,
        json: JSONValue = None,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        """A raw request for a route without a typed method; its answer is not checked.

        The body is read at once (at most MAX_JSON_BYTES) within the deadline into
        ``response.content``. Prefer the typed methods: they check the answer's shape.
        """
        with self._exchange(
            method,
            path,
            what=what,
            budget=self.settings.timeout,
            headers=headers,
            data=data,
            json=json,
            params=params,
        ) as (response, guard):
            response.content = bytes(self._read_capped(response, guard))
        return response

    def _read_capped(self, response: Response, guard: _Guard) -> bytearray:
        content = bytearray()
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > MAX_JSON_BYTES:
            raise _Reply(response.url, None).error(
                f"{announced} bytes of JSON, more than {_mib(MAX_JSON_BYTES)}"
            )
        for piece in self._body(response, guard):
            content += piece
            if len(content) > MAX_JSON_BYTES:
                raise _Reply(response.url, None).error(f"more than {_mib(MAX_JSON_BYTES)} of JSON")
        return content

    def _body(self, response: Response, guard: _Guard) -> Iterator[bytes]:
        """The answer's pieces; a failure while reading is reported as one while asking."""
        while True:
            with self._translated(response.method, response.url, guard):
                piece = response.read1(_READ_PIECE)
            if not piece:
                return
            yield piece

    def _send(
        self,
        method: str,
        url: str,
        guard: _Guard,
        fields: dict[str, str],
        data: bytes | RepeatableBody | None,
    ) -> Response:
        """Send, following a redirect only without a body and to the same origin."""
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._attempts(method, url, guard, fields, data)
            if not response.is_redirect:
                return response
            guard.let_go(response)
            location = _location(url, response.headers.get("Location", ""))
            if data is not None or method.upper() not in ("GET", "HEAD"):
                why = "of a request that carries a body"
            elif origin_of(location) != origin_of(url):
                why = "to another server"
            else:
                url = location  # a whole URL, query included
                continue
            raise RedirectError(
                f"{self._server()} redirected {method} {_path_of(url)} to "
                f"{redact_url(location)}; redirects {why} are not followed: use the final "
                "address as the server URL"
            )
        raise RedirectError(
            f"{self._server()} redirected {method} more than {MAX_REDIRECTS} times "
            f"(last to {redact_url(url)}); use the final address as the server URL"
        )

    def _attempts(
        self,
        method: str,
        url: str,
        guard: _Guard,
        fields: dict[str, str],
        data: bytes | RepeatableBody | None,
    ) -> Response:
        """One exchange; a GET or HEAD is repeated on a connection failure or a 502/503/504.

        POSTs are repeated by :meth:`_post_idempotent` only, where a repeat cannot duplicate
        data. A failed TLS handshake is not transient; a request past its deadline is not
        repeated, nor one whose Retry-After asks for a longer pause than the deadline leaves.
        """
        safe = method.upper() in ("GET", "HEAD")
        attempt = 0
        while True:
            try:
                response = self._exchange_once(method, url, guard, fields, data)
            except _TRANSPORT_ERRORS as exc:
                final = isinstance(exc, ssl.SSLError | ssl.CertificateError | ProxyError)
                if not safe or final or guard.expired or attempt >= self.settings.retries:
                    raise
                reason = _reason(exc)
                pause = self._backoff(attempt)
            else:
                status = response.status_code
                if not safe or status not in TRANSIENT_STATUSES or attempt >= self.settings.retries:
                    return response
                asked = _retry_after(response)
                left = guard.remaining()
                if guard.expired or (asked is not None and left is not None and asked > left):
                    return response  # a server asking for a pause past the deadline: its answer now
                pause = min(asked, MAX_RETRY_AFTER) if asked else self._backoff(attempt)
                reason = f"HTTP {status}"
                guard.let_go(response)
            attempt += 1
            logger.info(
                "retrying %s %s (%s), attempt %d", method, redact_url(url), reason, attempt + 1
            )
            self._sleep(guard.within(pause))

    @staticmethod
    def _backoff(attempt: int) -> float:
        """The first repeat at once, then 1 s, 2 s, 4 s... (as urllib3 and requests do)."""
        return 0.0 if attempt == 0 else BACKOFF_SECONDS * 2**attempt

    def _exchange_once(
        self,
        method: str,
        url: str,
        guard: _Guard,
        fields: dict[str, str],
        data: bytes | RepeatableBody | None,
    ) -> Response:
        headers: dict[str, str | bytes] = {
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
            **fields,
        }
        credential = self._credentials.for_url(url)
        if credential is not None:
            headers["Authorization"] = credential
        response = self.transport.request(
            method,
            url,
            headers=headers,
            body=data,
            length=len(data) if data is not None else None,
            timeout=guard.wait,
            on_socket=guard.attach,
        )
        if self.log_exchanges:
            logging.getLogger("pdf2dcm.http").info(
                "%s %s -> %d (%.3f s)",
                method,
                redact_url(url),
                response.status_code,
                response.elapsed,
            )
        return response

    @contextlib.contextmanager
    def _translated(self, method: str, url: str, guard: _Guard) -> Iterator[None]:
        try:
            yield
        except _TRANSPORT_ERRORS as exc:
            where = f"({method} {_path_of(url)})"
            if guard.expired:
                raise ServerUnreachableError(
                    f"no complete answer from {self._server()} within {guard.seconds:g} s "
                    f"{where}; allow a longer timeout or check the server"
                ) from exc
            if isinstance(exc, ssl.SSLError | ssl.CertificateError):
                raise ServerUnreachableError(_tls_message(self._server(), exc)) from exc
            if isinstance(exc, TimeoutError):
                raise ServerUnreachableError(
                    f"no answer from {self._server()} within {guard.wait:g} s {where}; "
                    "raise --timeout or check the server"
                ) from exc
            if isinstance(exc, ProxyError):
                raise ServerUnreachableError(f"cannot reach {self._server()}: {exc}") from exc
            if isinstance(exc, OSError):
                raise ServerUnreachableError(
                    f"cannot reach {self._server()}: {_reason(exc)}; is Orthanc running there?"
                ) from exc
            raise ServerError(
                f"request to {self._server()} failed {where}: {_reason(exc)}"
            ) from exc

    def _json(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        budget: float | None = None,
        whole_deadline: bool = True,
        **kwargs: Any,
    ) -> _Reply:
        """A JSON answer, read in pieces up to MAX_JSON_BYTES within the deadline."""
        limit = self.settings.timeout if budget is None else min(budget, self.settings.timeout)
        with self._exchange(
            method, path, what=what, budget=limit if whole_deadline else None, **kwargs
        ) as (response, guard):
            reply = _Reply(response.url or self.url(path), None)
            content = self._read_capped(response, guard)
        if not content.strip():
            raise reply.error("an empty body where JSON was expected")
        try:
            reply.value = _json_module.loads(content)
        except (ValueError, RecursionError):
            raise reply.error("not JSON; is this an Orthanc server?") from None
        return reply

    def _post_idempotent(
        self,
        path: str,
        body: RepeatableBody,
        *,
        headers: dict[str, str],
        on_retry: Callable[[], None] | None = None,
    ) -> _Reply:
        """POST where a repeat cannot create a duplicate, retried on transient failures."""
        attempt = 0
        while True:
            try:
                return self._json("POST", path, data=body, headers=headers, whole_deadline=False)
            except ServerUnreachableError as exc:
                if attempt >= self.settings.retries:
                    raise
                reason = str(exc)
            except ServerFailedError as exc:
                if exc.status not in TRANSIENT_STATUSES or attempt >= self.settings.retries:
                    raise
                reason = f"HTTP {exc.status}"
            attempt += 1
            logger.info(
                "retrying POST %s (%s), attempt %d", redact_url(self.url(path)), reason, attempt + 1
            )
            self._sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            if on_retry is not None:
                on_retry()

    def _raise_for(self, response: Response, method: str, what: str | None) -> None:
        status = response.status_code
        message, explanation, orthanc_status = _orthanc_error(response)
        path = _path_of(response.url)
        fields: dict[str, Any] = {
            "status": status,
            "url": redact_url(response.url or ""),
            "orthanc_message": message,
            "orthanc_details": explanation,
            "orthanc_status": orthanc_status,
        }
        said = ": ".join(part for part in (message, explanation) if part)
        said = f" ({said})" if said else ""
        if status in (401, 403):
            who = self.settings.username
            target = f"for {who} at {self._server()}" if who else f"at {self._server()}"
            hint = "" if who or self.settings.token else "; give --username or --token"
            raise AuthenticationError(f"authentication failed {target}{hint}", **fields)
        if status == 404:
            name = what or path
            raise NotFoundError(f"{name} not found on {self._server()}{said}", **fields)
        if status < 500:
            raise ServerRefusedError(
                f"{self._server()} refused {method} {path}: HTTP {status}{said}", **fields
            )
        raise ServerFailedError(
            f"{self._server()} failed {method} {path}: HTTP {status}{said}", **fields
        )

    @contextlib.contextmanager
    def _download(
        self, path: str, *, what: str, headers: dict[str, str] | None = None
    ) -> Iterator[Download]:
        with self._exchange(
            "GET", path, what=what, budget=self.settings.timeout, headers=headers
        ) as (response, guard):
            guard.release()
            yield Download(response, what, self._server())

    # --- Orthanc operations ----------------------------------------------------------------

    def system(self) -> SystemInfo:
        """``/system``: proves the server is an Orthanc that accepts our credentials."""
        reply = self._json("GET", "/system")
        data = reply.obj()
        return SystemInfo(
            version=reply.string(data, "Version"),
            name=reply.optional_string(data, "Name") or "",
            api_version=reply.integer(data, "ApiVersion", 0) or None,
        )

    def store_instance(
        self, body: RepeatableBody, *, on_retry: Callable[[], None] | None = None
    ) -> StoredInstance:
        """``POST /instances`` with a DICOM file."""
        reply = self._post_idempotent(
            "/instances",
            body,
            headers={"Content-Type": "application/dicom"},
            on_retry=on_retry,
        )
        return reply.stored(reply.obj())

    def create_dicom(
        self, body: RepeatableBody, *, on_retry: Callable[[], None] | None = None
    ) -> StoredInstance:
        """``POST /tools/create-dicom`` with a JSON body that carries its own UIDs."""
        reply = self._post_idempotent(
            "/tools/create-dicom",
            body,
            headers={"Content-Type": "application/json"},
            on_retry=on_retry,
        )
        return reply.stored(reply.obj())

    def stow(self, dicom: RepeatableBody) -> StowAnswer:
        """STOW-RS of one DICOM file to the DICOMweb root, as multipart/related.

        The answer is read leniently: archives other than Orthanc may answer with an empty
        body or without a failure list, which means success. A body that is there but is not
        JSON is an :class:`~pdf2dcm.errors.UnexpectedReplyError`: an answer that cannot be read
        is never taken for success.
        """
        boundary = f"pdf2dcm-{secrets.token_hex(12)}"
        opening = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
        closing = f"\r\n--{boundary}--\r\n".encode("ascii")

        def chunks() -> Iterator[bytes]:
            yield opening
            yield from dicom
            yield closing

        body = RepeatableBody(len(opening) + dicom.length + len(closing), chunks)
        try:
            reply = self._post_idempotent(
                f"{self.settings.stow_root}/studies",
                body,
                headers={
                    "Content-Type": f'multipart/related; type="application/dicom"; '
                    f"boundary={boundary}",
                    "Accept": "application/dicom+json",
                },
            )
        except UnexpectedReplyError as exc:
            if "empty body" in str(exc):
                return StowAnswer(failure_reasons=())
            raise
        failed = reply.obj().get("00081198")
        items = failed.get("Value") if isinstance(failed, dict) else None
        reasons: list[str] = []
        for item in items if isinstance(items, list) else []:
            reason = item.get("00081197") if isinstance(item, dict) else None
            values = reason.get("Value") if isinstance(reason, dict) else None
            first = values[0] if isinstance(values, list) and values else "?"
            reasons.append(str(first))
        return StowAnswer(failure_reasons=tuple(reasons))

    def lookup(self, uid: str) -> list[LookupMatch]:
        """Orthanc resources whose DICOM identifier is ``uid``."""
        reply = self._json(
            "POST",
            "/tools/lookup",
            data=uid.encode("utf-8"),
            headers={"Content-Type": "text/plain"},
        )
        matches = []
        for item in reply.items():
            kind = reply.string(item, "Type")
            id_kind = _ID_KINDS.get(kind, "instance")
            matches.append(LookupMatch(type=kind, id=reply.orthanc_id(item, "ID", id_kind)))
        return matches

    def _get(self, kind: IdKind, orthanc_id: str, tail: str = "") -> _Reply:
        """GET one resource's route; a 404 names the resource."""
        segment = path_segment(orthanc_id, kind)
        route = {"patient": "patients", "study": "studies", "series": "series"}.get(
            kind, "instances"
        )
        return self._json("GET", f"/{route}/{segment}{tail}", what=f"{kind} {segment}")

    def patient(self, patient_id: str) -> Patient:
        """``GET /patients/{id}``."""
        reply = self._get("patient", patient_id)
        return reply.patient(reply.obj())

    def study(self, study_id: str) -> Study:
        """``GET /studies/{id}``, with the patient's main tags."""
        reply = self._get("study", study_id)
        return reply.study(reply.obj())

    def series(self, series_id: str) -> Series:
        """``GET /series/{id}``."""
        reply = self._get("series", series_id)
        return reply.series(reply.obj())

    def instance(self, instance_id: str) -> Instance:
        """``GET /instances/{id}``."""
        reply = self._get("instance", instance_id)
        return reply.instance(reply.obj())

    def series_instances(self, series_id: str) -> list[Instance]:
        """The instances of a series, with their main tags."""
        reply = self._get("series", series_id, "/instances")
        return [reply.instance(item) for item in reply.items()]

    def study_instances(self, study_id: str) -> list[Instance]:
        """The instances of a study, with their main tags."""
        reply = self._get("study", study_id, "/instances")
        return [reply.instance(item) for item in reply.items()]

    def study_series(self, study_id: str) -> list[Series]:
        """The series of a study, with their main tags."""
        reply = self._get("study", study_id, "/series")
        return [reply.series(item) for item in reply.items()]

    @overload
    def find(
        self,
        level: Level,
        query: Mapping[str, str],
        *,
        limit: int | None = None,
        expand: Literal[True] = True,
    ) -> list[Resource]: ...

    @overload
    def find(
        self,
        level: Level,
        query: Mapping[str, str],
        *,
        limit: int | None = None,
        expand: Literal[False],
    ) -> list[str]: ...

    def find(
        self,
        level: Level,
        query: Mapping[str, str],
        *,
        limit: int | None = None,
        expand: bool = True,
    ) -> list[Resource] | list[str]:
        """``POST /tools/find``: resources of ``level`` whose main tags match ``query``.

        Expanded, each is a typed resource (a Study carries PatientMainDicomTags too);
        otherwise only the Orthanc IDs.
        """
        request: dict[str, JSONValue] = {
            "Level": level,
            "Query": dict(query),
            "Expand": expand,
        }
        if limit is not None:
            request["Limit"] = limit
        reply = self._json("POST", "/tools/find", json=request)
        if expand:
            return [reply.resource(level, item) for item in reply.items()]
        if not isinstance(reply.value, list):
            raise reply.error(f"the answer is {_kind(reply.value)}, not a JSON array")
        kind = _ID_KINDS[level]
        return [reply.orthanc_id({"ID": item}, "ID", kind) for item in reply.value]

    def find_worklist(self, modality: str, query: Mapping[str, str]) -> list[dict[str, str]]:
        """``POST /modalities/{name}/find-worklist``: the scheduled procedures that match.

        Orthanc answers in its simplified JSON (keyword -> value); each answer keeps its
        top-level text values (sequences are left out).
        """
        reply = self._json(
            "POST",
            f"/modalities/{path_segment(modality)}/find-worklist",
            json=dict(query),
            what=f"modality {modality}",
        )
        return [
            {key: value for key, value in item.items() if isinstance(value, str)}
            for item in reply.items()
        ]

    def default_encoding(self) -> str:
        """``GET /tools/default-encoding``: the character set Orthanc converts DICOM text to
        when it has none other (``Latin1`` unless configured, ``Utf8``, ``Cyrillic``...),
        worklist answers included."""
        raw = self._text("/tools/default-encoding", what="the default encoding", max_bytes=256)
        text = raw.decode("ascii", errors="replace").strip()
        if not text or not text.isalnum():
            raise UnexpectedReplyError(
                f"unexpected reply from {self.settings.url}/tools/default-encoding: "
                f"{shown(text)} is not an encoding's name"
            )
        return text

    def instance_content(
        self, instance_id: str, tag: str, *, max_bytes: int = MAX_ATTRIBUTE_BYTES
    ) -> bytes:
        """The raw value of one attribute (``gggg-eeee``) of an instance, at most ``max_bytes``.

        Raises NotFoundError when the instance or the attribute does not exist.
        """
        segment = path_segment(instance_id, "instance")
        return self._text(
            f"/instances/{segment}/content/{_tag_segment(tag)}",
            what=f"instance {segment}",
            max_bytes=max_bytes,
            subject=f"attribute {tag}",
        )

    def _text(self, path: str, *, what: str, max_bytes: int, subject: str = "the answer") -> bytes:
        """A small non-JSON answer, read within the deadline and refused beyond ``max_bytes``."""
        with self._exchange("GET", path, what=what, budget=self.settings.timeout) as (
            response,
            guard,
        ):
            content = bytearray()
            for piece in self._body(response, guard):
                content += piece
                if len(content) > max_bytes:
                    raise UnexpectedReplyError(
                        f"unexpected reply from {redact_url(response.url)}: {subject} is "
                        f"longer than {max_bytes} bytes"
                    )
        return bytes(content)

    def instance_metadata(self, instance_id: str, name: str) -> str | None:
        """One item of Orthanc's metadata of an instance (``SopClassUid``, ``TransferSyntax``,
        ...), read from its index without opening the file; None when it is not recorded.
        """
        segment = path_segment(instance_id, "instance")
        try:
            raw = self._text(
                f"/instances/{segment}/metadata/{path_segment(name)}",
                what=f"metadata {name} of instance {segment}",
                max_bytes=MAX_ATTRIBUTE_BYTES,
            )
        except NotFoundError:
            return None
        return raw.decode("utf-8", errors="replace")

    def instance_tags(self, instance_id: str) -> dict[str, str | None]:
        """``GET /instances/{id}/tags?simplify``: the top-level attributes by keyword.

        Text comes decoded by Orthanc; a binary, too long or sequence value is None.
        """
        segment = path_segment(instance_id, "instance")
        reply = self._json("GET", f"/instances/{segment}/tags?simplify", what=f"instance {segment}")
        return {
            key: value if isinstance(value, str) else None for key, value in reply.obj().items()
        }

    def instance_header_bytes(self, instance_id: str, max_bytes: int) -> bytes:
        """The first ``max_bytes`` bytes of an instance's DICOM file (or all, if shorter)."""
        segment = path_segment(instance_id, "instance")
        with self._download(
            f"/instances/{segment}/file", what=f"the file of instance {segment}"
        ) as download:
            content = bytearray()
            while len(content) < max_bytes:
                block = download.read(min(_READ_PIECE, max_bytes - len(content)))
                if not block:
                    break
                content += block
        return bytes(content)

    @contextlib.contextmanager
    def instance_document(self, instance_id: str) -> Iterator[Download]:
        """The raw value of (0042,0011), streamed uncompressed."""
        segment = path_segment(instance_id, "instance")
        with self._download(
            f"/instances/{segment}/content/0042-0011",
            what=f"the document of instance {segment}",
            # Orthanc would gzip the PDF on the fly: slow, and PDFs barely compress.
            headers={"Accept-Encoding": "identity"},
        ) as download:
            yield download

    # --- jobs -----------------------------------------------------------------------------

    def job(self, job_id: str, *, budget: float | None = None) -> JobStatus:
        """``GET /jobs/{id}``; ``budget`` shortens the request's deadline."""
        segment = path_segment(job_id, "job")
        reply = self._json("GET", f"/jobs/{segment}", what=f"job {segment}", budget=budget)
        return reply.job(reply.obj())

    def jobs(self) -> list[JobStatus]:
        """Every job the server still knows, expanded."""
        reply = self._json("GET", "/jobs", params={"expand": ""})
        return [reply.job(item) for item in reply.items()]

    def job_action(self, job_id: str, action: str) -> None:
        """``POST /jobs/{id}/{action}`` (cancel, pause, resume, resubmit)."""
        segment = path_segment(job_id, "job")
        with self._exchange(
            "POST",
            f"/jobs/{segment}/{path_segment(action)}",
            what=f"job {segment}",
            budget=self.settings.timeout,
            data=b"",
        ):
            pass

    def targets(self, target: Literal["modality", "peer"]) -> list[str]:
        """The names of the DICOM modalities or Orthanc peers the server knows."""
        route = "modalities" if target == "modality" else "peers"
        reply = self._json("GET", f"/{route}")
        if not isinstance(reply.value, list) or not all(isinstance(n, str) for n in reply.value):
            raise reply.error("the answer is not a JSON array of names")
        return [name for name in reply.value if isinstance(name, str)]

    def store_to(
        self, target: Literal["modality", "peer"], name: str, resources: Sequence[str]
    ) -> str:
        """Start an asynchronous C-STORE (modality) or HTTP store (peer); the job's ID."""
        route = "modalities" if target == "modality" else "peers"
        reply = self._json(
            "POST",
            f"/{route}/{path_segment(name)}/store",
            json={"Resources": list(resources), "Asynchronous": True},
            what=f"{target} {name}",
        )
        return reply.orthanc_id(reply.obj(), "ID", "job")

    def submit_archive(self, kind: Literal["patient", "study", "series"], orthanc_id: str) -> str:
        """Start an asynchronous ZIP archive of a patient, study or series; the job's ID.

        Its output is then read with :meth:`job_output` once the job has succeeded.
        """
        route = {"patient": "patients", "study": "studies", "series": "series"}[kind]
        segment = path_segment(orthanc_id, kind)
        reply = self._json(
            "POST",
            f"/{route}/{segment}/archive",
            json={"Asynchronous": True},
            what=f"{kind} {segment}",
        )
        return reply.orthanc_id(reply.obj(), "ID", "job")

    @contextlib.contextmanager
    def job_output(self, job_id: str, key: str = "archive") -> Iterator[Download]:
        """A finished job's output (``/jobs/{id}/{key}``, e.g. an archive), streamed."""
        segment = path_segment(job_id, "job")
        with self._download(
            f"/jobs/{segment}/{path_segment(key)}", what=f"output '{key}' of job {segment}"
        ) as download:
            yield download


def _location(url: str, location: str) -> str:
    """A redirect's target as a whole URL; one that is not a URL is the server's error."""
    try:
        target = urljoin(url, location)
        origin_of(target)
        urlsplit(target).port  # noqa: B018  # raises on a port that is not a number
    except ValueError:
        raise ServerError(
            f"{redact_url(url)} redirected to an address that is not a URL ({shown(location)})"
        ) from None
    return target


def _mib(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB"


def _orthanc_error(response: Response) -> tuple[str | None, str | None, int | None]:
    """Orthanc's JSON error description, present only with ``HttpDescribeErrors``."""
    content = bytearray()
    with contextlib.suppress(*_TRANSPORT_ERRORS):
        while piece := response.read1(_READ_PIECE):
            content += piece
            if len(content) > _READ_PIECE:
                return None, None, None
    try:
        body = _json_module.loads(content or b"null")
    except (ValueError, RecursionError):
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    status = body.get("OrthancStatus")
    message, details = body.get("Message"), body.get("Details")
    return (
        message[:200] if isinstance(message, str) and message else None,
        details[:200] if isinstance(details, str) and details else None,
        status if isinstance(status, int) else None,
    )


def _path_of(url: str | None) -> str:
    return urlsplit(url or "").path or "/"


def _tls_message(server: str, exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"TLS verification failed for {server}: certificate verify failed; "
            "give the server's CA with --ca-bundle FILE"
        )
    plain = ("WRONG_VERSION_NUMBER", "record layer failure", "unknown protocol", "http request")
    if any(marker.lower() in text.lower() for marker in plain):
        return (
            f"the server at {server} does not speak TLS on this port; use http:// or the "
            "server's https port"
        )
    return f"TLS handshake with {server} failed: {_reason(exc)}"


def _reason(exc: Exception) -> str:
    """A short cause of a transport failure, without errno numbers or the request line."""
    text = redact_url(str(exc))
    for marker in ("Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            return marker.lower()
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was closed by the server"
    if "Connection reset" in text:
        return "connection reset by peer"
    return text.splitlines()[0][:200] if text else type(exc).__name__
