"""One batch from text to pixels: conditioning, per-image noise, the sampler over the CFG
denoiser, and the VAE decode (DESIGN §3, step 3, for txt2img).

The img2img, inpainting and hires paths reuse these pieces with an encoded
init latent and a cut schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from modules.models.load import LoadedModel
from modules.models.vae_decode import decode_latents
from modules.pipeline.conditioning import encode_prompts
from modules.sampling.catalog import initial_noise_scale, resolve_sampler, resolve_schedule, sampler_sigmas
from modules.sampling.denoiser import CFGDenoiser, DiscreteDenoiser
from modules.sampling.noise import ImageNoise, NoiseSpec
from modules.sampling.samplers import SamplerStep
from modules.sampling.schedules import scaled_linear_alphas_cumprod, sigmas_from_alphas_cumprod

AUTOMATIC = "Automatic"


@dataclass(frozen=True)
class SamplingChoice:
    """What drives the sampler: A1111 names, step count, guidance and the sampler's knobs."""

    sampler_name: str = "Euler a"
    scheduler: str = AUTOMATIC
    steps: int = 20
    cfg_scale: float = 7.0
    clip_skip: int | None = None  # None: the model family's default
    knobs: Mapping[str, Any] = field(default_factory=dict)


def model_alphas_cumprod(model: LoadedModel) -> Tensor:
    """The schedule stored in the checkpoint, else SD's training schedule (scaled linear, 1000 steps)."""
    return model.alphas_cumprod if model.alphas_cumprod is not None else scaled_linear_alphas_cumprod()


def sigma_ladder(model: LoadedModel, choice: SamplingChoice) -> Tensor:
    sampler, named_schedule = resolve_sampler(choice.sampler_name)
    schedule = named_schedule if choice.scheduler == AUTOMATIC else resolve_schedule(choice.scheduler)
    model_sigmas = sigmas_from_alphas_cumprod(model_alphas_cumprod(model))
    return sampler_sigmas(sampler, schedule, choice.steps, model_sigmas)


def text_conditioning(model: LoadedModel, prompts: Sequence[str], negatives: Sequence[str], clip_skip: int | None) -> tuple[Tensor, Tensor]:
    """(cond, uncond): encoded together so both have the same number of 77-token chunks."""
    both = encode_prompts(model.text_encoder, model.tokenizer, [*prompts, *negatives], clip_skip)
    both = both.to(model.policy.unet_dtype)
    return both[: len(prompts)], both[len(prompts) :]


def sample_txt2img_latents(
    model: LoadedModel,
    prompts: Sequence[str],
    negatives: Sequence[str],
    noise_spec: NoiseSpec,
    choice: SamplingChoice,
    callback: Callable[[SamplerStep], None] | None = None,
) -> Tensor:
    sampler, _ = resolve_sampler(choice.sampler_name)
    sigmas = sigma_ladder(model, choice).to(model.policy.device)
    cond, uncond = text_conditioning(model, prompts, negatives, choice.clip_skip)
    noise = ImageNoise(noise_spec, device=model.policy.device, dtype=model.policy.unet_dtype)
    x = noise.initial_noise() * initial_noise_scale(sampler, float(sigmas[0]))
    inner = DiscreteDenoiser.from_alphas_cumprod(
        model.unet, model_alphas_cumprod(model).to(model.policy.device), model.detected.prediction
    )
    denoiser = CFGDenoiser(inner, cond, uncond, choice.cfg_scale)
    with torch.inference_mode():
        return sampler(denoiser, x, sigmas, noise=noise, callback=callback, **choice.knobs)


def latents_to_images(model: LoadedModel, latents: Tensor) -> list[Image.Image]:
    """Scaled latents -> RGB images (the VAE's scale factor undone, [-1, 1] mapped to 0..255)."""
    with torch.inference_mode():
        pixels = decode_latents(model.vae, latents / model.detected.vae.scale_factor, model.policy.vae_retry_in_fp32)
    array = ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(image)) for image in array]
