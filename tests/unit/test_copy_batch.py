"""A batch upload's cost per file: results in input order, with only a few files started
ahead of the one reported, so that memory does not grow with the length of the batch."""

from __future__ import annotations

import concurrent.futures
import threading
import types
from typing import Any

import pytest

from pdf2dcm import upload
from pdf2dcm.client import OrthancClient
from pdf2dcm.config import resolve_settings
from pdf2dcm.errors import NotAttemptedError
from pdf2dcm.plan import Planner
from pdf2dcm.upload import PreparedBatch, UploadOptions, UploadResult, plan_options, upload_many


def result_for(name: str) -> UploadResult:
    return UploadResult(
        input=name,
        id=f"id-{name}",
        parent_patient=None,
        parent_study=None,
        parent_series=None,
        status="Success",
        sop_instance_uid="1.2.3",
        sha256="0" * 64,
        url=None,
    )


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the per-file upload with one that records which files were started."""
    names: list[str] = []
    lock = threading.Lock()

    def fake_upload_file(_client: OrthancClient, source: str, *_args: Any, **_kw: Any) -> Any:
        with lock:
            names.append(source)
        return result_for(source)

    monkeypatch.setattr(upload, "upload_file", fake_upload_file)
    return names


def planned(sources: list[str], count: int | None = None) -> PreparedBatch:
    """A batch of these files planned as upload plans one, against no archive."""
    planner = Planner(plan_options(UploadOptions()))
    plans = planner.plan(sources[: count or len(sources)], [{}] * (count or len(sources)), None)
    return PreparedBatch(UploadOptions(), planner, plans, ())


def client() -> OrthancClient:
    return OrthancClient(resolve_settings(url="http://127.0.0.1:9", environ={}))


def test_outcomes_come_in_input_order_and_few_files_run_ahead(
    started: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[object] = []
    submit = concurrent.futures.ThreadPoolExecutor.submit

    def counted(pool: concurrent.futures.ThreadPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        submitted.append(args)
        return submit(pool, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", counted)
    sources = [f"f{index:03d}.pdf" for index in range(200)]
    outcomes = upload_many(client(), planned(sources), sources, concurrency=3)
    first = next(outcomes)
    assert first.input == "f000.pdf"
    # However long the reader takes, no more than 2 x 3 files are queued behind the first:
    # while the reader holds the first outcome nothing else is handed to the workers.
    assert len(submitted) <= 7
    rest = list(outcomes)
    assert [outcome.input for outcome in [first, *rest]] == sources
    assert [outcome.result.id for outcome in rest if outcome.result] == [
        f"id-{name}" for name in sources[1:]
    ]
    assert sorted(started) == sources


def test_an_abandoned_batch_starts_no_further_file(started: list[str]) -> None:
    sources = [f"f{index:03d}.pdf" for index in range(100)]
    outcomes = upload_many(client(), planned(sources), sources, concurrency=2)
    assert next(outcomes).input == "f000.pdf"
    assert isinstance(outcomes, types.GeneratorType)
    outcomes.close()
    assert len(started) <= 5
    assert started == sorted(started)


def test_files_after_a_stop_are_reported_not_attempted(
    started: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pdf2dcm.errors import ServerUnreachableError

    def unreachable(_client: OrthancClient, source: str, *_args: Any, **_kw: Any) -> Any:
        started.append(source)
        raise ServerUnreachableError("cannot reach http://127.0.0.1:9; is Orthanc running?")

    monkeypatch.setattr(upload, "upload_file", unreachable)
    sources = [f"f{index:02d}.pdf" for index in range(20)]
    outcomes = list(upload_many(client(), planned(sources), sources, concurrency=1))
    assert [outcome.input for outcome in outcomes] == sources
    assert isinstance(outcomes[0].error, ServerUnreachableError)
    assert all(isinstance(outcome.error, NotAttemptedError) for outcome in outcomes[1:])
    assert started == ["f00.pdf"]


def test_sources_and_plans_must_pair_up_before_anything_starts(started: list[str]) -> None:
    with pytest.raises(ValueError, match="3 sources but 2 plans"):
        next(upload_many(client(), planned(["a", "b"]), ["a", "b", "c"]))
    assert started == []
