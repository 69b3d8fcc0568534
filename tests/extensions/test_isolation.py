"""An extension whose code raises (in a job hook, a CFG callback, or ui()) is reported, shown as
failed with its error in the Extensions tab, and disabled until the next start: its scripts and
callbacks stop running, while the app and every other extension keep generating."""

from __future__ import annotations

import pytest

from modules.infotext.parse import parse_infotext
from tests.api.conftest import FAST, decode_b64, make_data_dir
from tests.extensions.started import started_app
from webui.tabs.extensions import installed_table

GOOD = '''
import modules.scripts as scripts

class Good(scripts.Script):
    def title(self):
        return "Good"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p):
        p.extra_generation_params["Good"] = "yes"
'''

FAILS_IN_PROCESS = '''
import modules.scripts as scripts

CALLS = []

class FailsInProcess(scripts.Script):
    def title(self):
        return "Fails in process"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p):
        CALLS.append(p.prompt)
        raise ValueError("process fails")


class SelectableOfTheSame(scripts.Script):
    def title(self):
        return "Selectable of the same"

    def run(self, p):
        from modules.processing import process_images
        return process_images(p)
'''

FAILS_IN_CALLBACK = '''
from modules import script_callbacks

CALLS = []

def denoiser(params):
    CALLS.append(params.sampling_step)
    raise RuntimeError("callback fails")

script_callbacks.on_cfg_denoiser(denoiser)
'''

FAILS_IN_UI = '''
import modules.scripts as scripts

class FailsInUi(scripts.Script):
    def title(self):
        return "Fails in ui"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        raise KeyError("ui fails")
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    extensions = {name: {f"scripts/{name.replace('-', '_')}.py": source} for name, source in (
        ("good", GOOD), ("fails-in-process", FAILS_IN_PROCESS), ("fails-in-callback", FAILS_IN_CALLBACK),
        ("fails-in-ui", FAILS_IN_UI))}
    with started_app(make_data_dir(tmp_path_factory.mktemp("isolation")), extensions, "--api") as app:
        yield app.client, app.runtime, {e.name: e for e in app.found.extensions}


def generate(client, **fields) -> str:
    response = client.post("/sdapi/v1/txt2img", json={**FAST, "prompt": "a cat", "seed": 5, **fields})
    assert response.status_code == 200, response.text
    return decode_b64(response.json()["images"][0]).info["parameters"]


def test_failing_extensions_are_disabled_and_the_others_keep_working(app) -> None:
    client, runtime, extensions = app
    assert not extensions["fails-in-ui"].enabled  # its ui() raised while the page was built
    first = parse_infotext(generate(client))
    second = parse_infotext(generate(client, prompt="a dog"))
    assert first["Good"] == "yes" and second["Good"] == "yes"  # the healthy extension still runs
    assert extensions["fails-in-process"].modules[0].CALLS == ["a cat"]  # not called again
    assert extensions["fails-in-callback"].modules[0].CALLS == [0]  # raised at the first step, then dropped
    assert extensions["good"].enabled
    table = installed_table(runtime.config.data_dir / "extensions", runtime.extensions, ())
    assert "| fails-in-process |" in table and "failed: ValueError: process fails" in table
    assert "failed: RuntimeError: callback fails" in table and "failed: KeyError: 'ui fails'" in table


def test_a_disabled_extension_s_selectable_script_is_refused_with_the_reason(app) -> None:
    client, _, extensions = app
    generate(client)  # the always-on script of the same extension fails first, if it has not yet
    response = client.post("/sdapi/v1/txt2img", json={**FAST, "prompt": "x", "script_name": "Selectable of the same"})
    assert response.status_code == 422
    assert "disabled after an error" in response.text
