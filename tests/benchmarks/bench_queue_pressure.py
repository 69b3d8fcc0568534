"""Benchmark: how the server holds up under queue pressure, on a live server with a tiny model.

    venv/bin/python tests/benchmarks/bench_queue_pressure.py

Prints: the latency of /progress, /options and the page while 50 txt2img requests wait; the
process RSS before and after a sequence of large img2img requests; and how long the worker stays
busy after three clients abandon long jobs. Not collected by pytest.
"""

from __future__ import annotations

import base64
import io
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from PIL import Image  # noqa: E402

from tests.api.conftest import FAST, LiveServer, start_live_server, write_tiny_model  # noqa: E402

WAITING = 50


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def latency_with_queue(server: LiveServer) -> dict[str, list[float]]:
    release = threading.Event()
    hold = server.runtime.jobs.submit(lambda job: release.wait(300))
    timings: dict[str, list[float]] = {"/sdapi/v1/progress": [], "/sdapi/v1/options": [], "/": []}
    with ThreadPoolExecutor(max_workers=WAITING) as pool:
        pending = [pool.submit(server.post, "txt2img", {**FAST, "prompt": "q", "seed": i}) for i in range(WAITING)]
        while server.runtime.jobs.waiting() < WAITING:
            time.sleep(0.05)
        for _ in range(5):
            for path in timings:
                started = time.monotonic()
                requests.get(server.url + path, timeout=300)
                timings[path].append(time.monotonic() - started)
        release.set()
        hold.future.result()
        assert all(f.result().status_code == 200 for f in pending)
    return timings


def rss_over_img2img(server: LiveServer) -> tuple[float, float, list[int]]:
    buffer = io.BytesIO()
    Image.new("RGB", (6000, 6000), (90, 120, 150)).save(buffer, format="PNG")
    large = base64.b64encode(buffer.getvalue()).decode("ascii")
    before = rss_mb()
    codes = []
    for _ in range(3):
        for images in ([large] * 2, [large] * 4):  # 72 MP (accepted), then 144 MP (refused)
            codes.append(server.post("img2img", {**FAST, "init_images": images}).status_code)
    return before, rss_mb(), codes


def abandoned_hold(server: LiveServer) -> float:
    """Seconds the worker stays busy after three clients leave 1 s into long jobs."""
    body = {**FAST, "steps": 150, "n_iter": 20}

    def give_up() -> None:
        try:
            requests.post(server.api("txt2img"), json=body, timeout=1)
        except requests.exceptions.ReadTimeout:
            pass

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda _: give_up(), range(3)))
    gone = time.monotonic()
    while server.runtime.jobs.current is not None or server.runtime.jobs.waiting():
        time.sleep(0.01)
    return time.monotonic() - gone


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
        server = start_live_server(root, "--api", register_scripts=False)
        try:
            server.post("txt2img", {**FAST, "prompt": "warm-up"})
            timings = latency_with_queue(server)
            before, after, codes = rss_over_img2img(server)
            held = abandoned_hold(server)
        finally:
            server.stop()
    print(f"| measure | value |\n|---|---|")
    for path, values in timings.items():
        print(f"| GET {path} with {WAITING} waiting: median / max | {statistics.median(values):.3f} s / "
              f"{max(values):.3f} s |")
    print(f"| RSS before / after 3 x (2 and 4 images of 6000x6000) img2img | {before:.0f} MB / {after:.0f} MB "
          f"(statuses {codes}) |")
    print(f"| worker busy after 3 clients abandoned 20x150-step jobs | {held:.2f} s |")


if __name__ == "__main__":
    main()
