"""Prompt adherence of the bundled model: ``python launch.py evaluate-demo``.

For every (shape colour, shape, background colour) it generates images through
the normal pipeline (default sampler, 20 steps, CFG 7) from "a {colour} {shape}
on a {background} background", then reads the picture back with simple image
statistics and reports accuracies, separately for the combinations held out
of training.

Reading a picture: the background colour is the median of the border pixels;
shape pixels are those far from it; the shape colour is their median; both are
snapped to the nearest palette colour. The shape is the largest connected region
of pixels nearer the shape colour. A star is the only concave shape: its area is
about half its convex hull's. The convex ones are told by how much of their
bounding box the hull fills: a square all of it, a circle pi/4 (0.785), an
upright triangle 1/2.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.demo.dataset import COLOURS, SHAPES, is_held_out, with_articles
from modules.demo.model import DEMO_FILE_NAME
from modules.demo.sample_grid import load_checkpoint_file, native_resolution
from modules.params import Txt2ImgParams
from modules.pipeline.generate import generate_txt2img
from modules.pipeline.grid import image_grid

PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
NAMES = list(COLOURS)
# Star if solidity (area / convex-hull area) is below this: a regular pentagram's is 0.47 and the convex
# shapes' about 1; on the dataset's own 64x64 pictures the medians are 0.52 (star) and >= 0.92 (the rest).
STAR_SOLIDITY = 0.72
# Boundaries of the convex hull's share of the bounding box between triangle (1/2), circle (pi/4) and
# square (1); midpoints of the medians on 64x64 pictures (0.58, 0.82, 1.0), where pixel steps widen the hull.
HULL_FILL_THRESHOLDS = ((0.70, "triangle"), (0.91, "circle"))
MIN_SHAPE_FRACTION = 0.01  # below this share of pixels there is no shape to read


@dataclass(frozen=True)
class Reading:
    colour: str | None
    background: str
    shape: str | None


def nearest_colour(rgb: np.ndarray) -> str:
    return NAMES[int(np.argmin(((PALETTE - rgb) ** 2).sum(axis=1)))]


def palette_separation(name: str) -> float:
    """Distance from a palette colour to the nearest other one (yellow and orange: 81)."""
    distances = np.sqrt(((PALETTE - PALETTE[NAMES.index(name)]) ** 2).sum(axis=1))
    return float(np.sort(distances)[1])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of ``mask``: a stray speck elsewhere must not stretch the shape's box."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    best_label, best_size = 0, 0
    for label, (row, col) in enumerate(zip(*np.nonzero(mask)), start=1):
        if labels[row, col]:
            continue
        labels[row, col], stack, size = label, [(row, col)], 0
        while stack:
            r, c = stack.pop()
            size += 1
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1] and mask[rr, cc] and not labels[rr, cc]:
                    labels[rr, cc] = label
                    stack.append((rr, cc))
        if size > best_size:
            best_label, best_size = label, size
    return labels == best_label


def convex_hull_area(mask: np.ndarray) -> float:
    """Area of the convex hull of the mask's pixel squares (Andrew's monotone chain over row-end corners)."""
    rows = np.unique(np.nonzero(mask)[0])
    points = set()
    for row in rows:
        cols = np.nonzero(mask[row])[0]
        points.update({(cols.min(), row), (cols.min(), row + 1), (cols.max() + 1, row), (cols.max() + 1, row + 1)})

    def half_hull(ordered: list) -> list:
        chain: list = []
        for p in ordered:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                                       - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    ordered = sorted((int(x), int(y)) for x, y in points)
    hull = half_hull(ordered) + half_hull(ordered[::-1])
    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1])))


def shape_from_mask(mask: np.ndarray) -> str:
    """Concave means star; otherwise the hull's share of the bounding box tells triangle, circle and square.
    The hull, not the mask, so that a square with slightly pinched sides still fills its box."""
    hull = convex_hull_area(mask)
    if mask.sum() / hull < STAR_SOLIDITY:
        return "star"
    rows, cols = np.nonzero(mask)
    hull_fill = hull / ((rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1))
    return next((name for limit, name in HULL_FILL_THRESHOLDS if hull_fill < limit), "square")


def read_picture(image: Image.Image) -> Reading:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    border = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3),
                             pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)])
    background_rgb = np.median(border, axis=0)
    background = nearest_colour(background_rgb)
    # A shape pixel is more than halfway from the background to the nearest other palette colour.
    far = np.sqrt(((pixels - background_rgb) ** 2).sum(axis=2)) > palette_separation(background) / 2
    if far.mean() < MIN_SHAPE_FRACTION:
        return Reading(None, background, None)
    shape_rgb = np.median(pixels[far], axis=0)
    # Each pixel belongs to whichever of the two colours it is nearer: the anti-aliased edge splits fairly.
    nearer_shape = ((pixels - shape_rgb) ** 2).sum(axis=2) < ((pixels - background_rgb) ** 2).sum(axis=2)
    return Reading(nearest_colour(shape_rgb), background, shape_from_mask(largest_component(nearer_shape)))


def evaluation_prompts() -> list[tuple[str, str, str, bool]]:
    """(colour, shape, background, held out) for every combination with colour != background."""
    return [(c, s, b, is_held_out(c, s, b)) for c in COLOURS for s in SHAPES for b in COLOURS if b != c]


def prompt_for(colour: str, shape: str, background: str) -> str:
    return with_articles(f"a {colour} {shape} on a {background} background")


def judge(reading: Reading, colour: str, shape: str, background: str) -> dict[str, bool]:
    """Which of the three attributes a picture's reading got right (the row ``accuracies`` counts)."""
    return {"colour_ok": reading.colour == colour, "background_ok": reading.background == background,
            "shape_ok": reading.shape == shape}


def accuracies(rows: list[dict]) -> dict[str, float]:
    count = max(1, len(rows))
    return {
        "images": len(rows),
        "shape_colour": sum(r["colour_ok"] for r in rows) / count,
        "background": sum(r["background_ok"] for r in rows) / count,
        "shape": sum(r["shape_ok"] for r in rows) / count,
    }


def evaluate(checkpoint: Path, device: torch.device, seeds: int, sampler: str, steps: int, cfg: float,
             grid_out: Path | None) -> dict:
    model = load_checkpoint_file(checkpoint, device)
    width, height = native_resolution(checkpoint)
    rows, images = [], []
    for colour, shape, background, held_out in evaluation_prompts():
        params = Txt2ImgParams(prompt=prompt_for(colour, shape, background), sampler_name=sampler, steps=steps,
                               cfg_scale=cfg, width=width, height=height, seed=1000, batch_size=seeds)
        for result in generate_txt2img(model, params.validate(), None):
            images.append(result.image)
            rows.append({"held_out": held_out, **judge(read_picture(result.image), colour, shape, background)})
    if grid_out is not None:
        grid_out.parent.mkdir(parents=True, exist_ok=True)
        image_grid(images[:: max(1, seeds)], rows=len(COLOURS)).save(grid_out)
    return {"all": accuracies(rows), "trained": accuracies([r for r in rows if not r["held_out"]]),
            "held_out": accuracies([r for r in rows if r["held_out"]])}


def main(argv: list[str], root: Path) -> int:
    parser = argparse.ArgumentParser(prog="launch.py evaluate-demo", description="score the demo model's prompt adherence")
    parser.add_argument("--ckpt", type=Path, default=root / "models" / "Stable-diffusion" / DEMO_FILE_NAME)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seeds", type=int, default=2, help="images per combination")
    parser.add_argument("--sampler", default="DPM++ 2M")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--grid", type=Path, default=root / "outputs" / "demo-evaluation.png")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = evaluate(args.ckpt, torch.device(args.device), args.seeds, args.sampler, args.steps, args.cfg, args.grid)
    result["seconds"] = round(time.monotonic() - started, 1)
    for part in ("all", "trained", "held_out"):
        r = result[part]
        print(f"{part:>9}: {r['images']:4d} images  shape colour {r['shape_colour']:6.1%}  "
              f"background {r['background']:6.1%}  shape {r['shape']:6.1%}")
    print(json.dumps(result))
    return 0
