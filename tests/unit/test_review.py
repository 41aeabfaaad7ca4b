"""The review page's handlers, through Werkzeug's test client, against the fake archive.

The waiting documents are made by a real ``watch --once`` (its failed folder, its
``.error.json`` files and its journal, as the hot folder writes them today).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner
from werkzeug.test import Client, TestResponse

from pdf2dcm.cli import cli
from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from pdf2dcm.lookup import Target
from pdf2dcm.pertags import NameRule
from pdf2dcm.review import Choice, Desk, ReviewOptions
from pdf2dcm.review.web import COOKIE, ReviewApp
from pdf2dcm.upload import UploadOptions, upload_file
from tests.fake_orthanc import FakeOrthanc, serving
from tests.pdfs import make_pdf

TOKEN = "t0ken-for-tests"
HOST = "localhost"
PATTERN = "{AccessionNumber}_{*}.pdf"


@dataclass
class Setup:
    fake: FakeOrthanc
    client: OrthancClient
    failed: Path
    journal: Path
    desk: Desk
    web: Client
    study: str
    """The Orthanc ID of the study the operator should choose."""
    study_uid: str


def _failed_by_a_real_watch(fake: FakeOrthanc, root: Path) -> tuple[Path, Path]:
    inbox, failed, journal = root / "in", root / "failed", root / "watch.jsonl"
    inbox.mkdir()
    (inbox / "NOPE_consent.pdf").write_bytes(make_pdf(3000, seed=7))
    (inbox / "GONE_report.pdf").write_bytes(make_pdf(2500, seed=8))
    result = CliRunner().invoke(
        cli,
        [
            *("watch", str(inbox), "--url", fake.url, "--once", "--settle", "0", "--hold-for", "0"),
            *("--name-pattern", PATTERN, "--study", "AccessionNumber={AccessionNumber}"),
            *("--delete", "--failed", str(failed), "--log", str(journal)),
        ],
    )
    assert result.exit_code == 4, result.stderr
    return failed, journal


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with serving() as fake:
        settings = resolve_settings(url=fake.url, environ={}, netrc_file="/dev/null")
        client = OrthancClient(settings, sleep=lambda _seconds: None)
        failed, journal = _failed_by_a_real_watch(fake, tmp_path)
        # The study the documents belong to arrives after the watcher gave up on them.
        image = tmp_path / "image.pdf"
        image.write_bytes(make_pdf(2000, seed=1))
        tags = {"PatientID": "P-1", "PatientName": "Doe^Jane", "AccessionNumber": "ACC-1"}
        stored = upload_file(client, str(image), UploadOptions(tags=tags))
        assert stored.id is not None
        dataset = fake.datasets[stored.id]
        encoded = io.BytesIO()
        pydicom.dcmwrite(encoded, dataset, enforce_file_format=True)
        fake.route("GET", f"/instances/{stored.id}/file", encoded.getvalue())
        study = fake.resources[f"/studies/{stored.parent_study}"]
        study["MainDicomTags"]["AccessionNumber"] = "ACC-1"
        study["PatientMainDicomTags"]["PatientName"] = "Doe^Jane"
        fake.route("POST", "/tools/find", (200, [study]))
        options = ReviewOptions(
            folders=(failed,),
            target=Target(study=("AccessionNumber={AccessionNumber}",)),
            name_rule=NameRule.from_pattern(PATTERN),
            journal=journal,
        )
        desk = Desk(client, options)
        web = Client(ReviewApp(desk, TOKEN, {HOST}))
        assert stored.parent_study is not None
        assert stored.study_instance_uid is not None
        yield Setup(
            fake, client, failed, journal, desk, web, stored.parent_study, stored.study_instance_uid
        )
        client.close()


def get(setup: Setup, path: str, **query: str) -> TestResponse:
    return setup.web.get(path, query_string={"token": TOKEN, **query})


def post(
    setup: Setup, path: str, form: dict[str, str], headers: dict[str, str] | None = None
) -> TestResponse:
    sent = {"Origin": f"http://{HOST}", **(headers or {})}
    return setup.web.post(path, data={"token": TOKEN, **form}, headers=sent)


def text(response: TestResponse) -> str:
    return " ".join(response.get_data(as_text=True).split())


def confirmation(response: TestResponse) -> str:
    found = re.search(r'name="confirmation" value="([0-9a-f]+)"', response.get_data(as_text=True))
    assert found is not None, response.get_data(as_text=True)
    return found[1]


def journal_lines(setup: Setup) -> list[dict[str, Any]]:
    return [json.loads(line) for line in setup.journal.read_text("utf-8").splitlines()]


def test_the_list_shows_each_document_with_its_reason_and_values_newest_first(
    setup: Setup,
) -> None:
    page = get(setup, "/")
    assert page.status_code == 200
    shown = text(page)
    reason = f"no study matches AccessionNumber=NOPE at {setup.fake.url}"
    assert reason in shown
    assert "nothing matches" in shown
    assert "AccessionNumber=NOPE" in shown
    documents = setup.desk.documents()
    arrivals = [d.arrived for d in documents]
    assert arrivals == sorted(arrivals, reverse=True)
    assert {d.key for d in documents} == {"0/NOPE_consent.pdf", "0/GONE_report.pdf"}
    first = next(d for d in documents if d.key == "0/NOPE_consent.pdf")
    assert first.reason == reason
    assert first.values == {"AccessionNumber": "NOPE"}


def test_the_list_filters_by_reason(setup: Setup, tmp_path: Path) -> None:
    (setup.failed / "plain.pdf").write_bytes(make_pdf(1000, seed=9))
    everything = text(get(setup, "/"))
    assert "plain.pdf" in everything
    assert "not tried" in everything
    only = text(get(setup, "/", reason="nothing matches"))
    assert "NOPE_consent.pdf" in only
    assert "plain.pdf" not in only


def test_the_pdf_is_served_as_it_is_from_the_folder(setup: Setup) -> None:
    answer = get(setup, "/pdf", doc="0/NOPE_consent.pdf")
    assert answer.status_code == 200
    assert answer.mimetype == "application/pdf"
    assert answer.get_data() == (setup.failed / "NOPE_consent.pdf").read_bytes()
    assert "frame-ancestors 'self'" in answer.headers["Content-Security-Policy"]


def test_search_by_accession_then_preview_then_confirm_files_and_moves_to_done(
    setup: Setup,
) -> None:
    found = text(get(setup, "/", doc="0/NOPE_consent.pdf", AccessionNumber="ACC-1"))
    assert "Doe^Jane" in found
    assert "File in this study" in found
    ask = setup.fake.received[-1]
    assert json.loads(ask.body)["Query"] == {"AccessionNumber": "ACC-1"}
    before = set(setup.fake.instances)
    choice = {"doc": "0/NOPE_consent.pdf", "kind": "study", "value": setup.study}
    preview = post(setup, "/preview", choice)
    assert preview.status_code == 200, text(preview)
    shown = text(preview)
    assert "Nothing is sent until you confirm" in shown
    assert f"<th>StudyInstanceUID</th><td>{setup.study_uid}</td>" in shown
    assert "<th>PatientID</th><td>P-1</td>" in shown
    # The name's AccessionNumber (what failed to match) is not applied to a chosen study.
    assert "<th>AccessionNumber</th><td>ACC-1</td>" in shown
    assert set(setup.fake.instances) == before
    assert (setup.failed / "NOPE_consent.pdf").exists()
    pdf = (setup.failed / "NOPE_consent.pdf").read_bytes()

    filed = post(setup, "/file", {**choice, "confirmation": confirmation(preview)})
    assert filed.status_code == 200, text(filed)
    [new] = set(setup.fake.instances) - before
    assert setup.fake.instances[new].rstrip(b"\0") == pdf.rstrip(b"\0")
    assert str(setup.fake.datasets[new].StudyInstanceUID) == setup.study_uid
    assert not (setup.failed / "NOPE_consent.pdf").exists()
    assert not (setup.failed / "NOPE_consent.pdf.error.json").exists()
    assert (setup.failed / "done" / "NOPE_consent.pdf").read_bytes() == pdf
    assert (setup.failed / "done" / "NOPE_consent.pdf.error.json").exists()
    matched = journal_lines(setup)[-1]
    assert matched["Kind"] == "matched"
    assert matched["Input"] == "NOPE_consent.pdf"
    assert matched["Choice"] == f"study {setup.study}"
    assert matched["ID"] == new
    # Filed as previewed: the same derived UIDs.
    planned = re.search(r"<th>SOPInstanceUID</th><td>([0-9.]+)</td>", shown)
    assert planned is not None
    assert matched["SOPInstanceUID"] == planned[1]
    assert matched["SHA256"] == hashlib.sha256(pdf).hexdigest()
    assert matched["Destination"] == str(setup.failed / "done" / "NOPE_consent.pdf")
    assert "0/NOPE_consent.pdf" not in {d.key for d in setup.desk.documents()}


def test_nothing_is_filed_without_the_confirmation_of_its_preview(setup: Setup) -> None:
    choice = {"doc": "0/NOPE_consent.pdf", "kind": "study", "value": setup.study}
    before = set(setup.fake.instances)
    unconfirmed = post(setup, "/file", {**choice, "confirmation": "0" * 64})
    assert unconfirmed.status_code == 400
    assert "preview it again, then confirm" in text(unconfirmed)
    preview = post(setup, "/preview", choice)
    other = {**choice, "kind": "patient", "value": setup.study}
    switched = post(setup, "/file", {**other, "confirmation": confirmation(preview)})
    assert switched.status_code == 400
    (setup.failed / "NOPE_consent.pdf").write_bytes(make_pdf(3000, seed=70))
    changed = post(setup, "/file", {**choice, "confirmation": confirmation(preview)})
    assert changed.status_code == 400
    assert set(setup.fake.instances) == before
    assert (setup.failed / "NOPE_consent.pdf").exists()


def test_retry_as_it_is_uses_the_name_and_the_target_and_shows_the_error(setup: Setup) -> None:
    retried = post(setup, "/preview", {"doc": "0/GONE_report.pdf", "kind": "as-is"})
    assert retried.status_code == 400
    [shown] = re.findall(
        r'<p class="error" role="alert">([^<]*)</p>', retried.get_data(as_text=True)
    )
    # The archive (scripted) answers the study of ACC-1 whatever is asked: the identity
    # check refuses to file a GONE document there.
    assert "AccessionNumber" in shown
    assert shown.endswith("Remove the value, or attach to the right study")
    assert "\n" not in shown


def test_reject_moves_the_document_with_its_reason(setup: Setup) -> None:
    empty = post(setup, "/reject", {"doc": "0/GONE_report.pdf", "reason": "  "})
    assert empty.status_code == 400
    assert "say why the document is rejected" in text(empty)
    done = post(setup, "/reject", {"doc": "0/GONE_report.pdf", "reason": "not ours"})
    assert done.status_code == 200, text(done)
    moved = setup.failed / "rejected" / "GONE_report.pdf"
    assert moved.exists()
    assert not (setup.failed / "GONE_report.pdf").exists()
    record = json.loads(moved.with_name("GONE_report.pdf.rejected.json").read_text("utf-8"))
    assert (record["Kind"], record["Reason"]) == ("rejected", "not ours")
    assert journal_lines(setup)[-1]["Kind"] == "rejected"


def test_a_wrong_or_missing_token_is_refused_and_the_right_one_sets_a_cookie(
    setup: Setup,
) -> None:
    assert setup.web.get("/").status_code == 403
    wrong = setup.web.get("/", query_string={"token": "guess"})
    assert wrong.status_code == 403
    assert "wrong or missing token" in text(wrong)
    assert setup.web.get("/pdf", query_string={"doc": "0/NOPE_consent.pdf"}).status_code == 403
    cookie = get(setup, "/").headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert setup.web.get("/").status_code == 200


def test_a_post_from_another_origin_or_without_the_form_token_is_refused(setup: Setup) -> None:
    preview = post(
        setup, "/preview", {"doc": "0/NOPE_consent.pdf", "kind": "study", "value": setup.study}
    )
    form = {"doc": "0/NOPE_consent.pdf", "kind": "study", "value": setup.study}
    form["confirmation"] = confirmation(preview)
    before = set(setup.fake.instances)
    other = post(setup, "/file", form, {"Origin": "http://evil.example"})
    assert other.status_code == 403
    assert "did not come from this page" in text(other)
    get(setup, "/")  # the browser holds the cookie: it alone is not enough for a POST
    cookie_only = setup.web.post("/file", data=form, headers={"Origin": f"http://{HOST}"})
    assert cookie_only.status_code == 403
    no_origin = setup.web.post("/file", data={"token": TOKEN, **form})
    assert no_origin.status_code == 403
    referred = post(
        setup,
        "/reject",
        {"doc": "0/GONE_report.pdf", "reason": "x"},
        {"Origin": "", "Referer": "http://evil.example/"},
    )
    assert referred.status_code == 403
    assert set(setup.fake.instances) == before
    assert (setup.failed / "NOPE_consent.pdf").exists()


def test_another_host_is_refused(setup: Setup) -> None:
    rebound = setup.web.get(
        "/", query_string={"token": TOKEN}, headers={"Host": "attacker.example"}
    )
    assert rebound.status_code == 403
    assert "not attacker.example" in text(rebound)


@pytest.mark.parametrize(
    "key",
    [
        "0/../watch.jsonl",
        "0/../in/x.pdf",
        "0//etc/passwd.pdf",
        "/etc/passwd",
        "1/NOPE_consent.pdf",
        "0/NOPE_consent.pdf.error.json",
        "0/done/NOPE_consent.pdf",
        "0/link.pdf",
        "x/NOPE_consent.pdf",
    ],
)
def test_paths_outside_the_folders_are_refused(setup: Setup, key: str, tmp_path: Path) -> None:
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(make_pdf(1000, seed=3))
    (setup.failed / "link.pdf").symlink_to(outside)
    (setup.failed / "done").mkdir(exist_ok=True)
    (setup.failed / "done" / "NOPE_consent.pdf").write_bytes(make_pdf(1000, seed=4))
    served = get(setup, "/pdf", doc=key)
    assert served.status_code == 400
    assert "is not a document waiting in the reviewed folders" in text(served)
    rejected = post(setup, "/reject", {"doc": key, "reason": "x"})
    assert rejected.status_code == 400
    assert outside.exists()


def test_a_search_without_terms_shows_one_sentence(setup: Setup) -> None:
    with pytest.raises(Exception, match="give something to search by"):
        setup.desk.search_studies({"PatientName": " "})
    page = text(get(setup, "/", doc="0/NOPE_consent.pdf", PatientName="Doe"))
    sent = json.loads(setup.fake.received[-1].body)["Query"]
    assert sent == {"PatientName": "*Doe*"}
    assert "Doe^Jane" in page


def test_a_worklist_search_without_a_worklist_says_how_to_get_one(setup: Setup) -> None:
    page = text(
        get(setup, "/", doc="0/NOPE_consent.pdf", AccessionNumber="A", **{"in": "worklist"})
    )
    assert "no worklist to search; start the review with --worklist MODALITY" in page


def test_a_choice_names_what_it_files() -> None:
    assert str(Choice("study", "abc")) == "study abc"
    assert str(Choice("as-is")) == "as-is"
    with pytest.raises(Exception, match="the study to file into is missing"):
        Choice("study", " ")


def test_the_studies_a_refusal_listed_are_read_from_its_reason(tmp_path: Path) -> None:
    from pdf2dcm.review.queue import waiting_documents

    first, second = "1b3a6f13-fe07c53c-5e985968-59e2d3fe-46ae0c4b", "0" * 8 + "-aaaaaaaa" * 4
    (tmp_path / "two.pdf").write_bytes(make_pdf(1000, seed=5))
    reason = {
        "Kind": "failed",
        "Input": "two.pdf",
        "Error": f"2 studies match AccessionNumber=A1 at http://pacs; add a term:\n  {first}  "
        f"PatientID=1\n  {second}  PatientID=2",
        "ExitCode": 2,
        "Time": "2026-01-02T03:04:05+00:00",
        "ErrorType": "InputError",
    }
    (tmp_path / "two.pdf.error.json").write_text(json.dumps(reason), "utf-8")
    (tmp_path / "later.pdf").write_bytes(make_pdf(1000, seed=6))
    [later, two] = waiting_documents([tmp_path])
    assert two.candidates == (first, second)
    assert two.reason == "2 studies match AccessionNumber=A1 at http://pacs; add a term:"
    assert two.kind == "refused input"
    assert two.arrived.isoformat() == "2026-01-02T03:04:05+00:00"
    assert (later.kind, later.reason, later.candidates) == ("not tried", None, ())


def test_the_worklist_is_searched_and_a_procedure_is_filed_for(setup: Setup) -> None:
    item = {
        "PatientName": "Roe^Ann",
        "PatientID": "P-9",
        "AccessionNumber": "WL-1",
        "StudyInstanceUID": "1.2.826.0.1.3680043.10.1",
        "RequestedProcedureDescription": "Consent",
    }
    setup.fake.route("POST", "/modalities/RIS/find-worklist", (200, [item]))
    desk = Desk(setup.client, replace(setup.desk.options, worklist="RIS"))
    web = Client(ReviewApp(desk, TOKEN, {HOST}))
    found = web.get(
        "/",
        query_string={"token": TOKEN, "doc": "0/NOPE_consent.pdf", "AccessionNumber": "WL-1"}
        | {"in": "worklist"},
    )
    assert "File for this procedure" in text(found)
    assert json.loads(setup.fake.received[-1].body)["AccessionNumber"] == "WL-1"
    preview = web.post(
        "/preview",
        data={"token": TOKEN, "doc": "0/NOPE_consent.pdf", "kind": "worklist"}
        | {"value": f"StudyInstanceUID={item['StudyInstanceUID']}"},
        headers={"Origin": f"http://{HOST}"},
    )
    shown = text(preview)
    assert preview.status_code == 200, shown
    assert f"<th>StudyInstanceUID</th><td>{item['StudyInstanceUID']}</td>" in shown
    assert "<th>PatientName</th><td>Roe^Ann</td>" in shown
    assert "<th>StudyDescription</th><td>Consent</td>" in shown


def test_a_patient_chosen_gets_the_document_in_a_new_study(setup: Setup) -> None:
    [patient] = [path for path in setup.fake.resources if path.startswith("/patients/")]
    preview = post(
        setup,
        "/preview",
        {"doc": "0/NOPE_consent.pdf", "kind": "patient", "value": patient.split("/")[-1]},
    )
    shown = text(preview)
    assert preview.status_code == 200, shown
    assert "<th>PatientID</th><td>P-1</td>" in shown
    assert f"<td>{setup.study_uid}</td>" not in shown


def test_a_page_served_on_every_interface_takes_any_host_but_still_the_token(
    setup: Setup,
) -> None:
    from pdf2dcm.review.web import ReviewServer

    server = ReviewServer(setup.desk, "0.0.0.0", 0)
    try:
        assert server.app.hosts is None
        web = Client(server.app)
        named = {"Host": "scanner-pc.example:8080"}
        assert web.get("/", headers=named).status_code == 403
        assert web.get("/", query_string={"token": server.token}, headers=named).status_code == 200
    finally:
        server.stop()
    loopback = ReviewServer(setup.desk)
    try:
        assert loopback.app.hosts == frozenset(
            f"{name}:{loopback.port}" for name in ("127.0.0.1", "localhost", "[::1]")
        )
    finally:
        loopback.stop()
