"""Reading inputs and writing outputs so that a failure never leaves half a file behind.

A regular output is written to a hidden temporary file beside the target (``.pdf2dcm-XXXXXXXX
.part``: short, so any name that fits the directory still fits, and never matching ``*.dcm`` or
``*.pdf``), synced, and moved into place only when complete; without ``overwrite`` the move is a
hard link, which fails atomically if the target appeared in the meantime, so two runs racing for
one name cannot clobber each other. A target that is not a regular file (a FIFO, ``/dev/null``,
``/dev/stdout``, ``>(cmd)``) is written straight into: renaming over it would replace the device
or pipe with a regular file.

Every refusal of the operating system becomes a :class:`FileSystemError` naming the path and
the cause, so no ``OSError`` leaves this module.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import hashlib
import io
import os
import secrets
import select
import stat
import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

from .errors import FileSystemError, InputError, OutputExistsError
from .progress import ProgressCallback, ProgressEvent

PathLike = str | os.PathLike[str]
CHUNK_SIZE = 1024 * 1024
"""Large enough that per-call overhead vanishes, small enough to keep memory flat."""
KERNEL_BLOCK = 8 * 1024 * 1024
"""Bytes per kernel copy call: as fast as larger calls, and progress still moves smoothly."""
MAX_SPOOL_SIZE = 0xFFFFFFFE
"""Default cap on a spooled (piped) input: DICOM cannot encapsulate a larger document, so an
input beyond it is an error anyway, and an endless stream must not fill the temporary disk."""
TEMPORARY_PREFIX = ".pdf2dcm-"
TEMPORARY_SUFFIX = ".part"

_HINTS = {
    errno.ENOSPC: "; free some space or write elsewhere",
    errno.EDQUOT: "; free some space or write elsewhere",
    errno.EROFS: "; write to another file system",
    errno.EACCES: "; check the permissions",
    errno.EPERM: "; check the permissions",
    errno.ENAMETOOLONG: "; use a shorter name",
    errno.ENOTDIR: "; a part of the path is a file, not a directory",
    errno.ENOENT: "; check the path",
}
_BATCH_STOPPERS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def hashed_blocks(
    source: BinaryIO,
    size: int,
    digest: Any | None,
    block_size: int,
    label: str,
    progress: ProgressCallback | None,
    short: Callable[[int], Exception],
) -> Iterator[bytes]:
    """Exactly ``size`` bytes of ``source`` in blocks, hashed into ``digest`` (if any) on the way.

    When there is more than one block to hash, hashing runs in a helper thread (hashlib
    releases the GIL) while the consumer writes or sends the block, so a checksum costs almost
    no wall time on two cores; a single block is hashed in place, since starting a thread
    would cost a small file more than the overlap saves. ``short`` makes the error raised
    when the source ends early, given the bytes read so far.
    """
    if digest is None or size <= block_size:
        yield from _blocks(source, size, digest, block_size, label, progress, short)
        return
    done = 0
    pending: concurrent.futures.Future[None] | None = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as hasher:
        while done < size:
            block = source.read(min(block_size, size - done))
            if not block:
                raise short(done)
            if pending is not None:
                pending.result()
            pending = hasher.submit(digest.update, block)
            done += len(block)
            if progress is not None:
                progress(ProgressEvent(label=label, done=done, total=size))
            yield block
        if pending is not None:
            pending.result()


def _blocks(
    source: BinaryIO,
    size: int,
    digest: Any | None,
    block_size: int,
    label: str,
    progress: ProgressCallback | None,
    short: Callable[[int], Exception],
) -> Iterator[bytes]:
    """:func:`hashed_blocks` without a helper thread."""
    done = 0
    while done < size:
        block = source.read(min(block_size, size - done))
        if not block:
            raise short(done)
        if digest is not None:
            digest.update(block)
        done += len(block)
        if progress is not None:
            progress(ProgressEvent(label=label, done=done, total=size))
        yield block


def copy_document(
    source: BinaryIO,
    out: BinaryIO,
    size: int,
    *,
    label: str,
    progress: ProgressCallback | None,
    short: Callable[[int], Exception],
    checksum: bool = True,
) -> str | None:
    """Copy exactly ``size`` bytes from ``source``'s position to ``out``; their sha256 if asked.

    Without ``checksum``, from a regular file to a plain file object (a file, a pipe, stdout)
    the kernel copies, with ``copy_file_range`` or else ``sendfile``: the bytes never enter
    this process, so a large document copies as fast as ``cp``. A checksum needs the bytes,
    so then they are read and written (and hashed in a helper thread), as they are wherever
    the kernel will not copy: an in-memory stream, an output opened for appending, a file
    system without support. Either way ``progress`` is called once per copied block, a
    source that ends before ``size`` bytes raises ``short(bytes copied)``, and ``source`` is
    left just past the copied bytes.
    """
    digest = hashlib.sha256() if checksum else None
    done = 0 if digest is not None else _kernel_copy(source, out, size, label, progress)
    copied = done
    for block in hashed_blocks(
        source, size - done, digest, CHUNK_SIZE, label, None, lambda got: short(done + got)
    ):
        out.write(block)
        copied += len(block)
        if progress is not None:
            progress(ProgressEvent(label=label, done=copied, total=size))
    return None if digest is None else digest.hexdigest()


def _kernel_copy(
    source: BinaryIO, out: BinaryIO, size: int, label: str, progress: ProgressCallback | None
) -> int:
    """Copy what the kernel will of ``size`` bytes; how many it copied (0 when it cannot).

    Whatever stops the kernel (no support between these two files, an output opened for
    appending, a source that ends early, a full disk) only ends this fast path: the plain
    copy takes over from the same byte, and reports a real failure with its own words.
    """
    source_fd, out_fd = _plain_descriptor(source), _plain_descriptor(out)
    if source_fd is None or out_fd is None or size == 0:
        return 0
    try:
        if not stat.S_ISREG(os.fstat(source_fd).st_mode):
            return 0
        start = source.tell()
    except (OSError, ValueError):
        return 0
    # The bytes written so far (the DICOM file's head) must reach the file before the copy.
    out.flush()
    done = 0
    for method in (_copy_file_range, _sendfile):
        while done < size:
            try:
                copied = method(source_fd, out_fd, min(KERNEL_BLOCK, size - done), start + done)
            except OSError:
                break
            if copied == 0:
                break
            done += copied
            if progress is not None:
                progress(ProgressEvent(label=label, done=done, total=size))
    try:
        source.seek(start + done)
    except OSError as exc:
        raise filesystem_error(exc, label, "read") from None
    _resynchronize(out)
    return done


def _copy_file_range(source: int, out: int, count: int, offset: int) -> int:
    return os.copy_file_range(source, out, count, offset)


def _sendfile(source: int, out: int, count: int, offset: int) -> int:
    return os.sendfile(out, source, offset, count)


_PLAIN_BUFFERED = (io.BufferedReader, io.BufferedWriter, io.BufferedRandom)


def _plain_descriptor(stream: BinaryIO) -> int | None:
    """The descriptor whose bytes are exactly the stream's, or None.

    Only a file object straight over a descriptor qualifies: a wrapper such as a gzip file
    also answers ``fileno()``, with the descriptor of bytes it does not return.
    """
    inner: object = stream._stream if isinstance(stream, _GuardedOutput) else stream
    raw = getattr(inner, "raw", None) if type(inner) in _PLAIN_BUFFERED else inner
    if type(raw) is not io.FileIO:
        return None
    try:
        return raw.fileno()
    except (OSError, ValueError):
        return None


def _resynchronize(out: BinaryIO) -> None:
    """Let a buffered output learn where the kernel left its descriptor (for ``tell``)."""
    inner = out._stream if isinstance(out, _GuardedOutput) else out
    with contextlib.suppress(OSError, ValueError):
        if inner.seekable():
            inner.seek(0, os.SEEK_CUR)


def filesystem_error(error: OSError, path: PathLike | None, action: str) -> FileSystemError:
    """One line for an OS refusal: what was being done to which path, the cause, and a hint.

    The cause comes from ``os.strerror`` so the line never carries a Python exception repr.
    """
    code = error.errno
    cause = os.strerror(code) if code is not None else (error.strerror or str(error))
    where = f" {os.fspath(path)}" if path is not None else ""
    hint = _HINTS.get(code, "") if code is not None else ""
    return FileSystemError(f"cannot {action}{where}: {cause}{hint}", errno=code)


def stops_batch(error: BaseException) -> bool:
    """Whether an error means the next files would fail the same way (disk full, read-only)."""
    return isinstance(error, FileSystemError) and error.errno in _BATCH_STOPPERS


def make_directory(path: PathLike) -> Path:
    """Create an output directory and its parents if missing; an existing one is fine."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileSystemError(
            f"cannot use {directory} as the output directory: it is a file", errno=errno.EEXIST
        ) from None
    except OSError as exc:
        raise filesystem_error(exc, directory, "create the directory") from None
    return directory


def display_name(target: PathLike | BinaryIO, fallback: str = "<stdin>") -> str:
    """The name messages use for a path or a stream."""
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else fallback


def is_regular_file(name: str) -> bool:
    """Whether ``name`` is a regular file, so that it may be opened and read twice.

    A look ahead at a batch (is it DICOM, is it truncated) must not open a pipe, FIFO or
    device: opening a FIFO waits for a writer, and reading one takes bytes the real read
    would then miss.
    """
    try:
        return stat.S_ISREG(os.stat(name).st_mode)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def open_input(
    source: PathLike | BinaryIO, *, name: str, limit: int | None = None
) -> Iterator[tuple[BinaryIO, int]]:
    """Yield a seekable binary file and its size.

    Pipes are spooled to an anonymous temporary file first, because both the PDF's length
    (written before its bytes) and its last bytes (the ``%%EOF`` check) are needed before
    the copy starts; spooling keeps memory flat where reading into RAM would not. A pipe that
    brings more than ``limit`` bytes (default :data:`MAX_SPOOL_SIZE`) is refused and its spool
    freed: it cannot be encoded, and an endless one would fill the disk. Regular files are
    neither spooled nor capped here. Character and block devices (``/dev/zero``, a terminal, a
    disk) are refused: they are endless, interactive or not documents.
    """
    cap = MAX_SPOOL_SIZE if limit is None else limit
    if isinstance(source, (str, os.PathLike)):
        opened = _open_path(Path(source), name, cap)
    else:
        opened = _open_stream(source, name, cap)
    with opened as (stream, size):
        yield stream, size


@contextlib.contextmanager
def replayable_inputs(
    names: Sequence[str], stdin: BinaryIO | None = None
) -> Iterator[Callable[[str], str | BinaryIO]]:
    """Inputs a batch reads twice (a check pass, then the real one): pipes are read once.

    ``-`` (``stdin``) and named FIFOs are spooled on entry; the yielded function gives, for a
    name, the name itself (a regular file, opened again) or its spool rewound to its start,
    so that the second pass reads every byte the first did.
    """
    pipes: dict[tuple[int, int], str] = {}
    for name in names:
        if name != "-" and (pipe := _fifo_id(name)) is not None:
            twin = pipes.setdefault(pipe, name)
            if names.count(name) > 1 or twin != name:
                also = "" if twin == name else f" (as {twin} too)"
                raise InputError(f"{name} is a pipe named twice{also}; it can be read only once")
    with contextlib.ExitStack() as stack:
        spools: dict[str, BinaryIO] = {}
        for name in dict.fromkeys(names):
            if name == "-":
                if stdin is None:
                    raise ValueError("'-' names stdin, and no stdin stream was given")
                spools[name] = stack.enter_context(open_input(stdin, name="<stdin>"))[0]
            elif name in pipes.values():
                spools[name] = stack.enter_context(open_input(name, name=name))[0]

        def replay(name: str) -> str | BinaryIO:
            spool = spools.get(name)
            if spool is None:
                return name
            spool.seek(0)
            return spool

        yield replay


def _fifo_id(name: str) -> tuple[int, int] | None:
    """The device and inode of the FIFO ``name`` leads to (through links), else None."""
    try:
        info = os.stat(name)
    except (OSError, ValueError):
        return None  # the real read reports it
    return (info.st_dev, info.st_ino) if stat.S_ISFIFO(info.st_mode) else None


@contextlib.contextmanager
def _open_path(path: Path, name: str, cap: int) -> Iterator[tuple[BinaryIO, int]]:
    """A named file: a regular one as it is, a FIFO spooled, a directory or a device refused.

    The type is taken from the opened descriptor, not the path, so that what is read is what
    was checked even if the path is replaced meanwhile.
    """
    with _open_file(path, name) as handle:
        try:
            info = os.fstat(handle.fileno())
        except OSError as exc:
            raise filesystem_error(exc, name, "read") from None
        if stat.S_ISDIR(info.st_mode):
            raise FileSystemError(f"{name} is a directory; give a file", errno=errno.EISDIR)
        if stat.S_ISREG(info.st_mode):
            yield handle, info.st_size
            return
        device = _device_kind(info.st_mode)
        if device is not None:
            raise InputError(
                f"{name} is a {device} device, not a file; give a file, or pipe the data in "
                "with '-'"
            )
        with _spool(handle, name, cap) as (spooled, size):
            yield spooled, size


def _open_file(path: Path, name: str) -> BinaryIO:
    """The file opened for reading, or a FileSystemError that says what to do about it."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise FileSystemError(f"{name}: no such file; check the path", errno=errno.ENOENT) from None
    except IsADirectoryError:
        raise FileSystemError(f"{name} is a directory; give a file", errno=errno.EISDIR) from None
    except PermissionError as exc:
        raise FileSystemError(
            f"{name}: permission denied; check the file's permissions", errno=exc.errno
        ) from None
    except OSError as exc:
        raise filesystem_error(exc, name, "open") from None


@contextlib.contextmanager
def _open_stream(source: BinaryIO, name: str, cap: int) -> Iterator[tuple[BinaryIO, int]]:
    """A stream given by the caller: read in place when it can seek from its start, spooled
    otherwise; a terminal or a device is refused. The stream is never closed here."""
    device = _device_kind(_stream_mode(source))
    if device is not None:
        raise InputError(
            f"{name} is a {device} device (a terminal or something like /dev/zero), not a file "
            "or a pipe; redirect a file or a pipe into it"
        )
    if _seekable(source):
        try:
            start = source.tell()
            size = source.seek(0, os.SEEK_END) - start
            source.seek(start)
        except OSError as exc:
            raise filesystem_error(exc, name, "read") from None
        if start == 0:
            yield source, size
            return
    with _spool(source, name, cap) as (spooled, size):
        yield spooled, size


def _device_kind(mode: int | None) -> str | None:
    """'character' or 'block' for a device: endless (/dev/zero), interactive or not a document."""
    if mode is None:
        return None
    if stat.S_ISCHR(mode):
        return "character"
    if stat.S_ISBLK(mode):
        return "block"
    return None


def _stream_mode(stream: BinaryIO) -> int | None:
    """The file type behind a stream, or None for one without a descriptor (in memory)."""
    try:
        return os.fstat(stream.fileno()).st_mode
    except (AttributeError, ValueError, OSError):
        return None


def _seekable(stream: BinaryIO) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def _spool(stream: BinaryIO, name: str, limit: int) -> Iterator[tuple[BinaryIO, int]]:
    """Copy a stream into an anonymous temporary file (gone when closed, even after SIGKILL)."""
    directory = tempfile.gettempdir()
    try:
        spooled = tempfile.TemporaryFile()  # noqa: SIM115 (the with below closes it)
    except OSError as exc:
        raise filesystem_error(exc, directory, "create a temporary file in") from None
    with spooled:
        size = 0
        while True:
            try:
                block = stream.read(min(CHUNK_SIZE, limit + 1 - size))
            except OSError as exc:
                raise filesystem_error(exc, name, "read") from None
            if not block:
                break
            size += len(block)
            if size > limit:
                raise InputError(
                    f"{name} goes on past {limit} bytes, the most it may hold; reading stopped "
                    "(an endless stream?)"
                )
            try:
                spooled.write(block)
            except OSError as exc:
                raise filesystem_error(
                    exc, directory, f"spool {name} to a temporary file in"
                ) from None
        spooled.seek(0)
        yield cast(BinaryIO, spooled), size


class _GuardedOutput:
    """A writable stream whose OS errors name the output; a broken pipe stays a broken pipe.

    ``BrokenPipeError`` is left alone because the reader leaving (``| head``) is the caller's
    business, with its own contract in the command line.
    """

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self._stream = stream
        self.name = name

    def write(self, data: bytes) -> int:
        try:
            return self._stream.write(data)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise filesystem_error(exc, self.name, "write") from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise filesystem_error(exc, self.name, "write") from None

    def fileno(self) -> int:
        return self._stream.fileno()

    def __getattr__(self, attribute: str) -> Any:
        # Anything but writing (tell, isatty, ...) is the stream's own business.
        return getattr(self._stream, attribute)


def check_output(target: PathLike, *, overwrite: bool) -> None:
    """Refuse now what :func:`atomic_output` would refuse for ``target`` before its first
    byte: a directory, an existing regular file without ``overwrite``, a name longer than
    the file system takes. A check of a whole batch (``--strict``) calls it for every
    output before anything is written."""
    path = Path(target)
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        parent = path.parent if path.parent.is_dir() else Path(".")
        try:
            name_max = os.pathconf(parent, "PC_NAME_MAX")
        except (OSError, ValueError):
            name_max = 255
        if len(os.fsencode(path.name)) > name_max:
            raise FileSystemError(
                f"{path}: the file name is longer than {name_max} bytes; give a shorter one",
                errno=errno.ENAMETOOLONG,
            ) from None
        return
    except OSError as exc:
        raise filesystem_error(exc, path, "write") from None
    if stat.S_ISDIR(existing.st_mode):
        raise FileSystemError(
            f"{path} is a directory; give a file name for the output", errno=errno.EISDIR
        )
    if stat.S_ISREG(existing.st_mode) and not overwrite and not _names_a_descriptor(path):
        raise OutputExistsError(f"{path} already exists; use --overwrite to replace it")


@contextlib.contextmanager
def atomic_output(target: PathLike | BinaryIO, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Yield a file to write; it appears at ``target`` only if the block completes.

    A stream target (stdout), and a path that is a FIFO, a character device or a socket, are
    written to directly: they cannot be taken back anyway, and renaming a file over them would
    destroy them. So is a name for a descriptor the shell opened (``/dev/stdout``, ``/dev/fd/3``)
    even when a regular file is behind it, appending as that descriptor would. A symbolic link
    to a regular file is written through, as ``cp`` does: the file it points to is replaced and
    the link stays. A regular file that is replaced keeps its permission bits.
    """
    if not isinstance(target, (str, os.PathLike)):
        guarded = _GuardedOutput(target, display_name(target, "<stdout>"))
        yield cast(BinaryIO, guarded)
        guarded.flush()
        return
    path = Path(target)
    try:
        existing: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise filesystem_error(exc, path, "write") from None
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            raise FileSystemError(
                f"{path} is a directory; give a file name for the output", errno=errno.EISDIR
            )
        if not stat.S_ISREG(existing.st_mode) and (overwrite or not stat.S_ISBLK(existing.st_mode)):
            with _straight_output(path) as out:
                yield out
            return
        if _names_a_descriptor(path):
            with _straight_output(path, append=True) as out:
                yield out
            return
        if not overwrite:
            raise OutputExistsError(f"{path} already exists; use --overwrite to replace it")
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    with _temporary_output(path, real, existing, overwrite=overwrite) as out:
        yield out


def _names_a_descriptor(path: Path) -> bool:
    """Whether ``path`` leads through /proc (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``).

    Such a name stands for a file the shell already opened; renaming over it would replace a
    system link (``/dev/stdout``) or write beside a file whose name may be gone.
    """
    current = os.path.join(os.path.realpath(path.parent), path.name)
    for _hop in range(40):  # the kernel's own limit on a chain of links
        if current.startswith("/proc/"):
            return True
        if not os.path.islink(current):
            return False
        target = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    return False


@contextlib.contextmanager
def _straight_output(path: Path, *, append: bool = False) -> Iterator[BinaryIO]:
    """Write into an existing FIFO, device or open descriptor as it is: no temporary, no rename."""
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_APPEND if append else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        raise filesystem_error(exc, path, "write") from None
    handle = os.fdopen(descriptor, "wb")
    try:
        guarded = _GuardedOutput(handle, os.fspath(path))
        yield cast(BinaryIO, guarded)
        guarded.flush()
    finally:
        # After a failed write the close would retry the flush and fail again: the first
        # error is the one to report.
        with contextlib.suppress(OSError):
            handle.close()


@contextlib.contextmanager
def _temporary_output(
    path: Path, real: Path, existing: os.stat_result | None, *, overwrite: bool
) -> Iterator[BinaryIO]:
    """Write beside ``real`` (``path`` with its links resolved), then publish under its name.

    Messages name ``path``, the name the user gave.
    """
    directory = real.parent
    temporary = directory / f"{TEMPORARY_PREFIX}{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
    # Whether the name on disk is ours to remove: true from before the file exists, so that a
    # signal arriving the instant after os.open returns (before any assignment, before any
    # other block is entered) still removes it. O_EXCL makes a name that was there not ours.
    ours = True
    handle: BinaryIO | None = None
    try:
        try:
            # 0o666 less the umask, as for any new file; a replaced file's bits are copied.
            descriptor = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666
            )
        except FileNotFoundError:
            ours = False
            raise FileSystemError(
                f"cannot write {path}: no such directory {directory}", errno=errno.ENOENT
            ) from None
        except OSError as exc:
            ours = False
            raise filesystem_error(exc, path, "write") from None
        # Closed by hand: on failure the close (which flushes) may fail too, and must not
        # hide the first error.
        handle = os.fdopen(descriptor, "wb")
        if existing is not None:
            _copy_ownership(handle.fileno(), existing)
        guarded = _GuardedOutput(handle, os.fspath(path))
        yield cast(BinaryIO, guarded)
        guarded.flush()
        try:
            os.fsync(handle.fileno())
            handle.close()
        except OSError as exc:
            raise filesystem_error(exc, path, "write") from None
        _publish(temporary, real, overwrite=overwrite, shown=path)
    except BaseException:
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        if ours:
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise
    _sync_directory(directory)


def _copy_ownership(descriptor: int, existing: os.stat_result) -> None:
    """Give the replacement the replaced file's mode (a 0600 file stays private) and owner."""
    try:
        os.fchmod(descriptor, stat.S_IMODE(existing.st_mode))
    except OSError as exc:
        raise filesystem_error(exc, "the replacement output", "set the permissions of") from None
    if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
        # Only root may give a file away; anyone else publishes a file of their own.
        with contextlib.suppress(OSError):
            os.fchown(descriptor, existing.st_uid, existing.st_gid)


def _sync_directory(directory: Path) -> None:
    """Make the new name durable; a file system that cannot sync directories is no error."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _publish(temporary: Path, path: Path, *, overwrite: bool, shown: Path) -> None:
    try:
        _move(temporary, path, overwrite=overwrite)
    except OSError as exc:
        raise filesystem_error(exc, shown, "write") from None


def _move(temporary: Path, path: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} already exists; use --overwrite to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # File systems without hard links: fall back to a rename after a last check.
        if path.exists():
            raise OutputExistsError(
                f"{path} already exists; use --overwrite to replace it"
            ) from None
        os.replace(temporary, path)
        return
    with contextlib.suppress(OSError):
        temporary.unlink()


def expand_directories(
    paths: Sequence[str],
    suffixes: Collection[str],
    *,
    recursive: bool = False,
    notes: list[str] | None = None,
) -> list[str]:
    """Directories become the files they hold with one of ``suffixes`` (sorted, any case).

    Files and ``-`` stay as given. Hidden files (a ``.part`` being written) are never taken.
    Without ``recursive``, a directory whose subdirectories were skipped says so in ``notes``.

    Raises
    ------
    InputError
        A directory that holds no such file.
    """
    found: list[str] = []
    for name in paths:
        path = Path(name)
        if name == "-" or not path.is_dir():
            found.append(name)
            continue
        try:
            pattern = path.rglob("*") if recursive else path.glob("*")
            files = sorted(
                p
                for p in pattern
                if p.is_file()
                and p.suffix.lower() in suffixes
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            skipped = not recursive and any(p.is_dir() for p in path.iterdir())
        except OSError as exc:
            raise filesystem_error(exc, path, "read the directory") from None
        if not files:
            hint = " (add --recursive to look in subdirectories)" if skipped else ""
            kinds = " or ".join(sorted(suffixes))
            raise InputError(f"{name} holds no {kinds} files{hint}")
        if skipped and notes is not None:
            notes.append(f"{name}: subdirectories were not looked in; add --recursive")
        found.extend(str(p) for p in files)
    return found


# --- untrusted places: operator files, and folders others can write to ---------------------

MAX_SETTINGS_FILE = 1024 * 1024
"""The largest config or secret file read (real ones are a few hundred bytes)."""
MAX_LIST_FILE = 64 * 1024 * 1024
"""The largest tags file, sidecar, manifest or ``--files-from`` list read into memory."""


def open_regular(
    path: PathLike, *, what: str, follow_links: bool = True, fifo_ok: bool = False
) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file (or, with ``fifo_ok``, a pipe).

    Opened with ``O_NONBLOCK``, so a FIFO planted where a file was expected never blocks the
    open, and, without ``follow_links``, with ``O_NOFOLLOW``, so a symbolic link is refused
    rather than followed (the last component; use it in folders that others can write to).
    The type is taken from the open descriptor (``fstat``), never from the name again, so
    what is read is what was checked; work from the returned file, not the path. Reads
    block as usual afterwards (a pipe's writer is waited for).

    Raises
    ------
    InputError
        A symbolic link (without ``follow_links``), a directory, a device, a socket, or a
        FIFO without ``fifo_ok``; the message names ``what`` and the path.
    FileSystemError
        The file cannot be opened (missing, permissions).
    """
    name = os.fspath(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= os.O_NOFOLLOW
    try:
        descriptor = os.open(name, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links:
            raise InputError(
                f"{what} {name} is a symbolic link, which is not followed here; put the file "
                "itself there"
            ) from None
        raise filesystem_error(exc, name, f"open the {what}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        kind = _file_kind(mode)
        if kind is not None and not (fifo_ok and stat.S_ISFIFO(mode)):
            raise InputError(f"{what} {name} is {kind}, not a regular file; give a file")
        if stat.S_ISFIFO(mode):
            descriptor = _wait_for_writer(descriptor)
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _wait_for_writer(descriptor: int) -> int:
    """Wait until the FIFO of ``descriptor`` has something to say: data, or a writer that
    came and went.

    Read before any writer has opened it, a FIFO gives end of file at once, so a list fed
    by a producer that starts a moment later would read as empty. On Linux a reader's poll
    reports the end (POLLHUP) only once a writer has come and gone since the open, so this
    waits for the producer, however late, and never misses one that already finished.
    A signal (Ctrl-C, SIGTERM) ends the wait as usual.
    """
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLHUP)
    while not poller.poll():
        pass
    return descriptor


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is, for a message; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    device = _device_kind(mode)
    if device is not None:
        return f"a {device} device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def read_bounded(
    source: PathLike | BinaryIO,
    *,
    what: str,
    limit: int = MAX_LIST_FILE,
    follow_links: bool = True,
    fifo_ok: bool = False,
) -> bytes:
    """The whole content of an operator's file (or a stream), refused beyond ``limit`` bytes.

    A path is opened with :func:`open_regular` (so ``/dev/zero``, a directory or, unless
    ``fifo_ok``, a FIFO are refused without blocking); a stream (stdin) is read as it is. At
    most ``limit + 1`` bytes are ever read, so an endless source costs nothing.

    Raises
    ------
    InputError
        Not a regular file (see :func:`open_regular`), or more than ``limit`` bytes.
    FileSystemError
        The file cannot be opened or read.
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        with open_regular(source, what=what, follow_links=follow_links, fifo_ok=fifo_ok) as file:
            data = _read_at_most(file, limit, what, name)
    else:
        name = display_name(source)
        if _device_kind(_stream_mode(source)) is not None:
            raise InputError(f"{what} {name} is a device, not a file or a pipe; give a file")
        data = _read_at_most(source, limit, what, name)
    if len(data) > limit:
        raise InputError(
            f"{what} {name} holds more than {limit // (1024 * 1024) or limit} "
            f"{'MiB' if limit >= 1024 * 1024 else 'bytes'}; reading stopped (an endless source?)"
        )
    return data


def _read_at_most(stream: BinaryIO, limit: int, what: str, name: str) -> bytes:
    data = bytearray()
    try:
        while len(data) <= limit and (block := stream.read(min(CHUNK_SIZE, limit + 1 - len(data)))):
            data += block
    except OSError as exc:
        raise filesystem_error(exc, name, f"read the {what}") from None
    return bytes(data)


def create_exclusive(
    directory: PathLike, *, prefix: str = TEMPORARY_PREFIX, suffix: str = TEMPORARY_SUFFIX
) -> tuple[BinaryIO, Path]:
    """A new file in ``directory``, mode 0600, under a name nobody could predict.

    Created with ``O_CREAT | O_EXCL | O_NOFOLLOW``: an existing name (a link or FIFO planted
    by someone who can write to the folder) is never opened, and the 0600 mode keeps what it
    will hold (patient data) from other users until it is renamed or chmod-ed on purpose. A
    name that exists already is retried with another random name.

    Raises
    ------
    FileSystemError
        The folder refuses the file (permissions, full, read-only).
    """
    folder = Path(directory)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _attempt in range(100):
        path = folder / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            descriptor = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise filesystem_error(exc, folder, "create a file in") from None
        return os.fdopen(descriptor, "wb"), path
    raise FileSystemError(
        f"cannot create a file in {folder}: every random name tried exists", errno=errno.EEXIST
    )
