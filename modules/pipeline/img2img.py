"""img2img and inpainting in one straight line (DESIGN §3): prepare the init image and mask,
encode, sample from the strength-cut ladder (restoring unmasked latents each step), decode, and
put the original back outside the mask, pasting an "Only masked" crop into place.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from modules.infotext.fields import ImageContext, written
from modules.jobs import Job
from modules.models.load import LoadedModel
from modules.params import INPAINT_FILL_LABELS, Img2ImgParams, InpaintFill
from modules.pipeline.conditioning import PromptOptions
from modules.pipeline.generate import (
    GeneratedImage, SaveOptions, begin_run, knob_fields, prompt_fields, run_batches, sampling_choice,
)
from modules.pipeline.hooks import NO_HOOKS, BatchRun, JobHooks
from modules.pipeline.images import (
    ResizeMode, fill_masked, latent_mask, masked_region, overlay_original, prepare_mask, resize_image,
)
from modules.pipeline.sampling_run import (
    LatentMask, SamplingChoice, images_to_latents, inpainting_conditioning, latents_to_images, sample_img2img_latents,
)
from modules.pipeline.tiling import seamless_tiling
from modules.pipeline.upscale import upscale_latents
from modules.sampling.noise import ImageNoise, NoiseSpec


@dataclass(frozen=True)
class Prepared:
    """One init image made ready: what is sampled (``working``, at the target size), the
    repaint mask for it, and how to put the result back (``original``, ``region``, ``full_mask``)."""

    working: Image.Image
    base: Image.Image  # the working image before any "fill": what unmasked pixels come back as
    mask: Image.Image | None
    original: Image.Image
    full_mask: Image.Image | None
    region: tuple[int, int, int, int] | None


def prepare(params: Img2ImgParams, image: Image.Image) -> Prepared:
    mask = prepare_mask(params.mask, params.inpainting_mask_invert, params.mask_blur) if params.mask else None
    region = masked_region(mask, params.inpaint_full_res_padding, params.width, params.height) \
        if mask is not None and params.inpaint_full_res else None
    source, source_mask = (image.crop(region), mask.crop(region)) if region else (image, mask)
    mode = ResizeMode.JUST_RESIZE if region else params.resize_mode
    working = resize_image(source, params.width, params.height, mode)
    working_mask = resize_image(source_mask, params.width, params.height, mode).convert("L") if mask else None
    base = working
    if working_mask is not None and params.inpainting_fill == InpaintFill.FILL:
        working = fill_masked(working, working_mask)
    return Prepared(working, base, working_mask, image.convert("RGB"), mask, region)


def init_latents(model: LoadedModel, params: Img2ImgParams, prepared: list[Prepared], factor: int) -> Tensor:
    if params.resize_mode != ResizeMode.LATENT_UPSCALE or prepared[0].region:
        return images_to_latents(model, [p.working for p in prepared])
    # "Just resize (latent upscale)": encode at the image's own size (to a multiple of 8), resize the latent.
    own = [p.original.resize((p.original.width // 8 * 8, p.original.height // 8 * 8)) for p in prepared]
    return upscale_latents(images_to_latents(model, own), (params.height // factor, params.width // factor), "Latent")


def repaint_tensor(prepared: list[Prepared], width: int, height: int) -> Tensor:
    masks = [latent_mask(p.mask, width, height) for p in prepared]
    return torch.from_numpy(np.stack(masks))[:, None]


def apply_fill(latents: Tensor, repaint: Tensor, fill: InpaintFill, spec: NoiseSpec) -> Tensor:
    """"latent noise" and "latent nothing" replace the masked latents before sampling (A1111)."""
    if fill == InpaintFill.LATENT_NOISE:
        return latents * (1 - repaint) + ImageNoise(spec).initial_noise() * repaint
    if fill == InpaintFill.LATENT_NOTHING:
        return latents * (1 - repaint)
    return latents


def masked_image_conditioning(model: LoadedModel, prepared: list[Prepared], repaint_pixels: Tensor) -> Tensor:
    """For 9-channel models: the working image with the repaint area set to grey, encoded."""
    masked = []
    for p, mask in zip(prepared, repaint_pixels):
        array = np.asarray(p.working, dtype=np.float32) * (1 - mask[0, ..., None].numpy()) + 127.5 * mask[0, ..., None].numpy()
        masked.append(Image.fromarray(array.round().astype(np.uint8)))
    return images_to_latents(model, masked)


def put_back(prepared: Prepared, result: Image.Image) -> Image.Image:
    if prepared.mask is None:
        return result
    if prepared.region is None:
        return overlay_original(result, prepared.base, prepared.mask)
    x1, y1, x2, y2 = prepared.region
    patch = result.resize((x2 - x1, y2 - y1), Image.Resampling.LANCZOS)
    pasted = prepared.original.copy()
    pasted.paste(patch, (x1, y1))
    return overlay_original(pasted, prepared.original, prepared.full_mask)


def img2img_fields(params: Img2ImgParams) -> dict[str, object]:
    """A1111's img2img extras, after the common fields (from the one infotext table)."""
    return written(params, ImageContext(seed=0, subseed=0), "img2img")


def sample_batch(
    model: LoadedModel, params: Img2ImgParams, prepared: list[Prepared], batch: BatchRun, report,
    choice: SamplingChoice,
) -> list[Image.Image]:
    spec = batch.noise
    factor = spec.latent_downscale
    latents = init_latents(model, params, prepared, factor)
    mask = conditioning = None
    if params.mask is not None:
        repaint = repaint_tensor(prepared, params.width // factor, params.height // factor)
        latents = apply_fill(latents, repaint, params.inpainting_fill, spec)
        mask = LatentMask(latents, 1 - repaint)
        if model.detected.family.is_inpainting:
            pixels = torch.from_numpy(np.stack([np.around(np.asarray(p.mask, dtype=np.float32) / 255) for p in prepared]))[:, None]
            conditioning = inpainting_conditioning(model, masked_image_conditioning(model, prepared, pixels), repaint)
    sampled = sample_img2img_latents(
        model, latents, batch.prompts, batch.negative_prompts, spec, choice,
        params.denoising_strength, mask, report, conditioning, params.initial_noise_multiplier,
    )
    return [put_back(p, image) for p, image in zip(prepared, latents_to_images(model, sampled))]


def generate_img2img(
    model: LoadedModel, params: Img2ImgParams, outputs: Path | None, job: Job | None = None,
    now: dt.datetime | None = None, preview_every: int = 0, save: SaveOptions = SaveOptions(), full_preview: bool = False,
    extra: dict[str, object] | None = None, prompt_options: PromptOptions | None = None, hooks: JobHooks = NO_HOOKS,
) -> list[GeneratedImage]:
    """All batches of ``params`` (validated by the caller); the i-th image of a batch uses init image i
    (cycling when there are fewer). ``extra``: infotext fields after the img2img ones. ``hooks``:
    the job's scripts (``modules/pipeline/hooks.py``)."""
    choice = sampling_choice(params, prompt_options)
    extra = {**img2img_fields(params), **(extra or {}), **prompt_fields(model, params, choice),
             **knob_fields(params, choice)}
    prepared = [prepare(params, params.init_images[i % len(params.init_images)]) for i in range(params.batch_size)]
    run = begin_run(params, hooks, extra)
    choice = dataclasses.replace(choice, guidance_observers=tuple(run.guidance_observers))

    def make_images(batch: BatchRun, report) -> list[Image.Image]:
        with seamless_tiling(model, params.tiling):
            return sample_batch(model, params, prepared, batch, report, choice)

    return run_batches(model, run, outputs, job, now, preview_every, make_images, "img2img-images",
                       save=save, full_preview=full_preview, hooks=hooks)
