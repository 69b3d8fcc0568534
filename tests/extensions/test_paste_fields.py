"""An extension script's ``infotext_fields`` take part in ↙️ paste (keys, functions of the fields,
typed as the control), after its ``on_infotext_pasted`` callback has seen and changed the fields."""

from __future__ import annotations

import pytest

from tests.extensions.started import started_app

PASTE_SCRIPT = '''
import gradio as gr
import modules.scripts as scripts
from modules import script_callbacks


class PasteDemo(scripts.Script):
    def title(self):
        return "Paste demo"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        tab = "img2img" if is_img2img else "txt2img"
        enabled = gr.Checkbox(False, label="Demo enabled", elem_id=f"paste_demo_enabled_{tab}")
        strength = gr.Slider(0, 2, value=1.0, label="Demo strength", elem_id=f"paste_demo_strength_{tab}")
        word = gr.Textbox("", label="Demo word", elem_id=f"paste_demo_word_{tab}")
        untouched = gr.Textbox("keep", label="Untouched", elem_id=f"paste_demo_untouched_{tab}")
        self.infotext_fields = [(enabled, "Demo enabled"), (strength, "Demo strength"),
                                (word, lambda fields: fields.get("Demo word", "").upper() or None),
                                (untouched, "Not in the text")]
        return [enabled, strength, word, untouched]


def migrate(infotext, fields):
    if "Demo legacy" in fields:  # an older version wrote another key
        fields["Demo strength"] = fields.pop("Demo legacy")


script_callbacks.on_infotext_pasted(migrate)
'''

INFOTEXT = "a red fox\nSteps: 7, Sampler: Euler, CFG scale: 4, Seed: 12, Size: 64x64, Demo enabled: True, " \
           "Demo legacy: 1.5, Demo word: zebra"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    extensions = {"paste-demo": {"scripts/paste_demo.py": PASTE_SCRIPT}}
    with started_app(tmp_path_factory.mktemp("paste-fields"), extensions) as app:
        yield app.client.get("/config").json(), app.blocks


def test_paste_fills_the_script_controls_from_the_infotext(page) -> None:
    config, blocks = page
    by_elem = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    buttons = {c["id"] for c in config["components"] if c["props"].get("value") == "↙️"}
    enabled_id = by_elem["paste_demo_enabled_txt2img"]
    dependency = next(d for d in config["dependencies"]
                      if enabled_id in d["outputs"] and any(t[0] in buttons for t in d["targets"]))
    fn = blocks.fns[dependency["id"]]
    prompt = next(c for c in fn.inputs if getattr(c, "elem_id", "") in ("txt2img-prompt", "txt2img_prompt"))
    updates = fn.fn({c: (INFOTEXT if c is prompt else c.value) for c in fn.inputs})
    by_id = {component._id: value for component, value in updates.items()}
    assert by_id[enabled_id] is True
    assert by_id[by_elem["paste_demo_strength_txt2img"]] == 1.5  # the callback renamed the legacy key
    assert by_id[by_elem["paste_demo_word_txt2img"]] == "ZEBRA"  # a function of the fields
    assert by_elem["paste_demo_untouched_txt2img"] not in by_id  # a key the text lacks changes nothing
    steps = next(c for c in fn.inputs if getattr(c, "elem_id", "") in ("txt2img-steps", "txt2img_steps"))
    assert updates[steps] == 7  # the form's own fields are pasted as before
