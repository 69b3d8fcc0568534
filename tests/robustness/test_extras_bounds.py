"""An extras upscale that would make an image over the pixel bound (a 1x512 strip "scaled to
512x512" asks for a 512x262144 intermediate) is refused before any work, naming the field."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from modules.pipeline.postprocess import (
    MAX_UPSCALED_PIXELS, PostprocessContext, PostprocessError, PostprocessRegistry, UpscaleArgs, plan_upscale,
)
from modules.upscalers.library import UpscalerLibrary, Upscaling
from tests.api.conftest import LiveServer, start_live_server, write_tiny_model


def png_b64(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 30, 200)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("extras-bounds")
    write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=8)
    running = start_live_server(root, "--nowebui", register_scripts=False)
    yield running
    running.stop()


def refused(answer) -> dict[str, str]:
    assert answer.status_code == 422, answer.text
    return {".".join(str(p) for p in item["loc"][1:]): item["msg"] for item in answer.json()["detail"]}


@pytest.mark.parametrize("size, fields, named, made", [
    ((1, 512), {"resize_mode": 1, "upscaling_resize_w": 512, "upscaling_resize_h": 512}, "upscaling_resize_w", "512x262144"),
    ((512, 1), {"resize_mode": 1, "upscaling_resize_w": 512, "upscaling_resize_h": 512}, "upscaling_resize_h", "262144x512"),
    ((1000, 1000), {"resize_mode": 0, "upscaling_resize": 8}, "upscaling_resize", "8000x8000"),
])
def test_an_upscale_over_the_pixel_bound_is_refused_by_field(server: LiveServer, size, fields, named, made) -> None:
    body = {"image": png_b64(*size), "upscaler_1": "Lanczos", **fields}
    problems = refused(server.post("extra-single-image", body))
    assert list(problems) == [named]
    assert made in problems[named] and str(MAX_UPSCALED_PIXELS) in problems[named]


def test_the_batch_route_names_the_image_that_would_be_too_large(server: LiveServer) -> None:
    body = {"imageList": [{"data": png_b64(64, 64), "name": "fine"}, {"data": png_b64(2, 600), "name": "strip"}],
            "upscaler_1": "Lanczos", "resize_mode": 1, "upscaling_resize_w": 4096, "upscaling_resize_h": 600}
    problems = refused(server.post("extra-batch-images", body))
    assert "image 1 (2x600)" in problems["upscaling_resize_w"]


def test_within_the_bound_the_same_fields_are_served(server: LiveServer) -> None:
    body = {"image": png_b64(1, 512), "upscaler_1": "Lanczos", "resize_mode": 1,
            "upscaling_resize_w": 64, "upscaling_resize_h": 512}
    answer = server.post("extra-single-image", body)
    assert answer.status_code == 200, answer.text
    with Image.open(io.BytesIO(base64.b64decode(answer.json()["image"]))) as image:
        assert image.size == (64, 512)


def test_with_no_upscaler_there_is_no_intermediate_to_bound() -> None:
    from modules.pipeline.postprocess import upscale_size_problems

    huge = UpscaleArgs(upscale_mode=1, upscale_to_width=8192, upscale_to_height=8192, upscaler_1_name="None")
    assert upscale_size_problems([(1, 1)], huge) == []
    assert upscale_size_problems([(1, 1)], UpscaleArgs(**{**huge.__dict__, "upscaler_1_name": "Lanczos"}))


class CountingUpscaling(Upscaling):
    """Records each resize the engine asks for, so a test sees that a refused request did no work."""

    def __init__(self, tmp_path: Path):
        super().__init__(UpscalerLibrary([("ESRGAN", [tmp_path / "none"])]), {})
        self.calls: list[tuple[int, int]] = []

    def resize(self, image, size, name):
        self.calls.append(size)
        return super().resize(image, size, name)


def test_the_engine_refuses_before_resizing(tmp_path: Path) -> None:
    upscaling = CountingUpscaling(tmp_path)
    args = {"Upscale": {"upscale_mode": 1, "upscale_to_width": 512, "upscale_to_height": 512,
                        "upscaler_1_name": "Lanczos"}}
    with pytest.raises(PostprocessError) as caught:
        PostprocessRegistry.with_builtins().run(Image.new("RGB", (1, 512)), args, PostprocessContext(upscaling))
    assert caught.value.field == "upscale_to_width" and upscaling.calls == []
    PostprocessRegistry.with_builtins().run(Image.new("RGB", (64, 512)), args, PostprocessContext(upscaling))
    assert upscaling.calls == [(512, 4096)]  # scale 8 (the larger ratio), cropped to 512x512 afterwards


def test_the_plan_follows_a1111s_sizes() -> None:
    # Hand-computed: 50x30 by 2 -> 100x60 rounded down to multiples of 8 -> 96x56.
    assert plan_upscale((50, 30), UpscaleArgs(upscale_by=2.0)).size == (96, 56)
    # "Scale to" 100x100 from 50x25 takes the larger ratio, 4 -> 200x100.
    plan = plan_upscale((50, 25), UpscaleArgs(upscale_mode=1, upscale_to_width=100, upscale_to_height=100))
    assert plan.size == (200, 96) and plan.target == (100, 100) and plan.scale_field == "upscale_to_height"
