"""An API request -> frozen generation parameters, with A1111's precedence:
the API defaults and the settings, then ``infotext`` (fields the request does not set), then the
request's own fields, then ``override_settings`` (this request only; nothing is persisted).

Fields A1111 takes but that we cannot honour are refused with a reason when they ask for
something (a refiner, face restoration), and accepted when they carry their neutral value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from PIL import Image

from modules.infotext.apply import infotext_to_params
from modules.infotext.parse import parse_infotext
from modules.options import Options, OptionsError, option_names, validate_option
from modules.params import Img2ImgParams, InpaintFill, ParamsError, Txt2ImgParams
from modules.pipeline.images import ResizeMode
from modules.runtime import Runtime
from modules.sampling.catalog import resolve_sampler
from modules.sampling.noise import RngSource
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
# Settings that become params fields for one request.
SETTING_TO_PARAM = {"sd_model_checkpoint": "checkpoint", "sd_vae": "vae", "CLIP_stop_at_last_layers": "clip_skip",
                    "eta_noise_seed_delta": "eta_noise_seed_delta", "randn_source": "rng",
                    "no_dpmpp_sde_batch_determinism": "sde_batch_determinism"}
# A1111's sampler knobs and the value at which they do nothing (s_tmax 0 means "no upper bound").
NEUTRAL_KNOBS = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0}
DDIM_LIKE = frozenset({"DDIM"})
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


def settings_fields(settings: Settings, only_overridden: bool) -> dict[str, Any]:
    """The params fields that come from settings: all of them, or only the ones overridden."""
    options = settings.options
    values = {"checkpoint": options.sd_model_checkpoint if "sd_model_checkpoint" in settings.overridden else None,
              "vae": options.sd_vae if "sd_vae" in settings.overridden else None,
              "clip_skip": options.CLIP_stop_at_last_layers, "eta_noise_seed_delta": options.eta_noise_seed_delta,
              "rng": RngSource.from_label(options.randn_source),
              "sde_batch_determinism": not options.no_dpmpp_sde_batch_determinism}
    if not only_overridden:
        return values
    return {SETTING_TO_PARAM[key]: values[SETTING_TO_PARAM[key]] for key in settings.overridden if key in SETTING_TO_PARAM}


def sampler_knobs(request: GenerationRequest, settings: Settings, sampler_name: str) -> tuple[tuple[str, Any], ...]:
    """eta and the churn knobs, for the samplers that take them (A1111 passes each knob only to a
    sampler whose function accepts it, and clients such as webuiapi send all of them every time)."""
    try:
        sampler, _ = resolve_sampler(sampler_name)
    except ValueError:
        return ()  # validate() names the sampler
    knobs = {}
    if "eta" in sampler.knobs:
        is_ddim = sampler.name in DDIM_LIKE
        eta = request.eta if request.eta is not None else (
            settings.options.eta_ddim if is_ddim else settings.options.eta_ancestral)
        if eta != (0.0 if is_ddim else 1.0):
            knobs["eta"] = eta
    for name, neutral in NEUTRAL_KNOBS.items():
        value = getattr(request, name)
        if name in sampler.knobs and value is not None and value != neutral:
            knobs[name] = value
    return tuple(knobs.items())


def request_params(runtime: Runtime, request: GenerationRequest, is_img2img: bool) -> tuple[Txt2ImgParams, Settings]:
    """Validated params for the request, and the settings it runs with; ApiFieldError on bad input."""
    problems = unsupported_problems(request)
    try:
        settings = request_settings(runtime, request.override_settings)
    except ApiFieldError as error:
        raise ApiFieldError(problems + error.problems) from None
    if problems:
        raise ApiFieldError(problems)
    params_type = Img2ImgParams if is_img2img else Txt2ImgParams
    fields = img2img_fields(request) if is_img2img else txt2img_fields(request)
    params = params_type(**{**fields, **settings_fields(settings, only_overridden=False)})
    if request.infotext:
        try:
            with_info = infotext_to_params(parse_infotext(request.infotext), params)
        except ValueError as error:
            raise ApiFieldError([("infotext", str(error))]) from None
        params = dataclasses.replace(with_info, **{name: fields[name] for name in explicit_param_names(request, params_type) if name in fields})
    params = dataclasses.replace(params, **settings_fields(settings, only_overridden=True))
    params = dataclasses.replace(params, sampler_knobs=sampler_knobs(request, settings, params.sampler_name))
    try:
        return params.validate(runtime.upscaler_library.model_names()), settings
    except ParamsError as error:
        raise params_problems(error, request) from None


def params_problems(error: ParamsError, request: GenerationRequest | None = None) -> ApiFieldError:
    """A ParamsError with each field under the name the client sent."""
    def name(field: str) -> str:
        if field == "sampler_name" and request is not None and not request.sampler_name:
            return "sampler_index"
        return PARAM_TO_REQUEST.get(field, field)
    return ApiFieldError([(name(field), reason) for field, reason in error.problems])
