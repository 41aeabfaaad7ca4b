"""pdf2dcm ls in the fast loop: a small archive that answers Orthanc's find and tags routes,
JSON through CliRunner, tables on a pseudo-terminal at 80 and 160 columns."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from pdf2dcm.cli import cli
from pdf2dcm.listing import READ_AHEAD
from tests.fake_orthanc import Action, Request, reply, serving
from tests.terminal import run_on_terminal

PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
IMAGE_CLASS = "1.2.840.10008.5.1.4.1.1.7"
TODAY = dt.date.today()
JAPANESE_RAW = "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B".encode("latin-1")
LONG_TITLE = "Einverständniserklärung zur Koloskopie mit Polypektomie und Sedierung, Seite 1 von 2"


_CODECS = {"ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


def _id(kind: int, number: int) -> str:
    return f"{kind:08x}-{number:08x}-03f4081b-f9341db2-53925988"


@dataclass
class Doc:
    """One instance of the archive, in a study of its own unless told otherwise."""

    number: int
    study_date: str
    sop_class: str = PDF_CLASS
    patient_id: str = "4711"
    name: str = "Müller^Jürgen"
    title: str = "Consent"
    charset: str = "ISO_IR 100"
    content_date: str = ""
    study: int | None = None
    series: int | None = None

    @property
    def id(self) -> str:
        return _id(1, self.number)

    @property
    def study_id(self) -> str:
        return _id(2, self.study if self.study is not None else self.number)

    @property
    def series_id(self) -> str:
        return _id(3, self.series if self.series is not None else self.number)


class _Archive:
    """The documents of a test, answered as Orthanc answers ``ls``'s questions (a model of
    the fake archive): instance-level ``/tools/find`` with a StudyDate range, the studies'
    JSON, ``/instances/{id}/tags`` and the raw values of two attributes."""

    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs
        self.asked: list[tuple[str, str, Any]] = []
        self.url = ""

    def __call__(self, request: Request) -> Action | None:
        if request.method == "POST" and request.path == "/tools/find":
            query = json.loads(request.body)
            self.asked.append(("POST", request.path, query))
            return reply(200, self._find(query))
        if request.method != "GET":
            return None
        self.asked.append(("GET", request.path, None))
        parts = urlsplit(request.path).path.strip("/").split("/")
        doc = next((d for d in self.docs if d.id == parts[1]), None) if parts[1:] else None
        if parts[0] == "studies":
            return reply(200, self._study(parts[1]))
        if doc is None:
            return None
        if parts[2:] == ["tags"]:
            return reply(200, self._tags(doc))
        if parts[2:] == ["content", "0010-0010"]:
            return reply(
                200, doc.name.encode(_CODECS[doc.charset]) if doc.charset else JAPANESE_RAW
            )
        if parts[2:] == ["content", "0042-0010"]:
            return reply(200, doc.title.encode(_CODECS.get(doc.charset, "iso2022_jp")))
        return None

    def _find(self, request: dict[str, Any]) -> list[Any]:
        query = request["Query"]
        docs = [
            d
            for d in self.docs
            if all(_matches(_study_values(d)[k], v) for k, v in query.items() if k != "SOPClassUID")
        ]
        if request["Level"] == "Instance":
            docs = [d for d in docs if d.sop_class == query.get("SOPClassUID", d.sop_class)]
            answer: list[Any] = [
                {
                    "ID": d.id,
                    "ParentSeries": d.series_id,
                    "MainDicomTags": {"SOPInstanceUID": f"1.2.3.{d.number}"},
                    "Type": "Instance",
                }
                for d in docs
            ]
        else:
            answer = [self._study(d.study_id) for d in {d.study_id: d for d in docs}.values()]
        if not request.get("Expand"):
            answer = [item["ID"] for item in answer]
        return answer

    def _study(self, study_id: str) -> dict[str, Any]:
        members = [d for d in self.docs if d.study_id == study_id]
        first = members[0]
        return {
            "ID": study_id,
            "ParentPatient": _id(4, 1),
            "MainDicomTags": {
                "StudyDate": first.study_date,
                "AccessionNumber": f"A{first.number}",
                "StudyInstanceUID": _study_values(first)["StudyInstanceUID"],
            },
            "PatientMainDicomTags": {"PatientID": first.patient_id},
            "Series": sorted({d.series_id for d in members}),
            "Type": "Study",
        }

    def _tags(self, doc: Doc) -> dict[str, Any]:
        # What Orthanc shows: text it decoded; ISO 2022 comes through with its escapes.
        garbled = doc.charset == ""
        return {
            "SOPClassUID": doc.sop_class,
            "SpecificCharacterSet": doc.charset or "ISO 2022 IR 13\\ISO 2022 IR 87",
            "PatientName": JAPANESE_RAW.decode("latin-1") if garbled else doc.name,
            "DocumentTitle": doc.title,
            "ContentDate": doc.content_date or doc.study_date,
            "EncapsulatedDocument": None,
            "EncapsulatedDocumentLength": str(1000 * doc.number),
        }


def _matches(value: str, constraint: str) -> bool:
    if "-" in constraint and constraint.replace("-", "").isdigit():
        low, _, high = constraint.partition("-")
        return bool(value) and (not low or value >= low) and (not high or value <= high)
    return value == constraint


def _study_values(doc: Doc) -> dict[str, str]:
    return {
        "StudyDate": doc.study_date,
        "PatientID": doc.patient_id,
        "StudyInstanceUID": f"1.2.3.{doc.study_id[:8]}",
    }


def _day(days_ago: int) -> str:
    return (TODAY - dt.timedelta(days=days_ago)).strftime("%Y%m%d")


def _archive(docs: list[Doc]) -> Iterator[_Archive]:
    archive = _Archive(docs)
    with serving() as fake:
        fake.models.append(archive)
        archive.url = fake.url
        yield archive


@pytest.fixture
def small() -> Iterator[_Archive]:
    """Two consents in one study, one document inside an image series, an image, ISO 2022."""
    yield from _archive(
        [
            Doc(1, _day(40), content_date=_day(40), study=1, series=1),
            Doc(2, _day(40), content_date=_day(39), study=1, series=1, title="Consent 2"),
            Doc(3, _day(3), sop_class=IMAGE_CLASS, study=3, series=3),
            Doc(4, _day(3), study=3, series=3, title="Befund im Bildserie"),
            Doc(5, _day(400), charset="", title="同意書"),
        ]
    )


@pytest.fixture
def many() -> Iterator[_Archive]:
    """30 documents a day apart, one without a StudyDate."""
    docs = [Doc(n, _day(n), title=f"Consent {n}") for n in range(1, 30)]
    docs.append(Doc(30, "", title="undated"))
    yield from _archive(docs)


def _url(server: _Archive) -> str:
    return server.url


def _ls(server: _Archive, *args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["ls", "--url", _url(server), *args])
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_documents_in_any_series_newest_first_with_names_from_their_bytes(small: _Archive) -> None:
    records = _ls(small)
    assert [r["ID"] for r in records] == [_id(1, n) for n in (4, 2, 1, 5)]
    assert records[1] == {
        "Kind": "document",
        "ID": _id(1, 2),
        "ParentPatient": _id(4, 1),
        "ParentStudy": _id(2, 1),
        "ParentSeries": _id(3, 1),
        "SOPInstanceUID": "1.2.3.2",
        "PatientID": "4711",
        "PatientName": "Müller^Jürgen",
        "StudyDate": _day(40),
        "AccessionNumber": "A1",
        "DocumentTitle": "Consent 2",
        "ContentDate": _day(39),
        "Size": 2000,
    }
    # ISO 2022: Orthanc's text is not taken, the stored bytes are decoded.
    assert records[3]["PatientName"] == "Yamada^Tarou=山田^太郎"
    assert records[3]["DocumentTitle"] == "同意書"
    raw_reads = sorted(p for m, p, _ in small.asked if "/content/" in p)
    assert raw_reads == [
        f"/instances/{_id(1, 5)}/content/{tag}" for tag in ("0010-0010", "0042-0010")
    ]
    assert not [p for m, p, _ in small.asked if p.endswith("/file")]


def test_filters_go_into_the_query(small: _Archive) -> None:
    records = _ls(small, "--patient", "PatientID=4711", "--since", "2026-01-01", "--title", "2")
    assert [r["ID"] for r in records] == [_id(1, 2)]
    finds = [body for method, _p, body in small.asked if method == "POST"]
    assert finds[0]["Level"] == "Instance"
    assert finds[0]["Query"] == {
        "PatientID": "4711",
        "StudyDate": "20260101-",
        "SOPClassUID": PDF_CLASS,
    }


def test_limit_stops_the_walk_and_the_reads(many: _Archive) -> None:
    records = _ls(many, "--limit", "2")
    assert [r["DocumentTitle"] for r in records] == ["Consent 1", "Consent 2"]
    finds = [body["Query"].get("StudyDate") for m, _p, body in many.asked if m == "POST"]
    # Only the first week's window was asked for.
    assert finds == [f"{_day(6)}-", f"{_day(6)}-"]
    tags = [p for m, p, _ in many.asked if "/tags" in p]
    assert len(tags) <= 2 + READ_AHEAD
    assert len(tags) < 30


def test_json_lists_all_with_the_undated_last(many: _Archive) -> None:
    records = _ls(many, "--json")
    assert [r["DocumentTitle"] for r in records] == [
        *(f"Consent {n}" for n in range(1, 30)),
        "undated",
    ]


def _screen(server: _Archive, columns: int, *args: str) -> tuple[list[str], str]:
    code, screen, err = run_on_terminal("ls", "--url", _url(server), *args, columns=columns)
    assert code == 0, err
    return [line for line in screen.replace("\r", "").split("\n") if line], err


def test_table_fits_80_columns_and_cuts_in_the_middle(many: _Archive) -> None:
    many.docs[0].title = LONG_TITLE
    many.docs[1].title = "Alarm\x1b[31m red"
    many.docs[2].name = "Wolfeschlegelsteinhausenbergerdorff^Hubert Blaine^von^Dr.^Sen."
    lines, err = _screen(many, 80)
    assert all(cell_len(line) <= 80 for line in lines)
    assert lines[0].split() == ["PatientID", "PatientName", "StudyDate", "DocumentTitle", "Size"]
    assert len(lines) == 1 + 20
    assert err.strip() == "pdf2dcm: 20 of 29+ documents; --limit N to see more"
    first = lines[1]
    assert first.startswith("4711")
    assert _day(1) in first
    assert "Müller^Jürgen" in first
    assert "Einverständ" in first
    assert "…" in first
    assert "von 2" in first
    assert "\\x1b[31m" in lines[2]
    assert "\x1b" not in "".join(lines)
    assert "Wolfeschle" in lines[3]
    assert "Sen." in lines[3]
    assert _id(1, 1) not in "".join(lines)


def test_table_at_160_columns_shows_whole_values_and_the_instance(many: _Archive) -> None:
    many.docs[0].title = LONG_TITLE
    lines, err = _screen(many, 160, "--limit", "3")
    assert all(cell_len(line) <= 160 for line in lines)
    assert lines[0].split()[-1] == "Instance"
    assert "Einverständniserklärung zur Kolo" in lines[1]
    assert "Sedierung, Seite 1 von 2" in lines[1]
    assert lines[1].endswith(_id(1, 1))
    assert err.strip() == "pdf2dcm: 3 of 6+ documents; --limit N to see more"


def test_wide_table_adds_accession_and_instance(small: _Archive) -> None:
    lines, err = _screen(small, 80, "-l")
    assert lines[0].split() == [
        "PatientID",
        "PatientName",
        "StudyDate",
        "AccessionNumber",
        "DocumentTitle",
        "Size",
        "Instance",
    ]
    assert lines[1].endswith(_id(1, 4))
    assert err.strip() == "pdf2dcm: 4 documents"


def test_a_hostile_title_and_name_are_drawn_literally(small: _Archive) -> None:
    """What the archive holds is text to show, never a control sequence or rich markup."""
    small.docs[0].title = "[/]\x1b]2;XY\x07 \u202eevil"
    small.docs[0].charset = "ISO_IR 192"
    small.docs[1].name = "Bad[bold]^\x1b[2J"
    code, screen, err = run_on_terminal("ls", "--url", _url(small), "-l", columns=200)
    assert code == 0, err
    assert "[/]\\x1b]2;XY\\x07 \\u202eevil" in screen
    assert "Bad[bold]^\\x1b[2J" in screen
    for raw in ("\x1b]", "\x1b[2J", "\x07", "\u202e"):
        assert raw not in screen + err, repr(screen)
