"""Batch inputs for encode and upload: file lists, manifests and tags read from file names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .app import say
from .common import option_group, refuse_terminal_stdin, stdin

if TYPE_CHECKING:
    from pdf2dcm.pertags import NameRule
    from pdf2dcm.tags import ValidatedTags


@dataclass(frozen=True)
class Listing:
    """Inputs listed in a file, and the rule that reads tags from each input's name."""

    files_from: str | None
    files_null: bool
    name_pattern: str | None
    name_regex: str | None

    def check(self, inputs: Sequence[str]) -> None:
        if self.name_pattern is not None and self.name_regex is not None:
            raise click.UsageError("give --name-pattern or --name-regex, not both")
        if self.files_null and self.files_from is None:
            raise click.UsageError("-0/--null goes with --files-from")
        if self.files_from == "-" and "-" in inputs:
            raise click.UsageError("stdin carries the --files-from list; it cannot be an input too")

    def rule(self) -> NameRule | None:
        from pdf2dcm.pertags import NameRule

        if self.name_pattern is not None:
            return NameRule.from_pattern(self.name_pattern)
        if self.name_regex is not None:
            return NameRule.from_regex(self.name_regex)
        return None


def per_file_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The :class:`Listing` options (encode and upload), passed as one ``listing`` argument."""
    options = [
        click.option(
            "--files-from",
            metavar="FILE",
            help="Also take the inputs listed in FILE ('-' for stdin), one path per line.",
        ),
        click.option(
            "-0",
            "--null",
            "files_null",
            is_flag=True,
            help="With --files-from: paths end with NUL, as 'find -print0' writes them.",
        ),
        click.option(
            "--name-pattern",
            metavar="PATTERN",
            help="Tags from each input's name: '{PatientID}_{AccessionNumber}_{*}.pdf' "
            "({*} matches anything; with '/', the path as given). An input that does not "
            "match stops the batch before anything is written or sent.",
        ),
        click.option(
            "--name-regex",
            metavar="REGEX",
            help="As --name-pattern, a regular expression with groups named after keywords.",
        ),
    ]
    return option_group("listing", Listing, options)(function)


def batch_inputs(
    inputs: Sequence[str],
    listing: Listing,
    *,
    manifest: Path | None = None,
    expand: Callable[[list[str], list[str]], list[str]],
) -> tuple[list[str], list[ValidatedTags]]:
    """The inputs of a batch and each one's own tags (name < sidecar < manifest row).

    ``expand(names, notes)`` turns directories into their files, adding a note for what it
    left out (subdirectories without ``--recursive``); the notes are printed as warnings.
    Everything is read and checked here, before a file is written or sent; stdin may be
    one input, and never a terminal.
    """
    from pdf2dcm.pertags import batch_file_tags, read_file_list, read_manifest

    listing.check(inputs)
    files_from = listing.files_from
    entries = read_manifest(manifest) if manifest is not None else []
    listed = []
    if files_from is not None:
        source = stdin() if files_from == "-" else files_from
        listed = read_file_list(source, nul=listing.files_null)
    notes: list[str] = []
    names = [str(entry.path) for entry in entries] + expand([*inputs, *listed], notes)
    for note in notes:
        say(f"warning: {note}")
    if not names:
        raise click.UsageError("give INPUT..., --files-from FILE or --manifest FILE")
    if names.count("-") > 1:
        raise click.UsageError("stdin ('-') can be read only once")
    if "-" in names:
        refuse_terminal_stdin()
    return names, batch_file_tags(names, rule=listing.rule(), manifest=entries)
