"""What waits for a person: the PDFs of the reviewed folders, each with why it was not filed.

A hot folder moves a file it cannot file to its failed folder with ``NAME.pdf.error.json``
beside it (the ``failed`` record, plus ``ErrorType``) and writes the same record to its
journal. :func:`read_entry` reads one file's reason from there, the ``.error.json`` first;
it is the one place that knows those shapes, so new kinds of records (a held document)
are taught to it alone. Any other folder of PDFs works too: its files have no reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pdf2dcm.errors import InputError
from pdf2dcm.files import read_bounded
from pdf2dcm.pertags import NameRule, keyword_values, sidecar_tags
from pdf2dcm.watch import ERROR_SUFFIX

MAX_RECORD = 1024 * 1024
"""A reason file or journal line longer than this is not one the hot folder wrote."""
_ORTHANC_ID = re.compile(r"\b[0-9a-f]{8}(?:-[0-9a-f]{8}){4}\b")
REASON_KINDS = {
    "NotFoundError": "nothing matches",
    "InputError": "refused input",
    "IdentityConflictError": "contradicts the archive",
    "ConflictError": "conflicts with a stored document",
    "NotAPdfError": "not a PDF",
    "TagError": "bad value",
    "StrictModeError": "refused warning",
}
"""Words for the usual reasons, to filter the list by; other classes show their name."""
NOT_TRIED = "not tried"
HELD_PREFIX = "inbox:"
"""How :func:`journal_records` keys the record of a file still in the hot folder's inbox."""


@dataclass(frozen=True)
class Waiting:
    """One document waiting for a person."""

    key: str
    """``N/path``: the reviewed folder's number and the path below it, with ``/``."""
    path: Path
    arrived: dt.datetime
    """When it was refused (its record's ``Time``), else its modification time."""
    size: int
    reason: str | None
    """The refusal as the command line printed it (its first line), or None."""
    kind: str
    """What to filter by: :data:`REASON_KINDS`' words, an error class, or ``not tried``."""
    values: dict[str, str] = field(default_factory=dict)
    """Keyword values read from its name (the name rule) and its sidecar, later wins."""
    candidates: tuple[str, ...] = ()
    """Orthanc IDs the refusal named (several studies matched), to offer first."""
    notes: tuple[str, ...] = ()
    """What could not be read (a name that does not fit the rule, a bad sidecar)."""


def waiting_documents(
    folders: Sequence[Path],
    *,
    journal: Path | None = None,
    name_rule: NameRule | None = None,
    excluded: Collection[Path] = (),
) -> list[Waiting]:
    """Every PDF below ``folders`` (never in ``excluded`` folders), newest first."""
    records = journal_records(journal) if journal is not None else {}
    skipped = {os.path.realpath(path) for path in excluded}
    found = [
        read_entry(f"{number}/{relative}", path, relative, records, name_rule)
        for number, folder in enumerate(folders)
        for relative, path in _pdfs(folder, skipped)
    ]
    return sorted(found, key=lambda entry: (entry.arrived, entry.key), reverse=True)


def read_entry(
    key: str,
    path: Path,
    relative: str,
    records: Mapping[str, dict[str, Any]],
    name_rule: NameRule | None,
) -> Waiting:
    """One document: its reason (``.error.json``, else the journal's record of it) and values."""
    stat = path.stat()
    record = (
        _error_record(path)
        or records.get(os.path.realpath(path))
        or _held_record(records.get(HELD_PREFIX + relative), stat.st_mtime)
        or {}
    )
    arrived = _time(record.get("Time")) or dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc)
    error = record.get("Error")
    reason = error.splitlines()[0] if isinstance(error, str) and error else None
    error_type = record.get("ErrorType")
    kind = NOT_TRIED if reason is None else "refused"
    if isinstance(error_type, str) and error_type:
        kind = REASON_KINDS.get(error_type, error_type)
    elif reason is not None and reason.startswith("no "):
        kind = REASON_KINDS["NotFoundError"]
    values, notes = _values(path, relative, name_rule)
    return Waiting(
        key=key,
        path=path,
        arrived=arrived,
        size=stat.st_size,
        reason=reason,
        kind=kind,
        values=values,
        candidates=tuple(dict.fromkeys(_ORTHANC_ID.findall(error or ""))),
        notes=notes,
    )


def journal_records(journal: Path) -> dict[str, dict[str, Any]]:
    """The last record of each file a journal names as moved (by its destination's real path).

    A journal that does not exist yet has none; lines that are not records are passed over
    (a journal is appended to by several processes, and may be older than this schema).
    """
    if not journal.exists():
        return {}
    found: dict[str, dict[str, Any]] = {}
    with journal.open("rb") as handle:
        for line in handle:
            if len(line) > MAX_RECORD:
                continue
            record = _record(line)
            destination = record.get("Destination") if record else None
            if record is not None and isinstance(destination, str) and destination:
                found[os.path.realpath(destination)] = record
            elif record is not None and isinstance(record.get("Input"), str):
                # Still in the inbox: held, or waiting; the last word on it wins.
                found[HELD_PREFIX + record["Input"]] = record
    return found


def _held_record(record: dict[str, Any] | None, modified: float) -> dict[str, Any] | None:
    """A hot folder's last word on a file still in its inbox, if it says the file is held and
    was written after the file last changed (else it is about an earlier file of that name)."""
    if record is None or record.get("Kind") != "held":
        return None
    written = _time(record.get("Time"))
    if written is None or written.timestamp() < int(modified):  # Time is to the second
        return None
    error = record.get("Error")
    next_try = record.get("NextTry")
    if isinstance(error, str) and error and isinstance(next_try, str):
        record = record | {"Error": f"{error}; held, looked up again at {next_try}"}
    return record


def _pdfs(folder: Path, skipped: Collection[str]) -> Iterator[tuple[str, Path]]:
    """The PDFs below ``folder`` (the path below it, and the path), never through a link."""
    pending = [(folder, PurePosixPath())]
    while pending:
        current, relative = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            if current == folder:
                raise InputError(f"cannot read folder {folder}: {exc.strerror}") from exc
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    if os.path.realpath(entry.path) not in skipped:
                        pending.append((Path(entry.path), relative / entry.name))
                elif entry.is_file(follow_symlinks=False) and entry.name.lower().endswith(".pdf"):
                    yield str(relative / entry.name), Path(entry.path)


def _error_record(path: Path) -> dict[str, Any] | None:
    reason = path.with_name(path.name + ERROR_SUFFIX)
    if not reason.is_file():
        return None
    try:
        text = read_bounded(reason, what="reason file", limit=MAX_RECORD, follow_links=False)
    except InputError:
        return None
    return _record(text)


def _record(text: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _values(
    path: Path, relative: str, name_rule: NameRule | None
) -> tuple[dict[str, str], tuple[str, ...]]:
    values: dict[str, str] = {}
    notes: list[str] = []
    if name_rule is not None:
        try:
            values |= keyword_values(name_rule.tags(relative))
        except InputError as exc:
            notes.append(str(exc))
    try:
        values |= keyword_values(sidecar_tags(path))
    except InputError as exc:
        notes.append(str(exc))
    return values, tuple(notes)
