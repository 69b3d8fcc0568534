"""Hires fix (sizes, upscalers, infotext) and seamless tiling on a tiny model."""

from __future__ import annotations

import pytest
import torch

from modules.infotext.parse import parse_infotext
from modules.params import ParamsError, Txt2ImgParams
from modules.pipeline.generate import generate_txt2img
from modules.pipeline.tiling import seamless_tiling
from tests.pipeline.test_sampling_run import model  # noqa: F401  (module-scoped tiny model fixture)

BASE = Txt2ImgParams(prompt="a star", steps=3, width=16, height=16, seed=3)


@pytest.mark.parametrize("upscaler", ["Latent", "Latent (nearest-exact)", "Latent (bicubic antialiased)", "Lanczos", "Nearest"])
def test_hires_doubles_the_size_and_records_it(model, upscaler: str) -> None:  # noqa: F811
    params = Txt2ImgParams(**{**BASE.__dict__, "enable_hr": True, "hr_upscaler": upscaler, "hr_second_pass_steps": 2})
    result = generate_txt2img(model, params, None)[0]
    assert result.image.size == (32, 32)
    fields = parse_infotext(result.infotext)
    assert fields["Size"] == "16x16"  # the first pass, as A1111 writes it
    assert (fields["Hires upscale"], fields["Hires upscaler"], fields["Hires steps"]) == ("2", upscaler, "2")
    assert fields["Denoising strength"] == "0.7"


def test_hires_resize_to(model) -> None:  # noqa: F811
    params = Txt2ImgParams(**{**BASE.__dict__, "enable_hr": True, "hr_resize_x": 40, "hr_resize_y": 24})
    result = generate_txt2img(model, params, None)[0]
    assert result.image.size == (40, 24)
    assert parse_infotext(result.infotext)["Hires resize"] == "40x24"


def test_hires_size_rules() -> None:
    assert Txt2ImgParams(width=512, height=768, hr_scale=1.5).hires_size() == (768, 1152)
    assert Txt2ImgParams(width=512, height=768, hr_resize_x=1024).hires_size() == (1024, 1536)
    assert Txt2ImgParams(width=512, height=768, hr_resize_y=384).hires_size() == (256, 384)


def test_hires_validation() -> None:
    with pytest.raises(ParamsError, match="hr_upscaler: unknown upscaler 'ESRGAN'.*Lanczos"):
        Txt2ImgParams(enable_hr=True, hr_upscaler="ESRGAN").validate()
    with pytest.raises(ParamsError, match="hires size 2560x2560"):
        Txt2ImgParams(enable_hr=True, width=1280, height=1280, hr_scale=2).validate()


def test_a_batch_is_bounded_by_its_pixels_at_both_sizes() -> None:
    # 2048x2048 x 4 is the most one batch may hold (16.8 megapixels); one image more is refused
    Txt2ImgParams(width=2048, height=2048, batch_size=4).validate()
    with pytest.raises(ParamsError, match=r"batch_size: 2048x2048 x batch 5 is 21\.0 megapixels"):
        Txt2ImgParams(width=2048, height=2048, batch_size=5).validate()
    Txt2ImgParams(width=1024, height=1024, batch_size=4, enable_hr=True, hr_scale=2).validate()
    with pytest.raises(ParamsError, match=r"hr_scale: 2048x2048 x batch 8 is 33\.6 megapixels"):
        Txt2ImgParams(width=1024, height=1024, batch_size=8, enable_hr=True, hr_scale=2).validate()
    with pytest.raises(ParamsError) as refused:  # a size already out of range is not reported twice
        Txt2ImgParams(width=4096, height=4096, batch_size=8).validate()
    assert "megapixels" not in str(refused.value)


@torch.inference_mode()
def test_tiling_makes_the_unet_shift_equivariant(model) -> None:  # noqa: F811
    """With circular padding everywhere, shifting the input by the downsampling factor shifts the output."""
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t, context = torch.tensor([500.0]), torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    shift = lambda tensor: torch.roll(tensor, shifts=(2, 4), dims=(2, 3))  # noqa: E731
    with seamless_tiling(model, True):
        tiled = model.unet(x, t, context)
        assert torch.allclose(model.unet(shift(x), t, context), shift(tiled), atol=1e-4)
    plain = model.unet(x, t, context)
    assert not torch.allclose(model.unet(shift(x), t, context), shift(plain), atol=1e-4)
    assert all(conv.padding_mode == "zeros" for conv in model.unet.modules() if isinstance(conv, torch.nn.Conv2d))


def test_tiling_is_recorded(model) -> None:  # noqa: F811
    result = generate_txt2img(model, Txt2ImgParams(**{**BASE.__dict__, "tiling": True}), None)[0]
    assert parse_infotext(result.infotext)["Tiling"] == "True"


def test_hires_with_an_upscaler_model_runs_the_model_and_names_it(model, tmp_path) -> None:  # noqa: F811
    from safetensors.torch import save_file

    from modules.upscalers.library import TileSettings, UpscalerLibrary, Upscaling
    from tests.upscalers import layouts

    (tmp_path / "ESRGAN").mkdir()
    save_file(layouts.compact(scale=2), str(tmp_path / "ESRGAN" / "2x-tiny.safetensors"))
    library = UpscalerLibrary([("ESRGAN", [tmp_path / "ESRGAN"])])
    tiles_run = []
    upscaling = Upscaling(library, {"ESRGAN": TileSettings(8, 2)}, should_stop=lambda: tiles_run.append(1) and False)
    params = Txt2ImgParams(**{**BASE.__dict__, "enable_hr": True, "hr_upscaler": "2x-tiny", "hr_second_pass_steps": 2})
    valid_size = Txt2ImgParams(**{**params.__dict__, "width": 64, "height": 64})
    with pytest.raises(ParamsError, match="unknown upscaler '2x-tiny'"):
        valid_size.validate()  # without the files on disk the name means nothing
    assert valid_size.validate(library.model_names()) is valid_size
    result = generate_txt2img(model, params, None, upscaling=upscaling)[0]
    assert result.image.size == (32, 32)
    assert len(tiles_run) == 9  # the 16x16 first pass in 8px tiles overlapping by 2: 3 x 3 tiles
    assert parse_infotext(result.infotext)["Hires upscaler"] == "2x-tiny"


class _StepCounter:
    """A job that only records the progress it is given."""

    interrupted = False

    def __init__(self) -> None:
        self.totals: list[int] = []

    def report(self, step: int, total_steps: int, **_) -> None:
        if step == 1:
            self.totals.append(total_steps)

    def take_skip(self) -> bool:
        return False


@pytest.mark.parametrize("sampler", ["Euler", "DDIM"])
def test_the_hires_pass_takes_its_steps_whatever_the_strength(model, sampler) -> None:  # noqa: F811
    """As A1111 (steps given to sample_img2img): 4 hires steps at strength 0.5 walk the last 4 of an
    8-step ladder, not 2 + 1 of a 4-step one; DDIM keeps t_enc = 3 of the 8 timesteps, 2 steps down
    to t = 1 (its first pass: 4 timesteps, 3 steps)."""
    params = Txt2ImgParams(**{**BASE.__dict__, "steps": 4, "sampler_name": sampler, "enable_hr": True,
                              "hr_second_pass_steps": 4, "denoising_strength": 0.5})
    job = _StepCounter()
    generate_txt2img(model, params, None, job=job)
    assert job.totals == ([4, 4] if sampler == "Euler" else [3, 2])  # first pass, hires pass
