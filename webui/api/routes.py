"""mount_api(app, runtime): A1111's ``/sdapi/v1`` routes on our FastAPI app (a1111-conventions §5).

Routes are plain ``def``s: FastAPI runs them in its threadpool, so a route that waits for a
generation never blocks the event loop. Who may call them is decided in front of the whole app
(``webui/access.py``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool

from modules.infotext.files import read_text_chunks
from modules.networks.embeddings import EmbeddingInfo
from modules.infotext.parse import parse_infotext
from modules.options import OptionsError
from modules.runtime import NoCheckpointError, Runtime
from webui.api import listings
from webui.api.errors import ApiFieldError, add_error_handlers, field_error
from webui.api.extras import html_info, run_request
from webui.api.generation import generate
from webui.api.images import PixelBudget, decode_image, encode_png
from webui.api.schemas import (
    ExtrasBatchRequest, ExtrasBatchResponse, ExtrasSingleRequest, ExtrasSingleResponse, GenerationResponse,
    Img2ImgRequest, PngInfoRequest, PngInfoResponse, Txt2ImgRequest,
)

API_PREFIX = "/sdapi/v1"
# Computed from the loaded state, not settings: GET /options shows it, POST /options ignores it.
READ_ONLY_OPTIONS = ("sd_checkpoint_hash",)


def mount_api(app: FastAPI, runtime: Runtime) -> None:
    """Adds the routes; call before mounting the page at "/" (a mount there would shadow them)."""
    router = APIRouter(prefix=API_PREFIX, tags=["sdapi"])
    add_generation_routes(router, runtime)
    add_state_routes(router, runtime)
    add_list_routes(router, runtime)
    add_network_routes(router, runtime)
    app.include_router(router)
    add_error_handlers(app)


def add_generation_routes(router: APIRouter, runtime: Runtime) -> None:
    @router.post("/txt2img", response_model=GenerationResponse)
    async def txt2img(request: Txt2ImgRequest, http_request: Request) -> dict:
        return await generate(runtime, http_request, request, is_img2img=False)

    @router.post("/img2img", response_model=GenerationResponse)
    async def img2img(request: Img2ImgRequest, http_request: Request) -> dict:
        if not request.init_images:
            raise field_error("init_images", "img2img needs at least one image")
        return await generate(runtime, http_request, request, is_img2img=True)

    @router.post("/extra-single-image", response_model=ExtrasSingleResponse)
    async def extra_single_image(request: ExtrasSingleRequest, http_request: Request) -> dict:
        image = await run_in_threadpool(decode_image, request.image, "image")
        run = await run_request(runtime, request, [image], http_request)
        return {"html_info": html_info(run), "image": await run_in_threadpool(encode_png, run.results[0].image)}

    @router.post("/extra-batch-images", response_model=ExtrasBatchResponse)
    async def extra_batch_images(request: ExtrasBatchRequest, http_request: Request) -> dict:
        def decoded() -> list[Image.Image]:
            budget = PixelBudget()
            return [decode_image(item.data, f"imageList.{index}.data", budget)
                    for index, item in enumerate(request.imageList or [])]

        run = await run_request(runtime, request, await run_in_threadpool(decoded), http_request)
        encoded = await run_in_threadpool(lambda: [encode_png(result.image) for result in run.results])
        return {"html_info": html_info(run), "images": encoded}

    @router.post("/png-info", response_model=PngInfoResponse)
    def png_info(request: PngInfoRequest) -> dict:
        if not (request.image or "").strip():
            return {"info": "", "items": {}, "parameters": {}}
        chunks = read_text_chunks(decode_image(request.image, "image"))
        info = chunks.pop("parameters", "")
        return {"info": info, "items": chunks, "parameters": parse_infotext(info) if info else {}}


def progress_body(runtime: Runtime, skip_current_image: bool) -> dict[str, Any]:
    """A1111's progress shape for the job running now (all zeros when idle)."""
    job, waiting = runtime.jobs.current, runtime.jobs.waiting()
    state = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "", "job_count": waiting,
             "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
    if job is None or job.future.done():
        return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None}
    progress = job.progress
    running_for = time.monotonic() - progress.started if progress.started is not None else 0.0
    started = time.strftime("%Y%m%d%H%M%S", time.localtime(time.time() - running_for))
    state.update(interrupted=job.interrupted, job=job.id, job_count=1 + waiting, job_timestamp=started,
                 job_no=progress.image, sampling_step=progress.step, sampling_steps=progress.total_steps,
                 skipped=job.skip_requested)
    preview = progress.preview if (progress.preview is not None and not skip_current_image) else None
    return {"progress": max(progress.fraction(), 0.01), "eta_relative": progress.eta_seconds(time.monotonic()) or 0.0,
            "state": state, "current_image": encode_png(preview.convert("RGB")) if preview is not None else None,
            "textinfo": f"Step {progress.step}/{progress.total_steps}" if progress.total_steps else None}


def options_body(runtime: Runtime) -> dict[str, Any]:
    body = {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(runtime.options.current).items()}
    try:
        current = runtime.resolve_checkpoint()
    except NoCheckpointError:
        current = None
    body["sd_model_checkpoint"] = current.title if current else body["sd_model_checkpoint"]
    body["sd_checkpoint_hash"] = current.sha256 if current else None
    return body


def add_state_routes(router: APIRouter, runtime: Runtime) -> None:
    # The control routes are async: they answer on the event loop, never behind a busy thread pool.
    @router.get("/progress")
    async def progress(skip_current_image: bool = False) -> dict:
        return progress_body(runtime, skip_current_image)

    @router.post("/interrupt")
    async def interrupt() -> dict:
        job = runtime.jobs.current
        if job is not None:
            job.interrupt()
        return {}

    @router.post("/skip")
    async def skip() -> None:
        job = runtime.jobs.current
        if job is not None:
            job.skip()

    @router.get("/options")
    def get_options() -> dict:
        return options_body(runtime)

    @router.post("/options")
    def set_options(changes: dict[str, Any]) -> None:
        changes = {key: value for key, value in changes.items() if key not in READ_ONLY_OPTIONS}
        changes = {key: list(value) if key == "disabled_extensions" and isinstance(value, list) else value
                   for key, value in changes.items()}
        try:
            runtime.update_options(changes)
        except OptionsError as error:
            raise field_error(error.field, error.reason) from None

    @router.get("/cmd-flags")
    def cmd_flags() -> dict:
        return listings.cmd_flags(runtime.config)

    @router.get("/memory")
    def memory() -> dict:
        return listings.memory()

    @router.post("/unload-checkpoint")
    def unload_checkpoint() -> dict:
        runtime.models.clear()
        return {}

    @router.post("/reload-checkpoint")
    def reload_checkpoint() -> dict:
        try:
            runtime.acquire_model()
        except NoCheckpointError as error:
            raise ApiFieldError([("sd_model_checkpoint", str(error))], status_code=503) from None
        return {}


def no_argument_route(make: Any, *args: Any) -> Any:
    """A route function without parameters (FastAPI would read a lambda's defaults as query parameters)."""
    def route() -> Any:
        return make(*args)
    return route


def add_list_routes(router: APIRouter, runtime: Runtime) -> None:
    static = {"samplers": listings.samplers, "schedulers": listings.schedulers,
              "latent-upscale-modes": listings.latent_upscale_modes,
              # Not implemented here, so honestly empty, as A1111 answers without them installed.
              "hypernetworks": list, "face-restorers": list}
    for path, make in static.items():
        router.add_api_route(f"/{path}", no_argument_route(make), methods=["GET"], name=path)
    per_runtime = {"sd-models": listings.sd_models, "sd-vae": listings.sd_vae, "prompt-styles": listings.prompt_styles,
                   "scripts": listings.scripts, "script-info": listings.script_info, "extensions": listings.extensions,
                   "upscalers": listings.upscalers, "realesrgan-models": listings.realesrgan_models}
    for path, make in per_runtime.items():
        router.add_api_route(f"/{path}", no_argument_route(make, runtime), methods=["GET"], name=path)

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        runtime.checkpoints(refresh=True)

    @router.post("/refresh-vae")
    def refresh_vae() -> None:
        runtime.vae_files(refresh=True)


def embedding_entry(info: EmbeddingInfo) -> dict[str, Any]:
    """A1111's fields: ``shape`` is one vector's width, ``vectors`` how many token positions it takes."""
    return {"step": info.step, "sd_checkpoint": info.sd_checkpoint, "sd_checkpoint_name": info.sd_checkpoint_name,
            "shape": info.shape, "vectors": info.count}


def add_network_routes(router: APIRouter, runtime: Runtime) -> None:
    def embeddings_body(refresh: bool) -> dict[str, Any]:
        found = runtime.embeddings(refresh=refresh)
        return {"loaded": {name: embedding_entry(info) for name, info in found.loaded.items()},
                "skipped": {name: embedding_entry(info) for name, info in found.skipped.items()}}

    def loras_body(refresh: bool) -> list[dict[str, Any]]:
        return [{"name": f.name, "alias": f.alias, "path": str(f.path), "metadata": dict(f.metadata)}
                for f in runtime.loras(refresh=refresh)]

    @router.get("/embeddings")
    def embeddings() -> dict:
        return embeddings_body(refresh=False)

    @router.post("/refresh-embeddings")
    def refresh_embeddings() -> None:
        embeddings_body(refresh=True)

    @router.get("/loras")
    def loras() -> list:
        return loras_body(refresh=False)

    @router.post("/refresh-loras")
    def refresh_loras() -> None:
        loras_body(refresh=True)
