"""One batch from text to pixels: conditioning, per-image noise, the sampler over the CFG
denoiser, and the VAE decode (DESIGN §3, step 3, for txt2img).

The img2img, inpainting and hires paths reuse these pieces with an encoded
init latent and a cut schedule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from modules.models.families import Prediction
from modules.models.load import LoadedModel
from modules.models.vae_decode import decode_latents
from modules.models.vae_tiling import tiled_decode, tiled_encode
from modules.pipeline.conditioning import PromptOptions, StepConditioning, plan_prompts, step_conditioning
from modules.sampling.brownian import BrownianNoise, ladder_range
from modules.sampling.catalog import (
    Img2ImgSteps, SamplerSpec, ScheduleSpec, img2img_start, initial_noise_scale, resolve_sampler, resolve_schedule, run_sampler,
    sampler_sigmas, walk_spacing,
)
from modules.sampling.denoiser import (
    CFGDenoiser, DiscreteDenoiser, GuidanceObserver, LCMDenoiser, Observation, ScheduledCFGDenoiser,
)
from modules.sampling.noise import ImageNoise, NoiseSpec
from modules.sampling.samplers import SamplerStep
from modules.sampling.schedules import LOG_ALPHA, LOG_SIGMA, scaled_linear_alphas_cumprod, sigmas_from_alphas_cumprod
from modules.sampling.timestep_walk import UNIPC_WALK, WalkStart

AUTOMATIC = "Automatic"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingChoice:
    """What drives the sampler: A1111 names, step count, guidance and the sampler's knobs."""

    sampler_name: str = "Euler a"
    scheduler: str = AUTOMATIC
    steps: int = 20
    cfg_scale: float = 7.0
    clip_skip: int | None = None  # A1111's "Clip skip", relative to the family's layer; None = 1
    knobs: Mapping[str, Any] = field(default_factory=dict)
    prompt_options: PromptOptions = field(default_factory=PromptOptions)
    first_pass_steps: int | None = None  # set on a hires pass: prompt-editing steps count from the first pass
    # What watches every guided model call of this job (``JobRun.guidance_observers``); empty = nothing.
    guidance_observers: tuple[GuidanceObserver, ...] = field(default=(), compare=False)
    # The names resolved once, here, for everything downstream (``resolve_sampler`` parses
    # "DPM++ 2M Karras" into a sampler and a schedule); None schedule = the sampler's own.
    sampler: SamplerSpec = field(init=False, repr=False, compare=False)
    schedule: ScheduleSpec | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sampler, named_schedule = resolve_sampler(self.sampler_name)
        schedule = named_schedule if self.scheduler == AUTOMATIC else resolve_schedule(self.scheduler)
        object.__setattr__(self, "sampler", sampler)
        object.__setattr__(self, "schedule", schedule)


def model_alphas_cumprod(model: LoadedModel) -> Tensor:
    """The schedule stored in the checkpoint, else SD's training schedule (scaled linear, 1000 steps)."""
    return model.alphas_cumprod if model.alphas_cumprod is not None else scaled_linear_alphas_cumprod()


def model_sigmas_of(model: LoadedModel) -> Tensor:
    return sigmas_from_alphas_cumprod(model_alphas_cumprod(model))


def sigma_ladder(model: LoadedModel, choice: SamplingChoice, steps: int | None = None) -> Tensor:
    """The ladder for ``steps`` (default: the choice's)."""
    return sampler_sigmas(choice.sampler, choice.schedule, steps or choice.steps, model_sigmas_of(model),
                          skip_type=walk_spacing(choice.knobs))


def starting_point(
    sampler: SamplerSpec, spec: NoiseSpec, sigmas: Tensor, full_ladder: Tensor, device: torch.device | str,
    dtype: torch.dtype, start: Tensor | None = None, noise_multiplier: float = 1.0, walk: WalkStart | None = None,
) -> tuple[Tensor, ImageNoise | BrownianNoise]:
    """The latent a sampler starts from, and the source of its step noise, as A1111 draws them:
    each image's first draw of its seed's generator, scaled to ``sigmas[0]`` (txt2img) or added to
    ``start`` (img2img) at the walk's noise level and rescaled as ``walk`` says (by default at
    ``sigmas[0]``); then the generators' continuation, or the Brownian trees of the SDE samplers
    over ``full_ladder`` (the uncut ladder)."""
    noise = ImageNoise(spec, device=device, dtype=dtype)
    if start is None:
        x = noise.initial_noise() * initial_noise_scale(sampler, float(sigmas[0]))
    else:
        walk = walk or WalkStart(sigmas, float(sigmas[0]), 1.0)
        x = (start + noise.initial_noise() * (walk.noise_sigma * noise_multiplier)) * walk.rescale
    return x, sampler_noise(sampler, noise, spec, full_ladder)


def sampler_noise(
    sampler: SamplerSpec, image_noise: ImageNoise, spec: NoiseSpec, full_ladder: Tensor
) -> ImageNoise | BrownianNoise:
    """Where the sampler's step noise comes from: the per-image generators, or for the SDE
    samplers Brownian trees seeded with the image seeds over the full ladder's range (A1111
    builds them over the whole ladder, also when img2img starts part way down)."""
    if not sampler.sde:
        return image_noise
    low, high = ladder_range(full_ladder)
    return BrownianNoise(spec.seeds, low, high, per_image=spec.brownian_per_image, source=spec.source,
                         device=image_noise.device)


def text_conditioning(model: LoadedModel, prompts: Sequence[str], negatives: Sequence[str], choice: SamplingChoice) -> StepConditioning:
    """Prompts parsed into per-step schedules, every distinct text encoded once, all with the same
    number of 77-token chunks so cond and uncond share one batch.

    A1111's "Clip skip" counts from the layer the family conditions on (SD2's
    penultimate is its 1), so the layer taken is the family default plus skip - 1.
    """
    layer = model.detected.text_encoder.default_clip_skip + (choice.clip_skip or 1) - 1
    plan = plan_prompts(prompts, negatives, choice.steps, choice.prompt_options, choice.first_pass_steps)
    return step_conditioning(model.text_encoder, model.tokenizer, plan, layer, choice.prompt_options,
                             model.policy.unet_dtype, model.text_encode_call())


def sample_txt2img_latents(
    model: LoadedModel,
    prompts: Sequence[str],
    negatives: Sequence[str],
    noise_spec: NoiseSpec,
    choice: SamplingChoice,
    callback: Callable[[SamplerStep], None] | None = None,
) -> Tensor:
    sampler = choice.sampler
    sigmas = sigma_ladder(model, choice).to(model.policy.device)
    x, step_noise = starting_point(sampler, noise_spec, sigmas, sigmas, model.policy.device, model.policy.unet_dtype)
    conditioning = blank_image_conditioning(model, x) if model.detected.family.is_inpainting else None
    denoiser = guided_denoiser(model, prompts, negatives, choice, conditioning, sigmas)
    with torch.inference_mode():
        return run_sampler(sampler, denoiser, x, sigmas, noise=step_noise, callback=callback, **choice.knobs,
                           **txt2img_solve_range(sampler, model))


def txt2img_solve_range(sampler: SamplerSpec, model: LoadedModel) -> dict[str, tuple[float, float]]:
    """DPM fast and adaptive in A1111's txt2img solve over the model's whole sigma range, whatever
    the ladder (which then only scales the starting noise); img2img solves over its cut ladder."""
    if not sampler.ends_at_sigma_min:
        return {}
    model_sigmas = sigmas_from_alphas_cumprod(model_alphas_cumprod(model))
    return {"sigma_range": (float(model_sigmas[0]), float(model_sigmas[-1]))}


def inpainting_unet(unet: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """A 9-channel inpainting UNet sees [latent, mask, masked-image latent] stacked on channels."""
    def call(x: Tensor, timesteps: Tensor, context: Tensor, c_concat: Tensor) -> Tensor:
        return unet(torch.cat([x, c_concat.to(x)], dim=1), timesteps, context)
    return call


def guided_denoiser(
    model: LoadedModel, prompts: Sequence[str], negatives: Sequence[str], choice: SamplingChoice,
    image_conditioning: Tensor | None, sigmas: Tensor,
) -> CFGDenoiser | ScheduledCFGDenoiser:
    """Plain CFG when every image has one text for the whole run; otherwise the step-following,
    composable form over ``sigmas`` (the ladder this run walks)."""
    conditioning = text_conditioning(model, prompts, negatives, choice)
    net = model.unet_call() if image_conditioning is None else inpainting_unet(model.unet_call())
    model_sigmas = sigmas_from_alphas_cumprod(model_alphas_cumprod(model).to(model.policy.device))
    inner = model_denoiser(choice.sampler, net, model_sigmas, model.detected.prediction)
    extra = {} if image_conditioning is None else {"c_concat": image_conditioning}
    observation = Observation(choice.guidance_observers, sigmas) if choice.guidance_observers else None
    if conditioning.plan.is_static:
        return CFGDenoiser(inner, *conditioning.static(), choice.cfg_scale, extra, observation)
    return ScheduledCFGDenoiser(inner, conditioning, sigmas, choice.cfg_scale, extra, observation)


def model_denoiser(
    sampler: SamplerSpec, net: Callable[..., Tensor], model_sigmas: Tensor, prediction: Prediction
) -> DiscreteDenoiser | LCMDenoiser:
    """The net as an x0 estimator for this sampler: LCM's own denoiser for LCM (as A1111), else
    the model's discrete schedule, read between timesteps in log alpha for UniPC (as A1111's port
    of its reference code) and in log sigma for the others (as k-diffusion)."""
    if sampler.lcm:
        return LCMDenoiser(net, model_sigmas, prediction)
    return DiscreteDenoiser(net, model_sigmas, prediction, LOG_ALPHA if sampler.timestep_walk == UNIPC_WALK else LOG_SIGMA)


def inpainting_conditioning(model: LoadedModel, masked_image_latents: Tensor, repaint: Tensor) -> Tensor:
    """c_concat for 9-channel models: the repaint mask at latent size, then the masked image's latent."""
    mask = torch.nn.functional.interpolate(repaint.float(), size=masked_image_latents.shape[-2:])
    return torch.cat([mask, masked_image_latents.float()], dim=1).to(model.policy.device, model.policy.unet_dtype)


def blank_image_conditioning(model: LoadedModel, x: Tensor) -> Tensor:
    """txt2img with an inpainting model: everything is to be painted over a neutral grey image (as A1111)."""
    factor = 2 ** (len(model.detected.vae.ch_mult) - 1)
    grey = Image.new("RGB", (x.shape[-1] * factor, x.shape[-2] * factor), (128, 128, 128))
    latents = images_to_latents(model, [grey]).expand(x.shape[0], -1, -1, -1)
    return inpainting_conditioning(model, latents, torch.ones(x.shape[0], 1, *x.shape[-2:]))


def vae_factor(model: LoadedModel) -> int:
    return 2 ** (len(model.detected.vae.ch_mult) - 1)


def vae_decoder(model: LoadedModel, latents: Tensor) -> Callable[[Tensor], Tensor]:
    """The decode this job uses: tiled above the size threshold (``model.vae_tiling``), and on CUDA
    tiled again after running out of memory whole."""
    decode, factor = model.vae_decode_call(), vae_factor(model)
    # Tiles go through the eager VAE: its GroupNorms are the ones that take the whole image's statistics.
    tiled = lambda z: tiled_decode(model.vae.decode, z, model.vae_tiling, factor, net=model.vae)  # noqa: E731
    if model.vae_tiling.applies(latents.shape[-2] * latents.shape[-1] * factor * factor):
        return tiled
    if not model.policy.is_cuda or model.vae_tiling.mode == "Never":
        return decode

    def whole_else_tiled(z: Tensor) -> Tensor:
        try:
            return decode(z)
        except torch.cuda.OutOfMemoryError:
            log.warning("the VAE ran out of GPU memory on a %dx%d image: decoding in tiles",
                        z.shape[-1] * factor, z.shape[-2] * factor)
            torch.cuda.empty_cache()
            return tiled(z)
    return whole_else_tiled


def latents_to_images(model: LoadedModel, latents: Tensor) -> list[Image.Image]:
    """Scaled latents -> RGB images (the VAE's scale factor undone, [-1, 1] mapped to 0..255)."""
    with torch.inference_mode():
        pixels = decode_latents(model.vae, latents / model.detected.vae.scale_factor, model.policy.vae_retry_in_fp32,
                                vae_decoder(model, latents))
    array = ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(image)) for image in array]


def images_to_latents(model: LoadedModel, images: Sequence[Image.Image]) -> Tensor:
    """RGB images -> scaled latents (the posterior mean: deterministic, no draw from any RNG)."""
    array = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images])
    pixels = torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0
    dtype = next(model.vae.parameters()).dtype
    encode = model.vae_encode_call()
    if model.vae_tiling.applies(pixels.shape[-2] * pixels.shape[-1]):
        encode = lambda x: tiled_encode(model.vae.encode, x, model.vae_tiling, vae_factor(model),  # noqa: E731
                                        net=model.vae)
    with torch.inference_mode():
        mean = encode(pixels.to(model.policy.device, dtype))
    return mean.float() * model.detected.vae.scale_factor


@dataclass(frozen=True)
class LatentMask:
    """Inpainting in latent space: where ``keep`` is 1 the original latent is restored in every
    denoiser call (A1111's CFG-denoiser blend, ``around``) and in the result, so unmasked areas
    come back unchanged."""

    original: Tensor
    keep: Tensor  # [B or 1, 1, h, w] in [0, 1]

    def blend(self, denoised: Tensor) -> Tensor:
        return self.original.to(denoised) * self.keep.to(denoised) + denoised * (1 - self.keep.to(denoised))

    def before_model(self, denoiser: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
        """A1111's blend for its timestep samplers (DDIM, PLMS, UniPC: ``mask_before_denoising``):
        the model's input, the variance-preserving latent z = x / sqrt(1 + sigma^2), gets the
        unnoised original pasted into the kept area, and the sampler goes on from its own x with
        the noise estimate made there. In x0 terms: D = D(x_b) + (x - x_b), x_b the blended x."""
        def call(x: Tensor, sigma: Tensor) -> Tensor:
            scale = (1 + sigma.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1))) ** 2) ** 0.5
            keep = self.keep.to(x)
            blended = x * (1 - keep) + self.original.to(x) * keep * scale
            return denoiser(blended, sigma) + (x - blended)
        return call

    def around(self, sampler: SamplerSpec, denoiser: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
        """The denoiser with this mask applied where A1111 applies it for ``sampler``: before the
        model for the timestep samplers, after it (on the x0 estimate) for the others."""
        if sampler.timestep_walk is not None:
            return self.before_model(denoiser)
        return lambda x, sigma: self.blend(denoiser(x, sigma))


def sample_img2img_latents(
    model: LoadedModel,
    init_latents: Tensor,
    prompts: Sequence[str],
    negatives: Sequence[str],
    noise_spec: NoiseSpec,
    choice: SamplingChoice,
    denoising_strength: float,
    mask: LatentMask | None = None,
    callback: Callable[[SamplerStep], None] | None = None,
    image_conditioning: Tensor | None = None,
    noise_multiplier: float = 1.0,
    fixed_steps: bool = False,
) -> Tensor:
    """``fixed_steps``: take ``choice.steps`` steps whatever the strength, as A1111's hires pass
    does (``Img2ImgSteps.of``)."""
    sampler = choice.sampler
    cut = Img2ImgSteps.of(choice.steps, denoising_strength, fixed=fixed_steps)
    start = init_latents.to(model.policy.device, model.policy.unet_dtype)
    if cut.ladder_steps == 0:  # A1111's hires pass at strength 0 leaves the latent as it is
        return start
    full_ladder = sigma_ladder(model, choice, cut.ladder_steps)
    walk = img2img_start(sampler, choice.schedule, full_ladder, cut, model_sigmas_of(model),
                         skip_type=walk_spacing(choice.knobs))
    sigmas = walk.sigmas.to(model.policy.device)
    x, step_noise = starting_point(sampler, noise_spec, sigmas, full_ladder, model.policy.device,
                                   model.policy.unet_dtype, start, noise_multiplier, walk)
    if image_conditioning is None and model.detected.family.is_inpainting:
        image_conditioning = blank_image_conditioning(model, x)
    guided = guided_denoiser(model, prompts, negatives, choice, image_conditioning, sigmas)
    denoiser = guided if mask is None else mask.around(sampler, guided)
    with torch.inference_mode():
        result = run_sampler(sampler, denoiser, x, sigmas, noise=step_noise, callback=callback, **choice.knobs)
    return result if mask is None else mask.blend(result)
