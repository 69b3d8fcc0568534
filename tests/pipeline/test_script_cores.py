"""The pure parts of A1111's built-in scripts, checked against A1111's behaviour as its source
reads (scripts/xyz_grid.py, prompts_from_file.py, sd_upscale.py, loopback.py,
outpainting_mk_2.py, poor_mans_outpainting.py, modules/images.py). Expected values are worked
out by hand from those rules."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from PIL import Image

from modules.pipeline.grid_legend import (
    FONT_PATH, GridAnnotation, draw_grid_annotations, image_grid, legend_font_size, xyz_grids,
)
from modules.pipeline.loopback import DenoisingCurve, loopback_seeds, loopback_strengths
from modules.pipeline.outpaint import (
    expansion, matched_noise, mk2_paste_back, mk2_step, poor_mans_canvas, tile_needs_redraw,
)
from modules.pipeline.prompt_lines import PromptLineError, SeedPlan, line_seeds, parse_prompt_lines
from modules.pipeline.tile_grid import batches, combine_grid, split_grid
from modules.pipeline.xyz_values import (
    AxisKind, AxisValueError, GridBudget, fix_seeds, format_label, loop_order, parse_axis_values,
    reorder_prompt, replace_in_prompts, split_values,
)

# ----- X/Y/Z axis values -----


@pytest.mark.parametrize("text, kind, expected", [
    ("1-5", AxisKind.INT, [1, 2, 3, 4, 5]),
    ("1-10 (+2)", AxisKind.INT, [1, 3, 5, 7, 9]),
    ("10-1 (-3)", AxisKind.INT, [10, 7, 4]),  # A1111 stops before end+1: 1 is not reached
    ("1-10 [5]", AxisKind.INT, [1, 3, 5, 7, 10]),  # linspace 1, 3.25, 5.5, 7.75, 10 truncated
    ("-5 - -3, 8", AxisKind.INT, [-5, -4, -3, 8]),
    ("20, 1-2, 30", AxisKind.INT, [20, 1, 2, 30]),
    ("0.5-1.5 (+0.5)", AxisKind.FLOAT, [0.5, 1.0, 1.5]),
    ("1-2 [3]", AxisKind.FLOAT, [1.0, 1.5, 2.0]),
    ("7, 7.5 ,12", AxisKind.FLOAT, [7.0, 7.5, 12.0]),
    ('Euler a, "DPM++ 2M, Karras", LMS', AxisKind.TEXT, ["Euler a", "DPM++ 2M, Karras", "LMS"]),
    ("a, b\nc", AxisKind.TEXT, ["a", "b", "c"]),
    ("cat, dog, fish", AxisKind.PERMUTATIONS, [("cat", "dog", "fish"), ("cat", "fish", "dog"), ("dog", "cat", "fish"),
                                              ("dog", "fish", "cat"), ("fish", "cat", "dog"), ("fish", "dog", "cat")]),
])
def test_axis_value_syntax(text, kind, expected):
    assert parse_axis_values(text, kind) == expected


def test_a_value_that_does_not_convert_is_named():
    with pytest.raises(AxisValueError, match="'ten' is not a whole number"):
        parse_axis_values("1, ten", AxisKind.INT)
    with pytest.raises(AxisValueError, match="'x' is not a number"):
        parse_axis_values("x", AxisKind.FLOAT)


def test_csv_quotes_keep_commas_inside_a_value():
    assert split_values('"a, b" , c') == ["a, b", "c"]


def test_random_seeds_on_a_seed_axis_are_drawn_before_generating():
    fixed = fix_seeds([-1, 5, -1], random.Random(1))
    assert fixed[1] == 5 and all(0 <= s < 4294967294 for s in fixed) and fixed[0] != fixed[2]


def test_prompt_search_and_replace():
    assert replace_in_prompts("a red cat", "red blur", "red", "blue") == ("a blue cat", "blue blur")
    with pytest.raises(AxisValueError, match="did not find 'green'"):
        replace_in_prompts("a red cat", "", "green", "blue")


def test_prompt_order_moves_words_between_their_slots():
    assert reorder_prompt("a cat, red, big, photo", ("big", "red")) == "a cat, big, red, photo"
    assert reorder_prompt("one two three", ("three", "one", "two")) == "three one two"


def test_the_costly_axis_is_looped_outermost():
    assert loop_order(0, 1.0, 0) == ("y", "z")  # checkpoint on Y: load each checkpoint once
    assert loop_order(1.0, 0, 0.7) == ("x", "z")
    assert loop_order(0, 0, 0) == ("z", "y")  # A1111's default order


def test_labels_as_a1111_writes_them():
    assert format_label("CFG Scale", 7.000000001) == "CFG Scale: 7.0"
    assert format_label("Sampler", "Euler a", with_label=False) == "Euler a"
    assert format_label("Prompt order", ("b", "a")) == "b, a"


def test_grid_size_limit():
    GridBudget(200).check(4, 512, 512)
    with pytest.raises(AxisValueError, match="would be 210 megapixels"):
        GridBudget(200).check(800, 512, 512)


# ----- grid legends -----


def _cells(n_x, n_y, size=64):
    return {(ix, iy, 0): Image.new("RGB", (size, size), (30 * ix, 60 * iy, 200)) for ix in range(n_x) for iy in range(n_y)}


def test_legend_bands_hold_drawn_text_and_the_cells_keep_their_pixels():
    grids = xyz_grids(_cells(3, 2), ["Sampler: Euler", "Sampler: Euler a", "Sampler: DPM++ 2M"],
                      ["CFG Scale: 3", "CFG Scale: 7"], [""], margin=0)
    sub = np.asarray(grids.sub_grids[0])
    pad_top, pad_left = sub.shape[0] - 128, sub.shape[1] - 192
    assert pad_top > 0 and pad_left > 0
    top_band, left_band = sub[:pad_top, pad_left:], sub[pad_top:, :pad_left]
    for band in (top_band, left_band):
        dark = (band.sum(axis=2) < 200).sum()
        assert dark > 50  # text pixels, on a white background
    assert (sub[pad_top:, pad_left:][:64, 64:128] == (30, 0, 200)).all()  # cell (1, 0) untouched


def test_text_is_readable_on_64px_cells():
    assert legend_font_size(64, 64) >= 12  # A1111 would use (64 + 64) // 25 = 5 px
    grid = draw_grid_annotations(image_grid(list(_cells(1, 1).values()), 1), 64, 64, [[GridAnnotation("Steps: 20")]],
                                 [[GridAnnotation("")]])
    band = np.asarray(grid)[: grid.height - 64]
    rows_with_ink = np.where((band.sum(axis=2) < 384).any(axis=1))[0]
    assert rows_with_ink.max() - rows_with_ink.min() + 1 >= 9  # glyphs at least 9 px tall


def test_row_labels_stay_inside_the_left_band():
    grid = draw_grid_annotations(image_grid(list(_cells(1, 2).values()), 2), 64, 64, [[GridAnnotation("x")]],
                                 [[GridAnnotation("Checkpoint: tiny-model-with-a-long-name")], [GridAnnotation("b")]])
    array = np.asarray(grid)
    pad_left = grid.width - 64
    top = grid.height - 128
    assert (array[top:, pad_left:] != 255).all(axis=2).any()  # the cells
    ink_columns = np.where((array[top:, :pad_left].sum(axis=2) < 200).any(axis=0))[0]
    assert ink_columns.max() < pad_left


def test_margins_separate_cells_and_z_grids_get_titles():
    grids = xyz_grids(_cells(2, 2) | {(ix, iy, 1): Image.new("RGB", (64, 64), "red") for ix in range(2) for iy in range(2)},
                      ["a", "b"], ["c", "d"], ["Z: 1", "Z: 2"], margin=10)
    sub = grids.sub_grids[0]
    pad_left = sub.width - 2 * 64 - 10
    pad_top = sub.height - 2 * 64 - 10
    gap = np.asarray(sub)[pad_top:, pad_left + 64: pad_left + 74]
    assert (gap == 255).all()  # the margin is background
    assert grids.main.width == 2 * sub.width and grids.main.height > sub.height


def test_missing_cells_stay_black_so_finished_ones_keep_their_place():
    cells = _cells(2, 2)
    del cells[(1, 1, 0)]
    grid = np.asarray(xyz_grids(cells, ["a", "b"], ["c", "d"], [""], draw_legend=False).sub_grids[0])
    assert (grid[64:, 64:] == 0).all() and (grid[:64, 64:] == (30, 0, 200)).all()


def test_the_font_is_bundled_with_its_licence():
    assert FONT_PATH.is_file() and (FONT_PATH.parent / "LICENSE-DejaVuSans.txt").is_file()


# ----- prompts from file -----


def test_prompt_lines_with_a1111_options():
    jobs = parse_prompt_lines('a cat\n\n  --prompt "a dog" running --steps 5 --negative_prompt ugly, bad --cfg_scale 7.5\n'
                              "--width 64 --height 96 --seed 3 --sampler_name euler_a --tiling true",
                              resolve_sampler=lambda name: {"euler_a": "Euler a"}.get(name))
    assert jobs == [{"prompt": "a cat"},
                    {"prompt": "a dog running", "steps": 5, "negative_prompt": "ugly, bad", "cfg_scale": 7.5},
                    {"width": 64, "height": 96, "seed": 3, "sampler_name": "Euler a", "tiling": True}]


@pytest.mark.parametrize("text, line, reason", [
    ("ok\n--foo 1", 2, "unknown option --foo"),
    ("--steps", 1, "missing value for --steps"),
    ("--steps many", 1, "--steps must be a whole number, got 'many'"),
    ("a\nb\n--prompt 'open", 3, "No closing quotation"),
    ("--outpath_samples /etc", 1, "output folders are chosen by the operator"),
    ("--sampler_name nope", 1, "unknown sampler 'nope'"),
    ("--restore_faces true", 1, "no face restorer"),
])
def test_unreadable_lines_are_errors_naming_the_line(text, line, reason):
    with pytest.raises(PromptLineError) as caught:
        parse_prompt_lines(text, resolve_sampler=lambda name: None)
    assert caught.value.number == line and reason in str(caught.value)


def test_line_seeds():
    jobs = [{}, {"seed": 99}, {}]
    assert line_seeds(jobs, 10, 2, 3, SeedPlan(iterate_every_line=True), random.Random(0)) == [10, 99, 22]
    same = line_seeds(jobs, -1, 1, 1, SeedPlan(same_seed_for_all=True), random.Random(0))
    assert same[0] == same[2] != -1 and same[1] == 99
    assert line_seeds(jobs, -1, 1, 1, SeedPlan(), random.Random(0)) == [-1, 99, -1]  # each line random


# ----- SD upscale tiles -----


def test_tiles_are_placed_as_a1111_places_them():
    grid = split_grid(Image.new("RGB", (1024, 768)), 512, 512, 64)
    assert [[(t.x, t.y) for t in row] for row in grid.rows] == [[(0, 0), (256, 0), (512, 0)], [(0, 256), (256, 256), (512, 256)]]
    assert all(t.image.size == (512, 512) for t in grid.tiles)


def test_unchanged_tiles_recombine_to_the_same_image():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    grid = split_grid(image, 128, 96, 32)
    assert np.array_equal(np.asarray(combine_grid(grid)), np.asarray(image))


def test_seams_are_cross_faded_across_the_overlap():
    grid = split_grid(Image.new("RGB", (192, 80)), 128, 80, 64)
    assert [t.x for t in grid.tiles] == [0, 64]
    combined = np.asarray(combine_grid(grid.with_images([Image.new("RGB", (128, 80), (0, 0, 0)),
                                                        Image.new("RGB", (128, 80), (200, 200, 200))])))
    row = combined[10, :, 0].astype(int)
    assert (row[:64] == 0).all() and (row[128:] == 200).all()
    overlap = row[64:128]
    assert overlap[0] < 10 and overlap[-1] > 190 and (np.diff(overlap) >= 0).all()  # a ramp, not a step


def test_tile_batches():
    assert [list(b) for b in batches(5, 2)] == [[0, 1], [2, 3], [4]]


# ----- loopback -----


def test_loopback_strength_curves():
    assert loopback_strengths(5, 0.5, 1.0, DenoisingCurve.LINEAR) == [0.5, 0.625, 0.75, 0.875, 1.0]
    aggressive = loopback_strengths(3, 0.2, 0.6, DenoisingCurve.AGGRESSIVE)
    assert aggressive == pytest.approx([0.2, 0.2 + 0.4 * math.sin(math.pi / 4), 0.6])
    lazy = loopback_strengths(3, 0.2, 0.6, DenoisingCurve.LAZY)
    assert lazy == pytest.approx([0.2, 0.2 + 0.4 * (1 - math.cos(math.pi / 4)), 0.6])
    assert aggressive[1] > 0.4 > lazy[1]
    assert loopback_strengths(1, 0.3, 0.9, DenoisingCurve.LINEAR) == [0.3]
    assert loopback_seeds(7, 3) == [7, 8, 9]


# ----- outpainting -----


def test_expansion_rounds_the_canvas_to_64_and_splits_the_rounding():
    assert expansion(512, 512, 128, ["left", "right", "up", "down"]).__dict__ == dict(
        left=128, right=128, up=128, down=128, width=768, height=768)
    e = expansion(500, 300, 128, ["left", "right"])
    assert (e.width, e.height, e.left, e.right, e.up, e.down) == (768, 320, 134, 134, 0, 0)
    with pytest.raises(ValueError, match="unknown outpainting direction sideways"):
        expansion(64, 64, 8, ["sideways"])


def test_poor_mans_canvas_and_masks():
    init = Image.new("RGB", (64, 64), (250, 10, 10))
    c = poor_mans_canvas(init, 32, 4, ["left"])
    assert c.expansion.left == 64 and c.image.size == (128, 64)
    assert c.image.getpixel((64, 0)) == (250, 10, 10) and c.image.getpixel((63, 0)) == (0, 0, 0)
    mask = np.asarray(c.mask)
    assert (mask[:, :64 + 8] == 255).all() and (mask[:, 64 + 9:] == 0).all()  # inset by 2 x blur on the grown side
    assert tile_needs_redraw(0, 0, 64, 64, c.expansion) and not tile_needs_redraw(64, 0, 64, 64, c.expansion)


def test_matched_noise_keeps_the_visible_part_and_takes_its_colours():
    rng = np.random.default_rng(3)
    image = np.zeros((64, 96, 3))
    image[:, :64] = np.clip(np.array([0.8, 0.3, 0.1]) + 0.1 * rng.standard_normal((64, 64, 3)), 0, 1)
    mask = np.zeros((64, 96))
    mask[:, 64:] = 1.0
    out = matched_noise(image, mask, noise_q=1.0, color_variation=0.05)
    assert np.array_equal(out[:, :64], image[:, :64])
    filled, visible = out[:, 64:].reshape(-1, 3), image[:, :64].reshape(-1, 3)
    assert np.abs(filled.mean(0) - visible.mean(0)).max() < 0.02  # histogram-matched per channel
    assert np.abs(np.percentile(filled, 90, axis=0) - np.percentile(visible, 90, axis=0)).max() < 0.02
    assert filled.std(0).min() > 0.05  # texture, not a flat fill
    assert np.array_equal(out, matched_noise(image, mask))  # the noise generator is seeded


def test_mk2_grows_one_side_by_the_pixels_asked():
    init = Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8))
    step = mk2_step(init, "right", 32, 8, 1.0, 0.05, (64, 64))
    assert step.canvas.size == (128, 64) and step.crop_box == (64, 0, 128, 64) and step.init.size == (64, 64)
    grown = mk2_paste_back(step, Image.new("RGB", (64, 64), (0, 255, 0)))
    assert grown.size == (96, 64)
    assert np.array_equal(np.asarray(grown)[:, :64], np.asarray(init))
    assert (np.asarray(grown)[:, 64:] == (0, 255, 0)).all()
    up = mk2_step(init, "up", 32, 8, 1.0, 0.05, (64, 64))
    assert mk2_paste_back(up, up.init).size == (64, 96)
