"""Authentication against a real Orthanc that requires it; the password never shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.conftest import require_binary
from tests.integration.orthanc import OrthancServer
from tests.pdfs import make_pdf

USER = "alice"
SECRET = "s3cr3t-Pa55w0rd-xyz"
UNICODE_USER = "jörg"
UNICODE_SECRET = "pässwörd€-Zq9"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    with OrthancServer(
        tmp_path_factory.mktemp("locked"),
        extra={
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: SECRET, UNICODE_USER: UNICODE_SECRET},
        },
    ) as server:
        yield server


def run(args: list[str], env: dict[str, str]) -> Result:
    base = {
        "ORTHANC_URL": "",
        "ORTHANC_USERNAME": "",
        "ORTHANC_PASSWORD": "",
        "ORTHANC_TOKEN": "",
        "HOME": "/nonexistent",
    }
    return CliRunner(env=base | env).invoke(cli, args, catch_exceptions=False)


def assert_secret_hidden(result: Result) -> None:
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    path = tmp_path / "auth.pdf"
    path.write_bytes(make_pdf(2000, seed=None))
    return path


def test_credentials_from_the_environment(locked: OrthancServer, pdf: Path) -> None:
    result = run(
        ["upload", str(pdf), "--url", locked.url, "--json", "--tag", "PatientID=AUTH"],
        {"ORTHANC_USERNAME": USER, "ORTHANC_PASSWORD": SECRET},
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["Status"] == "Success"
    assert_secret_hidden(result)


def test_credentials_from_options(locked: OrthancServer, pdf: Path, tmp_path: Path) -> None:
    upload = run(
        [
            "upload",
            str(pdf),
            "--url",
            locked.url,
            "--json",
            "--username",
            USER,
            "--password",
            SECRET,
            "--tag",
            "PatientID=AUTH2",
        ],
        {},
    )
    assert upload.exit_code == 0, upload.stderr
    instance = json.loads(upload.stdout)["ID"]
    fetched = run(
        [
            "fetch",
            instance,
            "--url",
            locked.url,
            "--username",
            USER,
            "--password",
            SECRET,
            "-o",
            str(tmp_path / "back.pdf"),
        ],
        {},
    )
    assert fetched.exit_code == 0, fetched.stderr
    assert (tmp_path / "back.pdf").read_bytes() == pdf.read_bytes()


def test_credentials_from_netrc(locked: OrthancServer, pdf: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {SECRET}\n", encoding="utf-8")
    netrc.chmod(0o600)
    result = run(
        ["upload", str(pdf), "--url", locked.url, "--tag", "PatientID=AUTH3"], {"HOME": str(home)}
    )
    assert result.exit_code == 0, result.stderr


def test_wrong_password_names_the_user_not_the_password(locked: OrthancServer, pdf: Path) -> None:
    wrong = SECRET + "-wrong"
    result = run(
        ["upload", str(pdf), "--url", locked.url, "--tag", "PatientID=AUTH4"],
        {"ORTHANC_USERNAME": USER, "ORTHANC_PASSWORD": wrong},
    )
    assert result.exit_code == 4
    assert (
        result.stderr.strip() == f"pdf2dcm: error: authentication failed for {USER} at {locked.url}"
    )
    assert wrong not in result.stdout + result.stderr
    debug = run(
        ["--debug", "upload", str(pdf), "--url", locked.url, "--tag", "PatientID=AUTH4"],
        {"ORTHANC_USERNAME": USER, "ORTHANC_PASSWORD": wrong},
    )
    assert debug.exit_code == 4
    assert wrong not in debug.stdout + debug.stderr


def test_no_credentials_says_what_to_give(locked: OrthancServer, pdf: Path) -> None:
    instance = "1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b"
    result = run(["fetch", instance, "--url", locked.url, "-o", "x.pdf"], {})
    assert result.exit_code == 4
    assert result.stderr.strip() == (
        f"pdf2dcm: error: authentication failed at {locked.url}; give --username or --token"
    )


def test_password_is_asked_for_on_a_terminal_only(locked: OrthancServer) -> None:
    """Under a pseudo-terminal (script) the password is prompted for, hidden; without one,
    nothing is asked and the request fails as unauthenticated."""
    script = require_binary("script")
    command = f"{sys.executable} -m pdf2dcm jobs list --url {locked.url} --username {USER}"
    env = {
        **os.environ,
        "ORTHANC_URL": "",
        "ORTHANC_USERNAME": "",
        "ORTHANC_PASSWORD": "",
        "ORTHANC_TOKEN": "",
        "HOME": "/nonexistent",
    }
    session = subprocess.Popen(
        [script, "-qec", command, "/dev/null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert session.stdin is not None
    assert session.stdout is not None
    shown = b""
    deadline = time.monotonic() + 30
    while b"Password for" not in shown and time.monotonic() < deadline:
        shown += os.read(session.stdout.fileno(), 4096)
    # Typed only once the prompt is up: getpass discards anything typed ahead.
    time.sleep(0.2)
    session.stdin.write(f"{SECRET}\n".encode())
    session.stdin.flush()
    rest, _ = session.communicate(timeout=60)
    output = (shown + rest).decode(errors="replace")
    assert session.returncode == 0, output
    assert f"Password for {USER} at {locked.url}:" in output
    assert SECRET not in output
    piped = subprocess.run(
        command.split(), check=False, input="", capture_output=True, text=True, env=env, timeout=60
    )
    assert piped.returncode == 4
    assert "Password for" not in piped.stdout + piped.stderr
    assert f"warning: no password for {USER}; set ORTHANC_PASSWORD or ~/.netrc" in piped.stderr


def test_a_non_ascii_password_is_sent_as_utf8(locked: OrthancServer, tmp_path: Path) -> None:
    """Orthanc compares the Basic credentials byte for byte with its UTF-8 configuration."""
    by_env = run(
        ["jobs", "list", "--url", locked.url],
        {"ORTHANC_USERNAME": UNICODE_USER, "ORTHANC_PASSWORD": UNICODE_SECRET},
    )
    assert by_env.exit_code == 0, by_env.stderr
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(
        f"machine 127.0.0.1 login {UNICODE_USER} password {UNICODE_SECRET}\n", encoding="utf-8"
    )
    netrc.chmod(0o600)
    by_netrc = run(["jobs", "list", "--url", locked.url], {"HOME": str(home)})
    assert by_netrc.exit_code == 0, by_netrc.stderr
    wrong = run(
        ["jobs", "list", "--url", locked.url],
        {"ORTHANC_USERNAME": UNICODE_USER, "ORTHANC_PASSWORD": "pässwörd€-wrong"},
    )
    assert wrong.exit_code == 4
    assert wrong.stderr.strip() == (
        f"pdf2dcm: error: authentication failed for {UNICODE_USER} at {locked.url}"
    )


@pytest.mark.parametrize("variable", ["ORTHANC_TOKEN", "ORTHANC_PASSWORD"])
def test_a_secret_with_a_carriage_return_is_refused_unseen(
    locked: OrthancServer, variable: str
) -> None:
    """``ORTHANC_TOKEN="$(cat token-with-crlf)"`` keeps the CR; the value is never printed."""
    env = {variable: "Zq9-secret\r"}
    if variable == "ORTHANC_PASSWORD":
        env["ORTHANC_USERNAME"] = USER
    result = run(["jobs", "list", "--url", locked.url], env)
    what = "token" if variable == "ORTHANC_TOKEN" else "password"
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"pdf2dcm: error: the {what} from {variable} contains a control character (a line "
        "break, tab or similar), which cannot go into an HTTP header; remove it"
    )


def test_a_netrc_syntax_error_shows_no_secret(locked: OrthancServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password Zq9 PART2\n", encoding="utf-8")
    netrc.chmod(0o600)
    result = run(["jobs", "list", "--url", locked.url], {"HOME": str(home)})
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"pdf2dcm: error: cannot read {netrc}: it cannot be parsed near line 2; check its syntax"
    )
