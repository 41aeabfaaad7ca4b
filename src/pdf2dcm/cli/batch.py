"""Batch inputs for encode and upload: file lists, manifests and tags read from file names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import stdin

if TYPE_CHECKING:
    from pdf2dcm.tags import ValidatedTags


def per_file_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Inputs listed in a file, and tags read from each input's name (encode and upload)."""
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
    for option in reversed(options):
        function = option(function)
    return function


def batch_inputs(
    inputs: Sequence[str],
    files_from: str | None,
    files_null: bool,
    name_pattern: str | None,
    name_regex: str | None,
    *,
    manifest: Path | None = None,
    expand: Callable[[list[str]], list[str]] = list,
) -> tuple[list[str], list[ValidatedTags]]:
    """The inputs of a batch and each one's own tags (name < sidecar < manifest row).

    ``expand`` turns directories into their files (upload's ``--recursive``). Everything is
    read and checked here, before a file is written or sent.
    """
    from pdf2dcm.pertags import NameRule, batch_file_tags, read_file_list, read_manifest

    if name_pattern is not None and name_regex is not None:
        raise click.UsageError("give --name-pattern or --name-regex, not both")
    if files_null and files_from is None:
        raise click.UsageError("-0/--null goes with --files-from")
    if files_from == "-" and "-" in inputs:
        raise click.UsageError("stdin carries the --files-from list; it cannot be an input too")
    entries = read_manifest(manifest) if manifest is not None else []
    listed = []
    if files_from is not None:
        listed = read_file_list(stdin() if files_from == "-" else files_from, nul=files_null)
    names = [str(entry.path) for entry in entries] + expand([*inputs, *listed])
    if not names:
        raise click.UsageError("give INPUT..., --files-from FILE or --manifest FILE")
    rule = None
    if name_pattern is not None:
        rule = NameRule.from_pattern(name_pattern)
    elif name_regex is not None:
        rule = NameRule.from_regex(name_regex)
    return names, batch_file_tags(names, rule=rule, manifest=entries)
