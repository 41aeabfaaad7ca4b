"""What the tool would use to reach the server, and whether each part of it works.

:func:`describe` says what the settings are (the URL and where it came from, the user, the
kind of authentication, TLS) without sending anything; :func:`run_checks` then tries each
part in turn: the server answers, the credentials are accepted, DICOMweb, the named
modalities and peers, the worklist. A check that cannot be tried because an earlier one
failed is skipped. Secrets are never part of the result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .client import OrthancClient, path_segment
from .config import Settings, redact_url
from .errors import AuthenticationError, Pdf2DcmError, ServerError


@dataclass(frozen=True)
class Setting:
    """One fact about the settings: ``name`` (``URL``, ``user``, ...) and its ``value``."""

    name: str
    value: str


@dataclass(frozen=True)
class Check:
    """One check: ``ok`` True, False, or None when it was skipped; ``error`` when it failed."""

    name: str
    ok: bool | None
    detail: str
    error: Pdf2DcmError | None = None


def describe(settings: Settings) -> list[Setting]:
    """The URL, user, authentication and TLS the settings would use; nothing is sent."""
    url_source = settings.sources.get("url") or "the caller"
    credentials = settings.sources.get("credentials") or "the caller"
    if settings.token is not None:
        user, auth = "(a token)", f"Bearer token, from {credentials}"
    elif settings.username is not None:
        secret = "with a password" if settings.password else "without a password"
        user, auth = settings.username, f"HTTP Basic {secret}, from {credentials}"
    else:
        user, auth = "(none)", "none"
    if not settings.url.lower().startswith("https://"):
        tls = "none (http): credentials and documents travel unencrypted"
    elif not settings.verify_tls:
        tls = "https, certificates NOT verified (--insecure)"
    elif settings.ca_bundle:
        tls = f"https, verified against {settings.ca_bundle}"
    else:
        tls = "https, verified against the system's CAs"
    return [
        Setting("URL", f"{redact_url(settings.url)} (from {url_source})"),
        Setting("user", user),
        Setting("authentication", auth),
        Setting("TLS", tls),
        Setting("DICOMweb", redact_url(settings.stow_root)),
    ]


def run_checks(
    client: OrthancClient,
    *,
    modalities: Sequence[str] = (),
    peers: Sequence[str] = (),
    worklist: str | None = None,
) -> list[Check]:
    """Try each part of the connection; never raises for a failing part.

    The server's ``/system`` first: unreachable skips everything after it, refused
    credentials too. Then the DICOMweb root, each modality (a C-ECHO through Orthanc), each
    peer (its ``/system`` through Orthanc) and the worklist (an empty query).
    """
    results = [*_server(client)]
    if not all(result.ok for result in results):
        for name in _later_names(modalities, peers, worklist):
            results.append(Check(name, None, "the server check failed"))
        return results
    results.append(
        _try(
            "DICOMweb",
            lambda: client.request("GET", f"{client.settings.stow_root}/studies?limit=1"),
            f"{redact_url(client.settings.stow_root)} answers",
        )
    )
    for name in modalities:
        echo = functools.partial(_echo, client, name)
        results.append(_try(f"modality {name}", echo, "answers a C-ECHO"))
    for name in peers:
        results.append(_try(f"peer {name}", functools.partial(_peer, client, name), "answers"))
    if worklist is not None:
        results.append(
            _try(
                f"worklist {worklist}",
                lambda: client.find_worklist(worklist, {}),
                "answers a worklist query",
            )
        )
    return results


def _echo(client: OrthancClient, name: str) -> object:
    segment = path_segment(name)
    return client.request(
        "POST", f"/modalities/{segment}/echo", data=b"{}", what=f"modality {name}"
    )


def _peer(client: OrthancClient, name: str) -> object:
    return client.request("GET", f"/peers/{path_segment(name)}/system", what=f"peer {name}")


def _later_names(
    modalities: Sequence[str], peers: Sequence[str], worklist: str | None
) -> list[str]:
    names = ["DICOMweb", *(f"modality {m}" for m in modalities), *(f"peer {p}" for p in peers)]
    return names + ([f"worklist {worklist}"] if worklist is not None else [])


def _server(client: OrthancClient) -> list[Check]:
    try:
        system = client.system()
    except AuthenticationError as exc:
        return [
            Check("server", True, "answers"),
            Check("credentials", False, str(exc), exc),
        ]
    except ServerError as exc:
        return [
            Check("server", False, str(exc), exc),
            Check("credentials", None, "the server did not answer"),
        ]
    name = f" {system.name}" if system.name else ""
    return [
        Check("server", True, f"Orthanc{name} {system.version}"),
        Check("credentials", True, "accepted" if _has_credentials(client) else "none needed"),
    ]


def _has_credentials(client: OrthancClient) -> bool:
    return client.settings.token is not None or client.settings.username is not None


def _try(name: str, call: Callable[[], object], success: str) -> Check:
    try:
        call()
    except Pdf2DcmError as exc:
        return Check(name, False, str(exc), exc)
    return Check(name, True, success)


def first_failure(results: Sequence[Check]) -> Pdf2DcmError | None:
    """The error of the first failed check, or None when every check passed or was skipped."""
    return next((result.error for result in results if result.error is not None), None)
