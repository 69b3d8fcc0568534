"""The bad-input matrix: a table of bad requests across the routes, each answered with its 4xx,
the field named and the reason given; a refused settings change leaves config.json as it was.

Nothing is generated: the queue is stubbed to refuse (503), which only a request that passed
every validation reaches, so a case that wrongly passed validation shows up as 503, not 422."""

from __future__ import annotations

import base64
import io
import json
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modules.config import parse_config
from modules.jobs import QueueFullError
from modules.runtime import Runtime
from tests.api.conftest import write_tiny_model
from webui.app import create_app

NAN, INF = float("nan"), float("inf")


def png(width: int = 64, height: int = 64) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 90)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def bomb() -> str:
    """A PNG header that claims 20000x20000 (Pillow's decompression-bomb size) with a tiny body."""
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


IMG = png()
BOMB = bomb()
I2I = {"init_images": [IMG]}
TXT = "txt2img"

# (route, body, field named in the answer, words of the reason); every answer is 422.
GENERATION = [
    ({"steps": 0}, "steps", "between"), ({"steps": 151}, "steps", "between"), ({"steps": "ten"}, "steps", "integer"),
    ({"steps": NAN}, "steps", "finite"), ({"steps": 2.5}, "steps", "integer"),
    ({"cfg_scale": -1}, "cfg_scale", "between"), ({"cfg_scale": 31}, "cfg_scale", "between"),
    ({"cfg_scale": NAN}, "cfg_scale", "finite"), ({"cfg_scale": INF}, "cfg_scale", "finite"),
    ({"width": 7}, "width", "multiple of 8"), ({"width": 4096}, "width", "between"), ({"width": 100}, "width", "multiple of 8"),
    ({"height": 0}, "height", "between"), ({"height": 65}, "height", "multiple of 8"),
    ({"batch_size": 0}, "batch_size", "between"), ({"batch_size": 9}, "batch_size", "between"),
    ({"n_iter": 0}, "n_iter", "between"), ({"n_iter": 101}, "n_iter", "between"),
    ({"subseed_strength": 2}, "subseed_strength", "between"), ({"subseed_strength": -INF}, "subseed_strength", "finite"),
    ({"seed": 2**64}, "seed", "between"), ({"seed": "abc"}, "seed", "integer"),
    ({"sampler_name": "Euler z"}, "sampler_name", "unknown sampler"),
    ({"scheduler": "Karras-ish"}, "scheduler", "unknown"),
    ({"sampler_name": "Euler a", "eta": -5}, "eta", "between"), ({"sampler_name": "Euler a", "eta": NAN}, "eta", "finite"),
    ({"sampler_name": "Euler", "s_noise": INF}, "s_noise", "finite"), ({"sampler_name": "Euler", "s_churn": -1}, "s_churn", "between"),
    ({"sampler_name": "Euler", "s_tmax": -INF}, "s_tmax", "finite"), ({"s_min_uncond": NAN}, "s_min_uncond", "finite"),
    ({"prompt": "x" * 20_001}, "prompt", "characters"), ({"negative_prompt": "y" * 20_001}, "negative_prompt", "characters"),
    ({"prompt": ["a"]}, "prompt", "string"), ({"styles": ["no such style"]}, "styles", "unknown style"),
    ({"styles": "text"}, "styles", "list"), ({"script_name": "No such script"}, "script_name", "no such script"),
    ({"override_settings": {"sd_vae": "missing.safetensors"}}, "override_settings.sd_vae", "no checkpoint matches"),
    ({"override_settings": {"sd_vae": "../../x"}}, "override_settings.sd_vae", "no checkpoint matches"),
    ({"override_settings": {"jpeg_quality": INF}}, "override_settings.jpeg_quality", "expected int"),
    ({"override_settings": {"txt2img_default_sampler": "Euler z"}}, "override_settings.txt2img_default_sampler",
     "unknown sampler"),
    ({"override_settings": {"sd_model_checkpoint": "nope"}}, "override_settings.sd_model_checkpoint", "no checkpoint"),
    ({"save_images": True, "override_settings": {"outdir_samples": "/abs/path"}}, "override_settings.outdir_samples",
     "cannot be changed by a request"),
    ({"save_images": True, "override_settings": {"outdir_txt2img_samples": "../x"}},
     "override_settings.outdir_txt2img_samples", "cannot be changed by a request"),
]
TXT2IMG_ONLY = [
    ({"enable_hr": True, "hr_scale": 5}, "hr_scale", "between"), ({"enable_hr": True, "hr_scale": NAN}, "hr_scale", "finite"),
    ({"enable_hr": True, "hr_upscaler": "Nope"}, "hr_upscaler", "unknown upscaler"),
    ({"enable_hr": True, "hr_second_pass_steps": 151}, "hr_second_pass_steps", "between"),
    ({"enable_hr": True, "denoising_strength": 1.5}, "denoising_strength", "between"),
]
IMG2IMG_ONLY = [
    ({}, "init_images", "at least one"), ({"init_images": []}, "init_images", "at least one"),
    ({"init_images": ["not base64!"]}, "init_images.0", "base64"), ({"init_images": [BOMB]}, "init_images.0", "pixels"),
    ({**I2I, "denoising_strength": -0.1}, "denoising_strength", "between"),
    ({**I2I, "denoising_strength": INF}, "denoising_strength", "finite"),
    ({**I2I, "mask_blur": 65}, "mask_blur", "between"), ({**I2I, "resize_mode": 7}, "resize_mode", "must be one of"),
    ({**I2I, "inpainting_fill": 9}, "inpainting_fill", "must be one of"),
    ({**I2I, "initial_noise_multiplier": 3}, "initial_noise_multiplier", "between"),
    ({**I2I, "image_cfg_scale": NAN}, "image_cfg_scale", "finite"), ({**I2I, "mask": "%%%"}, "mask", "base64"),
]
EXTRAS = [
    ({"image": "nope"}, "image", "image"), ({"image": BOMB}, "image", "pixels"),
    ({"image": IMG, "upscaler_1": "Nope"}, "upscaler_1", "unknown upscaler"),
    ({"image": IMG, "upscaler_2": "Nope"}, "upscaler_2", "unknown upscaler"),
    ({"image": IMG, "upscaler_1": "Lanczos", "upscaling_resize": 9}, "upscaling_resize", "between"),
    ({"image": IMG, "upscaling_resize": NAN}, "upscaling_resize", "finite"),
    ({"image": IMG, "upscaler_1": "Lanczos", "resize_mode": 1, "upscaling_resize_w": 4}, "upscaling_resize_w", "between"),
    ({"image": IMG, "upscaler_1": "Lanczos", "resize_mode": 3}, "resize_mode", "must be 0"),
    ({"image": IMG, "extras_upscaler_2_visibility": 2}, "extras_upscaler_2_visibility", "between"),
    ({"image": IMG, "gfpgan_visibility": 0.5}, "gfpgan_visibility", "face restor"),
    ({"image": IMG, "codeformer_weight": INF}, "codeformer_weight", "finite"),
    ({"image": png(1, 512), "upscaler_1": "Lanczos", "resize_mode": 1, "upscaling_resize_w": 512,
      "upscaling_resize_h": 512}, "upscaling_resize_w", "pixels"),
]
BATCH_EXTRAS = [
    ({"imageList": [{"data": "nope", "name": "a"}]}, "imageList.0.data", "image"),
    ({"imageList": [{"data": IMG, "name": "a"}, {"data": BOMB, "name": "b"}]}, "imageList.1.data", "pixels"),
    ({"imageList": "x"}, "imageList", "list"),
]
PNG_INFO = [({"image": "nope"}, "image", "image"), ({"image": BOMB}, "image", "pixels"), ({"image": 5}, "image", "string")]
OPTIONS = [
    ({"sd_vae": "no-such-vae.safetensors"}, "sd_vae", "no checkpoint matches"), ({"sd_vae": "../../etc/passwd"}, "sd_vae", "no checkpoint"),
    ({"txt2img_default_sampler": "Euler z"}, "txt2img_default_sampler", "unknown sampler"),
    ({"sd_model_checkpoint": "missing.safetensors"}, "sd_model_checkpoint", "no checkpoint matches"),
    ({"eta_ancestral": NAN}, "eta_ancestral", "finite"), ({"eta_ddim": 2}, "eta_ddim", "between"),
    ({"jpeg_quality": INF}, "jpeg_quality", "expected int"), ({"jpeg_quality": 0}, "jpeg_quality", "between"),
    ({"samples_format": "exe"}, "samples_format", "must be one of"), ({"CLIP_stop_at_last_layers": True}, "CLIP_stop_at_last_layers", "expected int"),
    ({"samples_save": "yes"}, "samples_save", "expected bool"), ({"no_such_option": 1}, "no_such_option", "unknown option"),
]
CASES = ([(TXT, body, field, why) for body, field, why in GENERATION + TXT2IMG_ONLY]
         + [("img2img", {**I2I, **body}, field, why) for body, field, why in GENERATION]
         + [("img2img", body, field, why) for body, field, why in IMG2IMG_ONLY]
         + [("extra-single-image", *case) for case in EXTRAS] + [("extra-batch-images", *case) for case in BATCH_EXTRAS]
         + [("png-info", *case) for case in PNG_INFO] + [("options", *case) for case in OPTIONS])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("matrix")
    write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=3)
    runtime = Runtime(parse_config(["--data-dir", str(root), "--nowebui"], root), cuda_available=False)

    def refuse(work, max_waiting=None, description="job"):
        raise QueueFullError(0, 1)

    runtime.jobs.submit = refuse  # a request that passed validation stops here with 503
    runtime.update_options({"jpeg_quality": 81})  # a config.json exists, to compare after each refusal
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield client, runtime.config.options_file


def test_the_matrix_covers_every_route_with_at_least_80_cases() -> None:
    per_route = Counter(route for route, *_ in CASES)
    assert len(CASES) >= 80
    assert set(per_route) == {"txt2img", "img2img", "extra-single-image", "extra-batch-images", "png-info", "options"}


@pytest.mark.parametrize("route, body, field, why", CASES,
                         ids=[f"{route}-{field}-{i}" for i, (route, _, field, _) in enumerate(CASES)])
def test_a_bad_input_is_refused_by_field_and_reason(served, route: str, body: dict, field: str, why: str) -> None:
    client, config_file = served
    before = config_file.read_bytes()
    answer = client.post(f"/sdapi/v1/{route}", content=json.dumps(body, allow_nan=True),
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text[:500]
    found = {".".join(str(p) for p in item["loc"][1:]): item["msg"] for item in answer.json()["detail"]}
    assert field in found, found
    assert why.lower() in found[field].lower(), found
    assert config_file.read_bytes() == before


@pytest.mark.parametrize("method, route", [("GET", "txt2img"), ("GET", "interrupt"), ("PUT", "options")])
def test_a_wrong_method_is_405_not_a_crash(served, method: str, route: str) -> None:
    client, _ = served
    assert client.request(method, f"/sdapi/v1/{route}").status_code == 405


@pytest.mark.parametrize("route", ["txt2img", "img2img", "options", "png-info", "extra-single-image"])
def test_a_body_that_is_not_json_is_422_naming_the_body(served, route: str) -> None:
    client, _ = served
    answer = client.post(f"/sdapi/v1/{route}", content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][0] == "body" and "json" in answer.json()["detail"][0]["msg"].lower()
