"""The review desk: search the archive, preview, file, retry and reject waiting documents.

Filing is ``pdf2dcm upload`` of one file: the target is looked up by :mod:`pdf2dcm.lookup`,
the document planned by :func:`pdf2dcm.upload.prepare_batch` (every identity check) and
sent by :func:`pdf2dcm.upload.upload_file`; the preview is the same call with ``dry_run``,
as ``upload --dry-run``. Nothing is filed without a preview: filing takes the confirmation
the preview gave, which is bound to the document's bytes and the choice made, so a file
changed or a choice altered after the preview is refused.

What a choice files, and with which of the file's own values:

- a study, a patient (a new study) or a worklist item: the chosen target's patient and
  study, the sidecar's values over them; the values read from the file's name are left
  out, since they are what failed to match;
- ``as-is`` (retry): what the hot folder did, its name values, sidecar and target.

A document held in a running hot folder's inbox is the watcher's too. Before filing or
rejecting one, the desk takes the file's lock (the one the watcher holds while it files a
file, :func:`pdf2dcm.watch.take_file`) and moves it, with its sidecar, into the folder's
hidden ``.pdf2dcm-review/``, where no watcher looks; a failure moves it back. So a document
is filed by the watcher or by a person, never by both. Files left there by a desk that was
killed are moved back when the next desk starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pdf2dcm import records
from pdf2dcm.client import OrthancClient, Patient, Study
from pdf2dcm.errors import InputError, NotFoundError
from pdf2dcm.files import filesystem_error, make_directory, open_regular, read_bounded
from pdf2dcm.lookup import Target, find_resources, resolve_resource, scheduled_procedures
from pdf2dcm.pertags import NameRule, merge_tags, sidecar_path, sidecar_tags
from pdf2dcm.tags import ValidatedTags, validate_tags
from pdf2dcm.upload import UploadOptions, UploadResult, file_sha256, prepare_batch, upload_file
from pdf2dcm.watch import (
    ERROR_SUFFIX,
    FILED_MARK,
    Journal,
    _free_name,
    _move,
    _write_atomic,
    is_watched,
    names_file,
)

from .queue import Waiting, journal_records, read_entry, waiting_documents

ChoiceKind = Literal["study", "patient", "worklist", "as-is"]
CHOICE_KINDS: tuple[ChoiceKind, ...] = ("study", "patient", "worklist", "as-is")
REJECTED_SUFFIX = ".rejected.json"
MAX_RESULTS = 50
CLAIM_FOLDER = ".pdf2dcm-review"
"""Where a document being filed or rejected by hand waits, hidden from the hot folder."""
CLAIM_WAIT = 10.0
"""How long the desk waits for a watcher that is filing the same file right now."""
SEARCH_KEYS = ("PatientName", "PatientID", "AccessionNumber", "StudyDate")
"""What the page searches by; the worklist has no StudyDate."""


@dataclass(frozen=True)
class ReviewOptions:
    """The folders to review and how their documents are filed."""

    folders: tuple[Path, ...]
    upload: UploadOptions = field(default_factory=UploadOptions)
    """How documents are made and sent (``tags`` apply to every one), as for upload."""
    target: Target = field(default_factory=Target)
    """What a retry looks up, with ``{Keyword}`` filled from the file's values (as the hot
    folder's ``--study``)."""
    name_rule: NameRule | None = None
    worklist: str | None = None
    """The Orthanc modality whose worklist the page searches; None: no worklist search."""
    journal: Path | None = None
    """The hot folder's journal: read for reasons, appended ``matched`` and ``rejected``."""
    done: Path | None = None
    """Where filed documents go; default ``done/`` in the folder they were in."""
    rejected: Path | None = None
    """Where rejected documents go; default ``rejected/`` in the folder they were in."""


@dataclass(frozen=True)
class Choice:
    """What a person chose for a document: an Orthanc study or patient ID, a worklist item
    (``KEY=VALUE``), or ``as-is`` (retry)."""

    kind: ChoiceKind
    value: str = ""

    def __post_init__(self) -> None:
        if self.kind not in CHOICE_KINDS:
            raise InputError(f"choose a study, a patient, a worklist item or a retry, not {self}")
        if self.kind != "as-is" and not self.value.strip():
            raise InputError(f"the {self.kind} to file into is missing; choose one")

    def __str__(self) -> str:
        return self.kind if self.kind == "as-is" else f"{self.kind} {self.value}"


@dataclass(frozen=True)
class Preview:
    """The attributes a document would get, and the confirmation that files exactly this."""

    document: Waiting
    choice: Choice
    attributes: dict[str, Any]
    warnings: tuple[str, ...]
    sha256: str
    confirmation: str


@dataclass(frozen=True)
class Filed:
    """A document filed (or rejected) and where its file went."""

    document: Waiting
    destination: Path
    result: UploadResult | None = None


class Desk:
    """The use cases of the review page, over one client; safe to call from several threads
    (filing and rejecting take turns, so a document is never filed twice at once)."""

    def __init__(self, client: OrthancClient, options: ReviewOptions) -> None:
        if not options.folders:
            raise InputError("give at least one folder to review")
        self.client = client
        self.options = options
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._excluded = tuple(
            path
            for number in range(len(options.folders))
            for path in (self._done(number), self._rejected(number))
        )
        self._check_inboxes()
        self._restore_claims()

    # --- what waits --------------------------------------------------------------------------

    def documents(self) -> list[Waiting]:
        """Every waiting document, newest first."""
        return waiting_documents(
            self.options.folders,
            journal=self.options.journal,
            name_rule=self.options.name_rule,
            excluded=self._excluded,
        )

    def document(self, key: str) -> Waiting:
        """The waiting document ``key`` names (``N/path`` as listed).

        Raises
        ------
        InputError
            The key leaves the reviewed folders, names a done or rejected file, or no PDF.
        """
        number, relative, path = self._resolve(key)
        journal = self.options.journal
        found = journal_records(journal) if journal is not None else {}
        return read_entry(f"{number}/{relative}", path, relative, found, self.options.name_rule)

    def _resolve(self, key: str) -> tuple[int, str, Path]:
        refused = InputError(f"{key[:200]!r} is not a document waiting in the reviewed folders")
        number_text, _, relative = key.partition("/")
        parts = relative.split("/")
        if (
            not number_text.isdigit()
            or int(number_text) >= len(self.options.folders)
            or any(part in ("", ".", "..") for part in parts)
            or "\\" in relative
            or "\0" in relative
            or not relative.lower().endswith(".pdf")
        ):
            raise refused
        number = int(number_text)
        folder = os.path.realpath(self.options.folders[number])
        path = self.options.folders[number] / PurePosixPath(relative)
        real = os.path.realpath(path)
        inside = real.startswith(folder + os.sep)
        excluded = any(
            real.startswith(os.path.realpath(other) + os.sep) for other in self._excluded
        )
        if not inside or excluded or path.is_symlink() or not path.is_file():
            raise refused
        return number, relative, path

    # --- search ------------------------------------------------------------------------------

    def search_studies(self, terms: Mapping[str, str]) -> list[Study]:
        """Studies matching every term given (a name matches in part, without regard to case)."""
        query = _query(terms, SEARCH_KEYS)
        found = find_resources(self.client, "study", query, limit=MAX_RESULTS)
        return [resource for resource in found if isinstance(resource, Study)]

    def search_patients(self, terms: Mapping[str, str]) -> list[Patient]:
        """Patients matching the name and PatientID terms given."""
        query = _query(terms, ("PatientName", "PatientID"))
        found = find_resources(self.client, "patient", query, limit=MAX_RESULTS)
        return [resource for resource in found if isinstance(resource, Patient)]

    def search_worklist(self, terms: Mapping[str, str]) -> list[dict[str, str]]:
        """Scheduled procedures of the configured worklist matching the terms."""
        if self.options.worklist is None:
            raise InputError("no worklist to search; start the review with --worklist MODALITY")
        query = _query(terms, ("PatientName", "PatientID", "AccessionNumber"))
        return scheduled_procedures(self.client, self.options.worklist, query)[:MAX_RESULTS]

    def candidates(self, document: Waiting) -> list[Study]:
        """The studies the refusal listed, which the page offers first."""
        found: list[Study] = []
        for orthanc_id in document.candidates:
            try:
                resource = resolve_resource(self.client, orthanc_id)
            except (NotFoundError, InputError):
                continue
            if isinstance(resource, Study):
                found.append(resource)
        return found

    # --- preview, file, reject ---------------------------------------------------------------

    def preview(self, key: str, choice: Choice) -> Preview:
        """Plan the document for ``choice`` as ``upload --dry-run`` does; nothing is sent."""
        document = self.document(key)
        planned = self._carry_out(document, choice, dry_run=True)
        return Preview(
            document,
            choice,
            planned.attributes or {},
            planned.warnings,
            planned.sha256,
            self._confirmation(document.key, choice, planned.sha256),
        )

    def file(self, key: str, choice: Choice, confirmation: str) -> Filed:
        """File the document as previewed, move it to the done folder, journal ``matched``.

        Raises
        ------
        InputError
            The confirmation is not the preview's of this document and choice, or the file
            changed since; a hot folder is filing it right now, or filed it meanwhile; every
            error of ``upload`` (nothing is moved then).
        """
        with self._lock, self._claimed(self.document(key)) as document:
            with document.path.open("rb") as handle:
                digest = file_sha256(handle)
            expected = self._confirmation(document.key, choice, digest)
            if not hmac.compare_digest(expected, confirmation):
                raise InputError(
                    f"{document.key} or the choice changed since its preview, or it was not "
                    "previewed; preview it again, then confirm"
                )
            result = self._carry_out(document, choice, dry_run=False)
            done = self._marked(self._done(_number(document)))
            destination = self._put_away(document, done, result.sha256)
        self._journal(records.matched(_relative(document), result, str(choice)), destination)
        return Filed(document, destination, result)

    def reject(self, key: str, reason: str) -> Filed:
        """Move the document to the rejected folder with ``NAME.pdf.rejected.json``."""
        reason = " ".join(reason.split())
        if not reason:
            raise InputError("say why the document is rejected")
        with self._lock, self._claimed(self.document(key)) as document:
            with document.path.open("rb") as handle:
                digest = file_sha256(handle)
            record = records.rejected(_relative(document), reason)
            folder = self._marked(self._rejected(_number(document)))
            target = _free_name(folder / _relative(document), digest)
            make_directory(target.parent)
            stamped = self._stamped(record, target)
            _write_atomic(target.with_name(target.name + REJECTED_SUFFIX), stamped)
            destination = self._put_away(document, folder, digest, final=target)
        self._journal(record, destination)
        return Filed(document, destination)

    @contextlib.contextmanager
    def _claimed(self, document: Waiting) -> Iterator[Waiting]:
        """The document moved aside for a person to file or reject (see the module's
        docstring); moved back if that fails. The moves are renames within its folder; the
        file stays locked until the work is done, so that another page starting meanwhile
        does not move it back."""
        with open_regular(document.path, what="document", follow_links=False) as handle:
            _lock_within(handle, CLAIM_WAIT, document.key)
            if not names_file(document.path, handle):
                raise InputError(
                    f"{document.key} was filed or moved meanwhile (by the hot folder?); "
                    "reload the list"
                )
            claim = _new_claim(self.options.folders[_number(document)], document)
            try:
                _move_with_companions(document.path, claim)
            except BaseException:
                # Half moved (the PDF, not its sidecar): back together where it was.
                if claim.exists():
                    _unclaim(claim, document.path)
                else:
                    _forget(claim)
                raise
            try:
                yield dataclasses.replace(document, path=claim)
            except BaseException:
                if claim.exists():
                    _unclaim(claim, document.path)
                raise
            _forget(claim)

    def _check_inboxes(self) -> None:
        """A running hot folder's inbox (or a folder inside it) may be reviewed, its held
        files too, but what is filed or rejected must go outside it, where the watcher never
        takes a file again. (A watcher started later skips folders with the page's mark.)"""
        for number, folder in enumerate(self.options.folders):
            real = Path(os.path.realpath(folder))
            for inbox in (real, *real.parents):
                if not is_watched(inbox):
                    continue
                inside = str(inbox).rstrip(os.sep) + os.sep
                puts = (("--done", self._done(number)), ("--rejected", self._rejected(number)))
                for flag, put in puts:
                    if (os.path.realpath(put) + os.sep).startswith(inside):
                        where = "" if inbox == real else f" {inbox}, which is"
                        raise InputError(
                            f"{folder} is inside{where} the inbox of a running pdf2dcm watch: "
                            f"give {flag} a folder outside it, where the watcher never takes "
                            "a file"
                        )

    def _restore_claims(self) -> None:
        """Move back what a desk that was killed left moved aside (never what another page
        is filing now: that one holds its lock). Only what a desk made is touched: regular
        files in folders of its own, named in their claim record; never through a link."""
        for folder in self.options.folders:
            for claim, relative in _claims(folder / CLAIM_FOLDER):
                with (
                    contextlib.suppress(OSError, InputError),
                    open_regular(claim, what="document", follow_links=False) as handle,
                ):
                    try:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue
                    _unclaim(claim, folder / relative)

    def _carry_out(self, document: Waiting, choice: Choice, *, dry_run: bool) -> UploadResult:
        relative = _relative(document)
        upload = dataclasses.replace(self.options.upload, dry_run=dry_run)
        file_tags = merge_tags(
            validate_tags(upload.tags),
            self._name_tags(relative, choice),
            sidecar_tags(document.path),
        )
        target = self._target(choice)
        reference = target.reference(self.client, file_tags)
        batch = prepare_batch(
            self.client,
            [str(document.path)],
            [file_tags],
            dataclasses.replace(upload, tags={}, reference=reference),
        )
        [plan] = batch.plans
        result = upload_file(
            self.client,
            str(document.path),
            batch.options,
            source_name=relative,
            plan=plan,
            planner=batch.planner,
        )
        return dataclasses.replace(result, warnings=batch.warnings + result.warnings)

    def _name_tags(self, relative: str, choice: Choice) -> ValidatedTags:
        rule = self.options.name_rule
        return rule.tags(relative) if rule is not None and choice.kind == "as-is" else {}

    def _target(self, choice: Choice) -> Target:
        if choice.kind == "as-is":
            return self.options.target
        if choice.kind == "worklist":
            if self.options.worklist is None:
                raise InputError("no worklist to file from; start the review with --worklist")
            return Target(study=(choice.value,), worklist=self.options.worklist, placeholders=False)
        return Target(parent=choice.value, placeholders=False)

    def _confirmation(self, key: str, choice: Choice, sha256: str) -> str:
        message = "\0".join((key, choice.kind, choice.value, sha256)).encode("utf-8", "replace")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _marked(self, folder: Path) -> Path:
        """``folder``, made if missing, with the mark that keeps any watcher out of it."""
        make_directory(folder)
        mark = folder / FILED_MARK
        if not os.path.lexists(mark):
            with contextlib.suppress(FileExistsError):
                os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        return folder

    def _done(self, number: int) -> Path:
        return self.options.done or self.options.folders[number] / "done"

    def _rejected(self, number: int) -> Path:
        return self.options.rejected or self.options.folders[number] / "rejected"

    def _put_away(
        self, document: Waiting, folder: Path, digest: str, *, final: Path | None = None
    ) -> Path:
        """Move the PDF, then its sidecar and reason file, keeping its path below the folder."""
        target = final or _free_name(folder / _relative(document), digest)
        make_directory(target.parent)
        try:
            _move(document.path, target)
        except OSError as exc:
            raise filesystem_error(exc, target, "move to") from exc
        for source, destination in zip(
            _companions(document.path), _companions(target), strict=True
        ):
            if source.is_file():
                try:
                    _move(source, destination)
                except OSError as exc:
                    raise filesystem_error(exc, destination, "move to") from exc
        return target

    def _stamped(self, record: records.Record, destination: Path) -> records.Record:
        moment = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        return record | {"Time": moment, "Destination": str(destination)}

    def _journal(self, record: records.Record, destination: Path) -> None:
        if self.options.journal is None:
            return
        journal = Journal(self.options.journal)
        try:
            journal.append(self._stamped(record, destination))
        finally:
            journal.close()


def _lock_within(handle: Any, wait: float, key: str) -> None:
    """Take the file's lock, waiting up to ``wait`` seconds for a watcher filing it now.

    Raises
    ------
    InputError
        A hot folder held it all that time.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise InputError(
                    f"the hot folder is filing {key} right now; reload the list in a moment"
                ) from None
            time.sleep(0.05)
        except OSError:
            return  # a file system without locks: the name check that follows still holds


def _companions(path: Path) -> tuple[Path, ...]:
    return (sidecar_path(path), path.with_name(path.name + ERROR_SUFFIX))


def _move_with_companions(source: Path, target: Path) -> None:
    """Rename the PDF, then its sidecar and reason file (the PDF first, as the hot folder
    moves them)."""
    try:
        os.rename(source, target)
        for companion, moved in zip(_companions(source), _companions(target), strict=True):
            if companion.is_file() and not companion.is_symlink():
                os.rename(companion, moved)
    except OSError as exc:
        raise filesystem_error(exc, target, "move to") from exc


def _unclaim(claim: Path, original: Path) -> None:
    """Put a document moved aside back where it was (beside it, if a new file has taken its
    name meanwhile), then remove its claim folder."""
    back = original
    if original.exists():
        with claim.open("rb") as handle:
            back = _free_name(original, file_sha256(handle))
    make_directory(back.parent)
    _move_with_companions(claim, back)
    _forget(claim)


def _forget(claim: Path) -> None:
    """Remove an emptied claim folder (its record, then the folder)."""
    with contextlib.suppress(OSError):
        (claim.parent / CLAIM_RECORD).unlink()
        claim.parent.rmdir()


CLAIM_RECORD = "claim.json"


def _new_claim(folder: Path, document: Waiting) -> Path:
    """A folder of this claim's own below ``folder/.pdf2dcm-review`` (a random name, made
    here, so no two claims ever share a path and nothing planted is written through), with
    the document's path recorded for a later page to put it back; the claimed path in it."""
    hidden = folder / CLAIM_FOLDER
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(hidden, 0o700)
        descriptor = os.open(hidden, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise InputError(
            f"{hidden} is not a folder pdf2dcm can put documents aside in ({exc.strerror}); "
            "remove it"
        ) from None
    try:
        token = secrets.token_hex(8)
        os.mkdir(token, 0o700, dir_fd=descriptor)
        record = json.dumps({"Input": _relative(document)}).encode("utf-8")
        written = os.open(
            f"{token}/{CLAIM_RECORD}",
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            0o600,
            dir_fd=descriptor,
        )
        try:
            os.write(written, record)
        finally:
            os.close(written)
    except OSError as exc:
        raise filesystem_error(exc, hidden, "put the document aside in") from exc
    finally:
        os.close(descriptor)
    return hidden / token / document.path.name


def _claims(hidden: Path) -> Iterator[tuple[Path, str]]:
    """Each claim a desk left in ``hidden``: its PDF and the path it came from."""
    try:
        entries = list(os.scandir(hidden)) if not hidden.is_symlink() else []
    except OSError:
        return
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        try:
            raw = read_bounded(
                Path(entry.path) / CLAIM_RECORD, what="claim", limit=65536, follow_links=False
            )
            relative = json.loads(raw.decode("utf-8"))["Input"]
        except (InputError, OSError, ValueError, KeyError, TypeError):
            continue
        parts = PurePosixPath(relative).parts if isinstance(relative, str) else ()
        if not parts or any(part in ("", ".", "..") for part in parts) or relative.startswith("/"):
            continue
        yield Path(entry.path) / parts[-1], relative


def _number(document: Waiting) -> int:
    return int(document.key.partition("/")[0])


def _relative(document: Waiting) -> str:
    return document.key.partition("/")[2]


def _query(terms: Mapping[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    """The terms given (trimmed), a name without wildcards matched in part."""
    query = {key: terms[key].strip() for key in keys if terms.get(key, "").strip()}
    if not query:
        raise InputError(f"give something to search by: {', '.join(keys)}")
    name = query.get("PatientName")
    if name is not None and not any(mark in name for mark in "*?"):
        query["PatientName"] = f"*{name}*"
    return query
