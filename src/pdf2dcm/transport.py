"""HTTP/1.1 over the standard library: the one transport under :mod:`pdf2dcm.client`.

Why not requests: importing requests and urllib3 took about half of a one-file upload (60 to
110 ms of a call that does one request), and the client used little of them: it already
decided redirects, retries, deadlines and where credentials go itself. What a client of
archives needs is here, each in a few lines:

- **Connections kept open** per server, up to a pool size, and checked before reuse: a
  connection the server closed while idle is dropped, not written to.
- **TLS verified** against the system's CAs (``SSL_CERT_FILE``/``SSL_CERT_DIR`` apply) or the
  given CA file; ``verify=False`` only when asked.
- **Proxies from the environment** (``https_proxy``, ``http_proxy``, ``all_proxy``,
  ``no_proxy``, lower case first), HTTP proxies only; HTTPS goes through a CONNECT tunnel, so
  the proxy never sees the request or its credentials.
- **Bodies** sent from bytes or from an iterable of known length, without chunked encoding;
  answers read as they arrive, gzip and deflate decoded in bounded pieces, an answer cut
  before its announced length or its last chunk an error, never a short document.

One exchange per call, nothing followed or repeated: the client decides that. Errors are
the standard library's own (``OSError`` with ``TimeoutError``, ``ConnectionError`` and
``ssl.SSLError`` among them, and ``http.client.HTTPException``), for the client to translate.
"""

from __future__ import annotations

import base64
import errno
import http.client
import json
import os
import re
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import quote, unquote, urlsplit

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_DIGITS = re.compile(r"[0-9]+")

Body = bytes | Iterable[bytes] | None
"""A request body: bytes, or an iterable of bytes whose total length is given with it."""


class DecodeError(http.client.HTTPException):
    """An answer whose Content-Encoding cannot be undone (unknown, or damaged data)."""


class ProxyError(OSError):
    """A proxy named by the environment that cannot be used."""


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None


def _origin(url: str) -> tuple[_Origin, str]:
    """The server of a URL and the request target (path and query)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise http.client.InvalidURL(f"not an http(s) URL: {url[:200]}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise http.client.InvalidURL(f"not a valid port in {url[:200]}") from exc
    host = parts.hostname
    if not host.isascii():
        host = _ascii_host(host, url)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    # A non-ASCII path (a redirect's, a server URL's) goes out percent-encoded as UTF-8.
    target = _NON_ASCII.sub(lambda found: quote(found.group()), target)
    return _Origin(scheme, host, port), target


def _ascii_host(host: str, url: str) -> str:
    """The ASCII form of an internationalized host name, when it stands for that one name.

    The standard library's IDNA 2003 maps some letters to others (``faß`` to ``fass``,
    a final sigma to a plain one): another registered name, possibly another owner. A name that does
    not come back as itself is refused instead of being sent somewhere else.
    """
    try:
        encoded = host.encode("idna")
        same = encoded.decode("idna") == host
    except UnicodeError:
        same = False
    if not same:
        raise http.client.InvalidURL(
            f"the host name of {url[:200]} cannot be written in ASCII as itself; give its xn-- form"
        )
    return encoded.decode("ascii")


class Response:
    """One answer: status, headers and a body read in pieces (decoded).

    ``close()`` gives the connection back for the next request when the body was read to its
    end; otherwise the connection is closed, since what is left of the body is unknown.
    """

    def __init__(
        self,
        raw: http.client.HTTPResponse,
        url: str,
        method: str,
        elapsed: float,
        release: Callable[[bool], None],
    ) -> None:
        self.raw = raw
        self.url = url
        self.method = method
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers: Message = raw.headers
        self.elapsed = elapsed
        """Seconds from sending the request to the answer's headers."""
        self.socket: socket.socket | None = None
        """The connection's socket, for a deadline to let go of it (set by the transport)."""
        self.content: bytes | None = None
        """The whole body, where a caller has read it (``OrthancClient.request``)."""
        self._release: Callable[[bool], None] | None = release
        _check_framing(raw.headers)
        encoding = (raw.headers.get("Content-Encoding") or "").strip().lower()
        self._encoding_error: DecodeError | None = None
        try:
            self._decoder = _decoder(encoding)
        except DecodeError as exc:
            # Raised on the first read: an error answer's status is still worth having.
            self._decoder, self._encoding_error = None, exc
        self._received = False
        self._head: bytes | None = b"" if encoding == "deflate" else None
        """What a deflate answer sent before its first output (it may turn out raw)."""
        self._pending = b""
        self._complete = False
        self._broken = False

    @property
    def is_redirect(self) -> bool:
        return self.status_code in REDIRECT_STATUSES and "Location" in self.headers

    def read1(self, size: int) -> bytes:
        """Up to ``size`` decoded bytes as they arrive; empty only at the end of the body."""
        if self._complete:
            return b""
        try:
            if self._encoding_error is not None:
                raise self._encoding_error
            return self._read1(max(size, 1))
        except BaseException:
            self._broken = True
            raise

    def _read1(self, size: int) -> bytes:
        if self._decoder is None:
            block = self.raw.read1(size)
            if not block:
                self._finish()
            return block
        while True:
            data = self._pending or self.raw.read1(max(size, 16 * 1024))
            if not data:
                self._finish()
                if self._received and not self._decoder.eof:
                    raise DecodeError("the compressed answer ended before its end")
                return b""  # ended, or empty as a compressed "nothing" is sent by some
            self._received = True
            out = self._inflate(data, size)
            if self._decoder.eof and self._decoder.unused_data.strip(b"\r\n"):
                raise DecodeError("data after the end of the compressed answer")
            if out:
                return out

    def _inflate(self, data: bytes, size: int) -> bytes:
        assert self._decoder is not None
        try:
            out = self._decoder.decompress(data, size)
        except zlib.error as exc:
            if self._head is None:
                raise DecodeError(f"the compressed answer is damaged ({exc})") from exc
            # "deflate" as some servers send it: raw, without zlib's wrapper.
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            data, self._head = self._head + data, None
            return self._inflate(data, size)
        if self._head is not None:
            # zlib checks its two-byte header at once: past it, the kind is known.
            self._head = self._head + data if not out and len(self._head + data) < 2 else None
        self._pending = self._decoder.unconsumed_tail
        return out

    def iter_content(self, size: int) -> Iterator[bytes]:
        while block := self.read1(size):
            yield block

    def json(self) -> Any:
        """The body read by the caller (:attr:`content`) as JSON."""
        if self.content is None:
            raise ValueError("the body was not read; use OrthancClient.request")
        return json.loads(self.content)

    def _finish(self) -> None:
        left = self.raw.length
        if left:
            # http.client returns an empty read when the server closes early.
            raise http.client.IncompleteRead(b"", left)
        self._complete = True

    def close(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        raw = self.raw
        # Read to its end: a known length used up, or the last chunk seen (http.client then
        # lets go of the body). Anything else leaves unread bytes on the connection.
        whole = raw.length == 0 or (raw.chunked and raw.isclosed())
        reuse = whole and not self._broken and not raw.will_close
        raw.close()
        release(reuse)


def _check_framing(headers: Message) -> None:
    """Refuse an answer whose end cannot be known for sure.

    http.client takes the first of several Content-Length headers and reads a Transfer-Encoding
    list as if it were chunked alone: either would cut a document, or leave its rest on
    the connection to be read as the next answer.
    """
    lengths = {value.strip() for value in headers.get_all("Content-Length") or []}
    if len(lengths) > 1 or any(_DIGITS.fullmatch(value) is None for value in lengths):
        raise http.client.HTTPException(
            f"an answer with an unusable Content-Length ({', '.join(sorted(lengths))[:80]})"
        )
    codings = [value.strip().lower() for value in headers.get_all("Transfer-Encoding") or []]
    if codings and codings != ["chunked"]:
        raise http.client.HTTPException(
            f"an answer in an unsupported Transfer-Encoding ({', '.join(codings)[:80]})"
        )


class _TunnelledConnection(http.client.HTTPSConnection):
    """An HTTPS connection whose socket is handed over before a proxy's CONNECT: a proxy
    that trickles its answer would otherwise hold the request past its deadline."""

    on_socket: Callable[[socket.socket], None] | None = None

    def _tunnel(self) -> None:
        if self.on_socket is not None and self.sock is not None:
            self.on_socket(self.sock)
        super()._tunnel()  # type: ignore[misc]


class _FinalResponse(http.client.HTTPResponse):
    """An answer past every interim one: http.client skips only ``100 Continue``, and
    another 1xx (``103 Early Hints``) would be taken for the answer, the real one left on
    the connection for the next request."""

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)


def _decoder(name: str) -> zlib._Decompress | None:
    """A decompressor for the answer's Content-Encoding; None for none or identity."""
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise DecodeError(f"an answer in an unknown Content-Encoding ({name[:40]!r})")


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """True when an idle connection was closed by the server (or has unasked-for data)."""
    sock = connection.sock
    if sock is None:
        return True
    pending = getattr(sock, "pending", None)
    if pending is not None and pending():
        return True  # bytes the TLS layer already holds: nothing a poll would see
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class BodyLengthError(http.client.HTTPException):
    """A streamed body that did not have the length announced for it."""


def _send_pieces(
    connection: http.client.HTTPConnection, body: Iterable[bytes], length: int
) -> None:
    """Send a body from pieces, held to its announced length: more would be read by the
    server as a next request, less would leave it waiting."""
    sent = 0
    for piece in body:
        sent += len(piece)
        if sent > length:
            raise BodyLengthError(f"the body grew past its announced {length} bytes")
        connection.send(piece)
    if sent != length:
        raise BodyLengthError(f"the body ended after {sent} of its announced {length} bytes")


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL the environment names for ``url``, or None to connect directly."""
    env = os.environ if environ is None else environ
    origin, _ = _origin(url)

    def named(name: str) -> str | None:
        # Lower case wins when it is set at all: an empty one switches a proxy off.
        value = env.get(name.lower(), env.get(name.upper()))
        return value.strip() if value and value.strip() else None

    if _bypassed(origin, named("no_proxy") or ""):
        return None
    if origin.scheme == "http" and "REQUEST_METHOD" in env:
        # A CGI program's HTTP_PROXY can come from a request header ("httpoxy").
        return env.get("http_proxy") or named("all_proxy")
    return named(f"{origin.scheme}_proxy") or named("all_proxy")


def _bypassed(origin: _Origin, no_proxy: str) -> bool:
    for entry in (item.strip().lower() for item in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if port and port != str(origin.port):
            continue
        if "/" in host:
            if _in_network(origin.host, host):
                return True
            continue
        host = host.strip("[]").lstrip(".")
        name = origin.host.lower()
        if name == host or name.endswith("." + host):
            return True
    return False


def _in_network(host: str, network: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _parse_proxy(url: str) -> _Proxy:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ProxyError(
            f"the proxy the environment names is not an http:// proxy ({parts.scheme}://...); "
            "only HTTP proxies are supported"
        )
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ProxyError("the proxy the environment names has an invalid port") from exc
    return _Proxy(parts.hostname, port, authorization)


class Transport:
    """Connections to any number of servers, each kept open for the next request.

    Parameters
    ----------
    verify
        True for the system's CAs, a path for a CA file (PEM), False to skip verification.
    pool_size
        Idle connections kept per server; more may be open at once, the rest are closed.
    """

    def __init__(self, *, verify: bool | str = True, pool_size: int = 10) -> None:
        self._verify = verify
        self._pool_size = pool_size
        self._idle: dict[tuple[_Origin, str | None], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._closed = False

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str | bytes],
        body: Body = None,
        length: int | None = None,
        timeout: float,
        on_socket: Callable[[socket.socket], None] | None = None,
    ) -> Response:
        """Send one request and return its answer once the headers arrived.

        ``length`` is the body's size when it is an iterable (sent as Content-Length);
        ``on_socket`` is given the connection's socket before anything is sent on it.
        """
        origin, target = _origin(url)
        proxy_url = proxy_for(url)
        proxy = _parse_proxy(proxy_url) if proxy_url is not None else None
        fields = dict(headers)
        if proxy is not None and origin.scheme == "http":
            # Plain HTTP through a proxy: the whole URL in the request line.
            target = f"http://{origin.host_header}{target}"
            if proxy.authorization is not None:
                fields["Proxy-Authorization"] = proxy.authorization
        key = (origin, proxy_url)
        connection = self._take(key)
        if connection is None:
            connection = self._connect(origin, proxy, timeout, on_socket)
        elif connection.sock is not None:
            connection.timeout = timeout
            connection.sock.settimeout(timeout)
        started = time.monotonic()
        try:
            if on_socket is not None and connection.sock is not None:
                on_socket(connection.sock)
            self._send(connection, method, target, origin, fields, body, length)
            sock = connection.sock
            raw = connection.getresponse()
            response = Response(
                raw,
                url,
                method,
                time.monotonic() - started,
                lambda reuse: self._give(key, connection, reuse),
            )
            response.socket = sock
            return response
        except BaseException:
            connection.close()
            raise

    def _send(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        origin: _Origin,
        headers: Mapping[str, str | bytes],
        body: Body,
        length: int | None,
    ) -> None:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", origin.host_header)
        for name, value in headers.items():
            connection.putheader(name, value)
        if isinstance(body, bytes | bytearray | memoryview):
            length = len(body)
        if length is not None or method.upper() in ("POST", "PUT", "PATCH"):
            connection.putheader("Content-Length", str(length or 0))
        try:
            connection.endheaders()
            if isinstance(body, bytes | bytearray | memoryview):
                connection.send(body)
            elif body is not None:
                _send_pieces(connection, body, length or 0)
        except OSError as exc:
            # A server that answers before taking the whole body (an error, a refusal)
            # closes its side: its answer is still there to read.
            if not isinstance(exc, BrokenPipeError) and exc.errno != errno.ECONNRESET:
                raise

    def _connect(
        self,
        origin: _Origin,
        proxy: _Proxy | None,
        timeout: float,
        on_socket: Callable[[socket.socket], None] | None,
    ) -> http.client.HTTPConnection:
        host, port = (proxy.host, proxy.port) if proxy is not None else (origin.host, origin.port)
        connection: http.client.HTTPConnection
        if origin.scheme == "https":
            connection = _TunnelledConnection(host, port, timeout=timeout, context=self._tls())
            connection.on_socket = on_socket
            if proxy is not None:
                tunnel = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else {}
                connection.set_tunnel(origin.host, origin.port, headers=tunnel)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.response_class = _FinalResponse
        try:
            connection.connect()
        except BaseException:
            connection.close()
            raise
        return connection

    def _tls(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                if self._verify is False:
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                elif isinstance(self._verify, str):
                    context = ssl.create_default_context(cafile=self._verify)
                else:
                    context = ssl.create_default_context()
                context.set_alpn_protocols(["http/1.1"])
                self._context = context
            return self._context

    def _take(self, key: tuple[_Origin, str | None]) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection = idle.pop()
            if not _dropped(connection):
                return connection
            connection.close()

    def _give(
        self, key: tuple[_Origin, str | None], connection: http.client.HTTPConnection, reuse: bool
    ) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if reuse and not self._closed and len(idle) < self._pool_size:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close every idle connection; answers still being read keep theirs until closed."""
        with self._lock:
            self._closed = True
            idle = [c for connections in self._idle.values() for c in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()
