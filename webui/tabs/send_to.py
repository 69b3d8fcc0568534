"""Send to txt2img / img2img / inpaint: an image and its infotext, spread over the target tab's fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr
from PIL import Image

from modules.params import ParamsError, Txt2ImgParams
from webui.forms import paste_updates
from webui.tabs.generation import GenerationTab
from webui.tabs.img2img import Img2ImgInputs

# Reads (image, infotext) from the source's component values.
SourceReader = Callable[[dict], tuple[Image.Image | None, str]]


@dataclass
class Target:
    tab: GenerationTab
    tab_id: str  # the id of its gr.Tab among the main tabs
    base_params: Callable[[dict[str, Any]], Txt2ImgParams]  # the form's current values as params
    img2img: Img2ImgInputs | None = None


def image_value(mode: str, image: Image.Image) -> Any:
    """What the mode's input component takes: an image, or an editor value with no paint yet."""
    if mode in ("sketch", "inpaint", "inpaint_sketch"):
        return {"background": image, "layers": [], "composite": image}
    return image


def image_component(inputs: Img2ImgInputs, mode: str):
    return inputs.images[{"img2img": "image", "inpaint_upload": "upload_image"}.get(mode, mode)]


def pasted_updates(target: Target, values: dict, text: str) -> dict:
    form = target.tab.form
    named = form.named(values)
    try:
        base = target.base_params(named)
    except ParamsError:
        base = Txt2ImgParams()
    try:
        return paste_updates(form, text, base)
    except ValueError as error:
        return {target.tab.panel.status: f"**Not pasted:** {error}"}


def wire_send(button: gr.Button, source_inputs: list, read_source: SourceReader, target: Target, main_tabs: gr.Tabs,
              mode: str = "img2img") -> None:
    outputs = [main_tabs, target.tab.panel.status, *target.tab.form.components.values(),
               *(component for component, _ in target.tab.form.paste_fields)]
    if target.img2img is not None:
        outputs += [image_component(target.img2img, mode), target.img2img.mode, target.img2img.mode_tabs]

    def send(values: dict) -> dict:
        image, text = read_source(values)
        updates: dict = {main_tabs: gr.Tabs(selected=target.tab_id)}
        if text:
            updates.update(pasted_updates(target, values, text))
        if target.img2img is not None and image is not None:
            updates[image_component(target.img2img, mode)] = image_value(mode, image)
            updates[target.img2img.mode] = mode
            updates[target.img2img.mode_tabs] = gr.Tabs(selected=mode)
        return updates

    button.click(send, inputs=set(source_inputs) | target.tab.form.inputs, outputs=outputs, show_progress="hidden")
