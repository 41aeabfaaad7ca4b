"""The fake archive scripted for client tests: answers in turn, then ``{}``.

Orthanc cannot be made to answer 503 on the first try and 200 on the second, or to report a
job's states in a chosen order; the fake archive does, and records every request with its body.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from tests.fake_orthanc import FakeOrthanc, reply, serving

Scripted = FakeOrthanc


@pytest.fixture
def server() -> Iterator[FakeOrthanc]:
    with serving() as httpd:
        httpd.default = reply(200, {})
        yield httpd


def client_for(server: FakeOrthanc, **kwargs: Any) -> OrthancClient:
    settings = resolve_settings(url=server.url, environ={}, **kwargs)
    return OrthancClient(settings, sleep=lambda _seconds: None)
