"""A small real HTTP server that answers from a script, for what Orthanc cannot do on demand.

Orthanc cannot be made to answer 503 on the first try and 200 on the second, or to report a
job's states in a chosen order; this server does, and records every request with its body.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from tests.serve import serving


class Scripted(ThreadingHTTPServer):
    answers: list[tuple[int, bytes]]
    received: list[tuple[str, str, bytes, dict[str, str]]]


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append((self.command, self.path, body, dict(self.headers)))
        status, payload = self.server.answers.pop(0) if self.server.answers else (200, b"{}")
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Scripted]:
    httpd = Scripted(("127.0.0.1", 0), Handler)
    httpd.answers, httpd.received = [], []
    with serving(httpd):
        yield httpd


def client_for(server: Scripted, **kwargs: Any) -> OrthancClient:
    host, port = server.server_address[:2]
    settings = resolve_settings(url=f"http://{host!s}:{port}", environ={}, **kwargs)
    return OrthancClient(settings, sleep=lambda _seconds: None)
