"""Regenerate examples/HelloWorld2.pdf, the sample document used in the README.

The PDF is assembled by hand (one page, Helvetica, a document information dictionary with
a Title) so that the example needs no PDF library and is the same bytes on every run.

    python examples/make_hello_pdf.py
"""

from __future__ import annotations

from pathlib import Path

TEXT_LINES = (
    "Hello World 2",
    "A sample report for pdf2dcm.",
    "Encode it with: pdf2dcm encode examples/HelloWorld2.pdf",
)


def build() -> bytes:
    """The complete PDF file, with a correct cross-reference table."""
    stream = b"BT /F1 24 Tf 72 720 Td (" + TEXT_LINES[0].encode() + b") Tj ET\n"
    for index, line in enumerate(TEXT_LINES[1:], start=1):
        y = 680 - 24 * index
        stream += b"BT /F1 12 Tf 72 %d Td (" % y + line.encode() + b") Tj ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream",
        b"<< /Title (Hello World 2) /Author (pdf2dcm) /Producer (make_hello_pdf.py) "
        b"/CreationDate (D:20240101000000Z) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


if __name__ == "__main__":
    target = Path(__file__).with_name("HelloWorld2.pdf")
    target.write_bytes(build())
    print(f"wrote {target} ({target.stat().st_size} bytes)")
