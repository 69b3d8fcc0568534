"""Atomic file writes: a reader sees the old file or the complete new one, never a part."""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, IO, Iterable, Iterator

# write_atomically's temporary names: ".<target name>.<mkstemp's 8 random characters>.tmp".
_TEMPORARY_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageFullError(OSError):
    """A write failed because the disk (or the user's quota) is full; the message names the folder,
    so the answer says what to free instead of showing a bare errno."""


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    The temporary file lives in the same directory so ``os.replace`` is a
    same-filesystem rename (atomic on POSIX and Windows). On any error the
    temporary file is removed and ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in _DISK_FULL and not isinstance(error, StorageFullError):
            raise StorageFullError(error.errno, f"disk full: no space left in {path.parent} to save {path.name} "
                                                f"(files saved before it are kept)") from error
        raise


def write_bytes_atomically(path: Path, data: bytes) -> None:
    write_atomically(path, lambda handle: handle.write(data))


def remove_stale_temporaries(folders: Iterable[Path], recursive: bool, older_than_seconds: float = 60.0) -> list[Path]:
    """Delete the temporary files that writes killed mid-way (SIGKILL, power loss) left in
    ``folders`` (and below, when ``recursive``); files younger than ``older_than_seconds`` may
    belong to a live writer and stay. The paths removed."""
    removed: list[Path] = []
    cutoff = time.time() - older_than_seconds
    for folder in folders:
        for parent, subfolders, names in os.walk(folder):
            if not recursive:
                subfolders.clear()
            for name in names:
                path = Path(parent) / name
                if _TEMPORARY_NAME.fullmatch(name) and _modified_before(path, cutoff):
                    path.unlink(missing_ok=True)
                    removed.append(path)
    return removed


def _modified_before(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) while the block runs, so
    processes sharing a data dir (a server and a command-line run) take turns. Where the OS has no
    ``flock`` (Windows), the block runs unlocked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def set_aside(path: Path, now: float | None = None) -> Path:
    """Rename an unreadable file to ``<name>.corrupt-<YYYYmmdd-HHMMSS>`` beside it, so a start can
    go on with defaults while the user keeps the file to inspect or repair. The new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    suffix = 1
    while target.exists():  # two set-asides within one second keep both files
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{suffix}")
        suffix += 1
    os.replace(path, target)
    return target
