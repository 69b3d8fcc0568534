"""An extension written for Gradio 3, as most A1111 extensions were, builds its UI here unchanged:
``gr.X.update``, ``.style(...)``, ``_js=``, ``show_progress=False``, ``gr.Box``, and
``gr.Image(source=..., tool=...)`` (``webui/gradio3_compat.py``)."""

from __future__ import annotations

import pytest

from tests.extensions.started import started_app
from webui.gradio3_compat import gradio3_listener_keywords

OLD_STYLE = '''
import gradio as gr
import modules.scripts as scripts
from modules import script_callbacks

SEEN = {"before_ui": 0, "callback_ids": [], "script_ids": [], "by_elem_id": []}
script_callbacks.on_before_ui(lambda: SEEN.__setitem__("before_ui", SEEN["before_ui"] + 1))
script_callbacks.on_after_component(lambda component, **kwargs: SEEN["callback_ids"].append(kwargs.get("elem_id")))


class OldStyle(scripts.Script):
    def __init__(self):
        for elem_id in ("txt2img_prompt", "txt2img-prompt"):
            self.on_after_component(self.found_prompt, elem_id=elem_id)

    def found_prompt(self, on_component):
        SEEN["by_elem_id"].append((self.is_img2img, type(on_component.component).__name__))

    def after_component(self, component, **kwargs):
        if kwargs.get("elem_id"):
            SEEN["script_ids"].append((self.is_img2img, kwargs["elem_id"]))

    def title(self):
        return "Old style"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        tab = "img2img" if is_img2img else "txt2img"
        with gr.Box(elem_id=f"old_box_{tab}"):
            with gr.Row().style(equal_height=True):
                mode = gr.Dropdown(["a", "b"], value="a", label="Mode", elem_id=f"old_mode_{tab}")
                refresh = gr.Button("Refresh", elem_id=f"old_refresh_{tab}").style(full_width=False)
            gallery = gr.Gallery(elem_id=f"old_gallery_{tab}").style(grid=4, height="auto", rounded=False)
            image = gr.Image(source="upload", tool="sketch", type="pil", elem_id=f"old_image_{tab}")
            note = gr.Textbox(label="Note", elem_id=f"old_note_{tab}").style(container=False)
            gr.Slider(0, 1, value=0.5, label="Hint", tooltip="gone in Gradio 4", grid=3, elem_id=f"old_slider_{tab}")

        def more_choices():
            return gr.Dropdown.update(choices=["a", "b", "c"], value="c"), gr.Textbox.update(visible=False)

        refresh.click(more_choices, inputs=[], outputs=[mode, note], _js="oldStyleMarker", show_progress=False)
        return [mode, note]
'''


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    extensions = {"old-style": {"scripts/old_style.py": OLD_STYLE}}
    with started_app(tmp_path_factory.mktemp("gradio3"), extensions) as app:
        yield app.client.get("/config").json(), app.blocks, app.found


def test_the_gradio3_ui_is_built_with_its_styles_mapped(page) -> None:
    config, _, found = page
    assert [e.errors for e in found.extensions if e.name == "old-style"] == [[]]
    props = {c["props"].get("elem_id"): c for c in config["components"]}
    assert props["old_box_txt2img"]["type"] == "group"  # gr.Box is a Group now
    assert props["old_gallery_txt2img"]["props"]["columns"] == 4
    assert props["old_note_txt2img"]["props"]["container"] is False
    assert props["old_image_txt2img"]["props"]["sources"] == ["upload"]
    assert props["old_mode_img2img"]["type"] == "dropdown"  # built for both tabs


def test_old_listeners_get_their_js_and_handlers_return_updates(page) -> None:
    config, blocks, _ = page
    ids = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    refresh = next(d for d in config["dependencies"]
                   if any(ids.get(target[0]) == "old_refresh_txt2img" for target in d["targets"]))
    assert refresh["js"] == "oldStyleMarker" and refresh["show_progress"] == "hidden"
    handler = blocks.fns[refresh["id"]].fn
    choices, note = handler()
    assert choices == {"__type__": "update", "choices": ["a", "b", "c"], "value": "c"}
    assert note == {"__type__": "update", "visible": False}


def test_listener_keywords_in_gradio3_spelling_are_renamed_and_others_kept() -> None:
    assert gradio3_listener_keywords({"_js": "f", "show_progress": True, "queue": False}) == {
        "js": "f", "show_progress": "full", "queue": False}


def test_component_hooks_and_classes_reach_the_extension(page) -> None:
    config, _, found = page
    module = next(e for e in found.extensions if e.name == "old-style").modules[0]
    seen = module.SEEN
    assert seen["before_ui"] == 1
    assert "old_slider_txt2img" in seen["callback_ids"] and "old_slider_img2img" in seen["callback_ids"]
    txt2img_ids = [elem_id for is_img2img, elem_id in seen["script_ids"] if not is_img2img]
    img2img_ids = [elem_id for is_img2img, elem_id in seen["script_ids"] if is_img2img]
    assert "old_note_txt2img" in txt2img_ids and "old_note_img2img" in img2img_ids
    assert "old_note_img2img" not in txt2img_ids and "old_note_txt2img" not in img2img_ids  # each tab its own
    assert seen["by_elem_id"] == [(False, "Textbox")]  # the txt2img prompt, to the txt2img script
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"]}
    assert "gradio-button" in props["old_refresh_txt2img"]["elem_classes"]
    assert "gradio-slider" in props["old_slider_txt2img"]["elem_classes"]
