"""An extension in A1111's style that registers its ``on_ui_settings`` and ``on_ui_tabs`` callbacks in
its script's ``__init__`` (A1111 makes the txt2img and img2img script objects before it builds the
Settings tab and the extension tabs), counting instances so it registers once; its ``ui()`` reads
its own setting only when it exists, and ``process()`` reads it unguarded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modules import script_callbacks, scripts, shared
from modules.compat_options import Options
from modules.extensions.startup import SETTINGS_FILE, parse_config_with_extensions
from modules.runtime import Runtime
from webui.app import create_app

SCRIPT = '''
import gradio as gr
from modules import script_callbacks, scripts, shared
from modules.shared import opts

created = 0

def on_ui_settings():
    section = ("initreg", "Init registering")
    shared.opts.add_option("initreg_suffix", shared.OptionInfo("plain", "Suffix", section=section))
    shared.opts.add_option("initreg_level", shared.OptionInfo(4, "Level", section=section))

def on_ui_tabs():
    with gr.Blocks() as tab:
        gr.Textbox(label="Init registering tab", elem_id="initreg_box")
    return [(tab, "Init registering", "initreg_tab")]

class InitRegistering(scripts.Script):
    def __init__(self):
        global created
        created += 1
        if created % 2 == 0:  # one object per tab: register once
            return
        script_callbacks.on_ui_settings(on_ui_settings)
        script_callbacks.on_ui_tabs(on_ui_tabs)

    def title(self):
        return "Init registering"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        level = opts.initreg_level if hasattr(opts, "initreg_level") else 0
        return [gr.Checkbox(label=f"Init registering {level}", value=True)]

    def process(self, p, enabled):
        p.extra_generation_params["Init registering"] = f"{opts.initreg_suffix}/{opts.initreg_level}"
'''


@pytest.fixture()
def loaded(tmp_path):
    script = tmp_path / "extensions" / "initreg-ext" / "scripts" / "initreg.py"
    script.parent.mkdir(parents=True)
    script.write_text(SCRIPT, encoding="utf-8")
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"initreg_suffix": "saved"}), encoding="utf-8")
    shared.opts = Options()
    config, found = parse_config_with_extensions(["--data-dir", str(tmp_path), "--skip-install"], tmp_path)
    runtime = Runtime(config)
    runtime.load_extensions(found)
    assert [found.state_of(e) for e in found.extensions] == ["loaded"], [e.errors for e in found.extensions]
    yield runtime
    script_callbacks.clear_callbacks()
    scripts.scripts_data.clear()
    shared.opts = Options()
    shared._bound.clear()


def test_settings_registered_in_init_are_declared_with_saved_values(loaded):
    assert shared.opts.initreg_suffix == "saved"  # read back from the saved file
    assert shared.opts.initreg_level == 4  # the declared default
    assert shared.opts.data_labels["initreg_level"].section == ("initreg", "Init registering")
    data = next(d for d in scripts.scripts_data if d.script_class.__name__ == "InitRegistering")
    script = scripts.instantiate(data, is_img2img=False)

    class P:
        extra_generation_params: dict

    p = P()
    p.extra_generation_params = {}
    script.process(p, True)
    assert p.extra_generation_params == {"Init registering": "saved/4"}


def test_settings_and_tab_registered_in_init_appear_on_the_page(loaded):
    config = TestClient(create_app(loaded)).get("/config").json()
    ids = {c["props"].get("elem_id"): c for c in config["components"]}
    assert ids["setting_initreg_suffix"]["props"]["value"] == "saved"
    assert ids["setting_initreg_level"]["props"]["value"] == 4
    assert "initreg_box" in ids
    labels = [c["props"].get("label") or "" for c in config["components"]]
    assert any(label.startswith("Init registering ") for label in labels)  # its ui() did not fail
