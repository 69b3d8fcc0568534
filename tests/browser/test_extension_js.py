"""An extension's javascript/*.js runs in the page with A1111's helpers: onUiLoaded fires once the
page is built, gradioApp() reaches its elements, opts holds the settings, the current tab is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import start_server, write_tiny_model
from tests.browser.helpers import open_page

EXTENSION_JS = """
onUiLoaded(function () {
  const prompt = gradioApp().querySelector('#txt2img_prompt textarea');
  const tab = get_uiCurrentTab();
  document.body.dataset.extensionSaw = [prompt ? 'prompt' : 'no-prompt', typeof opts.samples_format,
                                        opts.demo_ext_colour, tab ? tab.textContent.trim() : 'no-tab'].join('|');
});
onUiUpdate(function () { document.body.dataset.extensionUpdates = 'yes'; });
"""
EXTENSION_SCRIPT = """
from modules import script_callbacks, shared


def settings():
    shared.opts.add_option("demo_ext_colour", shared.OptionInfo("teal", "Colour", section=("demo", "Demo")))


script_callbacks.on_ui_settings(settings)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("webui-ext-js")
    write_tiny_model(root / "models" / "Stable-diffusion", "tiny-a.safetensors", seed=1)
    extension = root / "extensions" / "js-demo"
    (extension / "javascript").mkdir(parents=True)
    (extension / "scripts").mkdir()
    (extension / "javascript" / "demo.js").write_text(EXTENSION_JS, encoding="utf-8")
    (extension / "scripts" / "demo.py").write_text(EXTENSION_SCRIPT, encoding="utf-8")
    running = start_server(root)
    yield running
    running.stop()


def test_extension_script_sees_the_page_through_a1111_helpers(server, page) -> None:
    open_page(page, server.url)
    page.wait_for_selector("body[data-extension-saw]", state="attached")
    assert page.evaluate("document.body.dataset.extensionSaw") == "prompt|string|teal|txt2img"
    page.wait_for_selector("body[data-extension-updates]", state="attached")
