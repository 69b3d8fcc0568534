"""The LRU of loaded models: reuse, eviction order, failed loads, capacity changes, threads."""

from __future__ import annotations

import threading
import time

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
