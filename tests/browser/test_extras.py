"""The Extras tab in a real browser: one image upscaled, the result shown with its fields."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, PngImagePlugin

from tests.browser.helpers import choose, first_gallery_image, open_page, open_tab, set_number, wait_for_text


def test_extras_upscales_an_image_and_shows_the_postprocess_fields(server, page, tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red square\nSteps: 5, Seed: 2")
    source = tmp_path / "small.png"
    Image.new("RGB", (40, 24), (200, 30, 30)).save(source, pnginfo=info)

    open_page(page, server.url)
    open_tab(page, "Extras")
    page.set_input_files("#extras_image input[type=file]", str(source))
    set_number(page, "extras_upscaling_resize", 2)
    choose(page, "extras_upscaler_1", "Lanczos")
    page.click("#extras_generate")
    wait_for_text(page, "#html_info_extras", "Postprocess upscaler: Lanczos")
    assert "Postprocess upscale by: 2" in page.locator("#html_info_extras").inner_text()
    result = first_gallery_image(page, "extras")
    assert result.size == (80, 48)
    assert result.getpixel((40, 24))[0] > 150
    assert "Saved 1 image" in page.locator("#html_log_extras").inner_text()
