"""txt2img and img2img over real HTTP: images, the PNG parameters chunk, the info JSON, settings
for one request, infotext filling, saving, and scripts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.api.conftest import FAST, LiveServer, decode_b64, gradient_image, half_mask, pixels, png_b64

INFO_KEYS = {"prompt", "all_prompts", "negative_prompt", "all_negative_prompts", "seed", "all_seeds", "subseed",
             "all_subseeds", "subseed_strength", "width", "height", "sampler_name", "cfg_scale", "steps", "batch_size",
             "restore_faces", "face_restoration_model", "sd_model_name", "sd_model_hash", "sd_vae_name", "sd_vae_hash",
             "seed_resize_from_w", "seed_resize_from_h", "denoising_strength", "extra_generation_params",
             "index_of_first_image", "infotexts", "styles", "job_timestamp", "clip_skip",
             "is_using_inpainting_conditioning", "version"}


def saved_files(data_dir: Path) -> list[Path]:
    outputs = data_dir / "outputs"
    return sorted(outputs.rglob("*.png")) if outputs.exists() else []


def test_txt2img_returns_raw_png_with_parameters_and_a1111_info(live: LiveServer) -> None:
    response = live.post("txt2img", {**FAST, "prompt": "a red barn", "negative_prompt": "fog", "seed": 1234,
                                     "batch_size": 2, "an_unknown_field": [1, 2]})
    assert response.status_code == 200, response.text
    body = response.json()
    info = json.loads(body["info"])
    assert INFO_KEYS <= set(info)
    assert info["all_seeds"] == [1234, 1235] and info["seed"] == 1234
    assert info["index_of_first_image"] == 0 and len(body["images"]) == 2  # no grid unless saving
    assert info["sampler_name"] == "Euler" and info["steps"] == 2 and (info["width"], info["height"]) == (64, 64)
    for text, seed, infotext in zip(body["images"], (1234, 1235), info["infotexts"]):
        image = decode_b64(text)
        assert image.format == "PNG" and image.size == (64, 64)
        assert image.info["parameters"] == infotext
        assert infotext.startswith("a red barn\nNegative prompt: fog\nSteps: 2, Sampler: Euler,")
        assert f"Seed: {seed}," in infotext and "Size: 64x64" in infotext
    assert body["parameters"]["prompt"] == "a red barn" and body["parameters"]["steps"] == 2
    assert not np.array_equal(pixels(decode_b64(body["images"][0])), pixels(decode_b64(body["images"][1])))


def test_api_defaults_are_a1111s(live: LiveServer) -> None:
    """No sampler given: Euler (A1111's sampler_index default); 50 steps is its default, here we send steps only."""
    body = live.post("txt2img", {"prompt": "x", "width": 64, "height": 64, "steps": 2, "seed": 3}).json()
    info = json.loads(body["info"])
    assert info["sampler_name"] == "Euler" and info["cfg_scale"] == 7.0 and info["batch_size"] == 1
    assert "Schedule type: Automatic" in info["infotexts"][0]


def test_image_k_of_a_batch_matches_its_seed_generated_alone(live: LiveServer) -> None:
    batch = live.post("txt2img", {**FAST, "prompt": "a tree", "seed": 77, "batch_size": 2}).json()
    alone = live.post("txt2img", {**FAST, "prompt": "a tree", "seed": 78}).json()
    # Equal up to float rounding of batched matrix products (a few 8-bit levels at most).
    difference = np.abs(pixels(decode_b64(batch["images"][1])).astype(int) - pixels(decode_b64(alone["images"][0])))
    assert difference.max() <= 3


def test_override_settings_apply_to_that_request_only(live: LiveServer) -> None:
    before = live.get("options").json()
    other = next(m for m in live.get("sd-models").json() if m["title"] != before["sd_model_checkpoint"])
    body = live.post("txt2img", {**FAST, "prompt": "a cat", "seed": 5, "override_settings": {
        "sd_model_checkpoint": other["model_name"], "CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": 31337,
        "some_setting_we_do_not_have": 1}}).json()
    info = json.loads(body["info"])
    assert f"Model: {other['model_name']}," in info["infotexts"][0] and "Clip skip: 2" in info["infotexts"][0]
    assert info["clip_skip"] == 2 and info["sd_model_hash"] == other["hash"]
    assert live.get("options").json() == before  # nothing persisted
    plain = json.loads(live.post("txt2img", {**FAST, "prompt": "a cat", "seed": 5}).json()["info"])
    assert f"Model: {other['model_name']}," not in plain["infotexts"][0] and "Clip skip" not in plain["infotexts"][0]


def test_infotext_fills_only_the_fields_the_request_leaves_out(live: LiveServer) -> None:
    infotext = ("a lighthouse at dusk\nNegative prompt: people\n"
                "Steps: 3, Sampler: Euler a, Schedule type: Karras, CFG scale: 4.5, Seed: 4242, Size: 64x64, "
                "Model hash: 0000000000, Model: nothing, Clip skip: 2, Version: v1.10.1")
    body = live.post("txt2img", {"infotext": infotext, "steps": 2}).json()
    info = json.loads(body["info"])
    assert info["prompt"] == "a lighthouse at dusk" and info["negative_prompt"] == "people"
    assert info["steps"] == 2  # given explicitly: the request wins
    assert info["seed"] == 4242 and info["cfg_scale"] == 4.5 and info["sampler_name"] == "Euler a"
    assert "Schedule type: Karras" in info["infotexts"][0] and "Clip skip: 2" in info["infotexts"][0]
    assert "Model: nothing" not in info["infotexts"][0]  # the checkpoint is not switched by an infotext


def test_styles_are_merged_into_the_prompts(live: LiveServer) -> None:
    body = live.post("txt2img", {**FAST, "prompt": "a fox", "styles": ["watercolor"], "seed": 1}).json()
    infotext = json.loads(body["info"])["infotexts"][0]
    assert infotext.startswith("a fox in watercolor\nNegative prompt: blurry\n")


def test_send_images_false_returns_no_images_but_the_info(live: LiveServer) -> None:
    body = live.post("txt2img", {**FAST, "prompt": "x", "seed": 9, "send_images": False}).json()
    assert body["images"] == [] and json.loads(body["info"])["all_seeds"] == [9]


def test_save_images_false_writes_nothing_and_true_saves_with_the_grid_first(live: LiveServer) -> None:
    before = saved_files(live.data_dir)
    live.post("txt2img", {**FAST, "prompt": "unsaved", "seed": 11, "batch_size": 2})
    assert saved_files(live.data_dir) == before
    body = live.post("txt2img", {**FAST, "prompt": "saved", "seed": 21, "batch_size": 2, "save_images": True}).json()
    info = json.loads(body["info"])
    assert info["index_of_first_image"] == 1 and len(body["images"]) == 3
    grid = decode_b64(body["images"][0])
    assert grid.size == (128, 64)  # two 64x64 images side by side
    assert len(info["infotexts"]) == 3 and info["infotexts"][1] == info["infotexts"][0]
    new = [p for p in saved_files(live.data_dir) if p not in before]
    images = [p for p in new if "txt2img-images" in p.parts]
    grids = [p for p in new if "txt2img-grids" in p.parts]
    assert len(images) == 2 and len(grids) == 1
    assert {p.name.split("-", 1)[1] for p in images} == {"21.png", "22.png"}
    from PIL import Image

    assert Image.open(images[0]).info["parameters"].startswith("saved\n")


def test_img2img_with_a_mask_repaints_only_the_masked_half(live: LiveServer) -> None:
    init = gradient_image()
    body = {**FAST, "prompt": "a blue square", "seed": 3, "denoising_strength": 0.9, "steps": 3,
            "init_images": ["data:image/png;base64," + png_b64(init)], "mask": png_b64(half_mask()),
            "mask_blur": 0, "inpainting_fill": 1, "inpaint_full_res": False}
    response = live.post("img2img", body)
    assert response.status_code == 200, response.text
    result = response.json()
    out = pixels(decode_b64(result["images"][0])).astype(int)
    original = pixels(init).astype(int)
    assert np.abs(out[:, :30] - original[:, :30]).max() <= 2  # unmasked: the original comes back
    assert np.abs(out[:, 34:] - original[:, 34:]).mean() > 5  # masked: repainted
    info = json.loads(result["info"])
    assert "Denoising strength: 0.9" in info["infotexts"][0] and "Mask blur: 0" in info["infotexts"][0]
    assert result["parameters"]["init_images"] is None  # dropped from the echo unless include_init_images


def test_img2img_echoes_init_images_when_asked(live: LiveServer) -> None:
    init = png_b64(gradient_image())
    body = live.post("img2img", {**FAST, "init_images": [init], "include_init_images": True, "seed": 1}).json()
    assert body["parameters"]["init_images"] == [init]


def test_prompt_matrix_script_makes_every_combination_with_one_seed(live: LiveServer) -> None:
    response = live.post("txt2img", {**FAST, "prompt": "a house|red roof|snow", "seed": 600,
                                     "script_name": "prompt MATRIX", "script_args": []})
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])
    assert info["all_prompts"] == ["a house", "a house, red roof", "a house, snow", "a house, red roof, snow"]
    assert info["all_seeds"] == [600] * 4
    images = [pixels(decode_b64(text)) for text in response.json()["images"]]
    assert len(images) == 4 and not np.array_equal(images[0], images[3])


def test_prompt_matrix_different_seeds_and_variable_parts_first(live: LiveServer) -> None:
    body = live.post("txt2img", {**FAST, "prompt": "a boat|at night", "seed": 10, "script_name": "Prompt matrix",
                                 "script_args": [True, True, "positive", "space"]}).json()
    info = json.loads(body["info"])
    assert info["all_prompts"] == ["a boat", "at night a boat"] and info["all_seeds"] == [10, 11]


def test_alwayson_script_processes_the_parameters(live: LiveServer) -> None:
    body = live.post("txt2img", {**FAST, "prompt": "a dog", "seed": 2,
                                 "alwayson_scripts": {"prompt suffix": {"args": ["at the beach"]}}}).json()
    assert json.loads(body["info"])["infotexts"][0].startswith("a dog, at the beach\n")


def test_hires_fix_fields(live: LiveServer) -> None:
    body = live.post("txt2img", {**FAST, "prompt": "a hill", "seed": 4, "enable_hr": True, "hr_scale": 2,
                                 "denoising_strength": 0.5, "hr_second_pass_steps": 1}).json()
    assert decode_b64(body["images"][0]).size == (128, 128)
    infotext = json.loads(body["info"])["infotexts"][0]
    assert "Hires upscale: 2" in infotext and "Hires steps: 1" in infotext and "Hires upscaler: Latent" in infotext
    assert "Denoising strength: 0.5" in infotext


def test_eta_reaches_the_sampler_that_takes_it(live: LiveServer) -> None:
    base = {**FAST, "prompt": "a road", "seed": 8, "sampler_name": "Euler a", "s_churn": 0, "s_noise": 1, "s_tmax": 0}
    default = pixels(decode_b64(live.post("txt2img", base).json()["images"][0]))
    same = pixels(decode_b64(live.post("txt2img", {**base, "eta": 1.0}).json()["images"][0]))
    deterministic = pixels(decode_b64(live.post("txt2img", {**base, "eta": 0.0}).json()["images"][0]))
    assert np.array_equal(default, same)  # 1.0 is Euler a's own eta
    assert not np.array_equal(default, deterministic)


def test_saving_settings_in_override_settings(live: LiveServer) -> None:
    before = set(saved_files(live.data_dir))
    live.post("txt2img", {**FAST, "prompt": "as jpeg", "seed": 31, "save_images": True,
                          "override_settings": {"samples_format": "jpg"}})
    jpegs = sorted((live.data_dir / "outputs").rglob("*-31.jpg"))
    assert len(jpegs) == 1 and set(saved_files(live.data_dir)) == before
    from modules.infotext.files import read_infotext

    assert read_infotext(jpegs[0]).startswith("as jpeg\n")
