"""`python launch.py` serves the page: a real process, a real port, real HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from safetensors.torch import save_file

from tests.nets.checkpoints import TINY_SD1_TEXT, TINY_SD1_UNET, TINY_SD1_VAE, make_ldm_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 120) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {process.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture()
def server(tmp_path: Path):
    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    save_file(make_ldm_checkpoint(TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT, seed=3), str(folder / "tiny.safetensors"))
    port = free_port()
    command = [sys.executable, "launch.py", "--skip-install", "--data-dir", str(tmp_path), "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serves_the_page_with_the_checkpoint_listed(server) -> None:
    url, process = server
    page = wait_for(url + "/", process).decode()
    assert page.lstrip().lower().startswith("<!doctype html>")
    config = json.loads(wait_for(url + "/config", process))
    assert config["title"] == "Stable Diffusion"
    dropdowns = [c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == "setting_sd_model_checkpoint"]
    assert len(dropdowns) == 1
    choices = [choice[0] if isinstance(choice, list) else choice for choice in dropdowns[0]["choices"]]
    assert len(choices) == 1 and choices[0].startswith("tiny.safetensors [") and choices[0].endswith("]")
    assert dropdowns[0]["value"] == choices[0]



def test_share_offline_keeps_serving_and_says_why_and_the_theme_is_forced(tmp_path: Path) -> None:
    from tests.browser.conftest import start_server, write_tiny_model

    write_tiny_model(tmp_path / "models" / "Stable-diffusion", "tiny.safetensors", seed=3)
    server = start_server(tmp_path, "--share", "--theme", "dark")
    try:
        deadline = time.monotonic() + 60
        while "No share link" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        log = server.log.read_text()
        assert "No share link" in log and f"still served locally at {server.url}" in log
        assert "without a login" in log  # --share without --gradio-auth warns
        head = json.loads(wait_for(server.url + "/config", server.process))["head"]
        assert "searchParams.set('__theme',\"dark\")" in head and "sdTrackJobs" in head
        progress = json.loads(wait_for(server.url + "/internal/progress?id=job-404", server.process))
        assert progress == {"known": False, "done": True}
    finally:
        server.stop()


def test_security_warnings() -> None:
    from modules.config import parse_config
    from webui.server import local_url, security_warnings

    local = parse_config([], ROOT)
    assert security_warnings(local) == [] and local_url(local) == "http://127.0.0.1:7860"
    listening = parse_config(["--listen", "--port", "9000"], ROOT)
    assert len(security_warnings(listening)) == 2 and local_url(listening) == "http://127.0.0.1:9000"
    with_login = parse_config(["--listen", "--gradio-auth", "a:b"], ROOT)
    assert [w for w in security_warnings(with_login) if "login" in w] == []
