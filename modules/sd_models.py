"""A1111 compatibility surface: ``modules.sd_models`` (``checkpoints_list``, ``checkpoint_aliases``,
``CheckpointInfo``, ``select_checkpoint``, ``model_hash``, ``list_models``), read from the bound
Runtime's checkpoint list. ``list_models`` refreshes the two dicts in place, as A1111 does."""

from __future__ import annotations

import hashlib
import os
import weakref
from typing import Any
from pathlib import Path

from modules import shared


def model_hash(filename: str) -> str:
    """A1111's old 8-digit hash: SHA-256 of the 64 KiB at offset 1 MiB ("NOFILE" when unreadable)."""
    try:
        with open(filename, "rb") as handle:
            handle.seek(0x100000)
            return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]
    except OSError:
        return "NOFILE"


class CheckpointInfo:
    """The fields extensions read from A1111's ``CheckpointInfo``."""

    def __init__(self, filename: str, *, name: str | None = None, sha256: str | None = None,
                 title: str | None = None, model_name: str | None = None):
        self.filename = os.path.abspath(filename)
        self.name = name or os.path.basename(filename)
        self.name_for_extra = os.path.splitext(os.path.basename(filename))[0]
        self.model_name = model_name or os.path.splitext(self.name.replace("/", "_").replace("\\", "_"))[0]
        self.hash = model_hash(filename)
        self.sha256 = sha256
        self.shorthash = sha256[:10] if sha256 else None
        self.title = title or (f"{self.name} [{self.shorthash}]" if self.shorthash else self.name)
        self.short_title = f"{self.name_for_extra} [{self.shorthash}]" if self.shorthash else self.name_for_extra
        self.ids = [i for i in (self.title, self.name, self.model_name, self.name_for_extra, self.hash,
                                self.sha256, self.shorthash, self.short_title) if i]
        self.metadata: dict = {}

    @classmethod
    def from_file(cls, file) -> "CheckpointInfo":
        """From our ``CheckpointFile``."""
        return cls(str(file.path), name=file.name, sha256=file.sha256, title=file.title, model_name=file.model_name)

    def calculate_shorthash(self) -> str | None:
        from modules import hashes
        self.sha256 = hashes.sha256(self.filename, f"checkpoint/{self.name}")
        self.shorthash = self.sha256[:10]
        return self.shorthash

    def register(self) -> None:
        checkpoints_list[self.title] = self
        for alias in self.ids:
            checkpoint_aliases[alias] = self


class SdModelView:
    """What extensions read from A1111's ``shared.sd_model`` (its LatentDiffusion object): which
    checkpoint it is and which family. ``loaded`` is the engine's model (``LoadedModel``) while it
    is loaded (held weakly: a view must not keep an evicted model in memory)."""

    def __init__(self, loaded: Any):
        family = loaded.detected.family.value
        self._loaded = weakref.ref(loaded)
        self.sd_checkpoint_info = CheckpointInfo.from_file(loaded.checkpoint)
        self.sd_model_checkpoint = self.sd_checkpoint_info.filename
        self.sd_model_hash = loaded.checkpoint.shorthash
        self.is_sd1, self.is_sd2 = family.startswith("SD1"), family.startswith("SD2")
        self.is_sdxl = self.is_sd3 = self.is_ssd = False  # families this engine does not load
        self.cond_stage_key = "txt"
        self.parameterization = "v" if loaded.detected.prediction.value == "v" else "eps"

    @property
    def loaded(self) -> Any:
        return self._loaded()


# One view per loaded model, made once: a view reads the file (A1111's old hash) and extensions read
# ``shared.sd_model`` often; dropped with the model.
_views: "weakref.WeakKeyDictionary[Any, SdModelView]" = weakref.WeakKeyDictionary()


def view_of(loaded: Any) -> SdModelView:
    """A1111's ``sd_model`` object for one of the engine's loaded models."""
    if loaded not in _views:
        _views[loaded] = SdModelView(loaded)
    return _views[loaded]


checkpoints_list: dict[str, CheckpointInfo] = {}
checkpoint_aliases: dict[str, CheckpointInfo] = {}
checkpoints_loaded: dict = {}


def list_models() -> None:
    """Re-reads the checkpoint list from the bound Runtime (empty when none is bound)."""
    checkpoints_list.clear()
    checkpoint_aliases.clear()
    runtime = shared.bound_runtime()
    if runtime is None:
        return
    for file in runtime.checkpoints(refresh=True):
        CheckpointInfo.from_file(file).register()


def checkpoint_tiles(use_short: bool = False) -> list[str]:
    return [info.short_title if use_short else info.title for info in checkpoints_list.values()]


def get_closet_checkpoint_match(search_string: str) -> CheckpointInfo | None:  # A1111's spelling
    """Exact title or alias, else the first title containing the string."""
    if not search_string:
        return None
    found = checkpoint_aliases.get(search_string)
    if found is not None:
        return found
    return next((info for title, info in sorted(checkpoints_list.items(), key=lambda kv: len(kv[0]))
                 if search_string in title), None)


def select_checkpoint() -> CheckpointInfo | None:
    """The checkpoint generation uses now (the Runtime's choice), or None when there is none."""
    runtime = shared.bound_runtime()
    if runtime is None:
        return next(iter(checkpoints_list.values()), None)
    try:
        return CheckpointInfo.from_file(runtime.resolve_checkpoint())
    except LookupError:
        return None


def reload_model_weights(sd_model=None, info=None, *args, **kwargs):
    """Loading happens per job here; choosing a checkpoint goes through the setting."""
    runtime = shared.bound_runtime()
    if runtime is not None and info is not None:
        runtime.set_default_checkpoint(info.title)
    return sd_model


def get_checkpoint_path(info: CheckpointInfo) -> Path:
    return Path(info.filename)
