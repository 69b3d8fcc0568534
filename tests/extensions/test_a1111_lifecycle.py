"""A1111 extension scripts run inside the engine's job: an always-on script's lifecycle with its
``ui()`` defaults, and a selectable script whose ``run`` calls ``process_images``, through the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modules import scripts as a1111_scripts
from modules import shared
from modules.extensions import loader
from modules.extensions.a1111_bridge import register_scripts
from modules.infotext.parse import parse_infotext
from tests.api.conftest import FAST, decode_b64, make_data_dir, start_live_server

EXTENSION_SCRIPT = '''
import gradio as gr
from PIL import Image

import modules.scripts as scripts
from modules.processing import Processed, process_images


class Marker(scripts.Script):
    def title(self):
        return "Marker"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with gr.Accordion("Marker", open=False):
            enabled = gr.Checkbox(False, label="Enable")
            word = gr.Textbox("zebra", label="Word")
        return [enabled, word]

    def process(self, p, enabled, word):
        if enabled:
            p.extra_generation_params["Marker"] = word
            p.all_prompts = [f"{prompt}, {word}" for prompt in p.all_prompts]

    def postprocess_image(self, p, pp, enabled, word):
        if enabled:
            pp.image = pp.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def postprocess(self, p, processed, enabled, word):
        if enabled:
            p.extra_generation_params["Seen images"] = len(processed.images)


class Broken(scripts.Script):
    def title(self):
        return "Broken"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p):
        raise ValueError("this extension fails")


class SeedRow(scripts.Script):
    def title(self):
        return "Seed row"

    def ui(self, is_img2img):
        return [gr.Slider(1, 5, value=2, step=1, label="Count")]

    def run(self, p, count):
        images, infotexts = [], []
        for number in range(int(count)):
            p.seed = 100 + number
            processed = process_images(p)
            images += processed.images
            infotexts += processed.infotexts
        return Processed(p, images, infotexts=infotexts)
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data_dir = make_data_dir(tmp_path_factory.mktemp("a1111-lifecycle"))
    folder = data_dir / "extensions" / "lifecycle-demo" / "scripts"
    folder.mkdir(parents=True)
    (folder / "demo.py").write_text(EXTENSION_SCRIPT, encoding="utf-8")
    running = start_live_server(data_dir, "--nowebui")
    found = [e for e in loader.discover(data_dir / "extensions") if e.name == "lifecycle-demo"]
    titles = register_scripts(running.runtime, a1111_scripts.load_extension_scripts(found))
    assert titles == ["Marker", "Broken", "Seed row"]
    yield running
    running.stop()
    shared._bound.clear()


def txt2img(server, **fields) -> tuple[list[np.ndarray], list[str]]:
    response = server.post("txt2img", {**FAST, "prompt": "a cat", "seed": 5, **fields})
    assert response.status_code == 200, response.text
    images = [decode_b64(text) for text in response.json()["images"]]
    return [np.asarray(image.convert("RGB")) for image in images], [image.info["parameters"] for image in images]


def test_the_always_on_lifecycle_changes_prompts_infotext_and_images(server) -> None:
    (marked,), (marked_text,) = txt2img(server, alwayson_scripts={"Marker": {"args": [True, "zebra"]}})
    (plain,), (plain_text,) = txt2img(server, prompt="a cat, zebra")
    fields = parse_infotext(marked_text)
    assert fields["Prompt"] == "a cat, zebra" and fields["Marker"] == "zebra"
    assert "Marker" not in parse_infotext(plain_text)
    assert np.array_equal(marked, plain[:, ::-1])  # process() changed the prompt, postprocess_image flipped it


def test_an_always_on_script_not_named_runs_with_its_ui_defaults(server) -> None:
    (default,), (text,) = txt2img(server)  # Marker's "Enable" defaults to off; Broken fails and is isolated
    (disabled,), _ = txt2img(server, alwayson_scripts={"Marker": {"args": [False]}})
    assert np.array_equal(default, disabled) and "Marker" not in parse_infotext(text)


def test_a_selectable_script_runs_process_images_through_the_queue(server) -> None:
    images, texts = txt2img(server, script_name="Seed row", script_args=[3])
    seeds = [parse_infotext(text)["Seed"] for text in texts]
    assert seeds == ["100", "101", "102"] and len(images) == 3
    assert not np.array_equal(images[0], images[1])


def test_script_info_describes_the_extension_controls(server) -> None:
    info = server.get("script-info").json()
    marker = next(s for s in info if s["name"] == "marker" and not s["is_img2img"])
    assert marker["is_alwayson"] is True
    assert [(arg["label"], arg["value"]) for arg in marker["args"]] == [("Enable", False), ("Word", "zebra")]
    row = next(s for s in info if s["name"] == "seed row" and not s["is_img2img"])
    assert (row["args"][0]["minimum"], row["args"][0]["maximum"], row["args"][0]["value"]) == (1, 5, 2)
