"""Reading inputs and writing outputs so that a failure never leaves half a file behind.

Outputs are written to a hidden temporary file beside the target and moved into place only
when complete; without ``overwrite`` the move is a hard link, which fails atomically if the
target appeared in the meantime, so two runs racing for one name cannot clobber each other.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .errors import InputError, OutputExistsError
from .progress import ProgressCallback, ProgressEvent

PathLike = str | os.PathLike[str]
CHUNK_SIZE = 1024 * 1024
"""Large enough that per-call overhead vanishes, small enough to keep memory flat."""


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

    Hashing runs in a helper thread (hashlib releases the GIL) while the consumer writes or
    sends the block, so a checksum costs almost no wall time on two cores. ``short`` makes
    the error raised when the source ends early, given the bytes read so far.
    """
    done = 0
    pending: concurrent.futures.Future[None] | None = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as hasher:
        while done < size:
            block = source.read(min(block_size, size - done))
            if not block:
                raise short(done)
            if pending is not None:
                pending.result()
            if digest is not None:
                pending = hasher.submit(digest.update, block)
            done += len(block)
            if progress is not None:
                progress(ProgressEvent(label=label, done=done, total=size))
            yield block
        if pending is not None:
            pending.result()


def display_name(target: PathLike | BinaryIO, fallback: str = "<stdin>") -> str:
    """The name messages use for a path or a stream."""
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else fallback


@contextlib.contextmanager
def open_input(source: PathLike | BinaryIO, *, name: str) -> Iterator[tuple[BinaryIO, int]]:
    """Yield a seekable binary file and its size.

    Pipes are spooled to an anonymous temporary file first, because both the PDF's length
    (written before its bytes) and its last bytes (the ``%%EOF`` check) are needed before
    the copy starts; spooling keeps memory flat where reading into RAM would not.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise InputError(f"{name}: no such file; check the path") from None
        except IsADirectoryError:
            raise InputError(f"{name} is a directory; give a file") from None
        except PermissionError:
            raise InputError(f"{name}: permission denied; check the file's permissions") from None
        except OSError as exc:
            raise InputError(f"{name}: cannot open ({exc.strerror})") from exc
        with handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise InputError(f"{name} is a directory; give a file")
            if stat.S_ISREG(info.st_mode):
                yield handle, info.st_size
                return
            with _spool(handle) as (spooled, size):
                yield spooled, size
        return
    if _seekable(source):
        start = source.tell()
        size = source.seek(0, os.SEEK_END) - start
        source.seek(start)
        if start == 0:
            yield source, size
            return
    with _spool(source) as (spooled, size):
        yield spooled, size


def _seekable(stream: BinaryIO) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def _spool(stream: BinaryIO) -> Iterator[tuple[BinaryIO, int]]:
    with tempfile.TemporaryFile() as spooled:
        shutil.copyfileobj(stream, spooled, CHUNK_SIZE)
        size = spooled.tell()
        spooled.seek(0)
        yield spooled, size


@contextlib.contextmanager
def atomic_output(target: PathLike | BinaryIO, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Yield a file to write; it appears at ``target`` only if the block completes.

    A stream target (stdout) is written to directly: it cannot be taken back anyway.
    """
    if not isinstance(target, (str, os.PathLike)):
        yield target
        return
    path = Path(target)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} already exists; use --overwrite to replace it")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a file name for the output")
    directory = path.parent
    temporary = directory / f".{path.name}.{secrets.token_hex(4)}.part"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileNotFoundError:
        raise InputError(f"{directory}: no such directory for the output") from None
    except PermissionError:
        raise InputError(f"{directory}: permission denied for writing the output") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
        _publish(temporary, path, overwrite=overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def _publish(temporary: Path, path: Path, *, overwrite: bool) -> None:
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
    temporary.unlink()
