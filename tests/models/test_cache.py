"""The LRU of loaded models: reuse, eviction order, failed loads, capacity changes, threads."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from contextlib import contextmanager

import pytest

from modules.models.cache import ModelCache


class Loader:
    """Counts loads; keys starting with 'bad' fail like a corrupt file would."""

    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, key: str) -> dict:
        if key.startswith("bad"):
            raise ValueError(f"{key}: corrupt")
        time.sleep(0.01)  # make racing threads overlap
        self.loads.append(key)
        return {"model": key}


def test_cached_model_is_reused_without_loading() -> None:
    loader = Loader()
    cache = ModelCache(loader, capacity=2)
    first = cache.acquire("a")
    assert cache.acquire("a") is first
    assert loader.loads == ["a"]


def test_least_recently_used_is_evicted() -> None:
    loader = Loader()
    cache = ModelCache(loader, capacity=2)
    cache.acquire("a"), cache.acquire("b"), cache.acquire("a"), cache.acquire("c")
    assert cache.loaded_keys() == ["a", "c"]
    cache.acquire("b")
    assert loader.loads == ["a", "b", "c", "b"]


def test_failed_load_keeps_previous_models() -> None:
    cache = ModelCache(Loader(), capacity=1)
    good = cache.acquire("a")
    with pytest.raises(ValueError, match="bad.ckpt: corrupt"):
        cache.acquire("bad.ckpt")
    assert cache.loaded_keys() == ["a"]
    assert cache.acquire("a") is good


def test_shrinking_capacity_evicts_and_invalid_capacity_is_refused() -> None:
    cache = ModelCache(Loader(), capacity=3)
    for key in "abc":
        cache.acquire(key)
    cache.set_capacity(1)
    assert cache.loaded_keys() == ["c"]
    with pytest.raises(ValueError, match="at least 1"):
        cache.set_capacity(0)


def test_unload_where() -> None:
    cache = ModelCache(Loader(), capacity=3)
    for key in ("x1", "x2", "y"):
        cache.acquire(key)
    assert cache.unload_where(lambda key: key.startswith("x")) == 2
    assert cache.loaded_keys() == ["y"]


def test_concurrent_requests_for_one_model_load_it_once() -> None:
    loader = Loader()
    cache = ModelCache(loader, capacity=1)
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(cache.acquire("a"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loader.loads == ["a"]
    assert all(result is results[0] for result in results)


class Cyclic:
    """A loaded model whose parts refer to each other, as transformers' CLIPTokenizer does (its
    backend holds a closure over its own ``decode``): only the cyclic collector frees it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.me = self


@contextmanager
def no_automatic_collection():
    """Only an explicit ``gc.collect`` frees cycles inside (so the test cannot pass by luck)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize("drop", [
    lambda cache: cache.acquire("c"),  # evicted for a new model
    lambda cache: cache.set_capacity(1),
    lambda cache: cache.unload("a"),
    lambda cache: cache.unload_where(lambda key: key == "a"),
    lambda cache: cache.clear(),
], ids=["evicted", "capacity", "unload", "unload_where", "clear"])
def test_a_dropped_model_in_a_reference_cycle_is_freed_at_once(drop) -> None:
    with no_automatic_collection():
        cache = ModelCache(Cyclic, capacity=2)
        gone = weakref.ref(cache.acquire("a"))
        cache.acquire("b")
        drop(cache)
        assert gone() is None
