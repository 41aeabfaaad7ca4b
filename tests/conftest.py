"""Fixtures shared by every test layer."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.pdfs import make_pdf

if TYPE_CHECKING:
    from tests.integration.orthanc import OrthancServer

REQUIRE_ENV = "PDF2DCM_REQUIRE_ORTHANC"

# pytest rewrites each test module (for its assertion messages) and keeps the result as
# bytecode. Under PYTHONDONTWRITEBYTECODE, which some machines set, nothing was kept: every
# worker of every run rewrote every module again, and every pdf2dcm subprocess compiled the
# package anew (5 s of the fast loop's 22). The test processes write bytecode beside the
# sources as Python does by default; the subprocesses keep the setting and read it.
sys.dont_write_bytecode = False

_FOREIGN_PREFIXES = ("ORTHANC_", "PDF2DCM_")
_FOREIGN_NAMES = (
    # netrc and requests read these; proxies and CA bundles would redirect or break the
    # connections to the private servers the tests start.
    "NETRC",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(scope="session", autouse=True)
def _hermetic_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run every test as if the developer had no Orthanc settings, netrc or proxy.

    Session-scoped so that session fixtures (the shared Orthanc) start in the same clean
    environment; subprocesses the tests start inherit it through ``os.environ``.
    """
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name == REQUIRE_ENV:
                continue
            if name.startswith(_FOREIGN_PREFIXES) or name in _FOREIGN_NAMES:
                patch.delenv(name)
        patch.setenv("HOME", str(home))
        patch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        yield


@pytest.fixture(scope="session")
def _homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Numbered HOME folders, one per test: ``mktemp`` lists the whole base folder to number
    each one, which over some 1,400 tests cost a second."""
    root = tmp_path_factory.mktemp("homes")
    return (root / str(number) for number in itertools.count())


@pytest.fixture(autouse=True)
def _private_home(_homes: Iterator[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh, empty HOME per test, so that a netrc or config one test writes stays its own."""
    home = next(_homes)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))


_TMPFS = "/dev/shm"
_TMPFS_ROOM = 8 << 30


def _default_signals() -> None:
    """Signals the tests send reach the processes they start, however the run was started.

    An ignored signal stays ignored across exec: a run started with ``nohup`` (SIGHUP) or as
    a background job of a script (SIGINT) gave every pdf2dcm subprocess those signals
    ignored, as pdf2dcm rightly keeps them, and the signal tests then waited in vain. The
    tests that want a signal ignored ignore it in their own child.
    """
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        if signal.getsignal(number) is signal.SIG_IGN:
            handler = signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
            signal.signal(number, handler)


def pytest_configure(config: pytest.Config) -> None:
    """Default signal dispositions (see :func:`_default_signals`); temporary files in memory
    when the machine has a roomy tmpfs and no TMPDIR is set.

    The tests write, sync and remove some 10,000 small files: on a virtual disk the syncs and
    removals alone cost seconds of the fast loop. Nothing here depends on the file system.
    """
    _default_signals()
    if os.environ.get("TMPDIR") or config.option.basetemp:
        return
    try:
        room = shutil.disk_usage(_TMPFS).free
    except OSError:
        return
    if room >= _TMPFS_ROOM and os.access(_TMPFS, os.W_OK | os.X_OK):
        tempfile.tempdir = _TMPFS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that starts a private Orthanc is marked ``orthanc`` (``-m "not orthanc"``)."""
    for item in items:
        if "orthanc" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.orthanc)


def require_binary(name: str) -> str:
    """The path of an external oracle; skip without it, fail when CI says it must be there.

    The virtual environment's own bin folder is passed over: pynetdicom installs scripts
    named like DCMTK's tools there (storescp, storescu, echoscu, findscu), which would stand
    in for the oracle when the environment is activated."""
    own = os.path.realpath(os.path.join(sys.prefix, "bin"))
    search = os.pathsep.join(
        folder
        for folder in os.environ.get("PATH", os.defpath).split(os.pathsep)
        if folder and os.path.realpath(folder) != own
    )
    path = shutil.which(name, path=search)
    if path is None:
        message = f"{name} not found on PATH (install the Debian packages listed in .ci/run)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message}; {REQUIRE_ENV}=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return path


PdfFactory = Callable[..., Path]


@pytest.fixture
def pdf_file(tmp_path: Path) -> PdfFactory:
    """Write a synthetic PDF of an exact size into the test's directory and return its path."""
    counter = 0

    def factory(size: int = 2000, name: str | None = None, **options: object) -> Path:
        nonlocal counter
        counter += 1
        path = tmp_path / (name or f"doc{counter}.pdf")
        path.write_bytes(make_pdf(size, **options))  # type: ignore[arg-type]
        return path

    return factory


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """One private Orthanc (DICOMweb loaded) shared by the session's tests."""
    from tests.integration.orthanc import OrthancServer

    with OrthancServer(tmp_path_factory.mktemp("orthanc")) as server:
        yield server
