"""img2img core: strength cuts the schedule, the init image is encoded deterministically,
and a latent mask keeps the unmasked area exactly."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from modules.pipeline.sampling_run import LatentMask, SamplingChoice, images_to_latents, sample_img2img_latents
from modules.sampling.catalog import Img2ImgSteps, img2img_start, resolve_sampler
from modules.sampling.noise import NoiseSpec
from modules.sampling.schedules import sd_model_sigmas
from tests.pipeline.test_sampling_run import model  # noqa: F401  (module-scoped tiny model fixture)


def img2img_ladder(full: torch.Tensor, steps: int, strength: float) -> torch.Tensor:
    start = img2img_start(resolve_sampler("Euler")[0], None, full, Img2ImgSteps.of(steps, strength), sd_model_sigmas())
    assert start.noise_sigma == float(start.sigmas[0]) and start.rescale == 1.0  # noised to the first level
    return start.sigmas


def test_strength_keeps_the_tail_of_the_ladder() -> None:
    full = torch.linspace(14.6, 0.03, 20).tolist() + [0.0]
    # A1111: t_enc = int(0.5 * 20) = 10, sigmas[20 - 10 - 1:] -> 11 steps from full[9].
    ladder = img2img_ladder(torch.tensor(full), 20, 0.5)
    assert len(ladder) == 12 and ladder[0] == pytest.approx(full[9]) and ladder[-1] == 0
    assert torch.equal(img2img_ladder(torch.tensor(full), 20, 1.0), torch.tensor(full))  # 0.999 -> all 20 steps
    assert img2img_ladder(torch.tensor(full), 20, 0.0).tolist() == pytest.approx(full[-2:])  # one smallest step


def test_the_hires_pass_takes_its_steps_whatever_the_strength() -> None:
    """A1111's setup_img2img_steps with steps given (its hires pass): a ladder for int(20 / 0.7) = 28
    steps, t_enc = 19, so sigmas[28 - 19 - 1:]: the last 20 steps of the 28-step ladder."""
    assert Img2ImgSteps.of(20, 0.7, fixed=True) == Img2ImgSteps(28, 19)
    assert Img2ImgSteps.of(20, 1.0, fixed=True) == Img2ImgSteps(20, 19)  # 20 / 0.999 -> 20
    assert Img2ImgSteps.of(20, 0.0, fixed=True).ladder_steps == 0  # nothing to walk
    assert Img2ImgSteps.of(20, 0.7) == Img2ImgSteps(20, 14)  # img2img keeps the steps, cuts the ladder
    full = torch.linspace(14.6, 0.03, 28).tolist() + [0.0]
    start = img2img_start(resolve_sampler("Euler")[0], None, torch.tensor(full), Img2ImgSteps.of(20, 0.7, fixed=True),
                          sd_model_sigmas())
    assert start.sigmas.tolist() == pytest.approx(full[8:]) and len(start.sigmas) == 21


def test_more_strength_moves_further_from_the_init(model) -> None:  # noqa: F811
    init = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    spec = NoiseSpec(seeds=(1,), latent_shape=(4, 4, 4))
    distances = [
        (sample_img2img_latents(model, init, ["x"], [""], spec, SamplingChoice(sampler_name="Euler", steps=10), s) - init).norm()
        for s in (0.2, 0.9)
    ]
    assert distances[0] < distances[1]


def test_latent_mask_keeps_unmasked_latents_exactly(model) -> None:  # noqa: F811
    init = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    keep = torch.ones(1, 1, 4, 4)
    keep[..., 1:3, 1:3] = 0  # repaint the centre only
    spec = NoiseSpec(seeds=(2,), latent_shape=(4, 4, 4))
    out = sample_img2img_latents(model, init, ["x"], [""], spec, SamplingChoice(steps=6), 0.8, LatentMask(init, keep))
    assert torch.equal(out[..., 0, :], init[..., 0, :]) and torch.equal(out[..., :, 3], init[..., :, 3])
    assert not torch.allclose(out[..., 1:3, 1:3], init[..., 1:3, 1:3])


def test_images_encode_deterministically_to_the_latent_size(model) -> None:  # noqa: F811
    image = Image.new("RGB", (16, 8), (200, 30, 30))
    first, second = images_to_latents(model, [image]), images_to_latents(model, [image])
    assert first.shape == (1, 4, 4, 8) and torch.equal(first, second)
