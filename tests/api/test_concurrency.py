"""Many clients at once: requests queue on the one worker, each gets its own result, and
interleaved requests naming different checkpoints each get images from their checkpoint."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tests.api.conftest import FAST, LiveServer, decode_b64, pixels

CLIENTS = 8


def request_for(index: int, models: list[dict]) -> tuple[dict, dict]:
    model = models[index % 2]
    body = {**FAST, "prompt": f"a lantern number {index}", "seed": 1000 + index,
            "override_settings": {"sd_model_checkpoint": model["title"]}}
    return body, model


def generate(live: LiveServer, body: dict) -> tuple[np.ndarray, str]:
    response = live.post("txt2img", body)
    assert response.status_code == 200, response.text
    payload = response.json()
    return pixels(decode_b64(payload["images"][0])), json.loads(payload["info"])["infotexts"][0]


def test_parallel_clients_alternating_checkpoints_match_sequential_runs(live: LiveServer) -> None:
    models = [m for m in live.get("sd-models").json() if m["model_name"] in ("tiny-a", "sub_tiny-b")]
    assert len(models) == 2
    requests_and_models = [request_for(index, models) for index in range(CLIENTS)]
    sequential = [generate(live, body) for body, _ in requests_and_models]
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        parallel = list(pool.map(lambda pair: generate(live, pair[0]), requests_and_models))
    for index, ((body, model), (image, infotext), (expected_image, expected_infotext)) in enumerate(
            zip(requests_and_models, parallel, sequential)):
        assert f"Model hash: {model['hash']}, Model: {model['model_name']}," in infotext, index
        assert infotext.startswith(f"a lantern number {index}\n") and f"Seed: {1000 + index}," in infotext
        assert np.array_equal(image, expected_image), f"request {index} differs from its sequential run"
        assert infotext == expected_infotext
    # The two checkpoints really give different pictures for the same prompt and seed.
    same_seed = {**FAST, "prompt": "a lantern", "seed": 5}
    a = generate(live, {**same_seed, "override_settings": {"sd_model_checkpoint": models[0]["title"]}})[0]
    b = generate(live, {**same_seed, "override_settings": {"sd_model_checkpoint": models[1]["title"]}})[0]
    assert not np.array_equal(a, b)
