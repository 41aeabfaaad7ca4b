"""``pdf2dcm review``: the address it prints, --listen, and the message without its extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from pdf2dcm.cli import cli
from pdf2dcm.cli import review as command


def test_without_the_extra_it_says_which_command_installs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = importlib.util.find_spec

    def without_werkzeug(name: str, *args: Any) -> Any:
        return None if name == "werkzeug" else found(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_werkzeug)
    result = CliRunner().invoke(cli, ["review", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        "pdf2dcm: error: pdf2dcm review needs its web library; install it with: "
        "pip install 'pdf2dcm[review]'\n"
    )


def test_it_prints_a_loopback_address_with_a_token_and_serves_until_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(command, "_serve_until_stopped", served.append)
    result = CliRunner().invoke(cli, ["review", str(tmp_path), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 0, result.stderr
    [server] = served
    assert result.stdout == f"{server.address}\n"
    assert server.address.startswith("http://127.0.0.1:")
    assert f"/?token={server.token}" in server.address
    assert len(server.token) >= 32
    server.stop()


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        (":8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:8042", ("0.0.0.0", 8042)),
        ("[::1]:9000", ("::1", 9000)),
        ("localhost", ("localhost", 0)),
    ],
)
def test_listen_takes_host_and_port(text: str, address: tuple[str, int]) -> None:
    assert command.parse_listen(text) == address


@pytest.mark.parametrize("text", ["host:port", "127.0.0.1:70000", "[::1", "[::1]8080"])
def test_listen_refuses_what_is_not_an_address(text: str) -> None:
    with pytest.raises(click.BadParameter):
        command.parse_listen(text)
