"""The HTTP transport: connections kept and checked, bodies decoded exactly, proxies chosen
as the environment says. The fake archive closes every connection after one answer; the
server here keeps them open, as Orthanc does, and counts them."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from pdf2dcm.errors import ServerError
from pdf2dcm.transport import (
    BodyLengthError,
    DecodeError,
    ProxyError,
    Response,
    Transport,
    proxy_for,
)

Answer = Callable[[bytes], bytes]
"""The bytes to write back for one request (its request line and headers, its body)."""


class KeepAlive:
    """A server that answers each request in turn and keeps the connection open, or closes
    it after ``close_after`` answers."""

    def __init__(self, answers: list[bytes], close_after: int | None = None) -> None:
        self.answers = answers
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        # A client that gives up mid-request (a body refused for its length) ends the talk.
        with contextlib.suppress(OSError, IndexError, ValueError):
            self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            for _ in range(self.close_after or 1_000_000):
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + reader.read(length))
                conn.sendall(self.answers.pop(0))

    def close(self) -> None:
        self._listener.close()


@contextmanager
def keep_alive(answers: list[bytes], close_after: int | None = None) -> Iterator[KeepAlive]:
    server = KeepAlive(answers, close_after)
    try:
        yield server
    finally:
        server.close()


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    fields = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(fields) + "\r\n\r\n").encode() + body


def chunked(*pieces: bytes) -> bytes:
    framed = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"


def body_of(response: Response, size: int = 1000) -> bytes:
    data = b"".join(response.iter_content(size))
    response.close()
    return data


def get(transport: Transport, url: str) -> Response:
    return transport.request("GET", url, headers={}, timeout=5)


def test_connections_are_kept_for_the_next_request() -> None:
    with keep_alive([answer(b"one"), chunked(b"tw", b"o"), answer(b"three")]) as server:
        transport = Transport()
        assert body_of(get(transport, f"{server.url}/a")) == b"one"
        assert body_of(get(transport, f"{server.url}/b")) == b"two"
        assert body_of(get(transport, f"{server.url}/c")) == b"three"
        transport.close()
    assert server.connections == 1
    assert [r.split(b" ")[1] for r in server.requests] == [b"/a", b"/b", b"/c"]


def test_an_answer_not_read_to_its_end_gives_up_its_connection() -> None:
    with keep_alive([answer(b"x" * 5000), answer(b"next")]) as server:
        transport = Transport()
        response = get(transport, f"{server.url}/a")
        assert response.read1(10) == b"x" * 10
        response.close()
        assert body_of(get(transport, f"{server.url}/b")) == b"next"
    assert server.connections == 2


def test_a_connection_the_server_closed_while_idle_is_not_written_to() -> None:
    """A POST is not repeated by the transport: it must not go out on a closed connection."""
    with keep_alive([answer(b"first"), answer(b"stored")], close_after=1) as server:
        transport = Transport()
        assert body_of(get(transport, f"{server.url}/a")) == b"first"
        idle = next(iter(transport._idle.values()))[0]
        assert idle.sock is not None
        assert idle.sock.recv(1, socket.MSG_PEEK) == b""  # the server's close has arrived
        response = transport.request(
            "POST", f"{server.url}/instances", headers={}, body=b"document", timeout=5
        )
        assert body_of(response) == b"stored"
    assert server.requests[-1].endswith(b"\r\n\r\ndocument")
    assert server.connections == 2


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),
    ],
)
def test_compressed_answers_are_decoded_exactly(
    encoding: str, pack: Callable[[bytes], bytes]
) -> None:
    original = os.urandom(300_000) + b"\0" * 2_000_000 + os.urandom(1000)
    packed = pack(original)
    with keep_alive([answer(packed, f"Content-Encoding: {encoding}")]) as server:
        response = get(Transport(), f"{server.url}/file")
        pieces = list(response.iter_content(65536))
    assert b"".join(pieces) == original
    assert max(map(len, pieces)) <= 65536  # two MB of zeros never come out at once


def test_a_cut_compressed_answer_is_an_error_not_a_short_document() -> None:
    packed = gzip.compress(os.urandom(50_000))[:-100]
    with keep_alive([answer(packed, "Content-Encoding: gzip")]) as server:
        response = get(Transport(), f"{server.url}/file")
        with pytest.raises(DecodeError, match="ended before its end"):
            body_of(response)


def test_damaged_compressed_data_is_an_error() -> None:
    packed = bytearray(gzip.compress(os.urandom(50_000)))
    packed[5000:5100] = bytes(100)
    with keep_alive([answer(bytes(packed), "Content-Encoding: gzip")]) as server:
        response = get(Transport(), f"{server.url}/file")
        with pytest.raises(DecodeError, match="damaged"):
            body_of(response)


def test_an_unknown_encoding_is_refused_not_passed_on() -> None:
    with keep_alive([answer(b"\x1b\x00", "Content-Encoding: br")]) as server:
        with pytest.raises(DecodeError, match="unknown Content-Encoding"):
            body_of(get(Transport(), f"{server.url}/file"))
        settings = resolve_settings(url=server.url, environ={}, retries=0)
        server.answers.append(answer(b"\x1b\x00", "Content-Encoding: br"))
        with OrthancClient(settings) as client, pytest.raises(ServerError, match="unknown"):
            client.system()


def test_an_error_status_is_kept_whatever_its_encoding() -> None:
    with keep_alive([answer(b"\x1b", "Content-Encoding: br", status="404 Not Found")]) as server:
        settings = resolve_settings(url=server.url, environ={}, retries=0)
        with OrthancClient(settings) as client:
            assert client.instance_metadata("1" * 8 + "-11111111" * 4, "X") is None


@pytest.mark.parametrize("status", ["200 OK", "204 No Content"])
def test_an_empty_compressed_answer_is_empty(status: str) -> None:
    with keep_alive([answer(b"", "Content-Encoding: gzip", status=status)]) as server:
        assert body_of(get(Transport(), f"{server.url}/x")) == b""


def test_interim_answers_are_read_past_not_taken_for_the_answer() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
    go_on = b"HTTP/1.1 100 Continue\r\n\r\n"
    with keep_alive([early + go_on + early + answer(b"one"), answer(b"two")]) as server:
        transport = Transport()
        first = get(transport, f"{server.url}/a")
        assert first.status_code == 200
        assert body_of(first) == b"one"
        assert body_of(get(transport, f"{server.url}/b")) == b"two"
    assert server.connections == 1


@pytest.mark.parametrize(
    "fields",
    [
        "Content-Length: 5\r\nContent-Length: 500",
        "Content-Length: \u00b2",
        "Content-Length: -5",
        "Transfer-Encoding: identity, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: gzip, chunked",
    ],
)
def test_an_answer_whose_end_is_uncertain_is_refused(fields: str) -> None:
    raw = f"HTTP/1.1 200 OK\r\n{fields}\r\n\r\n".encode() + b"5\r\nhello\r\n0\r\n\r\n"
    with (
        keep_alive([raw], close_after=1) as server,
        pytest.raises(http.client.HTTPException, match=r"unusable|unsupported"),
    ):
        get(Transport(), f"{server.url}/file")


def test_a_streamed_body_is_held_to_its_length() -> None:
    with keep_alive([answer(b"{}")] * 2) as server:
        transport = Transport()
        for pieces, said in (([b"abc", b"de"], 4), ([b"ab"], 4)):
            with pytest.raises(BodyLengthError):
                transport.request(
                    "POST", f"{server.url}/p", headers={}, body=pieces, length=said, timeout=5
                )
    assert all(not r.endswith(b"de") for r in server.requests)


def test_a_host_name_is_never_sent_as_another_one() -> None:
    transport = Transport()
    for url in ("http://faß.de:8042/x", "http://πας.example/x", "http://aé..b/x"):
        with pytest.raises(http.client.InvalidURL, match="xn--"):
            get(transport, url)
    settings = resolve_settings(url="http://faß.de:8042", environ={}, retries=0)
    with OrthancClient(settings) as client, pytest.raises(ServerError, match="xn--"):
        client.system()


def test_a_non_ascii_path_goes_out_percent_encoded() -> None:
    with keep_alive([answer(b"{}")]) as server:
        body_of(get(Transport(), f"{server.url}/peers/Zürich/system"))
    assert server.requests[0].startswith(b"GET /peers/Z%C3%BCrich/system HTTP/1.1")


def test_a_body_cut_before_its_length_is_an_error() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40
    with keep_alive([cut], close_after=1) as server:
        response = get(Transport(), f"{server.url}/file")
        with pytest.raises(http.client.IncompleteRead):
            body_of(response)


def test_a_body_is_sent_from_pieces_with_its_length() -> None:
    with keep_alive([answer(b"{}")]) as server:
        transport = Transport()
        pieces = [b"ab", b"", b"cde"]
        response = transport.request(
            "POST", f"{server.url}/p", headers={}, body=iter(pieces), length=5, timeout=5
        )
        body_of(response)
    head, _, sent = server.requests[0].partition(b"\r\n\r\n")
    assert sent == b"abcde"
    assert b"Content-Length: 5" in head.split(b"\r\n")
    assert b"Transfer-Encoding" not in head


# --- proxies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("http://pacs:8042/x", {"http_proxy": "http://p:3128"}, "http://p:3128"),
        ("https://pacs/x", {"http_proxy": "http://p:3128"}, None),
        ("https://pacs/x", {"HTTPS_PROXY": "http://P:1"}, "http://P:1"),
        (
            "https://pacs/x",
            {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://UP:1"},
            "http://low:1",
        ),
        ("https://pacs/x", {"all_proxy": "http://all:1"}, "http://all:1"),
        ("http://pacs/x", {"http_proxy": "http://p:1", "no_proxy": "*"}, None),
        ("http://pacs.lan/x", {"http_proxy": "http://p:1", "no_proxy": "lan"}, None),
        ("http://pacs.lan/x", {"http_proxy": "http://p:1", "no_proxy": ".lan"}, None),
        ("http://pacslan/x", {"http_proxy": "http://p:1", "no_proxy": "lan"}, "http://p:1"),
        ("http://pacs.lan:8042/", {"http_proxy": "http://p:1", "no_proxy": "pacs.lan:8042"}, None),
        (
            "http://pacs.lan:8043/",
            {"http_proxy": "http://p:1", "no_proxy": "pacs.lan:8042"},
            "http://p:1",
        ),
        ("http://10.1.2.3/", {"http_proxy": "http://p:1", "no_proxy": "10.0.0.0/8"}, None),
        ("http://11.1.2.3/", {"http_proxy": "http://p:1", "no_proxy": "10.0.0.0/8"}, "http://p:1"),
        ("http://pacs/", {"http_proxy": "http://p:1", "NO_PROXY": "other, pacs"}, None),
        # A CGI program's HTTP_PROXY may come from a request's Proxy header ("httpoxy").
        ("http://pacs/", {"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"}, None),
        # Lower case wins when set: an empty one switches the proxy off.
        ("https://pacs/", {"https_proxy": "", "HTTPS_PROXY": "http://p:1"}, None),
    ],
)
def test_the_proxy_is_the_one_the_environment_names(
    url: str, environ: dict[str, str], expected: str | None
) -> None:
    assert proxy_for(url, environ) == expected


def test_plain_http_goes_through_the_proxy_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with keep_alive([answer(b"proxied")]) as proxy:
        address = proxy.url.removeprefix("http://")
        monkeypatch.setenv("http_proxy", f"http://scan%40ner:p%3Ass@{address}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        assert body_of(get(Transport(), "http://orthanc.invalid:8042/system")) == b"proxied"
    head = proxy.requests[0].split(b"\r\n")
    assert head[0] == b"GET http://orthanc.invalid:8042/system HTTP/1.1"
    assert b"Host: orthanc.invalid:8042" in head
    # base64 of "scan@ner:p:ss"
    assert b"Proxy-Authorization: Basic c2NhbkBuZXI6cDpzcw==" in head


def test_https_goes_through_a_tunnel_the_proxy_cannot_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusal = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    with keep_alive([refusal]) as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        with pytest.raises(OSError, match="Tunnel connection failed: 403"):
            get(Transport(), "https://orthanc.invalid:8043/system?x=1")
    assert proxy.requests[0].split(b"\r\n")[0] == b"CONNECT orthanc.invalid:8043 HTTP/1.0"


def test_a_socks_proxy_is_refused_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "socks5://127.0.0.1:1080")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(ProxyError, match="only HTTP proxies"):
        get(Transport(), "https://orthanc.invalid/system")
    settings = resolve_settings(url="https://orthanc.invalid", environ={}, retries=3)
    with OrthancClient(settings) as client, pytest.raises(ServerError) as caught:
        client.system()
    assert str(caught.value) == (
        "cannot reach https://orthanc.invalid: the proxy the environment names is not an "
        "http:// proxy (socks5://...); only HTTP proxies are supported"
    )


def test_odd_redirects_and_pauses_are_the_servers_error_not_a_crash() -> None:
    odd_pause = answer(b"", "Retry-After: \u00b2".encode().decode("latin-1"), status="503 No")
    not_a_url = answer(b"", "Location: http://[::1/system", status="302 Found")
    with keep_alive([odd_pause, answer(b'{"Version": "1"}'), not_a_url]) as server:
        settings = resolve_settings(url=server.url, environ={}, retries=1)
        with OrthancClient(settings, sleep=lambda _seconds: None) as client:
            assert client.system().version == "1"
            with pytest.raises(ServerError, match="redirected to an address that is not a URL"):
                client.system()
            with pytest.raises(ServerError):
                client.job("0f2b5c1e-7a0d-4c8e-9b5a-3c1d2e4f6a7b", budget=-1)


def test_a_proxy_trickling_its_tunnel_answer_is_cut_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):
            conn.recv(4096)
            for byte in (b"HTTP/1.1 200 Connection established\r\n" * 3)[:80]:
                if done.wait(0.05):
                    return
                conn.sendall(bytes([byte]))

    threading.Thread(target=trickle, daemon=True).start()
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    settings = resolve_settings(url="https://orthanc.invalid", environ={}, retries=0, timeout=0.5)
    started = time.monotonic()
    try:
        with OrthancClient(settings) as client, pytest.raises(ServerError, match=r"within 0\.5 s"):
            client.system()
    finally:
        done.set()
        listener.close()
    assert time.monotonic() - started < 3


def test_a_read_of_nothing_stays_bounded() -> None:
    original = b"\0" * 1_000_000
    with keep_alive([answer(gzip.compress(original), "Content-Encoding: gzip")]) as server:
        response = get(Transport(), f"{server.url}/file")
        first = response.read1(0)
        assert len(first) <= 1
        assert first + body_of(response) == original


def test_a_deadline_lets_go_of_a_socket_before_its_connection_is_pooled() -> None:
    """Another thread may take the connection next: this request's deadline must not cut it."""
    from pdf2dcm.client import _Guard

    with keep_alive([answer(b"{}")]) as server:
        transport = Transport()
        with _Guard(30, 5) as guard:
            response = transport.request(
                "GET", f"{server.url}/a", headers={}, timeout=5, on_socket=guard.attach
            )
            assert response.socket in guard._sockets
            response.read1(10)
            guard.let_go(response)
            assert guard._sockets == []
        assert len(next(iter(transport._idle.values()))) == 1
