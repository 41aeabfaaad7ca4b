"""The usual encode without pydicom: the same file, result, warnings and messages as the full path.

An ordinary document (no reference, the keywords fastwrite knows, ASCII or UTF-8 text) is
built by :func:`pdf2dcm.dicom.plain_attributes` and written by fastwrite; anything else, and
every value the full path would cut or refuse, goes to pydicom. Each case here encodes the
same input both ways (the full path forced with ``full_build``) under the same UIDs and
compares everything a caller sees.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdf2dcm import dicom
from pdf2dcm.dicom import attribute_values, open_encoded
from pdf2dcm.errors import Pdf2DcmError
from tests.fake_orthanc import serving
from tests.pdfs import make_pdf, titled_pdf
from tests.unit.test_fastwrite import CORPUS, TAG_SETS, full_build

MOMENT = dt.datetime(2024, 3, 5, 14, 7, 9)


def _fixed_uids(monkeypatch: pytest.MonkeyPatch) -> None:
    numbers = itertools.count(1)
    monkeypatch.setattr(dicom, "new_uid", lambda: f"1.2.3.{next(numbers)}")


Outcome = tuple[str, Any]


def _encode(
    pdf: Path, tags: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *, full: bool
) -> tuple[Outcome, bool]:
    """What a caller sees of one encode (or the error), and whether pydicom built it."""
    _fixed_uids(monkeypatch)
    out = io.BytesIO()
    try:
        with (
            full_build() if full else contextlib.nullcontext(),
            open_encoded(pdf, tags=tags, now=MOMENT) as document,
        ):
            document.write_to(out)
            built_by_pydicom = document._dataset is not None
            seen = (
                out.getvalue(),
                document.attributes,
                attribute_values(document.dataset),
                document.result("o.dcm"),
            )
    except Pdf2DcmError as error:
        return ("error", (type(error), str(error))), True
    return ("written", seen), built_by_pydicom


@pytest.mark.parametrize("pdf_name", list(CORPUS))
@pytest.mark.parametrize("tag_set", list(TAG_SETS))
def test_the_fast_path_writes_what_the_full_path_writes(
    pdf_name: str, tag_set: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdf = tmp_path / "in.pdf"
    pdf.write_bytes(CORPUS[pdf_name])
    fast, by_pydicom = _encode(pdf, TAG_SETS[tag_set], monkeypatch, full=False)
    full, _ = _encode(pdf, TAG_SETS[tag_set], monkeypatch, full=True)
    assert not by_pydicom, "an ordinary document must not need pydicom"
    assert fast == full


KEYWORDS = [
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientComments",
    "StudyDescription",
    "SeriesDescription",
    "InstitutionName",
    "ReferringPhysicianName",
    "OperatorsName",
    "AccessionNumber",
    "StudyID",
    "StationName",
    "SoftwareVersions",
    "SeriesNumber",
    "InstanceNumber",
    "StudyDate",
    "StudyTime",
    "TimezoneOffsetFromUTC",
    "Modality",
    "DocumentTitle",
    "BurnedInAnnotation",
    "PatientWeight",  # DS, unknown to fastwrite: the full path
    "ProtocolName",  # LO, unknown to fastwrite: the full path
]
PIECES = st.sampled_from(
    ["Doe", "Jane", "^", "=", "\\", " ", "Müller", "山田", "🫀", "é", "1", "0", "20240131", "+0100"]
)
VALUES = st.one_of(
    st.lists(PIECES, max_size=8).map("".join),
    st.text(
        st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs", "Cc")), max_size=80
    ),
    st.integers(min_value=1, max_value=1100).flatmap(
        lambda n: st.sampled_from(["x" * n, "ü" * n, "a^" * (n // 2)])
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tags=st.dictionaries(st.sampled_from(KEYWORDS), VALUES, max_size=6))
def test_any_tags_give_the_same_file_or_the_same_refusal(
    tags: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    pdf = tmp_path_factory.mktemp("p") / "in.pdf"
    pdf.write_bytes(make_pdf(1001))
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, _ = _encode(pdf, tags, monkeypatch, full=False)
        full, _ = _encode(pdf, tags, monkeypatch, full=True)
    assert fast == full


def test_what_the_fast_path_leaves_to_pydicom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdf = tmp_path / "in.pdf"
    pdf.write_bytes(make_pdf(1001))
    code = {"CodeValue": "1", "CodingSchemeDesignator": "L", "CodeMeaning": "Consent"}
    for tags in (
        {"PatientWeight": "70"},  # a keyword it does not know
        {"ConceptNameCodeSequence": [code]},  # a sequence
        {"PatientName": "ü" * 40},  # too long in bytes: the full path refuses it
    ):
        _outcome, by_pydicom = _encode(pdf, tags, monkeypatch, full=False)
        assert by_pydicom, tags
    long_title = tmp_path / "long.pdf"  # a Title cut to 1024 bytes by the full path
    long_title.write_bytes(titled_pdf(b"/Title (" + b"x" * 1100 + b")"))
    fast, by_pydicom = _encode(long_title, {}, monkeypatch, full=False)
    assert by_pydicom
    assert fast == _encode(long_title, {}, monkeypatch, full=True)[0]


_PROBE = """
import sys
from pdf2dcm.cli import main
sys.argv = ["pdf2dcm", *sys.argv[1:]]
try:
    main()
except SystemExit as done:
    code = done.code
print(code, sorted({"pydicom", "requests"} & set(sys.modules)))
"""


def _modules_of(*args: str) -> str:
    """The exit code of a command and which of pydicom and requests it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def pdf_file(tmp_path: Path) -> Path:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf(52 * 1024))
    return pdf


def test_the_usual_encode_imports_neither_pydicom_nor_requests(
    pdf_file: Path, tmp_path: Path
) -> None:
    out = str(tmp_path / "o.dcm")
    tags = ["--tag", "PatientName=Müller^Jürgen", "--tag", "PatientID=4711"]
    assert _modules_of("encode", str(pdf_file), "-o", out, *tags) == "0 []"
    assert _modules_of("encode", str(pdf_file), "-o", out, "--overwrite", "--dry-run") == "0 []"


def test_an_unusual_encode_imports_pydicom(pdf_file: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "o.dcm")
    found = _modules_of("encode", str(pdf_file), "-o", out, "--tag", "PatientWeight=70")
    assert found.startswith("0 [")
    assert "'pydicom'" in found  # which imports requests too


def test_the_headline_upload_imports_no_pydicom(pdf_file: Path) -> None:
    with serving() as archive:
        found = _modules_of(
            "upload", str(pdf_file), "--url", archive.url, "--tag", "PatientName=Benjamino"
        )
        assert [method for method, _path in archive.asked] == ["POST"]
    assert found == "0 []"  # the client speaks http.client; pydicom is not needed for a PDF
