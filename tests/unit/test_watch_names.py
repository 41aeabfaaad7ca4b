"""What the inbox takes by name and by content: ``.pdf`` in any case, in patterns too; other
names and folders reported; a PDF without its end waits."""

from __future__ import annotations

from pathlib import Path

from pdf2dcm.pertags import NameRule
from pdf2dcm.watch import Inbox


def test_a_pattern_s_pdf_extension_matches_in_any_case() -> None:
    rule = NameRule.from_pattern("{PatientID}_{AccessionNumber}_{*}.pdf")
    assert rule.values("P100_A123_x.PDF") == {"PatientID": "P100", "AccessionNumber": "A123"}
    assert rule.values("P100_A123_x.Pdf") == {"PatientID": "P100", "AccessionNumber": "A123"}


def test_only_the_extension_ignores_case() -> None:
    rule = NameRule.from_pattern("SCAN_{PatientID}.pdf")
    assert rule.values("SCAN_P1.PDF") == {"PatientID": "P1"}
    assert rule.regex.fullmatch("scan_P1.pdf") is None


def test_the_scan_reports_other_names_subfolders_and_unfinished_pdfs(tmp_path: Path) -> None:
    (tmp_path / "whole.PDF").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (tmp_path / "half.pdf").write_bytes(b"%PDF-1.4\nbroken")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "whole.json").write_text("{}", encoding="utf-8")
    (tmp_path / "ward").mkdir()
    scan = Inbox(tmp_path, recursive=False, settle=0).scan()
    assert (scan.ready, scan.incomplete) == (["whole.PDF"], ["half.pdf"])
    assert (scan.others, scan.subfolders, scan.settling) == (["notes.txt"], ["ward"], 0)


def test_a_link_in_the_inbox_is_taken_to_fail_never_read_through(tmp_path: Path) -> None:
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(b"%PDF-1.4\nno end")
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "x.pdf").symlink_to(outside)
    scan = Inbox(inbox, recursive=False, settle=0).scan()
    # Ready, so that it fails (a link is refused when opened) and is moved aside by rename.
    assert scan.ready == ["x.pdf"]
