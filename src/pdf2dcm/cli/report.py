"""One reporter for every command: results as text lines or JSON records, failures, summary.

The commands hand each outcome here; the choice between a text line and a record of
:mod:`pdf2dcm.records`, the ``failed`` record of a file that failed, the counting for the
batch summary and the exit code all live in this one place.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pdf2dcm import errors as err
from pdf2dcm import records

from .app import exit_status_for, say
from .common import Batch, cell, print_json, result_line


@dataclass
class Reporter:
    """Reports a batch's files, in input order, then ends it::

    report = Reporter(as_json, Batch(len(sources)))
    report.result("stored", records.uploaded(name, result), f"{name} -> {result.id}")
    report.failure(name, error)
    report.end()                # summary line on stderr, exit code of the first failure

    ``key`` names a failed file's field in its record: ``Input`` for a file, ``ID`` for an
    instance. With ``several`` false (one input), a failure is not printed here but raised
    by the command, so it is printed once, by the top-level handler.
    """

    as_json: bool
    batch: Batch
    key: str = "Input"
    several: bool = True
    _said: set[str] = field(default_factory=set)

    def warnings(self, notes: Iterable[str]) -> None:
        """Each warning once per run: a batch's files share the reference's notes."""
        for note in notes:
            if note not in self._said:
                self._said.add(note)
                say(f"warning: {note}")

    def result(self, outcome: str, record: Mapping[str, Any], line: str | None) -> None:
        """One file done: its record with ``--json``, else its text line (if it has one)."""
        self.batch.done(outcome)
        if self.as_json:
            print_json(record)
        elif line is not None:
            result_line(line)

    def plan(self, name: str, attributes: Mapping[str, Any]) -> None:
        """--dry-run: a table on a terminal, else the ``planned`` record."""
        self.batch.done("planned")
        show_plan(name, attributes, self.as_json)

    def failure(self, name: str, error: err.Pdf2DcmError) -> None:
        """One file failed: its error on stderr (for a batch) and its ``failed`` record."""
        if self.several:
            say(f"error: {error}")
        self.batch.failed(error)
        if self.as_json:
            failure_json(self.key, name, error)

    def raise_single(self) -> None:
        """One input that failed: its error, raised for the top-level handler to print."""
        if not self.several and self.batch.failures:
            raise self.batch.failures[0]

    def end(self, *, summary: bool = True) -> None:
        """The summary line (unless one input), then the exit code of the first failure."""
        self.raise_single()
        if summary and self.several:
            self.batch.end()
        else:
            self.batch.exit()


@contextlib.contextmanager
def failure_record(as_json: bool, key: str, name: str) -> Iterator[None]:
    """For a command of one input: with ``--json``, its error as a ``failed`` record on
    stdout too, before the error goes on to the top-level handler (one line on stderr)."""
    try:
        yield
    except err.Pdf2DcmError as error:
        if as_json:
            failure_json(key, name, error)
        raise


def failure_json(key: str, name: str, error: err.Pdf2DcmError) -> None:
    """The ``failed`` record of an error, if stdout can take it: a record that cannot be
    written (stdout closed) must not replace the error it reports, nor its exit code."""
    with contextlib.suppress(err.Pdf2DcmError):
        print_json(records.failed(key, name, error, int(exit_status_for(error))))


def show_plan(name: str, attributes: Mapping[str, Any], as_json: bool) -> None:
    """What --dry-run would write: a table on a terminal, else the tags-file shape as JSON."""
    if as_json or not sys.stdout.isatty():
        print_json(records.planned(name, attributes))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("Attribute", "Value", title=cell(name), title_justify="left")
    for keyword, value in attributes.items():
        table.add_row(cell(keyword), cell(value if isinstance(value, str) else json.dumps(value)))
    Console().print(table)
