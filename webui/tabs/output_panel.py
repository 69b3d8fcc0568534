"""The right-hand column of a generation tab: progress, gallery, infotext and the image buttons."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from modules.infotext.files import save_image
from modules.infotext.parse import parse_infotext
from modules.pipeline.generate import GeneratedImage

SAVED_FOLDER = "saved"


@dataclass
class OutputPanel:
    tab: str
    gallery: gr.Gallery
    infotext: gr.Textbox
    status: gr.Markdown
    results: gr.State  # list of result dicts (image, infotext, path, seed, subseed)
    selected: gr.State  # index of the selected image
    send_img2img: gr.Button
    send_inpaint: gr.Button
    download: gr.File


def result_record(generated: GeneratedImage) -> dict[str, Any]:
    image = generated.image.copy()
    image.info["parameters"] = generated.infotext  # the gallery writes PNG text chunks from image.info
    return {"image": image, "infotext": generated.infotext, "path": str(generated.path) if generated.path else None,
            "seed": generated.seed, "subseed": generated.subseed}


def selected_record(results: list[dict] | None, index: int | None) -> dict | None:
    if not results:
        return None
    return results[index if index is not None and 0 <= index < len(results) else 0]


def unique_path(folder: Path, name: str) -> Path:
    candidate = folder / name
    stem, suffix = candidate.stem, candidate.suffix
    number = 1
    while candidate.exists():
        candidate = folder / f"{stem}-{number}{suffix}"
        number += 1
    return candidate


def save_selected(record: dict, outputs_dir: Path) -> Path:
    """A copy of the image in ``outputs/saved/``: the saved file itself when there is one (its
    metadata intact), else a PNG with the infotext."""
    folder = outputs_dir / SAVED_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    if record["path"] and Path(record["path"]).is_file():
        target = unique_path(folder, Path(record["path"]).name)
        shutil.copy2(record["path"], target)
        return target
    target = unique_path(folder, f"{record['seed']}.png")
    save_image(record["image"], target, record["infotext"])
    return target


def open_folder(folder: Path) -> str:
    """Open ``folder`` in the server machine's file browser; the message says what happened."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if sys.platform == "win32":
            os.startfile(folder)  # type: ignore[attr-defined]
            return f"Opened `{folder}`"
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        if shutil.which(opener) is None or (opener == "xdg-open" and not os.environ.get("DISPLAY")
                                            and not os.environ.get("WAYLAND_DISPLAY")):
            return f"Cannot open a file browser on the server (no `{opener}` or no display). The images are in `{folder}`"
        subprocess.Popen([opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return f"Opened `{folder}`"
    except OSError as error:
        return f"Cannot open `{folder}`: {error.strerror or error}. The images are in that folder."


def build_output_panel(tab: str, outputs_dir: Path) -> OutputPanel:
    gr.HTML(f'<div class="sd-progress" id="{tab}_progress_box"></div>', elem_id=f"{tab}_progress")
    gallery = gr.Gallery(label="Output", format="png", columns=4, height=420, elem_id=f"{tab}_gallery",
                         interactive=False, buttons=["download", "fullscreen"])
    with gr.Row():
        folder_button = gr.Button("📂", elem_id=f"{tab}_open_folder", min_width=40)
        save = gr.Button("💾 Save", elem_id=f"save_{tab}", min_width=60)
        send_img2img = gr.Button("🖼️ img2img", elem_id=f"{tab}_send_to_img2img", min_width=60)
        send_inpaint = gr.Button("🎨️ inpaint", elem_id=f"{tab}_send_to_inpaint", min_width=60)
    download = gr.File(label="Saved image", visible=False, elem_id=f"download_files_{tab}", interactive=False)
    infotext = gr.Textbox(label="Generation info", lines=4, interactive=False, elem_id=f"html_info_{tab}")
    status = gr.Markdown("", elem_id=f"html_log_{tab}")
    results = gr.State([])
    selected = gr.State(0)
    panel = OutputPanel(tab, gallery, infotext, status, results, selected, send_img2img, send_inpaint, download)

    def select(results_value: list, event: gr.SelectData):
        record = selected_record(results_value, event.index)
        return event.index, (record["infotext"] if record else "")

    def save_clicked(results_value: list, index: int):
        record = selected_record(results_value, index)
        if record is None:
            return gr.update(visible=False), "Nothing to save yet: generate an image first."
        target = save_selected(record, outputs_dir)
        return gr.update(value=str(target), visible=True), f"Saved to `{target}`"

    def folder_clicked(results_value: list, index: int):
        record = selected_record(results_value, index)
        folder = Path(record["path"]).parent if record and record["path"] else outputs_dir / f"{tab}-images"
        return open_folder(folder)

    gallery.select(select, inputs=results, outputs=[selected, infotext], show_progress="hidden")
    save.click(save_clicked, inputs=[results, selected], outputs=[download, status])
    folder_button.click(folder_clicked, inputs=[results, selected], outputs=status)
    return panel


def wire_reuse_seed(panel: OutputPanel, reuse_seed: gr.Button, reuse_subseed: gr.Button, seed, subseed) -> None:
    """♻️: the selected image's seed (or variation seed), read from its infotext as A1111 does."""
    def reuse(results_value: list, index: int, key: str, fallback: str):
        record = selected_record(results_value, index)
        if record is None:
            return gr.skip()
        fields = parse_infotext(record["infotext"])
        return int(fields.get(key, record[fallback]))

    reuse_seed.click(lambda r, i: reuse(r, i, "Seed", "seed"), inputs=[panel.results, panel.selected], outputs=seed,
                     show_progress="hidden")
    reuse_subseed.click(lambda r, i: reuse(r, i, "Variation seed", "subseed"), inputs=[panel.results, panel.selected],
                        outputs=subseed, show_progress="hidden")


def selected_image(results_value: list, index: int) -> tuple[Image.Image | None, str]:
    record = selected_record(results_value, index)
    return (record["image"], record["infotext"]) if record else (None, "")
