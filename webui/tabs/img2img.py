"""The img2img tab: the input modes (img2img, sketch, inpaint, inpaint sketch, inpaint upload,
batch), resize and inpaint controls, the shared sampling controls and the output panel."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from modules.params import ParamsError
from modules.runtime import Runtime, save_options_from
from webui.forms import (
    INPAINT_AREA_LABELS, MASK_MODE_LABELS, MASKED_CONTENT_LABELS, RESIZE_MODE_LABELS, Form, build_batch_and_cfg,
    build_sampler_controls, build_script_controls, build_seed_controls, build_size_controls, img2img_params,
)
from webui.extension_ui import add_alwayson_script_uis
from webui.forms import add_rendered_scripts
from webui.tabs.generation import GenerationTab, Submission, wire_generation, wire_paste
from webui.tabs.output_panel import build_output_panel, wire_reuse_seed
from webui.tabs.toprow import build_top_row

MODES = ("img2img", "sketch", "inpaint", "inpaint_sketch", "inpaint_upload", "batch")
MODE_LABELS = ("img2img", "Sketch", "Inpaint", "Inpaint sketch", "Inpaint upload", "Batch")
INPAINT_MODES = frozenset({"inpaint", "inpaint_sketch", "inpaint_upload"})
# A1111 v1.10.1's element ids (modules/ui.py), which extensions' scripts and styles look up.
MODE_TAB_IDS = {"img2img": "img2img_img2img_tab", "sketch": "img2img_img2img_sketch_tab",
                "inpaint": "img2img_inpaint_tab", "inpaint_sketch": "img2img_inpaint_sketch_tab",
                "inpaint_upload": "img2img_inpaint_upload_tab", "batch": "img2img_batch_tab"}
EDITOR_IDS = {"sketch": "img2img_sketch", "inpaint": "img2maskimg", "inpaint_sketch": "inpaint_sketch"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
RESIZE_CHOICES = ("Resize to", "Resize by")


@dataclass
class Img2ImgInputs:
    mode: gr.Textbox
    mode_tabs: gr.Tabs
    images: dict[str, Any]  # name -> component: image, sketch, inpaint, inpaint_sketch, upload_image, upload_mask, dirs


# ----- images and masks (pure) -----

def editor_layers_mask(value: dict | None) -> Image.Image | None:
    """An ImageEditor's painted layers as a mask: white wherever any layer has paint."""
    layers = [layer for layer in (value or {}).get("layers") or [] if layer is not None]
    if not layers:
        return None
    alpha = np.zeros((layers[0].height, layers[0].width), dtype=bool)
    for layer in layers:
        alpha |= np.asarray(layer.convert("RGBA"))[..., 3] > 0
    return Image.fromarray((alpha * 255).astype(np.uint8), mode="L") if alpha.any() else None


def sketch_mask(background: Image.Image, composite: Image.Image) -> Image.Image | None:
    """Inpaint sketch: the mask is where the painted picture differs from the original."""
    before = np.asarray(background.convert("RGB"), dtype=np.int16)
    after = np.asarray(composite.convert("RGB").resize(background.size), dtype=np.int16)
    changed = np.abs(after - before).sum(axis=2) > 0
    return Image.fromarray((changed * 255).astype(np.uint8), mode="L") if changed.any() else None


def flatten(image: Image.Image) -> Image.Image:
    """RGB, with transparent parts on white (what the user sees)."""
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        canvas = Image.new("RGB", image.size, (255, 255, 255))
        canvas.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return canvas
    return image.convert("RGB")


def init_and_mask(mode: str, images: dict[str, Any]) -> tuple[Image.Image, Image.Image | None]:
    """The init image and repaint mask (white = repaint) that a mode's inputs describe."""
    missing = ParamsError([("init_images", f"{mode}: upload an image first")])
    if mode == "img2img":
        if images["image"] is None:
            raise missing
        return flatten(images["image"]), None
    if mode == "inpaint_upload":
        if images["upload_image"] is None:
            raise missing
        if images["upload_mask"] is None:
            raise ParamsError([("mask", "inpaint upload: upload a mask (white = repaint)")])
        return flatten(images["upload_image"]), images["upload_mask"].convert("L")
    editor = images[mode] or {}
    background, composite = editor.get("background"), editor.get("composite")
    if background is None and composite is None:
        raise missing
    if mode == "sketch":
        return flatten(composite or background), None
    if mode == "inpaint":
        mask = editor_layers_mask(editor)
        if mask is None:
            raise ParamsError([("mask", "inpaint: paint over the area to repaint")])
        return flatten(background), mask.resize(background.size)
    mask = sketch_mask(background, composite) if background is not None and composite is not None else None
    if mask is None:
        raise ParamsError([("mask", "inpaint sketch: paint over the area to repaint")])
    return flatten(composite), mask


def batch_files(input_dir: str) -> list[Path]:
    folder = Path(input_dir or "")
    if not input_dir or not folder.is_dir():
        raise ParamsError([("input_dir", f"batch: input directory {input_dir!r} does not exist")])
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ParamsError([("input_dir", f"batch: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")])
    return files


def batch_mask(mask_dir: str, image_file: Path) -> Image.Image | None:
    if not mask_dir:
        return None
    candidates = [Path(mask_dir) / f"{image_file.stem}{suffix}" for suffix in IMAGE_SUFFIXES]
    found = next((c for c in candidates if c.is_file()), None)
    return Image.open(found).convert("L") if found else None


# ----- components -----

def build_mode_inputs() -> Img2ImgInputs:
    mode = gr.Textbox("img2img", visible=False, elem_id="img2img_mode")
    images: dict[str, Any] = {}
    with gr.Tabs(elem_id="mode_img2img", selected="img2img") as mode_tabs:
        for name, label in zip(MODES, MODE_LABELS):
            with gr.Tab(label, id=name, elem_id=MODE_TAB_IDS[name]) as tab:
                _build_mode(name, images)
            tab.select(lambda n=name: n, outputs=mode, queue=False, show_progress="hidden")
    return Img2ImgInputs(mode, mode_tabs, images)


def _build_mode(name: str, images: dict[str, Any]) -> None:
    if name == "img2img":
        images["image"] = gr.Image(type="pil", label="Image for img2img", image_mode="RGBA", height=360,
                                   sources=["upload", "clipboard"], elem_id="img2img_image")
    elif name in ("sketch", "inpaint", "inpaint_sketch"):
        brush = gr.Brush(colors=["#ffffff"], color_mode="fixed") if name == "inpaint" else gr.Brush()
        images[name] = gr.ImageEditor(type="pil", label=f"Image for {name.replace('_', ' ')}", height=360,
                                      sources=["upload", "clipboard"], brush=brush, elem_id=EDITOR_IDS[name])
    elif name == "inpaint_upload":
        images["upload_image"] = gr.Image(type="pil", label="Image", sources=["upload", "clipboard"], height=300,
                                          elem_id="img_inpaint_base")
        images["upload_mask"] = gr.Image(type="pil", label="Mask", image_mode="L", sources=["upload", "clipboard"],
                                         height=300, elem_id="img_inpaint_mask")
    else:
        gr.Markdown("Process every image in a folder on the server. Masks (inpaint) are looked up by file name.")
        images["input_dir"] = gr.Textbox(label="Input directory", elem_id="img2img_batch_input_dir")
        images["output_dir"] = gr.Textbox(label="Output directory (empty = the usual img2img folder)",
                                          elem_id="img2img_batch_output_dir")
        images["mask_dir"] = gr.Textbox(label="Inpaint batch mask directory (optional)", elem_id="img2img_batch_inpaint_mask_dir")


def build_img2img_controls(form: Form, options) -> gr.Group:
    form.add("resize_mode", gr.Radio(list(RESIZE_MODE_LABELS), value=RESIZE_MODE_LABELS[0], label="Resize mode",
                                     elem_id="resize_mode"))
    build_sampler_controls(form, options)
    resize_by = form.add("resize_by", gr.Radio(list(RESIZE_CHOICES), value=RESIZE_CHOICES[0], show_label=False,
                                               elem_id="img2img_resize_choice"))
    with gr.Group() as size_group:
        build_size_controls(form)
    with gr.Group(visible=False) as scale_group:
        form.add("scale_by", gr.Slider(0.05, 4, value=1, step=0.05, label="Scale", elem_id="img2img_scale"))
    resize_by.change(lambda c: (gr.update(visible=c == RESIZE_CHOICES[0]), gr.update(visible=c == RESIZE_CHOICES[1])),
                     inputs=resize_by, outputs=[size_group, scale_group], queue=False, show_progress="hidden")
    build_batch_and_cfg(form, options)
    form.add("denoising_strength", gr.Slider(0, 1, value=0.75, step=0.01, label="Denoising strength",
                                             elem_id="img2img_denoising_strength"))
    with gr.Group(visible=False, elem_id="inpaint_controls") as inpaint_group:
        form.add("mask_blur", gr.Slider(0, 64, value=4, step=1, label="Mask blur", elem_id="img2img_mask_blur"))
        form.add("inpainting_mask_invert", gr.Radio(list(MASK_MODE_LABELS), value=MASK_MODE_LABELS[0], label="Mask mode",
                                                    elem_id="img2img_mask_mode"))
        form.add("inpainting_fill", gr.Radio(list(MASKED_CONTENT_LABELS), value="original", label="Masked content",
                                             elem_id="img2img_inpainting_fill"))
        with gr.Row():
            form.add("inpaint_full_res", gr.Radio(list(INPAINT_AREA_LABELS), value=INPAINT_AREA_LABELS[0],
                                                  label="Inpaint area", elem_id="img2img_inpaint_full_res"))
            form.add("inpaint_full_res_padding", gr.Slider(0, 256, value=32, step=4, label="Only masked padding, pixels",
                                                           elem_id="img2img_inpaint_full_res_padding"))
    return inpaint_group


def build_img2img_tab(blocks: gr.Blocks, runtime: Runtime, tokenizer) -> tuple[GenerationTab, Img2ImgInputs]:
    options = runtime.options.current
    form = Form("img2img")
    top = build_top_row(form, tokenizer, runtime.config.styles_file, runtime.prompt_options)
    with gr.Row():
        with gr.Column(scale=1, elem_id="img2img_settings"):
            inputs = build_mode_inputs()
            inpaint_group = build_img2img_controls(form, options)
            reuse_seed, reuse_subseed = build_seed_controls(form)
            with gr.Column(elem_id="img2img_script_container"):  # A1111's home of the scripts' controls
                script_controls = build_script_controls(form, runtime.scripts, is_img2img=True)
                add_rendered_scripts(form, add_alwayson_script_uis(is_img2img=True))
        with gr.Column(scale=1):
            panel = build_output_panel("img2img", runtime.config.outputs_dir)
    inputs.mode.change(lambda m: gr.update(visible=m in INPAINT_MODES), inputs=inputs.mode, outputs=inpaint_group,
                       queue=False, show_progress="hidden")
    tab = GenerationTab(form, top, panel, gr.Textbox(visible=False, elem_id="img2img_job_ids"))
    image_inputs = {inputs.mode, *inputs.images.values()}

    def build(named: dict[str, Any]) -> list[Submission]:
        raw = named["_raw"]
        values = {name: raw[component] for name, component in inputs.images.items()}
        return img2img_submissions(runtime, named, raw[inputs.mode], values)

    wire_generation(blocks, runtime, tab, build, script_controls, image_inputs)
    wire_paste(tab, lambda named: img2img_params(named, runtime.options.current, (), None))
    wire_reuse_seed(panel, reuse_seed, reuse_subseed, form.components["seed"], form.components["subseed"])
    return tab, inputs


def img2img_submissions(runtime: Runtime, named: dict[str, Any], mode: str, images: dict[str, Any]) -> list[Submission]:
    options = runtime.options.current
    if mode != "batch":
        init, mask = init_and_mask(mode, images)
        return [Submission(img2img_params(named, options, (init,), mask))]
    save = save_options_from(options, runtime.config.data_dir)
    if images["output_dir"]:
        save = dataclasses.replace(save, images=True, folders=(("img2img-images", Path(images["output_dir"])),))
    submissions = []
    for file in batch_files(images["input_dir"]):
        with Image.open(file) as opened:
            init = flatten(opened)
        submissions.append(Submission(img2img_params(named, options, (init,), batch_mask(images["mask_dir"], file)), save))
    return submissions
