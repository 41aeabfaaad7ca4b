"""The global contract of the command line: root flags anywhere, environment names, -q, -v."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from pdf2dcm.cli.app import environment_name
from tests.fake_orthanc import FakeOrthanc, serving

JOB = "0f2b5c1e-7a0d-4c8e-9b5a-3c1d2e4f6a7b"


@pytest.fixture
def fake() -> Iterator[FakeOrthanc]:
    with serving() as server:
        yield server


def job_json(state: str, progress: int = 0, **more: Any) -> dict[str, Any]:
    return {
        "ID": JOB,
        "Type": "DicomModalityStore",
        "State": state,
        "Progress": progress,
        "ErrorCode": 0,
        "ErrorDescription": "Success",
        "CreationTime": "20260101T120000.000000",
        **more,
    }


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_dash_capital_v_is_the_version() -> None:
    assert run("-V").stdout == "pdf2dcm, version 0.2.0\n"


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--debug", "extract", "/nonexistent/a.dcm"), None),
        (("extract", "/nonexistent/a.dcm", "--debug"), None),
        (("extract", "/nonexistent/a.dcm"), {"PDF2DCM_DEBUG": "1"}),
    ],
)
def test_debug_before_or_after_the_command_or_from_the_environment(
    args: tuple[str, ...], env: dict[str, str] | None
) -> None:
    result = run(*args, env=env)
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith(
        "pdf2dcm: error: /nonexistent/a.dcm: no such file; check the path"
    )


def test_debug_does_not_stick_to_the_next_invocation() -> None:
    run("--debug", "extract", "/nonexistent/a.dcm")
    result = run("extract", "/nonexistent/a.dcm")
    assert result.stderr == "pdf2dcm: error: /nonexistent/a.dcm: no such file; check the path\n"


def test_quiet_and_verbose_together_are_a_usage_error() -> None:
    result = run("-q", "extract", "x.dcm", "-v")
    assert result.exit_code == 2
    assert "give -q/--quiet or -v/--verbose, not both" in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_drops_warnings_but_keeps_results(fake: FakeOrthanc, where: str) -> None:
    fake.route("GET", f"/jobs/{JOB}", (200, job_json("Success", 100)))
    command = ("jobs", "show", JOB, "--url", fake.url, "--insecure", "--json")
    loud = run(*command)
    assert loud.stderr == "pdf2dcm: warning: TLS certificates are not verified (--insecure)\n"
    quiet = run("-q", *command) if where == "before" else run(*command, "--quiet")
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    assert json.loads(quiet.stdout)["State"] == "Success"


def test_quiet_drops_text_result_lines_but_not_errors(fake: FakeOrthanc) -> None:
    fake.route("GET", f"/jobs/{JOB}", (200, job_json("Success", 100)))
    assert run("jobs", "show", JOB, "--url", fake.url, "-q").stdout == ""
    missing = run("jobs", "show", JOB[:-1] + "0", "--url", fake.url, "-q")
    assert missing.exit_code == 4
    assert missing.stderr.startswith("pdf2dcm: error: job ")


def test_verbose_logs_each_request_and_each_retry(fake: FakeOrthanc) -> None:
    fake.route(
        "GET", f"/jobs/{JOB}", (503, b"{}"), (200, json.dumps(job_json("Running", 40)).encode())
    )
    result = run("jobs", "show", JOB, "--url", fake.url, "-v")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"pdf2dcm: GET {fake.url}/jobs/{JOB} -> 503 (")
    assert lines[1] == (f"pdf2dcm: retrying GET {fake.url}/jobs/{JOB} (HTTP 503), attempt 2")
    prefix = f"pdf2dcm: GET {fake.url}/jobs/{JOB} -> 200 ("
    assert lines[2].startswith(prefix)
    assert lines[2].endswith(" s)")
    float(lines[2][len(prefix) : -len(" s)")])
    assert result.stdout.startswith(f"job {JOB} (DicomModalityStore): Running 40%")


def test_without_verbose_nothing_is_logged(fake: FakeOrthanc) -> None:
    fake.route("GET", f"/jobs/{JOB}", (503, b"{}"), (200, json.dumps(job_json("Success")).encode()))
    result = run("jobs", "show", JOB, "--url", fake.url)
    assert result.stderr == ""


def test_every_option_names_its_environment_variable_in_help() -> None:
    text = " ".join(run("upload", "--help").stdout.split())
    for name in ("PDF2DCM_CONCURRENCY", "PDF2DCM_JSON", "PDF2DCM_NO_PROGRESS", "PDF2DCM_QUIET"):
        assert f"env var: {name}" in text
    # Credentials keep their ORTHANC_* names; per-run choices have none.
    assert "PDF2DCM_PASSWORD" not in text
    assert "PDF2DCM_TAG" not in text.replace("PDF2DCM_TAGS_FILE", "")


def test_environment_variables_are_read(fake: FakeOrthanc) -> None:
    bad = run("upload", "x.pdf", env={"PDF2DCM_CONCURRENCY": "99"})
    assert bad.exit_code == 2
    assert "99 is not in the range 1<=x<=32" in bad.stderr
    fake.route("GET", f"/jobs/{JOB}", (200, job_json("Success", 100)))
    as_json = run("jobs", "show", JOB, "--url", fake.url, env={"PDF2DCM_JSON": "1"})
    assert json.loads(as_json.stdout)["ID"] == JOB


def test_one_environment_name_per_meaning_across_commands() -> None:
    """``timeout`` is one request's limit everywhere; ``wait_timeout`` the whole wait."""
    seen: dict[str, set[str]] = {}

    def visit(command: click.Command, path: str) -> None:
        for param in command.params:
            name = environment_name(param)
            if name is not None and isinstance(param, click.Option):
                seen.setdefault(name, set()).add(param.help or "")
        if isinstance(command, click.Group):
            for sub, subcommand in command.commands.items():
                visit(subcommand, f"{path} {sub}")

    visit(cli, "pdf2dcm")
    assert "PDF2DCM_TIMEOUT" in seen
    assert all("each HTTP request" in text for text in seen["PDF2DCM_TIMEOUT"])
    assert all("Total time" in text or "waiting" in text for text in seen["PDF2DCM_WAIT_TIMEOUT"])


def complete(words: str) -> list[str]:
    """What bash completion offers after ``words`` (the last one being completed)."""
    parts = words.split(" ")
    env = {
        "_PDF2DCM_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
    }
    result = CliRunner().invoke(cli, [], env=env, prog_name="pdf2dcm")
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if line]


def test_tag_keywords_complete_for_tag_in_upload_and_encode() -> None:
    assert complete("pdf2dcm upload --tag PatientNa") == ["plain,PatientName="]
    assert complete("pdf2dcm encode x.pdf --tag accessionn") == ["plain,AccessionNumber="]
    offered = complete("pdf2dcm upload --tag Patient")
    assert "plain,PatientID=" in offered
    assert "plain,PatientSex=" in offered
    # Retired attributes are not offered; nor anything once the value is being typed.
    assert "plain,OtherPatientIDs=" not in offered
    assert complete("pdf2dcm upload --tag PatientName=Do") == []


def test_commands_and_the_wait_timeout_alias_complete() -> None:
    assert complete("pdf2dcm sh") == ["plain,show"]
    assert complete("pdf2dcm jobs wait --wait") == ["plain,--wait-timeout"]


def test_the_root_help_shows_an_example_of_every_command() -> None:
    text = run("--help").stdout
    examples = text[text.index("Examples:") : text.index("Exit codes:")]
    for name in cli.list_commands(click.Context(cli)):
        assert f"pdf2dcm {name} " in examples or f" {name} " in examples, name
    assert "option > environment > profile > ~/.netrc > default" in " ".join(text.split())


def test_waiting_for_several_jobs_ends_with_one_summary_line(fake: FakeOrthanc) -> None:
    failed = "1f2b5c1e-7a0d-4c8e-9b5a-3c1d2e4f6a7b"
    fake.route("GET", f"/jobs/{JOB}", (200, job_json("Success", 100)))
    fake.route(
        "GET",
        f"/jobs/{failed}",
        (200, job_json("Failure", 50, ID=failed, ErrorCode=9, ErrorDescription="Network")),
    )
    result = run("jobs", "wait", JOB, failed, "--url", fake.url)
    assert result.exit_code == 6
    assert result.stdout == f"job {JOB} (DicomModalityStore): Success 100%\n"
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"pdf2dcm: error: job {failed} (DicomModalityStore) failed: ErrorCode 9: Network"
    )
    assert re.fullmatch(
        r"pdf2dcm: 2 jobs: 1 succeeded, 0 timed out, 1 failed in \d+\.\d s", lines[1]
    )
    assert len(lines) == 2
    quiet = run("jobs", "wait", JOB, failed, "--url", fake.url, "-q")
    assert quiet.stderr.splitlines() == lines[:1]


@pytest.mark.parametrize("command", ["encode", "upload", "watch"])
def test_long_option_lists_are_grouped_in_sections(command: str) -> None:
    shown = run(command, "--help").stdout
    headings = [line for line in shown.splitlines() if line and line[0].isalpha()]
    sections = [line for line in headings if line.endswith(":") and not line.startswith("Usage")]
    assert "What to write:" in sections
    assert "Where it goes:" in sections
    assert "Output and checks:" in sections
    # Every option has its section: none is left over.
    assert "Other options:" not in sections
    assert "Options:" not in sections
    if command != "encode":
        assert "Connection:" in sections
        connection = shown.split("Connection:")[1].split("\n\n")[0]
        assert "--url URL" in connection
        assert "--via [" not in connection


def test_upload_and_watch_share_the_destination_options() -> None:
    def options(command: str) -> dict[str, str]:
        from pdf2dcm.cli.app import cli as root

        ctx = root.make_context("pdf2dcm", [command, "--help"], resilient_parsing=True)
        found = root.get_command(ctx, command)
        assert found is not None
        return {
            str(param.name): " ".join(param.opts)
            for param in found.params
            if param.name in {"method", "parent", "study_terms", "worklist", "send_to_peer"}
        }

    assert options("upload") == options("watch")
    assert len(options("upload")) == 5
