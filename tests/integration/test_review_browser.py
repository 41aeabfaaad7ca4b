"""``pdf2dcm review`` walked in headless Chromium (Debian's, driven by Selenium through
Debian's chromedriver) as an operator would, against a private Orthanc.

A real ``watch --once`` leaves a document that no study matches in its failed folder; the
page lists it with its reason and shows its first page (a screenshot, kept under
``build/test-artifacts/review/``); a search by accession number finds the study; choosing it
and confirming files the document there, byte-exact, and moves the file to ``done/``. A wrong
token, a form posted from another origin and a path outside the folders are refused.
"""

from __future__ import annotations

import http.server
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pdf2dcm.cli import cli
from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from pdf2dcm.lookup import Target
from pdf2dcm.pertags import NameRule
from pdf2dcm.review import Desk, ReviewOptions
from pdf2dcm.review.web import ReviewServer
from tests.conftest import require_binary
from tests.integration.orthanc import OrthancServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "review"
PATTERN = "{AccessionNumber}_{*}.pdf"
WAIT = 30.0


def red_page_pdf(words: bytes) -> bytes:
    """A one-page PDF with a red band and ``words`` in red: pixels no viewer chrome has."""
    content = b"1 0 0 rg 40 300 320 120 re f BT /F1 30 Tf 40 240 Td (" + words + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 500] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title (Consent form) >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def red_pixels(png: bytes) -> int:
    """How many strongly red pixels an 8-bit RGB(A) PNG (as Chromium writes them) holds."""
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert depth == 8
    assert colour in (2, 6)
    channels = 4 if colour == 6 else 3
    data, position = bytearray(), 8
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        if kind == b"IDAT":
            data += png[position + 8 : position + 8 + length]
        position += 12 + length
    raw = zlib.decompress(bytes(data))
    stride = width * channels
    previous = bytearray(stride)
    count = 0
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up))
                near = min(near, (abs(guess - corner), 2, corner))
                line[i] = (line[i] + near[2]) & 0xFF
        count += sum(
            1
            for x in range(0, stride, channels)
            if line[x] > 200 and line[x + 1] < 80 and line[x + 2] < 80
        )
        previous = line
    return count


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium = require_binary("chromium")
    chromedriver = require_binary("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def review(orthanc: OrthancServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A study in the archive, a document the watcher could not file, the page served."""
    report = tmp_path / "report.pdf"
    report.write_bytes(red_page_pdf(b"IMAGES"))
    uploaded = CliRunner().invoke(
        cli,
        [
            *("upload", str(report), "--url", orthanc.url, "--json"),
            *("--tag", "PatientID=RV-1", "--tag", "PatientName=Review^Test"),
            *("--tag", "AccessionNumber=RV-ACC-1"),
        ],
    )
    assert uploaded.exit_code == 0, uploaded.stderr
    study = json.loads(uploaded.stdout)["ParentStudy"]
    inbox, failed, journal = tmp_path / "in", tmp_path / "failed", tmp_path / "watch.jsonl"
    inbox.mkdir()
    pdf = red_page_pdf(b"CONSENT FORM")
    (inbox / "RV-NOPE_consent.pdf").write_bytes(pdf)
    watched = CliRunner().invoke(
        cli,
        [
            *(
                "watch",
                str(inbox),
                "--url",
                orthanc.url,
                "--once",
                "--settle",
                "0",
                "--hold-for",
                "0",
            ),
            *("--name-pattern", PATTERN, "--study", "AccessionNumber={AccessionNumber}"),
            *("--delete", "--failed", str(failed), "--log", str(journal)),
        ],
    )
    assert watched.exit_code == 4, watched.stderr
    client = OrthancClient(resolve_settings(url=orthanc.url, environ={}, netrc_file="/dev/null"))
    options = ReviewOptions(
        folders=(failed,),
        target=Target(study=("AccessionNumber={AccessionNumber}",)),
        name_rule=NameRule.from_pattern(PATTERN),
        journal=journal,
    )
    server = ReviewServer(Desk(client, options))
    server.start()
    try:
        yield {
            "server": server,
            "study": study,
            "failed": failed,
            "journal": journal,
            "pdf": pdf,
            "tmp": tmp_path,
        }
    finally:
        server.stop()
        client.close()


def test_an_operator_files_a_document_no_study_matched(
    browser: Any, review: dict[str, Any], orthanc: OrthancServer
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT)
    server: ReviewServer = review["server"]
    browser.get(server.address)
    table = wait.until(shown.presence_of_element_located((By.ID, "documents"))).text
    assert "RV-NOPE_consent.pdf" in table
    assert f"no study matches AccessionNumber=RV-NOPE at {orthanc.url}" in table
    assert "nothing matches" in table

    browser.find_element(By.LINK_TEXT, "RV-NOPE_consent.pdf").click()
    frame = wait.until(shown.presence_of_element_located((By.ID, "first-page")))
    wait.until(lambda _driver: red_pixels(frame.screenshot_as_png) > 2000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "document.png"))
    assert (
        "Consent form" in browser.find_element(By.ID, "document").find_element(By.XPATH, "..").text
    )
    assert "no study matches AccessionNumber=RV-NOPE" in browser.find_element(By.ID, "reason").text

    field = browser.find_element(By.ID, "search-AccessionNumber")
    field.clear()
    field.send_keys("RV-ACC-1")
    browser.find_element(By.ID, "search-button").click()
    choose = wait.until(
        shown.element_to_be_clickable((By.XPATH, "//button[text()='File in this study']"))
    )
    assert "Review^Test" in browser.find_element(By.CLASS_NAME, "results").text
    frame = browser.find_element(By.ID, "first-page")
    wait.until(lambda _driver: red_pixels(frame.screenshot_as_png) > 2000)
    browser.save_screenshot(str(ARTIFACTS / "search.png"))
    choose.click()

    attributes = wait.until(shown.presence_of_element_located((By.ID, "attributes"))).text
    assert "PatientID RV-1" in attributes
    assert "AccessionNumber RV-ACC-1" in attributes
    assert (review["failed"] / "RV-NOPE_consent.pdf").exists()
    browser.save_screenshot(str(ARTIFACTS / "confirm.png"))
    browser.find_element(By.ID, "confirm").click()
    outcome = wait.until(shown.presence_of_element_located((By.ID, "outcome"))).text
    assert f"in study {review['study']}" in outcome

    matched = json.loads(review["journal"].read_text("utf-8").splitlines()[-1])
    assert matched["Kind"] == "matched"
    assert matched["ParentStudy"] == review["study"]
    fetched = review["tmp"] / "fetched.pdf"
    result = CliRunner().invoke(
        cli, ["fetch", matched["ID"], "-o", str(fetched), "--url", orthanc.url]
    )
    assert result.exit_code == 0, result.stderr
    assert fetched.read_bytes() == review["pdf"]
    assert (review["failed"] / "done" / "RV-NOPE_consent.pdf").read_bytes() == review["pdf"]
    assert not (review["failed"] / "RV-NOPE_consent.pdf").exists()


def test_a_wrong_token_another_origin_and_a_path_outside_are_refused(
    browser: Any, review: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By

    server: ReviewServer = review["server"]
    base = f"http://127.0.0.1:{server.port}"
    browser.get(f"{base}/?token=guess")
    assert "wrong or missing token" in browser.find_element(By.TAG_NAME, "body").text

    browser.get(server.address)
    browser.get(f"{base}/pdf?doc=0/../watch.jsonl")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "is not a document waiting in the reviewed folders" in body

    with _other_site(
        f'<form method="post" action="{base}/reject">'
        f'<input type="hidden" name="token" value="{server.token}">'
        '<input type="hidden" name="doc" value="0/RV-NOPE_consent.pdf">'
        '<input type="hidden" name="reason" value="forged">'
        '<button id="forge">Win a prize</button></form>'
    ) as other:
        browser.get(other)
        browser.find_element(By.ID, "forge").click()
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, WAIT).until(lambda driver: driver.current_url.startswith(base))
        body = browser.find_element(By.TAG_NAME, "body").text
    assert "did not come from this page" in body
    assert (review["failed"] / "RV-NOPE_consent.pdf").exists()
    assert not (review["failed"] / "rejected").exists()


class _OnePage(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *_args: object) -> None:
        return


class _Site:
    def __init__(self, html: str) -> None:
        handler = type("Page", (_OnePage,), {"page": html.encode()})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _other_site(html: str) -> _Site:
    """Another origin in the same browser: a page of its own on another port."""
    return _Site(html)
