"""Text from outside reaches the terminal escaped and is never read as markup; JSON keeps it.

File names, PDF titles, DICOM values and server replies may hold ESC, OSC (which retitles
the terminal), BS, CR or bidirectional controls (RLO), and brackets that rich would read
as markup (``[/]`` crashes it, ``Knie [rechts]`` loses a word).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from pdf2dcm.cli.app import terminal_safe
from tests.fake_orthanc import FakeOrthanc, reply, serving
from tests.pdfs import make_pdf

HOSTILE = "Knie [rechts] [/] \x1b]2;PWNED\x07 \x1b[2J\b\r \u202egnp.exe"
ESCAPED = "Knie [rechts] [/] \\x1b]2;PWNED\\x07 \\x1b[2J\\x08\\x0d \\u202egnp.exe"
JOB = "32af28ce-d1f9-4655-b38e-3237a3cdcbaa"
INSTANCE = "1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b"


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """CliRunner's streams answer isatty() with True, so tables and bars are drawn."""
    import click.testing

    monkeypatch.setattr(click.testing._NamedTextIOWrapper, "isatty", lambda _self: True)
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def fake() -> Iterator[FakeOrthanc]:
    with serving() as server:
        yield server


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_safe(text: str) -> None:
    """No control of the hostile text arrived raw (rich's own styling and redraws aside)."""
    for sequence in ("\x1b]", "\x1b[2J", "\x07", "\b", "\u202e"):
        assert sequence not in text, repr(text)


def test_terminal_safe_escapes_controls_bidi_and_surrogates_only() -> None:
    assert terminal_safe(HOSTILE) == ESCAPED
    assert terminal_safe("Müller^Jürgen 山田\\x") == "Müller^Jürgen 山田\\x"
    assert terminal_safe("\x7f\x9b\udcff\u2066") == "\\x7f\\x9b\\udcff\\u2066"


# What the encoder keeps of HOSTILE in free text (other controls than ESC and CR become spaces).
KEPT = "Knie [rechts] [/] \x1b]2;PWNED \u202egnp.exe"
KEPT_SHOWN = "Knie [rechts] [/] \\x1b]2;PWNED \\u202egnp.exe"


def test_a_dry_run_table_shows_a_title_as_it_is(tmp_path: Path, terminal: None) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(2000))
    result = run("encode", str(source), "--dry-run", "--title", KEPT)
    assert result.exit_code == 0, result.stderr
    assert KEPT_SHOWN in result.stdout
    assert_safe(result.stdout)


def test_json_keeps_the_exact_text(tmp_path: Path) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(2000))
    result = run("encode", str(source), "--dry-run", "--title", KEPT, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["Tags"]["DocumentTitle"] == KEPT


def test_a_hostile_file_name_is_escaped_in_results_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "ok\x1b]2;PWNED\x07.pdf"
    good.write_bytes(make_pdf(2000))
    bad = tmp_path / "bad\u202e\r.pdf"
    bad.write_bytes(b"not a pdf")
    result = run("encode", str(good), str(bad), "-d", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "ok\\x1b]2;PWNED\\x07.pdf" in result.stdout
    assert "bad\\u202e\\x0d.pdf" in result.stderr
    assert_safe(result.stdout + result.stderr)


def test_show_escapes_dicom_values_on_a_terminal(tmp_path: Path, terminal: None) -> None:
    source, target = tmp_path / "a.pdf", tmp_path / "a.dcm"
    source.write_bytes(make_pdf(2000))
    made = run("encode", str(source), "-o", str(target), "--title", KEPT)
    assert made.exit_code == 0, made.stderr
    result = run("show", str(target))
    assert result.exit_code == 0, result.stderr
    assert KEPT_SHOWN in result.stdout
    assert_safe(result.stdout)


def test_a_server_message_is_escaped(fake: FakeOrthanc) -> None:
    fake.route("GET", f"/jobs/{JOB}", reply(400, {"Message": "bad \x1b]2;PWNED\x07 [/]"}))
    result = run("jobs", "show", JOB, "--url", fake.url)
    assert result.exit_code == 4
    assert "bad \\x1b]2;PWNED\\x07 [/]" in result.stderr
    assert_safe(result.stderr)


def test_jobs_wait_draws_a_hostile_job_type_literally(fake: FakeOrthanc, terminal: None) -> None:
    job = {"ID": JOB, "Type": "[/]\x1b]2;PWNED\x07", "State": "Success", "Progress": 100}
    fake.route("GET", f"/jobs/{JOB}", job)
    result = run("jobs", "wait", JOB, "--url", fake.url)
    assert result.exit_code == 0, result.stderr
    assert "[/]\\x1b]2;PWNED\\x07" in result.stdout
    assert_safe(result.stdout + result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["encode", "x.pdf", "--tag", "Patient\x1b]2;PWNED\x07Name=x"],
        ["encode", "x.pdf", "--conversion-type", "\x1b]2;PWNED\x07"],
        ["\x1b]2;PWNED\x07"],
        ["--\x1b]2;PWNED\x07"],
        ["jobs", "list", "--ca-bundle", "\x1b]2;PWNED\x07/"],
    ],
)
def test_a_usage_error_quoting_a_value_is_escaped(args: list[str]) -> None:
    """Click quotes values with repr() in its own messages; ours go through say()."""
    result = run(*args)
    assert result.exit_code == 2
    assert "\\x1b]2;PWNED\\x07" in result.stderr
    assert_safe(result.stderr)
