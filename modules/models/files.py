"""Checkpoint and VAE files on disk: scanning, naming and resolving a user's choice.

Names and titles follow the AUTOMATIC1111 web UI so that saved settings,
infotexts and API clients keep working: a file's *name* is its path relative
to the scanned folder with forward slashes, its *title* is
``"{name} [{first 10 hex of sha256}]"`` (the dropdown entry and the
``sd_model_checkpoint`` option), and its *model name* is the name without
extension with folder separators turned into ``_`` (the ``Model:`` field of
infotexts).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from modules.models.hashing import HashCache, short_hash

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt")
VAE_SUFFIXES = (".safetensors", ".pt", ".ckpt")
# A1111 lists `<name>.vae.<ext>` files as VAEs, never as checkpoints.
_VAE_MARKER = ".vae."
# Download managers write beside the target: aria2 keeps `<file>.aria2` until the file is complete.
_DOWNLOAD_CONTROL_SUFFIXES = (".aria2",)
# New files up to this size are hashed during the scan (about 0.1 s); larger ones in the background.
INLINE_HASH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CheckpointFile:
    """A model file and the names it is known by."""

    path: Path  # absolute
    name: str  # relative to its folder, forward slashes: "sub/model.safetensors"
    sha256: str | None  # None while a new file is still being hashed
    shorthash: str | None
    title: str  # "sub/model.safetensors [0123456789]", or the bare name until the hash is known (as A1111)
    model_name: str  # "sub_model", as A1111 writes it after "Model: "

    @classmethod
    def from_file(cls, path: Path, name: str, sha256: str | None) -> "CheckpointFile":
        shorthash = short_hash(sha256) if sha256 is not None else None
        return cls(
            path=Path(os.path.abspath(path)), name=name, sha256=sha256, shorthash=shorthash,
            title=f"{name} [{shorthash}]" if shorthash else name, model_name=_model_name(name),
        )

    def with_hash(self, sha256: str) -> "CheckpointFile":
        return CheckpointFile.from_file(self.path, self.name, sha256)

    @property
    def stem(self) -> str:
        """The file name without folders or extension."""
        return self.path.name[: -len(self.path.suffix)] if self.path.suffix else self.path.name


def _model_name(name: str) -> str:
    without_extension = name[: -len(Path(name).suffix)] if Path(name).suffix else name
    return without_extension.replace("/", "_").replace("\\", "_")


def scan_checkpoints(dirs: Sequence[Path], extra_files: Sequence[Path], hashes: HashCache) -> list[CheckpointFile]:
    """Checkpoints under ``dirs`` (recursive) plus ``extra_files`` (``--ckpt``), sorted by name.

    Files under a folder are named relative to it; explicit files by their file
    name. Hidden files and folders, ``*.vae.*`` files and unfinished downloads
    are skipped. A file found both ways is listed once, with its folder name.
    """
    found = [(path, name) for path, name in _scan_dirs(dirs, CHECKPOINT_SUFFIXES)
             if _VAE_MARKER not in path.name.lower()]
    seen = {path for path, _ in found}
    for extra in extra_files:
        path = Path(os.path.abspath(_checked_explicit_file(Path(extra))))
        if path not in seen:
            found.append((path, path.name))
            seen.add(path)
    return _described(found, hashes)


def scan_vae_files(dirs: Sequence[Path], hashes: HashCache) -> list[CheckpointFile]:
    """VAE files under ``dirs`` (``models/VAE``), recursive, sorted by name."""
    return _described(list(_scan_dirs(dirs, VAE_SUFFIXES)), hashes)


def find_checkpoint(files: Sequence[CheckpointFile], query: str) -> CheckpointFile:
    """The file a user's string names, tried as A1111 does, most specific first.

    Exact title, then name, name without extension, model name, file stem,
    short hash, full sha256. Within one rule the first file in list order wins
    (two folders may hold files with the same stem). Unknown: ``KeyError``
    whose message lists the available titles.
    """
    wanted = query.strip()
    as_name = wanted.replace("\\", "/")
    titled = _TITLE.fullmatch(as_name)
    rules = (
        lambda f: f.title == wanted,
        # A saved title of a file whose hash is still being computed (or was lost with the cache).
        lambda f: titled is not None and f.name == titled[1] and f.shorthash in (None, titled[2]),
        lambda f: f.name == as_name,
        lambda f: _without_extension(f.name) == as_name,
        lambda f: f.model_name == wanted,
        lambda f: f.stem == wanted,
        lambda f: f.shorthash == wanted.lower(),
        lambda f: f.sha256 == wanted.lower(),
    )
    for matches in rules:
        for file in files:
            if matches(file):
                return file
    titles = "; ".join(f.title for f in files) or "none (no model files were found)"
    raise KeyError(f"no checkpoint matches {query!r}; available: {titles}")


_TITLE = re.compile(r"(.+) \[([0-9a-f]{10})\]")


def _without_extension(name: str) -> str:
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix else name


def _described(found: list[tuple[Path, str]], hashes: HashCache) -> list[CheckpointFile]:
    """Files with their hashes when known or quick to compute; a large new file is listed without
    one, to be hashed in the background (``BackgroundHasher``), so a scan never waits for it."""
    files = [CheckpointFile.from_file(path, name, _known_or_quick_hash(path, hashes)) for path, name in found]
    return sorted(files, key=lambda f: (f.name.lower(), f.name, str(f.path)))


def _known_or_quick_hash(path: Path, hashes: HashCache) -> str | None:
    known = hashes.cached(path)
    if known is not None:
        return known
    try:
        small = path.stat().st_size <= INLINE_HASH_BYTES
    except OSError:
        return None
    return hashes.sha256(path) if small else None


def _checked_explicit_file(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file given on the command line does not exist or is not a file: {path}")
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"checkpoint file given on the command line has an unsupported type: {path} "
                         f"(expected {', '.join(CHECKPOINT_SUFFIXES)})")
    return path


def _scan_dirs(dirs: Sequence[Path], suffixes: tuple[str, ...]) -> Iterator[tuple[Path, str]]:
    for root in dirs:
        root = Path(os.path.abspath(root))
        for path in _walk_files(root):
            if path.suffix.lower() in suffixes and not _is_partial_download(path):
                yield path, path.relative_to(root).as_posix()


def _walk_files(root: Path) -> Iterator[Path]:
    """Files under ``root``, following folder links once each, skipping hidden files and folders."""
    visited: set[str] = set()
    for folder, subfolders, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a link loop or a folder linked twice
            subfolders.clear()
            continue
        visited.add(real)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for filename in sorted(filenames):
            if not filename.startswith("."):
                yield Path(folder) / filename


def _is_partial_download(path: Path) -> bool:
    return any(path.with_name(path.name + suffix).exists() for suffix in _DOWNLOAD_CONTROL_SUFFIXES)
