"""A live server (``launch.py`` as a subprocess) on tiny models, and Debian's Chromium through playwright.

Screenshots go to ``tests/browser/artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from safetensors.torch import save_file

from tests.models.family_configs import clip_l_text, tiny_configs
from tests.nets.checkpoints import make_ldm_checkpoint

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
START_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_tiny_model(folder: Path, name: str, seed: int) -> Path:
    """A tiny SD1-layout checkpoint with the full CLIP vocabulary, so real prompts tokenize."""
    unet, vae, _ = tiny_configs()
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(make_ldm_checkpoint(unet, vae, clip_l_text(32, 2, 64), seed=seed), str(path))
    return path


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(data_dir: Path, *flags: str) -> Server:
    port = free_port()
    log = data_dir / f"server-{port}.log"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(data_dir / "gradio-tmp"), "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "launch.py", "--skip-install", "--data-dir", str(data_dir), "--port", str(port), *flags]
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", data_dir, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(server.url + "/", timeout=5):
                return server
        except OSError as error:
            if getattr(error, "code", None) == 401:
                return server
            time.sleep(0.5)
    server.stop()
    raise AssertionError(f"server did not answer within {START_TIMEOUT} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("webui-data")
    models = root / "models" / "Stable-diffusion"
    write_tiny_model(models, "tiny-a.safetensors", seed=1)
    write_tiny_model(models, "tiny-b.safetensors", seed=2)
    (models / "zz-broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": trunc")
    return root


@pytest.fixture(scope="session")
def server(data_dir: Path):
    running = start_server(data_dir)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    opened = context.new_page()
    yield opened
    ARTIFACTS.mkdir(exist_ok=True)
    opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
    context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

