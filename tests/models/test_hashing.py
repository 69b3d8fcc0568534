"""File hashes and their cache: reused while size and mtime match, rebuilt otherwise."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from modules.models.hashing import HashCache, sha256_file, short_hash


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _keep_identity(path: Path, data: bytes) -> None:
    """Rewrite ``path`` with same-size ``data`` and put its mtime back: a change the cache cannot see."""
    stat = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_sha256_file_streams_large_files(tmp_path):
    data = bytes(range(256)) * (10 * 1024 + 3)  # 2.5 MiB and a bit: several blocks and a partial one
    path = _write(tmp_path / "big.bin", data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(_write(tmp_path / "empty.bin", b"")) == hashlib.sha256(b"").hexdigest()


def test_short_hash_is_the_first_ten_hex_digits():
    digest = hashlib.sha256(b"model").hexdigest()
    assert short_hash(digest) == digest[:10]
    with pytest.raises(ValueError, match="SHA-256"):
        short_hash("abc")


def test_cache_reuses_while_size_and_mtime_match(tmp_path):
    path = _write(tmp_path / "m.safetensors", b"A" * 100)
    cache = HashCache(tmp_path / "cache" / "hashes.json")
    original = cache.sha256(path)
    assert original == hashlib.sha256(b"A" * 100).hexdigest()
    _keep_identity(path, b"B" * 100)
    # Same size and mtime: the stored hash is trusted (and the file is not read again).
    assert cache.sha256(path) == original
    assert HashCache(tmp_path / "cache" / "hashes.json").sha256(path) == original


def test_cache_file_format(tmp_path):
    path = _write(tmp_path / "m.ckpt", b"abc")
    cache_file = tmp_path / "hashes.json"
    HashCache(cache_file).sha256(path)
    stat = path.stat()
    assert json.loads(cache_file.read_text()) == {
        os.path.abspath(path): {"size": 3, "mtime_ns": stat.st_mtime_ns, "sha256": hashlib.sha256(b"abc").hexdigest()},
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_mtime_change_invalidates(tmp_path):
    path = _write(tmp_path / "m.safetensors", b"A" * 100)
    cache = HashCache(tmp_path / "hashes.json")
    cache.sha256(path)
    _keep_identity(path, b"B" * 100)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cache.sha256(path) == hashlib.sha256(b"B" * 100).hexdigest()


def test_size_change_invalidates(tmp_path):
    path = _write(tmp_path / "m.safetensors", b"A" * 100)
    cache = HashCache(tmp_path / "hashes.json")
    cache.sha256(path)
    stat = path.stat()
    path.write_bytes(b"A" * 101)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cache.sha256(path) == hashlib.sha256(b"A" * 101).hexdigest()


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2, 3]", b"\xff\xfe\x00garbage", b"",
                                     b'{"/x": {"size": "big"}, "/y": 3}'])
def test_corrupt_cache_file_is_rebuilt(tmp_path, content):
    path = _write(tmp_path / "m.safetensors", b"weights")
    cache_file = _write(tmp_path / "hashes.json", content)
    assert HashCache(cache_file).sha256(path) == hashlib.sha256(b"weights").hexdigest()
    assert os.path.abspath(path) in json.loads(cache_file.read_text())


def test_forget(tmp_path):
    path = _write(tmp_path / "m.safetensors", b"A" * 10)
    cache_file = tmp_path / "hashes.json"
    cache = HashCache(cache_file)
    cache.sha256(path)
    _keep_identity(path, b"B" * 10)
    cache.forget(path)
    assert json.loads(cache_file.read_text()) == {}
    assert cache.sha256(path) == hashlib.sha256(b"B" * 10).hexdigest()


def test_relative_and_absolute_paths_share_an_entry(tmp_path, monkeypatch):
    path = _write(tmp_path / "m.safetensors", b"A" * 10)
    cache = HashCache(tmp_path / "hashes.json")
    cache.sha256(path)
    _keep_identity(path, b"B" * 10)
    monkeypatch.chdir(tmp_path)
    assert cache.sha256(Path("m.safetensors")) == hashlib.sha256(b"A" * 10).hexdigest()


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        HashCache(tmp_path / "hashes.json").sha256(tmp_path / "gone.safetensors")
