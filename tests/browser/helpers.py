"""Driving Gradio controls from playwright by their elem_id."""

from __future__ import annotations

import io
import time
import urllib.request
from pathlib import Path

from PIL import Image

TIMEOUT_MS = 90_000  # generous: the CPU may be shared with other work


def open_page(page, url: str) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    wait_until_ready(page)


def wait_until_ready(page) -> None:
    """Until the page's load-time values (settings, UI defaults) have arrived, so none overwrites what a test types."""
    page.wait_for_selector("#txt2img_prompt textarea", timeout=TIMEOUT_MS)
    page.wait_for_selector("body[data-sd-ready]", state="attached", timeout=TIMEOUT_MS)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).first.click()


def set_number(page, elem_id: str, value: float) -> None:
    """A slider's or number box's value, committed as a user would (type, then Enter)."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def choose(page, elem_id: str, option: str) -> None:
    """Pick ``option`` in a dropdown."""
    page.locator(f"#{elem_id} input").first.click()
    page.locator(f"#{elem_id} [role=option]", has_text=option).first.click()


def choose_radio(page, elem_id: str, label: str) -> None:
    page.locator(f"#{elem_id} label", has_text=label).first.click()


def small_txt2img(page, prompt: str, steps: int = 3, size: int = 64) -> None:
    page.fill("#txt2img_prompt textarea", prompt)
    set_number(page, "txt2img_steps", steps)
    set_number(page, "txt2img_width", size)
    set_number(page, "txt2img_height", size)


def wait_for_text(page, selector: str, text: str, timeout_ms: int = TIMEOUT_MS) -> str:
    """The element's text once it contains ``text`` (inputs: their value)."""
    deadline = time.monotonic() + timeout_ms / 1000
    current = ""
    while time.monotonic() < deadline:
        element = page.locator(selector).first
        if element.count():
            tag = element.evaluate("e => e.tagName")
            current = element.input_value() if tag in ("TEXTAREA", "INPUT") else element.inner_text()
            if text in current:
                return current
        time.sleep(0.2)
    raise AssertionError(f"{selector} never showed {text!r}; last: {current!r}")


def gallery_image_count(page, tab: str) -> int:
    return page.locator(f"#{tab}_gallery img").count()


def first_gallery_image(page, tab: str) -> Image.Image:
    """The first image the tab's gallery shows, as the server sent it (metadata included)."""
    return fetch_image(page.locator(f"#{tab}_gallery img").first.get_attribute("src"))


def fetch_image(url: str) -> Image.Image:
    with urllib.request.urlopen(url, timeout=30) as response:
        image = Image.open(io.BytesIO(response.read()))
        image.load()
        return image


def write_png(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
