"""Selecting a patient, study or series: parsing, and one-or-refuse against a scripted server."""

from __future__ import annotations

import json

import pytest

from pdf2dcm.errors import InputError, NotFoundError
from pdf2dcm.lookup import parse_selector, select_one
from tests.unit.conftest import Scripted, client_for

PATIENT = "0946fcb6-cf12ab43-bad958c1-bf057ad5-0fc6f54c"


def _study(number: int) -> dict[str, object]:
    return {
        "ID": f"{number:08x}-4f66fb14-03f4081b-f9341db2-53925988",
        "ParentPatient": PATIENT,
        "MainDicomTags": {"AccessionNumber": f"A{number}", "StudyDate": "20260101"},
        "PatientMainDicomTags": {"PatientID": "4711", "PatientName": "Doe^Jane"},
        "Series": [],
        "Type": "Study",
    }


def test_terms_and_ids_are_parsed_for_their_level() -> None:
    selector = parse_selector("study", ["AccessionNumber=A123", "PatientID=4711"])
    assert dict(selector.query) == {"AccessionNumber": "A123", "PatientID": "4711"}
    assert str(selector) == "AccessionNumber=A123 PatientID=4711"
    bare = parse_selector("study", [_study(1)["ID"]])  # type: ignore[list-item]
    assert bare.orthanc_id == _study(1)["ID"]
    with pytest.raises(InputError, match="'SeriesNumber' cannot select a study; keys for a study"):
        parse_selector("study", ["SeriesNumber=3"])
    with pytest.raises(InputError, match="'Accession' cannot select a patient"):
        parse_selector("patient", ["Accession=1"])
    with pytest.raises(InputError, match="neither KEY=VALUE nor an Orthanc ID"):
        parse_selector("series", ["../tools/shutdown"])
    with pytest.raises(InputError, match="not both"):
        parse_selector("study", ["AccessionNumber=1", str(_study(1)["ID"])])
    with pytest.raises(InputError, match="empty"):
        parse_selector("study", ["AccessionNumber="])


def test_exactly_one_match_is_taken_and_the_query_is_sent_as_typed(server: Scripted) -> None:
    server.answers = [(200, json.dumps([_study(1)]).encode())]
    found = select_one(client_for(server), parse_selector("study", ["AccessionNumber=A*"]))
    assert found.id == _study(1)["ID"]
    [(method, path, body, _headers)] = server.received
    assert (method, path) == ("POST", "/tools/find")
    sent = json.loads(body)
    assert sent["Level"] == "Study"
    assert sent["Query"] == {"AccessionNumber": "A*"}
    assert sent["Limit"] == 11


def test_none_and_several_are_refused_never_guessed(server: Scripted) -> None:
    client = client_for(server)
    server.answers = [(200, b"[]")]
    with pytest.raises(NotFoundError, match="no study matches AccessionNumber=A9 at http"):
        select_one(client, parse_selector("study", ["AccessionNumber=A9"]))
    server.answers = [(200, json.dumps([_study(n) for n in range(1, 12)]).encode())]
    with pytest.raises(InputError) as caught:
        select_one(client, parse_selector("study", ["PatientID=4711"]))
    message = str(caught.value)
    assert message.startswith("more than 10 studies match PatientID=4711")
    assert message.count("\n  ") == 10
    assert "AccessionNumber=A10" in message
    assert "AccessionNumber=A11" not in message
    assert "add AccessionNumber=... or StudyInstanceUID=... or StudyDate=..., or give" in message
