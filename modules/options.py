"""User settings (``config.json`` in the data dir): typed, validated, persisted atomically.

Field names are the AUTOMATIC1111 option keys, so the API's ``/options`` and
existing ``config.json`` files map onto them directly. Unknown keys found in
a file are kept and written back (another tool's or a newer version's
settings are not ours to drop).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from modules.fileio import write_bytes_atomically


@dataclass(frozen=True)
class Options:
    sd_model_checkpoint: str | None = None  # title; None = the first one found
    sd_vae: str = "Automatic"  # "Automatic", "None", or a VAE file name
    # How many checkpoints stay loaded; None = automatic (1 on CUDA, 2 on CPU when RAM allows).
    sd_checkpoints_limit: int | None = None
    CLIP_stop_at_last_layers: int = 1


class OptionsError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_FIELD_TYPES: Mapping[str, tuple[type, ...]] = {
    "sd_model_checkpoint": (str, type(None)),
    "sd_vae": (str,),
    "sd_checkpoints_limit": (int, type(None)),
    "CLIP_stop_at_last_layers": (int,),
}
_INT_RANGES: Mapping[str, tuple[int, int]] = {"sd_checkpoints_limit": (1, 16), "CLIP_stop_at_last_layers": (1, 12)}


def validate_option(field: str, value: Any) -> None:
    types = _FIELD_TYPES.get(field)
    if types is None:
        raise OptionsError(field, "unknown option")
    if isinstance(value, bool) or not isinstance(value, types):
        raise OptionsError(field, f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}")
    low_high = _INT_RANGES.get(field)
    if low_high and value is not None and not low_high[0] <= value <= low_high[1]:
        raise OptionsError(field, f"must be between {low_high[0]} and {low_high[1]}, got {value}")


class OptionsStore:
    """The current options and their file. Thread-safe; every update is saved before it returns."""

    def __init__(self, path: Path):
        self._path = path
        self._lock = threading.Lock()
        self._foreign: dict[str, Any] = {}
        self._current = self._read()

    @property
    def current(self) -> Options:
        return self._current

    def update(self, changes: Mapping[str, Any]) -> Options:
        for field, value in changes.items():
            validate_option(field, value)
        with self._lock:
            self._current = dataclasses.replace(self._current, **changes)
            self._save()
            return self._current

    def _read(self) -> Options:
        if not self._path.exists():
            return Options()
        try:
            stored = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise OptionsError(str(self._path), f"cannot read settings file: {error}") from error
        known = {f.name for f in dataclasses.fields(Options)}
        self._foreign = {k: v for k, v in stored.items() if k not in known}
        ours = {k: v for k, v in stored.items() if k in known}
        for field, value in ours.items():
            validate_option(field, value)
        return Options(**ours)

    def _save(self) -> None:
        data = {**self._foreign, **dataclasses.asdict(self._current)}
        write_bytes_atomically(self._path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
