"""txt2img in a real browser: generate, infotext, save/download, progress, interrupt, reload, PNG Info."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from tests.browser.conftest import screenshot
from tests.browser.helpers import (
    TIMEOUT_MS, first_gallery_image, gallery_image_count, open_page, open_tab, set_number, small_txt2img, wait_for_text,
    wait_until_ready,
)

pytestmark = pytest.mark.browser


def start_long_run(page) -> None:
    """A run of many 150-step images that takes far longer than the test waits."""
    small_txt2img(page, "a long run", steps=150, size=64)
    set_number(page, "txt2img_batch_count", 40)
    page.click("#txt2img_generate")
    wait_for_text(page, "#txt2img_progress_box", "%")


def test_generate_shows_the_image_and_infotext_and_saves_a_download_with_parameters(server, page, tmp_path: Path) -> None:
    open_page(page, server.url)
    small_txt2img(page, "a red apple on a table")
    set_number(page, "txt2img_seed", 1234)
    page.click("#txt2img_generate")
    infotext = wait_for_text(page, "#html_info_txt2img textarea", "Seed: 1234")
    assert infotext.startswith("a red apple on a table\nSteps: 3, Sampler: DPM++ 2M, Schedule type: Karras")
    assert "Size: 64x64" in infotext and "Model: tiny-" in infotext
    assert gallery_image_count(page, "txt2img") == 1
    shown = first_gallery_image(page, "txt2img")
    assert shown.size == (64, 64) and shown.info.get("parameters") == infotext
    screenshot(page, "txt2img-after-generation")

    page.click("#save_txt2img")
    link = page.locator("#download_files_txt2img a").first
    link.wait_for(timeout=TIMEOUT_MS)
    with page.expect_download() as download_info:
        link.click()
    downloaded = tmp_path / "downloaded.png"
    download_info.value.save_as(downloaded)
    with Image.open(downloaded) as image:
        assert image.info["parameters"] == infotext
    saved = list((server.data_dir / "outputs" / "saved").iterdir())
    assert len(saved) == 1 and saved[0].name.endswith("-1234.png")


def test_progress_preview_queue_title_and_interrupt(server, page, browser) -> None:
    open_page(page, server.url)
    start_long_run(page)
    page.locator("#txt2img_progress_box .sd-live-preview:not([hidden])").wait_for(timeout=TIMEOUT_MS)
    assert page.title().startswith("[")
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    open_page(other, server.url)
    small_txt2img(other, "waiting its turn", steps=2)
    other.click("#txt2img_generate")
    wait_for_text(other, "#txt2img_progress_box", "In queue: 1")
    assert other.title().startswith("[queued]")
    started = time.monotonic()
    page.click("#txt2img_interrupt")
    status = wait_for_text(page, "#html_log_txt2img", "Interrupted")
    assert time.monotonic() - started < 60  # the run itself would take minutes
    finished = int(status.split("Interrupted: ")[1].split(" ")[0])
    assert finished < 40
    assert page.locator("#txt2img_progress_box .sd-progress-bar").count() == 0
    assert not page.title().startswith("[")
    wait_for_text(other, "#html_info_txt2img textarea", "waiting its turn")  # ran once the first job stopped
    other.close()


def test_a_reloaded_page_reattaches_to_the_running_job(server, page) -> None:
    open_page(page, server.url)
    start_long_run(page)
    page.reload()
    wait_until_ready(page)
    wait_for_text(page, "#txt2img_progress_box", "%")
    page.click("#txt2img_interrupt")
    wait_for_text(page, "#html_log_txt2img", "Interrupted")


def test_png_info_sends_every_field_to_txt2img(server, page, tmp_path: Path) -> None:
    infotext = ("a lighthouse at dusk\nNegative prompt: fog\nSteps: 7, Sampler: Euler a, Schedule type: Karras, "
                "CFG scale: 4.5, Seed: 987, Size: 128x96, Model hash: 0123456789, Model: other, Version: v1.10.1")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)
    info.add_text("Comment", "made elsewhere")
    source = tmp_path / "with-info.png"
    Image.new("RGB", (128, 96), (40, 80, 120)).save(source, pnginfo=info)

    open_page(page, server.url)
    open_tab(page, "PNG Info")
    page.set_input_files("#pnginfo_image input[type=file]", str(source))
    assert wait_for_text(page, "#pnginfo_generation_info textarea", "Steps: 7") == infotext
    assert "made elsewhere" in wait_for_text(page, "#pnginfo_other textarea", "Comment")
    page.click("#txt2img_tab")
    assert wait_for_text(page, "#txt2img_prompt textarea", "lighthouse") == "a lighthouse at dusk"
    assert page.input_value("#txt2img_neg_prompt textarea") == "fog"
    expected = {"txt2img_steps": "7", "txt2img_cfg_scale": "4.5", "txt2img_width": "128", "txt2img_height": "96",
                "txt2img_seed": "987"}
    for elem_id, value in expected.items():
        assert page.locator(f"#{elem_id} input").first.input_value() == value, elem_id
    assert page.locator("#txt2img_sampling input").first.input_value() == "Euler a"
    assert page.locator("#txt2img_scheduler input").first.input_value() == "Karras"
