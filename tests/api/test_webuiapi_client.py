"""The ``webuiapi`` package (an existing A1111 client) against our server."""

from __future__ import annotations

import numpy as np
import pytest
import webuiapi

from tests.api.conftest import LiveServer, gradient_image, half_mask, pixels


@pytest.fixture()
def client(live: LiveServer) -> webuiapi.WebUIApi:
    port = int(live.url.rsplit(":", 1)[1])
    return webuiapi.WebUIApi(host="127.0.0.1", port=port, sampler="Euler a", steps=2)


def test_txt2img(client: webuiapi.WebUIApi) -> None:
    result = client.txt2img(prompt="a small boat", negative_prompt="storm", seed=314, width=64, height=64, batch_size=2,
                            cfg_scale=5)
    assert len(result.images) == 2 and result.image.size == (64, 64)
    assert result.info["all_seeds"] == [314, 315]
    assert result.info["infotexts"][0].startswith("a small boat\nNegative prompt: storm\nSteps: 2, Sampler: Euler a,")
    assert result.image.info["parameters"] == result.info["infotexts"][0]
    assert result.parameters["prompt"] == "a small boat"


def test_img2img_with_a_mask(client: webuiapi.WebUIApi) -> None:
    init = gradient_image()
    result = client.img2img(images=[init], mask_image=half_mask(), prompt="a green field", seed=8, width=64, height=64,
                            denoising_strength=0.9, mask_blur=0, inpainting_fill=1, inpaint_full_res=False, steps=3)
    out = pixels(result.image).astype(int)
    assert np.abs(out[:, :30] - pixels(init)[:, :30]).max() <= 2
    assert np.abs(out[:, 34:] - pixels(init)[:, 34:]).mean() > 5
    assert "Denoising strength: 0.9" in result.info["infotexts"][0]


def test_png_info(client: webuiapi.WebUIApi) -> None:
    generated = client.txt2img(prompt="a lamp", seed=27, width=64, height=64).image
    result = client.png_info(generated)
    assert result.info.startswith("a lamp\nSteps: 2") and result.parameters["Seed"] == "27"


def test_set_and_get_model(client: webuiapi.WebUIApi, live: LiveServer) -> None:
    names = client.util_get_model_names()
    assert len(names) >= 2 and all(name.endswith("]") for name in names)
    original = client.util_get_current_model()
    target = next(name for name in names if name.startswith("tiny-a.safetensors"))
    try:
        client.util_set_model(target)
        assert client.util_get_current_model() == target
        result = client.txt2img(prompt="a bell", seed=2, width=64, height=64)
        assert "Model: tiny-a," in result.info["infotexts"][0]
    finally:
        client.util_set_model(original)
    assert client.util_get_current_model() == original


def test_wait_for_ready_waits_for_the_running_job(client: webuiapi.WebUIApi, live: LiveServer) -> None:
    from tests.api.test_routes import LONG, in_background, wait_until_sampling

    thread, result = in_background(live, {**LONG, "steps": 30})
    assert wait_until_sampling(live)["progress"] > 0
    client.util_wait_for_ready(check_interval=0.05)
    assert live.runtime.jobs.current is None
    thread.join(timeout=30)
    assert result["status"] == 200 and len(result["body"]["images"]) == 1
    progress = client.get_progress()
    assert progress["progress"] == 0 and progress["state"]["job_count"] == 0


def test_options_round_trip(client: webuiapi.WebUIApi) -> None:
    before = client.get_options()
    client.set_options({"jpeg_quality": 91})
    assert client.get_options()["jpeg_quality"] == 91
    client.set_options({"jpeg_quality": before["jpeg_quality"]})
    assert client.get_options()["jpeg_quality"] == before["jpeg_quality"]
