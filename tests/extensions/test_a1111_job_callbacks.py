"""An extension's callbacks inside jobs: ``on_cfg_denoiser`` / ``on_cfg_denoised`` /
``on_cfg_after_cfg`` run inside the guided denoiser every step with A1111's params objects, what
they change is what the sampler gets, and one that raises is isolated (reported, dropped, the
generation goes on); ``on_before_image_saved`` / ``on_image_saved`` around each written image
(their changes to the file's text honoured); ``on_model_loaded`` and ``shared.sd_model``. The
extension is loaded by the start-up path and driven through the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modules import script_callbacks, shared
from tests.api.conftest import FAST, decode_b64, make_data_dir
from tests.extensions.started import started_app

CALLBACKS = '''
from modules import script_callbacks

MODE = {"uncond_as_cond": False, "raise_at": None}
SEEN = []


def denoiser(params):
    SEEN.append(("denoiser", params.sampling_step, params.total_sampling_steps, tuple(params.x.shape),
                 tuple(params.sigma.shape), params.text_cond.shape[0], params.text_uncond.shape[0],
                 params.image_cond is None, params.denoiser.step))
    if MODE["raise_at"] == params.sampling_step:
        raise RuntimeError("cfg callback fails")
    if MODE["uncond_as_cond"]:
        params.text_uncond = params.text_cond


def denoised(params):
    SEEN.append(("denoised", params.sampling_step, tuple(params.x.shape)))


def after_cfg(params):
    SEEN.append(("after_cfg", params.sampling_step, tuple(params.x.shape)))


def before_saved(params):
    SEEN.append(("before_saved", params.filename, params.p.prompt))
    params.pnginfo["parameters"] += ", Saved by: cfg-watch"


def saved(params):
    import os
    SEEN.append(("saved", params.filename, os.path.isfile(params.filename)))


def model_loaded(sd_model):
    SEEN.append(("model_loaded", sd_model.sd_checkpoint_info.name, sd_model.is_sd1, sd_model.is_sdxl))


script_callbacks.on_before_image_saved(before_saved)
script_callbacks.on_image_saved(saved)
script_callbacks.on_model_loaded(model_loaded)
script_callbacks.on_cfg_denoiser(denoiser)
script_callbacks.on_cfg_denoised(denoised)
script_callbacks.on_cfg_after_cfg(after_cfg)
'''


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    extensions = {"cfg-watch": {"scripts/cfg_watch.py": CALLBACKS}}
    with started_app(make_data_dir(tmp_path_factory.mktemp("cfg-callbacks")), extensions, "--api", "--nowebui") as app:
        yield app.client, app.module("cfg-watch")


def txt2img(client, **fields) -> list[np.ndarray]:
    response = client.post("/sdapi/v1/txt2img", json={**FAST, "prompt": "a cat", "seed": 5, **fields})
    assert response.status_code == 200, response.text
    return [np.asarray(decode_b64(text).convert("RGB"), dtype=np.int16) for text in response.json()["images"]]


def test_the_callbacks_run_every_step_in_order_with_every_row(api) -> None:
    client, module = api
    module.SEEN.clear()
    txt2img(client, steps=3, batch_size=2)
    calls = [entry for entry in module.SEEN if entry[0] in ("denoiser", "denoised", "after_cfg")]
    assert calls[:3] == [
        ("denoiser", 0, 3, (4, 4, 32, 32), (4,), 2, 2, True, 0),  # two cond rows, then two uncond rows
        ("denoised", 0, (4, 4, 32, 32)),
        ("after_cfg", 0, (2, 4, 32, 32)),  # one guided result per image
    ]
    assert [entry[1] for entry in calls if entry[0] == "denoiser"] == [0, 1, 2]  # Euler: one call per step


def test_a_callback_s_change_to_the_tensors_is_what_runs(api) -> None:
    client, module = api
    guided = txt2img(client, cfg_scale=7.0)[0]
    module.MODE["uncond_as_cond"] = True
    try:
        same_texts = txt2img(client, cfg_scale=7.0)[0]
    finally:
        module.MODE["uncond_as_cond"] = False
    conditional_only = txt2img(client, cfg_scale=1.0)[0]
    # uncond + 7 (cond - cond) = cond: the picture of scale 1 (up to float rounding of the batched call)
    assert np.abs(same_texts - conditional_only).max() <= 2
    assert np.abs(guided - conditional_only).mean() > 5 * max(np.abs(same_texts - conditional_only).mean(), 0.1)


def test_image_saved_callbacks_see_the_file_and_change_its_text(api) -> None:
    client, module = api
    module.SEEN.clear()
    response = client.post("/sdapi/v1/txt2img", json={**FAST, "prompt": "a dog", "seed": 3, "save_images": True})
    assert response.status_code == 200, response.text
    saves = [entry for entry in module.SEEN if entry[0] in ("before_saved", "saved")]
    assert [entry[0] for entry in saves] == ["before_saved", "saved"]
    path = Path(saves[0][1])
    assert saves[0][2] == "a dog" and saves[1] == ("saved", str(path), True)
    with Image.open(path) as written:
        assert written.info["parameters"].endswith(", Saved by: cfg-watch")  # the callback's change is in the file
    returned = decode_b64(response.json()["images"][0]).info["parameters"]
    assert "Saved by" not in returned  # the response carries the generation's own infotext, as A1111's


def test_model_loaded_callback_and_shared_sd_model(api) -> None:
    client, module = api
    module.SEEN.clear()
    txt2img(client, override_settings={"sd_model_checkpoint": "tiny-a"})  # not loaded yet: the others used tiny-b
    loads = [entry for entry in module.SEEN if entry[0] == "model_loaded"]
    assert loads == [("model_loaded", "tiny-a.safetensors", True, False)]
    assert shared.sd_model.sd_checkpoint_info.name == "tiny-a.safetensors" and shared.sd_model.is_sd1
    assert shared.sd_model is shared.sd_model  # one view per model, not a new one (and a file read) per access
    txt2img(client, override_settings={"sd_model_checkpoint": "tiny-b"})
    assert shared.sd_model.sd_checkpoint_info.name == "sub/tiny-b.safetensors"


def test_a_failing_callback_disables_its_extension_and_the_generation_goes_on(api) -> None:
    client, module = api
    before = txt2img(client)[0]
    module.MODE["raise_at"] = 1
    try:
        during = txt2img(client)[0]
        module.SEEN.clear()
        after = txt2img(client)[0]
    finally:
        module.MODE["raise_at"] = None
    assert any("cfg callback fails" in error and "disabled until the next start" in error
               for error in script_callbacks.errors)
    assert np.array_equal(during, before) and np.array_equal(after, before)  # it changed nothing when it ran
    assert module.SEEN == []  # its extension is disabled until the next start: none of its callbacks runs
