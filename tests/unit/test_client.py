"""Retry and error behaviour of OrthancClient against a small scripted HTTP server."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable

import pytest

from pdf2dcm.client import OrthancClient, RepeatableBody, SystemInfo, path_segment
from pdf2dcm.config import resolve_settings
from pdf2dcm.errors import (
    AuthenticationError,
    InputError,
    NotFoundError,
    ServerFailedError,
    ServerRefusedError,
    ServerUnreachableError,
)
from tests.unit.conftest import Scripted, client_for

INSTANCE = "1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b"
SERIES = "3e4024bc-a395a1e3-54254769-da9a9d72-b00f8968"
STORED = json.dumps({"ID": INSTANCE, "ParentSeries": SERIES, "Status": "Success"}).encode()


def body_of(parts: list[bytes]) -> RepeatableBody:
    return RepeatableBody(sum(map(len, parts)), lambda: iter(parts))


def test_post_is_retried_with_the_whole_body_again(server: Scripted) -> None:
    server.answers = [(503, b""), (502, b""), (200, STORED)]
    parts = [b"head-", b"middle-", b"tail"]
    restarts: list[int] = []
    with client_for(server) as client:
        stored = client.store_instance(body_of(parts), on_retry=lambda: restarts.append(1))
    assert stored.id == INSTANCE
    assert stored.parent_series == SERIES
    assert [r[2] for r in server.received] == [b"head-middle-tail"] * 3
    assert all(r[3]["Content-Length"] == "16" for r in server.received)
    assert all(r[3]["User-Agent"] == "pdf2dcm/0.2.0" for r in server.received)
    assert len(restarts) == 2


def test_post_gives_up_after_the_retries(server: Scripted) -> None:
    server.answers = [(503, b"")] * 5
    with (
        client_for(server, retries=2) as client,
        pytest.raises(ServerFailedError, match=r"failed POST /instances: HTTP 503"),
    ):
        client.store_instance(body_of([b"x"]))
    assert len(server.received) == 3


def test_client_errors_are_not_retried(server: Scripted) -> None:
    error = {"Message": "Bad file format", "Details": "Cannot parse", "OrthancStatus": 15}
    server.answers = [(400, json.dumps(error).encode())]
    with client_for(server) as client, pytest.raises(ServerRefusedError) as caught:
        client.store_instance(body_of([b"x"]))
    assert str(caught.value).endswith(
        "refused POST /instances: HTTP 400 (Bad file format: Cannot parse)"
    )
    assert caught.value.orthanc_status == 15
    assert len(server.received) == 1


def test_get_is_retried_by_the_transport(server: Scripted) -> None:
    server.answers = [(503, b""), (200, b'{"Version": "1.10.1"}')]
    with client_for(server) as client:
        assert client.system() == SystemInfo(version="1.10.1", name="", api_version=None)
    assert len(server.received) == 2


def test_status_errors_are_typed(server: Scripted) -> None:
    server.answers = [(404, b""), (401, b""), (500, b"")]
    with client_for(server, username="u", password="hunter2", retries=0) as client:
        with pytest.raises(NotFoundError, match=rf"^instance {INSTANCE} not found on http://"):
            client.instance(INSTANCE)
        with pytest.raises(
            AuthenticationError, match=r"^authentication failed for u at http://"
        ) as auth:
            client.system()
        assert "hunter2" not in str(auth.value)
        with pytest.raises(ServerFailedError, match=r"failed GET /system: HTTP 500$"):
            client.system()


def test_basic_and_bearer_credentials_are_sent(server: Scripted) -> None:
    server.answers = [(200, b'{"Version": "1"}')] * 2
    with client_for(server, username="u", password="p") as client:
        client.system()
    with client_for(server, token="tok") as client:
        client.system()
    assert server.received[0][3]["Authorization"] == "Basic dTpw"
    assert server.received[1][3]["Authorization"] == "Bearer tok"


def test_refused_connection_is_unreachable() -> None:
    settings = resolve_settings(url="http://127.0.0.1:9", environ={}, retries=1)
    with (
        OrthancClient(settings, sleep=lambda _s: None) as client,
        pytest.raises(
            ServerUnreachableError,
            match=r"^cannot reach http://127.0.0.1:9: connection refused; is Orthanc running",
        ),
    ):
        client.store_instance(body_of([b"x"]))


def test_non_ascii_credentials_go_out_as_utf8(server: Scripted) -> None:
    server.answers = [(200, b'{"Version": "1"}')] * 2
    with client_for(server, username="jörg", password="pässwörd€") as client:
        client.system()
    with client_for(server, token="tök€n") as client:
        client.system()
    expected = base64.b64encode("jörg:pässwörd€".encode()).decode()
    assert server.received[0][3]["Authorization"] == f"Basic {expected}"
    # http.server decodes header bytes as latin-1: the UTF-8 bytes arrive unchanged.
    sent = server.received[1][3]["Authorization"].encode("latin-1")
    assert sent == "Bearer tök€n".encode()


def test_a_token_made_in_code_with_a_line_break_is_refused_unseen() -> None:
    settings = resolve_settings(url="http://127.0.0.1:9", environ={})
    for token in ("secret\r\nX-Evil: 1", "secret\n", "sec\x00ret"):
        with pytest.raises(InputError) as caught:
            OrthancClient(dataclasses.replace(settings, token=token))
        assert str(caught.value) == "the token contains a control character; give it without"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.job("../tools/shutdown?"), "job ID '../tools/shutdown?' is not an Orthanc"),
        (lambda c: c.job_action("../tools/shutdown?", "cancel"), "job ID '../tools/shutdown?'"),
        (lambda c: c.instance("../../tools/reset"), "instance ID '../../tools/reset' is not"),
        (lambda c: c.series(SERIES.upper()), "series ID '3E4024BC-A395A1E3"),
        (lambda c: c.study_series("x" * 500), "study ID 'xxxxxxxx"),
        (lambda c: c.instance_content(INSTANCE, "../file"), "tag '../file' is not of the form"),
        (lambda c: c.store_to("peer", "..", [INSTANCE]), "'..' is not a usable name"),
    ],
)
def test_ids_and_names_cannot_leave_their_path_segment(
    server: Scripted, call: Callable[[OrthancClient], object], message: str
) -> None:
    with client_for(server) as client, pytest.raises(InputError) as caught:
        call(client)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 300
    assert server.received == []


def test_names_are_percent_encoded_as_one_segment(server: Scripted) -> None:
    server.answers = [(200, b'{"ID": "32af28ce-d1f9-4655-b38e-3237a3cdcbaa"}')]
    with client_for(server) as client:
        job = client.store_to("modality", "a/../b?c#d e", [INSTANCE])
    assert job == "32af28ce-d1f9-4655-b38e-3237a3cdcbaa"
    assert server.received[0][1] == "/modalities/a%2F..%2Fb%3Fc%23d%20e/store"
    assert path_segment("STORESCP") == "STORESCP"
