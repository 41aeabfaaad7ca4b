"""Where connection settings come from, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdf2dcm.config import DEFAULT_URL, resolve_settings
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
        ({"ca_bundle": "/nonexistent.pem"}, r"CA bundle /nonexistent.pem does not exist"),
        ({"timeout": 0}, r"timeout 0 must be a positive number"),
    ],
)
def test_refused_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        resolve_settings(environ={}, netrc_file="/nonexistent", **kwargs)  # type: ignore[arg-type]
    assert "u:pw" not in str(caught.value)
