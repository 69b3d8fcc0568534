"""The built-in img2img scripts "Loopback" and "SD upscale" through the API (``script_name`` +
A1111's positional ``script_args``) on the tiny model. Expected strengths and tile counts are
worked out here from A1111's formulas (scripts/loopback.py, modules/images.py ``split_grid``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from tests.api.conftest import FAST, LiveServer, decode_b64, field, gradient_image, infotexts, pixels, png_b64


def a1111_strength(loop: int, loops: int, initial: float, final: float, curve: str) -> float:
    """A1111's ``calculate_denoising_strength``, written out again for the test."""
    if loops == 1:
        return initial
    progress = loop / (loops - 1)
    shape = {"Aggressive": math.sin(progress * math.pi / 2), "Lazy": 1 - math.cos(progress * math.pi / 2)}
    return initial + (final - initial) * shape.get(curve, progress)


@pytest.mark.parametrize("curve", ["Aggressive", "Lazy"])
def test_loopback_returns_every_loop_with_the_curves_strengths(live: LiveServer, curve: str) -> None:
    response = live.post("img2img", {**FAST, "steps": 1, "init_images": [png_b64(gradient_image())], "seed": 40,
                                     "denoising_strength": 0.6, "script_name": "Loopback",
                                     "script_args": [3, 0.2, curve, "None"]})
    assert response.status_code == 200, response.text
    texts = infotexts(response.json())
    assert len(response.json()["images"]) == 3 and len(texts) == 3
    strengths = [float(field(text, "Denoising strength")) for text in texts]
    assert strengths == pytest.approx([a1111_strength(k, 3, 0.6, 0.2, curve) for k in range(3)], abs=1e-6)
    assert [int(field(text, "Seed")) for text in texts] == [40, 41, 42]
    assert field(texts[0], "Denoising curve") == curve and float(field(texts[0], "Final denoising strength")) == 0.2
    images = [pixels(decode_b64(text)) for text in response.json()["images"]]
    assert not np.array_equal(images[0], images[2])  # each loop redraws the previous output


def test_loopback_each_loop_starts_from_the_previous_output(live: LiveServer) -> None:
    """Loop 2 equals a plain img2img of loop 1's image with loop 2's seed and strength."""
    body = {**FAST, "steps": 1, "seed": 7, "denoising_strength": 0.5}
    looped = live.post("img2img", {**body, "init_images": [png_b64(gradient_image())], "script_name": "loopback",
                                   "script_args": [2, 0.3, "Linear"]}).json()["images"]
    again = live.post("img2img", {**body, "seed": 8, "denoising_strength": 0.3,
                                  "init_images": [looped[0]]}).json()["images"]
    assert np.array_equal(pixels(decode_b64(looped[1])), pixels(decode_b64(again[0])))


def a1111_tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """A1111's ``split_grid`` positions along one side."""
    count = math.ceil((length - overlap) / (tile - overlap)) if length > tile else 1
    step = (length - tile) / (count - 1) if count > 1 else 0
    return [int(i * step) for i in range(count)]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_sd_upscale_doubles_the_size_one_job_per_tile_batch(live: LiveServer, monkeypatch, batch_size: int) -> None:
    submitted = []
    real_submit = live.runtime.submit
    monkeypatch.setattr(live.runtime, "submit", lambda job, *a, **k: submitted.append(job) or real_submit(job, *a, **k))
    response = live.post("img2img", {**FAST, "steps": 1, "init_images": [png_b64(gradient_image())], "seed": 3,
                                     "denoising_strength": 0.3, "batch_size": batch_size,
                                     "script_name": "SD upscale", "script_args": [None, 16, "Lanczos", 2]})
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert len(images) == 1 and decode_b64(images[0]).size == (128, 128)
    tiles = len(a1111_tile_starts(128, 64, 16)) ** 2
    assert tiles == 9 and len(submitted) == math.ceil(tiles / batch_size)
    text = infotexts(response.json())[0]
    assert field(text, "SD upscale overlap") == "16" and field(text, "SD upscale upscaler") == "Lanczos"


def test_sd_upscale_corner_is_the_first_tile_redrawn_alone(live: LiveServer) -> None:
    """The combined image's top-left, covered by no other tile, equals an img2img of the first tile
    of the Lanczos-upscaled image with the same seed; the upscaler is chosen by index (Lanczos = 1)."""
    body = {**FAST, "steps": 1, "seed": 11, "denoising_strength": 0.4}
    combined = live.post("img2img", {**body, "init_images": [png_b64(gradient_image())], "script_name": "sd upscale",
                                     "script_args": ["", 16, 1, 2]}).json()["images"][0]
    first_tile = gradient_image().resize((128, 128), Image.Resampling.LANCZOS).crop((0, 0, 64, 64))
    alone = live.post("img2img", {**body, "init_images": [png_b64(first_tile)]}).json()["images"][0]
    second_x = a1111_tile_starts(128, 64, 16)[1]
    assert np.array_equal(pixels(decode_b64(combined))[:second_x, :second_x],
                          pixels(decode_b64(alone))[:second_x, :second_x])


@pytest.mark.parametrize("name, args, reason", [
    ("Loopback", [3, 0.2, "Linear", "CLIP"], "interrogation is not available"),
    ("Loopback", [0, 0.2], "Loops"),
    ("Loopback", [2, 0.2, "Wavy"], "Denoising strength curve"),
    ("SD upscale", [None, 64, "Lanczos", 2], "smaller than the tile"),
    ("SD upscale", [None, 16, "No such upscaler", 2], "Upscaler"),
    ("SD upscale", [None, 16, "Lanczos", 9], "Scale Factor"),
])
def test_bad_script_args_are_a_422_naming_script_args(live: LiveServer, name: str, args: list, reason: str) -> None:
    response = live.post("img2img", {**FAST, "init_images": [png_b64(gradient_image())],
                                     "script_name": name, "script_args": args})
    assert response.status_code == 422, response.text
    found = {".".join(str(p) for p in item["loc"][1:]): item["msg"] for item in response.json()["detail"]}
    assert "script_args" in found and reason in found["script_args"], found


def test_sd_upscale_saves_the_combined_image_not_the_tiles(live: LiveServer) -> None:
    folder = live.runtime.config.outputs_dir / "img2img-images"
    before = set(folder.rglob("*.png")) if folder.exists() else set()
    response = live.post("img2img", {**FAST, "steps": 1, "seed": 21, "init_images": [png_b64(gradient_image())],
                                     "save_images": True, "script_name": "SD upscale",
                                     "script_args": [None, 16, "Nearest", 2]})
    assert response.status_code == 200, response.text
    written = set(folder.rglob("*.png")) - before
    assert len(written) == 1, written
    saved = Image.open(written.pop())
    assert saved.size == (128, 128) and "SD upscale upscaler: Nearest" in saved.info["parameters"]


def test_sd_upscale_offers_and_uses_the_upscaler_models(live: LiveServer) -> None:
    """The upscaler choices are /sdapi/v1/upscalers' names in order (A1111's radio sends the index)."""
    listed = [u["name"] for u in live.get("upscalers").json()]
    info = {s["name"]: s for s in live.get("script-info").json() if s["is_img2img"]}["sd upscale"]
    choices = info["args"][2]["choices"]
    assert choices == listed and "2x-tiny-compact" in choices
    response = live.post("img2img", {**FAST, "steps": 1, "seed": 4, "init_images": [png_b64(gradient_image())],
                                     "script_name": "SD upscale",
                                     "script_args": [None, 16, choices.index("2x-tiny-compact"), 2]})
    assert response.status_code == 200, response.text
    assert decode_b64(response.json()["images"][0]).size == (128, 128)
    assert field(infotexts(response.json())[0], "SD upscale upscaler") == "2x-tiny-compact"


def test_loopback_saves_every_loop_with_its_fields(live: LiveServer) -> None:
    folder = live.runtime.config.outputs_dir / "img2img-images"
    before = set(folder.rglob("*.png")) if folder.exists() else set()
    response = live.post("img2img", {**FAST, "steps": 1, "seed": 30, "init_images": [png_b64(gradient_image())],
                                     "save_images": True, "script_name": "Loopback", "script_args": [2, 0.1, "Lazy"]})
    assert response.status_code == 200, response.text
    written = sorted(set(folder.rglob("*.png")) - before)
    assert len(written) == 2, written
    for path in written:
        parameters = Image.open(path).info["parameters"]
        assert field(parameters, "Denoising curve") == "Lazy" and field(parameters, "Final denoising strength") == "0.1"
