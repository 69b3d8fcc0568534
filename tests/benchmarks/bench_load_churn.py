"""Benchmark: load and checkpoint churn on a real server process (``launch.py --api``) over two
tiny random-weight checkpoints.

    venv/bin/python tests/benchmarks/bench_load_churn.py [--clients 20] [--rounds 3] [--switches 50]

1. Load: ``--clients`` threads each send ``--rounds`` txt2img requests, alternating the two
   checkpoints through ``override_settings.sd_model_checkpoint``, each with its client's fixed seed.
   Then every distinct request is sent again alone, one after another, and each concurrent image
   must equal its lone run's pixels (and name the checkpoint it asked for).
2. Churn: ``--switches`` alternating checkpoint switches (POST /sdapi/v1/options, then a 1-step
   generation that loads it), with the server's RSS (/proc/<pid>/status VmRSS) read after each. By
   default the checkpoint cache holds one model (``sd_checkpoints_limit: 1``), so every switch
   evicts one model and loads the other from disk; the RSS growth from the end of the warm-up to
   the last switch must stay within 5%.

Prints a markdown table; exits 1 when an image differs or the RSS grows more than 5%.
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import requests  # noqa: E402
from PIL import Image  # noqa: E402

from tests.api.conftest import FAST, free_port, write_tiny_model  # noqa: E402

MAX_GROWTH_PERCENT = 5.0


@dataclass(frozen=True)
class Model:
    title: str
    name: str


@dataclass(frozen=True)
class Result:
    pixels: np.ndarray
    model_name: str  # the "Model:" field of the image's infotext
    seconds: float


class ServerProcess:
    """``launch.py --api`` in its own process (its console goes to a log file, read on failure)."""

    def __init__(self, data_dir: Path):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/sdapi/v1"
        self.log = data_dir / "server.log"
        command = [sys.executable, "launch.py", "--skip-install", "--api", "--data-dir", str(data_dir),
                   "--port", str(port)]
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        with self.log.open("w", encoding="utf-8") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.log.read_text(encoding='utf-8')}")
            try:
                requests.get(self.url + "/progress", timeout=5)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not answer within 180 s")
                time.sleep(0.3)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

    def post(self, route: str, body: dict) -> requests.Response:
        response = requests.post(f"{self.url}/{route}", json=body, timeout=600)
        if response.status_code != 200:
            raise SystemExit(f"POST {route} answered {response.status_code}: {response.text[:500]}")
        return response

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=60)


def generate(server: ServerProcess, body: dict) -> Result:
    started = time.monotonic()
    payload = server.post("txt2img", body).json()
    seconds = time.monotonic() - started
    image = Image.open(io.BytesIO(base64.b64decode(payload["images"][0])))
    infotext = json.loads(payload["info"])["infotexts"][0]
    model_name = next((part.split(": ", 1)[1] for part in infotext.split(", ") if part.startswith("Model: ")), "")
    return Result(np.asarray(image.convert("RGB")), model_name, seconds)


def request_body(client: int, model: Model) -> dict:
    return {**FAST, "prompt": f"a lantern number {client}", "seed": 1000 + client,
            "override_settings": {"sd_model_checkpoint": model.title}}


def load_test(server: ServerProcess, models: list[Model], clients: int, rounds: int) -> dict:
    """Concurrent clients, then each distinct request alone; counts, mismatches and latencies."""
    def client(index: int) -> list[tuple[tuple[int, int], Result]]:
        # each client alternates the checkpoints round by round; neighbours start on different ones
        return [((index, (index + r) % 2), generate(server, request_body(index, models[(index + r) % 2])))
                for r in range(rounds)]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        concurrent = [pair for results in pool.map(client, range(clients)) for pair in results]
    concurrent_wall = time.monotonic() - started
    started = time.monotonic()
    alone = {key: generate(server, request_body(key[0], models[key[1]])) for key in sorted({k for k, _ in concurrent})}
    alone_wall = time.monotonic() - started
    mismatches = [key for key, result in concurrent
                  if not np.array_equal(result.pixels, alone[key].pixels) or result.model_name != models[key[1]].name]
    wrong_lone_models = [key for key, result in alone.items() if result.model_name != models[key[1]].name]
    latencies = sorted(result.seconds for _, result in concurrent)
    return {"requests": len(concurrent), "distinct": len(alone), "mismatches": mismatches + wrong_lone_models,
            "concurrent_wall": concurrent_wall, "alone_wall": alone_wall, "latencies": latencies,
            "alone_median": statistics.median(r.seconds for r in alone.values())}


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    return sorted_values[min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))]


def churn(server: ServerProcess, models: list[Model], switches: int, checkpoints_limit: int) -> list[float]:
    """RSS (MB) after each alternating switch: set the default checkpoint, then generate with it."""
    server.post("options", {"sd_checkpoints_limit": checkpoints_limit})
    samples = []
    for index in range(switches):
        model = models[index % 2]
        server.post("options", {"sd_model_checkpoint": model.title})
        result = generate(server, {**FAST, "steps": 1, "prompt": "churn", "seed": index})
        if result.model_name != model.name:
            raise SystemExit(f"switch {index}: generated with {result.model_name!r}, expected {model.name!r}")
        samples.append(server.rss_mb())
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--switches", type=int, default=50)
    parser.add_argument("--warm-up", type=int, default=10, help="switches before the RSS baseline")
    parser.add_argument("--checkpoints-limit", type=int, default=1,
                        help="sd_checkpoints_limit during the churn (1: every switch loads from disk)")
    args = parser.parse_args()
    if not 0 < args.warm_up < args.switches:
        parser.error("--warm-up must be between 1 and --switches - 1")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tiny_model(root / "models" / "Stable-diffusion" / "tiny-a.safetensors", seed=1)
        write_tiny_model(root / "models" / "Stable-diffusion" / "tiny-b.safetensors", seed=2)
        started = time.monotonic()
        server = ServerProcess(root)
        start_seconds = time.monotonic() - started
        try:
            listed = requests.get(server.url + "/sd-models", timeout=60).json()
            models = [Model(m["title"], m["model_name"]) for m in sorted(listed, key=lambda m: m["model_name"])]
            for model in models:  # both loaded once, so the timed phase measures serving, not first loads
                server.post("txt2img", {**FAST, "prompt": "warm-up", "override_settings": {
                    "sd_model_checkpoint": model.title}})
            load = load_test(server, models, args.clients, args.rounds)
            rss = churn(server, models, args.switches, args.checkpoints_limit)
        finally:
            server.stop()

    latencies = load["latencies"]
    baseline, final = rss[args.warm_up - 1], rss[-1]
    growth = (final - baseline) / baseline * 100
    print(f"\nServer start to first answer: {start_seconds:.1f} s. Mismatched requests (client, checkpoint): "
          f"{load['mismatches'] or 'none'}\n")
    print("| measure | value |\n|---|---|")
    print(f"| concurrent requests ({args.clients} clients x {args.rounds} rounds, 2 checkpoints alternating) | "
          f"{load['requests']} |")
    print(f"| distinct requests re-run alone | {load['distinct']} |")
    print(f"| images differing from the lone run (pixels or checkpoint) | {len(load['mismatches'])} |")
    print(f"| wall time: concurrent / lone runs | {load['concurrent_wall']:.1f} s / {load['alone_wall']:.1f} s |")
    print(f"| latency under load p50 / p90 / p99 / max | {percentile(latencies, 0.5):.2f} / "
          f"{percentile(latencies, 0.9):.2f} / {percentile(latencies, 0.99):.2f} / {latencies[-1]:.2f} s |")
    print(f"| latency alone, median | {load['alone_median']:.3f} s |")
    print(f"| checkpoint switches (sd_checkpoints_limit {args.checkpoints_limit}), each with a 1-step generation "
          f"| {len(rss)} |")
    print(f"| server RSS after switch {args.warm_up} / after switch {len(rss)} (min / max over all) | "
          f"{baseline:.0f} / {final:.0f} MB ({min(rss):.0f} / {max(rss):.0f}) |")
    passed_rss = growth <= MAX_GROWTH_PERCENT
    print(f"| RSS growth after warm-up (limit {MAX_GROWTH_PERCENT:.0f}%) | {growth:+.1f}% "
          f"{'pass' if passed_rss else 'FAIL'} |")
    print(f"| images equal to the lone run | {'pass' if not load['mismatches'] else 'FAIL'} |")
    return 0 if passed_rss and not load["mismatches"] else 1


if __name__ == "__main__":
    sys.exit(main())
