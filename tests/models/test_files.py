"""Scanning model folders, A1111-style names and titles, and resolving a user's choice."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modules.models.files import CheckpointFile, find_checkpoint, scan_checkpoints, scan_vae_files
from modules.models.hashing import HashCache


def _put(root: Path, name: str, content: bytes | None = None) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if content is not None else name.encode())
    return path


def _short(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:10]


@pytest.fixture
def hashes(tmp_path) -> HashCache:
    return HashCache(tmp_path / "cache" / "hashes.json")


@pytest.fixture
def checkpoint_dir(tmp_path) -> Path:
    root = tmp_path / "Stable-diffusion"
    for name in ("b.safetensors", "sub/a.ckpt", "sub/deeper/C.PT", "Zeta.SAFETENSORS", "alpha.safetensors",
                 "notes.txt", "alpha.yaml", "model.onnx", ".hidden.safetensors", ".trash/old.safetensors",
                 "sd15.vae.safetensors", "sd15.vae.pt", "loading.safetensors", "loading.safetensors.aria2",
                 "partial.safetensors.part", "x.ckpt.crdownload"):
        _put(root, name)
    return root


def test_scan_is_recursive_sorted_and_filtered(checkpoint_dir, hashes):
    files = scan_checkpoints([checkpoint_dir], [], hashes)
    assert [f.name for f in files] == [
        "alpha.safetensors", "b.safetensors", "sub/a.ckpt", "sub/deeper/C.PT", "Zeta.SAFETENSORS",
    ]


def test_names_titles_and_model_names(checkpoint_dir, hashes):
    by_name = {f.name: f for f in scan_checkpoints([checkpoint_dir], [], hashes)}
    deep = by_name["sub/deeper/C.PT"]
    assert deep.path == checkpoint_dir / "sub" / "deeper" / "C.PT"
    assert deep.sha256 == hashlib.sha256(b"sub/deeper/C.PT").hexdigest()
    assert deep.shorthash == _short("sub/deeper/C.PT")
    assert deep.title == f"sub/deeper/C.PT [{_short('sub/deeper/C.PT')}]"
    assert deep.model_name == "sub_deeper_C"  # what A1111 writes after "Model: "
    assert by_name["alpha.safetensors"].model_name == "alpha"
    assert by_name["alpha.safetensors"].title == f"alpha.safetensors [{_short('alpha.safetensors')}]"


def test_several_folders_and_explicit_files(tmp_path, checkpoint_dir, hashes):
    other = tmp_path / "more"
    _put(other, "extra/m.safetensors")
    outside = _put(tmp_path / "elsewhere" / "deep", "given.ckpt")
    inside = checkpoint_dir / "b.safetensors"
    files = scan_checkpoints([checkpoint_dir, other, tmp_path / "missing-folder"], [outside, inside], hashes)
    names = [f.name for f in files]
    assert "extra/m.safetensors" in names
    assert "given.ckpt" in names  # an explicit file is named by its file name
    assert names.count("b.safetensors") == 1  # found both ways, listed once under its folder name
    assert [f.path for f in files if f.name == "given.ckpt"] == [outside]


def test_explicit_file_errors(tmp_path, hashes):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        scan_checkpoints([], [tmp_path / "nope.safetensors"], hashes)
    with pytest.raises(ValueError, match=r"model\.onnx"):
        scan_checkpoints([], [_put(tmp_path, "model.onnx")], hashes)


def test_link_loop_is_scanned_once(tmp_path, hashes):
    root = tmp_path / "models"
    _put(root, "sub/m.safetensors")
    os.symlink(root, root / "sub" / "loop")
    assert [f.name for f in scan_checkpoints([root], [], hashes)] == ["sub/m.safetensors"]


def test_scan_uses_the_hash_cache(tmp_path, hashes):
    root = tmp_path / "models"
    path = _put(root, "m.safetensors", b"A" * 32)
    first = scan_checkpoints([root], [], hashes)[0]
    stat = path.stat()
    path.write_bytes(b"B" * 32)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert scan_checkpoints([root], [], hashes)[0].sha256 == first.sha256


def test_vae_scan(tmp_path, hashes):
    root = tmp_path / "VAE"
    for name in ("vae-ft-mse.safetensors", "kl-f8.pt", "sub/anything.vae.ckpt", "readme.md", "x.bin", ".h.pt"):
        _put(root, name)
    assert [f.name for f in scan_vae_files([root], hashes)] == [
        "kl-f8.pt", "sub/anything.vae.ckpt", "vae-ft-mse.safetensors",
    ]


# ----- find_checkpoint -----

@pytest.fixture
def files(checkpoint_dir, hashes) -> list[CheckpointFile]:
    return scan_checkpoints([checkpoint_dir], [], hashes)


@pytest.mark.parametrize("query", [
    f"sub/deeper/C.PT [{_short('sub/deeper/C.PT')}]",  # title
    "sub/deeper/C.PT",  # name
    "sub\\deeper\\C.PT",  # name typed with Windows separators
    "sub/deeper/C",  # name without extension
    "sub_deeper_C",  # model name, as infotexts carry it
    "C",  # file stem
    _short("sub/deeper/C.PT"),  # short hash
    _short("sub/deeper/C.PT").upper(),
    hashlib.sha256(b"sub/deeper/C.PT").hexdigest(),  # full sha256
])
def test_find_checkpoint_by_every_identifier(files, query):
    assert find_checkpoint(files, query).name == "sub/deeper/C.PT"


def test_find_prefers_the_more_specific_rule(tmp_path, hashes):
    root = tmp_path / "models"
    _put(root, "x/y.safetensors")
    _put(root, "x_y.safetensors")  # its name without extension is the other file's model name
    files = scan_checkpoints([root], [], hashes)
    assert find_checkpoint(files, "x_y").name == "x_y.safetensors"
    assert find_checkpoint(files, "x/y").name == "x/y.safetensors"


def test_unknown_checkpoint_lists_the_titles(files):
    with pytest.raises(KeyError) as caught:
        find_checkpoint(files, "missing-model")
    message = caught.value.args[0]
    assert "'missing-model'" in message
    for file in files:
        assert file.title in message


def test_unknown_checkpoint_with_no_files():
    with pytest.raises(KeyError, match="none"):
        find_checkpoint([], "anything")
