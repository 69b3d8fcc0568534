"""A1111 compatibility surface: ``modules.processing`` — the mutable processing object ``p`` with
A1111's field names, ``Processed``, ``fix_seed`` and ``create_infotext``; and the helpers
extensions call from their scripts: ``opt_C``/``opt_f``, ``create_random_tensors`` (the engine's
seeded noise), ``decode_first_stage``/``images_tensor_to_samples`` (the engine's VAE),
``apply_overlay``, ``create_binary_mask``, ``setup_color_correction``/``apply_color_correction``.

``process_images(p)`` turns ``p`` into a job (``modules.extensions.a1111_bridge.params_from``),
queues it through ``Runtime.submit`` like every other job, and waits for its images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from modules.infotext.format import format_infotext
from modules.sampling.noise import ImageNoise, NoiseSpec, system_entropy

opt_C = 4  # latent channels of SD1/SD2/SDXL (A1111's name)
opt_f = 8  # pixels per latent (A1111's name)


@dataclass
class StableDiffusionProcessing:
    """What a generation will do; scripts read and assign these fields as in A1111."""

    sd_model: Any = None
    outpath_samples: str | None = None
    outpath_grids: str | None = None
    prompt: str | list = ""
    negative_prompt: str | list = ""
    styles: list = field(default_factory=list)
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    sampler_name: str = "Euler a"
    scheduler: str = "Automatic"
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool = False
    tiling: bool = False
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    extra_generation_params: dict = field(default_factory=dict)
    override_settings: dict = field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    denoising_strength: float | None = None
    scripts: Any = None
    script_args: list = field(default_factory=list)
    all_prompts: list = field(default_factory=list)
    all_negative_prompts: list = field(default_factory=list)
    all_seeds: list = field(default_factory=list)
    all_subseeds: list = field(default_factory=list)
    iteration: int = 0
    is_api: bool = False

    @property
    def sampler(self) -> str:
        return self.sampler_name

    def setup_prompts(self) -> None:
        """One prompt per image, as A1111 expands a single prompt across ``n_iter * batch_size``."""
        count = self.n_iter * self.batch_size
        self.all_prompts = self.prompt if isinstance(self.prompt, list) else [self.prompt] * count
        negative = self.negative_prompt
        self.all_negative_prompts = negative if isinstance(negative, list) else [negative] * count


@dataclass
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""


@dataclass
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    init_images: list = field(default_factory=list)
    resize_mode: int = 0
    image_mask: Any = None
    mask: Any = None
    mask_blur: int = 4
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float = 1.0
    denoising_strength: float | None = 0.75


@dataclass
class Processed:
    """What ``process_images`` returns: the images and, per image, the infotext."""

    p: Any
    images: list
    seed: int = -1
    info: str = ""
    subseed: int | None = None
    all_prompts: list = field(default_factory=list)
    all_negative_prompts: list = field(default_factory=list)
    all_seeds: list = field(default_factory=list)
    all_subseeds: list = field(default_factory=list)
    infotexts: list = field(default_factory=list)
    index_of_first_image: int = 0
    comments: str = ""

    def js(self) -> str:
        import json
        return json.dumps({"seed": self.seed, "infotexts": self.infotexts, "all_seeds": self.all_seeds})


def get_fixed_seed(seed: int | None) -> int:
    """-1, None or empty: a random seed in A1111's range, from the operating system's entropy
    (as the engine draws its own; never the global generator, which extensions may have seeded)."""
    if seed is None or seed == "" or seed == -1:
        return system_entropy()
    return int(seed)


def fix_seed(p: StableDiffusionProcessing) -> None:
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


def create_infotext(p: StableDiffusionProcessing, all_prompts=None, all_seeds=None, all_subseeds=None,
                    comments=None, iteration: int = 0, position_in_batch: int = 0, **_: Any) -> str:
    """The A1111 infotext of image ``iteration * batch_size + position_in_batch``, with the
    script-set ``extra_generation_params`` after the standard fields."""
    index = position_in_batch + iteration * p.batch_size
    prompts = all_prompts or p.all_prompts or [p.prompt]
    seeds = all_seeds or p.all_seeds or [p.seed]
    negatives = p.all_negative_prompts or [p.negative_prompt]
    fields = {"Steps": p.steps, "Sampler": p.sampler_name, "Schedule type": p.scheduler, "CFG scale": p.cfg_scale,
              "Seed": seeds[min(index, len(seeds) - 1)], "Size": f"{p.width}x{p.height}",
              **{k: v for k, v in p.extra_generation_params.items() if v is not None}}
    return format_infotext(prompts[min(index, len(prompts) - 1)], negatives[min(index, len(negatives) - 1)], fields)


def check_processing(p: StableDiffusionProcessing) -> None:
    """Ours, not A1111's: raises the ParamsError (naming each bad field) that ``process_images(p)``
    would, without generating, so a script that makes many images can refuse a bad one before it
    makes any. Always-on scripts are not run here."""
    from modules import shared
    from modules.extensions.a1111_bridge import params_from

    runtime = shared.bound_runtime()
    if runtime is None:
        raise RuntimeError("the web UI's runtime is not bound: extension scripts generate only inside the app")
    params_from(runtime, p).validate(runtime.upscaler_library.model_names())


def with_extra_fields(runtime: Any, params: Any, p: StableDiffusionProcessing) -> Any:
    """The job, with the fields a script set in ``p.extra_generation_params`` before calling
    ``process_images`` written into its images' infotexts (as A1111 writes them)."""
    extra = {key: value for key, value in p.extra_generation_params.items() if value is not None}
    if not extra:
        return params
    from modules.pipeline.hooks import ExtraFields, HookChain
    from modules.runtime import PreparedJob

    prepared = runtime.prepare_job(params)
    return PreparedJob(prepared.params, HookChain([ExtraFields(extra), prepared.hooks]))


def process_images(p: StableDiffusionProcessing) -> Processed:
    """Generate what ``p`` describes through the engine's job path (settings, styles, always-on
    scripts, the queue) and return A1111's ``Processed``; ``p.override_settings`` apply to this job."""
    import threading

    from modules import shared
    from modules.extensions.a1111_bridge import params_from, processed_from

    runtime = shared.bound_runtime()
    if runtime is None:
        raise RuntimeError("the web UI's runtime is not bound: extension scripts generate only inside the app")
    if threading.current_thread().name == "generation-worker":
        raise RuntimeError("process_images cannot run inside a job's hook: the queue runs one job at a time")
    save = getattr(p, "save_options", None)
    if p.do_not_save_samples or p.do_not_save_grid:
        from modules.runtime import save_options_from

        save = save or save_options_from(runtime.options.current, runtime.config.data_dir)
        save = dataclasses.replace(save, images=save.images and not p.do_not_save_samples,
                                   grids=save.grids and not p.do_not_save_grid)
    job = runtime.submit(with_extra_fields(runtime, params_from(runtime, p), p), save=save)
    try:
        results = job.future.result()
    finally:
        runtime.jobs.forget(job)
    if job.interrupted:  # scripts that loop over process_images stop on it, as on A1111's Interrupt
        shared.state.interrupted = True
    processed = processed_from(p, results)
    processed.generated = results  # the engine's own results, kept for the caller in the engine
    return processed


# --- helpers extensions call ----------------------------------------------------------------------

def create_random_tensors(shape, seeds, subseeds=None, subseed_strength: float = 0.0, seed_resize_from_h: int = 0,
                          seed_resize_from_w: int = 0, p: Any = None) -> torch.Tensor:
    """Initial noise [len(seeds), *shape] drawn as the engine draws it for these seeds (A1111's
    CPU RNG: the same seed gives the same noise as a generation), on ``devices.device``."""
    from modules import devices

    spec = NoiseSpec(tuple(int(s) for s in seeds), tuple(shape), tuple(int(s) for s in (subseeds or ())),
                     float(subseed_strength), max(0, int(seed_resize_from_h or 0)), max(0, int(seed_resize_from_w or 0)))
    return ImageNoise(spec, devices.device).initial_noise()


def _model(model: Any) -> Any:
    """The engine's loaded model: the one given, or the Runtime's current checkpoint."""
    if hasattr(model, "vae") and hasattr(model, "detected"):
        return model
    from modules import shared

    runtime = shared.bound_runtime()
    if runtime is None:
        raise RuntimeError("the web UI's runtime is not bound: the VAE is available only inside the app")
    return runtime.acquire_model()


def decode_first_stage(model: Any, x: torch.Tensor) -> torch.Tensor:
    """Scaled latents -> images in [-1, 1] through the model's VAE (tiled as the engine tiles)."""
    from modules.models.vae_decode import decode_latents
    from modules.pipeline.sampling_run import vae_decoder

    loaded = _model(model)
    with torch.inference_mode():
        return decode_latents(loaded.vae, x / loaded.detected.vae.scale_factor, loaded.policy.vae_retry_in_fp32,
                              vae_decoder(loaded, x))


def images_tensor_to_samples(image: torch.Tensor, approximation: Any = None, model: Any = None) -> torch.Tensor:
    """Images [B, 3, H, W] in 0..1 -> scaled latents (the posterior mean, as the engine's img2img)."""
    loaded = _model(model)
    dtype = next(loaded.vae.parameters()).dtype
    with torch.inference_mode():
        mean = loaded.vae_encode_call()((image * 2.0 - 1.0).to(loaded.policy.device, dtype))
    return mean.float() * loaded.detected.vae.scale_factor


def apply_overlay(image: Image.Image, paste_loc: tuple | None, index: int, overlays: list | None) -> Image.Image:
    """Composites the inpainting overlay ``overlays[index]`` over ``image`` (first cropped-and-
    resized into ``paste_loc`` (x, y, w, h) when the image is an only-masked crop)."""
    if overlays is None or index >= len(overlays):
        return image
    from modules.images import resize_image

    overlay = overlays[index]
    if paste_loc is not None:
        x, y, w, h = paste_loc
        canvas = Image.new("RGBA", (overlay.width, overlay.height))
        canvas.paste(resize_image(1, image, w, h), (x, y))
        image = canvas
    image = image.convert("RGBA")
    image.alpha_composite(overlay)
    return image.convert("RGB")


def create_binary_mask(image: Image.Image, round: bool = True) -> Image.Image:  # noqa: A002 - A1111's name
    """A mask as "L": an RGBA image's alpha (thresholded at 128 unless ``round`` is False) when it
    has transparency, else the image in greyscale."""
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        alpha = image.split()[-1].convert("L")
        return alpha.point(lambda x: 255 if x > 128 else 0) if round else alpha
    return image.convert("L")


def setup_color_correction(image: Image.Image) -> np.ndarray:
    """The colour target of img2img's colour correction: the image in CIELAB (8-bit, H x W x 3)."""
    from modules.pipeline.color_correction import lab_target
    return lab_target(image)


def apply_color_correction(correction: np.ndarray, original_image: Image.Image) -> Image.Image:
    """A1111's colour correction (``modules.pipeline.color_correction``): the image's CIELAB
    histograms matched to ``correction``, its own luminosity kept."""
    from modules.pipeline.color_correction import correct_colours
    return correct_colours(correction, original_image)
