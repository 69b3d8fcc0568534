"""The Extras tab (A1111's postprocessing page): one image, a batch of uploaded files, or every
image in a server folder, through the engine's postprocessing steps (upscale; face restoration
is refused with the reason). The handler is ``run_extras_tab``; the page only collects values."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import gradio as gr
from PIL import Image

from modules.jobs import Job, QueueFullError
from modules.pipeline.extras import ExtrasRun, images_in_directory, run_extras, save_extras
from modules.pipeline.postprocess import PostprocessContext, PostprocessError
from modules.runtime import Runtime

SOURCES = ("Single Image", "Batch Process", "Batch from Directory")


@dataclass(frozen=True)
class ExtrasOutcome:
    images: list[Image.Image]
    html_info: str
    message: str  # what went wrong or was skipped, shown above the gallery ("" = nothing)


def upscale_args(values: Mapping[str, Any]) -> dict[str, Any]:
    return {"upscale_mode": int(values["resize_mode"]), "upscale_by": float(values["upscaling_resize"]),
            "max_side_length": int(values["max_side_length"] or 0), "upscale_to_width": int(values["upscaling_resize_w"]),
            "upscale_to_height": int(values["upscaling_resize_h"]), "upscale_crop": bool(values["upscaling_crop"]),
            "upscaler_1_name": values["upscaler_1"], "upscaler_2_name": values["upscaler_2"],
            "upscaler_2_visibility": float(values["upscaler_2_visibility"])}


def _sources(runtime: Runtime, values: Mapping[str, Any]) -> list[tuple[Image.Image | Path, str | None]]:
    mode = values["source"]
    if mode == "Single Image":
        if not values.get("image"):
            raise PostprocessError("image", "choose an image first")
        return [(Path(values["image"]), None)]
    if mode == "Batch Process":
        files = values.get("files") or []
        if not files:
            raise PostprocessError("files", "choose one or more image files first")
        return [(Path(f), Path(f).stem) for f in files]
    if runtime.config.reachable_from_network:
        raise PostprocessError("input_dir", "reading server folders is allowed only when the server is not reachable "
                                            "from the network (no --listen, --share or --server-name)")
    folder = (values.get("input_dir") or "").strip()
    if not folder:
        raise PostprocessError("input_dir", "enter the folder to read images from")
    try:
        return [(path, path.stem) for path in images_in_directory(Path(folder))]
    except NotADirectoryError as error:
        raise PostprocessError("input_dir", str(error)) from None


def run_extras_tab(runtime: Runtime, values: Mapping[str, Any]) -> ExtrasOutcome:
    """Run the chosen source through the steps, save the results, and say what happened."""
    try:
        sources = _sources(runtime, values)
        args = {"Upscale": upscale_args(values)}

        def work(job: Job) -> ExtrasRun:
            return run_extras(runtime.postprocessing, sources, args, PostprocessContext(runtime.upscaling(lambda: job.interrupted)))

        # queued, so the upscale and the generations take turns on the device
        job = runtime.jobs.submit(work, max_waiting=runtime.options.current.queue_max_waiting,
                                  description=f"extras: {len(sources)} image(s)")
        run = job.future.result()
    except PostprocessError as error:
        return ExtrasOutcome([], "", f"**Not processed.** `{error.field}`: {error.reason}")
    except QueueFullError as error:
        return ExtrasOutcome([], "", f"**Not processed.** {error}")
    output_dir = (values.get("output_dir") or "").strip() if values["source"] == "Batch from Directory" else ""
    saved = save_extras(run, runtime.config.outputs_dir, Path(output_dir) if output_dir else None,
                        keep_names=values["source"] != "Single Image")
    shown = [r.image for r in run.results] if values["source"] != "Batch from Directory" or values.get("show_results", True) else []
    return ExtrasOutcome(shown, _html(run), _message(run, saved))


def _html(run: ExtrasRun) -> str:
    return "<p>" + "<br>\n".join(html.escape(line) for line in run.infotext.split("\n")) + "</p>"


def _message(run: ExtrasRun, saved: Sequence[Path]) -> str:
    parts = [f"Saved {len(saved)} image{'s' if len(saved) != 1 else ''}" + (f" to `{saved[0].parent}`" if saved else "") + "."]
    parts += [f"Skipped `{name}`: {why}" for name, why in run.skipped]
    return "  \n".join(parts)


def build_extras_tab(runtime: Runtime) -> None:
    names = list(runtime.upscaler_library.names())
    with gr.Row():
        with gr.Column():
            source = gr.State(SOURCES[0])
            with gr.Tabs(elem_id="mode_extras"):
                with gr.Tab("Single Image", elem_id="extras_single_tab") as single:
                    image = gr.Image(type="filepath", label="Source", sources=["upload", "clipboard"], height=360,
                                     elem_id="extras_image")
                with gr.Tab("Batch Process", elem_id="extras_batch_process_tab") as batch:
                    files = gr.File(label="Images", file_count="multiple", file_types=["image"], elem_id="extras_image_batch")
                with gr.Tab("Batch from Directory", elem_id="extras_batch_directory_tab") as directory:
                    input_dir = gr.Textbox(label="Input directory", elem_id="extras_batch_input_dir")
                    output_dir = gr.Textbox(label="Output directory (empty: outputs/extras-images)", elem_id="extras_batch_output_dir")
                    show_results = gr.Checkbox(True, label="Show result images", elem_id="extras_show_extras_results")
            for tab, name in ((single, SOURCES[0]), (batch, SOURCES[1]), (directory, SOURCES[2])):
                tab.select(lambda n=name: n, outputs=source, queue=False, show_progress="hidden")
            resize_mode = gr.State(0)
            with gr.Tabs(elem_id="extras_resize_mode"):
                with gr.Tab("Scale by", elem_id="extras_scale_by_tab") as scale_by:
                    upscaling_resize = gr.Slider(1.0, 8.0, value=4, step=0.05, label="Resize", elem_id="extras_upscaling_resize")
                    max_side_length = gr.Number(0, label="Max side length (0 = no limit)", precision=0, elem_id="extras_upscale_max_side_length")
                with gr.Tab("Scale to", elem_id="extras_scale_to_tab") as scale_to:
                    upscaling_resize_w = gr.Slider(64, 8192, value=512, step=8, label="Width", elem_id="extras_upscaling_resize_w")
                    upscaling_resize_h = gr.Slider(64, 8192, value=512, step=8, label="Height", elem_id="extras_upscaling_resize_h")
                    upscaling_crop = gr.Checkbox(True, label="Crop to fit", elem_id="extras_upscaling_crop")
            scale_by.select(lambda: 0, outputs=resize_mode, queue=False, show_progress="hidden")
            scale_to.select(lambda: 1, outputs=resize_mode, queue=False, show_progress="hidden")
            upscaler_1 = gr.Dropdown(names, value=names[0], label="Upscaler 1", elem_id="extras_upscaler_1")
            with gr.Row():
                upscaler_2 = gr.Dropdown(names, value=names[0], label="Upscaler 2", elem_id="extras_upscaler_2")
                upscaler_2_visibility = gr.Slider(0.0, 1.0, value=0.0, step=0.001, label="Upscaler 2 visibility",
                                                  elem_id="extras_upscaler_2_visibility")
            run_button = gr.Button("Generate", variant="primary", elem_id="extras_generate")
        with gr.Column():
            message = gr.Markdown(elem_id="html_log_extras")
            gallery = gr.Gallery(label="Result", elem_id="extras_gallery", height=420)
            info = gr.HTML(elem_id="html_info_extras")
    inputs = {"source": source, "image": image, "files": files, "input_dir": input_dir, "output_dir": output_dir,
              "show_results": show_results, "resize_mode": resize_mode, "upscaling_resize": upscaling_resize,
              "max_side_length": max_side_length, "upscaling_resize_w": upscaling_resize_w,
              "upscaling_resize_h": upscaling_resize_h, "upscaling_crop": upscaling_crop, "upscaler_1": upscaler_1,
              "upscaler_2": upscaler_2, "upscaler_2_visibility": upscaler_2_visibility}
    names_by_component = {component: name for name, component in inputs.items()}

    def handle(values: dict) -> tuple[list[Image.Image], str, str]:
        outcome = run_extras_tab(runtime, {names_by_component[c]: v for c, v in values.items()})
        return outcome.images, outcome.html_info, outcome.message

    run_button.click(handle, inputs=set(inputs.values()), outputs=[gallery, info, message])
