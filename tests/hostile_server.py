"""A scripted HTTP server that misbehaves on demand: what a real Orthanc cannot be made to do.

Each route is a function given the parsed request and the raw socket file; it may answer
well, answer with the wrong shape, redirect, trickle bytes, stall, cut the body short or
stream without end. Every request is recorded (method, path, headers, body). One request
per connection, so a misbehaving answer never poisons the next one.
"""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

STOP = threading.Event()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


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

    def act(_request: Request, out: BinaryIO) -> None:
        head(out, status, {"Content-Length": str(len(payload)), **(headers or {})})
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
    """A chunked answer that never ends; records how many bytes went out."""

    def act(_request: Request, out: BinaryIO) -> None:
        head(out, 200, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        while not STOP.is_set():
            out.write(chunk)
            SENT.append(len(piece))

    return act


SENT: list[int] = []


class _Handler(socketserver.StreamRequestHandler):
    server: HostileServer

    def handle(self) -> None:
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
        request = Request(method, target, headers, body)
        self.server.received.append(request)
        path = target.split("?")[0]
        action = self.server.routes.get((method, path)) or self.server.routes.get(("*", path))
        if isinstance(action, list):
            action = action.pop(0) if len(action) > 1 else action[0]
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            (action or reply(404))(request, self.wfile)  # type: ignore[arg-type]


class HostileServer(socketserver.ThreadingTCPServer):
    """``routes`` maps (METHOD or ``*``, path) to an action, or a list used in turn."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[tuple[str, str], Action | list[Action]] = {}
        self.received: list[Request] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def serve() -> Iterator[HostileServer]:
    """A started server (for a fixture); stopped, with its stalled answers released, after."""
    STOP.clear()
    SENT.clear()
    server = HostileServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        STOP.set()
        server.shutdown()
        server.server_close()
        time.sleep(0.05)
