"""Operator input that is endless, a FIFO, nested without end or not text ends in exit 2 with
one line, never a hang, a traceback or an unbounded read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from tests.pdfs import make_pdf


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("pdf2dcm: error: ")
    return line


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    source = tmp_path / "a.pdf"
    source.write_bytes(make_pdf(2000))
    return source


def test_files_from_an_endless_device(tmp_path: Path) -> None:
    line = one_error_line(run("encode", "--files-from", "/dev/zero", "-d", str(tmp_path)))
    assert "file list /dev/zero is a character device" in line


@pytest.mark.parametrize("kind", ["device", "fifo", "deep", "huge"])
def test_a_config_file_that_is_no_config_file(tmp_path: Path, kind: str) -> None:
    config = tmp_path / "config.toml"
    expected = {
        "device": "is a character device",
        "fifo": "is a FIFO, not a regular file",
        "deep": "nest too deep",
        "huge": "holds more than 1 MiB",
    }[kind]
    if kind == "device":
        config = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(config)
    elif kind == "deep":
        config.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    else:
        config.write_text("# " + "x" * 2 * 1024 * 1024 + "\n")
    result = run("jobs", "list", "--url", "http://127.0.0.1:9", env={"PDF2DCM_CONFIG": str(config)})
    assert expected in one_error_line(result)


def test_a_huge_tag_value_is_quoted_short(pdf: Path) -> None:
    result = run("encode", str(pdf), "--dry-run", "--tag", "PatientComments=" + "x" * 100_000)
    line = one_error_line(result)
    assert len(line) < 400
    assert "(100016 characters)" in line
    assert "LT allows at most 10240 characters" in line


def test_a_lone_surrogate_in_a_tag(pdf: Path) -> None:
    line = one_error_line(run("encode", str(pdf), "--dry-run", "--tag", "PatientName=a\udcff"))
    assert "U+DCFF at character 2 is no character" in line


def test_a_surrogate_in_a_name_fails_that_file_only(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / os.fsdecode(b"P\xff_x.pdf")).write_bytes(make_pdf(1000))
    result = run(
        "encode", str(folder), "--name-pattern", "{PatientID}_{*}.pdf", "-d", str(tmp_path / "o")
    )
    line = one_error_line(result)
    assert "U+DCFF" in line
    assert "\\udcff" in line
