"""The rules of uploading to a DICOM node that need no node: Orthanc's default encoding read
from a scripted server, the emptied-name rule, and the options that do not go together."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdf2dcm.cli import cli
from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from pdf2dcm.dimse_archive import emptied_name_group
from pdf2dcm.errors import InputError, UnexpectedReplyError
from pdf2dcm.lookup import _check_carried
from tests import fake_orthanc as hostile
from tests.fake_orthanc import FakeOrthanc, reply


@pytest.fixture
def server() -> Iterator[FakeOrthanc]:
    yield from hostile.serve()


def client_of(server: FakeOrthanc) -> OrthancClient:
    settings = resolve_settings(url=server.url, environ={}, netrc_file="/dev/null")
    return OrthancClient(settings, sleep=lambda _seconds: None)


def test_the_default_encoding_is_read_and_checked(server: FakeOrthanc) -> None:
    server.routes[("GET", "/tools/default-encoding")] = [
        reply(200, b"Latin1"),
        reply(200, b"Utf8\n"),
        reply(200, b"<html>"),
    ]
    with client_of(server) as client:
        assert client.default_encoding() == "Latin1"
        assert client.default_encoding() == "Utf8"
        with pytest.raises(UnexpectedReplyError, match="is not an encoding's name"):
            client.default_encoding()


@pytest.mark.parametrize(
    ("name", "emptied"),
    [
        ("Yamada^Tarou=^=^", True),
        ("^^", True),
        ("-^ =^=Ivanov^Pyotr", True),
        ("Wang^XiaoDong=^=wang^xiaodong", True),
        ("Müller^Jürgen", False),
        ("Yamada^Tarou=", False),
        ("Doe^John^^^", False),
        ("=Ivanov^Pyotr", False),
    ],
)
def test_an_emptied_name_group_is_recognised(name: str, emptied: bool) -> None:
    assert emptied_name_group(name) is emptied


def test_what_orthanc_cannot_have_carried_is_refused() -> None:
    declared = {"SpecificCharacterSet": "ISO_IR 100", "PatientName": "Yamada^Tarou=^=^"}
    with pytest.raises(InputError, match=r"DefaultEncoding is Latin1.*Utf8"):
        _check_carried(declared, "Latin1", "wl", None)
    _check_carried(declared, "Utf8", "wl", None)  # UTF-8 holds every character
    _check_carried(declared, "Latin1", "wl", {0x00100010: "Yamada^Tarou=山田^太郎"})
    latin = {"SpecificCharacterSet": "ISO_IR 100", "PatientName": "Müller^Jürgen"}
    _check_carried(latin, "Latin1", "wl", None)
    undeclared = {"PatientName": "ÍõÍõ^Ð¡¶«"}
    with pytest.raises(InputError, match=r"declares no character set.*--worklist-charset"):
        _check_carried(undeclared, "Latin1", "wl", None)
    _check_carried({"PatientName": "MÃ¼ller^JÃ¼rgen"}, "Latin1", "wl", None)  # repaired later
    _check_carried({"PatientName": "Scheduled^Sam"}, "Latin1", "wl", None)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["upload", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--via", "dimse"), "--via dimse needs --scp AET@HOST:PORT"),
        (("--scp", "PACS@pacs:104"), "--scp goes with --via dimse"),
        (("--commit",), "--commit goes with --via dimse"),
        (("--via", "dimse", "--scp", "nonsense"), "write it AET@HOST:PORT"),
        (("--via", "dimse", "--scp", "PACS@pacs:104", "--listen-port", "1"), "--listen-port goes"),
        (("--via", "dimse", "--scp", "A@h:1", "--send-to-peer", "p"), "forward from Orthanc"),
        (("--worklist-charset", "ISO_IR 100"), "--worklist-charset goes with --worklist AET"),
        (("--worklist-charset", "KOI8"), "is not a DICOM character set"),
        (("--worklist", "RIS@ris", "--study", "AccessionNumber=A"), "AET@HOST:PORT"),
    ],
)
def test_options_that_do_not_go_together(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    result = run(str(pdf), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
