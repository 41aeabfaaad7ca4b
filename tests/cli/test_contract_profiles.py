"""Profiles through the command line: --profile, PDF2DCM_PROFILE, and what beats them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import app, cli
from pdf2dcm.cli.common import collect_tags, current_profile, profile_choice
from pdf2dcm.errors import TagError
from tests.cli.test_contract import JOB, fake, job_json
from tests.fake_orthanc import FakeOrthanc, serving

__all__ = ["fake"]  # the fixture, imported so that pytest finds it here


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def profiles(tmp_path: Path, fake: FakeOrthanc, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file at the XDG place with a profile for the fake server, and a netrc."""
    folder = tmp_path / "xdg" / "pdf2dcm"
    folder.mkdir(parents=True)
    secret = folder / "fake.password"
    secret.write_text("from-profile\n", encoding="utf-8")
    secret.chmod(0o600)
    config = folder / "config.toml"
    config.write_text(
        f'[profiles.fake]\nurl = "{fake.url}"\nusername = "alice"\n'
        'password-file = "fake.password"\n'
        '[profiles.elsewhere]\nurl = "http://127.0.0.1:9"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    netrc = Path.home() / ".netrc"
    netrc.write_text("machine 127.0.0.1 login bob password from-netrc\n", encoding="utf-8")
    netrc.chmod(0o600)
    fake.route("GET", f"/jobs/{JOB}", (200, job_json("Success", 100)))
    return config


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--profile", "fake", "jobs", "show", JOB), None),
        (("jobs", "show", JOB, "--profile", "fake"), None),
        (("jobs", "show", JOB), {"PDF2DCM_PROFILE": "fake"}),
        (("--profile", "fake", "jobs", "show", JOB), {"PDF2DCM_PROFILE": "elsewhere"}),
    ],
)
def test_the_profile_gives_server_and_credentials_before_netrc(
    profiles: Path, fake: FakeOrthanc, args: tuple[str, ...], env: dict[str, str] | None
) -> None:
    result = run(*args, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"job {JOB} (DicomModalityStore): Success 100%\n"
    assert fake.headers[-1]["Authorization"] == basic("alice", "from-profile")


def test_the_environment_beats_the_profile_and_an_option_beats_both(
    profiles: Path, fake: FakeOrthanc
) -> None:
    env = {"ORTHANC_USERNAME": "carol", "ORTHANC_PASSWORD": "from-env"}
    assert run("--profile", "fake", "jobs", "show", JOB, env=env).exit_code == 0
    assert fake.headers[-1]["Authorization"] == basic("carol", "from-env")
    elsewhere = {"ORTHANC_URL": fake.url, "PDF2DCM_PROFILE": "elsewhere"}
    assert run("jobs", "show", JOB, env=elsewhere).exit_code == 0
    # The profile gives no credentials for this server, so netrc's are used.
    assert fake.headers[-1]["Authorization"] == basic("bob", "from-netrc")
    option = run("--profile", "elsewhere", "jobs", "show", JOB, "--url", fake.url)
    assert option.exit_code == 0
    assert len(fake.asked) == 2 + 1


def test_an_unknown_profile_is_a_usage_error(profiles: Path) -> None:
    result = run("jobs", "show", JOB, "--profile", "typo")
    assert result.exit_code == 2
    assert result.stderr == (
        f"pdf2dcm: error: no profile typo in {profiles} (its profiles: elsewhere, fake); check "
        "--profile or PDF2DCM_PROFILE\n"
    )


def test_a_profile_holding_a_secret_readable_by_others_is_refused(
    profiles: Path, fake: FakeOrthanc
) -> None:
    profiles.write_text(
        f'[profiles.fake]\nurl = "{fake.url}"\nusername = "a"\npassword = "pw"\n',
        encoding="utf-8",
    )
    profiles.chmod(0o644)
    result = run("jobs", "show", JOB, "--profile", "fake")
    assert result.exit_code == 2
    assert result.stderr == (
        f"pdf2dcm: error: refusing the config file, which holds a password or token, {profiles}:"
        f" its permissions (-rw-r--r--) let other users read or change it; chmod 600 {profiles}\n"
    )
    assert fake.asked == []


def test_the_default_profile_applies_without_being_named(profiles: Path, fake: FakeOrthanc) -> None:
    profiles.write_text(f'[profiles.default]\nurl = "{fake.url}"\n', encoding="utf-8")
    result = run("jobs", "show", JOB, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ID"] == JOB


def test_profile_defaults_for_tags_and_method_yield_to_options(
    profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What upload calls: current_profile, profile_choice and collect_tags(defaults=...)."""
    profiles.write_text(
        '[profiles.u]\nmethod = "stow"\n[profiles.u.tags]\n'
        'InstitutionName = "Klinikum"\nPatientID = "P-1"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("PDF2DCM_PROFILE", "u")
    app._reset_output()

    @click.command()
    @click.option("--via", "method", default="instances", envvar="PDF2DCM_METHOD")
    @click.option("--tag", "assignments", multiple=True)
    def probe(method: str, assignments: tuple[str, ...]) -> None:
        profile = current_profile()
        assert profile is not None
        click.echo(profile_choice("method", method, profile.method))
        tags = collect_tags(assignments, None, profile.tags)
        click.echo(f"{tags[0x00080080]} {tags[0x00100020]}")

    runner = CliRunner()
    assert runner.invoke(probe, []).stdout == "stow\nKlinikum P-1\n"
    assert runner.invoke(probe, ["--via", "instances", "--tag", "PatientID=P-2"]).stdout == (
        "instances\nKlinikum P-2\n"
    )
    assert runner.invoke(probe, [], env={"PDF2DCM_METHOD": "create-dicom"}).stdout == (
        "create-dicom\nKlinikum P-1\n"
    )
    profiles.write_text('[profiles.u.tags]\nPatientID = "x\\\\y\\\\z"\nNoSuchKeyword = 1\n')
    bad = runner.invoke(probe, [])
    assert isinstance(bad.exception, TagError)
    assert str(bad.exception).startswith(f"default tags of profile u in {profiles}: ")


def test_a_profile_named_on_the_command_line_wins_over_orthanc_url(
    profiles: Path, fake: FakeOrthanc
) -> None:
    with serving() as other:
        result = run("--profile", "fake", "jobs", "show", JOB, env={"ORTHANC_URL": other.url})
        assert result.exit_code == 0, result.stderr
        assert other.received == []
    assert fake.headers[-1]["Authorization"] == basic("alice", "from-profile")
    assert result.stderr == (
        f"pdf2dcm: warning: ORTHANC_URL ({other.url}) is not used: profile fake in {profiles}, "
        f"named on the command line, sends to {fake.url}\n"
    )


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_profiles_credentials_never_reach_another_port(
    profiles: Path, fake: FakeOrthanc, how: str
) -> None:
    (Path.home() / ".netrc").unlink()
    with serving() as logger:
        logger.route("GET", f"/jobs/{JOB}", (200, job_json("Success", 100)))
        if how == "option":
            result = run("--profile", "fake", "jobs", "show", JOB, "--url", logger.url)
        else:
            env = {"PDF2DCM_PROFILE": "fake", "ORTHANC_URL": logger.url}
            result = run("jobs", "show", JOB, env=env)
        assert result.exit_code == 0, result.stderr
        assert [request.headers.get("Authorization") for request in logger.received] == [None]
    assert fake.received == []
    assert result.stderr == (
        f"pdf2dcm: warning: the credentials of profile fake in {profiles} belong to {fake.url}, "
        f"not to {logger.url}; they are not sent\n"
    )
