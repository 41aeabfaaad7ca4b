"""Per-file tags for batches and hot folders: file names, sidecars, manifests, file lists.

A scanner or report system names its files after the patient (``4711_A123_consent.pdf``),
or writes the tags beside them; a batch run lists its files with their tags in one manifest.
Everything here turns those into validated tags per file, before anything is sent, so a bad
row or a name that does not fit stops that file (or the batch) with its row or name.

Precedence, later wins: ``--tags-file``, ``--tag``, the values read from the file name, the
sidecar ``NAME.json``, the manifest row.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import InputError, TagError
from .files import read_bounded
from .imports import load_pydicom
from .tags import (
    MAX_JSON_DEPTH,
    DuplicateKeyError,
    ValidatedTags,
    json_depth_exceeds,
    load_tags_file,
    resolve_key,
    short_value,
    unique_keys,
    validate_tags,
)

_NOT_LITERAL = frozenset("*?\\")
"""Characters a query reads as wildcards (``*``, ``?``) or a value separator (``\\``)."""
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
MANIFEST_FILE_COLUMN = "file"


@dataclass(frozen=True)
class NameRule:
    """Tags read from a file's path relative to the folder it was found in.

    Made by :meth:`from_pattern` (``{PatientID}_{AccessionNumber}_{*}.pdf``) or
    :meth:`from_regex` (named groups called after DICOM keywords). A rule without ``/`` is
    matched against the file's name alone, one with ``/`` against the whole relative path,
    so ``{PatientID}/{*}.pdf`` takes the PatientID from the folder.
    """

    source: str
    regex: re.Pattern[str]
    keywords: tuple[str, ...]
    kind: str = "pattern"

    @classmethod
    def from_pattern(cls, pattern: str) -> NameRule:
        """``{Keyword}`` matches one or more characters other than ``/`` (as few as can),
        ``{*}`` anything; ``{{`` and ``}}`` are literal braces; the rest is literal.

        Raises
        ------
        InputError
            An unknown keyword, a keyword used twice, or a lone brace.
        """
        parts: list[str] = []
        keywords: list[str] = []
        position = 0
        for match in _PLACEHOLDER.finditer(pattern):
            parts.append(re.escape(pattern[position : match.start()]))
            position = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                parts.append(re.escape(token[0]))
            elif match.group(1) is None:
                raise InputError(
                    f"name pattern {pattern!r} has a lone {token!r}; write {token * 2} for a "
                    "literal brace"
                )
            elif match.group(1) == "*":
                parts.append(".*")
            else:
                keyword = _keyword(match.group(1), f"name pattern {pattern!r}")
                if keyword in keywords:
                    raise InputError(f"name pattern {pattern!r} names {keyword} twice")
                keywords.append(keyword)
                parts.append(f"(?P<{keyword}>[^/]+?)")
        tail = pattern[position:]
        if tail.lower().endswith(".pdf"):
            # Windows scanners write .PDF: the extension matches in any case, as the inbox's.
            parts.append(re.escape(tail[:-4]) + r"\.(?i:pdf)")
        else:
            parts.append(re.escape(tail))
        return cls(pattern, re.compile("".join(parts), re.DOTALL), tuple(keywords))

    @classmethod
    def from_regex(cls, expression: str) -> NameRule:
        """A Python regular expression, matched in full; its named groups name the tags.

        Raises
        ------
        InputError
            The expression does not compile, has no named group, or names a group after
            something that is not a DICOM keyword.
        """
        try:
            compiled = re.compile(expression)
        except re.error as exc:
            raise InputError(
                f"name regex {expression!r} is not a regular expression: {exc}"
            ) from exc
        if not compiled.groupindex:
            raise InputError(
                f"name regex {expression!r} has no named group; write (?P<PatientID>...) for "
                "each value to read"
            )
        keywords = tuple(
            _keyword(name, f"name regex {expression!r}") for name in compiled.groupindex
        )
        return cls(expression, compiled, keywords, "regex")

    def values(self, relative: str) -> dict[str, str]:
        """The keyword values in ``relative`` (a ``/``-separated path), unvalidated.

        Raises
        ------
        InputError
            The name does not fit the rule; the message names both.
        """
        target = relative if "/" in self.source else PurePosixPath(relative).name
        match = self.regex.fullmatch(target)
        if match is None:
            raise InputError(
                f"{relative} does not match the name {self.kind} '{self.source}'; rename it, or "
                "give its tags in a sidecar"
            )
        return {k: v for k, v in match.groupdict().items() if v is not None}

    def tags(self, relative: str) -> ValidatedTags:
        """The validated tags read from ``relative``; a bad value names the file."""
        try:
            return validate_tags(self.values(relative))
        except TagError as exc:
            raise TagError(f"{relative}: value from its name: {exc}") from None


def _keyword(name: str, where: str) -> str:
    load_pydicom()
    from pydicom.datadict import keyword_for_tag

    try:
        tag = resolve_key(name)
    except TagError as exc:
        raise InputError(f"{where}: {exc}") from None
    keyword = keyword_for_tag(tag)
    if not keyword or keyword != name.strip():
        raise InputError(f"{where}: name the value {name!r} by its DICOM keyword")
    return keyword


def sidecar_path(pdf: Path) -> Path:
    """``NAME.json`` beside ``NAME.pdf``: the per-file tags of a hot folder or batch."""
    return pdf.with_suffix(".json")


def sidecar_tags(pdf: Path) -> ValidatedTags:
    """The tags of the sidecar beside ``pdf`` (same shape as ``--tags-file``), or none.

    A sidecar is read only if it is a regular file: a symbolic link, FIFO or device in its
    place is refused without following or opening it for long (it sits in a folder that
    others, a scanner or a share, may write to).

    Raises
    ------
    TagError
        The sidecar exists but cannot be read, is not a regular file, is not a JSON object,
        or holds a bad tag.
    """
    path = sidecar_path(pdf)
    if not os.path.lexists(path):
        return {}
    try:
        return validate_tags(load_tags_file(path, what="sidecar", follow_links=False))
    except TagError as exc:
        text = str(exc)
        raise TagError(text if text.startswith("sidecar") else f"sidecar {path}: {text}") from None


def keyword_values(tags: Mapping[int, object]) -> dict[str, str]:
    """Text values by keyword, for filling ``{Keyword}`` placeholders (sequences left out)."""
    load_pydicom()
    from pydicom.datadict import keyword_for_tag

    return {
        keyword: value
        for tag, value in tags.items()
        if isinstance(value, str) and (keyword := keyword_for_tag(tag))
    }


def fill_placeholders(template: str, values: Mapping[str, str], what: str) -> str:
    """``template`` with each ``{Keyword}`` replaced by this file's value.

    Used for selectors such as ``--study 'AccessionNumber={AccessionNumber}'``. A value that
    holds ``*``, ``?`` or ``\\`` is refused: in a query they are wildcards or separate values
    (DICOM has no escape for them), and a value taken from a file must match only itself.
    Wildcards stay available where the operator types them.

    Raises
    ------
    InputError
        The file gave no value for a keyword the template names, or a value that is not
        literal in a query.
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name is None:
            raise InputError(f"{what} {template!r} has a lone {token!r}")
        if name not in values or not values[name].strip():
            raise InputError(
                f"{what} {template!r} needs {name}, and this file gave none (from its name, "
                "sidecar or tags)"
            )
        value = values[name]
        wildcard = next((char for char in value if char in _NOT_LITERAL), None)
        if wildcard is not None:
            raise InputError(
                f"{what} {template!r}: this file's {name} {short_value(value)!r} holds "
                f"{wildcard!r}, which a query reads as a wildcard or a second value; a value "
                "from a file must match only itself, so this file is not sent"
            )
        return value

    return _PLACEHOLDER.sub(replace, template)


def has_placeholders(template: str) -> bool:
    """Whether ``template`` names any ``{Keyword}`` (so it differs from file to file)."""
    return any(m.group(1) is not None for m in _PLACEHOLDER.finditer(template))


# --- manifests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """One row of a manifest: the file (resolved against the manifest's folder) and its tags."""

    path: Path
    tags: ValidatedTags
    row: int


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Every row of a CSV or JSON Lines manifest, validated before anything is sent.

    CSV: a header with a ``file`` column and one column per DICOM keyword; an empty cell
    sets nothing. JSON Lines: one object per line, ``{"file": ..., "tags": {...}}``. The
    format is told by the suffix (``.csv``; ``.jsonl``, ``.ndjson``, ``.json``), else by the
    first character. Relative file names are taken from the manifest's folder.

    Raises
    ------
    InputError
        The manifest cannot be read, a row has no file or a bad tag (the row number is in the
        message), or a listed file does not exist.
    """
    manifest = Path(path)
    try:
        text = read_bounded(manifest, what="manifest", fifo_ok=True).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"manifest {manifest} is not UTF-8 text") from None
    suffix = manifest.suffix.lower()
    is_csv = suffix == ".csv" or (
        suffix not in (".jsonl", ".ndjson", ".json") and not text.lstrip().startswith("{")
    )
    rows = _csv_rows(text, manifest) if is_csv else _jsonl_rows(text, manifest)
    entries: list[ManifestEntry] = []
    for row, name, tags in rows:
        where = f"manifest {manifest} row {row}"
        if not name.strip():
            raise InputError(f"{where}: the {MANIFEST_FILE_COLUMN} is empty")
        try:
            validated = validate_tags(tags)
        except TagError as exc:
            raise TagError(f"{where}: {exc}") from None
        file_path = Path(name)
        if not file_path.is_absolute():
            file_path = manifest.parent / file_path
        if not file_path.is_file():
            raise InputError(
                f"{where}: {name} is not a file (names are taken from {manifest.parent})"
            )
        entries.append(ManifestEntry(file_path, validated, row))
    if not entries:
        raise InputError(f"manifest {manifest} lists no file")
    return entries


def _csv_rows(text: str, manifest: Path) -> Iterable[tuple[int, str, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = _csv_columns(reader, manifest)
    file_index = columns.index(MANIFEST_FILE_COLUMN)
    try:
        for cells in reader:
            row = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(columns):
                raise InputError(
                    f"manifest {manifest} row {row} has {len(cells)} cells for "
                    f"{len(columns)} columns"
                )
            tags = {
                column: cell
                for index, (column, cell) in enumerate(zip(columns, cells, strict=True))
                if index != file_index and cell != ""
            }
            yield row, cells[file_index], tags
    except csv.Error as exc:
        raise InputError(f"manifest {manifest} row {reader.line_num} is not CSV: {exc}") from None


def _csv_columns(reader: Iterator[list[str]], manifest: Path) -> list[str]:
    """The header's column names, checked before any row: a misspelt keyword is refused even
    where its cells are all empty, which the rows alone (empty cells are left out) would hide."""
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"manifest {manifest} is empty") from None
    except csv.Error as exc:
        raise InputError(f"manifest {manifest} line 1 is not CSV: {exc}") from None
    columns = [column.strip() for column in header]
    if MANIFEST_FILE_COLUMN not in columns:
        raise InputError(
            f"manifest {manifest} has no {MANIFEST_FILE_COLUMN!r} column; its header is "
            f"{short_value(','.join(columns))}"
        )
    seen: dict[int | str, str] = {}
    for column in columns:
        key: int | str = column
        if column != MANIFEST_FILE_COLUMN:
            try:
                key = resolve_key(column)
            except TagError as exc:
                raise TagError(f"manifest {manifest} column {column!r}: {exc}") from None
        if key in seen:
            same = "" if seen[key] == column else f" (as {seen[key]!r})"
            raise InputError(
                f"manifest {manifest} has the column {column!r} twice{same}; keep one, so that "
                "no value silently wins"
            )
        seen[key] = column
    return columns


def _jsonl_rows(text: str, manifest: Path) -> Iterable[tuple[int, str, dict[str, object]]]:
    for row, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"manifest {manifest} row {row}"
        if json_depth_exceeds(line, 2 * MAX_JSON_DEPTH + 2):
            raise InputError(f"{where} nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            record = json.loads(line, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where} is not JSON: {exc.msg}") from None
        except DuplicateKeyError as exc:
            raise InputError(f"{where} gives {exc} twice; keep one") from None
        if not isinstance(record, dict) or not isinstance(record.get("file"), str):
            raise InputError(f'{where} must be an object with a "file" string and "tags"')
        tags = record.get("tags", {})
        if not isinstance(tags, dict):
            raise InputError(f'{where}: "tags" must be an object of keyword to value')
        unknown = sorted(set(record) - {"file", "tags"})
        if unknown:
            raise InputError(f'{where}: unknown field {unknown[0]!r}; give "file" and "tags"')
        yield row, record["file"], tags


# --- file lists ------------------------------------------------------------------------------


def read_file_list(source: str | Path | BinaryIO, *, nul: bool = False) -> list[str]:
    """Paths listed one per line (NUL-separated with ``nul``, as ``find -print0`` writes).

    Empty entries are skipped; a line's trailing carriage return is dropped. Names are
    decoded as the file system does, so any byte sequence names its file. A list may come
    from a file, a pipe or stdin, up to :data:`~pdf2dcm.files.MAX_LIST_FILE` bytes.

    Raises
    ------
    InputError
        The list cannot be read, is a device or larger than the bound, or lists nothing.
    """
    where = str(source) if isinstance(source, str | Path) else "<stdin>"
    data = read_bounded(source, what="file list", fifo_ok=True)
    if nul:
        entries = data.split(b"\0")
    else:
        entries = [line.removesuffix(b"\r") for line in data.split(b"\n")]
    names = [os.fsdecode(entry) for entry in entries if entry]
    if not names:
        raise InputError(f"file list {where} names no file")
    if not nul and any("\0" in name for name in names):
        raise InputError(f"file list {where} holds NUL characters; read it with -0")
    return names


def merge_tags(*layers: ValidatedTags) -> ValidatedTags:
    """The layers in order of precedence, later winning (see the module's docstring)."""
    merged: ValidatedTags = {}
    for layer in layers:
        merged |= layer
    return merged


def batch_file_tags(
    names: Sequence[str],
    *,
    rule: NameRule | None = None,
    sidecars: bool = False,
    manifest: Sequence[ManifestEntry] = (),
) -> list[ValidatedTags]:
    """The per-file tags of a batch (``upload``/``encode``), all read before anything is sent.

    ``names`` are the inputs as given (``-`` for stdin gets none); a rule without ``/`` is
    matched against each file's name, one with ``/`` against the path as given. ``manifest``
    rows, when given, are the first ``len(manifest)`` inputs, in order.

    Raises
    ------
    InputError
        The first input whose name does not fit, or whose sidecar or values are bad; the
        message says how many more do not fit, so one run shows the size of the problem.
    """
    found: list[ValidatedTags] = []
    problems: list[InputError] = []
    for index, name in enumerate(names):
        layers: list[ValidatedTags] = []
        try:
            if name != "-" and rule is not None:
                layers.append(rule.tags(Path(name).as_posix()))
            if name != "-" and sidecars:
                layers.append(sidecar_tags(Path(name)))
        except InputError as exc:
            problems.append(exc)
            continue
        if index < len(manifest):
            layers.append(manifest[index].tags)
        found.append(merge_tags(*layers))
    if problems:
        more = len(problems) - 1
        tail = (
            f" ({more} more input{'s' if more != 1 else ''} like it; nothing was sent)"
            if more
            else ""
        )
        raise type(problems[0])(f"{problems[0]}{tail}")
    return found
