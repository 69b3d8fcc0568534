"""txt2img in one straight line (DESIGN §3, steps 3-4): model from the cache, seeds, per batch
the sampler run and the decode, then per image the infotext and an atomic save.

Interrupt stops at the next step and returns every image finished so far;
skip ends the current batch and goes on with the next.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image
from torch import Tensor

from modules.infotext.files import filename_tokens, grid_path, output_path, save_image
from modules.infotext.fields import (  # noqa: F401 - schedule_label, uses_denoising re-exported
    VERSION, ImageContext, schedule_label, uses_denoising, written, written_knobs,
)
from modules.job_spec import DDIM_LIKE
from modules.infotext.format import format_infotext
from modules.jobs import Job
from modules.models.load import LoadedModel
from modules.params import Img2ImgParams, Txt2ImgParams
from modules.pipeline.conditioning import PromptOptions, prompt_infotext_fields
from modules.pipeline.grid import image_grid
from modules.pipeline.hooks import NO_HOOKS, BatchRun, ImageSave, JobHooks, JobRun
from modules.pipeline.preview import cheap_preview
from modules.pipeline.sampling_run import (
    SamplingChoice, images_to_latents, latents_to_images, sample_img2img_latents, sample_txt2img_latents,
)
from modules.pipeline.tiling import seamless_tiling
from modules.pipeline.upscale import LATENT_UPSCALE_MODES, upscale_image, upscale_latents
from modules.upscalers.library import Upscaling
from modules.sampling.catalog import resolve_sampler, resolve_schedule
from modules.sampling.noise import NoiseSpec, image_seeds, resolve_seed
from modules.sampling.samplers import SamplerStep, SamplingInterrupted



@dataclass(frozen=True)
class SaveOptions:
    """The saving settings, frozen for one job: whether images and grids are written, their format,
    quality and file-name pattern, and folders that replace ``outputs/<kind>``."""

    images: bool = True
    grids: bool = True
    fmt: str = "png"
    quality: int = 80  # JPEG/WebP
    pattern: str = "[seed]"
    folders: tuple[tuple[str, Path], ...] = ()  # (output kind, folder)

    def folder(self, kind: str) -> Path | None:
        return dict(self.folders).get(kind)


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    infotext: str
    seed: int
    subseed: int
    path: Path | None
    is_grid: bool = False  # a script's grid of other images (it leads the results, as A1111's)


def infotext_fields(params: Txt2ImgParams, model: LoadedModel, seed: int, subseed: int) -> dict[str, object]:
    """The image's fields from the one infotext table, in A1111's order, Version last."""
    context = ImageContext(seed, subseed, model.checkpoint.shorthash, model.checkpoint.model_name,
                           model.vae_file.shorthash if model.vae_file else None,
                           model.vae_file.stem if model.vae_file else None)
    return {**written(params, context, "common"), **written(params, context, "hires"), "Version": VERSION}


def batch_noise_spec(params: Txt2ImgParams, model: LoadedModel, seeds: tuple[int, ...], subseeds: tuple[int, ...]) -> NoiseSpec:
    factor = 2 ** (len(model.detected.vae.ch_mult) - 1)
    shape = (model.detected.vae.embed_dim, params.height // factor, params.width // factor)
    return NoiseSpec(
        seeds=seeds, latent_shape=shape, subseeds=subseeds, subseed_strength=params.subseed_strength,
        seed_resize_from_h=params.seed_resize_from_h, seed_resize_from_w=params.seed_resize_from_w,
        eta_noise_seed_delta=params.eta_noise_seed_delta, source=params.rng, latent_downscale=factor,
        brownian_per_image=params.sde_batch_determinism,
    )


def hires_pass(
    model: LoadedModel, params: Txt2ImgParams, latents: Tensor, batch: BatchRun, choice: SamplingChoice, report,
    upscaling: Upscaling | None = None,
) -> Tensor:
    """Upscale the first pass to ``params.hires_size()`` and refine it with img2img (A1111's hires fix).

    The second pass draws its noise from the same per-image seeds at the new size and, as A1111's,
    takes the hires steps whatever the strength (its ladder is built for steps / strength). Pixel
    upscalers go through ``upscaling`` (which also knows the upscaler model files) when given.
    """
    width, height = params.hires_size()
    spec = batch.noise
    factor = spec.latent_downscale
    if params.hr_upscaler in LATENT_UPSCALE_MODES:
        upscaled = upscale_latents(latents.float(), (height // factor, width // factor), params.hr_upscaler)
    else:
        resize = upscaling.resize if upscaling is not None else upscale_image
        images = [resize(image, (width, height), params.hr_upscaler) for image in latents_to_images(model, latents)]
        upscaled = images_to_latents(model, images)
    hires_spec = dataclasses.replace(spec, latent_shape=(spec.latent_shape[0], height // factor, width // factor))
    hires_choice = dataclasses.replace(choice, steps=params.hr_second_pass_steps or params.steps,
                                       first_pass_steps=choice.steps)
    return sample_img2img_latents(
        model, upscaled, batch.prompts, batch.negative_prompts, hires_spec, hires_choice, params.denoising_strength,
        callback=report, fixed_steps=True,
    )


def step_reporter(job: Job | None, batch: int, batches: int, preview_every: int = 0, make_preview=None):
    """Progress for each sampling step; a preview of the first image every ``preview_every`` steps
    (``make_preview(denoised_latents)``, the cheap linear map by default)."""
    make_preview = make_preview or (lambda denoised: cheap_preview(denoised[0]))

    def report(step: SamplerStep) -> None:
        if job is None:
            return
        done = step.index + 1
        preview = {"preview": make_preview(step.denoised)} if preview_every and done % preview_every == 0 else {}
        job.report(step=done, total_steps=step.total, image=batch, images=batches, **preview)
        if job.interrupted or job.take_skip():
            raise SamplingInterrupted("interrupted" if job.interrupted else "skipped")
    return report


def begin_run(params: Txt2ImgParams, hooks: JobHooks, extra: dict[str, object] | None = None) -> JobRun:
    """The job's seeds (one per image, A1111's all_seeds) and prompts, then the hooks' ``begin``."""
    seed, subseed = resolve_seed(params.seed), resolve_seed(params.subseed)
    count = params.batch_size * params.n_iter
    seeds, subseeds = image_seeds(seed, subseed, params.subseed_strength, count)
    run = JobRun(params, [params.prompt] * count, [params.negative_prompt] * count, list(seeds), list(subseeds),
                 dict(extra or {}))
    hooks.begin(run)
    return run


def run_batches(
    model: LoadedModel, run: JobRun, outputs: Path | None, job: Job | None, now: dt.datetime | None,
    preview_every: int, make_images: Callable[[BatchRun, Callable], list[Image.Image]], kind: str,
    save: SaveOptions = SaveOptions(), full_preview: bool = False, hooks: JobHooks = NO_HOOKS,
) -> list[GeneratedImage]:
    """The batch loop shared by txt2img and img2img: per batch the hooks, ``make_images`` and, per
    image, the hooks, infotext and saving; interrupt stops, skip drops the batch in progress.
    ``full_preview``: live previews decoded by the VAE instead of the cheap linear map."""
    params = run.params
    make_preview = (lambda denoised: latents_to_images(model, denoised[:1])[0]) if full_preview else None
    if make_preview is None and model.preview_factors is not None:
        make_preview = lambda denoised: cheap_preview(denoised[0], model.preview_factors)  # noqa: E731
    results: list[GeneratedImage] = []
    for number in range(params.n_iter):
        if job is not None and job.interrupted:
            break
        batch = run.batch(number)
        hooks.before_batch(run, batch)
        batch.noise = batch_noise_spec(params, model, tuple(batch.seeds), tuple(batch.subseeds))
        try:
            images = make_images(batch, step_reporter(job, number, params.n_iter, preview_every, make_preview))
        except SamplingInterrupted:
            continue  # skipped or interrupted: this batch has no finished image
        hooks.after_batch(run, batch, images)
        for index, image in enumerate(images):
            image = hooks.image(run, batch, index, image)
            results.append(finish_image(model, run, batch, index, image, outputs if save.images else None,
                                        now, kind, save, hooks))
    hooks.after_job(run, results)
    save_grid(results, outputs if save.grids else None, kind.replace("-images", "-grids"), now, save)
    return results


def sampling_choice(params: Txt2ImgParams, prompt_options: PromptOptions | None = None) -> SamplingChoice:
    return SamplingChoice(params.sampler_name, params.scheduler, params.steps, params.cfg_scale,
                          params.clip_skip, dict(params.sampler_knobs), prompt_options or PromptOptions())


def prompt_fields(model: LoadedModel, params: Txt2ImgParams, choice: SamplingChoice) -> dict[str, object]:
    """"TI hashes" and "Emphasis" for this generation (a1111-conventions §2)."""
    hires_steps = (params.hr_second_pass_steps or params.steps) if params.enable_hr else None
    return prompt_infotext_fields(model.text_encoder, model.tokenizer, params.prompt, params.negative_prompt,
                                  choice.prompt_options, choice.steps, hires_steps)


def knob_fields(params: Txt2ImgParams, choice: SamplingChoice) -> dict[str, object]:
    """The sampler knobs of this job as infotext fields."""
    return written_knobs(params.sampler_knobs, choice.sampler.name in DDIM_LIKE)


def generate_txt2img(
    model: LoadedModel, params: Txt2ImgParams, outputs: Path | None, job: Job | None = None,
    now: dt.datetime | None = None, preview_every: int = 0, save: SaveOptions = SaveOptions(), full_preview: bool = False,
    extra: dict[str, object] | None = None, prompt_options: PromptOptions | None = None,
    upscaling: Upscaling | None = None, hooks: JobHooks = NO_HOOKS,
) -> list[GeneratedImage]:
    """All batches of ``params`` (validated by the caller); images saved under ``outputs`` when given.
    ``extra``: infotext fields added before Version (e.g. "Lora hashes"). ``upscaling``: how a
    hires pixel upscaler runs (model files included); None = the built-in resamplers only.
    ``hooks``: the job's scripts, called at their points (``modules/pipeline/hooks.py``)."""
    choice = sampling_choice(params, prompt_options)
    run = begin_run(params, hooks, {**(extra or {}), **prompt_fields(model, params, choice), **knob_fields(params, choice)})
    choice = dataclasses.replace(choice, guidance_observers=tuple(run.guidance_observers))

    def make_images(batch: BatchRun, report: Callable) -> list[Image.Image]:
        with seamless_tiling(model, params.tiling):  # the VAE decodes with circular padding too
            latents = sample_txt2img_latents(model, batch.prompts, batch.negative_prompts, batch.noise, choice, report)
            if params.enable_hr:
                latents = hires_pass(model, params, latents, batch, choice, report, upscaling)
            return latents_to_images(model, latents)

    return run_batches(model, run, outputs, job, now, preview_every, make_images, "txt2img-images",
                       save=save, full_preview=full_preview, hooks=hooks)


def save_grid(
    results: list[GeneratedImage], outputs: Path | None, kind: str, now: dt.datetime | None, save: SaveOptions = SaveOptions(),
) -> Path | None:
    """A grid of the whole generation when it made more than one image, with the first image's infotext."""
    if outputs is None or len(results) < 2:
        return None
    path = grid_path(outputs, kind, (now or dt.datetime.now()).strftime("%Y-%m-%d"), save.fmt, save.folder(kind))
    save_image(image_grid([r.image for r in results]), path, results[0].infotext, save.quality)
    return path


def finish_image(
    model: LoadedModel, run: JobRun, batch: BatchRun, index: int, image: Image.Image, outputs: Path | None,
    now: dt.datetime | None, kind: str = "txt2img-images", save: SaveOptions = SaveOptions(),
    hooks: JobHooks = NO_HOOKS,
) -> GeneratedImage:
    """One image's infotext (its own prompt and seeds) and, with ``outputs``, its atomic save,
    between the hooks' ``before_save`` and ``after_save``."""
    params = dataclasses.replace(run.params, prompt=batch.prompts[index], negative_prompt=batch.negative_prompts[index])
    seed, subseed = batch.seeds[index], batch.subseeds[index]
    fields = infotext_fields(params, model, seed, subseed)
    version = fields.pop("Version")
    fields = {**fields, **run.extra_generation_params, "Version": version}  # extras before Version, as A1111
    infotext = format_infotext(params.prompt, params.negative_prompt, fields)
    path = None
    if outputs is not None:
        tokens = filename_tokens(
            seed=seed, steps=params.steps, cfg=params.cfg_scale, sampler=params.sampler_name,
            model_name=model.checkpoint.model_name, model_hash=model.checkpoint.shorthash, prompt=params.prompt,
            width=params.width, height=params.height, batch_number=index, now=now or dt.datetime.now(),
        )
        saving = ImageSave(image, output_path(outputs, kind, tokens, save.pattern or "[seed]", save.fmt,
                                              save.folder(kind)), infotext)
        hooks.before_save(run, saving)
        save_image(saving.image, saving.path, saving.infotext, save.quality)
        hooks.after_save(run, saving)
        path = saving.path
    return GeneratedImage(image, infotext, seed, subseed, path)
