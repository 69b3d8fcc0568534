"""How the API is served: beside the page with ``--api``, alone with ``--nowebui`` (port 7861 by
default), and not at all without either flag."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from modules.config import API_ONLY_PORT, parse_config
from tests.api.conftest import FAST, free_port, start_live_server, write_tiny_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def one_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api-serving")
    write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=6)
    return root


def test_nowebui_defaults_to_port_7861(tmp_path: Path) -> None:
    assert parse_config(["--nowebui"], tmp_path).port == API_ONLY_PORT == 7861
    assert parse_config(["--nowebui", "--port", "9000"], tmp_path).port == 9000
    assert parse_config(["--api"], tmp_path).port == 7860


def test_api_flag_serves_the_api_beside_the_page(one_model: Path) -> None:
    live = start_live_server(one_model, "--api", register_scripts=False)
    try:
        page = requests.get(live.url + "/", timeout=60)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert live.get("sd-models").json()[0]["model_name"] == "tiny"
        response = live.post("txt2img", {**FAST, "prompt": "x", "seed": 1})
        assert response.status_code == 200 and len(response.json()["images"]) == 1
    finally:
        live.stop()


def test_without_api_flags_there_is_no_api(one_model: Path) -> None:
    live = start_live_server(one_model, register_scripts=False)
    try:
        assert requests.get(live.url + "/", timeout=60).status_code == 200
        assert live.get("sd-models").status_code == 404
    finally:
        live.stop()


def test_launch_nowebui_serves_only_the_api(one_model: Path) -> None:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "launch.py", "--skip-install", "--nowebui", "--data-dir", str(one_model),
               "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                progress = requests.get(url + "/sdapi/v1/progress", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "launch.py --nowebui did not answer"
                time.sleep(0.3)
        assert progress.json()["state"]["job_count"] == 0
        assert requests.get(url + "/", timeout=10).status_code == 404  # no page
        assert requests.get(url + "/docs", timeout=10).status_code == 200  # no login asked for, none required
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"API at http://127.0.0.1:{port}/sdapi/v1" in output


def test_an_exposed_server_without_login_is_warned_about(tmp_path: Path) -> None:
    from webui.server import security_warnings

    exposed = security_warnings(parse_config(["--listen", "--api"], tmp_path))
    assert any("the page and the API can be used by others without a login" in w for w in exposed)
    api_only = security_warnings(parse_config(["--listen", "--nowebui"], tmp_path))
    assert any("--api-auth" in w and "--gradio-auth" not in w for w in api_only)
    for guarded in (["--listen", "--nowebui", "--api-auth", "a:b"], ["--listen", "--api", "--api-auth", "a:b"],
                    ["--share", "--gradio-auth", "a:b"]):
        assert [w for w in security_warnings(parse_config(guarded, tmp_path)) if "login" in w] == [], guarded
    assert security_warnings(parse_config(["--api"], tmp_path)) == []
