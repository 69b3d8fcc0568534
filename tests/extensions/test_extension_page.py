"""An extension's tab, JavaScript, stylesheet and ``on_app_started`` route reach the page and app."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modules import script_callbacks, scripts, shared
from modules.compat_options import Options
from modules.config import build_arg_parser, config_from_args
from modules.extensions import startup
from modules.runtime import Runtime
from webui.app import create_app

TAB_SCRIPT = '''
import gradio as gr
from modules import script_callbacks, scripts, shared

def on_ui_tabs():
    with gr.Blocks(analytics_enabled=False) as ui_component:
        gr.Textbox(label="Greeting", value="hello from the extension", elem_id="page_ext_greeting")
        # the hidden message box and button its JS talks to the server through (Gradio 3 kept them in the page)
        gr.Textbox("", elem_id="page_ext_inbox", visible=False)
        gr.Button("Send", elem_id="page_ext_send", visible=False)
    return [(ui_component, "Page ext", "page_ext")]

def on_app_started(demo, app):
    @app.get("/page-ext/ping")
    def ping():
        return {"pong": demo is not None}

def on_ui_settings():
    section = ("page_ext", "Page ext")
    shared.opts.add_option("page_ext_level", shared.OptionInfo(3, "Level", section=section))
    shared.opts.add_option("page_ext_slider", shared.OptionInfo(
        0.5, "Strength", gr.Slider, {"minimum": 0, "maximum": 1, "step": 0.1}, section=section))

class PageExtScript(scripts.Script):
    def title(self):
        return "Page ext script"
    def show(self, is_img2img):
        return scripts.AlwaysVisible
    def ui(self, is_img2img):
        enabled = gr.Checkbox(label="Enabled", elem_id=self.elem_id("enabled"))
        strength = gr.Slider(0, 1, value=0.25, label="Strength", elem_id=self.elem_id("strength"))
        return [enabled, strength]

class NoControls(scripts.Script):  # works on p only (a prompt rewriter): ui() makes nothing
    def title(self):
        return "No controls"
    def show(self, is_img2img):
        return scripts.AlwaysVisible


class ChosenScript(scripts.Script):
    def title(self):
        return "Chosen ext script"
    def ui(self, is_img2img):
        label = "Rounds (img2img)" if is_img2img else "Rounds"
        rounds = gr.Slider(1, 9, value=3, step=1, label=label, elem_id=self.elem_id("rounds"))
        word = gr.Textbox(value="moss", label="Word", elem_id=self.elem_id("word"))
        return [rounds, word]
    def run(self, p, rounds, word):
        return None

script_callbacks.on_ui_tabs(on_ui_tabs)
script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_app_started(on_app_started)
'''

# Its own extension: an extension whose ui() raises is disabled, the others load.
BROKEN_UI_SCRIPT = '''
from modules import scripts

class BrokenUi(scripts.Script):
    def title(self):
        return "Broken UI"
    def show(self, is_img2img):
        return scripts.AlwaysVisible
    def ui(self, is_img2img):
        raise RuntimeError("ui failed")
'''


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture()
def client(tmp_path):
    ext = tmp_path / "extensions"
    write(ext / "page-ext" / "scripts" / "page_tab.py", TAB_SCRIPT)
    write(ext / "page-ext" / "javascript" / "b_second.js", "window.pageExtOrder.push('b');\n")
    write(ext / "page-ext" / "javascript" / "a_first.js", "window.pageExtOrder = ['a']; // </script> inside\n")
    write(ext / "page-ext" / "style.css", "#page_ext_greeting { color: rgb(1, 2, 3); }\n")
    write(ext / "ui-fails" / "scripts" / "broken_ui.py", BROKEN_UI_SCRIPT)
    write(ext / "tab-fails" / "scripts" / "bad_tab.py",
          "from modules import script_callbacks\nscript_callbacks.on_ui_tabs(lambda: 1 / 0)\n")
    write(tmp_path / "extension-settings.json", '{"page_ext_level": 9}')
    shared.opts = Options()
    argv = ["--data-dir", str(tmp_path), "--skip-install", "--api"]
    args, found = startup.prepare(argv, tmp_path, build_arg_parser(), report=lambda line: None)
    runtime = Runtime(config_from_args(args, tmp_path))
    runtime.load_extensions(found)
    yield TestClient(create_app(runtime))
    script_callbacks.clear_callbacks()
    scripts.scripts_data.clear()
    shared.opts = Options()


def test_tab_js_css_and_route_of_an_extension(client):
    config = client.get("/config").json()
    ids = {c["props"].get("elem_id"): c for c in config["components"]}
    assert "tab_page_ext" in ids and ids["page_ext_greeting"]["props"]["value"] == "hello from the extension"
    head = config["head"]
    first, second = head.index("window.pageExtOrder = ['a']"), head.index("window.pageExtOrder.push('b')")
    assert first < second  # load order: file names sorted
    assert "<\\/script> inside" in head  # a closing tag in the source cannot end the inline script early
    assert "#page_ext_greeting { color: rgb(1, 2, 3); }" in config["css"]
    assert client.get("/page-ext/ping").json() == {"pong": True}
    assert any("ZeroDivisionError" in e for e in script_callbacks.errors)  # the failing tab is reported


def test_extension_settings_appear_with_saved_values_and_apply_saves_them(client, tmp_path):
    config = client.get("/config").json()
    ids = {c["props"].get("elem_id"): c for c in config["components"]}
    assert ids["setting_page_ext_level"]["props"]["value"] == 9  # read back from the saved file
    slider = ids["setting_page_ext_slider"]
    assert slider["type"] == "slider" and slider["props"]["maximum"] == 1
    assert shared.opts.page_ext_level == 9
    blocks = client.app.router.routes[-1].app.get_blocks()
    level = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "setting_page_ext_level")
    slider_block = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "setting_page_ext_slider")
    apply = next(f for f in blocks.fns.values() if level in f.inputs)
    message = apply.fn({level: 4, slider_block: 0.5})
    assert "page_ext_level" in message and shared.opts.page_ext_level == 4
    assert '"page_ext_level": 4' in (tmp_path / "extension-settings.json").read_text()


def test_alwayson_script_controls_render_in_both_tabs_inside_a_group(client):
    config = client.get("/config").json()
    ids = {c["props"].get("elem_id"): c for c in config["components"]}
    for tab in ("txt2img", "img2img"):
        assert ids[f"script_{tab}_page_ext_script"]["type"] == "group"  # A1111's wrapper; no accordion of ours
        assert ids[f"script_{tab}_page_ext_script_strength"]["props"]["value"] == 0.25
        assert f"script_{tab}_broken_ui" not in ids  # its ui() raised: left out, the page still built
        assert f"script_{tab}_no_controls" not in ids  # no empty box on the page, as in A1111
    group = ids["script_txt2img_page_ext_script"]["id"]
    assert group in _ancestors(config["layout"], ids["script_txt2img_page_ext_script_strength"]["id"])


def _ancestors(node: dict, target: int) -> list[int] | None:
    """The ids above ``target`` in the page layout (None when it is not under ``node``)."""
    if node.get("id") == target:
        return []
    for child in node.get("children", []):
        found = _ancestors(child, target)
        if found is not None:
            return [node.get("id"), *found]
    return None


def test_file_route_serves_an_extensions_own_files_as_a1111_does(client, tmp_path):
    """A1111 extensions' scripts fetch ``file=<path>`` (tagcomplete reads its tag lists so); a cache-
    busting query is ignored, and a file outside the extensions is not served."""
    css = tmp_path / "extensions" / "page-ext" / "style.css"
    answer = client.get(f"/file={css}?1712345678")
    assert answer.status_code == 200 and answer.text == css.read_text(encoding="utf-8")
    assert client.get(f"/file={tmp_path / 'extension-settings.json'}").status_code == 404


def test_selectable_script_own_ui_renders_under_the_script_dropdown_in_its_group(client):
    config = client.get("/config").json()
    ids = {c["props"].get("elem_id"): c for c in config["components"]}
    dropdowns = [c for c in config["components"] if c["props"].get("elem_id") == "script_list"]  # A1111's id, both tabs
    assert len(dropdowns) == 2
    for dropdown in dropdowns:
        assert "Chosen ext script" in [c[0] if isinstance(c, list) else c for c in dropdown["props"]["choices"]]
    for tab in ("txt2img", "img2img"):
        rounds = ids[f"script_{tab}_chosen_ext_script_rounds"]
        assert rounds["type"] == "slider" and rounds["props"]["value"] == 3
        groups = [c for c in config["components"] if str(c["props"].get("elem_id")).startswith(f"{tab}_script_")
                  and c["type"] == "group" and c["id"] in _ancestors(config["layout"], rounds["id"])]
        assert len(groups) == 1 and groups[0]["props"]["visible"] is False  # shown only once chosen, as A1111's
    assert ids["script_img2img_chosen_ext_script_rounds"]["props"]["label"] == "Rounds (img2img)"  # ui(is_img2img)


def test_selectable_script_gets_its_own_controls_values_in_order(client):
    import gradio as gr

    blocks = client.app.router.routes[-1].app.get_blocks()
    by_id = {getattr(b, "elem_id", None): b for b in blocks.blocks.values()}
    dropdowns = [b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "script_list"]
    rounds, word = by_id["script_txt2img_chosen_ext_script_rounds"], by_id["script_txt2img_chosen_ext_script_word"]
    submit = next(f for f in blocks.fns.values() if rounds in f.inputs and any(d in f.inputs for d in dropdowns))
    dropdown = next(d for d in dropdowns if d in submit.inputs)
    values = {component: "" if component.value is None and isinstance(component, gr.Textbox) else component.value
              for component in submit.inputs}
    values.update({dropdown: "Chosen ext script", rounds: 5.0, word: "fern"})
    _, message, call = submit.fn(values)
    assert message == ""
    assert call.script.title() == "Chosen ext script" and call.args == (5, "fern")  # whole number: the default is one


def test_script_info_describes_a_selectable_scripts_own_controls_per_tab(client):
    info = {(s["name"], s["is_img2img"]): s for s in client.get("/sdapi/v1/script-info").json()}
    assert [a["label"] for a in info[("chosen ext script", False)]["args"]] == ["Rounds", "Word"]
    assert [a["label"] for a in info[("chosen ext script", True)]["args"]] == ["Rounds (img2img)", "Word"]
    assert info[("chosen ext script", False)]["args"][0]["maximum"] == 9


def test_xyz_plot_shows_its_own_ui_and_swap_buttons_exchange_axes(client):
    blocks = client.app.router.routes[-1].app.get_blocks()
    by_id = {getattr(b, "elem_id", None): b for b in blocks.blocks.values()}
    x_type, x_values = by_id["script_txt2img_x_y_z_plot_x_type"], by_id["script_txt2img_x_y_z_plot_x_values"]
    y_type, y_values = by_id["script_txt2img_x_y_z_plot_y_type"], by_id["script_txt2img_x_y_z_plot_y_values"]
    assert x_type.value == "Seed" and y_type.value == "Nothing"  # A1111's defaults
    buttons = {b._id for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "xy_grid_swap_axes_button"}
    assert len(buttons) == 2  # one per tab, as A1111's
    swap = next(f for f in blocks.fns.values()
                if any((i, "click") in f.targets for i in buttons) and f.inputs[0] is x_type)
    axes = swap.fn(4, "1-3", None, 6, "5, 7", None)  # the dropdowns send indices: Steps, CFG Scale
    assert axes == ("CFG Scale", "5, 7", None, "Steps", "1-3", None)
    assert [x_type, x_values] == swap.outputs[:2] and [y_type, y_values] == swap.outputs[3:5]


def test_extension_blocks_made_invisible_stay_in_the_page_hidden_and_ours_do_not(client):
    config = client.get("/config").json()
    ids = {c["props"].get("elem_id"): c for c in config["components"]}
    assert ids["page_ext_inbox"]["props"]["visible"] == "hidden"  # in the DOM, not shown, as in Gradio 3
    assert ids["page_ext_send"]["props"]["visible"] == "hidden"
    assert ids["img2img_mode"]["props"]["visible"] is False  # the page's own hidden textbox is left as made
