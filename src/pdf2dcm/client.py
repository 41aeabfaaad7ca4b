"""OrthancClient: one pooled HTTP session with timeouts, retries and Orthanc's errors made typed.

Retries are split by what a repeat can do. GETs are retried by urllib3 on connection errors
and 502/503/504. POSTs are retried here, explicitly, and only for the uploads where a repeat
cannot duplicate data (the same SOPInstanceUID is answered ``AlreadyStored``); their bodies
are re-iterable objects that start over from the first byte on every attempt, so a retry
never sends an exhausted stream. No ``requests`` exception escapes: every failure becomes a
:class:`~pdf2dcm.errors.ServerError` whose message names the server and never a credential.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from . import __version__
from .config import Settings
from .errors import (
    AuthenticationError,
    NotFoundError,
    ServerError,
    ServerFailedError,
    ServerRefusedError,
    ServerUnreachableError,
)

USER_AGENT = f"pdf2dcm/{__version__}"
TRANSIENT_STATUSES = frozenset({502, 503, 504})
BACKOFF_SECONDS = 0.5


class RepeatableBody:
    """A streamed request body of known length that can be sent again from the start.

    ``requests`` sends an object with ``__len__`` and ``__iter__`` with a Content-Length header
    and iterates it; every iteration calls ``factory`` anew.
    """

    def __init__(self, length: int, factory: Callable[[], Iterator[bytes]]) -> None:
        self.length = length
        self._factory = factory

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        return self._factory()


class _RetryPolicy(Retry):
    """urllib3's retries, minus two cases.

    urllib3 retries connection errors for every method; for POST the retries are ours
    (:meth:`OrthancClient.post_idempotent`), so a POST fails here at its first error instead
    of being retried twice over. A failed certificate check is not transient: retrying it
    only delays the message.
    """

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> _RetryPolicy:
        unsafe = method is not None and method.upper() not in (self.allowed_methods or ())
        if unsafe or isinstance(error, urllib3.exceptions.SSLError):
            final = self.new(total=0, connect=0, read=0, status=0, other=0)
            return Retry.increment(final, method, url, response, error, _pool, _stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(<hidden>)"


@dataclass(frozen=True)
class StoredInstance:
    """Orthanc's answer to a store: where the instance now lives."""

    id: str
    parent_patient: str | None
    parent_study: str | None
    parent_series: str | None
    status: str
    """``Success`` or ``AlreadyStored``."""


class OrthancClient:
    """A connection to one Orthanc server.

    Parameters
    ----------
    settings
        URL, credentials, TLS and timeout (see :func:`pdf2dcm.config.resolve_settings`).
    session
        A ready session to use instead of a new one (custom authentication, proxies, tests);
        it is used as given, without mounting retry adapters on it.
    pool_size
        Connections kept open; match it to the number of threads sharing the client.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        pool_size: int = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        # Given per request: requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in the
        # environment override a session's verify, which would undo --ca-bundle and
        # --insecure. None leaves an injected session's own choice alone.
        self._verify: str | bool | None = settings.ca_bundle or (
            None if settings.verify_tls else False
        )
        self._own_session = session is None
        self.session = session if session is not None else self._new_session(pool_size)

    def _new_session(self, pool_size: int) -> requests.Session:
        session = requests.Session()
        retry = _RetryPolicy(
            total=self.settings.retries,
            connect=self.settings.retries,
            read=self.settings.retries,
            status=self.settings.retries,
            backoff_factor=BACKOFF_SECONDS,
            status_forcelist=TRANSIENT_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD"}),
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        if self.settings.token is not None:
            session.auth = _BearerAuth(self.settings.token)
        elif self.settings.username is not None:
            session.auth = (self.settings.username, self.settings.password or "")
        return session

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> OrthancClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.settings.url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request (urllib3 retries GETs) and turn every failure into a ServerError.

        ``what`` names the resource in a 404 message ("instance 1b3a...").
        """
        url = self.url(path)
        kwargs.setdefault("timeout", self.settings.timeout)
        if self._verify is not None:
            kwargs.setdefault("verify", self._verify)
        try:
            response = self.session.request(method, url, stream=stream, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise ServerUnreachableError(
                f"TLS verification failed for {self._server()}: {_reason(exc)}; "
                "give the server's CA with --ca-bundle FILE"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise ServerUnreachableError(
                f"no answer from {self._server()} within {self.settings.timeout:g} s "
                f"({method} {_path_of(url)}); raise --timeout or check the server"
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise ServerUnreachableError(
                f"cannot reach {self._server()}: {_reason(exc)}; is Orthanc running there?"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise ServerError(f"request to {self._server()} failed: {_reason(exc)}") from exc
        if response.status_code >= 400:
            try:
                self._raise_for(response, method, what)
            finally:
                response.close()
        return response

    def post_idempotent(
        self,
        path: str,
        body: RepeatableBody | bytes,
        *,
        headers: dict[str, str],
        on_retry: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """POST where a repeat cannot create a duplicate, retried on transient failures."""
        attempt = 0
        while True:
            try:
                response = self.request("POST", path, data=body, headers=headers, **kwargs)
            except ServerUnreachableError:
                if attempt >= self.settings.retries:
                    raise
            except ServerFailedError as exc:
                if exc.status not in TRANSIENT_STATUSES or attempt >= self.settings.retries:
                    raise
            else:
                return response
            attempt += 1
            self._sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            if on_retry is not None:
                on_retry()

    def get_json(self, path: str, *, what: str | None = None, **kwargs: Any) -> Any:
        response = self.request("GET", path, what=what, **kwargs)
        return self._json(response)

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(
                f"{self._server()} answered {_path_of(response.url)} with something that is "
                "not JSON; is this an Orthanc server?"
            ) from exc

    def _server(self) -> str:
        return self.settings.url

    def _raise_for(self, response: requests.Response, method: str, what: str | None) -> None:
        status = response.status_code
        details = _orthanc_error(response)
        message, explanation, orthanc_status = details
        path = _path_of(response.url)
        fields: dict[str, Any] = {
            "status": status,
            "url": response.url,
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

    # --- Orthanc operations ----------------------------------------------------------------

    def system(self) -> dict[str, Any]:
        """``/system``: proves the server is an Orthanc that accepts our credentials."""
        answer: dict[str, Any] = self.get_json("/system")
        return answer

    def store_instance(
        self, body: RepeatableBody, *, on_retry: Callable[[], None] | None = None
    ) -> StoredInstance:
        """``POST /instances`` with a DICOM file."""
        response = self.post_idempotent(
            "/instances",
            body,
            headers={"Content-Type": "application/dicom"},
            on_retry=on_retry,
        )
        return _stored(self._json(response))

    def create_dicom(
        self, body: RepeatableBody, *, on_retry: Callable[[], None] | None = None
    ) -> StoredInstance:
        """``POST /tools/create-dicom`` with a JSON body that carries its own UIDs."""
        response = self.post_idempotent(
            "/tools/create-dicom",
            body,
            headers={"Content-Type": "application/json"},
            on_retry=on_retry,
        )
        answer = self._json(response)
        if "Status" not in answer:
            answer = {**answer, "Status": "Success"}
        return _stored(answer)

    def lookup(self, uid: str) -> list[dict[str, Any]]:
        """Orthanc resources whose DICOM identifier is ``uid``."""
        response = self.request(
            "POST",
            "/tools/lookup",
            data=uid.encode("ascii"),
            headers={"Content-Type": "text/plain"},
        )
        found: list[dict[str, Any]] = self._json(response)
        return found

    @contextlib.contextmanager
    def download(
        self, path: str, *, what: str, headers: dict[str, str] | None = None
    ) -> Iterator[requests.Response]:
        """A streamed GET; the caller reads ``iter_content`` and the connection is released."""
        response = self.request("GET", path, what=what, stream=True, headers=headers)
        try:
            yield response
        finally:
            response.close()


def _stored(answer: dict[str, Any]) -> StoredInstance:
    return StoredInstance(
        id=str(answer["ID"]),
        parent_patient=answer.get("ParentPatient"),
        parent_study=answer.get("ParentStudy"),
        parent_series=answer.get("ParentSeries"),
        status=str(answer.get("Status", "Success")),
    )


def _orthanc_error(response: requests.Response) -> tuple[str | None, str | None, int | None]:
    """Orthanc's JSON error description, present only with ``HttpDescribeErrors``."""
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    status = body.get("OrthancStatus")
    return (
        body.get("Message") or None,
        body.get("Details") or None,
        status if isinstance(status, int) else None,
    )


def _path_of(url: str | None) -> str:
    return urlsplit(url or "").path or "/"


def _reason(exc: Exception) -> str:
    """A short cause without the request line that requests puts around it."""
    text = str(exc)
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
