"""Hot folder: every PDF that appears in an inbox is uploaded, then moved out of the way.

The rules that make it safe to run unattended:

- a file is taken only once complete: its size, modification time and inode (and those of
  its sidecar) have stayed the same for ``settle`` seconds, as this process saw them, and it
  can be opened. Names ending in ``.part`` or ``.tmp`` and names starting with ``.`` (how
  copy tools and rsync write before renaming) are never taken;
- a file leaves the inbox only after the server confirmed it (Success, or an AlreadyStored
  whose stored PDF was compared). The document's UIDs are derived from its content and tags,
  so a process killed between the store and the move sends the same document again on
  restart and gets AlreadyStored: nothing is lost, nothing duplicated;
- a permanent failure (bad PDF, bad tag, no matching study, conflict) moves the file to the
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
import dataclasses
import datetime as dt
import errno
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from . import records
from .client import OrthancClient
from .errors import (
    FileSystemError,
    InputError,
    Pdf2DcmError,
    ServerFailedError,
    ServerUnreachableError,
)
from .files import CHUNK_SIZE
from .identity import ReferenceAttributes
from .lookup import OrthancArchive, Target
from .pertags import (
    NameRule,
    merge_tags,
    sidecar_path,
    sidecar_tags,
)
from .plan import Planner
from .tags import validate_tags
from .upload import UploadOptions, UploadResult, plan_options, upload_file

IGNORED_SUFFIXES = (".part", ".tmp")
DEFAULT_SETTLE = 2.0
DEFAULT_POLL = 0.5
RETRY_FIRST = 1.0
RETRY_MAX = 30.0
ERROR_SUFFIX = ".error.json"

Signature = tuple[int, int, int, int, int]
"""size, mtime_ns, inode of a PDF, then size and mtime_ns of its sidecar (-1 when none)."""


def is_transient(error: Pdf2DcmError) -> bool:
    """A failure that may pass by itself: the server could not be reached or failed (5xx)."""
    return isinstance(error, ServerUnreachableError | ServerFailedError)


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


@dataclass(frozen=True)
class WatchEvent:
    """What happened to one file: stored, failed, or left for a retry."""

    time: dt.datetime
    file: str
    """The path below the inbox, with ``/``."""
    status: str
    """``stored``, ``planned`` (a dry run), ``failed`` (moved to the failed folder or left),
    or ``retry``."""
    sha256: str | None = None
    result: UploadResult | None = None
    error: Pdf2DcmError | None = None
    destination: str | None = None
    """Where the file went: a path, ``deleted``, or None when it stayed in the inbox."""
    retry_in: float | None = None
    job: str | None = None
    """The Orthanc job forwarding the document, when forwarding."""


@dataclass(frozen=True)
class WatchSummary:
    """Counts of a run and its first permanent error (its exit code is the run's)."""

    stored: int
    failed: int
    waiting: int
    first_error: Pdf2DcmError | None
    planned: int = 0
    """Files a dry run planned (and left where they were)."""


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

    def scan(self) -> tuple[list[str], int]:
        """The ready files (paths below the root, sorted) and how many are still settling.

        Raises
        ------
        FileSystemError
            The inbox itself cannot be read.
        """
        now = self._clock()
        present: dict[str, Signature] = {}
        for relative, path in self._walk():
            signature = _signature(path)
            if signature is not None:
                present[relative] = signature
        ready: list[str] = []
        for relative, signature in present.items():
            seen = self._seen.get(relative)
            if seen is None or seen.signature != signature:
                seen = self._seen[relative] = _Seen(signature, now)
            if now - seen.since >= self.settle and _opens(self.root / relative):
                ready.append(relative)
        for gone in set(self._seen) - set(present):
            del self._seen[gone]
        return sorted(ready), len(present) - len(ready)

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

    def _walk(self) -> Iterator[tuple[str, Path]]:
        pending = [(self.root, PurePosixPath())]
        while pending:
            folder, relative = pending.pop()
            for entry in self._entries(folder):
                name = entry.name
                if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
                    continue
                kind = _kind(entry)
                if kind == "folder" and self.recursive:
                    if os.path.realpath(entry.path) not in self._excluded:
                        pending.append((Path(entry.path), relative / name))
                elif kind == "file" and name.lower().endswith(".pdf"):
                    yield str(relative / name), Path(entry.path)

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


def _opens(path: Path) -> bool:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(descriptor)
    return True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(CHUNK_SIZE):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


@dataclass
class _Loop:
    """The state of :meth:`Watcher.run` between its steps."""

    next_scan: float
    queue: collections.deque[str] = field(default_factory=collections.deque)
    in_flight: dict[concurrent.futures.Future[WatchEvent], str] = field(default_factory=dict)
    waiting: int = 0


class Watcher:
    """Runs a hot folder: see the module's docstring for the rules.

    ``exit_code`` maps an error to the number written in its ``.error.json`` (the command
    line's exit-code table); ``on_event`` is called in the calling thread for every file;
    ``on_status`` after every poll with (waiting, stored, failed, last error).
    """

    def __init__(
        self,
        client: OrthancClient,
        options: WatchOptions,
        *,
        exit_code: Callable[[Pdf2DcmError], int],
        on_event: Callable[[WatchEvent], None] = lambda _event: None,
        on_status: Callable[[int, int, int, str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if options.done is None and not options.delete and not options.upload.dry_run:
            raise InputError("a hot folder needs a done folder or delete, else files are re-sent")
        self.client = client
        self.options = options
        self._exit_code = exit_code
        self._on_event = on_event
        self._on_status = on_status
        self._clock = clock
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
        self.planner = Planner(
            plan_options(options.upload, same_series=options.same_series), OrthancArchive(client)
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
        loop = _Loop(next_scan=self._clock())
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.concurrency))
        try:
            while not stop.is_set():
                if self._clock() >= loop.next_scan:
                    self._scan(loop)
                if self._clock() >= self._pause_until:
                    self._start(loop, pool)
                self._collect(loop, stop)
                if self._on_status is not None:
                    self._on_status(loop.waiting, self.stored, self.failed, self.last_error)
                if options.once and not loop.in_flight and not self._left_to_do():
                    break
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for future in loop.in_flight:
                if future.done() and not future.cancelled():
                    self._finish(future.result())
        waiting = loop.waiting
        if self.options.once and self._pending is not None:
            # The files present at the start that were neither stored nor failed: left in the
            # inbox for a retry.
            waiting = len(self._pending)
        return WatchSummary(self.stored, self.failed, waiting, self.first_error, self.planned)

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
        """The files to start now, in name order, and how many others are still settling."""
        ready, settling = self.inbox.scan()
        if self.options.once:
            present = set(self.inbox.present())
            if self._pending is None:
                self._pending = present
            self._pending &= present | busy
            ready = [name for name in ready if name in self._pending]
            settling = len(self._pending) - len(ready)
        chosen = [n for n in ready if n not in busy and not self._left_failed(n)]
        return collections.deque(chosen), settling

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
        if event.status == "stored":
            self.stored += 1
            self._pause = 0.0
        elif event.status == "planned":
            # A dry run plans each file once, and again only once it has changed.
            self.planned += 1
            self._failed_left[event.file] = self.inbox.signature(event.file)
            self._given_up.add(event.file)
        elif event.status == "failed":
            self.failed += 1
            self.last_error = str(event.error)
            self.first_error = self.first_error or event.error
            if event.destination is None:
                self._failed_left[event.file] = self.inbox.signature(event.file)
                self._given_up.add(event.file)
        elif event.status == "retry":
            self.last_error = str(event.error)
            now = self._clock()
            if now >= self._pause_until:
                # Files of one round fail together; the pause grows once per round.
                self._pause = min(
                    self.options.retry_max, max(self.options.retry_first, 2 * self._pause)
                )
                self._pause_until = now + self._pause
            event = dataclasses.replace(event, retry_in=round(self._pause_until - now, 3))
            if self.options.once:
                self._given_up.add(event.file)
                self.first_error = self.first_error or event.error
        if self._pending is not None and event.status != "retry":
            self._pending.discard(event.file)
        if event.status != "vanished":
            self._on_event(event)

    def _process(self, name: str) -> WatchEvent:
        options = self.options
        path = options.inbox / name
        job = None
        try:
            result = self._upload(path, name)
            if options.upload.dry_run:
                return WatchEvent(_now(), name, "planned", sha256=result.sha256, result=result)
            if options.forward is not None and result.id is not None:
                from .jobs import submit_store

                job = submit_store(self.client, *options.forward, [result.id])
        except Pdf2DcmError as error:
            digest = _sha256(path)
            if digest is None:
                return WatchEvent(_now(), name, "vanished")
            if is_transient(error):
                return self._retry(name, digest, error)
            return self._fail(name, path, digest, error)
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

    def _upload(self, path: Path, name: str) -> UploadResult:
        """Plan the file as a batch of one, by the planner of the run (so that files in flight
        together never share a number), and carry the plan out as upload does."""
        options = self.options
        title = options.upload.title
        file_tags = merge_tags(
            validate_tags(options.upload.tags),
            validate_tags({"DocumentTitle": title} if title is not None else {}),
            options.name_rule.tags(name) if options.name_rule else {},
            sidecar_tags(path),
        )
        reference = options.target.reference(self.client, file_tags) or options.reference
        [plan] = self.planner.plan([name], [file_tags], reference, seed_tags=file_tags)
        upload = dataclasses.replace(options.upload, tags={}, title=None, reference=reference)
        return upload_file(
            self.client, str(path), upload, source_name=name, plan=plan, planner=self.planner
        )

    def _retry(
        self,
        name: str,
        digest: str,
        error: Pdf2DcmError,
        result: UploadResult | None = None,
    ) -> WatchEvent:
        return WatchEvent(_now(), name, "retry", sha256=digest, result=result, error=error)

    def _fail(self, name: str, path: Path, digest: str, error: Pdf2DcmError) -> WatchEvent:
        options = self.options
        when = _now()
        destination: str | None = None
        if options.failed is not None:
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
    inbox copy is sent again, answered AlreadyStored, and moved)."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        import shutil

        temporary = target.with_name(f".{target.name}.part")
        shutil.copy2(source, temporary)
        os.replace(temporary, target)
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
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(records.dumps(record, indent=2) + "\n", "utf-8")
    os.replace(temporary, path)


class Journal:
    """An append-only JSON Lines record of every file: one ``write`` per line (atomic with
    ``O_APPEND``), so a crash never leaves half a line and several watchers may share it."""

    def __init__(self, path: Path) -> None:
        try:
            self._descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise FileSystemError(
                f"cannot open journal {path}: {exc.strerror}", errno=exc.errno
            ) from exc
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
