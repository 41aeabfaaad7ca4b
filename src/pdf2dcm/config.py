"""Connection settings and where they come from.

Precedence, for every setting: the explicit argument (a command-line option), then the
environment, then (user name and password only) ``~/.netrc`` for the server's host. A token
and a user name are mutually exclusive. Credentials are kept out of ``repr`` so that a logged
or printed Settings object never shows them, and a URL that carries them is refused because
it would put them in shell history and process listings.

Credentials go into an HTTP header, so a control character (CR, LF, TAB, ...) in a token,
user name or password is refused, with a message that never shows the value. One trailing
newline (``\n`` or ``\r\n``) is removed from values taken from the environment, where it
usually comes from a file (``ORTHANC_TOKEN="$(cat token)"`` keeps a CR); values given as
arguments are taken as they are. Non-ASCII user names and passwords are sent as UTF-8.
Every message that shows a URL shows it through :func:`redact_url`.
"""

from __future__ import annotations

import netrc
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigurationError

ENV_URL = "ORTHANC_URL"
ENV_USERNAME = "ORTHANC_USERNAME"
ENV_PASSWORD = "ORTHANC_PASSWORD"
ENV_TOKEN = "ORTHANC_TOKEN"
DEFAULT_URL = "http://localhost:8042"
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 3

_USERINFO = re.compile(r"(?P<user>[^\s/@:?#]*):(?P<secret>[^\s/?#]*)@")


def redact_url(text: str) -> str:
    """``text`` with the password of every ``user:password@`` in it replaced by ``***``.

    Works on anything that looks like a URL, well-formed or not (``ftp://u:pw@h``,
    ``http//u:pw@h``), so a message can show what was given without the secret.
    """
    return _USERINFO.sub(lambda match: f"{match['user']}:***@", text)


@dataclass(frozen=True)
class Settings:
    """Everything needed to talk to one Orthanc server."""

    url: str = DEFAULT_URL
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    verify_tls: bool = True
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    dicomweb_url: str | None = None
    """The DICOMweb root for STOW-RS; ``None`` means ``<url>/dicom-web``."""

    @property
    def stow_root(self) -> str:
        return (self.dicomweb_url or f"{self.url}/dicom-web").rstrip("/")


def resolve_settings(
    *,
    url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    ca_bundle: str | None = None,
    insecure: bool = False,
    timeout: float | None = None,
    retries: int | None = None,
    dicomweb_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    netrc_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Combine options, environment and netrc into checked Settings.

    Raises
    ------
    ConfigurationError
        A malformed URL, credentials inside the URL, a token together with a user name, a
        credential with a control character (never shown), a user name with ':', an
        unreadable netrc file, a missing CA bundle, or a non-positive timeout.
    """
    env = os.environ if environ is None else environ
    base = _check_url(url or env.get(ENV_URL) or DEFAULT_URL, "--url / ORTHANC_URL")
    if dicomweb_url is not None:
        dicomweb_url = _check_url(dicomweb_url, "--dicomweb-url")
    token = _credential(token, env, ENV_TOKEN, "token", "--token")
    username = _credential(username, env, ENV_USERNAME, "user name", "--username")
    password = _credential(password, env, ENV_PASSWORD, "password", "--password")
    if token is not None and (username is not None or password is not None):
        raise ConfigurationError(
            "give either a token (--token / ORTHANC_TOKEN) or a user name and password, not both"
        )
    if token is None and password is None:
        username, password = _from_netrc(base, username, netrc_file)
        _refuse_control(username, "user name", "the netrc file")
        _refuse_control(password, "password", "the netrc file")
    if username is not None and ":" in username:
        raise ConfigurationError(
            "a user name cannot contain ':' (HTTP Basic authentication ends the name there); "
            "check the user name"
        )
    if password is not None and username is None:
        raise ConfigurationError(
            "a password was given without a user name; set --username or ORTHANC_USERNAME"
        )
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise ConfigurationError(f"CA bundle {ca_bundle} does not exist; give a PEM file")
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"timeout {timeout} must be a positive number of seconds")
    return Settings(
        url=base,
        username=username,
        password=password,
        token=token,
        ca_bundle=ca_bundle,
        verify_tls=not insecure,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        retries=DEFAULT_RETRIES if retries is None else retries,
        dicomweb_url=dicomweb_url,
    )


def _credential(
    given: str | None, env: Mapping[str, str], name: str, what: str, option: str
) -> str | None:
    """The option's value, else the environment's minus one trailing newline; checked."""
    if given:
        _refuse_control(given, what, option)
        return given
    value = env.get(name) or ""
    value = value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value
    _refuse_control(value, what, name)
    return value or None


def _refuse_control(value: str | None, what: str, source: str) -> None:
    if value is not None and any(unicodedata.category(char) == "Cc" for char in value):
        raise ConfigurationError(
            f"the {what} from {source} contains a control character (a line break, tab or "
            "similar), which cannot go into an HTTP header; remove it"
        )


def _shown_url(value: str) -> str:
    text = redact_url(value.strip())
    return repr(text if len(text) <= 100 else text[:100] + "...")


def _check_url(value: str, source: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"server URL {_shown_url(value)} ({source}) must look like http://host:8042 or "
            "https://host"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"the server URL ({source}) contains credentials; remove them and use "
            "ORTHANC_USERNAME/ORTHANC_PASSWORD, ~/.netrc or --token instead"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ConfigurationError(
            f"server URL {_shown_url(value)} ({source}) has an invalid port"
        ) from None
    return value.strip().rstrip("/")


def _from_netrc(
    url: str, username: str | None, netrc_file: str | os.PathLike[str] | None
) -> tuple[str | None, str | None]:
    host = urlsplit(url).hostname or ""
    try:
        entries = netrc.netrc(os.fspath(netrc_file) if netrc_file is not None else None)
    except FileNotFoundError:
        return username, None
    except netrc.NetrcParseError as exc:
        # Its message quotes the file's text, which may be a password: show only where.
        where = exc.filename or "the netrc file"
        if "permissive" in exc.msg or "owner" in exc.msg:
            cause = "its permissions let other users read it; chmod 600 it"
        else:
            cause = f"it cannot be parsed near line {exc.lineno}; check its syntax"
        raise ConfigurationError(f"cannot read {where}: {cause}") from None
    except OSError as exc:
        where = exc.filename or "the netrc file"
        raise ConfigurationError(f"cannot read {where}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigurationError("cannot read the netrc file: it is not valid text") from None
    found = entries.authenticators(host)
    if found is None:
        return username, None
    login, _account, secret = found
    if username is not None and login and login != username:
        return username, None
    return username or login or None, secret or None
