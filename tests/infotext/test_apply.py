"""parse(format(p)) gives p back for every field the pipeline writes; A1111's examples apply."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from modules.infotext.apply import infotext_to_params
from modules.infotext.format import format_infotext
from modules.infotext.parse import parse_infotext
from modules.params import Img2ImgParams, InpaintFill, Txt2ImgParams
from modules.pipeline.generate import infotext_fields, schedule_label
from modules.pipeline.img2img import img2img_fields
from modules.sampling.catalog import sampler_names, schedule_labels
from modules.sampling.noise import RngSource
from tests.infotext.test_infotext import EXAMPLE_HIRES, EXAMPLE_INPAINT, random_text

MODEL = SimpleNamespace(
    checkpoint=SimpleNamespace(shorthash="6ce0161689", model_name="v1-5-pruned-emaonly"), vae_file=None,
    detected=SimpleNamespace(text_encoder=SimpleNamespace(default_clip_skip=1)),
)


def random_params(rng: random.Random) -> Txt2ImgParams:
    hires = rng.random() < 0.5
    return Txt2ImgParams(
        prompt=random_text(rng), negative_prompt=rng.choice(["", random_text(rng)]),
        sampler_name=rng.choice(sampler_names()), scheduler=rng.choice(schedule_labels()),
        steps=rng.randint(1, 150), cfg_scale=rng.choice([1.0, 7.0, 6.5, 12.25]), width=rng.randint(8, 256) * 8,
        height=rng.randint(8, 256) * 8, seed=rng.randint(0, 2**32 - 1), subseed=rng.randint(0, 2**32 - 1),
        subseed_strength=rng.choice([0.0, 0.3, 1.0]), seed_resize_from_w=rng.choice([0, 64, 512]),
        seed_resize_from_h=rng.choice([0, 128, 768]), eta_noise_seed_delta=rng.choice([0, 31337]),
        rng=rng.choice([RngSource.CPU, RngSource.GPU]), clip_skip=rng.choice([None, 2, 12]),
        tiling=rng.random() < 0.3, enable_hr=hires, hr_scale=rng.choice([1.5, 2.0]),
        hr_upscaler=rng.choice(["Latent", "Lanczos", "Latent (nearest-exact)"]),
        hr_second_pass_steps=rng.choice([0, 10]), denoising_strength=rng.choice([0.7, 0.45]),
    )


def written_fields(p: Txt2ImgParams) -> dict:
    """What infotext_fields writes for ``p``, as the comparable parameter values."""
    resize = p.seed_resize_from_w > 0 and p.seed_resize_from_h > 0
    variation = p.subseed_strength > 0
    return {
        "prompt": p.prompt.strip(), "negative_prompt": p.negative_prompt.strip(), "steps": p.steps,
        "cfg_scale": p.cfg_scale, "seed": p.seed, "width": p.width, "height": p.height,
        "subseed": p.subseed if variation else None, "subseed_strength": p.subseed_strength,
        "seed_resize": (p.seed_resize_from_w, p.seed_resize_from_h) if resize else None,
        "clip_skip": p.clip_skip or 1, "rng": p.rng, "tiling": p.tiling, "enable_hr": p.enable_hr,
        "hires": (p.hr_scale, p.hr_upscaler, p.hr_second_pass_steps, p.denoising_strength) if p.enable_hr else None,
    }


@pytest.mark.parametrize("seed", range(150))
def test_parse_of_format_gives_the_params_back(seed: int) -> None:
    rng = random.Random(seed)
    p = random_params(rng)
    text = format_infotext(p.prompt, p.negative_prompt, infotext_fields(p, MODEL, p.seed, p.subseed))
    back = infotext_to_params(parse_infotext(text), Txt2ImgParams())
    back_written = written_fields(back)
    if p.subseed_strength == 0:
        back_written["subseed"] = None  # not written, so it keeps the base's value
    assert back_written == written_fields(p)
    assert back.sampler_name == p.sampler_name and schedule_label(back) == schedule_label(p)


def test_img2img_fields_round_trip() -> None:
    p = Img2ImgParams(prompt="hat", seed=5, mask_blur=8, inpaint_full_res=True, inpaint_full_res_padding=40,
                      inpainting_mask_invert=True, inpainting_fill=InpaintFill.LATENT_NOISE,
                      initial_noise_multiplier=1.2, denoising_strength=0.6, mask=object())
    fields = {**infotext_fields(p, MODEL, 5, 0), **img2img_fields(p)}
    back = infotext_to_params(parse_infotext(format_infotext(p.prompt, "", fields)), Img2ImgParams())
    for name in ("mask_blur", "inpaint_full_res", "inpaint_full_res_padding", "inpainting_mask_invert",
                 "inpainting_fill", "initial_noise_multiplier", "denoising_strength"):
        assert getattr(back, name) == getattr(p, name), name


def test_a1111_examples_apply() -> None:
    hires = infotext_to_params(parse_infotext(EXAMPLE_HIRES), Txt2ImgParams())
    assert (hires.sampler_name, hires.scheduler, hires.steps, hires.cfg_scale) == ("Euler a", "Automatic", 25, 6.5)
    assert (hires.width, hires.height, hires.subseed, hires.subseed_strength) == (512, 768, 1234, 0.3)
    assert (hires.enable_hr, hires.hr_scale, hires.hr_second_pass_steps, hires.hr_upscaler) == (True, 2.0, 10, "Latent")
    assert (hires.clip_skip, hires.eta_noise_seed_delta, hires.denoising_strength) == (2, 31337, 0.45)
    inpaint = infotext_to_params(parse_infotext(EXAMPLE_INPAINT), Img2ImgParams())
    assert (inpaint.inpaint_full_res, inpaint.inpaint_full_res_padding, inpaint.mask_blur) == (True, 32, 4)


def test_old_combined_sampler_names_split() -> None:
    p = infotext_to_params({"Sampler": "DPM++ 2M Karras"}, Txt2ImgParams())
    assert (p.sampler_name, p.scheduler) == ("DPM++ 2M", "Karras")


def test_unreadable_value_names_the_field() -> None:
    with pytest.raises(ValueError, match="'Steps': cannot read 'many'"):
        infotext_to_params({"Steps": "many"}, Txt2ImgParams())
