"""A fresh install in the browser: the bundled model is the default, the size starts at its native 64x64,
and "a yellow star on a purple background" gives that picture."""

from __future__ import annotations

from pathlib import Path

import pytest

from modules.demo.evaluate import read_picture
from tests.browser.conftest import ROOT, screenshot, start_server, write_tiny_model
from tests.browser.helpers import TIMEOUT_MS, choose, first_gallery_image, open_page, set_number, wait_for_text

pytestmark = pytest.mark.browser


def size_shown(page) -> tuple[str, str]:
    return (page.locator("#txt2img_width input[type=number]").first.input_value(),
            page.locator("#txt2img_height input[type=number]").first.input_value())


def test_fresh_install_draws_the_prompt_with_the_bundled_model(browser, tmp_path: Path) -> None:
    other = tmp_path / "more-models"
    # A user checkpoint that declares no resolution (SD: 512); it sorts after the bundled one.
    write_tiny_model(other, "user-sd1.safetensors", seed=3)
    server = start_server(tmp_path, "--models-dir", str(ROOT / "models"), "--ckpt-dir", str(other))
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(page, server.url)
        assert page.locator("#setting_sd_model_checkpoint input").first.input_value().startswith("shapes-demo.safetensors [")
        assert size_shown(page) == ("64", "64")
        page.fill("#txt2img_prompt textarea", "a yellow star on a purple background")
        set_number(page, "txt2img_seed", 11)
        page.click("#txt2img_generate")
        infotext = wait_for_text(page, "#html_info_txt2img textarea", "Seed: 11")
        assert "Steps: 20, Sampler: DPM++ 2M" in infotext and "Size: 64x64" in infotext
        assert "Model: shapes-demo" in infotext
        shown = first_gallery_image(page, "txt2img")
        reading = read_picture(shown)
        assert (reading.colour, reading.background) == ("yellow", "purple"), reading
        screenshot(page, "bundled-model-yellow-star")

        choose(page, "setting_sd_model_checkpoint", "user-sd1.safetensors")
        wait_for_text(page, "#checkpoint_status", "Loaded user-sd1.safetensors")
        page.wait_for_function("() => document.querySelector('#txt2img_width input[type=number]').value === '512'",
                               timeout=TIMEOUT_MS)
        assert size_shown(page) == ("512", "512")
        choose(page, "setting_sd_model_checkpoint", "shapes-demo.safetensors")
        page.wait_for_function("() => document.querySelector('#txt2img_width input[type=number]').value === '64'",
                               timeout=TIMEOUT_MS)
        page.close()
    finally:
        server.stop()
