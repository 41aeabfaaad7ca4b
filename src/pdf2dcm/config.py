"""Connection settings and where they come from.

Precedence, for every setting: the explicit argument (a command-line option), then the
environment, then the selected profile of the config file, then (user name and password only)
``~/.netrc`` for the server's host, then the default. A token and a user name are mutually
exclusive; credentials from the environment or an option are not mixed with a profile's,
except a profile's password for the same user name (as netrc does).

The config file is ``$XDG_CONFIG_HOME/pdf2dcm/config.toml`` (``~/.config/...``), or the file
named by ``PDF2DCM_CONFIG``; it holds named profiles (``[profiles.NAME]``). The profile is the
one named by the argument, else ``PDF2DCM_PROFILE``, else the one called ``default`` if the
file has it. Like ssh with a private key, a config file that holds a password or token and
that other users can read or change is refused, and so is a password or token file they can
read or change. The file is TOML, read with the standard library's ``tomllib`` (Python 3.11
and later); on Python 3.10 a config file is refused with a message saying so, rather than
parsed half-way. Credentials are kept out of ``repr`` so that a logged
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

import dataclasses
import netrc
import os
import re
import stat
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, Pdf2DcmError
from .files import MAX_SETTINGS_FILE, read_bounded


def _toml() -> tuple[Callable[[str], dict[str, Any]], type[Exception]] | None:
    """tomllib's parser and error, imported only when there is a config file to read."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads, tomllib.TOMLDecodeError
    return None  # pragma: no cover - Python 3.10 has no tomllib, and tomli is not a dependency


ENV_URL = "ORTHANC_URL"
ENV_USERNAME = "ORTHANC_USERNAME"
ENV_PASSWORD = "ORTHANC_PASSWORD"
ENV_TOKEN = "ORTHANC_TOKEN"
ENV_CONFIG = "PDF2DCM_CONFIG"
ENV_PROFILE = "PDF2DCM_PROFILE"
DEFAULT_PROFILE = "default"
METHODS = ("instances", "create-dicom", "stow", "dimse")
DEFAULT_URL = "http://localhost:8042"
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 3

_WHITESPACE = re.compile(r"(\s+)")
_SEGMENT = re.compile(r"([/#])")
REDACTED = "***"


def redact_url(text: str) -> str:
    """``text`` with every secret of a URL in it replaced by ``***``: the password of each
    ``user:password@``, and each value of a query string (``?token=***&user=***``).

    Works on anything that looks like a URL, well-formed or not (``ftp://u:pw@h``,
    ``http//u:pw@h``), so a message can show what was given without the secret. It takes time
    linear in the length of ``text``, however the text is made.
    """
    return "".join(_redact_word(word) for word in _WHITESPACE.split(text))


def _redact_word(word: str) -> str:
    if not word or word.isspace():
        return word
    address, mark, rest = word.partition("?")
    address = "".join(_redact_userinfo(part) for part in _SEGMENT.split(address))
    if not mark:
        return address
    query, hash_mark, fragment = rest.partition("#")
    return f"{address}?{_redact_query(query)}{hash_mark}{fragment}"


def _redact_userinfo(segment: str) -> str:
    """``user:secret@host`` -> ``user:***@host``: from the first ``:`` to the last ``@``."""
    colon = segment.find(":")
    at = segment.rfind("@")
    if colon < 0 or at < colon:
        return segment
    return f"{segment[:colon]}:{REDACTED}{segment[at:]}"


def _redact_query(query: str) -> str:
    items = []
    for item in re.split(r"([&;])", query):
        key, equals, value = item.partition("=")
        if item in ("&", ";") or (equals and not value) or not item:
            items.append(item)
        else:
            items.append(f"{key}={REDACTED}" if equals else REDACTED)
    return "".join(items)


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, the port made explicit, for comparing servers."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port or default}"


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
    credential_origins: frozenset[str] | None = None
    """The servers (:func:`origin_of`) the credentials may be sent to; ``None`` means those of
    ``url`` and ``dicomweb_url``."""
    notices: tuple[str, ...] = ()
    """What the caller should be told about how the settings were chosen (one line each)."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """Where ``url`` and the credentials came from (keys ``url``, ``credentials``), for
    ``pdf2dcm check``: ``--url``, ``ORTHANC_URL``, ``profile NAME in FILE``, ``~/.netrc``..."""

    @property
    def stow_root(self) -> str:
        return (self.dicomweb_url or f"{self.url}/dicom-web").rstrip("/")

    @property
    def origins(self) -> frozenset[str]:
        """The servers the credentials belong to; no other is ever sent them."""
        if self.credential_origins is not None:
            return self.credential_origins
        return frozenset(origin_of(url) for url in (self.url, self.stow_root))


@dataclass(frozen=True)
class Profile:
    """One ``[profiles.NAME]`` table of the config file, checked; secrets already read.

    ``tags`` are the raw default tags (as in a ``--tags-file``) for
    :func:`pdf2dcm.tags.validate_tags`; ``method`` is the default upload method.
    """

    name: str
    source: Path
    url: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    dicomweb_url: str | None = None
    tags: Mapping[str, object] = field(default_factory=dict)
    method: str | None = None
    named: bool = False
    """Named explicitly (on the command line, or by the caller), not by the environment or
    as the default: then its URL wins over ``ORTHANC_URL``."""
    calling_aet: str | None = None
    """The AE title pdf2dcm calls DICOM nodes from (``pdf2dcm.dimse``)."""
    scp: str | None = None
    """The DICOM node (``AET@HOST:PORT``) documents go to with ``method = "dimse"``."""

    @property
    def where(self) -> str:
        return f"profile {self.name} in {self.source}"


_TEXT_KEYS = (
    *("url", "username", "password", "token", "ca-bundle", "dicomweb-url", "method"),
    *("calling-aet", "scp"),
)
_FILE_KEYS = ("password-file", "token-file")
_PROFILE_KEYS = frozenset((*_TEXT_KEYS, *_FILE_KEYS, "tags"))
_SECRET_KEYS = ("password", "token")


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``PDF2DCM_CONFIG``, else ``$XDG_CONFIG_HOME/pdf2dcm/config.toml`` (``~/.config``)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or "~", ".config")
    return Path(base).expanduser() / "pdf2dcm" / "config.toml"


def load_profile(
    name: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    path: str | os.PathLike[str] | None = None,
    named: bool | None = None,
) -> Profile | None:
    """The selected profile of the config file, or None when none applies.

    ``name``, else ``PDF2DCM_PROFILE``, else ``default`` if the file has such a profile.
    No file and no profile asked for is no error: profiles are optional. ``named`` says
    whether ``name`` was chosen explicitly (default: whenever it is given); a profile named
    explicitly takes its URL over ``ORTHANC_URL``.

    Raises
    ------
    ConfigurationError
        A profile asked for that the file lacks (or no file), a file that cannot be read or
        parsed, an unknown key, a value of the wrong type, a secret that other users can read
        (in the file itself or in a password/token file), or Python 3.10 (no tomllib).
    """
    env = os.environ if environ is None else environ
    chosen = name or env.get(ENV_PROFILE) or None
    file = Path(path) if path is not None else config_path(env)
    if not file.exists():
        if chosen is not None:
            raise ConfigurationError(
                f"profile {chosen} was asked for, but the config file {file} does not exist; "
                f"create it with a [profiles.{chosen}] table, or set {ENV_CONFIG}"
            )
        if path is not None or env.get(ENV_CONFIG):
            raise ConfigurationError(
                f"config file {file} ({ENV_CONFIG}) does not exist; fix the path"
            )
        return None
    profiles = _profiles(_read_config(file), file)
    if chosen is None:
        if DEFAULT_PROFILE not in profiles:
            return None
        chosen = DEFAULT_PROFILE
    if chosen not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigurationError(
            f"no profile {chosen} in {file} (its profiles: {known}); check --profile or "
            f"{ENV_PROFILE}"
        )
    if any(key in table for table in profiles.values() for key in _SECRET_KEYS):
        _refuse_open_permissions(file, "config file, which holds a password or token,")
    profile = _profile(chosen, profiles[chosen], file)
    explicit = name is not None if named is None else named
    return dataclasses.replace(profile, named=explicit and chosen == name)


def _read_config(file: Path) -> dict[str, Any]:
    toml = _toml()
    if toml is None:
        raise ConfigurationError(
            f"reading the config file {file} needs Python 3.11 or later (tomllib); upgrade "
            f"Python, or move the file away and use options and the environment"
        )
    try:
        text = _read_settings_file(file, "config file").decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"cannot read {file}: it is not UTF-8 text") from None
    parse, toml_error = toml
    try:
        return parse(text)
    except toml_error as exc:
        # tomllib's message gives the place, never the text (which may hold a password).
        raise ConfigurationError(f"cannot read {file}: {exc}; check its TOML syntax") from None
    except RecursionError:
        raise ConfigurationError(
            f"cannot read {file}: its tables or arrays nest too deep; check its TOML syntax"
        ) from None


def _read_settings_file(file: Path, what: str) -> bytes:
    """A config or secret file: a regular file of at most 1 MiB, never a FIFO or device."""
    try:
        return read_bounded(file, what=what, limit=MAX_SETTINGS_FILE)
    except Pdf2DcmError as exc:
        raise ConfigurationError(str(exc)) from None


def _profiles(data: Mapping[str, Any], file: Path) -> dict[str, dict[str, Any]]:
    unknown = sorted(set(data) - {"profiles"})
    if unknown:
        raise ConfigurationError(
            f"{file}: unknown key {unknown[0]!r}; profiles go in [profiles.NAME] tables"
        )
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(t, dict) for t in profiles.values()):
        raise ConfigurationError(f"{file}: 'profiles' must hold [profiles.NAME] tables")
    return profiles


def _profile(name: str, table: Mapping[str, Any], file: Path) -> Profile:
    where = f"profile {name} in {file}"
    unknown = sorted(set(table) - _PROFILE_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_PROFILE_KEYS))}"
        )
    text = _strings(table, where)
    _read_secrets(text, file, where)
    if text["token"] is not None and text["username"] is not None:
        raise ConfigurationError(f"{where}: give a token or a user name and password, not both")
    if text["password"] is not None and text["username"] is None:
        raise ConfigurationError(f"{where}: a password needs a username")
    if text["method"] is not None and text["method"] not in METHODS:
        raise ConfigurationError(f"{where}: method must be one of {', '.join(METHODS)}")
    tags = table.get("tags", {})
    if not isinstance(tags, dict):
        raise ConfigurationError(f"{where}: tags must be a table of KEYWORD = value")
    return Profile(
        name=name,
        source=file,
        url=text["url"],
        username=text["username"],
        password=text["password"],
        token=text["token"],
        ca_bundle=str(_beside(file, text["ca-bundle"])) if text["ca-bundle"] else None,
        dicomweb_url=text["dicomweb-url"],
        tags=dict(tags),
        method=text["method"],
        calling_aet=text["calling-aet"],
        scp=text["scp"],
    )


def _strings(table: Mapping[str, Any], where: str) -> dict[str, str | None]:
    """The profile's text values by key (None when absent), each a non-empty string."""
    text: dict[str, str | None] = {}
    for key in (*_TEXT_KEYS, *_FILE_KEYS):
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigurationError(f"{where}: {key} must be a non-empty string")
        text[key] = value
    _refuse_control(text["username"], "user name", where)
    return text


def _read_secrets(text: dict[str, str | None], file: Path, where: str) -> None:
    """Replace ``password-file``/``token-file`` by the secret they hold; check each secret."""
    for key in _SECRET_KEYS:
        named = text[f"{key}-file"]
        if text[key] is not None and named is not None:
            raise ConfigurationError(f"{where}: give {key} or {key}-file, not both")
        if named is not None:
            text[key] = _read_secret(_beside(file, named), key, where)
        _refuse_control(text[key], key, where)


def _beside(file: Path, name: str) -> Path:
    """A path of the config file: ``~`` expanded, relative ones taken from the file's folder."""
    return file.parent / Path(name).expanduser()


def _refuse_open_permissions(file: Path, what: str) -> None:
    try:
        mode = file.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(f"cannot read {file}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"refusing the {what} {file}: its permissions ({stat.filemode(mode)}) let other "
            f"users read or change it; chmod 600 {file}"
        )


def _read_secret(file: Path, key: str, where: str) -> str:
    """A password or token file's content minus one trailing newline; 0600 required."""
    _refuse_open_permissions(file, f"{key} file of {where},")
    try:
        value = _read_settings_file(file, f"{key} file of {where},").decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"the {key} file {file} ({where}) is not UTF-8 text") from None
    value = value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value
    if not value:
        raise ConfigurationError(f"the {key} file {file} ({where}) is empty")
    return value


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
    profile: Profile | None = None,
) -> Settings:
    """Combine options, environment, a profile and netrc into checked Settings.

    ``profile`` comes from :func:`load_profile`; it fills what options and environment left
    unset (see the module's precedence rules).

    Raises
    ------
    ConfigurationError
        A malformed URL, credentials inside the URL, a token together with a user name, a
        credential with a control character (never shown), a user name with ':', an
        unreadable netrc file, a missing CA bundle, or a non-positive timeout.
    """
    env = os.environ if environ is None else environ
    notices: list[str] = []
    base, dicomweb_url, url_source = _urls(url, dicomweb_url, env, profile, notices)
    sources = {"url": url_source}
    sources["credentials"] = _given_credentials(token, username, password, env)
    token = _credential(token, env, ENV_TOKEN, "token", "--token")
    username = _credential(username, env, ENV_USERNAME, "user name", "--username")
    password = _credential(password, env, ENV_PASSWORD, "password", "--password")
    origins = {origin_of(base)} | ({origin_of(dicomweb_url)} if dicomweb_url else set())
    if profile is not None:
        given = (token, username, password)
        token, username, password, home = _with_profile_bound(profile, given, base, notices)
        origins = set(home or origins)
        if (token, username, password) != given:
            sources["credentials"] = profile.where
    if ca_bundle is None and profile is not None:
        ca_bundle = profile.ca_bundle
    if token is not None and (username is not None or password is not None):
        raise ConfigurationError(
            "give either a token (--token / ORTHANC_TOKEN) or a user name and password, not both"
        )
    if token is None and password is None:
        username, password = _from_netrc(base, username, netrc_file)
        sources["credentials"] = "netrc" if password is not None else sources["credentials"]
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
        credential_origins=frozenset(origins),
        notices=tuple(notices),
        sources=sources,
    )


def _given_credentials(
    token: str | None, username: str | None, password: str | None, env: Mapping[str, str]
) -> str:
    if token or username or password:
        return "options"
    if any(env.get(name) for name in (ENV_TOKEN, ENV_USERNAME, ENV_PASSWORD)):
        return "environment"
    return ""


def _with_profile_bound(
    profile: Profile,
    given: tuple[str | None, str | None, str | None],
    base: str,
    notices: list[str],
) -> tuple[str | None, str | None, str | None, frozenset[str] | None]:
    """Token, user name and password after the profile, and the servers they may go to
    when the profile gave any (None: those of the URL in use).

    A profile's credentials belong to its own URL's scheme, host and port: for any other
    server they are left out, with a notice.
    """
    token, username, password = _with_profile(profile, *given)
    if (token, username, password) == given:
        return (*given, None)
    home = _profile_origins(profile)
    if home is not None and origin_of(base) not in home:
        notices.append(
            f"the credentials of {profile.where} belong to {redact_url(profile.url or '')}, "
            f"not to {redact_url(base)}; they are not sent"
        )
        return (*given, None)
    return token, username, password, home


def _profile_origins(profile: Profile) -> frozenset[str] | None:
    """The servers a profile's credentials belong to: its URL's and its DICOMweb root's;
    None for a profile without a URL (its credentials go where the URL in use points)."""
    if profile.url is None:
        return None
    urls = (profile.url, profile.dicomweb_url or profile.url)
    return frozenset(origin_of(each) for each in urls)


def _urls(
    url: str | None,
    dicomweb_url: str | None,
    env: Mapping[str, str],
    profile: Profile | None,
    notices: list[str],
) -> tuple[str, str | None, str]:
    """The server URL, the DICOMweb root (both checked, each message naming where it came
    from) and where the URL came from.

    The option wins; a profile named explicitly wins over ``ORTHANC_URL`` (said in a
    notice when the two differ); ``ORTHANC_URL`` wins over a profile chosen otherwise.
    """
    from_env = env.get(ENV_URL)
    if url:
        base, source = _check_url(url, "--url"), "--url"
    elif profile is not None and profile.url is not None and (profile.named or not from_env):
        base, source = _check_url(profile.url, profile.where), profile.where
        if from_env and origin_of(from_env) != origin_of(base):
            notices.append(
                f"{ENV_URL} ({redact_url(from_env.strip())[:100]}) is not used: "
                f"{profile.where}, named on the command line, sends to {redact_url(base)}"
            )
    else:
        base = _check_url(from_env or DEFAULT_URL, ENV_URL)
        source = ENV_URL if from_env else "the default"
    if dicomweb_url is not None:
        return base, _check_url(dicomweb_url, "--dicomweb-url"), source
    if profile is not None and profile.dicomweb_url is not None:
        return base, _check_url(profile.dicomweb_url, f"dicomweb-url of {profile.where}"), source
    return base, None, source


def _with_profile(
    profile: Profile, token: str | None, username: str | None, password: str | None
) -> tuple[str | None, str | None, str | None]:
    """Credentials after the profile: it fills them only where options and environment
    gave none, or gives its password to the same user name (never to another)."""
    if token is None and username is None and password is None:
        return profile.token, profile.username, profile.password
    if token is None and password is None and profile.username in (None, username):
        return None, username, profile.password
    return token, username, password


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
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ConfigurationError(
            f"server URL {origin_of(value)}/... ({source}) has a query string or fragment; give "
            "the server's base URL, and a token with --token or ORTHANC_TOKEN"
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
