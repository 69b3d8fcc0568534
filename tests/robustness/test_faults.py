"""Faults a real machine has: the server killed mid-generation, a full disk while saving, a
settings or styles file torn by an earlier crash. None of them loses an image or stops the next start."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

import modules.fileio
from modules.config import parse_config
from modules.runtime import Runtime
from tests.api.conftest import FAST, LiveServer, free_port, start_live_server, write_tiny_model

ROOT = Path(__file__).resolve().parents[2]
LONG_STEPS = 150  # long enough on the tiny model that the kill lands mid-sampling


class LaunchedServer:
    """``launch.py --nowebui`` as its own process, so it can be killed the way the OS kills it."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/sdapi/v1"
        command = [sys.executable, "launch.py", "--skip-install", "--nowebui", "--data-dir", str(data_dir),
                   "--port", str(self.port)]
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, self.process.stdout.read()
            try:
                requests.get(self.url + "/progress", timeout=5)
                return
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "launch.py did not answer"
                time.sleep(0.3)

    def stop(self) -> str:
        """Ends the process (terminate) and returns everything it printed."""
        if self.process.poll() is None:
            self.process.terminate()
        output, _ = self.process.communicate(timeout=60)
        return output


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    write_tiny_model(tmp_path / "models" / "Stable-diffusion" / "tiny.safetensors", seed=7)
    return tmp_path


def image_files(outputs: Path) -> list[Path]:
    return sorted(p for p in outputs.rglob("*") if p.is_file() and p.suffix in (".png", ".jpg", ".webp"))


def temporary_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.tmp") if p.is_file())


def test_a_server_killed_mid_generation_leaves_no_partial_image_and_the_next_start_serves(data_dir: Path) -> None:
    outputs = data_dir / "outputs"
    first = LaunchedServer(data_dir)
    try:
        body = {**FAST, "steps": LONG_STEPS, "prompt": "killed", "seed": 3, "save_images": True}
        request = subprocess.Popen([sys.executable, "-c", (
            "import json, sys, requests; requests.post(sys.argv[1], json=json.loads(sys.argv[2]), timeout=300)"),
            first.url + "/txt2img", json.dumps(body)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while requests.get(first.url + "/progress", timeout=10).json()["state"]["sampling_step"] < 2:
            assert time.monotonic() < deadline, "the generation did not start sampling"
            time.sleep(0.05)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
        request.kill()
        request.wait(timeout=30)
    finally:
        first.stop()
    assert first.process.returncode == -signal.SIGKILL
    assert image_files(outputs) == []  # killed before its end: no image, partial or zero-byte
    assert temporary_files(data_dir) == []
    # A kill that lands inside a save instead leaves its temporary file beside the images (old
    # enough that no live writer can own it); the next start removes it.
    torn = outputs / "txt2img-images" / "2020-01-01" / ".00000-1.png.abcd1234.tmp"
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"\x89PNG half")
    os.utime(torn, (time.time() - 3600, time.time() - 3600))

    second = LaunchedServer(data_dir)
    try:
        made = requests.post(second.url + "/txt2img", json={**FAST, "prompt": "after", "seed": 4, "save_images": True},
                             timeout=300)
        assert made.status_code == 200, made.text
        assert len(made.json()["images"]) == 1
    finally:
        printed = second.stop()
    assert f"Removed {torn}" in printed
    assert temporary_files(data_dir) == []
    saved = image_files(outputs)
    assert len(saved) == 1 and saved[0].stat().st_size > 0
    with Image.open(saved[0]) as image:
        image.load()  # a complete file: it decodes to its last row
        assert image.size == (64, 64)
    config = data_dir / "config.json"
    if config.exists():
        assert isinstance(json.loads(config.read_text(encoding="utf-8")), dict)


@pytest.fixture()
def live(data_dir: Path):
    running = start_live_server(data_dir, "--nowebui", register_scripts=False)
    yield running
    running.stop()


def test_a_full_disk_while_saving_is_answered_by_name_and_the_images_already_saved_stay(
        live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace
    renames: list[str] = []

    def fill_the_disk_after_one_image(source, target):
        # The second rename of an image finds the disk full; the temporary file it would rename is
        # the one that write_atomically must remove.
        if str(target).endswith(".png"):
            renames.append(str(target))
            if len(renames) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target)

    monkeypatch.setattr(modules.fileio.os, "replace", fill_the_disk_after_one_image)
    answer = live.post("txt2img", {**FAST, "prompt": "full disk", "seed": 9, "batch_size": 2, "save_images": True})
    monkeypatch.undo()

    assert answer.status_code == 507, answer.text
    detail = answer.json()["detail"].lower()
    assert "disk full" in detail and "no space left" in detail and "kept" in detail
    saved = image_files(live.data_dir / "outputs")
    assert [str(p) for p in saved] == renames[:1]  # the first image is on disk, whole
    with Image.open(saved[0]) as image:
        image.load()
    assert temporary_files(live.data_dir) == []  # the failed write left no temporary file
    again = live.post("txt2img", {**FAST, "prompt": "disk freed", "seed": 9, "save_images": True})
    assert again.status_code == 200 and len(image_files(live.data_dir / "outputs")) == 2


def test_a_write_that_fails_otherwise_keeps_its_own_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(source, target):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(modules.fileio.os, "replace", denied)
    with pytest.raises(PermissionError):
        modules.fileio.write_bytes_atomically(tmp_path / "a.txt", b"x")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("torn", [b'{"samples_format": "png", "jpeg_q', b"\xff\xfe\x00\x81", b"[1, 2, 3]", b""])
def test_a_corrupt_config_json_is_set_aside_and_the_defaults_used(data_dir: Path, torn: bytes,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    config_file = data_dir / "config.json"
    config_file.write_bytes(torn)
    config = parse_config(["--data-dir", str(data_dir)], data_dir)
    with caplog.at_level("WARNING", logger="modules.options"):
        runtime = Runtime(config, cuda_available=False)
    moved = runtime.options.set_aside_to
    assert moved is not None and moved.parent == data_dir and moved.name.startswith("config.json.corrupt-")
    assert moved.read_bytes() == torn  # kept, byte for byte, for the user to repair
    assert not config_file.exists()
    assert runtime.options.current.samples_format == "png" and runtime.options.current.jpeg_quality == 80
    assert any(str(moved) in record.getMessage() and "default settings" in record.getMessage()
               for record in caplog.records)
    runtime.update_options({"jpeg_quality": 70})  # the store works: a fresh file is written
    assert json.loads(config_file.read_text(encoding="utf-8"))["jpeg_quality"] == 70


@pytest.mark.parametrize("torn", [b"name,prompt\nok,\xff\xfe broken\n", b"title,text\nx,y\n"])
def test_a_corrupt_styles_csv_is_set_aside_and_the_server_starts_without_styles(data_dir: Path, torn: bytes,
                                                                                caplog: pytest.LogCaptureFixture) -> None:
    styles_file = data_dir / "styles.csv"
    styles_file.write_bytes(torn)
    with caplog.at_level("WARNING", logger="modules.styles"):
        live = start_live_server(data_dir, "--nowebui", register_scripts=False)
    try:
        moved = live.runtime.styles_set_aside
        assert moved is not None and moved.name.startswith("styles.csv.corrupt-") and moved.read_bytes() == torn
        assert not styles_file.exists()
        assert any(str(moved) in record.getMessage() for record in caplog.records)
        assert live.get("prompt-styles").json() == []
        made = live.post("txt2img", {**FAST, "prompt": "no styles", "seed": 2})
        assert made.status_code == 200 and len(made.json()["images"]) == 1
    finally:
        live.stop()


def test_a_readable_styles_csv_is_left_where_it_is(data_dir: Path) -> None:
    styles_file = data_dir / "styles.csv"
    styles_file.write_text("name,prompt,negative_prompt\nink,\"{prompt}, ink\",blur\n", encoding="utf-8")
    runtime = Runtime(parse_config(["--data-dir", str(data_dir)], data_dir), cuda_available=False)
    assert runtime.styles_set_aside is None and styles_file.exists()
    assert list(data_dir.glob("styles.csv.corrupt-*")) == []
