"""The study owners check against a scripted server: one lookup per study, conflicts named."""

from __future__ import annotations

import json

import pytest

from pdf2dcm.errors import ConflictError
from pdf2dcm.lookup import OrthancArchive
from pdf2dcm.plan import StudyOwners
from tests.unit.conftest import Scripted, client_for

PATIENT = "0946fcb6-cf12ab43-bad958c1-bf057ad5-0fc6f54c"
STUDY = "27f7126f-4f66fb14-03f4081b-f9341db2-53925988"


def test_each_study_is_looked_up_once_per_batch(server: Scripted) -> None:
    server.answers = [(200, b"[]"), (200, b"[]")]
    guard = StudyOwners(OrthancArchive(client_for(server)))
    for _ in range(3):
        guard.check("1.2.3", "P1")
    guard.check("1.2.4", "P1")
    assert [(method, path) for method, path, _body, _headers in server.received] == [
        ("POST", "/tools/lookup"),
        ("POST", "/tools/lookup"),
    ]
    assert [body for _m, _p, body, _h in server.received] == [b"1.2.3", b"1.2.4"]
    # Within the batch, the first document's patient owns a new study too.
    with pytest.raises(ConflictError, match="'P1'"):
        guard.check("1.2.3", "P2")
    assert len(server.received) == 2


def test_a_study_of_another_patient_is_a_conflict_naming_both(server: Scripted) -> None:
    study = {
        "ID": STUDY,
        "ParentPatient": PATIENT,
        "MainDicomTags": {"StudyInstanceUID": "1.2.3"},
        "PatientMainDicomTags": {"PatientID": "OWNER"},
        "Series": [],
        "Type": "Study",
    }
    server.answers = [
        (200, json.dumps([{"Type": "Study", "ID": STUDY, "Path": f"/studies/{STUDY}"}]).encode()),
        (200, json.dumps(study).encode()),
    ]
    guard = StudyOwners(OrthancArchive(client_for(server)))
    with pytest.raises(ConflictError) as caught:
        guard.check("1.2.3", "INTRUDER")
    message = str(caught.value)
    assert "study 1.2.3" in message
    assert "'OWNER'" in message
    assert PATIENT in message
    assert "'INTRUDER'" in message
    assert "nothing was stored" in message
    guard.check("1.2.3", "OWNER ")
    assert len(server.received) == 2
