"""Profiles of the config file: selection, precedence over netrc and under the environment,
and the refusal of secrets other users can read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pdf2dcm import config
from pdf2dcm.config import Profile, config_path, load_profile, resolve_settings
from pdf2dcm.errors import ConfigurationError

PACS = """
[profiles.pacs]
url = "https://pacs.example.org"
username = "alice"
password-file = "alice.password"
ca-bundle = "ca.pem"
dicomweb-url = "https://pacs.example.org/wado"
method = "stow"

[profiles.pacs.tags]
InstitutionName = "Klinikum"
PatientID = "X"

[profiles.default]
url = "http://default.example.org:8042"
"""


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    write(tmp_path / "alice.password", "s3cret\n")
    write(tmp_path / "ca.pem", "-----BEGIN CERTIFICATE-----\n", 0o644)
    return write(tmp_path / "config.toml", PACS, 0o644)


def test_the_config_file_lives_under_xdg_config_home_unless_pdf2dcm_config_names_one() -> None:
    assert config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/pdf2dcm/config.toml")
    assert config_path({"HOME": "/h"}) == Path("/h/.config/pdf2dcm/config.toml")
    assert config_path({"PDF2DCM_CONFIG": "/etc/p.toml", "XDG_CONFIG_HOME": "/x"}) == Path(
        "/etc/p.toml"
    )


def test_a_named_profile_is_read_with_its_secret_file(config_file: Path) -> None:
    profile = load_profile("pacs", environ={}, path=config_file)
    assert profile == Profile(
        name="pacs",
        source=config_file,
        url="https://pacs.example.org",
        username="alice",
        password="s3cret",
        ca_bundle=str(config_file.parent / "ca.pem"),
        dicomweb_url="https://pacs.example.org/wado",
        tags={"InstitutionName": "Klinikum", "PatientID": "X"},
        method="stow",
        named=True,
    )
    assert "s3cret" not in repr(profile)


def test_the_profile_comes_from_the_environment_else_default(config_file: Path) -> None:
    from_env = load_profile(environ={"PDF2DCM_PROFILE": "pacs"}, path=config_file)
    assert from_env is not None
    assert from_env.name == "pacs"
    assert not from_env.named
    named = load_profile("pacs", environ={"PDF2DCM_PROFILE": "default"}, path=config_file)
    assert named == dataclasses.replace(from_env, named=True)
    default = load_profile(environ={}, path=config_file)
    assert default is not None
    assert default.name == "default"


def test_no_file_and_no_profile_asked_for_is_no_profile(tmp_path: Path) -> None:
    assert load_profile(environ={"XDG_CONFIG_HOME": str(tmp_path)}) is None
    only_named = write(tmp_path / "c.toml", '[profiles.pacs]\nurl = "http://p"\n')
    assert load_profile(environ={}, path=only_named) is None


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("", "pacs", r"^no profile pacs in .*c\.toml \(its profiles: none\); check --profile"),
        ('[profiles.a]\nurl = "http://a"\n', "b", r"no profile b in .* \(its profiles: a\)"),
        ("[profiles.a]\nurl = \n", "a", r"c\.toml: Invalid value \(at line 2, column 7\); check"),
        ('[profiles.a]\nurl = "http://a"\nusr = "x"\n', "a", r"profile a in .*: unknown key 'usr'"),
        ("[profiles.a]\nurl = 8042\n", "a", r"url must be a non-empty string"),
        ('[profiles.a]\nmethod = "ftp"\n', "a", r"method must be one of instances, create-dicom"),
        ('[profiles.a]\npassword = "p"\n', "a", r"a password needs a username"),
        ('[profiles.a]\ntoken = "t"\nusername = "u"\n', "a", r"a token or a user name"),
        ('[profiles.a]\ntags = "x"\n', "a", r"tags must be a table"),
        ('url = "http://a"\n', None, r"unknown key 'url'; profiles go in \[profiles.NAME\]"),
        ('[profiles.a]\nusername = "u\\nx"\n', "a", r"user name from profile a .* control char"),
    ],
)
def test_bad_config_files_are_refused_with_the_place(
    tmp_path: Path, text: str, name: str | None, message: str
) -> None:
    file = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigurationError, match=message):
        load_profile(name, environ={}, path=file)


def test_a_missing_file_is_an_error_only_when_asked_for(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"profile pacs was asked for, but the config"):
        load_profile("pacs", environ={"XDG_CONFIG_HOME": str(tmp_path)})
    with pytest.raises(ConfigurationError, match=r"config file /nope.toml \(PDF2DCM_CONFIG\)"):
        load_profile(environ={"PDF2DCM_CONFIG": "/nope.toml"})


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_config_file_holding_a_secret_that_others_can_read_is_refused(
    tmp_path: Path, mode: int
) -> None:
    # The secret sits in another profile than the one chosen: it is exposed all the same.
    file = write(
        tmp_path / "c.toml",
        '[profiles.a]\nurl = "http://a"\n[profiles.b]\nusername = "u"\npassword = "pw"\n',
        mode,
    )
    with pytest.raises(ConfigurationError) as caught:
        load_profile("a", environ={}, path=file)
    assert str(caught.value).startswith(
        f"refusing the config file, which holds a password or token, {file}: its permissions "
    )
    assert str(caught.value).endswith(f"let other users read or change it; chmod 600 {file}")
    assert "pw" not in str(caught.value)
    file.chmod(0o600)
    assert load_profile("b", environ={}, path=file) is not None


def test_a_secret_file_that_others_can_read_is_refused(config_file: Path) -> None:
    (config_file.parent / "alice.password").chmod(0o644)
    with pytest.raises(ConfigurationError, match=r"refusing the password file of profile pacs"):
        load_profile("pacs", environ={}, path=config_file)
    # A profile without secrets may stay world-readable, like most config files.
    assert load_profile("default", environ={}, path=config_file) is not None


def test_python_without_tomllib_is_told_so(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "_toml", lambda: None)
    with pytest.raises(ConfigurationError, match=r"needs Python 3.11 or later \(tomllib\)"):
        load_profile("pacs", environ={}, path=config_file)


NETRC = "machine pacs.example.org login bob password from-netrc\n"


@pytest.fixture
def netrc_file(tmp_path: Path) -> Path:
    return write(tmp_path / "netrc", NETRC)


@pytest.fixture
def pacs(config_file: Path) -> Profile:
    profile = load_profile("pacs", environ={}, path=config_file)
    assert profile is not None
    return profile


def test_precedence_option_then_environment_then_profile_then_netrc_then_default(
    pacs: Profile, netrc_file: Path
) -> None:
    env = {"ORTHANC_URL": "http://env:8042"}
    assert resolve_settings(url="http://opt", environ=env, profile=pacs).url == "http://opt"
    chosen_by_environment = dataclasses.replace(pacs, named=False)
    assert resolve_settings(environ=env, profile=chosen_by_environment).url == "http://env:8042"
    from_profile = resolve_settings(environ={}, profile=pacs, netrc_file=netrc_file)
    assert from_profile.url == "https://pacs.example.org"
    assert (from_profile.username, from_profile.password) == ("alice", "s3cret")
    assert from_profile.stow_root == "https://pacs.example.org/wado"
    assert from_profile.ca_bundle == pacs.ca_bundle
    without = resolve_settings(
        url="https://pacs.example.org", environ={}, profile=None, netrc_file=netrc_file
    )
    assert (without.username, without.password) == ("bob", "from-netrc")
    assert resolve_settings(environ={}, netrc_file=netrc_file).url == config.DEFAULT_URL


def test_credentials_from_the_environment_are_not_mixed_with_the_profiles(pacs: Profile) -> None:
    token = resolve_settings(environ={"ORTHANC_TOKEN": "t"}, profile=pacs)
    assert (token.token, token.username, token.password) == ("t", None, None)
    other = resolve_settings(username="carol", environ={}, profile=pacs, netrc_file="/none")
    assert (other.username, other.password) == ("carol", None)
    same = resolve_settings(username="alice", environ={}, profile=pacs)
    assert (same.username, same.password) == ("alice", "s3cret")
    env_password = resolve_settings(
        environ={"ORTHANC_USERNAME": "alice", "ORTHANC_PASSWORD": "env"}, profile=pacs
    )
    assert env_password.password == "env"


def test_a_bad_url_in_a_profile_names_the_profile(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", '[profiles.x]\nurl = "ftp://x"\n')
    profile = load_profile("x", environ={}, path=file)
    assert profile is not None
    with pytest.raises(ConfigurationError, match=rf"\(profile x in {file}\) must look like"):
        resolve_settings(environ={}, profile=profile)


def test_a_token_file(tmp_path: Path) -> None:
    write(tmp_path / "tok", "abc\r\n")
    file = write(tmp_path / "c.toml", '[profiles.t]\ntoken-file = "tok"\n', 0o644)
    profile = load_profile("t", environ={}, path=file)
    assert profile is not None
    assert resolve_settings(environ={}, profile=profile).token == "abc"


def test_a_profile_named_explicitly_wins_over_orthanc_url_and_says_so(pacs: Profile) -> None:
    settings = resolve_settings(environ={"ORTHANC_URL": "http://env:8042"}, profile=pacs)
    assert settings.url == "https://pacs.example.org"
    assert (settings.username, settings.password) == ("alice", "s3cret")
    assert settings.notices == (
        f"ORTHANC_URL (http://env:8042) is not used: {pacs.where}, named on the command line, "
        "sends to https://pacs.example.org",
    )
    same = resolve_settings(environ={"ORTHANC_URL": "https://PACS.example.org:443/"}, profile=pacs)
    assert same.notices == ()


@pytest.mark.parametrize(
    "url",
    [
        "http://pacs.example.org",  # https -> http
        "https://pacs.example.org:8443",  # another port
        "https://logger.example.org",  # another host
    ],
)
def test_a_profiles_credentials_never_go_to_another_origin(pacs: Profile, url: str) -> None:
    by_environment = dataclasses.replace(pacs, named=False)
    for settings in (
        resolve_settings(url=url, environ={}, profile=pacs, netrc_file="/none"),
        resolve_settings(environ={"ORTHANC_URL": url}, profile=by_environment, netrc_file="/none"),
    ):
        assert settings.url == url
        assert (settings.username, settings.password, settings.token) == (None, None, None)
        assert settings.notices == (
            f"the credentials of {pacs.where} belong to https://pacs.example.org, not to {url}; "
            "they are not sent",
        )


def test_a_profiles_credentials_are_bound_to_its_own_servers(pacs: Profile) -> None:
    settings = resolve_settings(environ={}, profile=pacs)
    assert settings.origins == {"https://pacs.example.org:443"}
    given = resolve_settings(url="http://h:8042", username="u", password="p", environ={})
    assert given.origins == {"http://h:8042"}
