"""One in-process fake archive for the fast loop: the only hand-written HTTP server of the tests.

It does three things, tried in this order for every request:

1. ``answers``: a queue of ``(status, body)`` answered to whatever comes next (for a client
   test that scripts a conversation: 503 first, then 200);
2. ``routes``: ``(METHOD or "*", path)`` to an answer (an :data:`Action`, bytes, a JSON value,
   a ``(status, body)`` pair, or a list of them used in turn, the last one repeating); the path
   is matched with its query first, then without it. Actions may misbehave: redirect, trickle,
   stall, cut the body short, stream without end (what a real Orthanc cannot be made to do);
3. ``models``: functions of the request that answer for an archive a test describes in its
   own terms (``None`` to pass the request on);
4. the archive: ``POST /instances`` keeps what it is sent as Orthanc does, keyed by patient,
   study, series and SOPInstanceUID; the same four again is answered ``AlreadyStored`` and the
   first document is kept, while the same SOPInstanceUID under another series is stored a
   second time (Orthanc's behaviour, which the client's conflict rules guard against).
   ``/tools/lookup``, the resources' JSON and ``/instances/{id}/content/gggg-eeee`` answer
   from what is stored.

Anything else is ``default`` (404 ``Unknown resource``). Every request is recorded with its
body; one request per connection, so a misbehaving answer never poisons the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple

import pydicom

STOP = threading.Event()


class Request(NamedTuple):
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


Action = Callable[[Request, BinaryIO], None]


def head(out: BinaryIO, status: int, headers: dict[str, str] | None = None) -> None:
    lines = [f"HTTP/1.1 {status} Scripted", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    out.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    out.flush()


def reply(
    status: int = 200, body: bytes | object = b"", headers: dict[str, str] | None = None
) -> Action:
    """A complete answer; a non-bytes body is sent as JSON."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    kind = {} if isinstance(body, bytes) else {"Content-Type": "application/json"}

    def act(_request: Request, out: BinaryIO) -> None:
        head(out, status, {"Content-Length": str(len(payload)), **kind, **(headers or {})})
        out.write(payload)

    return act


def redirect(status: int, location: str) -> Action:
    return reply(status, b"", {"Location": location})


def trickle(body: bytes, interval: float, *, in_headers: bool = False) -> Action:
    """The answer one byte at a time, ``interval`` seconds apart (headers too, if asked)."""

    def act(_request: Request, out: BinaryIO) -> None:
        text = (
            f"HTTP/1.1 200 Scripted\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        prefix, rest = (b"", text + body) if in_headers else (text, body)
        out.write(prefix)
        out.flush()
        for byte in rest:
            if STOP.wait(interval):
                return
            out.write(bytes([byte]))
            out.flush()

    return act


def stall(body_prefix: bytes = b"", declared: int | None = None) -> Action:
    """Headers (announcing ``declared`` bytes) and ``body_prefix``, then silence."""

    def act(_request: Request, out: BinaryIO) -> None:
        if declared is not None:
            head(out, 200, {"Content-Length": str(declared)})
            out.write(body_prefix)
            out.flush()
        STOP.wait(30)

    return act


def truncated(body: bytes, declared: int) -> Action:
    """Announce ``declared`` bytes, send ``body`` (fewer), and close."""

    def act(_request: Request, out: BinaryIO) -> None:
        head(out, 200, {"Content-Length": str(declared)})
        out.write(body)
        out.flush()

    return act


def endless_chunked(piece: bytes = b"[" * 65536) -> Action:
    """A chunked answer that never ends."""

    def act(_request: Request, out: BinaryIO) -> None:
        head(out, 200, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        while not STOP.is_set():
            out.write(chunk)

    return act


def _action(spec: object) -> Action:
    if callable(spec):
        return spec
    if isinstance(spec, tuple):
        status, body = spec
        return reply(status, body)
    return reply(200, spec)


def orthanc_id(*parts: str) -> str:
    """An ID of Orthanc's shape, derived from the UIDs as Orthanc derives its own."""
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


class _Handler(socketserver.StreamRequestHandler):
    server: FakeOrthanc

    def setup(self) -> None:
        super().setup()
        # Headers and body are written apart: without this, each answer's body waits for
        # the client's delayed acknowledgement of its headers (40 ms on Linux).
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        if self.rfile.peek(1)[:1] == b"\x16":  # type: ignore[attr-defined]  # a TLS handshake sent to plain HTTP
            reply(400, b"plain HTTP here")(Request("", "", b"", {}), self.wfile)  # type: ignore[arg-type]
            return  # a TLS handshake sent to plain HTTP
        line = self.rfile.readline(65537).decode("latin-1").strip()
        if not line:
            return
        method, target, _version = ([*line.split(" "), "", ""])[:3]
        headers: dict[str, str] = {}
        while (header := self.rfile.readline(65537).decode("latin-1").strip()) != "":
            name, _, value = header.partition(":")
            headers[name.strip()] = value.strip()
        body = b""
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline().strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        elif headers.get("Content-Length"):
            body = self.rfile.read(int(headers["Content-Length"]))
        request = Request(method, target, body, headers)
        with self.server.lock:
            self.server.received.append(request)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.server.answer(request)(request, self.wfile)  # type: ignore[arg-type]


class FakeOrthanc(socketserver.ThreadingTCPServer):
    """The fake archive; see the module's docstring for the order in which it answers."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    """socketserver's backlog of 5 overflowed under a client's eight parallel connections:
    a dropped SYN is sent again only after a second (one ``ls --json`` took 1.1 s so)."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if context is not None else "http"
        self.answers: list[tuple[int, bytes]] = []
        self.routes: dict[tuple[str, str], Any] = {
            # What a watcher's start checks ask; a test may route it otherwise.
            ("GET", "/system"): [{"Version": "1.12.0", "Name": "FAKE", "ApiVersion": 24}],
        }
        self.models: list[Callable[[Request], Action | None]] = []
        """Archives of another shape a test describes (``ls``'s documents by date): asked after
        the routes, before the stored instances; ``None`` passes the request on."""
        self.received: list[Request] = []
        self.default: Action = reply(404, {"Message": "Unknown resource"})
        self.lock = threading.Lock()
        self.instances: dict[str, bytes] = {}
        """The EncapsulatedDocument value of each stored instance, pad byte included."""
        self.files: dict[str, bytes] = {}
        """``GET /instances/{id}/file``: each stored instance's file as it was sent."""
        self.default_encoding = "Utf8"
        """``GET /tools/default-encoding``: configured as the README advises for worklists."""
        self.datasets: dict[str, pydicom.Dataset] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        """GET /patients|studies|series|instances/{id}: what Orthanc answers, in short."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    @property
    def asked(self) -> list[tuple[str, str]]:
        return [(request.method, request.path) for request in self.received]

    @property
    def headers(self) -> list[dict[str, str]]:
        return [request.headers for request in self.received]

    def route(self, method: str, path: str, *answers: object) -> None:
        """Answer ``method path`` with ``answers`` in turn, the last one repeating."""
        self.routes[(method, path)] = list(answers)

    def answer(self, request: Request) -> Action:
        with self.lock:
            if self.answers:
                return _action(self.answers.pop(0))
            path = request.path.split("?")[0]
            for key in ((request.method, request.path), (request.method, path), ("*", path)):
                if key in self.routes:
                    spec = self.routes[key]
                    if isinstance(spec, list):
                        spec = spec.pop(0) if len(spec) > 1 else spec[0]
                    return _action(spec)
            for model in self.models:
                if (action := model(request)) is not None:
                    return action
            return self._archive(request, path) or self.default

    # --- the archive -------------------------------------------------------------------------

    def _archive(self, request: Request, path: str) -> Action | None:
        if request.method == "POST" and path == "/instances":
            return self._store(request.body)
        if request.method == "POST" and path == "/tools/lookup":
            return reply(200, self._lookup(request.body.decode("utf-8", "replace").strip()))
        if request.method == "POST" and path == "/tools/find":
            return reply(200, [])
        if request.method != "GET":
            return None
        if path == "/tools/default-encoding":
            return reply(200, self.default_encoding.encode(), {"Content-Type": "text/plain"})
        stored = re.fullmatch(r"/instances/([0-9a-f-]+)/file", path)
        if stored and stored[1] in self.files:
            return reply(200, self.files[stored[1]], {"Content-Type": "application/dicom"})
        return self._content(path) or self._resource(path)

    def _content(self, path: str) -> Action | None:
        match = re.fullmatch(r"/instances/([0-9a-f-]+)/content/([0-9a-f]{4})-([0-9a-f]{4})", path)
        if match and match[1] in self.datasets:
            element = self.datasets[match[1]].get(int(match[2] + match[3], 16))
            if element is None:
                return None
            value = element.value
            if isinstance(value, int):
                raw = struct.pack("<I", value)
            else:
                raw = value if isinstance(value, bytes) else str(value).encode()
            return reply(200, raw, {"Content-Type": "application/octet-stream"})
        return None

    def _resource(self, path: str) -> Action | None:
        if path in self.resources:
            return reply(200, self.resources[path])
        children = re.fullmatch(r"/(studies|series)/([0-9a-f-]+)/(series|instances)", path)
        if children and f"/{children[1]}/{children[2]}" in self.resources:
            return reply(200, self._children(children[1], children[2], children[3]))
        return None

    def _children(self, route: str, parent: str, kind: str) -> list[dict[str, Any]]:
        series = self.resources[f"/studies/{parent}"]["Series"] if route == "studies" else [parent]
        if kind == "series":
            return [self.resources[f"/series/{each}"] for each in series]
        return [
            self.resources[f"/instances/{sop}"]
            for each in series
            for sop in self.resources[f"/series/{each}"]["Instances"]
        ]

    def _store(self, body: bytes) -> Action:
        try:
            ds = pydicom.dcmread(io.BytesIO(body))
            uids = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
        except Exception:  # Orthanc answers any unreadable body this way
            return reply(400, {"Message": "Bad file format"})
        patient_id = str(ds.get("PatientID", ""))
        patient = orthanc_id(patient_id)
        study = orthanc_id(patient_id, uids[0])
        series = orthanc_id(study, uids[1])
        instance = orthanc_id(series, uids[2])
        status = "AlreadyStored" if instance in self.instances else "Success"
        if status == "Success":
            self.instances[instance] = bytes(ds.get("EncapsulatedDocument", b""))
            self.datasets[instance] = ds
            self.files[instance] = body
            self._file(ds, patient, study, series, instance)
        answer = {
            "ID": instance,
            "ParentPatient": patient,
            "ParentStudy": study,
            "ParentSeries": series,
            "Path": f"/instances/{instance}",
            "Status": status,
        }
        return reply(200, answer)

    def _file(self, ds: pydicom.Dataset, patient: str, study: str, series: str, sop: str) -> None:
        patient_tags = {"PatientID": str(ds.get("PatientID", ""))}
        known = self.resources.get(f"/patients/{patient}", {"Studies": []})
        self.resources[f"/patients/{patient}"] = {
            "ID": patient,
            "MainDicomTags": patient_tags,
            "Studies": sorted({*known["Studies"], study}),
        }
        known = self.resources.get(f"/studies/{study}", {"Series": []})
        self.resources[f"/studies/{study}"] = {
            "ID": study,
            "ParentPatient": patient,
            "MainDicomTags": {"StudyInstanceUID": str(ds.StudyInstanceUID)},
            "PatientMainDicomTags": patient_tags,
            "Series": sorted({*known["Series"], series}),
        }
        known = self.resources.get(f"/series/{series}", {"Instances": []})
        self.resources[f"/series/{series}"] = {
            "ID": series,
            "ParentStudy": study,
            "MainDicomTags": {
                "SeriesInstanceUID": str(ds.SeriesInstanceUID),
                "SeriesNumber": str(ds.get("SeriesNumber", "")),
                "Modality": str(ds.get("Modality", "")),
            },
            "Instances": sorted({*known["Instances"], sop}),
        }
        self.resources[f"/instances/{sop}"] = {
            "ID": sop,
            "ParentSeries": series,
            "MainDicomTags": {
                "SOPInstanceUID": str(ds.SOPInstanceUID),
                "InstanceNumber": str(ds.get("InstanceNumber", "")),
            },
        }

    def _lookup(self, uid: str) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        kinds = (
            ("Study", "studies", "StudyInstanceUID"),
            ("Series", "series", "SeriesInstanceUID"),
        )
        for kind, route, key in (*kinds, ("Instance", "instances", "SOPInstanceUID")):
            for path, resource in self.resources.items():
                if path.startswith(f"/{route}/") and resource["MainDicomTags"].get(key) == uid:
                    found.append({"Type": kind, "ID": resource["ID"], "Path": path})
        return found


@contextlib.contextmanager
def serving(context: ssl.SSLContext | None = None) -> Iterator[FakeOrthanc]:
    """A started fake archive; stopped, with its stalled answers released, after the block."""
    STOP.clear()
    server = FakeOrthanc(context)
    thread = threading.Thread(target=server.serve_forever, args=(0.002,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        STOP.set()
        server.shutdown()
        server.server_close()


def serve() -> Iterator[FakeOrthanc]:
    """:func:`serving` as a generator, for ``yield from`` in a fixture."""
    with serving() as server:
        yield server
