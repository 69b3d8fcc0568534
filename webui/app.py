"""create_app(runtime): the FastAPI application with the Gradio Blocks mounted at /."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gradio as gr
from typing import Callable

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.routing import Mount

from modules import paths, script_callbacks
from modules.extensions.startup import SETTINGS_FILE as EXTENSION_SETTINGS_FILE
from modules.nets.tokenizer import build_clip_tokenizer
from modules.runtime import Runtime
from webui.forms import img2img_params, txt2img_params
from webui.access import AccessGate, AccessPolicy, page_users
from webui.body_limit import BodyLimit
from webui.extension_ui import (
    a1111_page_helpers, add_a1111_block_classes, add_extension_settings, add_extension_tabs, extension_scripts,
    extension_styles, extension_tabs, serve_extension_routes_first,
)
from webui import gradio3_compat
from webui.api import mount_api
from webui.extension_files import add_extension_file_route
from webui.progress import add_progress_route
from webui.tabs.extensions import build_extensions_tab
from webui.tabs.extras import build_extras_tab
from webui.tabs.generation import GenerationTab
from webui.tabs.img2img import Img2ImgInputs, build_img2img_tab
from webui.tabs.merger import build_merger_tab
from webui.tabs.output_panel import selected_image
from webui.tabs.page_load import PageLoad
from webui.tabs.png_info import PngInfoTab, build_png_info_tab, open_image
from webui.tabs.send_to import Target, wire_send
from webui.tabs.settings import build_settings_tab
from webui.tabs.txt2img import build_txt2img_tab
from webui.top_bar import build_top_bar

PAGE_TITLE = "Stable Diffusion"
LOGIN_MESSAGE = "Log in to the Stable Diffusion web UI"
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # one upload through the page; larger files are refused by Gradio
STATIC = Path(__file__).resolve().parent / "static"


def build_blocks(runtime: Runtime) -> gr.Blocks:
    tokenizer = build_clip_tokenizer()  # for the token counters: the same BPE every SD1/SD2 model uses
    page_load = PageLoad()
    if runtime.extensions.loaded:
        script_callbacks.before_ui_callback()
    from_extensions = extension_tabs(runtime.extensions)
    with gr.Blocks(title=PAGE_TITLE, analytics_enabled=False) as blocks:
        checkpoint = build_top_bar(runtime, page_load)
        with gr.Tabs(elem_id="tabs", selected="txt2img") as main_tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                with gradio3_compat.building_tab(is_img2img=False):
                    txt2img = build_txt2img_tab(blocks, runtime, tokenizer)
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
                with gradio3_compat.building_tab(is_img2img=True):
                    img2img, img2img_inputs = build_img2img_tab(blocks, runtime, tokenizer)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                build_extras_tab(runtime)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                png_info = build_png_info_tab()
            with gr.Tab("Checkpoint Merger", id="merger", elem_id="tab_modelmerger"):
                build_merger_tab(runtime)
            add_extension_tabs(from_extensions)
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                build_settings_tab(page_load, runtime)
                if runtime.extensions.loaded:
                    add_extension_settings(runtime.config.data_dir / EXTENSION_SETTINGS_FILE)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                build_extensions_tab(page_load, runtime)
        wire_send_buttons(runtime, main_tabs, txt2img, img2img, img2img_inputs, png_info)
        add_ui_defaults(page_load, runtime, (txt2img, img2img))
        follow_native_size(page_load, runtime, checkpoint, (txt2img, img2img))
        page_load.wire(blocks)
    add_a1111_block_classes(blocks)
    return blocks


def wire_send_buttons(runtime: Runtime, main_tabs: gr.Tabs, txt2img: GenerationTab, img2img: GenerationTab,
                      img2img_inputs: Img2ImgInputs, png_info: PngInfoTab) -> None:
    to_txt2img = Target(txt2img, "txt2img", lambda named: txt2img_params(named, runtime.options.current))
    to_img2img = Target(img2img, "img2img", lambda named: img2img_params(named, runtime.options.current, (), None),
                        img2img_inputs)
    for source in (txt2img, img2img):
        panel = source.panel
        read = (lambda values, p=panel: selected_image(values[p.results], values[p.selected]))
        wire_send(panel.send_img2img, [panel.results, panel.selected], read, to_img2img, main_tabs, "img2img")
        wire_send(panel.send_inpaint, [panel.results, panel.selected], read, to_img2img, main_tabs, "inpaint")

    def read_png(values: dict):
        return open_image(values[png_info.image]), values[png_info.parameters] or ""

    sources = [png_info.image, png_info.parameters]
    wire_send(png_info.send_txt2img, sources, lambda values: (None, values[png_info.parameters] or ""), to_txt2img,
              main_tabs)
    wire_send(png_info.send_img2img, sources, read_png, to_img2img, main_tabs, "img2img")
    wire_send(png_info.send_inpaint, sources, read_png, to_img2img, main_tabs, "inpaint")


def add_ui_defaults(page_load: PageLoad, runtime: Runtime, tabs: tuple[GenerationTab, ...]) -> None:
    """The "User interface" settings, read at each page load so that a change needs no restart."""
    targets = [(tab.form.components[name], key) for tab in tabs for name, key in (
        ("sampler_name", "txt2img_default_sampler"), ("steps", "txt2img_default_steps"),
        ("cfg_scale", "txt2img_default_cfg_scale"))]

    def defaults() -> dict:
        options = runtime.options.current
        return {component: getattr(options, key) for component, key in targets}

    page_load.add([component for component, _ in targets], defaults)


def follow_native_size(page_load: PageLoad, runtime: Runtime, checkpoint: gr.Dropdown,
                       tabs: tuple[GenerationTab, ...]) -> None:
    """Width and height start at the selected checkpoint's native resolution (its ModelSpec
    ``modelspec.resolution``, e.g. the bundled model's 64x64; else 512x512), at page load and
    whenever another checkpoint is picked."""
    sizes = [(tab.form.components["width"], tab.form.components["height"]) for tab in tabs]
    components = [component for pair in sizes for component in pair]

    def updates(title: str | None) -> dict:
        width, height = runtime.default_size(title)
        return {component: value for w, h in sizes for component, value in ((w, width), (h, height))}

    page_load.add(components, lambda: updates(None))
    checkpoint.input(updates, inputs=checkpoint, outputs=components, show_progress="hidden")


def page_head(theme: str | None) -> str:
    """The page's script: progress polling, keys, and a forced theme (Gradio reads ``?__theme=``)."""
    script = (STATIC / "progress.js").read_text(encoding="utf-8")
    force = ""
    if theme:
        force = (f"(function(){{const u=new URL(location.href);if(u.searchParams.get('__theme')!=={json.dumps(theme)}"
                 f"){{u.searchParams.set('__theme',{json.dumps(theme)});location.replace(u.toString());}}}})();")
    return f"<script>{force}{script}</script>"


def page_login_check(app: FastAPI) -> Callable[[HTTPConnection], bool]:
    """Whether a request carries a login cookie of the mounted page (Gradio keeps the sessions)."""
    def logged_in(connection: HTTPConnection) -> bool:
        mounted = next((route.app for route in app.routes if isinstance(route, Mount) and hasattr(route.app, "tokens")),
                       None)
        if mounted is None:
            return False
        token = connection.cookies.get(f"access-token-{mounted.cookie_id}") or \
            connection.cookies.get(f"access-token-unsecure-{mounted.cookie_id}")
        return token is not None and mounted.tokens.get(token) is not None
    return logged_in


def mount_page(app: FastAPI, runtime: Runtime) -> gr.Blocks:
    server = runtime.config.server
    users = page_users(server.gradio_auth, server.api_auth)
    blocks = build_blocks(runtime)
    gr.mount_gradio_app(
        app, blocks, path="/", auth=list(users) or None, auth_message=LOGIN_MESSAGE if users else None,
        css=(STATIC / "style.css").read_text(encoding="utf-8") + "\n" + extension_styles(runtime.extensions),
        head=page_head(server.theme) + a1111_page_helpers(dataclasses.asdict(runtime.options.current))
        + extension_scripts(runtime.extensions),
        allowed_paths=[str(runtime.config.outputs_dir)], footer_links=["api", "settings"], ssr_mode=False,
        run_history=False, max_file_size=MAX_UPLOAD_BYTES,
    )
    # Gradio's launch() marks its Blocks as launched, and only then checks that a file path a
    # client sends lies in the upload folder (otherwise any server file is copied into the cache
    # and served); mount_gradio_app leaves the flag unset, so set what launch() would have.
    blocks.has_launched = True
    return blocks


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title=PAGE_TITLE)
    server = runtime.config.server
    blocks = None
    if runtime.extensions.loaded:  # their ui() may still speak Gradio 3
        gradio3_compat.install()
    if server.api_enabled:
        mount_api(app, runtime)  # before the page's mount at "/", which would shadow later routes
    if not server.nowebui:
        add_progress_route(app, runtime)
        blocks = mount_page(app, runtime)
    app.add_middleware(BodyLimit, max_bytes=lambda: runtime.options.current.api_max_request_mb * 1024 * 1024,
                       exempt_paths=("/gradio_api/upload",))
    if runtime.extensions.loaded:  # extensions add routes here; a failing callback is reported, not raised
        add_extension_file_route(app, runtime.extensions, Path(paths.script_path))
        script_callbacks.app_started_callback(blocks, app)
        serve_extension_routes_first(app)
    policy = AccessPolicy.from_flags(server.gradio_auth, server.api_auth)
    # Added last, so it runs first: nobody without a login gets as far as sending a large body.
    app.add_middleware(AccessGate, policy=policy, logged_in=page_login_check(app), login_message=LOGIN_MESSAGE)
    return app
