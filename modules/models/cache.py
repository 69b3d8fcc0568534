"""An LRU of loaded checkpoints, keyed by checkpoint and VAE.

Switching to a checkpoint that is still cached costs a dictionary lookup, no
disk read. A new model is loaded *before* anything is evicted, so a load that
fails (corrupt file, unknown layout) leaves every cached model usable.

A dropped model is collected at once (``gc.collect``), as A1111 does when it
unloads one: parts of a model can sit in reference cycles that only the cyclic
collector frees. transformers' CLIPTokenizer wraps its Rust backend's ``decode``
in a closure stored on that backend, so every loaded tokenizer (about 8 MB
outside Python's heap) is such a cycle; in a server with half a million live
objects full collections are rare, so switches of checkpoints piled up evicted
tokenizers between them (server RSS +5.9% over 40 switches in
tests/benchmarks/bench_load_churn.py).
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

Key = TypeVar("Key", bound=Hashable)
Loaded = TypeVar("Loaded")


class ModelCache(Generic[Key, Loaded]):
    def __init__(self, load: Callable[[Key], Loaded], capacity: int):
        if capacity < 1:
            raise ValueError(f"model cache capacity must be at least 1, got {capacity}")
        self._load = load
        self._capacity = capacity
        self._entries: OrderedDict[Key, Loaded] = OrderedDict()
        # One lock for lookups and loads: two jobs asking for the same new
        # checkpoint must not load it twice (and double the memory).
        self._lock = threading.RLock()

    @property
    def capacity(self) -> int:
        return self._capacity

    def set_capacity(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"model cache capacity must be at least 1, got {capacity}")
        with self._lock:
            self._capacity = capacity
            self._evict_beyond(capacity)

    def acquire(self, key: Key) -> Loaded:
        """The loaded model for ``key``, loading it (and evicting the least recently used) if needed."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            model = self._load(key)  # raises before anything is evicted
            self._entries[key] = model
            self._evict_beyond(self._capacity)
            return model

    def loaded_keys(self) -> list[Key]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def unload(self, key: Key) -> bool:
        with self._lock:
            return self._drop([key] if key in self._entries else []) == 1

    def unload_where(self, predicate: Callable[[Key], bool]) -> int:
        """Drop every cached model whose key matches (e.g. all built from a file that changed)."""
        with self._lock:
            return self._drop([key for key in self._entries if predicate(key)])

    def clear(self) -> None:
        with self._lock:
            self._drop(list(self._entries))

    def _evict_beyond(self, capacity: int) -> None:
        self._drop(list(self._entries)[:max(len(self._entries) - capacity, 0)])  # least recently used first

    def _drop(self, keys: list[Key]) -> int:
        """Forget ``keys`` and collect what only they kept alive (see the module docstring)."""
        for key in keys:
            del self._entries[key]
        if keys:
            gc.collect()
        return len(keys)
