"""Every non-generating route over plain HTTP: status, shape and content."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import threading
import time

import numpy as np
import pytest
import requests
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import load_file, save_file

from tests.api.conftest import (
    FAST, LiveServer, decode_b64, gradient_image, pixels, png_b64, write_embedding, write_tiny_lora,
)


def test_samplers_have_a1111_names_aliases_and_default_schedules(live: LiveServer) -> None:
    samplers = {s["name"]: s for s in live.get("samplers").json()}
    assert {"Euler", "Euler a", "DPM++ 2M", "DDIM", "UniPC", "LCM"} <= set(samplers)
    assert samplers["DPM++ 2M"]["aliases"] == ["k_dpmpp_2m"] and samplers["DPM++ 2M"]["options"]["scheduler"] == "karras"
    assert "scheduler" not in samplers["Euler a"]["options"]


def test_schedulers(live: LiveServer) -> None:
    schedulers = {s["name"]: s for s in live.get("schedulers").json()}
    assert schedulers["karras"]["label"] == "Karras" and schedulers["karras"]["default_rho"] == 7.0
    assert schedulers["sgm_uniform"]["aliases"] == ["SGMUniform"] and schedulers["sgm_uniform"]["need_inner_model"]
    assert {"automatic", "exponential", "align_your_steps", "beta"} <= set(schedulers)


def test_upscalers_and_latent_modes(live: LiveServer) -> None:
    listed = live.get("upscalers").json()
    assert [u["name"] for u in listed] == ["None", "Lanczos", "Nearest", "2x-tiny-compact"]
    assert listed[3]["model_name"] == "ESRGAN" and listed[3]["scale"] == 2
    assert listed[3]["model_path"].endswith("ESRGAN/2x-tiny-compact.safetensors") and listed[3]["model_url"] is None
    modes = [m["name"] for m in live.get("latent-upscale-modes").json()]
    assert modes[0] == "Latent" and "Latent (nearest-exact)" in modes


@pytest.mark.parametrize("route", ["hypernetworks", "face-restorers", "realesrgan-models"])
def test_features_we_do_not_have_are_empty_lists(live: LiveServer, route: str) -> None:
    response = live.get(route)
    assert response.status_code == 200 and response.json() == []


def test_sd_models_titles_carry_the_sha256_short_hash(live: LiveServer) -> None:
    models = live.get("sd-models").json()
    assert [m["model_name"] for m in models] == ["sub_tiny-b", "tiny-a"]
    for model in models:
        digest = hashlib.sha256(open(model["filename"], "rb").read()).hexdigest()
        assert model["sha256"] == digest and model["hash"] == digest[:10]
        assert model["title"] == f"{model['filename'].split('Stable-diffusion/')[1]} [{digest[:10]}]"


def test_refresh_checkpoints_finds_a_new_file(live: LiveServer) -> None:
    folder = live.data_dir / "models" / "Stable-diffusion"
    shutil.copy(folder / "tiny-a.safetensors", folder / "tiny-copy.safetensors")
    assert "tiny-copy" not in [m["model_name"] for m in live.get("sd-models").json()]
    response = live.post("refresh-checkpoints")
    assert response.status_code == 200 and response.json() is None
    assert "tiny-copy" in [m["model_name"] for m in live.get("sd-models").json()]


def test_sd_vae_and_refresh_vae(live: LiveServer) -> None:
    assert live.get("sd-vae").json() == []
    vae = live.data_dir / "models" / "VAE" / "soft.vae.safetensors"
    vae.parent.mkdir(parents=True, exist_ok=True)
    save_file({"decoder.conv_in.weight": torch.zeros(1)}, str(vae))
    assert live.post("refresh-vae").status_code == 200
    assert live.get("sd-vae").json() == [{"model_name": "soft.vae.safetensors", "filename": str(vae)}]


def test_prompt_styles(live: LiveServer) -> None:
    assert live.get("prompt-styles").json() == [
        {"name": "watercolor", "prompt": "{prompt} in watercolor", "negative_prompt": "blurry"}]


def test_loras_and_refresh_loras(live: LiveServer) -> None:
    loras = live.get("loras").json()
    assert [(l["name"], l["alias"]) for l in loras] == [("paper-style", "paper")]
    assert loras[0]["metadata"] == {"ss_output_name": "paper"} and loras[0]["path"].endswith("paper-style.safetensors")
    write_tiny_lora(live.data_dir / "models" / "Lora" / "zz-new.safetensors", alias="fresh")
    assert "zz-new" not in [l["name"] for l in live.get("loras").json()]
    assert live.post("refresh-loras").status_code == 200
    assert [l["alias"] for l in live.get("loras").json()] == ["paper", "fresh"]


def test_embeddings_and_refresh_embeddings(live: LiveServer) -> None:
    body = live.get("embeddings").json()
    assert body["loaded"]["shiny"] == {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": 32,
                                       "vectors": 2}
    assert body["skipped"]["for-sd1"]["shape"] == 768 and set(body) == {"loaded", "skipped"}
    write_embedding(live.data_dir / "models" / "embeddings" / "later.safetensors", count=3, width=32)
    response = live.post("refresh-embeddings")
    assert response.status_code == 200 and response.json() is None
    assert live.get("embeddings").json()["loaded"]["later"]["vectors"] == 3


def test_scripts_and_script_info(live: LiveServer) -> None:
    scripts = live.get("scripts").json()
    assert "prompt matrix" in scripts["txt2img"] and "prompt matrix" in scripts["img2img"]
    info = [s for s in live.get("script-info").json() if s["name"] == "prompt matrix"]
    assert [s["is_img2img"] for s in info] == [False, True] and not info[0]["is_alwayson"]
    labels = [a["label"] for a in info[0]["args"]]
    assert labels[:2] == ["Put variable parts at start of prompt", "Use different seed for each picture"]
    assert info[0]["args"][2]["choices"] == ["positive", "negative"]
    assert info[0]["args"][4]["maximum"] == 500
    suffix = next(s for s in live.get("script-info").json() if s["name"] == "prompt suffix")
    assert suffix["is_alwayson"]


def test_extensions_lists_every_extension_folder_as_a1111(live: LiveServer) -> None:
    extensions = live.get("extensions").json()
    assert [e["name"] for e in extensions] == ["just-a-folder", "with-install", "with-scripts"]
    assert extensions[1] == {"name": "with-install", "remote": "", "branch": "", "commit_hash": "", "version": "",
                             "commit_date": 0, "enabled": True}


def test_cmd_flags(live: LiveServer) -> None:
    flags = live.get("cmd-flags").json()
    assert flags["nowebui"] is True and flags["api"] is False and flags["data_dir"] == str(live.data_dir)
    assert flags["port"] == int(live.url.rsplit(":", 1)[1]) and flags["api_auth"] is None


def test_memory(live: LiveServer) -> None:
    memory = live.get("memory").json()
    assert memory["ram"]["total"] > memory["ram"]["free"] > 0 and memory["ram"]["used"] > 10 * 2**20
    assert "error" in memory["cuda"] or memory["cuda"]["system"]["total"] > 0


def test_options_round_trip_is_persisted(live: LiveServer) -> None:
    before = live.get("options").json()
    assert before["samples_format"] == "png" and "sd_checkpoint_hash" in before
    response = live.post("options", {"jpeg_quality": 55, "sd_model_checkpoint": "tiny-a",
                                     "sd_checkpoint_hash": "ignored"})
    assert response.status_code == 200 and response.json() is None
    after = live.get("options").json()
    assert after["jpeg_quality"] == 55 and after["sd_model_checkpoint"].startswith("tiny-a.safetensors [")
    saved = json.loads((live.data_dir / "config.json").read_text())
    assert saved["jpeg_quality"] == 55 and saved["sd_model_checkpoint"] == after["sd_model_checkpoint"]
    body = live.post("txt2img", {**FAST, "prompt": "x", "seed": 1}).json()
    assert "Model: tiny-a," in json.loads(body["info"])["infotexts"][0]
    live.post("options", {"jpeg_quality": before["jpeg_quality"], "sd_model_checkpoint": before["sd_model_checkpoint"]})
    assert live.get("options").json()["sd_model_checkpoint"] == before["sd_model_checkpoint"]


@pytest.mark.parametrize("changes, field, reason", [
    ({"uni_pc_variant": "bh3"}, "uni_pc_variant", "must be one of bh1, bh2, vary_coeff"),
    ({"uni_pc_skip_type": "uniform"}, "uni_pc_skip_type", "must be one of time_uniform, time_quadratic, logSNR"),
    ({"uni_pc_order": 0}, "uni_pc_order", "between 1 and 50"),
    ({"uni_pc_lower_order_final": "yes"}, "uni_pc_lower_order_final", "expected bool"),
])
def test_unipc_settings_are_validated_in_options_and_overrides(live: LiveServer, changes, field, reason) -> None:
    before = live.get("options").json()
    assert (before["uni_pc_variant"], before["uni_pc_skip_type"], before["uni_pc_order"],
            before["uni_pc_lower_order_final"]) == ("bh1", "time_uniform", 3, True)
    refused = live.post("options", changes)
    assert refused.status_code == 422 and field in refused.text and reason in refused.text
    assert live.get("options").json() == before
    overridden = live.post("txt2img", {**FAST, "prompt": "x", "sampler_name": "UniPC", "override_settings": changes})
    assert overridden.status_code == 422 and f"override_settings.{field}" in overridden.text
    assert reason in overridden.text


def test_unipc_settings_change_only_unipcs_picture_and_stay_out_of_the_infotext(live: LiveServer) -> None:
    settings = {"uni_pc_variant": "vary_coeff", "uni_pc_skip_type": "logSNR", "uni_pc_order": 2}
    for sampler, changes in (("UniPC", True), ("Euler", False)):
        request = {**FAST, "prompt": "x", "seed": 3, "steps": 6, "sampler_name": sampler}
        plain = live.post("txt2img", request).json()
        overridden = live.post("txt2img", {**request, "override_settings": settings}).json()
        assert (plain["images"][0] != overridden["images"][0]) is changes, sampler
        infotext = json.loads(overridden["info"])["infotexts"][0]
        assert "UniPC variant" not in infotext and "UniPC order" not in infotext  # A1111 writes none of them
        assert "skip_type" not in infotext and "variant" not in infotext


def test_unload_and_reload_checkpoint(live: LiveServer) -> None:
    live.post("txt2img", {**FAST, "prompt": "x", "seed": 1})
    assert live.runtime.models.loaded_keys()
    assert live.post("unload-checkpoint").json() == {}
    assert live.runtime.models.loaded_keys() == []
    assert live.post("reload-checkpoint").json() == {}
    default = live.get("options").json()["sd_model_checkpoint"]
    assert [key.checkpoint.title for key in live.runtime.models.loaded_keys()] == [default]


def test_png_info_reads_parameters_and_other_chunks(live: LiveServer) -> None:
    generated = live.post("txt2img", {**FAST, "prompt": "a kite", "seed": 123}).json()["images"][0]
    body = live.post("png-info", {"image": "data:image/png;base64," + generated}).json()
    assert body["info"].startswith("a kite\nSteps: 2") and body["parameters"]["Seed"] == "123"
    assert body["parameters"]["Prompt"] == "a kite" and body["parameters"]["Size-1"] == "64"
    plain = gradient_image()
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "paint")
    buffer = io.BytesIO()
    plain.save(buffer, format="PNG", pnginfo=info)
    body = live.post("png-info", {"image": base64.b64encode(buffer.getvalue()).decode()}).json()
    assert body == {"info": "", "items": {"Software": "paint"}, "parameters": {}}


def test_extra_single_image_upscales_like_pil_and_keeps_the_parameters(live: LiveServer) -> None:
    source = gradient_image(32)
    source.info["parameters"] = "kept"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a kept infotext\nSteps: 2, Sampler: Euler, Seed: 1")
    buffer = io.BytesIO()
    source.save(buffer, format="PNG", pnginfo=info)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    body = live.post("extra-single-image", {"image": encoded, "upscaler_1": "Lanczos", "upscaling_resize": 2}).json()
    result = decode_b64(body["image"])
    assert result.size == (64, 64)
    assert np.array_equal(pixels(result), pixels(source.resize((64, 64), Image.Resampling.LANCZOS)))
    assert result.info["parameters"].startswith("a kept infotext") and "Lanczos" in body["html_info"]
    untouched = decode_b64(live.post("extra-single-image", {"image": encoded}).json()["image"])
    assert np.array_equal(pixels(untouched), pixels(source))  # upscaler "None" leaves the image as it is
    cropped = decode_b64(live.post("extra-single-image", {
        "image": encoded, "upscaler_1": "Nearest", "resize_mode": 1, "upscaling_resize_w": 96,
        "upscaling_resize_h": 48}).json()["image"])
    assert cropped.size == (96, 48)
    assert np.array_equal(pixels(cropped), pixels(source.resize((96, 96), Image.Resampling.NEAREST))[24:72])


def test_extra_single_image_with_a_model_upscaler_runs_the_model(live: LiveServer) -> None:
    source = gradient_image(24)
    body = live.post("extra-single-image", {"image": png_b64(source), "upscaler_1": "2x-tiny-compact",
                                            "upscaling_resize": 2}).json()
    result = decode_b64(body["image"])
    assert result.size == (48, 48)
    # the same weights run directly (a 24px image is one tile at the default tile size of 192)
    state = load_file(str(live.data_dir / "models" / "ESRGAN" / "2x-tiny-compact.safetensors"))
    x = torch.from_numpy(pixels(source).astype(np.float32) / 255).permute(2, 0, 1)[None]
    net = torch.nn.Sequential(*[torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.PReLU(8), torch.nn.Conv2d(8, 8, 3, padding=1),
                                torch.nn.PReLU(8), torch.nn.Conv2d(8, 12, 3, padding=1)])
    net.load_state_dict({k.removeprefix("body."): v for k, v in state.items()})
    with torch.no_grad():
        expected = torch.nn.functional.pixel_shuffle(net(x), 2) + torch.nn.functional.interpolate(x, scale_factor=2)
    expected = np.round(expected[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert np.abs(pixels(result).astype(int) - expected.astype(int)).max() <= 1
    assert "Postprocess upscale by: 2, Postprocess upscaler: 2x-tiny-compact" in body["html_info"]
    assert decode_b64(body["image"]).info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: 2x-tiny-compact"


def test_extra_batch_images(live: LiveServer) -> None:
    images = [{"data": png_b64(gradient_image(16)), "name": "a.png"}, {"data": png_b64(gradient_image(24)), "name": "b"}]
    body = live.post("extra-batch-images", {"imageList": images, "upscaler_1": "Nearest", "upscaling_resize": 3}).json()
    assert [decode_b64(text).size for text in body["images"]] == [(48, 48), (72, 72)]


def test_docs_and_openapi(live: LiveServer) -> None:
    docs = requests.get(live.url + "/docs", timeout=30)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = requests.get(live.url + "/openapi.json", timeout=30).json()["paths"]
    assert {"/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/options", "/sdapi/v1/progress"} <= set(paths)
    assert "sampler_index" in json.dumps(requests.get(live.url + "/openapi.json", timeout=30).json()["components"])


# ----- progress, interrupt, skip: a long generation in the background -----

LONG = {"width": 64, "height": 64, "steps": 150, "sampler_name": "Euler", "prompt": "long", "seed": 50}


def in_background(live: LiveServer, body: dict) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def call() -> None:
        response = live.post("txt2img", body)
        result["status"], result["body"] = response.status_code, response.json()

    thread = threading.Thread(target=call)
    thread.start()
    return thread, result


def wait_until_sampling(live: LiveServer, minimum_step: int = 1) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = live.get("progress").json()
        if progress["state"]["sampling_step"] >= minimum_step:
            return progress
        time.sleep(0.02)
    raise AssertionError("the generation did not start")


def test_progress_while_running_and_interrupt(live: LiveServer) -> None:
    idle = live.get("progress").json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0 and idle["current_image"] is None
    live.post("options", {"show_progress_every_n_steps": 1})
    try:
        thread, result = in_background(live, {**LONG, "n_iter": 3})
        progress = wait_until_sampling(live, minimum_step=2)
        assert 0 < progress["progress"] < 1 and progress["state"]["sampling_steps"] == 150
        assert progress["state"]["job_count"] >= 1 and progress["state"]["job"].startswith("job-")
        assert progress["eta_relative"] > 0 and progress["textinfo"].startswith("Step ")
        assert decode_b64(progress["current_image"]).size[0] > 0
        assert live.get("progress", params={"skip_current_image": "true"}).json()["current_image"] is None
        assert live.post("interrupt").json() == {}
        thread.join(timeout=120)
    finally:
        live.post("options", {"show_progress_every_n_steps": 10})
    assert result["status"] == 200
    assert len(result["body"]["images"]) < 3  # stopped early: only what was finished comes back
    assert live.get("progress").json()["state"]["job_count"] == 0


def test_skip_ends_the_current_image_only(live: LiveServer) -> None:
    thread, result = in_background(live, {**LONG, "n_iter": 2, "steps": 40, "seed": 70})
    wait_until_sampling(live)
    response = live.post("skip")
    assert response.status_code == 200 and response.json() is None
    thread.join(timeout=120)
    assert result["status"] == 200
    assert json.loads(result["body"]["info"])["all_seeds"] == [71]  # the first image was skipped
