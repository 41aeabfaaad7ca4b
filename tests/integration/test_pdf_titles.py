"""Titles and creation dates of PDFs written by real tools, with pypdf as the oracle.

qpdf moves the information dictionary into a compressed object stream indexed by a
cross-reference stream (with a PNG predictor); ghostscript writes the title given in a pdfmark
to both the information dictionary and XMP. The encoder must find what pypdf finds.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pydicom
import pytest

from pdf2dcm.dicom import encode_pdf
from pdf2dcm.pdf import PdfFacts, inspect_pdf
from tests.conftest import require_binary
from tests.pdfs import make_pdf, titled_pdf, xmp_packet
from tests.unit.test_pdf_oracle import pypdf_title, with_xmp


def facts(path: Path) -> PdfFacts:
    with path.open("rb") as handle:
        return inspect_pdf(handle, path.stat().st_size, path.name)


SOURCES = {
    "plain": titled_pdf(b"/Title (Plain title) /CreationDate (D:20240101120000+01'00')"),
    "pdfdoc": titled_pdf(b"/Title (Caf\\351 \x8dreport\x8e \x84 draft)"),
    "utf16": titled_pdf(b"/Title <FEFF004A006100700061006E0020306630B930C8>"),
    "indirect": titled_pdf(b"/Title 5 0 R", objects={5: b"(Indirect in a stream)"}),
    "xmp": with_xmp(xmp_packet("Only in XMP", "2023-05-06T07:08:09Z")),
    "untitled": make_pdf(3000),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
@pytest.mark.parametrize(
    "options",
    [
        ["--object-streams=generate"],
        ["--object-streams=generate", "--linearize"],
        ["--object-streams=generate", "--compress-streams=y", "--recompress-flate"],
        ["--qdf"],
    ],
    ids=["object-streams", "linearized", "recompressed", "qdf"],
)
def test_qpdf_rewritten_pdfs(tmp_path: Path, name: str, options: list[str]) -> None:
    qpdf = require_binary("qpdf")
    source, rewritten = tmp_path / "in.pdf", tmp_path / "out.pdf"
    source.write_bytes(SOURCES[name])
    # qpdf exits 3 when it only warns (our synthetic files have no /ID).
    done = subprocess.run(
        [qpdf, *options, str(source), str(rewritten)], check=False, capture_output=True
    )
    assert done.returncode in (0, 3), done.stderr
    data = rewritten.read_bytes()
    if options[0] == "--object-streams=generate" and name != "untitled":
        assert b"/ObjStm" in data
        assert b"/XRef" in data
    assert facts(rewritten).title == pypdf_title(data)
    assert facts(rewritten).title == facts(source).title
    assert facts(rewritten).creation_date == facts(source).creation_date


def test_object_stream_title_reaches_the_dicom_object(tmp_path: Path) -> None:
    qpdf = require_binary("qpdf")
    source, rewritten = tmp_path / "in.pdf", tmp_path / "report.pdf"
    source.write_bytes(SOURCES["pdfdoc"])
    subprocess.run([qpdf, "--object-streams=generate", str(source), str(rewritten)], check=False)
    encode_pdf(rewritten, tmp_path / "o.dcm")
    title = pydicom.dcmread(tmp_path / "o.dcm").DocumentTitle
    assert title == "Caf\u00e9 \u201creport\u201d \u2014 draft"


POSTSCRIPT_TITLES = {
    "ascii": ("(Ghostscript report)", "Ghostscript report"),
    "utf16": ("<FEFF00DC0062006500720073006900630068007420AC>", "\u00dcbersicht\u20ac"),
    "escaped": ("(Line \\(one\\) and \\\\two)", "Line (one) and \\two"),
}


@pytest.mark.parametrize("name", sorted(POSTSCRIPT_TITLES))
def test_ghostscript_pdfmark_titles(tmp_path: Path, name: str) -> None:
    gs = require_binary("gs")
    mark, expected = POSTSCRIPT_TITLES[name]
    output = tmp_path / "gs.pdf"
    subprocess.run(
        [
            gs,
            "-q",
            "-dBATCH",
            "-dNOPAUSE",
            "-dSAFER",
            "-sDEVICE=pdfwrite",
            f"-sOutputFile={output}",
            "-c",
            f"[ /Title {mark} /CreationDate (D:20240304050607+02'00') /DOCINFO pdfmark showpage",
        ],
        check=True,
        capture_output=True,
    )
    data = output.read_bytes()
    result = facts(output)
    assert result.title == expected
    assert result.title == pypdf_title(data)
    assert result.creation_date == dt.datetime(
        2024, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=2))
    )
