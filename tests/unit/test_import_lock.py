"""pydicom and pynetdicom are imported whole, once, under one lock, before any function of the
package imports from them: worker threads (a batch upload, the hot folder, ``ls``) that
import them for the first time at the same moment got ``ImportError: ... partially
initialized module`` (seen from ``ls`` on a loaded machine)."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "pdf2dcm"
PYDICOM_MODULES = {"pdf2dcm.dimse", "pdf2dcm.dimse_archive", "pdf2dcm.worklist"}
"""Modules of the package that import pydicom when they are imported."""


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = "pdf2dcm"
        if node.module:
            return [f"{base}.{node.module}"]
        return [f"{base}.{alias.name}" for alias in node.names]
    module = node.module or ""
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def _needs(node: ast.stmt) -> str | None:
    """The loader a function-level import statement must follow, if any."""
    if not isinstance(node, ast.Import | ast.ImportFrom):
        return None
    names = _imported(node)
    if any(name.split(".")[0] == "pynetdicom" for name in names):
        return "load_pynetdicom"
    if any(name.split(".")[0] == "pydicom" or name in PYDICOM_MODULES for name in names):
        return "load_pydicom"
    return None


def _loader(node: ast.stmt) -> str | None:
    if (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
    ):
        return node.value.func.id
    return None


def _unguarded(tree: ast.Module) -> list[int]:
    """Line numbers of function-level imports not preceded by their loader (a run of
    imports counts as one, the strongest loader first)."""
    found: list[int] = []

    def body(statements: list[ast.stmt], in_function: bool) -> None:
        loaded: str | None = None
        for node in statements:
            needed = _needs(node) if in_function else None
            if needed is not None:
                if loaded not in (needed, "load_pynetdicom"):
                    found.append(node.lineno)
            else:
                loaded = _loader(node) if in_function else None
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                continue
            inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for field in ("body", "orelse", "finalbody"):
                children = getattr(node, field, None)
                if isinstance(children, list) and children and isinstance(children[0], ast.stmt):
                    body(children, inner)
            for handler in getattr(node, "handlers", []):
                body(handler.body, inner)

    body(tree.body, False)
    return found


@pytest.mark.parametrize(
    "path", sorted(SOURCE.rglob("*.py")), ids=lambda p: str(p.relative_to(SOURCE))
)
def test_every_lazy_import_of_pydicom_follows_its_loader(path: Path) -> None:
    unguarded = _unguarded(ast.parse(path.read_text(encoding="utf-8")))
    assert unguarded == [], f"{path.name}: lines {unguarded} import without load_pydicom()"


def test_the_rule_sees_an_unguarded_import() -> None:
    tree = ast.parse(
        "def f():\n    import os\n    from pydicom.tag import Tag\n"
        "def g():\n    load_pydicom()\n    from pydicom.tag import Tag\n"
        "    from . import worklist\n"
        "def h():\n    load_pydicom()\n    from pynetdicom import AE\n"
    )
    assert _unguarded(tree) == [3, 10]


def test_the_loaders_import_the_packages_whole() -> None:
    code = (
        "import sys\nfrom pdf2dcm.imports import load_pydicom, load_pynetdicom\n"
        "assert 'pydicom' not in sys.modules\nload_pydicom()\n"
        "assert {'pydicom.values', 'pydicom.charset', 'pydicom.filewriter'} <= set(sys.modules)\n"
        "assert 'pynetdicom' not in sys.modules\nload_pynetdicom()\n"
        "assert 'pynetdicom' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


LEFT_OUT = """
import sys
import threading
from pdf2dcm.imports import load_pynetdicom
load_pynetdicom()
import pydicom.data.download
print(pydicom.data.download.HAVE_REQUESTS, "requests" in sys.modules)
import requests.adapters  # still importable afterwards
print(sys.modules["requests"] is not None)
"""


def test_pydicom_alone_goes_without_requests() -> None:
    """50 ms of start-up saved for a C-STORE, extract, encode's full path."""
    done = subprocess.run(
        [sys.executable, "-c", LEFT_OUT], capture_output=True, text=True, check=True
    )
    assert done.stdout == "False False\nTrue\n"


@pytest.mark.parametrize(
    ("imported", "threads", "hidden"),
    [
        (False, 1, True),
        # Another thread could be importing requests: it is not hidden from it then.
        (False, 2, False),
        # Already imported: pydicom gets it as it is, and it stays.
        (True, 1, False),
    ],
)
def test_requests_is_hidden_only_when_nothing_else_could_want_it(
    imported: bool, threads: int, hidden: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    import requests

    from pdf2dcm import imports

    if not imported:
        monkeypatch.delitem(sys.modules, "requests")
    monkeypatch.setattr(threading, "active_count", lambda: threads)
    with imports._requests_left_out():
        if hidden:
            with pytest.raises(ImportError):
                importlib.import_module("requests")
        else:
            assert sys.modules.get("requests", "absent") is not None
    assert sys.modules.get("requests", requests) is not None
    if imported:
        assert sys.modules["requests"] is requests
