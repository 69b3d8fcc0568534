"""create_app(runtime): the FastAPI application with the Gradio Blocks mounted at /."""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI

from modules.runtime import Runtime
from webui.top_bar import build_top_bar

PAGE_TITLE = "Stable Diffusion"


def build_blocks(runtime: Runtime) -> gr.Blocks:
    with gr.Blocks(title=PAGE_TITLE, analytics_enabled=False) as blocks:
        build_top_bar(runtime)
    return blocks


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title=PAGE_TITLE)
    gr.mount_gradio_app(app, build_blocks(runtime), path="/")
    return app
