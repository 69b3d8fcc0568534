"""txt2img / img2img: request -> params -> the job queue (or a selectable script) -> response.

The route functions are plain ``def``s, so FastAPI runs each in its threadpool: the wait on the
job's future never blocks the event loop, and many clients wait at once while the one worker
runs their jobs in order.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from fastapi import HTTPException

from modules.extensions.scripts import Script, ScriptArgsError
from modules.models.safe_load import CheckpointError
from modules.params import ParamsError, Txt2ImgParams
from modules.pipeline.generate import GeneratedImage, SaveOptions, save_grid
from modules.pipeline.grid import image_grid
from modules.runtime import NoCheckpointError, Runtime, save_options_from
from webui.api.convert import Settings, params_problems, request_params
from webui.api.errors import ApiFieldError, field_error
from webui.api.images import encode_png
from webui.api.info import info_json
from webui.api.schemas import GenerationRequest


def selected_script(runtime: Runtime, request: GenerationRequest, is_img2img: bool) -> Script | None:
    if not request.script_name or request.script_name.strip().lower() == "none":
        return None
    try:
        return runtime.scripts.find(request.script_name, is_img2img)
    except KeyError as error:
        raise field_error("script_name", str(error.args[0])) from None


def with_alwayson_scripts(runtime: Runtime, request: GenerationRequest, params: Txt2ImgParams,
                          is_img2img: bool) -> Txt2ImgParams:
    """Each named always-on script's ``process`` with its ``{"args": [...]}``, in the request's order."""
    for title, entry in (request.alwayson_scripts or {}).items():
        field = f"alwayson_scripts.{title}"
        try:
            script = runtime.scripts.find(title, is_img2img, alwayson=True)
        except KeyError as error:
            raise field_error(field, str(error.args[0])) from None
        args = entry.get("args", []) if isinstance(entry, dict) else None
        if not isinstance(args, list):
            raise field_error(field, 'expected {"args": [...]}')
        try:
            params = script.process(params, args)
        except ScriptArgsError as error:
            raise field_error(field, str(error)) from None
    try:
        return params.validate()
    except ParamsError as error:
        raise params_problems(error, request) from None


def save_options(runtime: Runtime, request: GenerationRequest, settings: Settings) -> SaveOptions:
    """``save_images`` false (A1111's API default) writes nothing; true follows the saving settings."""
    if not request.value("save_images"):
        return SaveOptions(images=False, grids=False)
    return save_options_from(settings.options, runtime.config.data_dir)


def preview_steps(runtime: Runtime) -> int:
    """Live previews for ``/progress`` every N steps, per the "Live previews" settings (0 = none)."""
    options = runtime.options.current
    return max(options.show_progress_every_n_steps, 0) if options.live_previews_enable else 0


def run_jobs(runtime: Runtime, params: Txt2ImgParams, script: Script | None, args: Sequence[Any],
             save: SaveOptions) -> list[GeneratedImage]:
    try:
        if script is None:
            return runtime.submit(params, preview_every=preview_steps(runtime), save=save).future.result()
        return script.run(runtime, params, args, save=save)
    except ParamsError as error:
        raise params_problems(error) from None
    except ScriptArgsError as error:
        raise field_error("script_args", str(error)) from None
    except NoCheckpointError as error:
        raise HTTPException(status_code=503, detail=str(error)) from None
    except CheckpointError as error:
        raise field_error("override_settings.sd_model_checkpoint", f"cannot load the checkpoint: {error}") from None
    except ApiFieldError:
        raise
    except Exception as error:  # a failed generation is answered, never shown as a traceback
        raise HTTPException(status_code=500, detail=f"{type(error).__name__}: {error}") from None


def echo(request: GenerationRequest) -> dict[str, Any]:
    """The request as A1111 echoes it: init images and mask only with ``include_init_images``."""
    body = request.model_dump()
    if not getattr(request, "include_init_images", False):
        for name in ("init_images", "mask"):
            if name in body:
                body[name] = None
    return body


def generate(runtime: Runtime, request: GenerationRequest, is_img2img: bool) -> dict[str, Any]:
    params, settings = request_params(runtime, request, is_img2img)
    params = with_alwayson_scripts(runtime, request, params, is_img2img)
    script = selected_script(runtime, request, is_img2img)
    save = save_options(runtime, request, settings)
    now = dt.datetime.now()
    results = run_jobs(runtime, params, script, request.value("script_args"), save)
    images = [(r.image, r.infotext) for r in results]
    first_index = 0
    if request.value("save_images") and len(results) >= 2:
        # A1111 returns the grid first when it saves one; its infotext is the first image's.
        images.insert(0, (image_grid([r.image for r in results]), results[0].infotext))
        first_index = 1
        if script is not None:  # a script's jobs are one image each: the grid of them all is saved here
            kind = "img2img-grids" if is_img2img else "txt2img-grids"
            save_grid(results, runtime.config.outputs_dir if save.grids else None, kind, now, save)
    encoded = [encode_png(image, text) for image, text in images] if request.value("send_images") else []
    return {"images": encoded, "parameters": echo(request),
            "info": info_json(params, results, [text for _, text in images], first_index, now)}
