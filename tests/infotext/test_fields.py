"""Every field of the one infotext table survives writing and reading back, for txt2img, hires
(upscale-by and resize-to) and img2img with a mask."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image

from modules.infotext.fields import FIELDS, ImageContext, read_back, written
from modules.infotext.format import format_infotext
from modules.infotext.parse import parse_infotext
from modules.params import Img2ImgParams, InpaintFill, Txt2ImgParams
from modules.sampling.noise import RngSource

CONTEXT = ImageContext(seed=77, subseed=88, model_hash="6ce0161689", model_name="v1-5", vae_hash="abc", vae_name="vae")
TXT2IMG = Txt2ImgParams(
    prompt="a cat", negative_prompt="blurry", sampler_name="Euler a", scheduler="Karras", steps=17, cfg_scale=6.5,
    width=640, height=448, seed=77, subseed=88, subseed_strength=0.3, seed_resize_from_w=512, seed_resize_from_h=384,
    eta_noise_seed_delta=31337, rng=RngSource.CPU, clip_skip=2, tiling=True, enable_hr=True, hr_scale=1.5,
    hr_upscaler="Lanczos", hr_second_pass_steps=9, denoising_strength=0.45,
)
MASK = Image.new("L", (8, 8), 255)
IMG2IMG = Img2ImgParams(**{**{f.name: getattr(TXT2IMG, f.name) for f in dataclasses.fields(Txt2ImgParams)},
                           "enable_hr": False}, init_images=(Image.new("RGB", (8, 8)),), mask=MASK, mask_blur=7,
                        inpainting_mask_invert=True, inpainting_fill=InpaintFill.LATENT_NOISE, inpaint_full_res=True,
                        inpaint_full_res_padding=40, initial_noise_multiplier=1.2)


def round_trip(params: Txt2ImgParams, sections: tuple[str, ...]) -> tuple[dict, dict]:
    fields = {key: value for section in sections for key, value in written(params, CONTEXT, section).items()}
    text = format_infotext(params.prompt, params.negative_prompt, fields)
    return fields, read_back(parse_infotext(text), isinstance(params, Img2ImgParams))


@pytest.mark.parametrize("params, sections", [
    (TXT2IMG, ("common", "hires")),
    (dataclasses.replace(TXT2IMG, hr_resize_x=960, hr_resize_y=0), ("common", "hires")),
    (IMG2IMG, ("common", "img2img")),
])
def test_every_readable_field_is_written_and_read_back_to_the_same_value(params, sections) -> None:
    fields, back = round_trip(params, sections)
    for entry in (f for f in FIELDS if f.read is not None and f.section in sections):
        if entry.key in ("Hires upscale", "Hires resize") and entry.key not in fields:
            continue  # one of the two, by how the hires size was asked
        assert entry.key in fields, entry.key
        for name, value in entry.read(parse_infotext("x\n" + f"Steps: 1, {entry.key}: {fields[entry.key]}")).items():
            assert back[name] == value
            if name not in ("hr_resize_y",):  # a 0 side is written as the size it resolves to
                assert value == getattr(params, name), (entry.key, name)
    assert back["prompt"] == params.prompt and back["negative_prompt"] == params.negative_prompt


def test_informational_fields_are_written_but_never_applied() -> None:
    fields, back = round_trip(TXT2IMG, ("common",))
    assert (fields["Model hash"], fields["Model"], fields["VAE hash"], fields["VAE"]) == ("6ce0161689", "v1-5", "abc", "vae")
    assert "checkpoint" not in back and "vae" not in back
