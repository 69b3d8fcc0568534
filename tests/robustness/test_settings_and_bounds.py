"""Settings that would poison later requests are refused before they are stored; output folders
are the operator's to choose; request bodies are bounded."""

from __future__ import annotations

import json

import pytest
import requests
from safetensors.torch import save_file

from tests.api.conftest import FAST, LiveServer, start_live_server, write_tiny_model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("settings")
    write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=6)
    (root / "models" / "VAE").mkdir(parents=True)
    running = start_live_server(root, "--nowebui", register_scripts=False)
    yield running
    running.stop()


def config_text(server: LiveServer) -> str:
    path = server.runtime.config.options_file
    return path.read_text(encoding="utf-8") if path.exists() else ""


def refused(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {".".join(str(p) for p in item["loc"][1:]): item["msg"] for item in response.json()["detail"]}


@pytest.mark.parametrize("key, value, reason", [
    ("sd_vae", "no-such-vae.safetensors", "no checkpoint matches"),
    ("sd_vae", "../../etc/passwd", "no checkpoint matches"),
    ("txt2img_default_sampler", "Euler z", "unknown sampler"),
    ("sd_model_checkpoint", "missing.safetensors", "no checkpoint matches"),
    ("eta_ancestral", float("nan"), "between"),
    ("jpeg_quality", float("inf"), "expected int"),
    ("samples_format", "exe", "must be one of"),
    ("CLIP_stop_at_last_layers", True, "expected int"),
])
def test_a_setting_that_names_nothing_or_is_out_of_range_is_not_stored(server: LiveServer, key: str, value,
                                                                      reason: str) -> None:
    before = config_text(server)
    answer = requests.post(server.api("options"), data=json.dumps({key: value}),
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert reason.lower() in refused(answer)[key].lower()
    assert config_text(server) == before
    made = server.post("txt2img", {**FAST, "prompt": "still works"})
    assert made.status_code == 200


def test_a_real_vae_and_sampler_are_accepted_and_used(server: LiveServer) -> None:
    vae = server.data_dir / "models" / "VAE" / "other.vae.safetensors"
    tiny = server.runtime.acquire_model()
    save_file({f"first_stage_model.{k}": v.float().contiguous() for k, v in tiny.vae.state_dict().items()}, str(vae))
    server.post("refresh-vae")
    try:
        assert server.post("options", {"sd_vae": "other.vae", "txt2img_default_sampler": "DPM++ 2M Karras"}
                           ).status_code == 200
        stored = json.loads(config_text(server))
        assert stored["sd_vae"] == "other.vae.safetensors" and stored["txt2img_default_sampler"] == "DPM++ 2M Karras"
        made = server.post("txt2img", {**FAST, "prompt": "with a vae"})
        assert made.status_code == 200 and "VAE: other.vae" in made.json()["info"]
    finally:
        server.post("options", {"sd_vae": "Automatic", "txt2img_default_sampler": "DPM++ 2M"})
        vae.unlink()
        server.post("refresh-vae")


def test_a_body_larger_than_the_setting_is_413(server: LiveServer) -> None:
    assert server.post("options", {"api_max_request_mb": 1}).status_code == 200
    try:
        big = {**FAST, "prompt": "x" * (2 * 1024 * 1024)}
        answer = server.post("txt2img", big)
        assert answer.status_code == 413 and "api_max_request_mb" in answer.json()["detail"]
        chunked = requests.post(server.api("txt2img"), data=iter([json.dumps(big).encode()]),
                                headers={"Content-Type": "application/json"}, timeout=60)  # no Content-Length
        assert chunked.status_code == 413
        assert server.post("txt2img", {**FAST, "prompt": "small"}).status_code == 200
    finally:
        assert server.post("options", {"api_max_request_mb": 32}).status_code == 200


def test_output_folders_cannot_be_changed_from_the_network(tmp_path) -> None:
    write_tiny_model(tmp_path / "models" / "Stable-diffusion" / "tiny.safetensors", seed=6)
    server = start_live_server(tmp_path, "--nowebui", "--share", register_scripts=False)  # reachable by others
    try:
        before = config_text(server)
        for key in ("outdir_samples", "outdir_txt2img_samples", "outdir_grids"):
            assert "cannot be changed" in refused(server.post("options", {key: "/etc"}))[key]
        assert config_text(server) == before
        assert server.post("options", {"outdir_samples": ""}).status_code == 200  # unchanged value: accepted
        assert server.post("options", {"jpeg_quality": 90}).status_code == 200  # other settings still change
    finally:
        server.stop()


@pytest.mark.parametrize("prompt", ["[red:blue:1e309]", "[red:blue:-1e309]", "[red:blue:nan]"])
def test_a_prompt_edit_at_an_overflowing_step_does_not_fail(server: LiveServer, prompt: str) -> None:
    made = server.post("txt2img", {**FAST, "prompt": prompt})
    assert made.status_code == 200, made.text
    assert len(made.json()["images"]) == 1


@pytest.mark.parametrize("vae", ["../../x", "no-such-vae"])
def test_an_unknown_vae_override_is_422_naming_the_setting(server: LiveServer, vae: str) -> None:
    before = config_text(server)
    found = refused(server.post("txt2img", {**FAST, "override_settings": {"sd_vae": vae}}))
    assert "no checkpoint matches" in found["override_settings.sd_vae"]
    assert config_text(server) == before
    assert server.post("txt2img", {**FAST, "prompt": "after"}).status_code == 200


@pytest.mark.parametrize("field, text, reason", [
    ("prompt", "cat " * 10_000, "at most 20000"), ("negative_prompt", "x" * 20_001, "at most 20000"),
    ("prompt", "a BREAK " * 65, "at most 64"),
])
def test_an_oversized_prompt_is_422_naming_the_field(server: LiveServer, field: str, text: str, reason: str) -> None:
    assert reason in refused(server.post("txt2img", {**FAST, field: text}))[field]
    assert server.post("txt2img", {**FAST, "prompt": "a BREAK " * 64}).status_code == 200


@pytest.mark.parametrize("fields, name", [
    ({"width": 2048, "height": 2048, "batch_size": 8}, "batch_size"),
    ({"width": 1024, "height": 1024, "batch_size": 8, "enable_hr": True, "hr_scale": 2.0,
      "hr_upscaler": "Latent"}, "hr_scale"),
])
def test_a_batch_of_too_many_pixels_is_422_naming_what_to_lower(server: LiveServer, fields: dict, name: str) -> None:
    problems = refused(server.post("txt2img", {**FAST, **fields}))
    assert "megapixels" in problems[name] and "at most 16.8" in problems[name]
    assert server.post("txt2img", {**FAST, "prompt": "after"}).status_code == 200
