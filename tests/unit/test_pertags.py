"""Per-file tags: name patterns and regexes, sidecars, manifests, file lists, placeholders."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pdf2dcm.errors import FileSystemError, InputError, TagError
from pdf2dcm.pertags import (
    NameRule,
    fill_placeholders,
    has_placeholders,
    keyword_values,
    merge_tags,
    read_file_list,
    read_manifest,
    sidecar_tags,
)

PATIENT_ID, ACCESSION, PATIENT_NAME = 0x00100020, 0x00080050, 0x00100010


def test_pattern_reads_keywords_and_skips_the_wildcard() -> None:
    rule = NameRule.from_pattern("{PatientID}_{AccessionNumber}_{*}.pdf")
    assert rule.values("4711_A123_consent_form.pdf") == {
        "PatientID": "4711",
        "AccessionNumber": "A123",
    }
    assert rule.tags("4711_A123_x.pdf") == {PATIENT_ID: "4711", ACCESSION: "A123"}
    # A rule without '/' looks at the name only, wherever the file lies.
    assert rule.values("ward/7/4711_A9_.pdf") == {"PatientID": "4711", "AccessionNumber": "A9"}


def test_pattern_with_a_folder_reads_the_folder() -> None:
    rule = NameRule.from_pattern("{PatientID}/{*}.pdf")
    assert rule.values("4711/consent.pdf") == {"PatientID": "4711"}
    with pytest.raises(InputError) as caught:
        rule.values("consent.pdf")
    assert str(caught.value) == (
        "consent.pdf does not match the name pattern '{PatientID}/{*}.pdf'; rename it, or "
        "give its tags in a sidecar"
    )


def test_pattern_literals_are_literal_and_braces_escape() -> None:
    rule = NameRule.from_pattern("a.b{{{PatientID}}}(x)+.pdf")
    assert rule.values("a.b{42}(x)+.pdf") == {"PatientID": "42"}
    with pytest.raises(InputError):
        rule.values("aXb{42}(x)+.pdf")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{PatientId}.pdf", "did you mean PatientID?"),
        ("{PatientID}_{PatientID}.pdf", "names PatientID twice"),
        ("{PatientID.pdf", "has a lone '{'"),
        ("{0010,0020}.pdf", "name the value '0010,0020' by its DICOM keyword"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        NameRule.from_pattern(pattern)
    assert message in str(caught.value)


def test_regex_named_groups_are_keywords() -> None:
    rule = NameRule.from_regex(r"(?P<PatientID>\d+)-(?P<AccessionNumber>[A-Z]\d+)\.pdf")
    assert rule.values("0042-A7.pdf") == {"PatientID": "0042", "AccessionNumber": "A7"}
    with pytest.raises(InputError, match="does not match"):
        rule.values("x0042-A7.pdf")
    with pytest.raises(InputError, match="has no named group"):
        NameRule.from_regex(r"\d+\.pdf")
    with pytest.raises(InputError, match="unknown DICOM keyword 'Patient'"):
        NameRule.from_regex(r"(?P<Patient>\d+)\.pdf")
    with pytest.raises(InputError, match="is not a regular expression"):
        NameRule.from_regex(r"(?P<PatientID>\d+")


def test_a_value_from_the_name_is_validated_with_the_file_named() -> None:
    rule = NameRule.from_pattern("{StudyDate}_{*}.pdf")
    with pytest.raises(TagError) as caught:
        rule.tags("2026-01-01_x.pdf")
    assert str(caught.value).startswith("2026-01-01_x.pdf: value from its name: StudyDate")


def test_sidecar(tmp_path: Path) -> None:
    pdf = tmp_path / "r.pdf"
    assert sidecar_tags(pdf) == {}
    (tmp_path / "r.json").write_text('{"PatientName": "Doe^Jane"}', encoding="utf-8")
    assert sidecar_tags(pdf) == {PATIENT_NAME: "Doe^Jane"}
    (tmp_path / "r.json").write_text('["no"]', encoding="utf-8")
    with pytest.raises(TagError, match=r"^sidecar .*r\.json. must hold a JSON obj"):
        sidecar_tags(pdf)


def test_placeholders() -> None:
    values = keyword_values({PATIENT_ID: "4711", ACCESSION: "A1", 0x0040A730: []})
    assert values == {"PatientID": "4711", "AccessionNumber": "A1"}
    assert fill_placeholders("AccessionNumber={AccessionNumber}", values, "--study") == (
        "AccessionNumber=A1"
    )
    assert fill_placeholders("X={{{PatientID}}}", values, "--study") == "X={4711}"
    assert has_placeholders("PatientID={PatientID}")
    assert not has_placeholders("PatientID={{literal}}")
    with pytest.raises(InputError) as caught:
        fill_placeholders("StudyInstanceUID={StudyInstanceUID}", values, "--study")
    assert str(caught.value) == (
        "--study 'StudyInstanceUID={StudyInstanceUID}' needs StudyInstanceUID, and this file "
        "gave none (from its name, sidecar or tags)"
    )


def test_merge_later_wins() -> None:
    assert merge_tags({PATIENT_ID: "1", ACCESSION: "A"}, {PATIENT_ID: "2"}) == {
        PATIENT_ID: "2",
        ACCESSION: "A",
    }


def test_csv_manifest(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.pdf").write_bytes(b"%PDF-")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "\ufefffile,PatientID,PatientName\na.pdf,1,Doe^A\n\nsub/b.pdf,2,\n", encoding="utf-8"
    )
    entries = read_manifest(manifest)
    assert [(e.path, e.tags, e.row) for e in entries] == [
        (tmp_path / "a.pdf", {PATIENT_ID: "1", PATIENT_NAME: "Doe^A"}, 2),
        (tmp_path / "sub" / "b.pdf", {PATIENT_ID: "2"}, 4),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,PatientID\na.pdf,1\n", "has no 'file' column"),
        ("file,PatientIdentity\na.pdf,1\n", "column 'PatientIdentity': unknown DICOM keyword"),
        ("file,StudyDate\na.pdf,20260101\na.pdf,2026\n", "row 3: StudyDate (0008,0020)"),
        ("file,PatientID\na.pdf,1,2\n", "row 2 has 3 cells for 2 columns"),
        ("file,PatientID\nmissing.pdf,1\n", "row 2: missing.pdf is not a file"),
        ("file,PatientID\n,1\n", "row 2: the file is empty"),
        ("file,PatientID\n", "lists no file"),
    ],
)
def test_csv_manifest_errors_name_the_row(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-")
    manifest = tmp_path / "m.csv"
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_manifest(manifest)
    assert message in str(caught.value)
    assert str(manifest) in str(caught.value)


def test_json_lines_manifest(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"file": "a.pdf", "tags": {"PatientID": "9"}}\n\n{"file": "a.pdf"}\n', encoding="utf-8"
    )
    assert [(e.tags, e.row) for e in read_manifest(manifest)] == [({PATIENT_ID: "9"}, 1), ({}, 3)]
    manifest.write_text('{"file": "a.pdf", "tag": {}}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"row 1: unknown field 'tag'"):
        read_manifest(manifest)
    manifest.write_text('{"file": "a.pdf", "tags": {"PatientSex": "X"}}\n', encoding="utf-8")
    with pytest.raises(TagError, match=r"row 1: PatientSex"):
        read_manifest(manifest)
    manifest.write_text("{oops\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"row 1 is not JSON"):
        read_manifest(manifest)


def test_manifest_unreadable(tmp_path: Path) -> None:
    with pytest.raises(
        FileSystemError, match=r"cannot open the manifest .*nope\.csv: No such file"
    ):
        read_manifest(tmp_path / "nope.csv")


def test_file_lists(tmp_path: Path) -> None:
    listing = tmp_path / "list"
    listing.write_bytes(b"a.pdf\r\nb c.pdf\n\n\xff.pdf\n")
    assert read_file_list(listing) == ["a.pdf", "b c.pdf", "\udcff.pdf"]
    assert read_file_list(io.BytesIO(b"a\nb.pdf\0c.pdf\0"), nul=True) == ["a\nb.pdf", "c.pdf"]
    with pytest.raises(InputError, match="read it with -0"):
        read_file_list(io.BytesIO(b"a.pdf\0b.pdf"))
    with pytest.raises(InputError, match="file list <stdin> names no file"):
        read_file_list(io.BytesIO(b"\n\n"))
    with pytest.raises(FileSystemError, match=r"cannot open the file list .*missing: No such file"):
        read_file_list(tmp_path / "missing")


def test_batch_file_tags_layers_name_sidecar_and_manifest(tmp_path: Path) -> None:
    from pdf2dcm.pertags import batch_file_tags

    for name in ("11_a.pdf", "12_b.pdf"):
        (tmp_path / name).write_bytes(b"%PDF-")
    (tmp_path / "12_b.json").write_text('{"PatientName": "Side^Car"}', encoding="utf-8")
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,PatientID\n11_a.pdf,99\n", encoding="utf-8")
    entries = read_manifest(manifest)
    names = [str(tmp_path / "11_a.pdf"), str(tmp_path / "12_b.pdf"), "-"]
    rule = NameRule.from_pattern("{PatientID}_{*}.pdf")
    assert batch_file_tags(names, rule=rule, sidecars=True, manifest=entries) == [
        {PATIENT_ID: "99"},
        {PATIENT_ID: "12", PATIENT_NAME: "Side^Car"},
        {},
    ]
    assert batch_file_tags(names, rule=rule) == [{PATIENT_ID: "11"}, {PATIENT_ID: "12"}, {}]


def test_batch_file_tags_counts_the_inputs_that_do_not_fit(tmp_path: Path) -> None:
    from pdf2dcm.pertags import batch_file_tags

    rule = NameRule.from_pattern("{PatientID}_{*}.pdf")
    with pytest.raises(InputError) as caught:
        batch_file_tags(["a.pdf", "b.pdf", "c.pdf", "1_ok.pdf"], rule=rule)
    assert str(caught.value) == (
        "a.pdf does not match the name pattern '{PatientID}_{*}.pdf'; rename it, or give its "
        "tags in a sidecar (2 more inputs like it; nothing was sent)"
    )
