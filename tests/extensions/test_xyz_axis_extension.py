"""An extension adds an X/Y/Z plot axis the way A1111 extensions do (finding ``xyz_grid.py`` in
``scripts.scripts_data`` and appending an ``AxisOption``), and the axis works through the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modules import script_callbacks, scripts, shared
from modules.compat_options import Options
from modules.config import build_arg_parser, config_from_args
from modules.extensions import startup
from modules.runtime import Runtime
from tests.api.conftest import FAST, decode_b64, field, infotexts, pixels, write_tiny_model
from webui.app import create_app

AXIS_EXTENSION = '''
from modules import scripts

xyz_grid = next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")


def apply_mood(p, x, xs):
    p.prompt = f"{p.prompt}, {x}"
    p.extra_generation_params["Mood"] = x


xyz_grid.axis_options.extend([
    xyz_grid.AxisOption("[Mood] Word", str, apply_mood, format_value=xyz_grid.format_value_add_label),
    xyz_grid.AxisOption("[Mood] Level", int, xyz_grid.apply_field("steps"),
                        confirm=xyz_grid.confirm_range(1, 3, "[Mood] Level")),
])
'''


@pytest.fixture()
def client(tmp_path):
    write_tiny_model(tmp_path / "models" / "Stable-diffusion" / "tiny.safetensors", seed=3)
    script = tmp_path / "extensions" / "mood-axis" / "scripts" / "mood_axis.py"
    script.parent.mkdir(parents=True)
    script.write_text(AXIS_EXTENSION, encoding="utf-8")
    shared.opts = Options()
    args, found = startup.prepare(["--data-dir", str(tmp_path), "--skip-install", "--api"], tmp_path,
                                  build_arg_parser(), report=lambda line: None)
    runtime = Runtime(config_from_args(args, tmp_path), cuda_available=False)
    runtime.load_extensions(found)
    yield TestClient(create_app(runtime))
    runtime.jobs.shutdown(timeout=30)
    script_callbacks.clear_callbacks()
    scripts.scripts_data.clear()
    shared.opts = Options()


def xyz_args(x_type, x_values):
    return [x_type, x_values, None, "Nothing", "", None, "Nothing", "", None,
            True, True, False, False, False, False, False, 0, False]


def test_an_axis_added_by_an_extension_plots_its_values(client):
    body = client.post("/sdapi/v1/txt2img", json={**FAST, "prompt": "a lake", "seed": 8, "script_name": "X/Y/Z plot",
                                                  "script_args": xyz_args("[Mood] Word", "calm, stormy")}).json()
    texts = infotexts(body)
    assert len(texts) == 3  # the grid, then the two cells
    assert [t.split("\n")[0] for t in texts[1:]] == ["a lake, calm", "a lake, stormy"]
    assert [field(t, "Mood") for t in texts[1:]] == ["calm", "stormy"]  # the axis's extra_generation_params
    assert "X Type: [Mood] Word" in texts[0]
    grid = decode_b64(body["images"][0])
    assert grid.height > 64  # the legend band above the cells ("[Mood] Word: calm")
    alone = client.post("/sdapi/v1/txt2img", json={**FAST, "prompt": "a lake, stormy", "seed": 8}).json()
    assert (pixels(decode_b64(body["images"][2])) == pixels(decode_b64(alone["images"][0]))).all()


def test_an_extension_axis_is_found_by_its_index_and_its_check_refuses_bad_values(client):
    info = next(s for s in client.get("/sdapi/v1/script-info").json() if s["name"] == "x/y/z plot"
                and not s["is_img2img"])
    labels = info["args"][0]["choices"]
    assert labels[-2:] == ["[Mood] Word", "[Mood] Level"]  # appended after A1111's own axes
    body = client.post("/sdapi/v1/txt2img", json={**FAST, "prompt": "a hill", "seed": 2, "script_name": "X/Y/Z plot",
                                                  "script_args": xyz_args(len(labels) - 1, "1, 2")}).json()
    assert [field(t, "Steps") for t in infotexts(body)[1:]] == ["1", "2"]
    refused = client.post("/sdapi/v1/txt2img", json={**FAST, "script_name": "X/Y/Z plot",
                                                     "script_args": xyz_args("[Mood] Level", "2, 9")})
    assert refused.status_code == 422 and "[Mood] Level value 9 is outside 1..3" in refused.text
