"""The bundled model: an SD1-layout file that the app picks by default and that draws what it is asked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

import pytest
import torch
from safetensors import safe_open

from modules.config import parse_config
from modules.demo.evaluate import read_picture
from modules.models.detect import detect_checkpoint
from modules.models.families import ModelFamily, Prediction
from modules.models.safe_load import read_safetensors_metadata
from modules.jobs import Job
from modules.params import Txt2ImgParams
from modules.pipeline.generate import generate_txt2img
from modules.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "models" / "Stable-diffusion" / "shapes-demo.safetensors"


def test_the_file_is_a_small_fp16_sd1_checkpoint_with_modelspec() -> None:
    assert BUNDLED.stat().st_size <= 25 * 10**6
    detected = detect_checkpoint(BUNDLED)
    assert detected.family is ModelFamily.SD1 and detected.prediction is Prediction.EPS
    assert len(detected.vae.ch_mult) == 4 and detected.vae.embed_dim == 4  # f = 8, 4 latent channels
    assert detected.text_encoder.vocab_size == 49408 and detected.unet.context_dim == detected.text_encoder.hidden_size
    with safe_open(str(BUNDLED), framework="pt") as handle:
        assert {handle.get_slice(k).get_dtype() for k in handle.keys()} == {"F16"}
    metadata = read_safetensors_metadata(BUNDLED)
    assert metadata["modelspec.title"] == "Shapes demo"
    assert metadata["modelspec.resolution"] == "64x64"
    assert metadata["modelspec.prediction_type"] == "epsilon"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    data = tmp_path_factory.mktemp("data")
    config = parse_config(["--data-dir", str(data), "--models-dir", str(ROOT / "models")], ROOT)
    return Runtime(config, cuda_available=False)


def test_a_fresh_install_defaults_to_the_bundled_model_at_its_native_size(runtime: Runtime) -> None:
    assert runtime.resolve_checkpoint().path == BUNDLED
    assert runtime.default_size() == (64, 64)


@pytest.mark.parametrize(
    ("prompt", "colour", "background"),
    [
        ("a yellow star on a purple background", "yellow", "purple"),
        ("a red circle on a blue background", "red", "blue"),
        ("blue circle, orange background", "blue", "orange"),  # the looser phrasing
    ],
)
def test_prompts_give_their_colours(runtime: Runtime, prompt: str, colour: str, background: str) -> None:
    params = Txt2ImgParams(prompt=prompt, width=64, height=64, steps=10, seed=11, batch_size=2)
    images = runtime.submit(params).future.result(timeout=120)
    for result in images:
        reading = read_picture(result.image)
        assert (reading.colour, reading.background) == (colour, background), reading
        assert "Model: shapes-demo" in result.infotext



def test_live_previews_use_the_models_own_latent_colours(runtime: Runtime) -> None:
    model = runtime.acquire_model()
    declared = json.loads(read_safetensors_metadata(BUNDLED)["modelspec.latent_rgb_factors"])
    assert [list(row) for row in model.preview_factors] == declared
    params = Txt2ImgParams(prompt="a yellow star on a purple background", width=64, height=64, steps=4, seed=3)
    previews = {}
    for name, factors in (("zero", ((0.0, 0.0, 0.0),) * 4), ("declared", model.preview_factors)):
        job = Job("preview-test", lambda job: None)
        generate_txt2img(dataclasses.replace(model, preview_factors=factors), params.validate(), None, job, preview_every=4)
        previews[name] = np.asarray(job.progress.preview)
    assert previews["zero"].shape == (8, 8, 3) and np.all(previews["zero"] == 128)  # (0 + 1) * 127.5, rounded
    assert previews["declared"].std() > 10  # the declared map draws the picture
