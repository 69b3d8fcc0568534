"""An API request -> frozen generation parameters, with A1111's precedence (folded by
``modules.job_spec.job_params``, as for the page and the command line): the API defaults and the
settings, then ``infotext`` (fields the request does not set), then the request's own fields, then
``override_settings`` (this request only; nothing is persisted).

Fields A1111 takes but that we cannot honour are refused with a reason when they ask for
something (a refiner, face restoration), and accepted when they carry their neutral value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from PIL import Image

from modules.infotext.apply import infotext_changes
from modules.job_spec import KNOB_FIELDS, job_params
from modules.infotext.parse import parse_infotext
from modules.options import PATH_OPTIONS, Options, OptionsError, option_names, validate_option
from modules.params import Img2ImgParams, InpaintFill, ParamsError, Txt2ImgParams
from modules.pipeline.images import ResizeMode
from modules.runtime import Runtime
from webui.api.errors import ApiFieldError
from webui.api.images import PixelBudget, decode_image
from webui.api.schemas import GenerationRequest, Img2ImgRequest, Txt2ImgRequest

# Request field -> params field, where the names differ.
REQUEST_TO_PARAM = {"sampler_index": "sampler_name", "mask_blur_x": "mask_blur", "mask_blur_y": "mask_blur"}
# Params field -> the request field a problem is reported under.
PARAM_TO_REQUEST = {
    "checkpoint": "override_settings.sd_model_checkpoint", "vae": "override_settings.sd_vae",
    "clip_skip": "override_settings.CLIP_stop_at_last_layers", "rng": "override_settings.randn_source",
    "eta_noise_seed_delta": "override_settings.eta_noise_seed_delta", "sampler_knobs": "eta",
    "sde_batch_determinism": "override_settings.no_dpmpp_sde_batch_determinism",
}
# (field, neutral values, why it is refused otherwise)
UNSUPPORTED = (
    ("restore_faces", (False,), "no face restorer is installed"),
    ("refiner_checkpoint", ("", "None"), "a refiner pass is not supported"),
    ("firstpass_image", ("",), "a given first-pass image is not supported"),
    ("s_min_uncond", (0, 0.0), "skipping the negative prompt at low sigmas (NGMS) is not supported"),
    ("disable_extra_networks", (False,), "extra networks in the prompt cannot be turned off"),
    ("hr_checkpoint_name", ("", "Use same checkpoint"), "a different hires checkpoint is not supported"),
    ("hr_sampler_name", ("", "Use same sampler"), "a different hires sampler is not supported"),
    ("hr_scheduler", ("", "Use same scheduler"), "a different hires schedule type is not supported"),
    ("latent_mask", ("",), "a separate latent mask is not supported"),
)


@dataclass(frozen=True)
class Settings:
    """The settings for one request: the saved options with ``override_settings`` applied."""

    options: Options
    overridden: Mapping[str, Any]  # the override_settings keys we apply
    ignored: tuple[str, ...]  # keys we have no setting for


def request_settings(runtime: Runtime, overrides: Mapping[str, Any] | None) -> Settings:
    known, ignored, problems = {}, [], []
    for key, value in (overrides or {}).items():
        if key not in option_names():
            ignored.append(key)
            continue
        if key in PATH_OPTIONS and value != getattr(runtime.options.current, key):
            # Only the operator chooses where files are written (a flag, config.json, the Settings tab).
            problems.append((f"override_settings.{key}", "output folders cannot be changed by a request"))
            continue
        try:
            validate_option(key, value)
            value = runtime.resolved_setting(key, value)  # names must resolve, as for stored settings
            known[key] = value
        except OptionsError as error:
            problems.append((f"override_settings.{key}", error.reason))
    if problems:
        raise ApiFieldError(problems)
    return Settings(dataclasses.replace(runtime.options.current, **known), known, tuple(ignored))


def unsupported_problems(request: GenerationRequest) -> list[tuple[str, str]]:
    problems = []
    for name, neutral, reason in UNSUPPORTED:
        value = getattr(request, name, None)
        if value is not None and value not in neutral:
            problems.append((name, f"{reason} (got {value!r})"))
    for name, main in (("hr_prompt", "prompt"), ("hr_negative_prompt", "negative_prompt")):
        value = getattr(request, name, None)
        if value and value != request.value(main):
            problems.append((name, "a different hires prompt is not supported; leave it empty"))
    return problems


def common_fields(request: GenerationRequest) -> dict[str, Any]:
    """The request's values (defaults included) as params fields."""
    v = request.value
    return {
        "prompt": v("prompt"), "negative_prompt": v("negative_prompt"), "styles": tuple(v("styles") or ()),
        "seed": v("seed"), "subseed": v("subseed"), "subseed_strength": v("subseed_strength"),
        # A1111's -1 means "off", as our 0 does.
        "seed_resize_from_h": max(v("seed_resize_from_h"), 0), "seed_resize_from_w": max(v("seed_resize_from_w"), 0),
        "sampler_name": request.sampler_name or v("sampler_index"), "scheduler": request.scheduler or "Automatic",
        "batch_size": v("batch_size"), "n_iter": v("n_iter"), "steps": v("steps"), "cfg_scale": v("cfg_scale"),
        "width": v("width"), "height": v("height"), "tiling": bool(request.tiling),
        "denoising_strength": v("denoising_strength"),
    }


def txt2img_fields(request: Txt2ImgRequest) -> dict[str, Any]:
    v = request.value
    return {**common_fields(request), "enable_hr": v("enable_hr"), "hr_scale": v("hr_scale"),
            "hr_upscaler": request.hr_upscaler or "Latent", "hr_second_pass_steps": v("hr_second_pass_steps"),
            "hr_resize_x": v("hr_resize_x"), "hr_resize_y": v("hr_resize_y")}


def img2img_fields(request: Img2ImgRequest) -> dict[str, Any]:
    v = request.value
    problems = []
    if request.mask_blur is None and v("mask_blur_x") != v("mask_blur_y"):
        problems.append(("mask_blur_x", "a different horizontal and vertical mask blur is not supported; "
                                        "set mask_blur or equal mask_blur_x and mask_blur_y"))
    if v("inpainting_mask_invert") not in (0, 1):
        problems.append(("inpainting_mask_invert", f"must be 0 or 1, got {v('inpainting_mask_invert')}"))
    images, mask = decode_init_images(request, problems)
    if problems:
        raise ApiFieldError(problems)
    resize_mode, fill = v("resize_mode"), v("inpainting_fill")
    return {
        **common_fields(request), "init_images": images, "mask": mask,
        "resize_mode": ResizeMode(resize_mode) if resize_mode in list(ResizeMode) else resize_mode,
        "mask_blur": request.mask_blur if request.mask_blur is not None else v("mask_blur_x"),
        "inpainting_fill": InpaintFill(fill) if fill in list(InpaintFill) else fill,
        "inpaint_full_res": bool(v("inpaint_full_res")), "inpaint_full_res_padding": v("inpaint_full_res_padding"),
        "inpainting_mask_invert": bool(v("inpainting_mask_invert")),
        "initial_noise_multiplier": v("initial_noise_multiplier") if request.initial_noise_multiplier is not None else 1.0,
    }


def decode_init_images(request: Img2ImgRequest, problems: list) -> tuple[tuple[Image.Image, ...], Image.Image | None]:
    images = []
    budget = PixelBudget()
    for index, text in enumerate(request.init_images or []):
        try:
            images.append(decode_image(text, f"init_images.{index}", budget).convert("RGB"))
        except ApiFieldError as error:
            problems += error.problems
    mask = None
    if request.mask:
        try:
            mask = binary_mask(decode_image(request.mask, "mask", budget), request.value("mask_round"))
        except ApiFieldError as error:
            problems += error.problems
    return tuple(images), mask


def binary_mask(image: Image.Image, round_it: bool) -> Image.Image:
    """White = repaint. A mask with transparency is read from its alpha (A1111's create_binary_mask);
    ``mask_round`` thresholds it at the middle grey."""
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] < 255:
        mask = image.getchannel("A")
    else:
        mask = image.convert("L")
    return mask.point(lambda value: 255 if value > 128 else 0) if round_it else mask


def explicit_param_names(request: GenerationRequest, params_type: type) -> set[str]:
    names = {f.name for f in dataclasses.fields(params_type)}
    given = {REQUEST_TO_PARAM.get(name, name) for name in request.given()}
    return given & names


def alwayson_calls(request: GenerationRequest) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """``alwayson_scripts`` ({title: {"args": [...]}}) as (title, args) pairs; the titles are
    resolved with the job (``Runtime.prepare_job``)."""
    calls, problems = [], []
    for title, entry in (request.alwayson_scripts or {}).items():
        args = entry.get("args", []) if isinstance(entry, dict) else None
        if not isinstance(args, list):
            problems.append((f"alwayson_scripts.{title}", 'expected {"args": [...]}'))
        else:
            calls.append((title, tuple(args)))
    if problems:
        raise ApiFieldError(problems)
    return tuple(calls)


def request_params(runtime: Runtime, request: GenerationRequest, is_img2img: bool) -> tuple[Txt2ImgParams, Settings]:
    """The request's job parameters (checked once, with the job, by ``Runtime.prepare_job``) and the
    settings it runs with; ApiFieldError on input that cannot become parameters."""
    problems = unsupported_problems(request)
    try:
        settings = request_settings(runtime, request.override_settings)
    except ApiFieldError as error:
        raise ApiFieldError(problems + error.problems) from None
    if problems:
        raise ApiFieldError(problems)
    fields = img2img_fields(request) if is_img2img else txt2img_fields(request)
    knobs = {name: getattr(request, name) for name in KNOB_FIELDS if getattr(request, name, None) is not None}
    given = {**fields, **knobs, "alwayson_scripts": alwayson_calls(request)}
    if request.infotext:
        try:
            stated = infotext_changes(parse_infotext(request.infotext), is_img2img)
        except ValueError as error:
            raise ApiFieldError([("infotext", str(error))]) from None
        explicit = explicit_param_names(request, Img2ImgParams if is_img2img else Txt2ImgParams)
        explicit |= KNOB_FIELDS & set(request.given())
        given = {**given, **{name: value for name, value in stated.items() if name not in explicit}}
    kind = "img2img" if is_img2img else "txt2img"
    return job_params(kind, given, settings.options, settings.overridden), settings


def params_problems(error: ParamsError, request: GenerationRequest | None = None) -> ApiFieldError:
    """A ParamsError with each field under the name the client sent."""
    def name(field: str) -> str:
        if field == "sampler_name" and request is not None and not request.sampler_name:
            return "sampler_index"
        return PARAM_TO_REQUEST.get(field, field)
    return ApiFieldError([(name(field), reason) for field, reason in error.problems])
