"""Where connection settings come from, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdf2dcm.config import DEFAULT_URL, redact_url, resolve_settings
from pdf2dcm.errors import ConfigurationError


def test_defaults() -> None:
    settings = resolve_settings(environ={}, netrc_file="/nonexistent")
    assert settings.url == DEFAULT_URL
    assert settings.username is None
    assert settings.verify_tls is True
    assert settings.stow_root == f"{DEFAULT_URL}/dicom-web"


def test_option_beats_environment() -> None:
    env = {
        "ORTHANC_URL": "http://env:8042",
        "ORTHANC_USERNAME": "env-user",
        "ORTHANC_PASSWORD": "p",
    }
    settings = resolve_settings(url="https://opt/", username="opt-user", environ=env)
    assert settings.url == "https://opt"
    assert settings.username == "opt-user"
    assert settings.password == "p"


def test_netrc_is_last(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine pacs.local login bob password hunter2\n", encoding="utf-8")
    netrc.chmod(0o600)
    settings = resolve_settings(url="http://pacs.local:8042", environ={}, netrc_file=netrc)
    assert (settings.username, settings.password) == ("bob", "hunter2")
    other = resolve_settings(
        url="http://pacs.local", username="carol", environ={}, netrc_file=netrc
    )
    assert (other.username, other.password) == ("carol", None)


def test_password_and_token_stay_out_of_repr() -> None:
    settings = resolve_settings(username="u", password="hunter2", environ={})
    assert "hunter2" not in repr(settings)
    assert "tok-123" not in repr(resolve_settings(token="tok-123", environ={}))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://x"}, r"must look like http://host:8042"),
        ({"url": "http://u:pw@host"}, r"contains credentials; remove them"),
        ({"url": "http://host:99999"}, r"has an invalid port"),
        ({"token": "t", "username": "u"}, r"either a token .* not both"),
        ({"password": "p"}, r"password was given without a user name"),
        ({"username": "u:pw", "password": "p"}, r"user name cannot contain ':'"),
        ({"ca_bundle": "/nonexistent.pem"}, r"CA bundle /nonexistent.pem does not exist"),
        ({"timeout": 0}, r"timeout 0 must be a positive number"),
    ],
)
def test_refused_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        resolve_settings(environ={}, netrc_file="/nonexistent", **kwargs)  # type: ignore[arg-type]
    assert "u:pw" not in str(caught.value)


@pytest.mark.parametrize("secret", ["Zq9\r", "Zq9\r\nX-Evil: 1", "Zq\n9", "Z\x00q9", "Zq9\t"])
@pytest.mark.parametrize(
    ("field", "name", "where"),
    [
        ("token", "ORTHANC_TOKEN", "token"),
        ("password", "ORTHANC_PASSWORD", "password"),
        ("username", "ORTHANC_USERNAME", "user name"),
    ],
)
def test_control_characters_in_credentials_are_refused_unseen(
    secret: str, field: str, name: str, where: str
) -> None:
    partner = {"password": {"username": "u"}, "username": {"password": "p"}}.get(field, {})
    with pytest.raises(ConfigurationError) as from_option:
        resolve_settings(environ={}, netrc_file="/nonexistent", **{field: secret}, **partner)  # type: ignore[arg-type]
    option = "--" + field
    assert str(from_option.value) == (
        f"the {where} from {option} contains a control character (a line break, tab or "
        "similar), which cannot go into an HTTP header; remove it"
    )
    with pytest.raises(ConfigurationError) as from_env:
        resolve_settings(environ={name: secret}, netrc_file="/nonexistent", **partner)  # type: ignore[arg-type]
    assert f"the {where} from {name} contains a control character" in str(from_env.value)
    for caught in (from_option, from_env):
        assert "q9" not in str(caught.value)
        assert "Zq" not in str(caught.value)
        assert "X-Evil" not in str(caught.value)


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_one_trailing_newline_is_removed_from_the_environment_only(ending: str) -> None:
    settings = resolve_settings(environ={"ORTHANC_TOKEN": "tok" + ending})
    assert settings.token == "tok"
    user = resolve_settings(
        environ={"ORTHANC_USERNAME": "u" + ending, "ORTHANC_PASSWORD": "p" + ending}
    )
    assert (user.username, user.password) == ("u", "p")
    with pytest.raises(ConfigurationError, match=r"token from ORTHANC_TOKEN contains a control"):
        resolve_settings(environ={"ORTHANC_TOKEN": "tok" + ending * 2})
    with pytest.raises(ConfigurationError, match=r"token from --token contains a control"):
        resolve_settings(token="tok" + ending, environ={})


def test_non_ascii_credentials_are_kept() -> None:
    settings = resolve_settings(username="jörg", password="pässwörd€", environ={})
    assert (settings.username, settings.password) == ("jörg", "pässwörd€")


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"url": "ftp://user:pw-secret@h"}, "'ftp://user:***@h' (--url)"),
        ({"url": "http//u:pw-secret@h"}, "'http//u:***@h' (--url)"),
        ({"url": "http://u:pw-secret@h:99999x"}, "(--url) contains credentials"),
        ({"dicomweb_url": "ftp://u:pw-secret@h/dicom-web"}, "'ftp://u:***@h/dicom-web'"),
        ({"url": "http://u:p@ss-secret@h:x"}, "contains credentials"),
    ],
)
def test_urls_with_credentials_are_never_echoed(kwargs: dict[str, str], shown: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(environ={}, netrc_file="/nonexistent", **kwargs)  # type: ignore[arg-type]
    assert shown in str(caught.value)
    assert "secret" not in str(caught.value)


def test_environment_url_with_credentials_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(environ={"ORTHANC_URL": "gopher://me:pw-secret@h"})
    assert "secret" not in str(caught.value)
    assert "me:***@h" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://u:pw@h/x", "http://u:***@h/x"),
        (
            "see ftp://user:p@ss:w@host:21/a and http://h/b",
            "see ftp://user:***@host:21/a and http://h/b",
        ),
        ("http://only-user@h", "http://only-user@h"),
        ("http//u:pw@h", "http//u:***@h"),
        ("no url here: a:b", "no url here: a:b"),
        ("http://h/x?token=abc&a=&flag", "http://h/x?token=***&a=&***"),
        ("GET http://h:8042/jobs?expand= failed", "GET http://h:8042/jobs?expand= failed"),
        ("https://u:pw@h/p?k=v;s=t#top", "https://u:***@h/p?k=***;s=***#top"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_a_broken_netrc_is_reported_without_its_content(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine pacs.local login bob password PART1 PART2 secret\n", encoding="utf-8")
    netrc.chmod(0o600)
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(url="http://pacs.local", environ={}, netrc_file=netrc)
    assert (
        str(caught.value)
        == f"cannot read {netrc}: it cannot be parsed near line 1; check its syntax"
    )


def test_control_characters_from_netrc_are_refused(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text('machine pacs.local login bob password "Zq\t9"\n', encoding="utf-8")
    netrc.chmod(0o600)
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(url="http://pacs.local", environ={}, netrc_file=netrc)
    assert str(caught.value).startswith("the password from the netrc file contains a control")
    assert "Zq" not in str(caught.value)


@pytest.mark.parametrize(
    "text", ["a" * 200_000, "a:" * 100_000, ":@" * 100_000, "?=&" * 70_000, "u:" * 99_999 + "@"]
)
def test_redaction_takes_linear_time(text: str) -> None:
    import time

    start = time.perf_counter()
    redact_url(text)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("url", ["http://h:8042/?token=s3cret", "http://h:8042#s3cret"])
def test_a_server_url_with_a_query_or_fragment_is_refused_unshown(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(url=url, environ={})
    assert "s3cret" not in str(caught.value)
    assert "query string or fragment" in str(caught.value)
