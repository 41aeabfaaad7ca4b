"""``pdf2dcm show``: what an Encapsulated PDF object holds, from a file or the server."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from .app import cli
from .common import (
    Connection,
    cell,
    connection_options,
    print_json,
    refuse_terminal_stdin,
    size_text,
)

if TYPE_CHECKING:
    from pdf2dcm.show import DocumentFacts


@cli.command(
    epilog="""\b
Examples:
  pdf2dcm show report.dcm
  pdf2dcm show 3e4024bc-a395a1e3-54254769-da9a9d72-b00f8968 --url https://pacs.example.org
  pdf2dcm encode report.pdf -o - | pdf2dcm show - --json | jq .Document.SHA256

\b
A table on a terminal, one JSON record otherwise (or with --json): "Kind": "object",
"Input" (the file) or "ID" (the instance), then "Patient", "Study", "Series", "Instance"
and "Document" objects keyed by DICOM keyword (null when absent); "Document" also holds
the PDF's "Size" in bytes and "SHA256", the same as extract or fetch would write. An
existing file is read as a file; otherwise a name shaped like an Orthanc ID is looked up
on the server.""",
)
@click.argument("target", metavar="FILE.dcm|INSTANCE_ID")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON even on a terminal.")
def show(target: str, connection: Connection, as_json: bool) -> None:
    """Show the patient, study, series and document of a DICOM Encapsulated PDF."""
    from pdf2dcm.show import is_instance_id, show_file, show_instance

    if target == "-":
        refuse_terminal_stdin("a DICOM file")
        facts = show_file(sys.stdin.buffer, name="-")
    elif os.path.lexists(target) or not is_instance_id(target):
        facts = show_file(target)
    else:
        with connection.open() as client:
            facts = show_instance(client, target)
    if as_json or not sys.stdout.isatty():
        from pdf2dcm import records

        print_json(records.shown(facts))
    else:
        _table(facts)


def _table(facts: DocumentFacts) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=cell(("Instance " if facts.on_server else "") + facts.source), title_justify="left"
    )
    table.add_column("Group")
    table.add_column("Attribute")
    table.add_column("Value", overflow="fold")
    for group, values in facts.groups.items():
        for index, (keyword, value) in enumerate(values.items()):
            table.add_row(
                group if index == 0 else "", cell(keyword), cell("" if value is None else value)
            )
    table.add_row("", "PDF size", f"{facts.size} bytes ({size_text(facts.size)})")
    table.add_row("", "PDF SHA-256", facts.sha256)
    Console(highlight=False).print(table)
