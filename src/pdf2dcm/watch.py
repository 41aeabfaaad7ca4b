"""Hot folder: every PDF that appears in an inbox is uploaded, then moved out of the way.

The rules that make it safe to run unattended:

- a file is taken only once complete: its size, modification time and inode (and those of
  its sidecar) have stayed the same for ``settle`` seconds, as this process saw them, it
  can be opened, and it ends like a PDF (``%%EOF`` in its last KiB). A writer may pause
  longer than any settle time (an SMB scanner, a network hiccup): a PDF that does not end
  yet waits as "still being written", and goes to the failed folder only when it has not
  changed for ``incomplete_limit`` (default one hour). Names ending in ``.part`` or ``.tmp``
  and names starting with ``.`` (how copy tools and rsync write before renaming) are never
  taken;
- after the server confirmed a document, and before the file is moved or deleted, the
  file's size, modification time, inode and SHA-256 are compared with what was sent. A file
  that changed was not finished: it stays, is sent again as a new version (its UIDs derive
  from its content), and the earlier document is reported as ``changed`` with its ID so
  that it can be removed;
- server and credential trouble is never the file's fault: unreachable, 5xx, 401/403, an
  unknown modality or peer leave every file in the inbox (``waiting``), tried again after
  a growing pause;
- a file whose study, patient, series or worklist item is not found yet is ``held`` and
  looked up again with a growing pause, until found or until ``hold_for`` has passed since
  it arrived in the inbox (its inode change time, so the clock survives a restart without
  state of our own);
- a file leaves the inbox only after the server confirmed it (Success, or an AlreadyStored
  whose stored PDF was compared). The document's UIDs are derived from its content and tags,
  so a process killed between the store and the move sends the same document again on
  restart and gets AlreadyStored: nothing is lost, nothing duplicated;
- a permanent failure (bad PDF, bad tag, conflict) moves the file to the
  failed folder with ``NAME.pdf.error.json`` beside it; a transient one (server unreachable,
  5xx) leaves it in place and the inbox is tried again after a growing pause;
- files that join one series (a reference series, or ``same_series``) take InstanceNumbers
  handed out by this process, after the highest the server holds (asked again whenever no
  upload is in flight): unique within a run and across restarts. A file that fails, or is
  sent again after a crash (AlreadyStored keeps its first number), leaves a gap. Two
  processes filling one series at the same moment may repeat a number.

The inbox is polled (``os.scandir``), not watched through inotify: polling works the same on
local disks and on the network shares scanners write to (where inotify sees no remote
writes), and at two looks a second it costs well under 1 % of a CPU while picking a settled
file up within half a second (see ``bench/watch_bench.py``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal

from . import records
from .client import OrthancClient
from .errors import (
    AuthenticationError,
    CommitmentError,
    ConfigurationError,
    DicomOutOfResourcesError,
    FileSystemError,
    InputError,
    NotFoundError,
    Pdf2DcmError,
    ServerFailedError,
    ServerRefusedError,
    ServerUnreachableError,
)
from .files import CHUNK_SIZE, create_exclusive, open_regular
from .identity import ReferenceAttributes
from .lookup import Target
from .pdf import may_be_truncated
from .pertags import (
    NameRule,
    merge_tags,
    sidecar_path,
    sidecar_tags,
)
from .plan import Planner
from .tags import validate_tags
from .upload import (
    Server,
    UploadOptions,
    UploadResult,
    archive_view,
    commit_stored,
    plan_options,
    upload_file,
)

IGNORED_SUFFIXES = (".part", ".tmp")
FILED_MARK = ".pdf2dcm-filed"
"""A file the review page puts in its done and rejected folders: a watcher never takes what
is below a folder that holds it, wherever those folders are."""
_STILL_PENDING = frozenset({"retry", "incomplete", "held", "changed"})
"""Outcomes after which a ``once`` run still counts the file as present and not done."""
DEFAULT_SETTLE = 2.0
DEFAULT_POLL = 0.5
RETRY_FIRST = 1.0
RETRY_MAX = 30.0
ERROR_SUFFIX = ".error.json"
DEFAULT_HOLD = 24 * 3600.0
"""How long a file whose study is not found yet is held: a day covers images that arrive
the next morning, and the failed folder still gets it within the day after."""
HOLD_RETRY_FIRST = 2.0
HOLD_RETRY_MAX = 300.0
DEFAULT_INCOMPLETE_LIMIT = 3600.0
"""How long a PDF that does not end like one may stay unchanged before it goes to the failed
folder: an hour outlasts any scanner's pause, and is short enough to be noticed the same day."""

Signature = tuple[int, int, int, int, int]
"""size, mtime_ns, inode of a PDF, then size and mtime_ns of its sidecar (-1 when none)."""


def is_transient(error: Pdf2DcmError) -> bool:
    """A failure that is not the file's: the server could not be reached or failed (5xx),
    refused the credentials (401/403, a rotated password), or the settings are wrong; a
    DICOM node was out of resources (A7xx), or did not commit to a stored document. Such
    trouble is mended by someone else, so the file waits in the inbox instead of failing."""
    return isinstance(
        error,
        ServerUnreachableError
        | ServerFailedError
        | AuthenticationError
        | ConfigurationError
        | DicomOutOfResourcesError
        | CommitmentError,
    )


def state_of(error: Pdf2DcmError, name: str) -> str:
    """What a waiting error says without the file's name: the same for every file that waits
    for the same reason, so that it is said once per change of state, not once per file."""
    return f"{type(error).__name__}: {str(error).replace(name, '<file>')}"


def take_file(handle: BinaryIO, path: Path) -> bool:
    """Lock an open inbox file for this process (``flock``, held until it is closed), and
    say whether ``path`` still names it.

    The review page takes the same lock before it moves a held file aside to file it by
    hand, so the two never file one document twice: whoever locks second finds the file
    gone (or, for the page, already filed). The lock is waited for: the page holds it while
    it moves the file aside and files it, seconds at most. On a file system without locks
    only the name is checked.
    """
    with contextlib.suppress(OSError):
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return names_file(path, handle)


def names_file(path: Path, handle: BinaryIO) -> bool:
    """Whether ``path`` (not followed) still names the open file ``handle``."""
    try:
        named = os.lstat(path)
    except OSError:
        return False
    opened = os.fstat(handle.fileno())
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def lock_inbox(inbox: Path) -> int:
    """Take the inbox for this process (``flock`` on the folder itself, so that nothing is
    written there); the lock goes with the process, even after a kill -9.

    Raises
    ------
    InputError
        Another process watches this inbox.
    FileSystemError
        The inbox cannot be opened.
    """
    try:
        descriptor = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise FileSystemError(
            f"cannot open inbox {inbox}: {exc.strerror}", errno=exc.errno
        ) from exc
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(descriptor)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise InputError(
                f"another pdf2dcm watch is already watching {inbox}; stop it first, or give "
                "each watcher its own inbox"
            ) from None
        raise FileSystemError(
            f"cannot lock inbox {inbox}: {exc.strerror}", errno=exc.errno
        ) from exc
    return descriptor


def _filed_folder(entry: os.DirEntry[str]) -> bool:
    """Whether a folder holds documents the review page filed or rejected (its mark)."""
    return os.path.lexists(os.path.join(entry.path, FILED_MARK))


def is_watched(folder: Path) -> bool:
    """Whether a running ``watch`` holds ``folder`` as its inbox (its lock is taken)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(descriptor)
    return False


def writable_by_others(folder: Path) -> bool:
    """Whether users other than the owner may write to ``folder`` (a result could be planted)."""
    try:
        mode = os.stat(folder).st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWGRP | stat.S_IWOTH))


@dataclass(frozen=True)
class WatchOptions:
    """What a hot folder does with the files that appear in ``inbox``.

    ``upload.title`` is every document's DocumentTitle, over ``upload.tags`` as in upload,
    but a file's name values or sidecar may give its own: a hot folder holds many documents.
    """

    inbox: Path
    upload: UploadOptions = field(default_factory=UploadOptions)
    target: Target = field(default_factory=Target)
    name_rule: NameRule | None = None
    reference: ReferenceAttributes | None = None
    """Attributes every file copies when ``target`` names none (a reference file's, read
    once): its study, and with ``next_instance_number`` its series."""
    same_series: bool = False
    """Files whose tags are equal share one series, named by those tags and the reference
    (:func:`pdf2dcm.uids.series_seed`), so a later run with the same tags adds to it."""
    recursive: bool = False
    settle: float = DEFAULT_SETTLE
    poll: float = DEFAULT_POLL
    done: Path | None = None
    """Where confirmed files go, keeping their path below the inbox; None with ``delete``."""
    delete: bool = False
    failed: Path | None = None
    """Where permanent failures go; None leaves them in place until they change."""
    concurrency: int = 4
    retry_first: float = RETRY_FIRST
    retry_max: float = RETRY_MAX
    once: bool = False
    """Process the files present at the start, then return."""
    forward: tuple[Literal["modality", "peer"], str] | None = None
    """Forward each stored document to this DICOM modality or Orthanc peer (an Orthanc job),
    submitted before the file is moved, so that a crash cannot skip it."""
    hold_for: float = DEFAULT_HOLD
    """How long a file whose target is not found yet is held (since it arrived), then failed."""
    hold_retry_first: float = HOLD_RETRY_FIRST
    hold_retry_max: float = HOLD_RETRY_MAX
    incomplete_limit: float = DEFAULT_INCOMPLETE_LIMIT
    """How long a PDF without its end may stay unchanged before it is failed."""
    commit: bool = False
    """With a DICOM node: a file leaves the inbox only once the node committed to storing
    its document (storage commitment), not when the C-STORE succeeded."""
    listen_port: int | None = None
    """Where the node's commitment report is taken when it opens an association to send it."""


@dataclass(frozen=True)
class WatchEvent:
    """What happened to one file: stored, failed, or left for a retry."""

    time: dt.datetime
    file: str
    """The path below the inbox, with ``/``."""
    status: str
    """``stored``, ``planned`` (a dry run), ``failed`` (moved to the failed folder or left),
    ``retry`` (waiting for the server), ``held`` (its target not found yet), ``incomplete``
    (still being written) or ``changed`` (it changed after it was sent: ``result`` is the
    earlier document, stored but not the file's final content)."""
    sha256: str | None = None
    result: UploadResult | None = None
    error: Pdf2DcmError | None = None
    destination: str | None = None
    """Where the file went: a path, ``deleted``, or None when it stayed in the inbox."""
    retry_in: float | None = None
    job: str | None = None
    """The Orthanc job forwarding the document, when forwarding."""
    state: str | None = None
    """For ``retry``: the reason without the file's name (see :func:`state_of`)."""


@dataclass(frozen=True)
class WatchSummary:
    """Counts of a run and its first permanent error (its exit code is the run's)."""

    stored: int
    failed: int
    waiting: int
    first_error: Pdf2DcmError | None
    planned: int = 0
    """Files a dry run planned (and left where they were)."""
    held: int = 0
    """Files held at the end because their target is not found yet."""

    @property
    def line(self) -> str:
        """``N files: S stored, F failed, H held, W waiting`` (the line said on stop)."""
        total = self.stored + self.failed + self.held + self.waiting
        files = "file" if total == 1 else "files"
        return (
            f"{total} {files}: {self.stored} stored, {self.failed} failed, {self.held} held, "
            f"{self.waiting} waiting"
        )


@dataclass(frozen=True)
class Scan:
    """One look at the inbox."""

    ready: list[str]
    """Settled files that end like a PDF (or do not start like one: they fail as not a PDF)."""
    settling: int
    incomplete: list[str]
    """Settled files that start like a PDF but do not end like one: still being written."""
    others: list[str]
    """Entries that are not PDFs by name, or not regular files (reported once, left alone)."""
    subfolders: list[str]
    """Folders not entered (without ``recursive``)."""


@dataclass
class _Seen:
    signature: Signature
    since: float


class Inbox:
    """The PDFs of a folder and how long each has stayed unchanged.

    ``ready()`` is called once per poll; a file is ready when the same signature has been
    seen for ``settle`` seconds and the file opens. ``excluded`` folders (the done and failed
    ones, when they lie inside the inbox) are never entered.
    """

    def __init__(
        self,
        root: Path,
        *,
        recursive: bool,
        settle: float,
        excluded: tuple[Path, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.recursive = recursive
        self.settle = settle
        self._excluded = {os.path.realpath(path) for path in excluded}
        self._clock = clock
        self._seen: dict[str, _Seen] = {}

    def scan(self) -> Scan:
        """The ready files (paths below the root, sorted), the ones still being written, how
        many are still settling, and what is not taken (not PDFs, folders not entered).

        Raises
        ------
        FileSystemError
            The inbox itself cannot be read.
        """
        now = self._clock()
        present, others, subfolders = self._look()
        ready: list[str] = []
        incomplete: list[str] = []
        for relative, signature in present.items():
            seen = self._seen.get(relative)
            if seen is None or seen.signature != signature:
                seen = self._seen[relative] = _Seen(signature, now)
            if now - seen.since < self.settle:
                continue
            ending = _ends_like_a_pdf(self.root / relative)
            if ending is True:
                ready.append(relative)
            elif ending is False:
                incomplete.append(relative)
        for gone in set(self._seen) - set(present):
            del self._seen[gone]
        settling = len(present) - len(ready) - len(incomplete)
        return Scan(sorted(ready), settling, sorted(incomplete), sorted(others), sorted(subfolders))

    def next_ready_at(self) -> float | None:
        """When the first file still settling will have settled (by the clock), if any."""
        times = [seen.since + self.settle for seen in self._seen.values()]
        upcoming = [t for t in times if t > self._clock()]
        return min(upcoming) if upcoming else None

    def present(self) -> list[str]:
        """Every PDF seen at the last scan, settled or not."""
        return list(self._seen)

    def signature(self, relative: str) -> Signature | None:
        """The signature last seen for a file (None if it was not seen)."""
        seen = self._seen.get(relative)
        return seen.signature if seen else None

    def _look(self) -> tuple[dict[str, Signature], list[str], list[str]]:
        """The PDFs present with their signatures, the other entries, the folders not entered."""
        present: dict[str, Signature] = {}
        found: dict[str, list[str]] = {"other": [], "folder": []}
        for relative, path, kind in self._walk():
            if kind != "file":
                found[kind].append(relative)
            elif (signature := _signature(path)) is not None:
                present[relative] = signature
        return present, found["other"], found["folder"]

    def _walk(self) -> Iterator[tuple[str, Path, Literal["folder", "file", "other"]]]:
        """Every PDF by name (``.pdf`` in any case, as Windows scanners write ``.PDF``), and
        what is not taken: other names and non-regular files, and without ``recursive`` the
        folders that hold something (the excluded ones aside)."""
        pending = [(self.root, PurePosixPath())]
        while pending:
            folder, relative = pending.pop()
            for entry in self._entries(folder):
                name = entry.name
                if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
                    continue
                kind = _kind(entry)
                if kind == "folder":
                    if os.path.realpath(entry.path) in self._excluded or _filed_folder(entry):
                        continue
                    if self.recursive:
                        pending.append((Path(entry.path), relative / name))
                    else:
                        yield str(relative / name), Path(entry.path), "folder"
                elif name.lower().endswith(".pdf") and kind == "file":
                    yield str(relative / name), Path(entry.path), "file"
                elif not name.lower().endswith(".json"):
                    # Sidecars (NAME.json) belong to their PDF; everything else is not taken.
                    yield str(relative / name), Path(entry.path), "other"

    def _entries(self, folder: Path) -> list[os.DirEntry[str]]:
        """A folder's entries; an unreadable subfolder has none, an unreadable inbox is an
        error (the service cannot do its work)."""
        try:
            return list(os.scandir(folder))
        except FileNotFoundError:
            if folder == self.root:
                raise FileSystemError(
                    f"inbox {self.root} does not exist; create it or give another folder",
                    errno=errno.ENOENT,
                ) from None
            return []
        except OSError as exc:
            if folder != self.root:
                return []
            raise FileSystemError(
                f"cannot read inbox {self.root}: {exc.strerror}", errno=exc.errno
            ) from exc


def _kind(entry: os.DirEntry[str]) -> Literal["folder", "file", "other"]:
    """A folder (never followed through a link), a regular file, or something else; an
    entry that vanished or cannot be examined counts as something else."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return "folder"
        return "file" if entry.is_file() else "other"
    except OSError:
        return "other"


def _signature(path: Path) -> Signature | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    try:
        side = os.stat(sidecar_path(path))
        side_size, side_mtime = side.st_size, side.st_mtime_ns
    except OSError:
        side_size = side_mtime = -1
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino, side_size, side_mtime)


def _ends_like_a_pdf(path: Path) -> bool | None:
    """True when the file ends like a PDF or does not start like one (it then fails as not a
    PDF, with that reason); False when it starts like a PDF without its end: still being
    written. None when it cannot be opened now (try again at the next look). Opened as the
    watcher opens every inbox file: no link followed, nothing but a regular file; a link or
    FIFO counts as ready, so that it fails and is moved aside."""
    try:
        with open_regular(path, what="inbox file", follow_links=False) as handle:
            ending = may_be_truncated(handle)
    except FileSystemError:
        return None
    except (InputError, OSError):
        return True
    return ending is not True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _sha256(path: Path) -> str | None:
    """The checksum of a regular file (never through a link); None for anything else."""
    digest = hashlib.sha256()
    try:
        with open_regular(path, what="file", follow_links=False) as handle:
            while block := handle.read(CHUNK_SIZE):
                digest.update(block)
    except (OSError, Pdf2DcmError):
        return None
    return digest.hexdigest()


def _identity(path: Path) -> tuple[int, int, int] | None:
    """Size, modification time and inode of the name itself (a link is not followed)."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    return (found.st_size, found.st_mtime_ns, found.st_ino)


@dataclass
class _Loop:
    """The state of :meth:`Watcher.run` between its steps."""

    next_scan: float
    queue: collections.deque[str] = field(default_factory=collections.deque)
    in_flight: dict[concurrent.futures.Future[WatchEvent], str] = field(default_factory=dict)
    waiting: int = 0


@dataclass
class _Hold:
    """A held file: when it is looked up again, and the pause before that."""

    next_try: float
    pause: float


@dataclass(frozen=True)
class Status:
    """What the status line shows after each poll."""

    waiting: int
    stored: int
    failed: int
    held: int
    last_error: str | None


class Watcher:
    """Runs a hot folder: see the module's docstring for the rules.

    ``exit_code`` maps an error to the number written in its ``.error.json`` (the command
    line's exit-code table); ``on_event`` is called in the calling thread for every file;
    ``on_status`` after every poll; ``on_note`` once for each thing worth a word that is not a
    file's outcome (a name that is not a PDF, a subfolder not watched).
    """

    def __init__(
        self,
        client: Server,
        options: WatchOptions,
        *,
        exit_code: Callable[[Pdf2DcmError], int],
        on_event: Callable[[WatchEvent], None] = lambda _event: None,
        on_status: Callable[[Status], None] | None = None,
        on_note: Callable[[str], None] = lambda _note: None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if options.done is None and not options.delete and not options.upload.dry_run:
            raise InputError("a hot folder needs a done folder or delete, else files are re-sent")
        self.client = client
        self.options = options
        self._exit_code = exit_code
        self._on_event = on_event
        self._on_status = on_status
        self._on_note = on_note
        self._clock = clock
        self._wall_clock = wall_clock
        excluded = tuple(p for p in (options.done, options.failed) if p is not None)
        self.inbox = Inbox(
            options.inbox,
            recursive=options.recursive,
            settle=options.settle,
            excluded=excluded,
            clock=clock,
        )
        self._failed_left: dict[str, Signature | None] = {}
        self._given_up: set[str] = set()
        """Files a ``once`` run is done with: failed and left, or waiting for a retry."""
        self._pending: set[str] | None = None
        """With ``once``: the files present at the start that are not done yet."""
        self._pause_until = 0.0
        self._pause = 0.0
        self._held: dict[str, _Hold] = {}
        self._incomplete_said: dict[str, Signature | None] = {}
        self._incomplete_expired: set[str] = set()
        """Files that never ended like a PDF within the limit: failed, never sent."""
        self._noted: set[str] = set()
        self._commit_lock = threading.Lock()
        """One storage commitment at a time: its report comes to one listening port."""
        self._stop = threading.Event()
        """The run's stop: commitments still waiting for their report give up on it."""
        self.planner = Planner(
            plan_options(options.upload, same_series=options.same_series), archive_view(client)
        )
        self.stored = 0
        self.planned = 0
        self.failed = 0
        self.first_error: Pdf2DcmError | None = None
        self.last_error: str | None = None

    def run(self, stop: threading.Event) -> WatchSummary:
        """Poll and upload until ``stop`` is set (or, with ``once``, the first files are done).

        Files being uploaded when ``stop`` is set are finished and moved; no new one starts.
        """
        options = self.options
        self._stop = stop
        loop = _Loop(next_scan=self._clock())
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.concurrency))
        try:
            while not stop.is_set():
                if self._clock() >= loop.next_scan:
                    self._scan(loop)
                if self._clock() >= self._pause_until:
                    self._start(loop, pool)
                if options.once and not loop.in_flight and not self._left_to_do():
                    # Done: no wait for the next poll.
                    break
                self._collect(loop, stop)
                if self._on_status is not None:
                    self._on_status(
                        Status(
                            loop.waiting, self.stored, self.failed, len(self._held), self.last_error
                        )
                    )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for future in loop.in_flight:
                if future.done() and not future.cancelled():
                    self._finish(future.result())
        held = len(self._held)
        waiting = self._still_waiting()
        if self.options.once and self._pending is not None:
            # The files present at the start that were neither stored nor failed: left in the
            # inbox for a retry (held ones counted apart).
            waiting = len(self._pending - set(self._held))
        return WatchSummary(
            self.stored, self.failed, waiting, self.first_error, self.planned, held=held
        )

    def _still_waiting(self) -> int:
        """Files in the inbox now that are neither held nor failed and left: one more look,
        as files may have arrived or gone since the last poll."""
        try:
            self.inbox.scan()
        except FileSystemError:
            return 0
        present = set(self.inbox.present())
        return len(present - set(self._held) - set(self._failed_left))

    def _scan(self, loop: _Loop) -> None:
        """Read the folder once per poll, however many files finish in between: a backlog is
        fed from the queue, not by reading the folder per file."""
        loop.queue, settling = self._ready(set(loop.in_flight.values()))
        loop.next_scan = self._clock() + self.options.poll
        settled_at = self.inbox.next_ready_at()
        if settled_at is not None:
            # Look again the moment a file has settled, not up to a poll later.
            loop.next_scan = min(loop.next_scan, settled_at + 0.01)
        loop.waiting = settling + len(loop.queue)

    def _start(self, loop: _Loop, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        if not loop.in_flight:
            # Each round asks the server afresh which patient owns a study, which numbers
            # are used.
            self.planner.refresh()
        limit = 2 * max(1, self.options.concurrency)
        while loop.queue and len(loop.in_flight) < limit:
            name = loop.queue.popleft()
            loop.in_flight[pool.submit(self._process, name)] = name

    def _collect(self, loop: _Loop, stop: threading.Event) -> None:
        """Wait until the next scan is due or an upload ends, and report what ended."""
        pause = max(0.0, loop.next_scan - self._clock())
        if not loop.in_flight:
            stop.wait(pause)
            return
        done, _ = concurrent.futures.wait(
            list(loop.in_flight), timeout=pause, return_when="FIRST_COMPLETED"
        )
        for future in done:
            del loop.in_flight[future]
            self._finish(future.result())
            loop.waiting = max(0, loop.waiting - 1)

    def _left_to_do(self) -> bool:
        """With ``once``: whether files present at the start are neither done nor given up."""
        return bool((self._pending or set()) - self._given_up)

    def _ready(self, busy: set[str]) -> tuple[collections.deque[str], int]:
        """The files to start now, in name order, and how many others are still waiting."""
        scan = self.inbox.scan()
        self._note(scan)
        ready, settling = scan.ready, scan.settling + len(scan.incomplete)
        if self.options.once:
            present = set(self.inbox.present())
            if self._pending is None:
                self._pending = present
            self._pending &= present | busy
            ready = [name for name in ready if name in self._pending]
            settling = len(self._pending) - len(ready)
        for gone in set(self._held) - set(self.inbox.present()) - busy:
            del self._held[gone]
        now = self._clock()
        chosen = [
            n
            for n in ready
            if n not in busy
            and not self._left_failed(n)
            and (n not in self._held or self._held[n].next_try <= now)
        ]
        for name in scan.incomplete:
            if name not in busy and (not self.options.once or name in (self._pending or ())):
                chosen.extend(self._still_being_written(name))
        return collections.deque(chosen), settling

    def _note(self, scan: Scan) -> None:
        """Say once what is not taken: names that are not PDFs, folders not entered."""
        for name in scan.others:
            if name not in self._noted:
                self._noted.add(name)
                self._on_note(
                    f"{name} is not a PDF by its name (.pdf) or not a regular file; left alone"
                )
        if scan.subfolders and "<folders>" not in self._noted:
            self._noted.add("<folders>")
            shown = ", ".join(scan.subfolders[:3]) + (", ..." if len(scan.subfolders) > 3 else "")
            self._on_note(
                f"subfolders of {self.options.inbox} are not watched ({shown}); give "
                "--recursive to take the PDFs in them"
            )

    def _still_being_written(self, name: str) -> list[str]:
        """Say once per version that a file waits for its end; past the limit, return it to
        be failed. Its clock is its modification time, which survives a restart."""
        path = self.options.inbox / name
        try:
            unchanged_for = self._wall_clock() - os.lstat(path).st_mtime
        except OSError:
            return []
        if unchanged_for >= self.options.incomplete_limit:
            self._incomplete_expired.add(name)
            return [name]
        signature = self.inbox.signature(name)
        if self._incomplete_said.get(name, -1) != signature:
            self._incomplete_said[name] = signature
            error = InputError(
                f"{name} has no %%EOF marker near its end: still being written; "
                f"it waits, and goes to the failed folder if unchanged for "
                f"{_duration(self.options.incomplete_limit)}"
            )
            self._finish(WatchEvent(_now(), name, "incomplete", error=error))
        return []

    def _cut_short(self, name: str) -> InputError:
        return InputError(
            f"{name} has no %%EOF marker near its end and has not changed for "
            f"{_duration(self.options.incomplete_limit)}: cut short; send it again whole"
        )

    def _left_failed(self, name: str) -> bool:
        """A failed file left in the inbox is tried again only once it has changed."""
        if name not in self._failed_left:
            return False
        if self._failed_left[name] == self.inbox.signature(name):
            return True
        del self._failed_left[name]
        return False

    def _finish(self, event: WatchEvent) -> None:
        """Count an outcome and report it; runs in the calling thread, never in a worker."""
        if event.status != "held":
            self._held.pop(event.file, None)
        counted = {
            "stored": self._count_stored,
            "planned": self._count_planned,
            "failed": self._count_failed,
            "incomplete": self._count_incomplete,
            "held": self._hold,
            "changed": self._count_changed,
            "retry": self._count_retry,
        }.get(event.status)
        if counted is not None:
            event = counted(event)
        if self._pending is not None and event.status not in _STILL_PENDING:
            self._pending.discard(event.file)
        if event.status != "vanished":
            self._on_event(event)

    def _count_stored(self, event: WatchEvent) -> WatchEvent:
        self.stored += 1
        self._pause = 0.0
        return event

    def _count_planned(self, event: WatchEvent) -> WatchEvent:
        # A dry run plans each file once, and again only once it has changed.
        self.planned += 1
        self._failed_left[event.file] = self.inbox.signature(event.file)
        self._given_up.add(event.file)
        return event

    def _count_failed(self, event: WatchEvent) -> WatchEvent:
        self.failed += 1
        self.last_error = str(event.error)
        self.first_error = self.first_error or event.error
        if event.destination is None:
            self._failed_left[event.file] = self.inbox.signature(event.file)
            self._given_up.add(event.file)
        return event

    def _count_incomplete(self, event: WatchEvent) -> WatchEvent:
        if self.options.once:
            self._given_up.add(event.file)
            self.first_error = self.first_error or event.error
        return event

    def _count_changed(self, event: WatchEvent) -> WatchEvent:
        self.last_error = str(event.error)
        return event

    def _count_retry(self, event: WatchEvent) -> WatchEvent:
        self.last_error = str(event.error)
        now = self._clock()
        if now >= self._pause_until:
            # Files of one round fail together; the pause grows once per round.
            self._pause = min(
                self.options.retry_max, max(self.options.retry_first, 2 * self._pause)
            )
            self._pause_until = now + self._pause
        if self.options.once:
            self._given_up.add(event.file)
            self.first_error = self.first_error or event.error
        return dataclasses.replace(event, retry_in=round(self._pause_until - now, 3))

    def _hold(self, event: WatchEvent) -> WatchEvent:
        """Schedule the next look-up of a held file, with a pause that doubles each time."""
        options = self.options
        previous = self._held.get(event.file)
        pause = (
            min(options.hold_retry_max, 2 * previous.pause)
            if previous is not None
            else options.hold_retry_first
        )
        self._held[event.file] = _Hold(self._clock() + pause, pause)
        if options.once:
            self._given_up.add(event.file)
        return dataclasses.replace(event, retry_in=pause)

    def _process(self, name: str) -> WatchEvent:
        path = self.options.inbox / name
        if name in self._incomplete_expired:
            self._incomplete_expired.discard(name)
            return self._fail(name, path, _sha256(path), self._cut_short(name))
        try:
            handle = open_regular(path, what="inbox file", follow_links=False)
        except Pdf2DcmError as error:
            return self._not_filed(name, path, error)
        with handle:
            if not take_file(handle, path):
                # Moved aside meanwhile: a person files it on the review page.
                return WatchEvent(_now(), name, "vanished")
            return self._file(name, path, handle)

    def _file(self, name: str, path: Path, handle: BinaryIO) -> WatchEvent:
        """Upload the open file and put it away, holding its lock to the end."""
        options = self.options
        job = None
        try:
            sent = os.fstat(handle.fileno())
            result = self._upload(handle, path, name)
            if options.upload.dry_run:
                return WatchEvent(_now(), name, "planned", sha256=result.sha256, result=result)
            changed = self._changed(path, name, sent, result)
            if changed is not None:
                return changed
            self._commit(result)
            job = self._forward(result)
        except _NotFoundYet as held:
            if self._arrived_ago(path) >= options.hold_for:
                return self._expired(name, path, held.error)
            return WatchEvent(
                _now(), name, "held", sha256=_sha256(path), error=held.error, state=held.state
            )
        except Pdf2DcmError as error:
            return self._not_filed(name, path, error)
        digest = result.sha256
        try:
            destination = self._put_away(path, name, options.done, digest=digest)
        except FileSystemError as error:
            # Stored, but still in the inbox: it is sent again (AlreadyStored) and moved later.
            return self._retry(name, digest, error, result=result)
        return WatchEvent(
            _now(),
            name,
            "stored",
            sha256=digest,
            result=result,
            destination=destination,
            job=job,
        )

    def _not_filed(self, name: str, path: Path, error: Pdf2DcmError) -> WatchEvent:
        """A file gone meanwhile, one that waits (server trouble), or one that fails."""
        digest = _sha256(path)
        if digest is None and _identity(path) is None:
            return WatchEvent(_now(), name, "vanished")
        if is_transient(error):
            return self._retry(name, digest or "", error)
        return self._fail(name, path, digest, error)

    def _commit(self, result: UploadResult) -> None:
        """With ``commit``: wait until the node committed to storing the document, so that
        the only copy leaves the inbox only when the archive took responsibility for it.

        Raises
        ------
        CommitmentError
            The node did not commit (or no report came): the file waits and is sent again.
        """
        if not self.options.commit or isinstance(self.client, OrthancClient):
            return
        with self._commit_lock:
            if self._stop.is_set():
                raise CommitmentError(
                    f"stopped before {self.client.name} was asked to commit to "
                    f"{result.input}; the file stays in the inbox"
                )
            commit_stored(
                self.client, [result], listen_port=self.options.listen_port, stop=self._stop
            )

    def _forward(self, result: UploadResult) -> str | None:
        """Submit the forwarding job of a stored document, if forwarding.

        Raises
        ------
        ConfigurationError
            The server refused the job (an unknown modality or peer): the settings' fault,
            not the file's, so the file waits.
        """
        if (
            self.options.forward is None
            or result.id is None
            or not isinstance(self.client, OrthancClient)
        ):
            return None
        from .jobs import submit_store

        try:
            return submit_store(self.client, *self.options.forward, [result.id])
        except ServerRefusedError as error:
            raise ConfigurationError(f"forwarding {result.input}: {error}") from error

    def _changed(
        self, path: Path, name: str, sent: os.stat_result, result: UploadResult
    ) -> WatchEvent | None:
        """None when the file in the inbox is still exactly what was sent; else the event
        that reports the stored document as an earlier version (the file stays, to be sent
        again once it has settled)."""
        now = _identity(path)
        if now == (sent.st_size, sent.st_mtime_ns, sent.st_ino) and _sha256(path) == result.sha256:
            return None
        where = result.id or result.sop_instance_uid
        error = InputError(
            f"{name} changed after it was sent: the document stored as {where} "
            f"(SOPInstanceUID {result.sop_instance_uid}) holds an earlier version; remove it "
            "from the archive. The file stays in the inbox and is sent again as a new version."
        )
        return WatchEvent(_now(), name, "changed", sha256=result.sha256, result=result, error=error)

    def _arrived_ago(self, path: Path) -> float:
        """Seconds since the file arrived in the inbox: its inode change time, which a copy
        or a rename into the inbox sets and no user can set back, and which a restart keeps."""
        try:
            return self._wall_clock() - os.lstat(path).st_ctime
        except OSError:
            return 0.0

    def _expired(self, name: str, path: Path, cause: NotFoundError) -> WatchEvent:
        """The hold is over: fail the file with the reason it was held for."""
        error = InputError(
            f"{cause}; held for {_duration(self.options.hold_for)} since {name} arrived, "
            "without a match; file the study first, then put the file back in the inbox"
        )
        return self._fail(name, path, _sha256(path), error)

    def _upload(self, handle: Any, path: Path, name: str) -> UploadResult:
        """Plan the file as a batch of one, by the planner of the run (so that files in flight
        together never share a number), and carry the plan out as upload does, from the
        open file (never the name again)."""
        options = self.options
        title = options.upload.title
        file_tags = merge_tags(
            validate_tags(options.upload.tags),
            validate_tags({"DocumentTitle": title} if title is not None else {}),
            options.name_rule.tags(name) if options.name_rule else {},
            sidecar_tags(path),
        )
        try:
            reference = options.target.reference(self.client, file_tags) or options.reference
        except NotFoundError as error:
            if options.hold_for <= 0:
                raise
            raise _NotFoundYet(error, state_of(error, name)) from error
        [plan] = self.planner.plan([name], [file_tags], reference, seed_tags=file_tags)
        upload = dataclasses.replace(options.upload, tags={}, title=None, reference=reference)
        return upload_file(
            self.client, handle, upload, source_name=name, plan=plan, planner=self.planner
        )

    def _retry(
        self,
        name: str,
        digest: str,
        error: Pdf2DcmError,
        result: UploadResult | None = None,
    ) -> WatchEvent:
        return WatchEvent(
            _now(),
            name,
            "retry",
            sha256=digest,
            result=result,
            error=error,
            state=state_of(error, name),
        )

    def _fail(self, name: str, path: Path, digest: str | None, error: Pdf2DcmError) -> WatchEvent:
        options = self.options
        when = _now()
        destination: str | None = None
        # A dry run reports the failure and leaves the file where it is.
        if options.failed is not None and not options.upload.dry_run:
            target = options.failed / name
            try:
                # The reason is written before the file moves, so a file in failed/ always
                # has one; a crash in between leaves the file to fail (and write) again.
                target.parent.mkdir(parents=True, exist_ok=True)
                final = _free_name(target, digest)
                event = WatchEvent(
                    when, name, "failed", digest, error=error, destination=str(final)
                )
                record = records.watched(event, self._exit_code(error))
                record["ErrorType"] = type(error).__name__
                _write_atomic(final.with_name(final.name + ERROR_SUFFIX), record)
                destination = self._put_away(path, name, options.failed, final=final)
            except (OSError, FileSystemError) as exc:
                error = FileSystemError(
                    f"{name} failed ({error}) and cannot be moved to {options.failed}: {exc}"
                )
        return WatchEvent(when, name, "failed", sha256=digest, error=error, destination=destination)

    def _put_away(
        self,
        path: Path,
        name: str,
        folder: Path | None,
        *,
        final: Path | None = None,
        digest: str | None = None,
    ) -> str:
        """Move (or delete) the PDF, then its sidecar; the PDF first, so that a crash in
        between never lets the PDF be sent again without its tags."""
        sidecar = sidecar_path(path)
        if folder is None:
            try:
                path.unlink()
                sidecar.unlink(missing_ok=True)
            except OSError as exc:
                raise FileSystemError(
                    f"cannot delete {path}: {exc.strerror}", errno=exc.errno
                ) from exc
            return "deleted"
        target = final or _free_name(folder / name, digest or _sha256(path))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _move(path, target)
            if sidecar.exists():
                _move(sidecar, sidecar_path(target))
        except OSError as exc:
            raise FileSystemError(
                f"cannot move {path} to {target}: {exc.strerror}", errno=exc.errno
            ) from exc
        return str(target)


def _move(source: Path, target: Path) -> None:
    """Rename, or copy and remove across file systems (a crash then leaves both: the
    inbox copy is sent again, answered AlreadyStored, and moved).

    A rename moves a link or FIFO planted in the inbox as it is, never what it points to.
    The copy reads the source only as a regular file (no link followed) into a new file
    nobody could have planted, then links it to the target name, which fails rather than
    write through whatever already stands there.
    """
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        import shutil

        with open_regular(source, what="inbox file", follow_links=False) as reading:
            writing, temporary = create_exclusive(target.parent)
            try:
                with writing:
                    shutil.copyfileobj(reading, writing, CHUNK_SIZE)
                    os.fchmod(writing.fileno(), stat.S_IMODE(os.fstat(reading.fileno()).st_mode))
                os.link(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)
        source.unlink()


def _free_name(target: Path, digest: str | None) -> Path:
    """``target``, unless another document already has that name there: then ``NAME.2.pdf``.

    Scanners reuse names (``scan001.pdf`` every day); the same document (same checksum)
    may take its own place again, as after a crash between a copy and a removal.
    """
    candidate, number = target, 1
    while candidate.exists() and (digest is None or _sha256(candidate) != digest):
        number += 1
        candidate = target.with_name(f"{target.stem}.{number}{target.suffix}")
    return candidate


def _write_atomic(path: Path, record: dict[str, Any]) -> None:
    """Write a reason file (it holds a PatientID: 0600) under a name nobody could plant,
    then rename it into place, which replaces a link standing there instead of following it."""
    writing, temporary = create_exclusive(path.parent)
    try:
        with writing:
            writing.write((records.dumps(record, indent=2) + "\n").encode("utf-8"))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class Journal:
    """An append-only JSON Lines record of every file: one ``write`` per line (atomic with
    ``O_APPEND``), so a crash never leaves half a line and several watchers may share it."""

    def __init__(self, path: Path) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            self._descriptor = os.open(path, flags | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise FileSystemError(
                f"cannot open journal {path}: {exc.strerror}", errno=exc.errno
            ) from exc
        if not stat.S_ISREG(os.fstat(self._descriptor).st_mode):
            os.close(self._descriptor)
            raise InputError(f"journal {path} is not a regular file; give a file")
        self.path = path

    def write(self, event: WatchEvent, exit_code: int | None) -> None:
        """The event's record, as ``--json`` prints it, with the time to the millisecond."""
        record = records.watched(event, exit_code)
        record["Time"] = event.time.isoformat(timespec="milliseconds")
        self.append(record)

    def append(self, record: records.Record) -> None:
        """One record, as one line."""
        line = records.dumps(record) + "\n"
        try:
            os.write(self._descriptor, line.encode("utf-8"))
        except OSError as exc:
            raise FileSystemError(
                f"cannot write journal {self.path}: {exc.strerror}", errno=exc.errno
            ) from exc

    def close(self) -> None:
        os.close(self._descriptor)


class _NotFoundYet(Exception):
    """The file's study, patient, series or worklist item is not found (yet): hold it."""

    def __init__(self, error: NotFoundError, state: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.state = state


def _duration(seconds: float) -> str:
    """``90 s``, ``30 min``, ``24 h``: a limit as the command line takes it."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``24h`` or ``2d``.

    Raises
    ------
    InputError
        Anything else, or a negative number.
    """
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    stripped = text.strip().lower()
    factor = units.get(stripped[-1:])
    number = stripped[:-1] if factor is not None else stripped
    try:
        value = float(number) * (factor or 1.0)
    except ValueError:
        raise InputError(
            f"{text!r} is not a duration; give seconds (90) or a number with s, m, h or d "
            "(30m, 24h)"
        ) from None
    if not value >= 0 or value == float("inf"):
        raise InputError(f"{text!r} is not a duration; give a number of seconds from 0 up")
    return value
