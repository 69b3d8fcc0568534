"""``/sdapi/v1/extra-single-image`` and ``extra-batch-images``: A1111's ``ExtrasBaseRequest``
fields turned into the postprocessing steps' arguments (as A1111's ``run_extras`` does) and
run through the engine's registry, as a job of the queue (so an upscale and a generation take
turns on the device; the wait is async, as the generation routes'). Bad fields are answered 422
under the request's own names."""

from __future__ import annotations

import html
from typing import Any

from fastapi import HTTPException, Request
from PIL import Image

from modules.jobs import Job, QueueFullError
from modules.pipeline.extras import ExtrasRun, run_extras
from modules.pipeline.postprocess import (
    PostprocessContext, PostprocessError, UpscaleArgs, upscale_problems, upscale_size_problems,
)
from modules.runtime import Runtime
from webui.api.errors import ApiFieldError
from webui.api.generation import wait_for_job
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


def submit_request(runtime: Runtime, request: ExtrasRequest, images: list[Image.Image]) -> Job:
    """The checked request queued as one job (422 before anything is queued; 503 when the queue is full)."""
    args = step_args(request)
    upscale = UpscaleArgs(**args["Upscale"])
    problems = upscale_problems(upscale, runtime.upscaler_library.names())
    problems = problems or upscale_size_problems([image.size for image in images], upscale)
    problems += [(name, "no face restorer is available: face restoration needs face-detection and restoration model "
                        "weights that cannot be shipped with this program")
                 for name in ("gfpgan_visibility", "codeformer_visibility") if request.value(name)]
    if problems:
        raise ApiFieldError([(_REQUEST_FIELD.get(name, name), reason) for name, reason in problems])

    def work(job: Job) -> ExtrasRun:
        context = PostprocessContext(runtime.upscaling(lambda: job.interrupted))
        return run_extras(runtime.postprocessing, [(image, None) for image in images], args, context)

    try:
        return runtime.jobs.submit(work, max_waiting=runtime.options.current.queue_max_waiting,
                                   description=f"extras: {len(images)} image(s)")
    except QueueFullError as error:
        raise HTTPException(status_code=503, detail=str(error), headers={"Retry-After": str(error.retry_after)}) from None


async def run_request(runtime: Runtime, request: ExtrasRequest, images: list[Image.Image],
                      http_request: Request) -> ExtrasRun:
    job = submit_request(runtime, request, images)
    try:
        return await wait_for_job(runtime, job, http_request)
    except PostprocessError as error:
        raise ApiFieldError([(_REQUEST_FIELD.get(error.field, error.field), error.reason)]) from error


def html_info(run: ExtrasRun) -> str:
    """A1111's ``plaintext_to_html`` of the postprocessing fields."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in run.infotext.split("\n")) + "</p>"
