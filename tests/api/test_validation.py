"""Where A1111 silently accepts nonsense, we answer 422 naming the field and the reason."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.api.conftest import FAST, LiveServer, gradient_image, png_b64


def problems(response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] and isinstance(body["errors"], str)
    return {".".join(str(part) for part in item["loc"][1:]): item["msg"] for item in body["detail"]}


@pytest.mark.parametrize("changes, field, reason", [
    ({"sampler_name": "Euler b"}, "sampler_name", "valid samplers"),
    ({"sampler_name": None, "sampler_index": "nonsense"}, "sampler_index", "unknown sampler"),
    ({"scheduler": "Fibonacci"}, "scheduler", "valid schedules"),
    ({"width": 4096}, "width", "between 64 and 2048"),
    ({"height": 100}, "height", "multiple of 8"),
    ({"steps": 0}, "steps", "between 1 and 150"),
    ({"steps": 500}, "steps", "between 1 and 150"),
    ({"cfg_scale": -1}, "cfg_scale", "between 0 and 30"),
    ({"batch_size": 0}, "batch_size", "between 1 and 8"),
    ({"enable_hr": True, "hr_upscaler": "ESRGAN_4x"}, "hr_upscaler", "unknown upscaler"),
    ({"styles": ["no such style"]}, "styles", "no such style"),
    ({"override_settings": {"sd_model_checkpoint": "missing.safetensors"}}, "override_settings.sd_model_checkpoint",
     "no checkpoint matches"),
    ({"override_settings": {"CLIP_stop_at_last_layers": 40}}, "override_settings.CLIP_stop_at_last_layers",
     "between 1 and 12"),
    ({"restore_faces": True}, "restore_faces", "no face restorer"),
    ({"refiner_checkpoint": "tiny-a", "refiner_switch_at": 0.5}, "refiner_checkpoint", "not supported"),
    ({"script_name": "Ultimate SD upscale"}, "script_name", "known: Prompt matrix"),
    ({"script_name": "prompt matrix", "script_args": [False, False, "sideways"]}, "script_args", "prompt_type"),
    ({"alwayson_scripts": {"ControlNet": {"args": []}}}, "alwayson_scripts.ControlNet", "known: Prompt suffix"),
    ({"alwayson_scripts": {"Prompt suffix": {"args": [3]}}}, "alwayson_scripts.Prompt suffix", "text argument"),
    ({"infotext": "x\nSteps: many, Sampler: Euler, CFG scale: 7, Seed: 1"}, "infotext", "Steps"),
])
def test_txt2img_rejections(live: LiveServer, changes: dict, field: str, reason: str) -> None:
    found = problems(live.post("txt2img", {**FAST, "prompt": "x", **changes}))
    assert field in found, found
    assert reason in found[field]


def test_all_problems_are_reported_at_once(live: LiveServer) -> None:
    found = problems(live.post("txt2img", {**FAST, "width": 65, "steps": 0, "sampler_name": "nope"}))
    assert {"width", "steps", "sampler_name"} <= set(found)


def test_a_wrongly_typed_field_is_a_422_naming_it(live: LiveServer) -> None:
    response = live.post("txt2img", {"steps": "many"})
    assert response.status_code == 422
    assert any(item["loc"][-1] == "steps" for item in response.json()["detail"])


def b64_of(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@pytest.mark.parametrize("init, reason", [
    ("not base64 at all!", "not valid base64"),
    (b64_of(b"these bytes are no image"), "not a readable image"),
    ("data:image/png;base64," + b64_of(b"\x89PNG\r\n\x1a\n truncated"), "not a readable image"),
    ("https://example.com/cat.png", "URLs are not fetched"),
])
def test_undecodable_init_image(live: LiveServer, init: str, reason: str) -> None:
    found = problems(live.post("img2img", {**FAST, "init_images": [png_b64(gradient_image()), init]}))
    assert reason in found["init_images.1"]


def test_img2img_without_an_image(live: LiveServer) -> None:
    assert "at least one image" in problems(live.post("img2img", {**FAST}))["init_images"]


def test_mask_size_mismatch(live: LiveServer) -> None:
    found = problems(live.post("img2img", {**FAST, "init_images": [png_b64(gradient_image(64))],
                                           "mask": png_b64(Image.new("L", (32, 32), 255))}))
    assert "32x32" in found["mask"] and "64x64" in found["mask"]


def test_undecodable_mask(live: LiveServer) -> None:
    found = problems(live.post("img2img", {**FAST, "init_images": [png_b64(gradient_image())], "mask": "%%%"}))
    assert "base64" in found["mask"]


@pytest.mark.parametrize("changes, field, reason", [
    ({"denoising_strength": 1.5}, "denoising_strength", "between 0 and 1"),
    ({"resize_mode": 7}, "resize_mode", "must be one of"),
    ({"inpainting_fill": 9}, "inpainting_fill", "must be one of"),
    ({"mask_blur_x": 4, "mask_blur_y": 8}, "mask_blur_x", "not supported"),
])
def test_img2img_rejections(live: LiveServer, changes: dict, field: str, reason: str) -> None:
    found = problems(live.post("img2img", {**FAST, "init_images": [png_b64(gradient_image())], **changes}))
    assert reason in found[field]


def test_extras_rejections(live: LiveServer) -> None:
    found = problems(live.post("extra-single-image", {"image": png_b64(gradient_image()), "upscaler_1": "4x-UltraSharp",
                                                      "gfpgan_visibility": 0.5}))
    assert "Lanczos" in found["upscaler_1"] and "face restorer" in found["gfpgan_visibility"]
    assert "not a readable image" in problems(live.post("extra-single-image", {"image": b64_of(b"xx")}))["image"]
    found = problems(live.post("extra-batch-images", {"upscaler_1": "Lanczos",
                                                      "imageList": [{"data": png_b64(gradient_image()), "name": "a"},
                                                                    {"data": "@@", "name": "b"}]}))
    assert "imageList.1.data" in found


def test_png_info_of_garbage(live: LiveServer) -> None:
    buffer = io.BytesIO(b"GIF89a nonsense")
    assert "not a readable image" in problems(live.post("png-info", {"image": b64_of(buffer.getvalue())}))["image"]


def test_options_rejections(live: LiveServer) -> None:
    found = problems(live.post("options", {"sd_model_checkpoint": "nope.safetensors [0000000000]"}))
    assert "no checkpoint matches" in found["sd_model_checkpoint"] and "tiny-a.safetensors" in found["sd_model_checkpoint"]
    assert "between 1 and 100" in problems(live.post("options", {"jpeg_quality": 0}))["jpeg_quality"]
    assert "unknown option" in problems(live.post("options", {"no_such_option": 1}))["no_such_option"]


def test_a_checkpoint_that_cannot_be_loaded_is_named_and_the_server_keeps_serving(tmp_path) -> None:
    from tests.api.conftest import start_live_server, write_tiny_model

    folder = tmp_path / "models" / "Stable-diffusion"
    write_tiny_model(folder / "good.safetensors", seed=3)
    (folder / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": trunc")
    server = start_live_server(tmp_path, "--nowebui", register_scripts=False)
    try:
        found = problems(server.post("txt2img", {**FAST, "override_settings": {"sd_model_checkpoint": "broken"}}))
        assert "cannot load the checkpoint" in found["override_settings.sd_model_checkpoint"]
        assert "broken.safetensors" in found["override_settings.sd_model_checkpoint"]
        good = server.post("txt2img", {**FAST, "override_settings": {"sd_model_checkpoint": "good"}})
        assert good.status_code == 200 and len(good.json()["images"]) == 1
    finally:
        server.stop()
