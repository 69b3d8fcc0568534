"""Textual inversion embeddings (Gal et al. 2022, "An Image is Worth One Word").

An embedding is a few learned vectors in the text encoder's token-embedding
space. Its file name (without extension) is its trigger word: where the prompt's
tokens spell that name, the vectors take those positions (``conditioning.py``).

Files come from the embeddings folders (recursive), in the formats people share:
- ``.pt`` written by A1111: ``{"string_to_param": {"*": [n, width]}, "name", "step",
  "sd_checkpoint", "sd_checkpoint_name", ...}``;
- ``.bin`` written by diffusers: ``{token: [width] or [n, width]}``;
- ``.safetensors``: ``emb_params`` (SD2-era trainers), one tensor, or SDXL's
  ``clip_l``/``clip_g`` pair (whose width matches neither SD1 nor SD2, so it is skipped there).
Pickles are opened only through the weights-only loader (``models/safe_load.py``).

An embedding whose width differs from the model's text encoder cannot be used
with it; it is listed as skipped, as A1111 lists it.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import Tensor

from modules.models.safe_load import CheckpointError, load_pickle_object, load_state_dict

EMBEDDING_SUFFIXES = (".pt", ".bin", ".safetensors")
SHORT_HASH = 12  # A1111's "TI hashes" use the first 12 hex digits of the file's sha256
_BLOCK = 1024 * 1024


class EmbeddingFormatError(ValueError):
    """A file in the embeddings folder that holds no embedding we can read."""


@dataclass(frozen=True, eq=False)
class EmbeddingInfo:
    name: str  # the trigger word: the file name without extension
    path: Path
    vectors: Tensor  # [count, width], float32, CPU
    sha256: str
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None

    @property
    def shape(self) -> int:
        """The width of one vector (A1111's ``shape``)."""
        return int(self.vectors.shape[-1])

    @property
    def count(self) -> int:
        """How many token positions the embedding takes (A1111's ``vectors``)."""
        return int(self.vectors.shape[0])

    @property
    def shorthash(self) -> str:
        return self.sha256[:SHORT_HASH]


@dataclass(frozen=True)
class EmbeddingSet:
    """The embeddings found: usable ones by name, ``skipped`` ones (wrong width for the model
    judged against) and files that could not be read (``errors``: name -> reason)."""

    loaded: Mapping[str, EmbeddingInfo] = field(default_factory=dict)
    skipped: Mapping[str, EmbeddingInfo] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)

    def for_width(self, width: int) -> "EmbeddingSet":
        """The same files judged against a text encoder of ``width``: mismatches move to skipped."""
        every = {**self.skipped, **self.loaded}
        loaded = {n: e for n, e in every.items() if e.shape == width}
        skipped = {n: e for n, e in every.items() if e.shape != width}
        return replace(self, loaded=loaded, skipped=skipped)


# ----- reading one file -----
def embedding_vectors(data: Mapping[str, object], path: Path) -> tuple[Tensor, dict[str, object]]:
    """(vectors [n, width], A1111 metadata) from a loaded file's top-level mapping."""
    if isinstance(data.get("string_to_param"), Mapping):
        params = data["string_to_param"]
        if not params:
            raise EmbeddingFormatError(f"{path.name}: 'string_to_param' is empty")
        vectors = next(iter(params.values()))
        meta = {k: data.get(k) for k in ("step", "sd_checkpoint", "sd_checkpoint_name")}
        return _as_matrix(vectors, path), meta
    if "emb_params" in data:
        return _as_matrix(data["emb_params"], path), {}
    if "clip_l" in data and "clip_g" in data:
        # SDXL: one vector set per text encoder; the concatenated width (768 + 1280) never
        # equals an SD1/SD2 encoder's, so such a file is listed as skipped there.
        return torch.cat([_as_matrix(data["clip_l"], path), _as_matrix(data["clip_g"], path)], dim=-1), {}
    tensors = [value for value in data.values() if isinstance(value, Tensor)]
    if len(data) == 1 and len(tensors) == 1:  # diffusers: {"<token>": vector}
        return _as_matrix(tensors[0], path), {}
    keys = ", ".join(map(str, list(data)[:8])) or "none"
    raise EmbeddingFormatError(
        f"{path.name}: not a textual inversion embedding (expected 'string_to_param', 'emb_params', "
        f"'clip_l'/'clip_g' or a single tensor; found keys: {keys})")


def _as_matrix(value: object, path: Path) -> Tensor:
    if not isinstance(value, Tensor) or value.dim() not in (1, 2) or value.numel() == 0:
        raise EmbeddingFormatError(f"{path.name}: the embedding is not a [vectors, width] tensor")
    matrix = value.detach().to(device="cpu", dtype=torch.float32)
    return matrix.unsqueeze(0) if matrix.dim() == 1 else matrix


def read_embedding(path: Path) -> EmbeddingInfo:
    """One embedding file, read safely; raises EmbeddingFormatError or CheckpointError."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        data: object = load_state_dict(path)
    else:
        data = load_pickle_object(path)
    if not isinstance(data, Mapping):
        raise EmbeddingFormatError(f"{path.name}: the file holds a {type(data).__name__}, not a mapping")
    vectors, meta = embedding_vectors(data, path)
    step = meta.get("step")
    return EmbeddingInfo(
        name=path.stem, path=path, vectors=vectors, sha256=_sha256(path),
        step=int(step) if isinstance(step, (int, float)) else None,
        sd_checkpoint=_text_or_none(meta.get("sd_checkpoint")),
        sd_checkpoint_name=_text_or_none(meta.get("sd_checkpoint_name")),
    )


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


# ----- the folders -----
def embedding_files(folders: Iterable[Path]) -> list[Path]:
    """Every embedding file under the folders, recursively, in a stable order."""
    found = []
    for folder in folders:
        if Path(folder).is_dir():
            found += [p for p in Path(folder).rglob("*") if p.suffix.lower() in EMBEDDING_SUFFIXES and p.is_file()]
    return sorted(found)


def _signature(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


class EmbeddingLibrary:
    """The embeddings folders as last read; ``current()`` re-reads them when any file was added,
    removed or changed (a stat walk, cheap for the few files such folders hold)."""

    def __init__(self, folders: Iterable[Path]):
        self.folders = tuple(Path(f) for f in folders)
        self._lock = threading.Lock()
        self._signatures: tuple[tuple[str, int, int], ...] | None = None
        self._by_signature: dict[tuple[str, int, int], EmbeddingInfo | str] = {}
        self._current = EmbeddingSet()

    def current(self, refresh: bool = False) -> EmbeddingSet:
        with self._lock:
            try:
                signatures = tuple(_signature(p) for p in embedding_files(self.folders))
            except OSError:  # a file vanished during the walk: read again next time
                signatures = None
            if refresh or signatures is None or signatures != self._signatures:
                self._current = self._read(signatures or ())
                self._signatures = signatures
            return self._current

    def _read(self, signatures: tuple[tuple[str, int, int], ...]) -> EmbeddingSet:
        """Files unchanged since the last read are not parsed again; later files win a name clash."""
        known = {s: self._by_signature[s] for s in signatures if s in self._by_signature}
        loaded: dict[str, EmbeddingInfo] = {}
        errors: dict[str, str] = {}
        for signature in signatures:
            entry = known.get(signature)
            if entry is None:
                entry = self._read_one(Path(signature[0]))
                known[signature] = entry
            name = Path(signature[0]).stem
            if isinstance(entry, EmbeddingInfo):
                loaded[name] = entry
            else:
                errors[name] = entry
        self._by_signature = known
        return EmbeddingSet(loaded=loaded, errors=errors)

    @staticmethod
    def _read_one(path: Path) -> EmbeddingInfo | str:
        try:
            return read_embedding(path)
        except (EmbeddingFormatError, CheckpointError, OSError) as error:
            return str(error)


def used_embeddings_field(used: Iterable[EmbeddingInfo]) -> str | None:
    """A1111's ``TI hashes`` value: ``name: shorthash`` for each embedding used, in order of use;
    ``:`` and ``,`` are removed from names as A1111 does so the list stays parseable."""
    seen: dict[str, str] = {}
    for embedding in used:
        name = embedding.name.replace(":", "").replace(",", "")
        seen.setdefault(name, embedding.shorthash)
    return ", ".join(f"{name}: {digest}" for name, digest in seen.items()) or None
