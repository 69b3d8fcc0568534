"""SHA-256 of model files, with a persistent cache keyed by (path, size, mtime).

The full-file SHA-256 is what the AUTOMATIC1111 web UI shows: its first 10 hex
digits are the "Model hash" in infotexts and the ``[shorthash]`` in checkpoint
titles. Hashing a 2 GB checkpoint takes seconds, so the result is kept in a
JSON file and reused while the file's size and modification time are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from modules.fileio import write_bytes_atomically

_BLOCK_SIZE = 1024 * 1024
_SHORT_HASH_LENGTH = 10
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

logger = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (memory stays flat for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK_SIZE):
            digest.update(block)
    return digest.hexdigest()


def short_hash(sha256: str) -> str:
    """The first 10 hex digits of a SHA-256: A1111's "Model hash" and title suffix."""
    if not _SHA256_HEX.fullmatch(sha256):
        raise ValueError(f"not a lowercase hex SHA-256 (64 digits): {sha256!r}")
    return sha256[:_SHORT_HASH_LENGTH]


@dataclass(frozen=True)
class _Entry:
    size: int
    mtime_ns: int
    sha256: str


def _file_identity(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def _parse_entry(raw: object) -> _Entry | None:
    """An entry of the cache file, or None if it is malformed (then it is recomputed)."""
    if not isinstance(raw, dict):
        return None
    size, mtime_ns, sha256 = raw.get("size"), raw.get("mtime_ns"), raw.get("sha256")
    if not (isinstance(size, int) and isinstance(mtime_ns, int) and isinstance(sha256, str)):
        return None
    return _Entry(size, mtime_ns, sha256) if _SHA256_HEX.fullmatch(sha256) else None


def _read_cache_file(cache_file: Path) -> dict[str, _Entry]:
    """The entries of ``cache_file``; a missing or corrupt file gives an empty cache, never an error."""
    try:
        raw = json.loads(cache_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:  # ValueError covers bad JSON and bad UTF-8
        logger.warning("ignoring unreadable hash cache %s (it will be rebuilt): %s", cache_file, error)
        return {}
    if not isinstance(raw, dict):
        logger.warning("ignoring hash cache %s: top level is not a JSON object", cache_file)
        return {}
    entries = {key: _parse_entry(value) for key, value in raw.items()}
    return {key: entry for key, entry in entries.items() if entry is not None}


class HashCache:
    """SHA-256 of files, remembered in ``cache_file`` as ``{abs path: {size, mtime_ns, sha256}}``.

    An entry is reused only while the file's size and mtime (in ns) match;
    anything else rehashes the file. Saves are atomic (temporary file in the
    same folder, fsync, rename), so a crash never leaves a half-written cache.
    """

    def __init__(self, cache_file: Path):
        self.cache_file = Path(cache_file)
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] | None = None  # read on first use

    def sha256(self, path: Path) -> str:
        key = _cache_key(path)
        size, mtime_ns = _file_identity(Path(key))
        with self._lock:
            entry = self._loaded().get(key)
        if entry is not None and (entry.size, entry.mtime_ns) == (size, mtime_ns):
            return entry.sha256
        # Hash outside the lock: a large file takes seconds and other lookups must not wait.
        digest = sha256_file(Path(key))
        if _file_identity(Path(key)) != (size, mtime_ns):
            return digest  # the file changed while it was read: do not remember a hash of a moving target
        with self._lock:
            self._loaded()[key] = _Entry(size, mtime_ns, digest)
            self._save()
        return digest

    def cached(self, path: Path) -> str | None:
        """The remembered SHA-256 of ``path`` while its size and mtime match, else None (nothing is read)."""
        key = _cache_key(path)
        try:
            size, mtime_ns = _file_identity(Path(key))
        except OSError:
            return None
        with self._lock:
            entry = self._loaded().get(key)
        return entry.sha256 if entry is not None and (entry.size, entry.mtime_ns) == (size, mtime_ns) else None

    def forget(self, path: Path) -> None:
        """Drop the entry for ``path`` (e.g. the file was deleted or replaced)."""
        with self._lock:
            if self._loaded().pop(_cache_key(path), None) is not None:
                self._save()

    def _loaded(self) -> dict[str, _Entry]:
        if self._entries is None:
            self._entries = _read_cache_file(self.cache_file)
        return self._entries

    def _save(self) -> None:
        payload = {key: asdict(entry) for key, entry in sorted(self._loaded().items())}
        data = json.dumps(payload, indent=1).encode("utf-8")
        try:
            write_bytes_atomically(self.cache_file, data)
        except OSError as error:
            # A read-only data folder costs re-hashing on the next start, nothing else.
            logger.warning("could not save hash cache %s: %s", self.cache_file, error)


def _cache_key(path: Path) -> str:
    return os.path.abspath(path)


class BackgroundHasher:
    """Hashes files one at a time in a daemon thread, so that listing models and generating never
    wait for a large new file to be read; ``on_hashed()`` is called after each file."""

    def __init__(self, hashes: HashCache, on_hashed):
        self._hashes = hashes
        self._on_hashed = on_hashed
        self._lock = threading.Lock()
        self._pending: dict[str, None] = {}  # ordered set of paths
        self._thread: threading.Thread | None = None

    def request(self, paths) -> None:
        with self._lock:
            self._pending.update(dict.fromkeys(str(path) for path in paths))
            if self._pending and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="model-hasher", daemon=True)
                self._thread.start()

    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                path = next(iter(self._pending))
            try:
                self._hashes.sha256(Path(path))
            except OSError as error:  # deleted or unreadable since the scan: it is listed without a hash
                logger.warning("could not hash %s: %s", path, error)
            with self._lock:
                self._pending.pop(path, None)
            self._on_hashed()
