"""A live API server on loopback (uvicorn in a thread, the real app from ``create_app``) over
tiny checkpoints on disk whose text encoder has the full CLIP vocabulary."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import requests
import torch
import uvicorn
from PIL import Image
from safetensors.torch import save_file

from modules.config import parse_config
from modules.extensions.scripts import ALWAYS_VISIBLE, Script, ScriptArg, ScriptArgsError
from modules.runtime import Runtime
from tests.models.family_configs import clip_l_text, tiny_configs
from tests.nets.checkpoints import make_ldm_checkpoint
from tests.upscalers import layouts as upscaler_layouts
from modules.extensions.startup import ExtensionSet
from webui.app import create_app

API = "/sdapi/v1"
FAST = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "cfg_scale": 5.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_tiny_model(path: Path, seed: int) -> Path:
    unet, vae, _ = tiny_configs()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(make_ldm_checkpoint(unet, vae, clip_l_text(32, 2, 64), seed=seed), str(path))
    return path


def write_tiny_lora(path: Path, alias: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(1, 4)}, str(path), metadata={"ss_output_name": alias})
    return path


def write_embedding(path: Path, count: int, width: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.full((count, width), 0.01)}, str(path))
    return path


class PromptSuffix(Script):
    """An always-on script for the tests: appends its first argument to the prompt."""

    def title(self) -> str:
        return "Prompt suffix"

    def show(self, is_img2img: bool):
        return ALWAYS_VISIBLE

    def args_info(self) -> list[ScriptArg]:
        return [ScriptArg("Suffix", "")]  # the default: nothing appended

    def process(self, params, args: Sequence):
        if not args or not isinstance(args[0], str):
            raise ScriptArgsError("expected one text argument")
        import dataclasses

        return dataclasses.replace(params, prompt=f"{params.prompt}, {args[0]}") if args[0] else params


@dataclass
class LiveServer:
    url: str
    runtime: Runtime
    data_dir: Path
    server: uvicorn.Server
    thread: threading.Thread

    def api(self, route: str) -> str:
        return f"{self.url}{API}/{route}"

    def post(self, route: str, body: dict | None = None, **kwargs) -> requests.Response:
        return requests.post(self.api(route), json=body if body is not None else {}, timeout=120, **kwargs)

    def get(self, route: str, **kwargs) -> requests.Response:
        return requests.get(self.api(route), timeout=60, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.runtime.jobs.shutdown(timeout=30)


def start_live_server(data_dir: Path, *flags: str, register_scripts: bool = True) -> LiveServer:
    port = free_port()
    config = parse_config(["--data-dir", str(data_dir), "--port", str(port), *flags], data_dir)
    runtime = Runtime(config, cuda_available=False)
    runtime.load_extensions(ExtensionSet())  # the program's scripts/ (X/Y/Z plot), as the server loads them
    if register_scripts:
        runtime.scripts.register(PromptSuffix())
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"api-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the API server did not start")
        time.sleep(0.05)
    return LiveServer(f"http://127.0.0.1:{port}", runtime, data_dir, server, thread)


def make_data_dir(root: Path) -> Path:
    models = root / "models"
    write_tiny_model(models / "Stable-diffusion" / "tiny-a.safetensors", seed=1)
    write_tiny_model(models / "Stable-diffusion" / "sub" / "tiny-b.safetensors", seed=2)
    write_tiny_lora(models / "Lora" / "paper-style.safetensors", alias="paper")
    write_embedding(models / "embeddings" / "shiny.safetensors", count=2, width=32)  # the tiny encoder's width
    write_embedding(models / "embeddings" / "for-sd1.safetensors", count=1, width=768)
    (models / "ESRGAN").mkdir(parents=True, exist_ok=True)
    save_file(upscaler_layouts.compact(nf=8, convs=1, scale=2), str(models / "ESRGAN" / "2x-tiny-compact.safetensors"))
    (root / "styles.csv").write_text("name,prompt,negative_prompt\nwatercolor,{prompt} in watercolor,blurry\n",
                                     encoding="utf-8")
    (root / "extensions" / "with-scripts" / "scripts").mkdir(parents=True)
    (root / "extensions" / "with-install").mkdir(parents=True)
    (root / "extensions" / "with-install" / "install.py").write_text("", encoding="utf-8")
    (root / "extensions" / "just-a-folder").mkdir(parents=True)
    return root


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory):
    """The API alone (``--nowebui``), as most API users run it."""
    running = start_live_server(make_data_dir(tmp_path_factory.mktemp("api-data")), "--nowebui")
    yield running
    running.stop()


# ----- images -----

def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_b64(text: str) -> Image.Image:
    assert not text.startswith("data:"), "A1111 returns raw base64 without a data: prefix"
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    image.load()
    return image


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def gradient_image(size: int = 64) -> Image.Image:
    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    return Image.fromarray(np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                                     np.full((size, size), 128, np.uint8)], axis=-1))


def half_mask(size: int = 64) -> Image.Image:
    """White (repaint) on the right half."""
    mask = np.zeros((size, size), np.uint8)
    mask[:, size // 2:] = 255
    return Image.fromarray(mask)


def infotexts(body: dict) -> list[str]:
    """Each returned image's infotext, from the response's ``info`` JSON."""
    return json.loads(body["info"])["infotexts"]


def field(infotext: str, name: str) -> str:
    """One ``Name: value`` field of an infotext; the test fails when it is missing."""
    match = re.search(rf"(?:^|, |\n){re.escape(name)}: ([^,\n]+)", infotext)
    assert match, f"{name} not in {infotext!r}"
    return match.group(1)
