"""The txt2img tab: the shared controls plus Hires. fix, the output panel, and the handlers."""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules.runtime import Runtime
from webui.forms import (
    Form, build_batch_and_cfg, build_hires_controls, build_sampler_controls, build_script_controls, build_seed_controls,
    build_size_controls, txt2img_params,
)
from webui.extension_ui import add_alwayson_script_uis
from webui.forms import add_rendered_scripts
from webui.tabs.generation import GenerationTab, Submission, wire_generation, wire_paste
from webui.tabs.output_panel import build_output_panel, wire_reuse_seed
from webui.tabs.toprow import build_top_row


def build_txt2img_tab(blocks: gr.Blocks, runtime: Runtime, tokenizer) -> GenerationTab:
    options = runtime.options.current
    form = Form("txt2img")
    top = build_top_row(form, tokenizer, runtime.config.styles_file, runtime.prompt_options)
    with gr.Row():
        with gr.Column(scale=1, elem_id="txt2img_settings"):
            build_sampler_controls(form, options)
            build_size_controls(form)
            build_batch_and_cfg(form, options)
            reuse_seed, reuse_subseed = build_seed_controls(form)
            build_hires_controls(form, runtime.upscaler_library.model_names())
            with gr.Column(elem_id="txt2img_script_container"):  # A1111's home of the scripts' controls
                script_controls = build_script_controls(form, runtime.scripts, is_img2img=False)
                add_rendered_scripts(form, add_alwayson_script_uis(is_img2img=False))
        with gr.Column(scale=1):
            panel = build_output_panel("txt2img", runtime.config.outputs_dir)
    job_ids = gr.Textbox(visible=False, elem_id="txt2img_job_ids")
    tab = GenerationTab(form, top, panel, job_ids)

    def build(named: dict[str, Any]):
        return [Submission(txt2img_params(named, runtime.options.current))]

    wire_generation(blocks, runtime, tab, build, script_controls, set())
    wire_paste(tab, lambda named: txt2img_params(named, runtime.options.current))
    wire_reuse_seed(panel, reuse_seed, reuse_subseed, form.components["seed"], form.components["subseed"])
    return tab
