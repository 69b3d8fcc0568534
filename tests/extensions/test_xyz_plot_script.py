"""The X/Y/Z plot script's planning without a model: A1111's axis indices per tab, the cell
order around a checkpoint axis, seeds, and an interrupt that keeps the finished cells."""

from __future__ import annotations

import random
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from modules.extensions.scripts import ScriptArgsError
from modules.extensions.xyz_plot import XYZPlot, find_axis
from modules.params import Img2ImgParams, Txt2ImgParams
from modules.pipeline.generate import GeneratedImage, SaveOptions

BASE = Txt2ImgParams(prompt="a cat", width=64, height=64, steps=2, seed=5)


def args(x_type, x_values, y_type="Nothing", y_values="", z_type="Nothing", z_values="", **flags):
    options = {"legend": True, "sub_images": False, "sub_grids": False, "keep": False, "vary": (False, False, False),
               "margin": 0, **flags}
    return [x_type, x_values, None, y_type, y_values, None, z_type, z_values, None, options["legend"],
            options["sub_images"], options["sub_grids"], options["keep"], *options["vary"], options["margin"], False]


@pytest.mark.parametrize("is_img2img, index, label", [
    (False, 4, "Steps"), (False, 9, "Sampler"), (False, 11, "Checkpoint name"), (False, 39, "Size"),
    (True, 9, "Sampler"), (True, 10, "Checkpoint name"), (True, 22, "Denoising")])
def test_axis_indices_count_as_a1111s_dropdown_of_that_tab(is_img2img, index, label) -> None:
    assert find_axis("X type", index, is_img2img).label == label
    assert find_axis("X type", label.upper(), is_img2img).label == label


def test_unavailable_and_unknown_axes_are_refused_with_the_reason() -> None:
    with pytest.raises(ScriptArgsError, match="Hires sampler.*not available"):
        find_axis("Y type", "Hires sampler", False)
    with pytest.raises(ScriptArgsError, match="Hires steps"):
        find_axis("Y type", "Hires steps", True)  # a txt2img axis on img2img
    with pytest.raises(ScriptArgsError, match="outside"):
        find_axis("Z type", 99, False)


def plan(params, plot_args):
    script = XYZPlot()
    axes, options = script.read(None, plot_args, isinstance(params, Img2ImgParams), random.Random(0))
    return script.cells(params, axes, options)


def test_a_checkpoint_axis_is_the_outer_loop() -> None:
    cells = plan(BASE, args("Checkpoint name", "a, b", "Steps", "1-3"))
    assert [(c.checkpoint, c.steps) for c in cells.values()] == [
        ("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)]
    assert list(cells)[:3] == [(0, 0, 0), (0, 1, 0), (0, 2, 0)]


def test_seeds_fixed_once_kept_or_varied() -> None:
    drawn = plan(Txt2ImgParams(seed=-1, width=64, height=64), args("Steps", "1, 2"))
    assert len({c.seed for c in drawn.values()}) == 1 and -1 not in {c.seed for c in drawn.values()}
    kept = plan(Txt2ImgParams(seed=-1, width=64, height=64), args("Seed", "-1, 3", keep=True))
    assert [c.seed for c in kept.values()] == [-1, 3]
    varied = plan(BASE, args("Steps", "1, 2", "CFG Scale", "4, 5", vary=(True, True, False)))
    assert [varied[(ix, iy, 0)].seed for iy in range(2) for ix in range(2)] == [5, 6, 7, 8]


def test_prompt_sr_and_size_axes_change_the_cells() -> None:
    cells = plan(BASE, args("Prompt S/R", "cat, dog", "Size", "64x64, 128x64")).values()
    assert [(c.prompt, c.width) for c in cells] == [("a cat", 64), ("a dog", 64), ("a cat", 128), ("a dog", 128)]
    with pytest.raises(ScriptArgsError, match="'bird'"):
        plan(BASE, args("Prompt S/R", "bird, dog"))


@dataclass
class FakeJob:
    future: Future
    interrupted: bool


class FakeRuntime:
    """Generates a flat colour per cell; the job numbered ``interrupt_at`` is interrupted."""

    def __init__(self, interrupt_at: int):
        self.count, self.interrupt_at = 0, interrupt_at

    def submit(self, params, save=None):
        self.count += 1
        future: Future = Future()
        shade = 40 * self.count
        image = Image.new("RGB", (params.width, params.height), (shade, shade, shade))
        future.set_result([GeneratedImage(image, f"{params.prompt}\nSteps: {params.steps}, Seed: {params.seed}", params.seed, 0, None)])
        return FakeJob(future, self.count == self.interrupt_at)


def test_an_interrupt_stops_the_plot_and_keeps_the_finished_cells() -> None:
    runtime = FakeRuntime(interrupt_at=2)
    results = XYZPlot().run(runtime, BASE, args("Steps", "1, 2, 3", legend=False, sub_images=True),
                            save=SaveOptions(images=False, grids=False))
    assert runtime.count == 2
    grid = np.asarray(results[0].image)
    assert grid.shape == (64, 192, 3)
    assert grid[0, 0, 0] == 40 and grid[0, 64, 0] == 80 and grid[0, 128, 0] == 0  # the third cell stays black
    assert results[0].infotext == "a cat\nSteps: 1, Seed: 5, X Type: Steps, X Values: \"1, 2, 3\""
    assert len(results) == 3
