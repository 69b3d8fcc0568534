"""An extension written for Gradio 3, as most A1111 extensions were, builds its UI here unchanged:
``gr.X.update``, ``.style(...)``, ``_js=``, ``show_progress=False``, ``gr.Box``, and
``gr.Image(source=..., tool=...)`` (``webui/gradio3_compat.py``)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from modules import script_callbacks, scripts, shared
from modules.compat_options import Options
from modules.extensions.startup import parse_config_with_extensions
from modules.runtime import Runtime
from webui.app import create_app
from webui.gradio3_compat import gradio3_listener_keywords

OLD_STYLE = '''
import gradio as gr
import modules.scripts as scripts


class OldStyle(scripts.Script):
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

        def more_choices():
            return gr.Dropdown.update(choices=["a", "b", "c"], value="c"), gr.Textbox.update(visible=False)

        refresh.click(more_choices, inputs=[], outputs=[mode, note], _js="oldStyleMarker", show_progress=False)
        return [mode, note]
'''


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("gradio3")
    folder = data_dir / "extensions" / "old-style" / "scripts"
    folder.mkdir(parents=True)
    (folder / "old_style.py").write_text(OLD_STYLE, encoding="utf-8")
    shared.opts = Options()
    config, found = parse_config_with_extensions(["--data-dir", str(data_dir), "--skip-install"], data_dir)
    runtime = Runtime(config, cuda_available=False)
    runtime.load_extensions(found)
    client = TestClient(create_app(runtime))
    blocks = client.app.router.routes[-1].app.get_blocks()
    yield client.get("/config").json(), blocks, found
    runtime.jobs.shutdown()
    script_callbacks.clear_callbacks()
    scripts.scripts_data.clear()
    shared.opts = Options()
    shared._bound.clear()


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
