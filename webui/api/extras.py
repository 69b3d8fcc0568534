"""The "Extras" upscale (A1111's postprocessing_upscale): by a factor or to a size, with an
optional second upscaler blended in. Upscaler "None" leaves the image as it is, as in A1111.
The image's own text chunks (its generation parameters) are kept."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from modules.pipeline.upscale import PIXEL_UPSCALERS, upscale_image
from webui.api.errors import ApiFieldError
from webui.api.schemas import ExtrasRequest

UPSCALER_NONE = "None"
EXTRAS_UPSCALERS = (UPSCALER_NONE, *PIXEL_UPSCALERS)
SCALE_RANGE = (1.0, 8.0)
MAX_SIDE = 8192


@dataclass(frozen=True)
class UpscalePlan:
    resize_to: bool  # resize_mode 1: to (width, height), else by ``scale``
    scale: float
    width: int
    height: int
    crop: bool
    upscaler_1: str
    upscaler_2: str
    visibility_2: float


def upscale_plan(request: ExtrasRequest) -> UpscalePlan:
    """The request checked: 422 naming each unusable field."""
    v = request.value
    problems = []
    for name in ("upscaler_1", "upscaler_2"):
        if v(name) not in EXTRAS_UPSCALERS:
            problems.append((name, f"unknown upscaler {v(name)!r}; valid: {', '.join(EXTRAS_UPSCALERS)}"))
    for name in ("gfpgan_visibility", "codeformer_visibility"):
        if v(name):
            problems.append((name, "no face restorer is installed"))
    if v("resize_mode") not in (0, 1):
        problems.append(("resize_mode", f"must be 0 (scale by) or 1 (scale to), got {v('resize_mode')}"))
    if v("resize_mode") == 0 and not SCALE_RANGE[0] <= v("upscaling_resize") <= SCALE_RANGE[1]:
        problems.append(("upscaling_resize", f"must be between {SCALE_RANGE[0]:g} and {SCALE_RANGE[1]:g}, "
                                             f"got {v('upscaling_resize')}"))
    for name in ("upscaling_resize_w", "upscaling_resize_h"):
        if v("resize_mode") == 1 and not 1 <= v(name) <= MAX_SIDE:
            problems.append((name, f"must be between 1 and {MAX_SIDE}, got {v(name)}"))
    if not 0.0 <= v("extras_upscaler_2_visibility") <= 1.0:
        problems.append(("extras_upscaler_2_visibility", f"must be between 0 and 1, got {v('extras_upscaler_2_visibility')}"))
    if problems:
        raise ApiFieldError(problems)
    return UpscalePlan(v("resize_mode") == 1, v("upscaling_resize"), v("upscaling_resize_w"), v("upscaling_resize_h"),
                       v("upscaling_crop"), v("upscaler_1"), v("upscaler_2"), v("extras_upscaler_2_visibility"))


def target_size(plan: UpscalePlan, image: Image.Image) -> tuple[int, int]:
    """Scale-to uses the larger of the two ratios (so the result covers the box, then is cropped)."""
    scale = max(plan.width / image.width, plan.height / image.height) if plan.resize_to else plan.scale
    return max(1, round(image.width * scale)), max(1, round(image.height * scale))


def upscale(plan: UpscalePlan, image: Image.Image) -> Image.Image:
    if plan.upscaler_1 == UPSCALER_NONE:
        return image
    size = target_size(plan, image)
    result = upscale_image(image.convert("RGB"), size, plan.upscaler_1)
    if plan.upscaler_2 != UPSCALER_NONE and plan.visibility_2 > 0:
        second = upscale_image(image.convert("RGB"), size, plan.upscaler_2)
        result = Image.blend(result, second, plan.visibility_2)
    if plan.resize_to and plan.crop:
        left, top = (result.width - plan.width) // 2, (result.height - plan.height) // 2
        result = result.crop((left, top, left + plan.width, top + plan.height))
    result.info.update({k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)})
    return result


def html_info(plan: UpscalePlan, image: Image.Image | None) -> str:
    """What A1111 shows under the result: the postprocessing fields."""
    if plan.upscaler_1 == UPSCALER_NONE or image is None:
        return "<p></p>"
    fields = [f"Postprocess upscale {'to' if plan.resize_to else 'by'}: "
              f"{f'{plan.width}x{plan.height}' if plan.resize_to else f'{plan.scale:g}'}",
              f"Postprocess upscaler: {plan.upscaler_1}"]
    if plan.upscaler_2 != UPSCALER_NONE and plan.visibility_2 > 0:
        fields.append(f"Postprocess upscaler 2: {plan.upscaler_2}")
    return f"<p>{', '.join(fields)}</p>"
