"""The Extras tab's handler without a browser: the three sources, saving, messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from safetensors.torch import save_file

from modules.config import parse_config
from modules.runtime import Runtime
from tests.upscalers import layouts
from webui.tabs.extras import run_extras_tab

VALUES = {"resize_mode": 0, "upscaling_resize": 2.0, "max_side_length": 0, "upscaling_resize_w": 512,
          "upscaling_resize_h": 512, "upscaling_crop": True, "upscaler_1": "2x-tiny", "upscaler_2": "None",
          "upscaler_2_visibility": 0.0, "image": None, "files": None, "input_dir": "", "output_dir": "", "show_results": True}


def runtime_at(root: Path, *flags: str) -> Runtime:
    (root / "models" / "RealESRGAN").mkdir(parents=True)
    save_file(layouts.compact(scale=2), str(root / "models" / "RealESRGAN" / "2x-tiny.safetensors"))
    return Runtime(parse_config(["--data-dir", str(root), *flags], root), cuda_available=False)


def png(path: Path, size: int, parameters: str | None = None) -> Path:
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    Image.new("RGB", (size, size), (90, 140, 20)).save(path, pnginfo=info)
    return path


def test_single_image_is_upscaled_by_the_model_saved_with_its_parameters(tmp_path):
    runtime = runtime_at(tmp_path)
    source = png(tmp_path / "in.png", 24, "a field\nSteps: 20, Seed: 4")
    outcome = run_extras_tab(runtime, {**VALUES, "source": "Single Image", "image": str(source)})
    assert [image.size for image in outcome.images] == [(48, 48)]
    assert "Postprocess upscaler: 2x-tiny" in outcome.html_info and outcome.message.startswith("Saved 1 image")
    saved = sorted((tmp_path / "outputs" / "extras-images").rglob("*.png"))
    assert len(saved) == 1
    with Image.open(saved[0]) as reread:
        assert reread.info["parameters"] == "a field\nSteps: 20, Seed: 4"
        assert reread.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: 2x-tiny"


def test_batch_files_keep_their_names_and_a_bad_file_is_reported(tmp_path):
    runtime = runtime_at(tmp_path)
    files = [png(tmp_path / "one.png", 16), png(tmp_path / "two.png", 8)]
    (tmp_path / "three.png").write_bytes(b"garbage")
    outcome = run_extras_tab(runtime, {**VALUES, "source": "Batch Process", "upscaler_1": "Lanczos",
                                       "files": [str(f) for f in files] + [str(tmp_path / "three.png")]})
    assert [image.size for image in outcome.images] == [(32, 32), (16, 16)]
    assert {p.name for p in (tmp_path / "outputs" / "extras-images").rglob("*.png")} == {"one.png", "two.png"}
    assert "Skipped `three`: not a readable image" in outcome.message


def test_directory_batch_writes_to_the_folder_given(tmp_path):
    runtime = runtime_at(tmp_path)
    (tmp_path / "in").mkdir()
    png(tmp_path / "in" / "a.png", 16)
    outcome = run_extras_tab(runtime, {**VALUES, "source": "Batch from Directory", "input_dir": str(tmp_path / "in"),
                                       "output_dir": str(tmp_path / "out"), "show_results": False,
                                       "resize_mode": 1, "upscaling_resize_w": 40, "upscaling_resize_h": 24})
    assert outcome.images == []
    written = list((tmp_path / "out").rglob("a.png"))
    assert len(written) == 1 and Image.open(written[0]).size == (40, 24)


def test_server_folders_are_refused_when_the_server_is_reachable_from_the_network(tmp_path):
    runtime = runtime_at(tmp_path, "--listen")
    outcome = run_extras_tab(runtime, {**VALUES, "source": "Batch from Directory", "input_dir": str(tmp_path)})
    assert outcome.images == [] and "`input_dir`" in outcome.message and "reachable from the network" in outcome.message


@pytest.mark.parametrize("changes, field", [({"upscaler_1": "nope"}, "upscaler_1_name"), ({"image": None}, "image")])
def test_bad_choices_are_shown_naming_the_field(tmp_path, changes, field):
    runtime = runtime_at(tmp_path)
    source = png(tmp_path / "in.png", 8)
    outcome = run_extras_tab(runtime, {**VALUES, "source": "Single Image", "image": str(source), **changes})
    assert outcome.message.startswith("**Not processed.**") and f"`{field}`" in outcome.message


def test_an_extras_run_waits_its_turn_behind_a_running_generation(tmp_path):
    import threading

    runtime = runtime_at(tmp_path)
    source = png(tmp_path / "in.png", 24)
    release, order = threading.Event(), []
    blocker = runtime.jobs.submit(lambda job: (release.wait(30), order.append("generation")))
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(done=run_extras_tab(
        runtime, {**VALUES, "source": "Single Image", "image": str(source)})))
    worker.start()
    for _ in range(600):  # until the extras job is queued behind the blocker
        if runtime.jobs.waiting() == 1:
            break
        threading.Event().wait(0.05)
    assert runtime.jobs.waiting() == 1 and "done" not in outcome
    release.set()
    worker.join(30)
    blocker.future.result(5)
    assert order == ["generation"] and [image.size for image in outcome["done"].images] == [(48, 48)]
    runtime.jobs.shutdown(timeout=10)
