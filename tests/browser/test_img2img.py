"""img2img in a real browser: an uploaded image, and inpaint upload with a mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import screenshot
from tests.browser.helpers import first_gallery_image, open_page, open_tab, set_number, wait_for_text, write_png
from webui.tabs.img2img import EDITOR_IDS

pytestmark = pytest.mark.browser


def pattern_image(size: int = 64) -> Image.Image:
    """Stripes, so that a pasted-back original is easy to tell from generated pixels."""
    array = np.zeros((size, size, 3), dtype=np.uint8)
    array[:, :, 0] = (np.arange(size) * 4)[None, :]
    array[::8, :, 1] = 255
    array[:, :, 2] = 90
    return Image.fromarray(array)


def small_img2img(page, prompt: str) -> None:
    page.fill("#img2img_prompt textarea", prompt)
    set_number(page, "img2img_steps", 4)
    set_number(page, "img2img_width", 64)
    set_number(page, "img2img_height", 64)


def test_img2img_from_an_uploaded_image(server, page, tmp_path: Path) -> None:
    source = write_png(tmp_path / "source.png", pattern_image())
    open_page(page, server.url)
    open_tab(page, "img2img")
    page.set_input_files("#img2img_image input[type=file]", str(source))
    page.locator("#img2img_image img").first.wait_for()
    small_img2img(page, "a striped wall")
    set_number(page, "img2img_denoising_strength", 0.5)
    page.click("#img2img_generate")
    infotext = wait_for_text(page, "#html_info_img2img textarea", "Denoising strength: 0.5")
    assert infotext.startswith("a striped wall\nSteps: 4,") and "Size: 64x64" in infotext
    shown = first_gallery_image(page, "img2img")
    assert shown.size == (64, 64) and shown.info["parameters"] == infotext


def test_img2img_without_an_image_says_so(server, page) -> None:
    open_page(page, server.url)
    open_tab(page, "img2img")
    page.click("#img2img_generate")
    message = wait_for_text(page, "#html_log_img2img", "Not generated")
    assert "init_images" in message and "upload an image" in message


def test_inpaint_upload_repaints_only_the_masked_half(server, page, tmp_path: Path) -> None:
    original = pattern_image()
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # repaint the left half
    source = write_png(tmp_path / "inpaint-source.png", original)
    mask_file = write_png(tmp_path / "inpaint-mask.png", mask)
    open_page(page, server.url)
    open_tab(page, "img2img")
    open_tab(page, "Inpaint upload")
    page.locator("#img2img_mask_blur").wait_for()  # the inpaint controls appear in inpaint modes
    page.set_input_files("#img_inpaint_base input[type=file]", str(source))
    page.set_input_files("#img_inpaint_mask input[type=file]", str(mask_file))
    page.locator("#img_inpaint_base img").first.wait_for()
    page.locator("#img_inpaint_mask img").first.wait_for()
    small_img2img(page, "a red brick")
    set_number(page, "img2img_mask_blur", 0)
    set_number(page, "img2img_denoising_strength", 1)
    page.click("#img2img_generate")
    infotext = wait_for_text(page, "#html_info_img2img textarea", "Mask blur: 0")
    assert "Denoising strength: 1" in infotext
    result = np.asarray(first_gallery_image(page, "img2img").convert("RGB"))
    kept = np.asarray(original)
    assert np.array_equal(result[:, 40:], kept[:, 40:])  # unmasked: the original, untouched
    assert np.abs(result[:, :24].astype(int) - kept[:, :24]).mean() > 10  # masked: repainted
    screenshot(page, "img2img-inpaint")


def upload_into_editor(page, editor: str, source: Path, attempts: int = 3) -> None:
    """Give the image editor a file and wait until it shows it.

    On a busy machine the editor's file input can exist before its change handler is attached, and a file
    given then is dropped silently; giving it again once the editor is mounted is what a user would do.
    """
    page.locator(editor).wait_for(state="visible")
    placeholder = page.locator(editor, has_text="Upload an image")
    for attempt in range(attempts):
        page.set_input_files(f"{editor} input[type=file]", str(source))
        try:
            placeholder.wait_for(state="detached", timeout=30_000)
            return
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise


def paint_stroke(page, mode: str, source: Path) -> None:
    """Upload ``source`` into the mode's editor and paint a stroke down the picture's left part."""
    open_tab(page, "img2img")
    open_tab(page, {"inpaint": "Inpaint", "inpaint_sketch": "Inpaint sketch"}[mode])
    editor = f"#{EDITOR_IDS[mode]}"
    upload_into_editor(page, editor, source)
    canvas = page.locator(f"{editor} canvas").first
    page.wait_for_timeout(500)
    box = canvas.bounding_box()
    left = box["x"] + box["width"] / 2 - box["height"] * 0.4  # the picture sits centred in the canvas
    page.mouse.move(left, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    for step in range(12):
        page.mouse.move(left + step, box["y"] + box["height"] * (0.2 + step * 0.05))
    page.mouse.up()


@pytest.mark.parametrize("mode", ["inpaint", "inpaint_sketch"])
def test_inpaint_with_a_painted_mask(server, page, tmp_path: Path, mode: str) -> None:
    original = pattern_image()
    source = write_png(tmp_path / "paint-source.png", original)
    open_page(page, server.url)
    paint_stroke(page, mode, source)
    small_img2img(page, "paint over")
    set_number(page, "img2img_denoising_strength", 1)
    page.click("#img2img_generate")
    infotext = wait_for_text(page, "#html_info_img2img textarea", "Mask blur: 4")
    assert "Denoising strength: 1" in infotext
    result = np.asarray(first_gallery_image(page, "img2img").convert("RGB"))
    kept = np.asarray(original)
    assert np.array_equal(result[:, 48:], kept[:, 48:])  # far from the stroke: untouched
    assert np.abs(result[:, :24].astype(int) - kept[:, :24]).max() > 40  # along the stroke: repainted
