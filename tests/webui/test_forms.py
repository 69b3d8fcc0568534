"""The form binding without a browser: values dict -> params, params -> values, paste, job settings."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image

from modules.options import Options
from modules.params import Img2ImgParams, InpaintFill, ParamsError, Txt2ImgParams
from modules.pipeline.images import ResizeMode
from modules.sampling.noise import RngSource
from webui.forms import img2img_params, params_to_values, resized_size, txt2img_params, values_from_infotext

FORM = {
    "prompt": "a cat", "negative_prompt": "blurry", "styles": ["Film"], "sampler_name": "Euler a",
    "scheduler": "Karras", "steps": 12.0, "width": 320.0, "height": 256.0, "n_iter": 2.0, "batch_size": 3.0,
    "cfg_scale": 6.5, "seed": 42.0, "seed_extra": True, "subseed": 7.0, "subseed_strength": 0.25,
    "seed_resize_from_w": 0.0, "seed_resize_from_h": 0.0, "enable_hr": True, "hr_upscaler": "Lanczos",
    "hr_second_pass_steps": 5.0, "denoising_strength": 0.4, "hr_scale": 1.5, "hr_resize_x": 0.0, "hr_resize_y": 0.0,
    "script": "None",
}


def test_values_become_typed_params() -> None:
    params = txt2img_params(FORM, Options())
    assert params == Txt2ImgParams(
        prompt="a cat", negative_prompt="blurry", styles=("Film",), sampler_name="Euler a", scheduler="Karras",
        steps=12, width=320, height=256, n_iter=2, batch_size=3, cfg_scale=6.5, seed=42, subseed=7,
        subseed_strength=0.25, enable_hr=True, hr_upscaler="Lanczos", hr_second_pass_steps=5,
        denoising_strength=0.4, hr_scale=1.5, clip_skip=1, rng=RngSource.CPU,
    )
    assert isinstance(params.steps, int) and isinstance(params.seed, int)


def test_variation_seed_applies_only_with_extra_ticked() -> None:
    params = txt2img_params({**FORM, "seed_extra": False, "seed_resize_from_w": 128.0}, Options())
    assert (params.subseed, params.subseed_strength, params.seed_resize_from_w) == (-1, 0.0, 0)


def test_bad_numbers_name_the_field() -> None:
    with pytest.raises(ParamsError) as missing:
        txt2img_params({**FORM, "steps": None}, Options())
    assert missing.value.field == "steps" and "number" in missing.value.reason
    with pytest.raises(ParamsError) as fraction:
        txt2img_params({**FORM, "seed": 1.5}, Options())
    assert fraction.value.field == "seed" and "whole number" in fraction.value.reason


def test_settings_travel_with_each_job() -> None:
    options = Options(CLIP_stop_at_last_layers=2, eta_noise_seed_delta=31337, randn_source="GPU", eta_ancestral=0.5,
                      eta_ddim=0.3)
    ancestral = txt2img_params(FORM, options)
    assert (ancestral.clip_skip, ancestral.eta_noise_seed_delta, ancestral.rng) == (2, 31337, RngSource.GPU)
    assert dict(ancestral.sampler_knobs) == {"eta": 0.5}
    ddim = txt2img_params({**FORM, "sampler_name": "DDIM"}, options)
    assert dict(ddim.sampler_knobs) == {"eta": 0.3}
    no_eta = txt2img_params({**FORM, "sampler_name": "DPM++ 2M"}, options)
    assert no_eta.sampler_knobs == ()
    # At their defaults nothing is added, so the image equals one made without the settings.
    assert txt2img_params(FORM, Options()).sampler_knobs == ()


def test_params_to_values_round_trips() -> None:
    params = txt2img_params(FORM, Options())
    values = params_to_values(params)
    assert values["seed_extra"] is True and values["styles"] == ["Film"]
    assert txt2img_params({**values, "script": "None"}, Options()) == params


IMG2IMG_FORM = {
    **{k: v for k, v in FORM.items() if not k.startswith("hr_") and k != "enable_hr"},
    "denoising_strength": 0.6, "resize_mode": "Crop and resize", "resize_by": "Resize to", "scale_by": 1.0,
    "mask_blur": 8.0, "inpainting_mask_invert": "Inpaint not masked", "inpainting_fill": "latent noise",
    "inpaint_full_res": "Only masked", "inpaint_full_res_padding": 16.0,
}


def test_img2img_values_and_radio_labels() -> None:
    image, mask = Image.new("RGB", (320, 256)), Image.new("L", (320, 256))
    params = img2img_params(IMG2IMG_FORM, Options(), (image,), mask)
    assert params.resize_mode is ResizeMode.CROP_AND_RESIZE and params.inpainting_fill is InpaintFill.LATENT_NOISE
    assert params.inpainting_mask_invert is True and params.inpaint_full_res is True
    assert (params.mask_blur, params.inpaint_full_res_padding, params.denoising_strength) == (8, 16, 0.6)
    assert params.init_images == (image,) and params.mask is mask
    back = params_to_values(params)
    assert back["resize_mode"] == "Crop and resize" and back["inpaint_full_res"] == "Only masked"
    assert img2img_params({**IMG2IMG_FORM, **back}, Options(), (image,), mask) == params


def test_img2img_resize_by_scales_the_init_image_to_multiples_of_8() -> None:
    image = Image.new("RGB", (300, 200))
    params = img2img_params({**IMG2IMG_FORM, "resize_by": "Resize by", "scale_by": 1.5}, Options(), (image,), None)
    assert (params.width, params.height) == (448, 304) == resized_size(image, 1.5)


def test_unknown_radio_choice_is_named() -> None:
    with pytest.raises(ParamsError) as error:
        img2img_params({**IMG2IMG_FORM, "inpainting_fill": "sand"}, Options(), (Image.new("RGB", (8, 8)),), None)
    assert error.value.field == "inpainting_fill" and "sand" in error.value.reason


def test_paste_fills_what_the_infotext_states_and_keeps_the_rest() -> None:
    base = txt2img_params({**FORM, "enable_hr": False}, Options())
    text = ("a dog\nNegative prompt: rain\nSteps: 30, Sampler: DPM++ 2M Karras, CFG scale: 5, Seed: 99, Size: 640x384, "
            "Variation seed: 5, Variation seed strength: 0.1, Hires upscale: 2, Hires upscaler: Latent, Model: x")
    values = values_from_infotext(text, base)
    assert (values["prompt"], values["negative_prompt"], values["steps"], values["seed"]) == ("a dog", "rain", 30, 99)
    assert (values["sampler_name"], values["scheduler"], values["width"], values["height"]) == ("DPM++ 2M", "Karras", 640, 384)
    assert values["seed_extra"] is True and values["subseed"] == 5 and values["enable_hr"] is True
    assert values["batch_size"] == 3  # not in the text: kept


def test_paste_into_img2img_reads_the_inpaint_fields() -> None:
    base = img2img_params(IMG2IMG_FORM, Options(), (), None)
    values = values_from_infotext("x\nSteps: 4, Sampler: Euler, Seed: 1, Mask blur: 2, Inpaint area: Only masked", base)
    assert values["mask_blur"] == 2 and values["inpaint_full_res"] == "Only masked"


def test_an_unreadable_infotext_value_is_named() -> None:
    with pytest.raises(ValueError, match="Steps"):
        values_from_infotext("x\nSteps: many, Sampler: Euler, Seed: 1", Txt2ImgParams())


def test_img2img_params_are_frozen_dataclasses() -> None:
    params = img2img_params(IMG2IMG_FORM, Options(), (), None)
    assert isinstance(params, Img2ImgParams)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.steps = 3  # type: ignore[misc]


def test_hires_size_line() -> None:
    from webui.forms import hires_size_text

    assert hires_size_text({"width": 512.0, "height": 384.0, "hr_scale": 1.5}) == "from 512x384 to 768x576"
    assert hires_size_text({"width": 512, "height": 256, "hr_scale": 2, "hr_resize_x": 1024, "hr_resize_y": 0}) == \
        "from 512x256 to 1024x512"
    assert hires_size_text({"width": None}) == ""
