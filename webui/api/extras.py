"""``/sdapi/v1/extra-single-image`` and ``extra-batch-images``: A1111's ``ExtrasBaseRequest``
fields turned into the postprocessing steps' arguments (as A1111's ``run_extras`` does) and
run through the engine's registry. Bad fields are answered 422 under the request's own names."""

from __future__ import annotations

import html
from typing import Any

from PIL import Image

from modules.pipeline.extras import ExtrasRun, run_extras
from modules.pipeline.postprocess import (
    PostprocessContext, PostprocessError, UpscaleArgs, upscale_problems, upscale_size_problems,
)
from modules.runtime import Runtime
from webui.api.errors import ApiFieldError
from webui.api.schemas import ExtrasRequest

# The step argument -> the request field that carries it.
_REQUEST_FIELD = {
    "upscale_mode": "resize_mode", "upscale_by": "upscaling_resize", "upscale_to_width": "upscaling_resize_w",
    "upscale_to_height": "upscaling_resize_h", "upscale_crop": "upscaling_crop", "upscaler_1_name": "upscaler_1",
    "upscaler_2_name": "upscaler_2", "upscaler_2_visibility": "extras_upscaler_2_visibility",
    "gfpgan_visibility": "gfpgan_visibility", "codeformer_visibility": "codeformer_visibility",
}


def step_args(request: ExtrasRequest) -> dict[str, dict[str, Any]]:
    v = request.value
    upscale = {step: v(field) for step, field in _REQUEST_FIELD.items() if step in UpscaleArgs.__dataclass_fields__}
    return {"Upscale": upscale, "GFPGAN": {"gfpgan_visibility": v("gfpgan_visibility")},
            "CodeFormer": {"codeformer_visibility": v("codeformer_visibility"), "codeformer_weight": v("codeformer_weight")}}


def run_request(runtime: Runtime, request: ExtrasRequest, images: list[Image.Image]) -> ExtrasRun:
    args = step_args(request)
    upscale = UpscaleArgs(**args["Upscale"])
    problems = upscale_problems(upscale, runtime.upscaler_library.names())
    problems = problems or upscale_size_problems([image.size for image in images], upscale)
    problems += [(name, "no face restorer is available: face restoration needs face-detection and restoration model "
                        "weights that cannot be shipped with this program")
                 for name in ("gfpgan_visibility", "codeformer_visibility") if request.value(name)]
    if problems:
        raise ApiFieldError([(_REQUEST_FIELD.get(name, name), reason) for name, reason in problems])
    context = PostprocessContext(runtime.upscaling())
    try:
        return run_extras(runtime.postprocessing, [(image, None) for image in images], args, context)
    except PostprocessError as error:
        raise ApiFieldError([(_REQUEST_FIELD.get(error.field, error.field), error.reason)]) from error


def html_info(run: ExtrasRun) -> str:
    """A1111's ``plaintext_to_html`` of the postprocessing fields."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in run.infotext.split("\n")) + "</p>"
