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

# An extension written as A1111 extensions are: it finds the controls by A1111's element ids.
IDS_EXTENSION_JS = """
onUiLoaded(function () {
  const prompt = gradioApp().querySelector('#txt2img_prompt textarea');
  const tab = gradioApp().getElementById('tab_txt2img');
  if (!prompt || !tab) return;
  prompt.classList.add('ids-demo-marked');
  const badge = document.createElement('span');
  badge.className = 'ids-demo-badge';
  badge.textContent = 'ids-demo';
  gradioApp().getElementById('txt2img_prompt').appendChild(badge);
  const found = ['#txt2img_neg_prompt textarea', '#txt2img_generate', '#txt2img_gallery', '#txt2img_settings',
                 '#txt2img_script_container', '#tabs', '#quicksettings #setting_sd_model_checkpoint',
                 '#txt2img_prompt.gradio-textbox', '#txt2img_hr.gradio-accordion']
    .filter((selector) => tab.ownerDocument.querySelector(selector) !== null);
  tab.dataset.idsDemo = [prompt.closest('#tab_txt2img') === tab ? 'prompt-in-tab' : 'prompt-elsewhere', ...found].join('|');
});
"""
IDS_EXTENSION_CSS = "#tab_txt2img #txt2img_prompt > .ids-demo-badge { color: rgb(4, 5, 6); }\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("webui-ext-js")
    write_tiny_model(root / "models" / "Stable-diffusion", "tiny-a.safetensors", seed=1)
    extension = root / "extensions" / "js-demo"
    (extension / "javascript").mkdir(parents=True)
    (extension / "scripts").mkdir()
    (extension / "javascript" / "demo.js").write_text(EXTENSION_JS, encoding="utf-8")
    (extension / "scripts" / "demo.py").write_text(EXTENSION_SCRIPT, encoding="utf-8")
    ids_extension = root / "extensions" / "ids-demo"
    (ids_extension / "javascript").mkdir(parents=True)
    (ids_extension / "javascript" / "ids.js").write_text(IDS_EXTENSION_JS, encoding="utf-8")
    (ids_extension / "style.css").write_text(IDS_EXTENSION_CSS, encoding="utf-8")
    running = start_server(root)
    yield running
    running.stop()


def test_extension_script_sees_the_page_through_a1111_helpers(server, page) -> None:
    open_page(page, server.url)
    page.wait_for_selector("body[data-extension-saw]", state="attached")
    assert page.evaluate("document.body.dataset.extensionSaw") == "prompt|string|teal|txt2img"
    page.wait_for_selector("body[data-extension-updates]", state="attached")


def test_extension_finds_the_controls_by_a1111_element_ids(server, page) -> None:
    open_page(page, server.url)
    page.wait_for_selector("#tab_txt2img[data-ids-demo]", state="attached")
    assert page.get_attribute("#tab_txt2img", "data-ids-demo") == (
        "prompt-in-tab|#txt2img_neg_prompt textarea|#txt2img_generate|#txt2img_gallery|#txt2img_settings"
        "|#txt2img_script_container|#tabs|#quicksettings #setting_sd_model_checkpoint"
        "|#txt2img_prompt.gradio-textbox|#txt2img_hr.gradio-accordion")
    assert page.locator("#txt2img_prompt textarea.ids-demo-marked").count() == 1
    badge = page.locator("#txt2img_prompt > .ids-demo-badge")
    assert badge.evaluate("(element) => getComputedStyle(element).color") == "rgb(4, 5, 6)"  # its style.css applies
