"""Tag parsing and validation: every rule a user can trip over, with its message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pdf2dcm.errors import TagError
from pdf2dcm.tags import load_tags_file, parse_assignment, resolve_key, validate_tags


def test_assignment_splits_at_first_equals_sign() -> None:
    assert parse_assignment("PatientName=Doe^Jane=山田^太郎") == (
        "PatientName",
        "Doe^Jane=山田^太郎",
    )


def test_assignment_keeps_empty_value() -> None:
    assert parse_assignment("AccessionNumber=") == ("AccessionNumber", "")


def test_assignment_without_equals_is_rejected() -> None:
    with pytest.raises(TagError, match=r"'PatientName' is not KEY=VALUE"):
        parse_assignment("PatientName")


def test_sequence_assignment_takes_json() -> None:
    items = [{"CodeValue": "1", "CodingSchemeDesignator": "99X", "CodeMeaning": "m"}]
    key, value = parse_assignment("ConceptNameCodeSequence=" + json.dumps(items))
    assert (key, value) == ("ConceptNameCodeSequence", items)


def test_sequence_assignment_with_bad_json_explains_the_shape() -> None:
    with pytest.raises(TagError, match=r"ConceptNameCodeSequence \(0040,A043\) is a sequence"):
        parse_assignment("ConceptNameCodeSequence=abc")


@pytest.mark.parametrize(
    ("key", "tag"),
    [("PatientName", 0x00100010), ("0010,0010", 0x00100010), ("(0010,0020)", 0x00100020)],
)
def test_keys_resolve_by_keyword_or_number(key: str, tag: int) -> None:
    assert resolve_key(key) == tag


def test_unknown_keyword_suggests_the_closest() -> None:
    with pytest.raises(
        TagError, match=r"unknown DICOM keyword 'PatientNme'; did you mean PatientName"
    ):
        resolve_key("PatientNme")


def test_wrong_case_keyword_suggests_the_right_case() -> None:
    with pytest.raises(TagError, match=r"did you mean PatientName\?$"):
        resolve_key("patientname")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("SOPClassUID", r"SOPClassUID \(0008,0016\) is set by pdf2dcm"),
        ("EncapsulatedDocument", r"EncapsulatedDocument \(0042,0011\) is set by pdf2dcm"),
        ("MIMETypeOfEncapsulatedDocument", r"is set by pdf2dcm"),
        ("EncapsulatedDocumentLength", r"is set by pdf2dcm"),
        ("SpecificCharacterSet", r"is set by pdf2dcm"),
        ("TransferSyntaxUID", r"file meta information"),
        ("0009,0010", r"private attribute \(0009,0010\) cannot be set"),
        ("0010,0000", r"group length"),
        ("0010,9999", r"\(0010,9999\) is not in the DICOM dictionary"),
    ],
)
def test_owned_private_and_unknown_tags_are_refused(key: str, message: str) -> None:
    with pytest.raises(TagError, match=message):
        resolve_key(key)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "StudyDate",
            "2024-01-31",
            r"StudyDate \(0008,0020\) = '2024-01-31': must be a date YYYYMMDD",
        ),
        ("StudyDate", "20240230", r"20240230 is not a calendar date"),
        ("PatientBirthDate", "30000101", r"the year must be between 1000 and 2999"),
        ("StudyTime", "256000", r"must be a time HHMMSS"),
        ("AcquisitionDateTime", "20241301", r"must be a date-time"),
        ("PatientSex", "X", r"PatientSex \(0010,0040\) = 'X': must be M, F or O"),
        ("PatientSex", "m", r"must be M, F or O"),
        ("Modality", "doc", r"Modality \(0008,0060\) = 'doc': must be upper-case letters"),
        ("Modality", "A" * 17, r"CS allows at most 16 characters, this has 17"),
        ("AccessionNumber", "x" * 17, r"SH allows at most 16 characters"),
        ("PatientID", "x" * 65, r"LO allows at most 64 characters"),
        ("StudyInstanceUID", "1.02.3", r"must be a UID"),
        ("StudyInstanceUID", "1." + "2" * 63, r"UI allows at most 64 characters"),
        ("PatientName", "a=b=c=d", r"at most 3 groups"),
        ("PatientName", "a^b^c^d^e^f", r"at most 5 components"),
        ("PatientName", "x" * 65, r"each name group allows at most 64 characters, this has 65"),
        ("PatientName", "山" * 22, r"at most 64 bytes of UTF-8, this has 66"),
        ("PatientID", "ü" * 33, r"LO allows at most 64 bytes of UTF-8, this has 66"),
        ("PatientID", "a\nb", r"control characters are not allowed in LO"),
        ("PatientID", "a\\b", r"takes a single value"),
        ("SeriesNumber", "1.5", r"must be an integer"),
        ("SeriesNumber", "99999999999", r"must be between"),
        ("PatientAge", "42", r"must be nnnD"),
        ("PatientWeight", "heavy", r"must be a decimal number"),
        ("BurnedInAnnotation", "MAYBE", r"must be YES or NO"),
        ("Rows", "70000", r"must be between 0 and 65535"),
        ("Rows", "x", r"must be a whole number"),
        ("PixelData", "abc", r"holds binary data"),
        ("SmallestImagePixelValue", "1", r"holds binary data \(US or SS\)"),
    ],
)
def test_invalid_values_name_the_tag_and_the_rule(key: str, value: str, message: str) -> None:
    with pytest.raises(TagError, match=message):
        validate_tags({key: value})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PatientName", "Müller^Jürgen"),
        ("PatientName", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        ("StudyDate", "20240229"),
        ("StudyTime", "1545"),
        ("StudyTime", "154500.123456"),
        ("AcquisitionDateTime", "20240131154500.5+0100"),
        ("PatientSex", ""),
        ("OtherPatientNames", "A^B\\C^D"),
        ("ImageType", "ORIGINAL\\PRIMARY"),
        ("DocumentTitle", "x" * 1024),
        ("PatientComments", "line one\r\nline two"),
        ("PatientWeight", "72.5"),
    ],
)
def test_valid_values_pass_unchanged(key: str, value: str) -> None:
    assert list(validate_tags({key: value}).values()) == [value]


def test_code_sequence_items_need_value_scheme_and_meaning() -> None:
    with pytest.raises(
        TagError,
        match=r"ConceptNameCodeSequence \(0040,A043\) item 1 must give CodeValue, "
        r"CodingSchemeDesignator and CodeMeaning",
    ):
        validate_tags({"ConceptNameCodeSequence": [{"CodeValue": "11488-4"}]})


def test_errors_inside_sequence_items_say_where() -> None:
    with pytest.raises(
        TagError, match=r"OtherPatientIDsSequence \(0010,1002\) item 2: PatientID \(0010,0020\)"
    ):
        validate_tags({"OtherPatientIDsSequence": [{"PatientID": "1"}, {"PatientID": "x" * 65}]})


def test_non_string_values_are_refused() -> None:
    with pytest.raises(
        TagError, match=r"SeriesNumber \(0020,0011\): value must be a string, not int"
    ):
        validate_tags({"SeriesNumber": 3})


def test_tags_file_in_orthanc_shape(tmp_path: Path) -> None:
    path = tmp_path / "tags.json"
    path.write_text(
        json.dumps(
            {
                "PatientName": "山田^太郎",
                "0010,0020": "ID-1",
                "ConceptNameCodeSequence": [
                    {"CodeValue": "11488-4", "CodingSchemeDesignator": "LN", "CodeMeaning": "Note"}
                ],
            }
        ),
        encoding="utf-8",
    )
    validated = validate_tags(load_tags_file(path))
    assert validated[0x00100010] == "山田^太郎"
    assert validated[0x00100020] == "ID-1"
    assert validated[0x0040A043] == [{0x00080100: "11488-4", 0x00080102: "LN", 0x00080104: "Note"}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", r"is not valid JSON: Expecting property name"),
        ("[1]", r"must hold a JSON object"),
    ],
)
def test_bad_tags_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tags.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TagError, match=message):
        load_tags_file(path)


def test_missing_tags_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TagError, match=r"cannot open the tags file .*nope.json: No such file"):
        load_tags_file(tmp_path / "nope.json")


def test_deeply_nested_tags_files_are_refused_without_recursion(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"ConceptNameCodeSequence": ' + "[{" * 100000 + "}]" * 100000 + "}")
    with pytest.raises(TagError, match="deeper than 32 levels"):
        load_tags_file(deep)
    nested = '[{"ConceptNameCodeSequence": ' * 40 + "[]" + "}]" * 40
    with pytest.raises(TagError, match="deeper than 32 levels"):
        parse_assignment(f"ConceptNameCodeSequence={nested}")


def test_messages_quote_a_bounded_part_of_a_huge_value() -> None:
    huge = "A" * 5_000_000
    with pytest.raises(TagError) as caught:
        validate_tags({"PatientID": huge})
    message = str(caught.value)
    assert len(message) < 300
    assert "5000000 characters" in message


def test_free_text_control_characters_become_spaces_and_others_are_refused() -> None:
    assert validate_tags({"StudyComments": "a\tb\x07c\r\nd\x1be"}) == {
        0x00324000: "a b c\r\nd\x1be"
    }
    with pytest.raises(TagError, match="control characters"):
        validate_tags({"PatientID": "a\tb"})


@pytest.mark.parametrize("value", ["20240101120000+1500", "20240101120000-1201", "2024+0160"])
def test_date_times_with_impossible_offsets_are_refused(value: str) -> None:
    with pytest.raises(TagError, match="between -1200 and \\+1400"):
        validate_tags({"AcquisitionDateTime": value})
    validate_tags({"AcquisitionDateTime": "20240101120000+1400"})


def test_free_text_keeps_cr_lf_ff_and_esc_and_other_values_refuse_every_control() -> None:
    """Found by one regular expression each (a 100 kB value took 5 M Python steps before)."""
    controls = [chr(code) for code in [*range(0x20), 0x7F]]
    for key in ("AdditionalPatientHistory", "PatientComments"):  # LT, LT
        kept = [c for c in controls if validate_tags({key: f"a{c}b"}) != {resolve_key(key): "a b"}]
        assert kept == list("\n\f\r\x1b")
    for control in controls:
        with pytest.raises(TagError, match="control characters are not allowed in LO"):
            validate_tags({"PatientID": f"a{control}b"})
    printable = "".join(chr(code) for code in range(0x20, 0x7F)).replace("\\", "")
    assert validate_tags({"PatientComments": printable}) == {
        resolve_key("PatientComments"): printable
    }
