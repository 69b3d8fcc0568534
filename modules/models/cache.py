"""An LRU of loaded checkpoints, keyed by checkpoint and VAE.

Switching to a checkpoint that is still cached costs a dictionary lookup, no
disk read. A new model is loaded *before* anything is evicted, so a load that
fails (corrupt file, unknown layout) leaves every cached model usable.
"""

from __future__ import annotations

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
            return self._entries.pop(key, None) is not None

    def unload_where(self, predicate: Callable[[Key], bool]) -> int:
        """Drop every cached model whose key matches (e.g. all built from a file that changed)."""
        with self._lock:
            stale = [key for key in self._entries if predicate(key)]
            for key in stale:
                del self._entries[key]
            return len(stale)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _evict_beyond(self, capacity: int) -> None:
        while len(self._entries) > capacity:
            self._entries.popitem(last=False)
