"""An extension's javascript/*.js runs in the page with A1111's helpers: onUiLoaded fires once the
page is built, gradioApp() reaches its elements, opts holds the settings, the current tab is known;
Gradio 3's textbox shape (``label > textarea``) holds and a script's edit reaches the generation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import start_server, write_tiny_model
from tests.browser.helpers import open_page, open_tab, small_txt2img, wait_for_text

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

# A prompt completer written as A1111-era ones are (tagcomplete's way): it binds once, at onUiLoaded,
# to both prompts by Gradio 3 selectors, puts its popup after the textarea, and on Tab writes the
# completion into the textarea and tells Gradio with updateInput (an input event without inputType).
COMPLETE_EXTENSION_JS = """
onUiLoaded(function () {
  const areas = ['#txt2img_prompt > label > textarea', '#img2img_prompt > label > textarea']
    .map((selector) => gradioApp().querySelector(selector));
  document.body.dataset.completeDemo = areas.map((area) => area ? 'found' : 'missing').join('|');
  areas.filter(Boolean).forEach(function (area) {
    const popup = document.createElement('div');
    popup.className = 'complete-demo-popup';
    popup.textContent = 'dancing_robot';
    popup.style.display = 'none';
    area.parentNode.insertBefore(popup, area.nextSibling);
    area.addEventListener('input', function (event) {
      if (!event.inputType) return;  // our own updateInput below
      popup.style.display = area.value.endsWith('danc') ? 'block' : 'none';
    });
    area.addEventListener('keydown', function (event) {
      if (event.key !== 'Tab' || popup.style.display === 'none') return;
      event.preventDefault();
      area.value = area.value.slice(0, -'danc'.length) + 'dancing_robot, ';
      popup.style.display = 'none';
      updateInput(area);
    });
  });
});
"""
# Below the prompt's box, where Gradio's overflow: hidden would cut it off.
COMPLETE_EXTENSION_CSS = (".complete-demo-popup { position: absolute; z-index: 999; top: 100%; left: 1em;"
                          " width: 12em; height: 6em; background: rgb(1, 2, 3); }\n")
POPUP_IS_ON_TOP = """(popup) => {
  const box = popup.getBoundingClientRect();
  const below = popup.parentElement.closest('.block').getBoundingClientRect().bottom;
  const hit = document.elementFromPoint(box.left + box.width / 2, box.bottom - 4);
  return box.bottom > below && hit === popup;
}"""


# A size-ratio picker written as A1111-era ones are (the aspect-ratio helper's way): it starts from a
# DOMContentLoaded listener, watches for the width and height sliders and then expects the rest of
# their tab (the swap button it sits beside), sets the height through the number field's input event,
# calls A1111's dimensionChange, and adds a tooltip to A1111's `titles`.
RATIO_EXTENSION_JS = """
titles = {...titles, "Generate": "ratio-demo: make the picture"};
document.addEventListener("DOMContentLoaded", () => {
  const observer = new MutationObserver(() => {
    const width = gradioApp().querySelector("#txt2img_width");
    const height = gradioApp().querySelector("#txt2img_height");
    if (!width || !height) return;
    observer.disconnect();
    const swap = gradioApp().getElementById("txt2img_res_switch_btn");
    const picker = document.createElement("select");
    picker.id = "ratio_demo_picker";
    picker.innerHTML = "<option>Off</option><option>2:1</option>";
    swap.parentNode.insertBefore(picker, swap);
    picker.onchange = () => {
      const heightField = height.querySelector("input[type=number]");
      const widthValue = Number(width.querySelector("input[type=number]").value);
      heightField.value = Math.round(widthValue / 2 / 8) * 8;
      heightField.dispatchEvent(new Event("input", {bubbles: true}));
      dimensionChange({target: heightField}, false, true);
    };
  });
  observer.observe(gradioApp(), {childList: true, subtree: true});
});
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
    ids_extension = root / "extensions" / "ids-demo"
    (ids_extension / "javascript").mkdir(parents=True)
    (ids_extension / "javascript" / "ids.js").write_text(IDS_EXTENSION_JS, encoding="utf-8")
    (ids_extension / "style.css").write_text(IDS_EXTENSION_CSS, encoding="utf-8")
    complete_extension = root / "extensions" / "complete-demo"
    (complete_extension / "javascript").mkdir(parents=True)
    (complete_extension / "javascript" / "complete.js").write_text(COMPLETE_EXTENSION_JS, encoding="utf-8")
    (complete_extension / "style.css").write_text(COMPLETE_EXTENSION_CSS, encoding="utf-8")
    ratio_extension = root / "extensions" / "ratio-demo"
    (ratio_extension / "javascript").mkdir(parents=True)
    (ratio_extension / "javascript" / "ratio.js").write_text(RATIO_EXTENSION_JS, encoding="utf-8")
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


def test_completer_bound_by_gradio3_selectors_edits_the_prompt_a_generation_uses(server, page) -> None:
    open_page(page, server.url)
    page.wait_for_selector("body[data-complete-demo]", state="attached")
    assert page.evaluate("document.body.dataset.completeDemo") == "found|found"  # img2img's too, unopened
    assert page.evaluate("get_uiCurrentTab().textContent.trim()") == "txt2img"  # back where the page opened
    small_txt2img(page, "")
    prompt = page.locator("#txt2img_prompt > label > textarea")
    prompt.click()
    prompt.press_sequentially("a danc")
    popup = page.locator("#txt2img_prompt .complete-demo-popup")
    popup.wait_for(state="visible")
    assert popup.evaluate(POPUP_IS_ON_TOP)
    prompt.press("Tab")
    assert prompt.input_value() == "a dancing_robot, "
    page.click("#txt2img_generate")
    infotext = wait_for_text(page, "#html_info_txt2img textarea", "Seed: ")
    assert infotext.startswith("a dancing_robot, \nSteps: 3")


def test_completer_works_in_the_img2img_prompt(server, page) -> None:
    open_page(page, server.url)
    page.wait_for_selector("body[data-complete-demo]", state="attached")
    open_tab(page, "img2img")
    prompt = page.locator("#img2img_prompt > label > textarea")
    prompt.click()
    prompt.press_sequentially("danc")
    popup = page.locator("#img2img_prompt .complete-demo-popup")
    popup.wait_for(state="visible")
    assert popup.evaluate(POPUP_IS_ON_TOP)
    prompt.press("Tab")
    assert prompt.input_value() == "dancing_robot, "


def test_picker_started_from_domcontentloaded_sets_the_size_a_generation_uses(server, page) -> None:
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_page(page, server.url)
    picker = page.locator("#ratio_demo_picker")
    picker.wait_for(state="attached")
    assert page.get_attribute("#txt2img_generate", "title") == "ratio-demo: make the picture"
    small_txt2img(page, "ratio", size=128)
    picker.select_option("2:1")
    assert page.locator("#txt2img_height input[type=number]").input_value() == "64"
    page.click("#txt2img_generate")
    infotext = wait_for_text(page, "#html_info_txt2img textarea", "Seed: ")
    assert "Size: 128x64" in infotext
    assert errors == []
