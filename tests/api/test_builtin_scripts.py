"""The built-in selectable scripts through the API (``script_name`` + A1111's positional
``script_args``), on the tiny model: X/Y/Z plot, prompts from file and both outpainting scripts."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from tests.api.conftest import FAST, LiveServer, decode_b64, field, gradient_image, infotexts, pixels, png_b64


def xyz_args(x_type, x_values, y_type="Nothing", y_values="", y_dropdown=None, *, legend=True, sub_images=True,
             keep_seeds=False, margin=0):
    return [x_type, x_values, None, y_type, y_values, y_dropdown, "Nothing", "", None,
            legend, sub_images, False, keep_seeds, False, False, False, margin, False]


@pytest.fixture()
def counted_jobs(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> list:
    """The generations the scripts queue (their parameters), in order."""
    submitted = []
    original = live.runtime.submit

    def counting(job, *args, **kwargs):
        submitted.append(job)
        return original(job, *args, **kwargs)

    monkeypatch.setattr(live.runtime, "submit", counting)
    return submitted


def test_xyz_steps_by_sampler_grid_legend_and_cells(live: LiveServer) -> None:
    body = live.post("txt2img", {**FAST, "prompt": "a lake", "seed": 21, "script_name": "x/y/z plot",
                                 "script_args": xyz_args(4, "1-2", 9, "", ["Euler", "Euler a"])}).json()
    images = [decode_b64(text) for text in body["images"]]
    texts = infotexts(body)
    assert len(images) == 5  # the grid, then the 2x2 cells
    grid = images[0]
    assert grid.width > 128 and grid.height > 128  # cells 2x64 plus the row and column legends
    band = pixels(grid)[: grid.height - 128, grid.width - 128:]
    assert (band < 200).any() and (band == 255).any()  # dark text on the white legend band
    assert "X Type: Steps" in texts[0] and "Y Type: Sampler" in texts[0] and 'X Values: 1-2' in texts[0]
    cells = texts[1:]
    assert [(field(t, "Steps"), field(t, "Sampler")) for t in cells] == [
        ("1", "Euler"), ("2", "Euler"), ("1", "Euler a"), ("2", "Euler a")]
    assert {field(t, "Seed") for t in cells} == {"21"}
    alone = live.post("txt2img", {**FAST, "prompt": "a lake", "seed": 21, "steps": 2, "sampler_name": "Euler a"}).json()
    assert np.array_equal(pixels(images[4]), pixels(decode_b64(alone["images"][0])))
    # the grid holds the cells: the bottom-right cell is the last one
    assert np.array_equal(pixels(grid)[-64:, -64:], pixels(images[4]))


def test_xyz_without_legend_is_cells_edge_to_edge_and_seeds_fixed(live: LiveServer) -> None:
    body = live.post("txt2img", {**FAST, "prompt": "a tree", "seed": -1, "script_name": "X/Y/Z plot",
                                 "script_args": xyz_args("CFG Scale", "3, 6, 9", legend=False)}).json()
    images = [decode_b64(text) for text in body["images"]]
    assert images[0].size == (3 * 64, 64)
    seeds = {field(t, "Seed") for t in infotexts(body)[1:]}
    assert len(seeds) == 1  # the -1 seed is drawn once for the whole plot
    assert [field(t, "CFG scale") for t in infotexts(body)[1:]] == ["3", "6", "9"]


def test_xyz_checkpoint_axis_loads_each_checkpoint_once(live: LiveServer, counted_jobs: list) -> None:
    body = live.post("txt2img", {**FAST, "prompt": "a hut", "seed": 3, "script_name": "X/Y/Z plot",
                                 "script_args": xyz_args("Steps", "1, 2", "Checkpoint name", "tiny-a, tiny-b",
                                                         sub_images=False)}).json()
    assert len(body["images"]) == 1
    order = [job.checkpoint for job in counted_jobs]
    assert len(order) == 4 and order[0] == order[1] and order[2] == order[3] and order[0] != order[2]


def test_xyz_bad_axis_is_a_422_naming_it(live: LiveServer) -> None:
    response = live.post("txt2img", {**FAST, "script_name": "X/Y/Z plot",
                                     "script_args": xyz_args("Face restore", "true")})
    assert response.status_code == 422 and "Face restore" in response.text
    response = live.post("txt2img", {**FAST, "script_name": "X/Y/Z plot", "script_args": xyz_args("Steps", "1, two")})
    assert response.status_code == 422 and "two" in response.text


def test_prompts_from_file_lines_with_options(live: LiveServer) -> None:
    text = "a red fox\n--prompt \"a blue bird\" --steps 1 --seed 77\n--prompt a cat --cfg_scale 3.5 --sampler_name \"Euler a\""
    body = live.post("txt2img", {**FAST, "prompt": "", "seed": 5, "script_name": "Prompts from file or textbox",
                                 "script_args": [False, False, "start", text]}).json()
    texts = infotexts(body)
    assert len(texts) == 3
    assert texts[0].startswith("a red fox\n") and field(texts[0], "Seed") == "5"
    assert texts[1].startswith("a blue bird\n") and field(texts[1], "Steps") == "1" and field(texts[1], "Seed") == "77"
    assert texts[2].startswith("a cat\n") and field(texts[2], "CFG scale") == "3.5" and field(texts[2], "Sampler") == "Euler a"


def test_prompts_from_file_iterates_seeds_and_names_a_bad_line(live: LiveServer) -> None:
    body = live.post("txt2img", {**FAST, "seed": 40, "script_name": "Prompts from file or textbox",
                                 "script_args": [True, False, "start", "one\ntwo"]}).json()
    assert [field(t, "Seed") for t in infotexts(body)] == ["40", "41"]
    response = live.post("txt2img", {**FAST, "script_name": "Prompts from file or textbox",
                                     "script_args": [False, False, "start", "fine\n--prompt x --colour red"]})
    assert response.status_code == 422 and "line 2" in response.text and "--colour" in response.text


def test_outpainting_mk2_grows_by_the_pixels_asked(live: LiveServer) -> None:
    body = live.post("img2img", {**FAST, "init_images": [png_b64(gradient_image(64))], "seed": 2,
                                 "script_name": "Outpainting mk2",
                                 "script_args": [None, 16, 4, ["left", "down"], 1.0, 0.05]}).json()
    assert decode_b64(body["images"][0]).size == (80, 80)


def test_poor_mans_outpainting_keeps_the_original_and_fills_the_side(live: LiveServer) -> None:
    source = gradient_image(64)
    body = live.post("img2img", {**FAST, "init_images": [png_b64(source)], "seed": 2, "denoising_strength": 1.0,
                                 "script_name": "Poor man's outpainting", "script_args": [16, 4, "fill", ["right"]]}).json()
    result = pixels(decode_b64(body["images"][0]))
    assert result.shape[:2] == (64, 128)  # 64 + 16 rounded up to a multiple of 64
    assert np.array_equal(result[:, :32], pixels(source)[:, :32])  # the tile inside the original is kept
    assert result[:, 96:].any()  # the new side is drawn, not left black


def test_extras_run_as_a_job_of_the_queue(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    queued = []
    original = live.runtime.jobs.submit

    def recording(work, *args, **kwargs):
        job = original(work, *args, **kwargs)
        queued.append((job, kwargs))
        return job

    monkeypatch.setattr(live.runtime.jobs, "submit", recording)
    body = live.post("extra-single-image", {"image": png_b64(gradient_image(32)), "upscaling_resize": 2,
                                            "upscaler_1": "Lanczos"}).json()
    assert decode_b64(body["image"]).size == (64, 64)
    assert len(queued) == 1 and queued[0][0].future.done()
    assert queued[0][1]["max_waiting"] == live.runtime.options.current.queue_max_waiting


def test_saved_plot_writes_its_grid_once_and_outpainting_its_grown_image(live: LiveServer) -> None:
    outputs = live.runtime.config.outputs_dir
    grids_before = set((outputs / "txt2img-grids").rglob("*.png"))
    body = live.post("txt2img", {**FAST, "prompt": "a kite", "seed": 6, "save_images": True, "script_name": "X/Y/Z plot",
                                 "script_args": xyz_args("Steps", "1, 2", sub_images=False)}).json()
    new_grids = set((outputs / "txt2img-grids").rglob("*.png")) - grids_before
    assert len(body["images"]) == 1 and len(new_grids) == 1
    with Image.open(new_grids.pop()) as saved:
        assert saved.size == decode_b64(body["images"][0]).size and "X Type: Steps" in saved.info["parameters"]
    samples_before = set((outputs / "img2img-images").rglob("*.png"))
    live.post("img2img", {**FAST, "init_images": [png_b64(gradient_image(64))], "seed": 2, "save_images": True,
                          "script_name": "Outpainting mk2", "script_args": [None, 16, 4, "up", 1.0, 0.05]}).json()
    new_samples = set((outputs / "img2img-images").rglob("*.png")) - samples_before
    assert [Image.open(path).size for path in new_samples] == [(64, 80)]


def test_xyz_on_img2img_by_a1111_index(live: LiveServer) -> None:
    # img2img's axis list has no hires axes: index 22 is Denoising there
    body = live.post("img2img", {**FAST, "init_images": [png_b64(gradient_image(64))], "seed": 4,
                                 "script_name": "X/Y/Z plot", "script_args": xyz_args(22, "0.25, 0.5")}).json()
    texts = infotexts(body)
    assert [field(t, "Denoising strength") for t in texts[1:]] == ["0.25", "0.5"]
    assert "X Type: Denoising" in texts[0]


def test_xyz_unknown_checkpoint_is_a_422_naming_the_axis(live: LiveServer) -> None:
    response = live.post("txt2img", {**FAST, "script_name": "X/Y/Z plot",
                                     "script_args": xyz_args("Checkpoint name", "tiny-a, no-such-model")})
    assert response.status_code == 422 and "X values" in response.text and "no-such-model" in response.text


@pytest.mark.parametrize("script_name, script_args", [
    ("X/Y/Z plot", xyz_args("Steps", "1, 0")),
    ("Prompts from file or textbox", [False, False, "start", "fine\n--prompt later --steps 0"]),
])
def test_a_bad_later_cell_or_line_is_refused_before_anything_is_generated(live: LiveServer, counted_jobs: list,
                                                                        script_name: str, script_args: list) -> None:
    response = live.post("txt2img", {**FAST, "script_name": script_name, "script_args": script_args})
    assert response.status_code == 422 and "steps" in response.text
    assert counted_jobs == []  # the first cell (line) was not generated either
