"""txt2img / img2img: request -> params -> the job queue (or a selectable script) -> response."""

from __future__ import annotations

import asyncio
import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from modules.extensions.scripts import Script, ScriptArgsError
from modules.fileio import StorageFullError
from modules.jobs import Job, QueueFullError
from modules.models.families import UnknownModelLayoutError
from modules.models.safe_load import CheckpointError
from modules.models.vae_decode import NonFiniteLatentsError, VAEPrecisionError
from modules.params import ParamsError, Txt2ImgParams
from modules.pipeline.generate import GeneratedImage, SaveOptions, save_grid
from modules.pipeline.grid import image_grid
from modules.runtime import NoCheckpointError, PreparedJob, Runtime, save_options_from
from webui.api.convert import Settings, params_problems, request_params
from webui.api.errors import ApiFieldError, field_error
from webui.api.images import encode_png
from webui.api.info import info_json
from webui.api.schemas import GenerationRequest

DISCONNECT_POLL_SECONDS = 0.25  # how soon a gone client's job is dropped or interrupted


def selected_script(runtime: Runtime, request: GenerationRequest, is_img2img: bool) -> Script | None:
    if not request.script_name or request.script_name.strip().lower() == "none":
        return None
    try:
        return runtime.scripts.find(request.script_name, is_img2img)
    except KeyError as error:
        raise field_error("script_name", str(error.args[0])) from None


def save_options(runtime: Runtime, request: GenerationRequest, settings: Settings) -> SaveOptions:
    """``save_images`` false (A1111's API default) writes nothing; true follows the saving settings."""
    if not request.value("save_images"):
        return SaveOptions(images=False, grids=False)
    return save_options_from(settings.options, runtime.config.data_dir)


@contextmanager
def answered_errors() -> Iterator[None]:
    """A generation's failures as API answers: field errors as 422, never a traceback."""
    try:
        yield
    except ParamsError as error:
        raise params_problems(error) from None
    except ScriptArgsError as error:
        raise field_error("script_args", str(error)) from None
    except NoCheckpointError as error:
        raise HTTPException(status_code=503, detail=str(error)) from None
    except QueueFullError as error:
        raise HTTPException(status_code=503, detail=str(error), headers={"Retry-After": str(error.retry_after)}) from None
    except (CheckpointError, UnknownModelLayoutError) as error:
        raise field_error("override_settings.sd_model_checkpoint", f"cannot load the checkpoint: {error}") from None
    except (NonFiniteLatentsError, VAEPrecisionError) as error:
        raise field_error("generation", str(error)) from None
    except StorageFullError as error:  # 507 Insufficient Storage (RFC 4918 §11.5): the server's disk, not the request
        raise HTTPException(status_code=507, detail=str(error)) from None
    except (ApiFieldError, HTTPException):
        raise
    except Exception as error:  # a failed generation is answered, never shown as a traceback
        raise HTTPException(status_code=500, detail=f"{type(error).__name__}: {error}") from None


async def wait_for_job(runtime: Runtime, job: Job, request: Request) -> list[GeneratedImage]:
    """The job's images, awaited on the event loop (no server thread is held while it waits).
    A client that disconnects has its job dropped from the queue, or interrupted at the next step
    when it already runs, so nobody's work holds the worker for a reader who is gone."""
    waiting = asyncio.wrap_future(job.future)
    try:
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=DISCONNECT_POLL_SECONDS)
            if not waiting.done() and await request.is_disconnected():
                dropped = runtime.jobs.cancel(job)
                print(f"{job.id}: the client disconnected; " + ("dropped from the queue" if dropped else
                                                                "interrupted at its next step"), flush=True)
                raise HTTPException(status_code=499, detail="the client closed the connection")  # nginx's code
        return waiting.result()
    finally:
        runtime.jobs.forget(job)  # the result is handed over here; nothing keeps it for a page reload


async def run_jobs(runtime: Runtime, request: Request, prepared: "Prepared") -> list[GeneratedImage]:
    with answered_errors():
        if prepared.script is None:
            job = runtime.submit(prepared.job, save=prepared.save)
            return await wait_for_job(runtime, job, request)
        runtime.check_queue_room()  # a script queues its own jobs from a worker thread of the server
        # The script gets the request's parameters as given: each job it queues is prepared (styles,
        # always-on scripts) on its own, once.
        return await run_in_threadpool(prepared.script.run, runtime, prepared.params, prepared.args,
                                       save=prepared.save)


def echo(request: GenerationRequest) -> dict[str, Any]:
    """The request as A1111 echoes it: init images and mask only with ``include_init_images``."""
    body = request.model_dump()
    if not getattr(request, "include_init_images", False):
        for name in ("init_images", "mask"):
            if name in body:
                body[name] = None
    return body


@dataclass(frozen=True)
class Prepared:
    """A checked request, ready to queue: ``job`` as it runs, ``params`` as the request gave them."""

    params: Txt2ImgParams
    job: PreparedJob
    script: Script | None
    args: Sequence[Any]
    save: SaveOptions


def prepare(runtime: Runtime, request: GenerationRequest, is_img2img: bool) -> Prepared:
    params, settings = request_params(runtime, request, is_img2img)
    script = selected_script(runtime, request, is_img2img)
    try:
        job = runtime.prepare_job(params)
    except ParamsError as error:
        raise params_problems(error, request) from None
    return Prepared(params, job, script, request.value("script_args"), save_options(runtime, request, settings))


def respond(runtime: Runtime, request: GenerationRequest, prepared: Prepared, results: list[GeneratedImage],
            is_img2img: bool, now: dt.datetime) -> dict[str, Any]:
    images = [(r.image, r.infotext) for r in results]
    first_index = 0
    # a script that drew its own grid (X/Y/Z plot) returns it first
    own_grid = any(r.is_grid for r in results)
    if request.value("save_images") and len(results) >= 2 and not own_grid:
        # A1111 returns the grid first when it saves one; its infotext is the first image's.
        images.insert(0, (image_grid([r.image for r in results]), results[0].infotext))
        first_index = 1
        if prepared.script is not None:  # a script's jobs are one image each: the grid of them all is saved here
            kind = "img2img-grids" if is_img2img else "txt2img-grids"
            save_grid(results, runtime.config.outputs_dir if prepared.save.grids else None, kind, now, prepared.save)
    encoded = [encode_png(image, text) for image, text in images] if request.value("send_images") else []
    return {"images": encoded, "parameters": echo(request),
            "info": info_json(prepared.params, results, [text for _, text in images], first_index, now)}


async def generate(runtime: Runtime, http_request: Request, request: GenerationRequest,
                   is_img2img: bool) -> dict[str, Any]:
    """Validation, image decoding and PNG encoding run on the server's worker threads; the wait
    for the job runs on the event loop, so a long queue holds no thread and control routes
    (progress, interrupt, options) and the page answer at once."""
    prepared = await run_in_threadpool(prepare, runtime, request, is_img2img)
    now = dt.datetime.now()
    results = await run_jobs(runtime, http_request, prepared)
    return await run_in_threadpool(respond, runtime, request, prepared, results, is_img2img, now)
