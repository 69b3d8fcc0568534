"""A1111 compatibility surface: ``modules.hashes`` (``sha256``, ``sha256_from_cache``,
``calculate_sha256``, ``addnet_hash_safetensors``), over our hash cache when the Runtime is bound."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from modules import shared
from modules.models.hashing import sha256_file

_BLOCK = 1024 * 1024


def calculate_sha256(filename: str) -> str:
    """Hex SHA-256 of the whole file."""
    return sha256_file(Path(filename))


def addnet_hash_safetensors(b: BinaryIO) -> str:
    """SHA-256 of a safetensors file's tensor bytes, after the 8-byte length and the JSON header
    (kohya-ss' "addnet" hash: editing the metadata does not change it)."""
    digest = hashlib.sha256()
    b.seek(0)
    header_size = int.from_bytes(b.read(8), "little")
    b.seek(8 + header_size)
    while block := b.read(_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def sha256_from_cache(filename: str, title: str = "", use_addnet_hash: bool = False) -> str | None:
    """The remembered hash while the file is unchanged, else None (nothing is read). The addnet hash
    is not cached here, so it is always None."""
    runtime = shared.bound_runtime()
    if runtime is None or use_addnet_hash:
        return None
    return runtime.hashes.cached(Path(filename))


def sha256(filename: str, title: str = "", use_addnet_hash: bool = False) -> str:
    """The file's SHA-256 (the addnet variant on request), remembered in the hash cache when bound."""
    if use_addnet_hash:
        with open(filename, "rb") as handle:
            return addnet_hash_safetensors(handle)
    runtime = shared.bound_runtime()
    return runtime.hashes.sha256(Path(filename)) if runtime is not None else calculate_sha256(filename)
