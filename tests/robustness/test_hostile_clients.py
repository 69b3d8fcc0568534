"""A hostile or careless client against a live server: a long queue, abandoned requests, huge
images, bad settings, a file that takes long to hash, nonsense numbers, killed saves."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import torch
from PIL import Image
from safetensors.torch import save_file

from modules.jobs import Job
from tests.api.conftest import FAST, LiveServer, start_live_server, write_tiny_model

QUEUED = 50


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile")
    write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=5)
    running = start_live_server(root, "--api", register_scripts=False)
    yield running
    running.stop()


class WorkerHold:
    """A job that keeps the worker busy until released, so requests queue up behind it."""

    def __init__(self, server: LiveServer):
        self.release = threading.Event()
        self.job: Job = server.runtime.jobs.submit(lambda job: self.release.wait(120))

    def __enter__(self) -> "WorkerHold":
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.job.future.result(timeout=120)


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def problems(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {".".join(str(p) for p in item["loc"][1:]): item["msg"] for item in response.json()["detail"]}


def test_control_routes_and_the_page_answer_while_50_requests_wait(server: LiveServer) -> None:
    jobs = server.runtime.jobs
    with ThreadPoolExecutor(max_workers=QUEUED) as pool, WorkerHold(server):
        pending = [pool.submit(server.post, "txt2img", {**FAST, "prompt": f"queued {i}", "seed": i})
                   for i in range(QUEUED)]
        wait_until(lambda: jobs.waiting() == QUEUED)
        for method, url in (("GET", server.api("progress")), ("GET", server.api("options")),
                            ("GET", server.api("sd-models")), ("POST", server.api("skip")),
                            ("GET", server.url + "/"), ("GET", server.url + "/internal/progress?id=current")):
            started = time.monotonic()
            answer = requests.request(method, url, timeout=30)
            took = time.monotonic() - started
            assert answer.status_code == 200, (url, answer.status_code)
            assert jobs.waiting() == QUEUED, f"{url} was answered only after the queue moved"
            assert took < 5, f"{url} took {took:.1f} s with {QUEUED} requests waiting"
        assert server.get("progress").json()["state"]["job_count"] == QUEUED + 1
    answers = [future.result() for future in pending]
    assert [a.status_code for a in answers] == [200] * QUEUED
    assert len({a.json()["images"][0] for a in answers}) == QUEUED  # each its own seed, each its own image


def test_beyond_the_queue_limit_the_answer_is_503_with_retry_after(server: LiveServer) -> None:
    assert server.post("options", {"queue_max_waiting": 3}).status_code == 200
    try:
        with ThreadPoolExecutor(max_workers=6) as pool, WorkerHold(server):
            pending = [pool.submit(server.post, "txt2img", {**FAST, "prompt": "x", "seed": i}) for i in range(6)]
            wait_until(lambda: sum(f.done() for f in pending) == 3)
            refused = [f.result() for f in pending if f.done()]
            assert server.runtime.jobs.waiting() == 3
        assert [r.status_code for r in refused] == [503] * 3
        assert all(int(r.headers["Retry-After"]) >= 1 and "queue is full" in r.json()["detail"] for r in refused)
        assert sorted(f.result().status_code for f in pending) == [200] * 3 + [503] * 3
    finally:
        server.post("options", {"queue_max_waiting": 100})


def test_abandoned_requests_are_dropped_from_the_queue(server: LiveServer) -> None:
    jobs = server.runtime.jobs
    with WorkerHold(server) as hold:
        def give_up(seed: int) -> None:
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.post(server.api("txt2img"), json={**FAST, "prompt": "gone", "seed": seed}, timeout=1)

        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(give_up, range(3)))
        wait_until(lambda: jobs.waiting() == 0, timeout=10)
        assert not hold.job.future.done(), "the queued jobs were dropped while the worker was still busy"


def test_an_abandoned_running_job_is_interrupted_at_its_next_step(server: LiveServer) -> None:
    jobs = server.runtime.jobs
    body = {**FAST, "prompt": "long", "steps": 150, "n_iter": 20}
    caller = threading.Thread(target=lambda: pytest.raises(
        requests.exceptions.ReadTimeout, requests.post, server.api("txt2img"), json=body, timeout=2))
    caller.start()
    wait_until(lambda: jobs.current is not None)
    running = jobs.current
    caller.join()
    running.future.result(timeout=60)  # it ends early, at the next step after the client left
    assert running.interrupted
    assert running.progress.image < 19, "the job ran to its end although nobody was waiting for it"


def test_a_finished_job_keeps_its_result_but_not_its_inputs(server: LiveServer) -> None:
    import weakref

    class Inputs:
        pass

    inputs = Inputs()
    alive = weakref.ref(inputs)
    job = server.runtime.jobs.submit(lambda job, held=inputs: "result")
    del inputs
    assert job.future.result(timeout=60) == "result"
    wait_until(lambda: job.work is None, timeout=10)
    assert alive() is None
    assert server.runtime.jobs.find(job.id) is job  # still there for a reloaded page


def test_an_api_job_is_not_kept_after_its_answer(server: LiveServer) -> None:
    kept_before = set(server.runtime.jobs._recent)  # the jobs kept for reloaded pages
    answer = server.post("txt2img", {**FAST, "prompt": "x"})
    assert answer.status_code == 200 and len(answer.json()["images"]) == 1
    assert set(server.runtime.jobs._recent) == kept_before, "a finished API job still holds its images"


def test_huge_images_are_refused_before_they_are_decoded(server: LiveServer) -> None:
    huge = png_b64(Image.new("RGB", (8000, 8000), (10, 20, 30)))
    found = problems(server.post("img2img", {**FAST, "init_images": [huge]}))
    assert "more than 50000000 pixels" in found["init_images.0"]
    large = png_b64(Image.new("RGB", (6000, 6000), (10, 20, 30)))
    found = problems(server.post("img2img", {**FAST, "init_images": [large] * 4}))
    assert list(found) == ["init_images.2", "init_images.3"] and "together" in found["init_images.2"]
    bomb = Image.new("1", (20000, 20000))
    for route, body in (("png-info", {"image": png_b64(bomb)}),
                        ("extra-single-image", {"image": png_b64(bomb), "upscaling_resize": 2})):
        assert "image" in problems(server.post(route, body))
    assert server.post("txt2img", {**FAST, "prompt": "still fine"}).status_code == 200


def test_a_checkpoint_that_is_not_a_model_is_refused_as_the_default(server: LiveServer) -> None:
    folder = server.data_dir / "models" / "Stable-diffusion"
    save_file({"just.a.tensor": torch.zeros(3)}, str(folder / "aaa-not-a-model.safetensors"))
    (folder / "aab-corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": trunc")
    try:
        assert server.post("refresh-checkpoints").status_code == 200
        for name in ("aaa-not-a-model", "aab-corrupt"):
            assert "cannot load the checkpoint" in problems(
                server.post("options", {"sd_model_checkpoint": name}))["sd_model_checkpoint"]
            assert "cannot load the checkpoint" in problems(server.post(
                "txt2img", {**FAST, "override_settings": {"sd_model_checkpoint": name}}))[
                "override_settings.sd_model_checkpoint"]
        assert server.get("options").json()["sd_model_checkpoint"].startswith("tiny.safetensors")
        made = server.post("txt2img", {**FAST, "prompt": "default still serves"})
        assert made.status_code == 200 and "Model: tiny" in made.json()["info"]
    finally:
        for name in ("aaa-not-a-model", "aab-corrupt"):
            (folder / f"{name}.safetensors").unlink()
        server.post("refresh-checkpoints")


def test_hashing_a_large_new_file_blocks_neither_listing_nor_generation(server: LiveServer, monkeypatch) -> None:
    from modules.models import hashing

    unblock = threading.Event()
    real = hashing.sha256_file

    def slow_for_big_files(path: Path) -> str:
        if Path(path).stat().st_size > 64 * 1024 * 1024:
            unblock.wait(120)
        return real(path)

    monkeypatch.setattr(hashing, "sha256_file", slow_for_big_files)
    big = server.data_dir / "models" / "Stable-diffusion" / "zz-big.safetensors"
    with open(big, "wb") as handle:  # sparse: 100 MB on paper, nothing on disk
        handle.truncate(100 * 1024 * 1024)
    try:
        assert requests.post(server.api("refresh-checkpoints"), timeout=10).status_code == 200
        listed = {m["title"]: m for m in server.get("sd-models").json()}
        assert listed["zz-big.safetensors"]["hash"] is None  # listed while its hash is being computed
        assert server.get("options").status_code == 200
        assert server.post("txt2img", {**FAST, "prompt": "meanwhile"}).status_code == 200
        assert server.runtime.hasher.busy()
        unblock.set()
        wait_until(lambda: not server.runtime.hasher.busy(), timeout=60)
        titles = [m["title"] for m in server.get("sd-models").json()]
        assert any(t.startswith("zz-big.safetensors [") for t in titles)
    finally:
        unblock.set()
        big.unlink()
        server.post("refresh-checkpoints")


@pytest.mark.parametrize("field, value, sampler", [
    ("eta", -5, "Euler a"), ("eta", float("nan"), "Euler a"), ("s_noise", float("inf"), "Euler"),
    ("s_churn", -1, "Euler"), ("s_tmax", float("-inf"), "Euler"), ("cfg_scale", float("nan"), "Euler"),
])
def test_numbers_outside_their_domain_are_422_not_500(server: LiveServer, field: str, value: float,
                                                      sampler: str) -> None:
    body = json.dumps({**FAST, "sampler_name": sampler, field: value})  # NaN/Infinity as JavaScript writes them
    found = problems(requests.post(server.api("txt2img"), data=body, headers={"Content-Type": "application/json"},
                                   timeout=60))
    reason = "must be a finite number" if value != value or value in (float("inf"), float("-inf")) else "between"
    assert field in found and reason in found[field]
    assert server.post("txt2img", {**FAST, "prompt": "after"}).status_code == 200


def test_stale_temporaries_of_killed_saves_are_removed_at_start(server: LiveServer) -> None:
    runtime = server.runtime
    day = runtime.config.outputs_dir / "txt2img-images" / "2026-01-01"
    day.mkdir(parents=True, exist_ok=True)
    stale = [day / ".00007-42.png.a1b2c3d4.tmp", runtime.config.data_dir / ".config.json.zz_9y8x7.tmp"]
    fresh = day / ".00008-43.png.q1w2e3r4.tmp"
    unrelated = day / ".notes.tmp"
    for path in (*stale, fresh, unrelated):
        path.write_bytes(b"partial")
    an_hour_ago = time.time() - 3600
    for path in (*stale, unrelated):
        os.utime(path, (an_hour_ago, an_hour_ago))
    removed = runtime.remove_stale_temporaries()
    assert sorted(removed) == sorted(stale)
    assert fresh.exists() and unrelated.exists() and not any(p.exists() for p in stale)
