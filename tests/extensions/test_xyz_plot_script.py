"""The X/Y/Z plot script's planning without a model: A1111's axis indices per tab, the cell
order around a checkpoint axis, seeds, and an interrupt that keeps the finished cells. The script
is the program's ``scripts/xyz_grid.py``, reached as extensions reach it: loaded by the extension
loader and found in ``scripts.scripts_data`` by its module name."""

from __future__ import annotations

import random
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from modules import processing, scripts, sd_models, shared
from modules.extensions import startup
from modules.extensions.scripts import ScriptArgsError
from modules.options import Options
from modules.pipeline.generate import GeneratedImage, SaveOptions


@pytest.fixture(scope="module")
def xyz():
    """The loaded ``xyz_grid.py`` module, with two checkpoints "a" and "b" known to ``sd_models``."""
    scripts.load_extension_scripts([startup.program_scripts()])
    data = next(d for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    for name in ("a", "b"):
        sd_models.CheckpointInfo(name, title=name).register()
    yield data.module
    sd_models.checkpoints_list.clear()
    sd_models.checkpoint_aliases.clear()
    scripts.scripts_data.clear()


def script_for(xyz, is_img2img=False):
    script = xyz.Script()
    script.is_img2img, script.is_txt2img = is_img2img, not is_img2img
    return script


def find_axis(xyz, name, choice, is_img2img):
    """The axis a type names, refused (ScriptArgsError) as a plot with it would be."""
    opt = xyz.find_axis_option(name, choice, xyz.tab_axis_options(is_img2img))
    if opt.confirm is not None and opt.label != "Checkpoint name":
        try:
            opt.confirm(None, [])
        except ScriptArgsError as error:
            raise ScriptArgsError(f"{name} {opt.label!r}: {error}") from None
    return opt


def base_p(**fields):
    return processing.StableDiffusionProcessingTxt2Img(**{"prompt": "a cat", "width": 64, "height": 64, "steps": 2,
                                                          "seed": 5, **fields})


def args(x_type, x_values, y_type="Nothing", y_values="", z_type="Nothing", z_values="", **flags):
    options = {"legend": True, "sub_images": False, "sub_grids": False, "keep": False, "vary": (False, False, False),
               "margin": 0, **flags}
    return [x_type, x_values, None, y_type, y_values, None, z_type, z_values, None, options["legend"],
            options["sub_images"], options["sub_grids"], options["keep"], *options["vary"], options["margin"], False]


@pytest.mark.parametrize("is_img2img, index, label", [
    (False, 4, "Steps"), (False, 9, "Sampler"), (False, 11, "Checkpoint name"), (False, 39, "Size"),
    (True, 9, "Sampler"), (True, 10, "Checkpoint name"), (True, 22, "Denoising")])
def test_axis_indices_count_as_a1111s_dropdown_of_that_tab(xyz, is_img2img, index, label) -> None:
    assert find_axis(xyz, "X type", index, is_img2img).label == label
    assert find_axis(xyz, "X type", label.upper(), is_img2img).label == label


def test_unavailable_and_unknown_axes_are_refused_with_the_reason(xyz) -> None:
    with pytest.raises(ScriptArgsError, match="Hires sampler.*not available"):
        find_axis(xyz, "Y type", "Hires sampler", False)
    with pytest.raises(ScriptArgsError, match="Hires steps"):
        find_axis(xyz, "Y type", "Hires steps", True)  # a txt2img axis on img2img
    with pytest.raises(ScriptArgsError, match="outside"):
        find_axis(xyz, "Z type", 99, False)


def plan(xyz, p, plot_args):
    """Each cell's ``p`` by (ix, iy, iz), in generation order."""
    _, cells, _ = script_for(xyz, hasattr(p, "init_images")).plan(p, *plot_args, rng=random.Random(0), check=False)
    return dict(cells)


def test_a_checkpoint_axis_is_the_outer_loop(xyz) -> None:
    cells = plan(xyz, base_p(), args("Checkpoint name", "a, b", "Steps", "1-3"))
    assert [(c.override_settings["sd_model_checkpoint"], c.steps) for c in cells.values()] == [
        ("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)]
    assert list(cells)[:3] == [(0, 0, 0), (0, 1, 0), (0, 2, 0)]


def test_seeds_fixed_once_kept_or_varied(xyz) -> None:
    drawn = plan(xyz, base_p(seed=-1), args("Steps", "1, 2"))
    assert len({c.seed for c in drawn.values()}) == 1 and -1 not in {c.seed for c in drawn.values()}
    kept = plan(xyz, base_p(seed=-1), args("Seed", "-1, 3", keep=True))
    assert [c.seed for c in kept.values()] == [-1, 3]
    varied = plan(xyz, base_p(), args("Steps", "1, 2", "CFG Scale", "4, 5", vary=(True, True, False)))
    assert [varied[(ix, iy, 0)].seed for iy in range(2) for ix in range(2)] == [5, 6, 7, 8]


def test_prompt_sr_and_size_axes_change_the_cells(xyz) -> None:
    cells = plan(xyz, base_p(), args("Prompt S/R", "cat, dog", "Size", "64x64, 128x64")).values()
    assert [(c.prompt, c.width) for c in cells] == [("a cat", 64), ("a dog", 64), ("a cat", 128), ("a dog", 128)]
    with pytest.raises(ScriptArgsError, match="'bird'"):
        plan(xyz, base_p(), args("Prompt S/R", "bird, dog"))


@dataclass
class FakeJob:
    future: Future
    interrupted: bool


class FakeRuntime:
    """Generates a flat colour per cell; the job numbered ``interrupt_at`` is interrupted."""

    def __init__(self, interrupt_at: int, root: Path):
        self.count, self.interrupt_at = 0, interrupt_at
        self.options = SimpleNamespace(current=Options())
        self.config = SimpleNamespace(styles_file=root / "styles.csv")
        self.jobs = SimpleNamespace(forget=lambda job: None)
        self.upscaler_library = SimpleNamespace(model_names=lambda: ())

    def submit(self, params, save=None):
        self.count += 1
        future: Future = Future()
        shade = 40 * self.count
        image = Image.new("RGB", (params.width, params.height), (shade, shade, shade))
        future.set_result([GeneratedImage(image, f"{params.prompt}\nSteps: {params.steps}, Seed: {params.seed}", params.seed, 0, None)])
        return FakeJob(future, self.count == self.interrupt_at)


def test_an_interrupt_stops_the_plot_and_keeps_the_finished_cells(xyz, tmp_path) -> None:
    runtime = FakeRuntime(interrupt_at=2, root=tmp_path)
    bound = shared.bound_runtime()
    shared.bind_runtime(runtime)
    shared.state.begin()
    p = base_p()
    p.save_options = SaveOptions(images=False, grids=False)
    try:
        results = script_for(xyz).run(p, *args("Steps", "1, 2, 3", legend=False, sub_images=True))
    finally:
        shared.state.begin()
        if bound is not None:
            shared.bind_runtime(bound)
        else:
            shared._bound.clear()
    assert runtime.count == 2
    grid = np.asarray(results.images[0])
    assert grid.shape == (64, 192, 3)
    assert grid[0, 0, 0] == 40 and grid[0, 64, 0] == 80 and grid[0, 128, 0] == 0  # the third cell stays black
    assert results.infotexts[0] == "a cat\nSteps: 1, Seed: 5, X Type: Steps, X Values: \"1, 2, 3\""
    assert len(results.images) == 3


def test_the_unipc_order_axis_overrides_the_setting_per_cell(xyz) -> None:
    assert find_axis(xyz, "X type", "UniPC Order", False).label == "UniPC Order"
    cells = plan(xyz, base_p(sampler_name="UniPC"), args("UniPC Order", "1-3")).values()
    assert [c.override_settings["uni_pc_order"] for c in cells] == [1, 2, 3]
