"""One path for every job: the page's handler, the HTTP API and the command line build a job with
the same function and run it through the same engine path, so the same parameters give the same
bytes, settings and always-on scripts included."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from PIL import Image

from modules import cli
from modules.extensions.scripts import ALWAYS_VISIBLE, Script, ScriptArg
from modules.infotext.files import read_infotext
from modules.job_spec import job_params
from modules.options import Options
from modules.sampling.noise import RngSource
from tests.api.conftest import decode_b64, make_data_dir, start_live_server
from tests.networks.test_lora import write_kohya_lora
from webui.forms import txt2img_params
from webui.progress import wait_for_results
from webui.tabs.generation import Submission, submit_jobs

PROMPT = "a cat <lora:kohya:0.8> shiny"
SETTINGS = {"CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": 31337, "eta_ancestral": 0.5}


class InvertImages(Script):
    """An always-on test script acting inside the job: inverts each image when its arg is true and
    says so in the infotext."""

    def title(self) -> str:
        return "Invert images"

    def show(self, is_img2img: bool):
        return ALWAYS_VISIBLE

    def args_info(self) -> list[ScriptArg]:
        return [ScriptArg("Invert", False)]

    def begin(self, run, args: Sequence) -> None:
        if args[0]:
            run.extra_generation_params["Inverted"] = "True"

    def postprocess_image(self, run, batch, index, image, args: Sequence):
        return Image.eval(image, lambda value: 255 - value) if args[0] else image


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data_dir = make_data_dir(tmp_path_factory.mktemp("one-path"))
    write_kohya_lora(data_dir / "models" / "Lora" / "kohya.safetensors")
    running = start_live_server(data_dir, "--nowebui")
    running.runtime.scripts.register(InvertImages())
    running.runtime.update_options(SETTINGS)  # saved in config.json, read by the CLI too
    yield running
    running.stop()


def ui_generate(server, **fields) -> tuple[np.ndarray, str]:
    """The txt2img tab's Generate: the form's values by field name -> the jobs -> the results."""
    named = {"prompt": PROMPT, "negative_prompt": "", "styles": ["watercolor"], "sampler_name": "Euler a",
             "scheduler": "Automatic", "steps": 3, "width": 64, "height": 64, "n_iter": 1, "batch_size": 1,
             "cfg_scale": 5.0, "seed": 1234, "seed_extra": False, **fields}
    ids = submit_jobs(server.runtime, [Submission(txt2img_params(named, server.runtime.options.current))])
    (result,), errors = wait_for_results(server.runtime, ids)
    assert errors == []
    return np.asarray(result.image), result.infotext


def api_generate(server, **fields) -> tuple[np.ndarray, str]:
    body = {"prompt": PROMPT, "styles": ["watercolor"], "sampler_name": "Euler a", "steps": 3, "width": 64,
            "height": 64, "cfg_scale": 5.0, "seed": 1234, **fields}
    response = server.post("txt2img", body)
    assert response.status_code == 200, response.text
    image = decode_b64(response.json()["images"][0])
    return np.asarray(image.convert("RGB")), image.info["parameters"]


def cli_generate(server, tmp_path: Path, *flags: str) -> tuple[np.ndarray, str]:
    out = tmp_path / "cli"
    argv = ["--data-dir", str(server.data_dir), "--prompt", PROMPT, "--style", "watercolor", "--sampler", "Euler a",
            "--ddim_steps", "3", "--W", "64", "--H", "64", "--scale", "5", "--seed", "1234", "--n_samples", "1",
            "--n_iter", "1", "--skip_grid", "--outdir", str(out), *flags]
    assert cli.run("txt2img", argv, server.data_dir) == 0
    (path,) = sorted((out / "samples").iterdir())
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")), read_infotext(path)


def test_page_api_and_cli_give_the_same_bytes_with_styles_lora_embedding_and_settings(server, tmp_path: Path) -> None:
    ui_image, ui_text = ui_generate(server)
    api_image, api_text = api_generate(server)
    cli_image, cli_text = cli_generate(server, tmp_path)
    assert ui_text == api_text == cli_text
    assert np.array_equal(ui_image, api_image) and np.array_equal(ui_image, cli_image)
    # Everything in play reached the job: the style, the LoRA, the embedding and the three settings.
    assert ui_text.startswith("a cat <lora:kohya:0.8> shiny in watercolor\nNegative prompt: blurry\n")
    for field in ("Lora hashes: ", "TI hashes: ", "Clip skip: 2", "ENSD: 31337", "Eta: 0.5"):
        assert field in ui_text, field


def test_a_request_field_wins_over_the_setting_in_every_entry_point(server, tmp_path: Path) -> None:
    # The eta setting is 0.5 for ancestral samplers; the request asks for 0.9.
    api_image, api_text = api_generate(server, eta=0.9)
    cli_image, cli_text = cli_generate(server, tmp_path, "--ddim_eta", "0.9")
    params = txt2img_params({"sampler_name": "Euler a", "eta": 0.9}, server.runtime.options.current)
    assert "Eta: 0.9" in api_text and cli_text == api_text and np.array_equal(api_image, cli_image)
    assert dict(params.sampler_knobs) == {"eta": 0.5}  # the page has no eta field: the setting applies


def test_an_always_on_script_changes_the_image_the_same_way_through_the_page_and_the_api(server) -> None:
    plain, _ = api_generate(server)
    ui_image, ui_text = ui_generate(server, alwayson_scripts=(("Invert images", (True,)),))
    api_image, api_text = api_generate(server, alwayson_scripts={"Invert images": {"args": [True]}})
    assert ui_text == api_text and "Inverted: True" in api_text
    assert np.array_equal(ui_image, api_image)
    assert np.array_equal(api_image, 255 - plain)


@pytest.mark.parametrize("field, setting, given, value", [
    ("clip_skip", {"CLIP_stop_at_last_layers": 3}, 2, 2),
    ("eta_noise_seed_delta", {"eta_noise_seed_delta": 5}, 7, 7),
    ("rng", {"randn_source": "GPU"}, RngSource.CPU, RngSource.CPU),
    ("sde_batch_determinism", {"no_dpmpp_sde_batch_determinism": True}, True, True),
])
def test_job_params_take_a_given_field_over_its_setting(field: str, setting: dict, given, value) -> None:
    options = Options(**setting)
    assert getattr(job_params("txt2img", {}, options), field) != value  # the setting alone
    assert getattr(job_params("txt2img", {field: given}, options), field) == value
    # ...and a setting the request overrides for itself wins over both.
    key = next(iter(setting))
    assert getattr(job_params("txt2img", {field: given}, options, overridden={key}), field) != value


def test_eta_is_given_only_to_samplers_that_take_it_and_left_out_at_its_neutral_value() -> None:
    options = Options(eta_ancestral=0.5, eta_ddim=0.25)
    assert dict(job_params("txt2img", {"sampler_name": "Euler a"}, options).sampler_knobs) == {"eta": 0.5}
    assert dict(job_params("txt2img", {"sampler_name": "DDIM"}, options).sampler_knobs) == {"eta": 0.25}
    assert job_params("txt2img", {"sampler_name": "Euler"}, options).sampler_knobs == ()
    assert job_params("txt2img", {"sampler_name": "DDIM", "eta": 0.0}, options).sampler_knobs == ()
    assert job_params("txt2img", {"sampler_name": "Euler a", "s_noise": 1.0}, Options()).sampler_knobs == ()
