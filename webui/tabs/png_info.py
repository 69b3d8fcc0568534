"""The PNG Info tab: the generation parameters and other text an image file carries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image, UnidentifiedImageError

from modules.infotext.files import read_text_chunks


@dataclass
class PngInfoTab:
    image: gr.Image  # type="filepath": the file as uploaded, text chunks intact
    parameters: gr.Textbox
    send_txt2img: gr.Button
    send_img2img: gr.Button
    send_inpaint: gr.Button


def describe_file(path: str | None) -> tuple[str, str]:
    """(the ``parameters`` text, the other text chunks as "key: value" lines), or a message in the second."""
    if not path:
        return "", ""
    try:
        with Image.open(Path(path)) as image:
            chunks = read_text_chunks(image)
    except (UnidentifiedImageError, OSError) as error:
        return "", f"Cannot read this file as an image: {error}"
    parameters = chunks.pop("parameters", "")
    other = "\n\n".join(f"{key}:\n{value}" for key, value in chunks.items())
    if not parameters and not other:
        other = "This image carries no generation parameters or other text."
    return parameters, other


def build_png_info_tab() -> PngInfoTab:
    with gr.Row():
        with gr.Column():
            image = gr.Image(type="filepath", label="Source", sources=["upload", "clipboard"], height=420,
                             elem_id="pnginfo_image")
        with gr.Column():
            parameters = gr.Textbox(label="Parameters", lines=6, interactive=False, elem_id="pnginfo_generation_info")
            other = gr.Textbox(label="Other text chunks", lines=4, interactive=False, elem_id="pnginfo_other")
            with gr.Row():
                send_txt2img = gr.Button("Send to txt2img", elem_id="txt2img_tab")
                send_img2img = gr.Button("Send to img2img", elem_id="img2img_tab")
                send_inpaint = gr.Button("Send to inpaint", elem_id="inpaint_tab")
    image.change(describe_file, inputs=image, outputs=[parameters, other], show_progress="hidden")
    return PngInfoTab(image, parameters, send_txt2img, send_img2img, send_inpaint)


def open_image(path: str | None) -> Image.Image | None:
    if not path:
        return None
    with Image.open(path) as image:
        image.load()
        return image.copy()
