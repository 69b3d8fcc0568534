"""The extras pixel bound from both doors: the API (TestClient, no page built) and the Extras tab's
handler. Sizes are hand-computed from the source size and the factor; the sources stay small
except one 2048x2048 (a 4096x4096 by 4 asks the same of the bound, 67 MP > 50 MP, at a quarter
of the source)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modules.config import parse_config
from modules.runtime import Runtime
from webui.app import create_app
from webui.tabs.extras import run_extras_tab

TAB_VALUES = {"resize_mode": 0, "upscaling_resize": 2.0, "max_side_length": 0, "upscaling_resize_w": 512,
              "upscaling_resize_h": 512, "upscaling_crop": True, "upscaler_1": "Lanczos", "upscaler_2": "None",
              "upscaler_2_visibility": 0.0, "image": None, "files": None, "input_dir": "", "output_dir": "",
              "show_results": True, "source": "Single Image"}


def runtime_at(root: Path) -> Runtime:
    return Runtime(parse_config(["--data-dir", str(root), "--nowebui"], root), cuda_available=False)


@pytest.fixture()
def client(tmp_path: Path):
    runtime = runtime_at(tmp_path)
    with TestClient(create_app(runtime)) as test_client:
        yield test_client
    runtime.jobs.shutdown(timeout=30)


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 77).save(buffer, format="PNG")  # one flat plane: a few KB even at 2048x2048
    return buffer.getvalue()


def refused_fields(answer) -> dict[str, str]:
    assert answer.status_code == 422, answer.text
    return {".".join(str(p) for p in item["loc"][1:]): item["msg"] for item in answer.json()["detail"]}


def extras(client: TestClient, size: tuple[int, int], **fields):
    body = {"image": base64.b64encode(png_bytes(*size)).decode("ascii"), "upscaler_1": "Lanczos", **fields}
    return client.post("/sdapi/v1/extra-single-image", json=body)


def test_a_strip_upscaled_by_8_is_served(client: TestClient) -> None:
    answer = extras(client, (1, 512), upscaling_resize=8)
    assert answer.status_code == 200, answer.text
    with Image.open(io.BytesIO(base64.b64decode(answer.json()["image"]))) as image:
        assert image.size == (8, 4096)  # 1*8 = 8, 512*8 = 4096: 32,768 pixels


def test_a_large_source_upscaled_by_4_is_refused_naming_upscaling_resize(client: TestClient) -> None:
    problems = refused_fields(extras(client, (2048, 2048), upscaling_resize=4))
    assert list(problems) == ["upscaling_resize"]
    assert "8192x8192" in problems["upscaling_resize"]  # 2048*4 = 8192 per side: 67,108,864 pixels


def test_scale_to_on_a_strip_is_refused_naming_the_side_that_sets_the_scale(client: TestClient) -> None:
    # 512/1 is the larger ratio, so the width sets the scale: 512 x 512*512 = 134,217,728 pixels.
    problems = refused_fields(extras(client, (1, 512), resize_mode=1, upscaling_resize_w=512, upscaling_resize_h=512))
    assert list(problems) == ["upscaling_resize_w"] and "512x262144" in problems["upscaling_resize_w"]
    problems = refused_fields(extras(client, (512, 1), resize_mode=1, upscaling_resize_w=512, upscaling_resize_h=512))
    assert list(problems) == ["upscaling_resize_h"] and "262144x512" in problems["upscaling_resize_h"]


def test_the_extras_tab_shows_the_refusal_and_saves_nothing(tmp_path: Path) -> None:
    runtime = runtime_at(tmp_path)
    try:
        strip = tmp_path / "strip.png"
        strip.write_bytes(png_bytes(1, 512))
        outcome = run_extras_tab(runtime, {**TAB_VALUES, "image": str(strip), "resize_mode": 1})
        assert outcome.images == [] and outcome.message.startswith("**Not processed.**")
        assert "512x262144" in outcome.message and "upscale_to_width" in outcome.message
        assert not list((tmp_path / "outputs").rglob("*.png"))

        outcome = run_extras_tab(runtime, {**TAB_VALUES, "image": str(strip), "upscaling_resize": 8.0})
        assert [image.size for image in outcome.images] == [(8, 4096)] and outcome.message.startswith("Saved 1 image")
    finally:
        runtime.jobs.shutdown(timeout=30)
