"""Generation parameters: typed, frozen, validated at the edge (DESIGN §3, step 1).

Field names and defaults are A1111's (its API's ``StableDiffusionProcessing``
fields), so the UI, the API and the infotext map onto them one to one.
Sizes that are not multiples of 8 are rejected with a message rather than
silently floored as A1111's API does: the user learns the size they will get.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any, Collection

from PIL import Image

from modules.numbers import number_problem
from modules.sampling.catalog import resolve_sampler, resolve_schedule
from modules.sampling.noise import RngSource

SIZE_RANGE = (64, 2048)
STEPS_RANGE = (1, 150)
CFG_RANGE = (0.0, 30.0)
BATCH_SIZE_RANGE = (1, 8)
BATCH_COUNT_RANGE = (1, 100)
CLIP_SKIP_RANGE = (1, 12)
# The sampler knobs' ranges, as A1111's settings sliders bound them ("Sampler parameters");
# outside them the step formulas leave their domain (a negative eta takes a square root of
# a negative number) or the noise is unbounded.
KNOB_RANGES = {"eta": (0.0, 1.0), "s_churn": (0.0, 100.0), "s_tmin": (0.0, 10.0), "s_tmax": (0.0, 999.0),
               "s_noise": (0.0, 1.1), "order": (1, 50)}
# UniPC's choice knobs (A1111's "UniPC variant" and "UniPC skip type" settings).
KNOB_CHOICES = {"variant": ("bh1", "bh2", "vary_coeff"), "skip_type": ("time_uniform", "time_quadratic", "logSNR")}
SEED_MAX = 2**32 - 1
# Work bound for one batch: the UNet and VAE hold a whole batch at once, so its pixels (width x
# height x batch size, and the same at the hires size) are what memory and time grow with. Four
# images at the largest size: 1024x1024 x 8 and 2048x2048 x 4 pass, 2048x2048 x 8 does not.
MAX_BATCH_PIXELS = SIZE_RANGE[1] * SIZE_RANGE[1] * 4
# Work bounds for a prompt: each BREAK starts another 75-token chunk the text encoder runs on, and
# 5,000 of them take seconds before the first step; 20,000 characters is ~50 full chunks.
MAX_PROMPT_CHARS = 20_000
MAX_PROMPT_BREAKS = 64
SUPPORTED_RNG = (RngSource.CPU, RngSource.GPU)


# A1111's built-in upscaler names (its shared.latent_upscale_modes, then the two resamplers); the
# pipeline maps each to how it upscales (``modules/pipeline/upscale.py``).
LATENT_UPSCALER_NAMES = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                         "Latent (nearest)", "Latent (nearest-exact)")
PIXEL_UPSCALER_NAMES = ("Lanczos", "Nearest")
UPSCALER_NAMES = (*LATENT_UPSCALER_NAMES, *PIXEL_UPSCALER_NAMES)


class ResizeMode(IntEnum):
    """img2img's resize mode, by A1111's index."""

    JUST_RESIZE = 0
    CROP_AND_RESIZE = 1
    RESIZE_AND_FILL = 2
    LATENT_UPSCALE = 3  # "Just resize (latent upscale)": resized in latent space by the pipeline


class ParamsError(ValueError):
    """Invalid parameters: every (field, reason) found, so the user can fix them all at once."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in problems))

    @property
    def field(self) -> str:
        return self.problems[0][0]

    @property
    def reason(self) -> str:
        return self.problems[0][1]


@dataclass(frozen=True)
class Txt2ImgParams:
    prompt: str = ""
    negative_prompt: str = ""
    styles: tuple[str, ...] = ()  # names in styles.csv, merged into the prompts by Runtime.submit
    checkpoint: str | None = None  # a title, name or hash; None = the current default
    vae: str | None = None  # None = the "SD VAE" setting
    sampler_name: str = "DPM++ 2M"
    scheduler: str = "Automatic"
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    batch_size: int = 1
    n_iter: int = 1
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: int = 0
    seed_resize_from_w: int = 0
    eta_noise_seed_delta: int = 0
    rng: RngSource = RngSource.CPU
    # A1111's setting "Do not make DPM++ SDE deterministic across different batch sizes", inverted:
    # True = one Brownian tree per image (the default), False = one for the whole batch.
    sde_batch_determinism: bool = True
    clip_skip: int | None = None  # A1111's "Clip skip": 1 (or None) = the family's own layer
    sampler_knobs: tuple[tuple[str, Any], ...] = field(default=())
    tiling: bool = False
    # Hires fix: a second img2img pass at a larger size.
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str = "Latent"
    hr_second_pass_steps: int = 0  # 0 = the same as steps
    hr_resize_x: int = 0  # 0 and 0 = scale by hr_scale
    hr_resize_y: int = 0
    denoising_strength: float = 0.7
    # Always-on scripts this job runs, by title with their positional args (A1111's
    # ``alwayson_scripts``); resolved against the script registry by ``Runtime.submit``.
    alwayson_scripts: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def hires_size(self) -> tuple[int, int]:
        """(width, height) of the hires pass: resize-to when given (a 0 side follows the aspect), else scaled."""
        if self.hr_resize_x or self.hr_resize_y:
            width = self.hr_resize_x or round(self.hr_resize_y * self.width / self.height / 8) * 8
            height = self.hr_resize_y or round(self.hr_resize_x * self.height / self.width / 8) * 8
            return width, height
        return int(self.width * self.hr_scale) // 8 * 8, int(self.height * self.hr_scale) // 8 * 8

    def validate(self, model_upscalers: Collection[str] = ()) -> "Txt2ImgParams":
        """This object when valid; otherwise ``ParamsError`` naming each bad field and why.
        ``model_upscalers``: the upscaler model names on disk, also accepted as ``hr_upscaler``."""
        problems = _common_problems(self) + (_hires_problems(self, model_upscalers) if self.enable_hr else [])
        if problems:
            raise ParamsError(problems)
        return self


class InpaintFill(IntEnum):
    """A1111's "Masked content"."""

    FILL = 0
    ORIGINAL = 1
    LATENT_NOISE = 2
    LATENT_NOTHING = 3


INPAINT_FILL_LABELS = {InpaintFill.FILL: "fill", InpaintFill.ORIGINAL: "original",
                       InpaintFill.LATENT_NOISE: "latent noise", InpaintFill.LATENT_NOTHING: "latent nothing"}


@dataclass(frozen=True)
class Img2ImgParams(Txt2ImgParams):
    init_images: tuple[Image.Image, ...] = ()
    resize_mode: ResizeMode = ResizeMode.JUST_RESIZE
    denoising_strength: float = 0.75
    mask: Image.Image | None = None  # white = repaint
    mask_blur: int = 4
    inpainting_mask_invert: bool = False  # "Inpaint not masked"
    inpainting_fill: InpaintFill = InpaintFill.ORIGINAL
    inpaint_full_res: bool = False  # "Only masked"
    inpaint_full_res_padding: int = 32
    initial_noise_multiplier: float = 1.0

    def validate(self, model_upscalers: Collection[str] = ()) -> "Img2ImgParams":
        problems = _common_problems(self) + _img2img_problems(self)
        if problems:
            raise ParamsError(problems)
        return self


def _img2img_problems(p: Img2ImgParams) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not p.init_images:
        problems.append(("init_images", "img2img needs at least one image"))
    elif p.mask is not None and p.mask.size != p.init_images[0].size:
        problems.append(("mask", f"mask size {p.mask.size[0]}x{p.mask.size[1]} differs from the image's "
                                 f"{p.init_images[0].size[0]}x{p.init_images[0].size[1]}"))
    _in_range(problems, "denoising_strength", p.denoising_strength, (0.0, 1.0))
    _in_range(problems, "mask_blur", p.mask_blur, (0, 64))
    _in_range(problems, "inpaint_full_res_padding", p.inpaint_full_res_padding, (0, 256))
    _in_range(problems, "initial_noise_multiplier", p.initial_noise_multiplier, (0.5, 1.5))
    for name, enum in (("resize_mode", ResizeMode), ("inpainting_fill", InpaintFill)):
        if getattr(p, name) not in list(enum):
            problems.append((name, f"must be one of {', '.join(str(int(e)) for e in enum)}, got {getattr(p, name)!r}"))
    return problems


def _in_range(problems: list[tuple[str, str]], name: str, value: float, bounds: tuple[float, float]) -> None:
    reason = number_problem(value, bounds)
    if reason:
        problems.append((name, reason))


def _common_problems(p: Txt2ImgParams) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name in ("prompt", "negative_prompt"):
        text = getattr(p, name)
        if isinstance(text, str) and len(text) > MAX_PROMPT_CHARS:
            problems.append((name, f"is {len(text)} characters long; at most {MAX_PROMPT_CHARS} are accepted"))
        elif isinstance(text, str) and text.count("BREAK") > MAX_PROMPT_BREAKS:
            problems.append((name, f"has {text.count('BREAK')} BREAKs; at most {MAX_PROMPT_BREAKS} are accepted"))
    for name in ("width", "height"):
        value = getattr(p, name)
        _in_range(problems, name, value, SIZE_RANGE)
        if isinstance(value, int) and value % 8:
            problems.append((name, f"must be a multiple of 8 (the latent is 1/8 of the image), got {value}"))
    _in_range(problems, "steps", p.steps, STEPS_RANGE)
    _in_range(problems, "cfg_scale", p.cfg_scale, CFG_RANGE)
    _in_range(problems, "batch_size", p.batch_size, BATCH_SIZE_RANGE)
    _in_range(problems, "n_iter", p.n_iter, BATCH_COUNT_RANGE)
    if not any(name in ("width", "height", "batch_size") for name, _ in problems):
        _batch_pixels_problem(problems, "batch_size", p.width, p.height, p.batch_size)
    _in_range(problems, "subseed_strength", p.subseed_strength, (0.0, 1.0))
    for name in ("seed", "subseed"):
        _in_range(problems, name, getattr(p, name), (-(2**63), SEED_MAX))
    if p.clip_skip is not None:
        _in_range(problems, "clip_skip", p.clip_skip, CLIP_SKIP_RANGE)
    sampler = None
    try:
        sampler, _ = resolve_sampler(p.sampler_name)
    except ValueError as error:
        problems.append(("sampler_name", str(error)))
    try:
        resolve_schedule(p.scheduler)
    except ValueError as error:
        problems.append(("scheduler", str(error)))
    if sampler is not None:  # an unknown sampler is reported once, as sampler_name
        problems += _knob_problems(p, sampler)
    if p.rng not in SUPPORTED_RNG:
        choices = ", ".join(s.value for s in SUPPORTED_RNG)
        problems.append(("rng", f"must be one of {choices} (NV's Philox noise is not implemented), got {p.rng!r}"))
    return problems


def _knob_problems(p: Txt2ImgParams, sampler) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name, value in p.sampler_knobs:
        if name in KNOB_RANGES:
            _in_range(problems, name, value, KNOB_RANGES[name])
        if name in KNOB_CHOICES and value not in KNOB_CHOICES[name]:
            problems.append((name, f"must be one of {', '.join(KNOB_CHOICES[name])}, got {value!r}"))
    unknown = sorted({name for name, _ in p.sampler_knobs} - set(sampler.knobs))
    if unknown:
        accepted = ", ".join(sampler.knobs) or "none"
        problems.append(("sampler_knobs", f"{sampler.name} does not take {', '.join(unknown)} (it takes: {accepted})"))
    return problems


def _hires_problems(p: Txt2ImgParams, model_upscalers: Collection[str] = ()) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    _in_range(problems, "hr_scale", p.hr_scale, (1.0, 4.0))
    _in_range(problems, "hr_second_pass_steps", p.hr_second_pass_steps, (0, STEPS_RANGE[1]))
    _in_range(problems, "denoising_strength", p.denoising_strength, (0.0, 1.0))
    for name in ("hr_resize_x", "hr_resize_y"):
        value = getattr(p, name)
        if value and (value % 8 or not SIZE_RANGE[0] <= value <= SIZE_RANGE[1]):
            problems.append((name, f"must be 0 or a multiple of 8 between {SIZE_RANGE[0]} and {SIZE_RANGE[1]}, got {value}"))
    if p.hr_upscaler not in UPSCALER_NAMES and p.hr_upscaler not in model_upscalers:
        valid = ", ".join((*UPSCALER_NAMES, *model_upscalers))
        problems.append(("hr_upscaler", f"unknown upscaler {p.hr_upscaler!r}; valid: {valid}"))
    if not problems:
        width, height = p.hires_size()
        if not (SIZE_RANGE[0] <= width <= SIZE_RANGE[1] and SIZE_RANGE[0] <= height <= SIZE_RANGE[1]):
            problems.append(("hr_scale", f"the hires size {width}x{height} is outside {SIZE_RANGE[0]}..{SIZE_RANGE[1]}"))
        else:
            _batch_pixels_problem(problems, "hr_scale", width, height, p.batch_size)
    return problems


def _batch_pixels_problem(problems: list[tuple[str, str]], name: str, width: int, height: int, batch: int) -> None:
    """The batch's pixels over MAX_BATCH_PIXELS: a problem named after the field to lower."""
    if isinstance(batch, int) and width * height * batch > MAX_BATCH_PIXELS:
        problems.append((name, f"{width}x{height} x batch {batch} is {width * height * batch / 1e6:.1f} megapixels "
                               f"at once; at most {MAX_BATCH_PIXELS / 1e6:.1f} are accepted (lower the batch size or the size)"))


def params_field_names(cls: type = Txt2ImgParams) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
