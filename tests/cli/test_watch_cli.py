"""``pdf2dcm watch`` options, without a server: usage errors and the example systemd unit."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "examples" / "pdf2dcm-watch.service"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --done DIR or --delete (what to do with a stored file)"),
        (("--delete", "--done", "d"), "give --done DIR or --delete"),
        (
            ("--delete", "--name-pattern", "{PatientID}.pdf", "--name-regex", "(?P<PatientID>.*)"),
            "give --name-pattern or --name-regex, not both",
        ),
        (("--delete", "--worklist", "wl"), "--worklist goes with --study KEY=VALUE"),
        (("--delete", "--parent", "x", "--series", "y=1"), "give one of --parent, --series"),
        (
            ("--delete", "--study", "AccessionNumber=1", "--study-from", "ref.dcm"),
            "give one of --study, --study-from/--series-from, not several",
        ),
        (
            ("--delete", "--parent", "x", "--series-from", "ref.dcm"),
            "give one of --parent, --study-from/--series-from, not several",
        ),
        (
            ("--delete", "--study-from", "a.dcm", "--series-from", "b.dcm"),
            "give --study-from or --series-from, not both",
        ),
    ],
)
def test_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run("watch", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_missing_inbox_is_a_usage_error(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path / "nope"), "--delete")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_once_on_an_empty_inbox_exits_0_with_its_summary(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path), "--delete", "--once", "--json")
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == (
        "",
        "pdf2dcm: 0 files: 0 stored, 0 left in the inbox, 0 failed\n",
    )


def exec_start() -> list[str]:
    lines = UNIT.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    [command] = [line.split("=", 1)[1] for line in lines if line.startswith("ExecStart=")]
    return shlex.split(command)


def test_the_example_unit_runs_a_valid_watch_command(tmp_path: Path) -> None:
    program, command, inbox, *options = exec_start()
    assert (program, command, inbox) == ("/usr/local/bin/pdf2dcm", "watch", "/srv/pdf2dcm/inbox")
    text = UNIT.read_text(encoding="utf-8")
    assert "EnvironmentFile=/etc/pdf2dcm/watch.env" in text
    assert "ORTHANC_PASSWORD=" not in text.split("[Service]")[1]
    local = [
        str(tmp_path / value.rsplit("/", 1)[1]) if value.startswith("/") else value
        for value in options
    ]
    (tmp_path / "inbox").mkdir()
    result = run("watch", str(tmp_path / "inbox"), *local, "--once")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "journal.jsonl").exists()


def test_a_title_no_document_can_carry_is_refused_before_any_file_is_taken(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    result = run("watch", str(tmp_path), "--delete", "--once", "--title", "x" * 1025)
    assert result.exit_code == 2
    assert result.stderr.startswith("pdf2dcm: error: --title: DocumentTitle ")
    assert (tmp_path / "a.pdf").exists()


def test_a_missing_reference_file_is_refused_at_the_start(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    missing = tmp_path / "nowhere.dcm"
    result = run("watch", str(tmp_path), "--delete", "--once", "--series-from", str(missing))
    assert result.exit_code == 2
    assert result.stderr == f"pdf2dcm: error: {missing}: no such file; check the path\n"
    assert (tmp_path / "a.pdf").exists()
