"""Job progress for the page: a small JSON route the browser polls, and waiting for results.

The page keeps the ids of its running jobs (in localStorage, so a reload
reattaches) and polls ``/internal/progress?id=...`` for the bar (percent, ETA),
the queue position and the live preview; the Gradio event that submitted the
jobs waits on their futures and shows the images when they are done.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

from fastapi import FastAPI
from PIL import Image

from modules.jobs import Job
from modules.pipeline.generate import GeneratedImage
from modules.runtime import Runtime

PROGRESS_ROUTE = "/internal/progress"
CURRENT_JOB = "current"  # the job running now, whoever queued it (a script queues its own jobs)


def split_ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def find_jobs(runtime: Runtime, ids: list[str]) -> list[Job]:
    found = (runtime.jobs.current if job_id == CURRENT_JOB else runtime.jobs.find(job_id) for job_id in ids)
    return [job for job in found if job is not None]


def preview_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def progress_payload(runtime: Runtime, ids: list[str], known_preview: str | None, now: float) -> dict[str, Any]:
    """What the page shows for its jobs: the first unfinished one's state, overall done fraction
    over all of them, ETA, queue position and a preview (only when it is newer than ``known_preview``)."""
    jobs = find_jobs(runtime, ids)
    options = runtime.options.current
    if not jobs:
        return {"known": False, "done": True}
    unfinished = [job for job in jobs if not job.future.done()]
    payload: dict[str, Any] = {"known": True, "done": not unfinished, "jobs": len(jobs),
                               "finished": len(jobs) - len(unfinished), "refresh_ms": options.live_preview_refresh_period,
                               "title": options.show_progress_in_title}
    if not unfinished:
        return {**payload, "progress": 1.0}
    job = unfinished[0]
    progress = job.progress
    position = runtime.jobs.position(job)
    fraction = (payload["finished"] + (0.0 if position else progress.fraction())) / len(jobs)
    eta = None if position else progress.eta_seconds(now)
    payload.update(progress=fraction, eta=eta, queued=position, step=progress.step, total_steps=progress.total_steps,
                   image=progress.image, images=progress.images, interrupted=job.interrupted)
    preview = progress.preview if options.live_previews_enable else None
    if preview is not None and str(id(preview)) != known_preview:
        payload.update(preview=preview_data_url(preview), preview_id=str(id(preview)))
    return payload


def add_progress_route(app: FastAPI, runtime: Runtime) -> None:
    """``GET /internal/progress?id=job-1,job-2&preview=<id of the preview the page has>``. It is
    ``async`` so that it answers on the event loop at once, however many requests wait for jobs."""

    @app.get(PROGRESS_ROUTE, include_in_schema=False)
    async def internal_progress(id: str = "", preview: str = "") -> dict[str, Any]:
        return progress_payload(runtime, split_ids(id), preview or None, time.monotonic())


def wait_for_results(runtime: Runtime, ids: list[str]) -> tuple[list[GeneratedImage], list[str]]:
    """Every image the jobs made, in order, and a message per job that failed (its error's text)."""
    images: list[GeneratedImage] = []
    errors: list[str] = []
    for job in find_jobs(runtime, ids):
        try:
            images += job.future.result()
        except Exception as error:  # the job's own error, shown to the user instead of a traceback
            errors.append(f"{type(error).__name__}: {error}")
    return images, errors
