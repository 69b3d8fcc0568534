"""Prompt adherence of the bundled model: ``python launch.py evaluate-demo``.

For every (shape colour, shape, background colour) it generates images through
the normal pipeline (default sampler, 20 steps, CFG 7) from "a {colour} {shape}
on a {background} background", then reads the picture back with simple image
statistics and reports accuracies, separately for the combinations held out
of training.

Reading a picture: the background colour is the median of the border pixels;
shape pixels are those far from it; the shape colour is their median; both are
snapped to the nearest palette colour. The shape is told by how much of its
bounding box it fills: a square fills all of it, a circle pi/4 (0.785), an
upright triangle 1/2 and a five-pointed star about 0.33.
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
# Fill-ratio boundaries between star (0.33), triangle (0.5), circle (0.785) and square (1.0).
FILL_THRESHOLDS = ((0.41, "star"), (0.64, "triangle"), (0.89, "circle"))
MIN_SHAPE_FRACTION = 0.01  # below this share of pixels there is no shape to read


@dataclass(frozen=True)
class Reading:
    colour: str | None
    background: str
    shape: str | None


def nearest_colour(rgb: np.ndarray) -> str:
    return NAMES[int(np.argmin(((PALETTE - rgb) ** 2).sum(axis=1)))]


def shape_from_mask(mask: np.ndarray) -> str:
    rows, cols = np.nonzero(mask)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    fill = mask.sum() / box
    return next((name for limit, name in FILL_THRESHOLDS if fill < limit), "square")


def read_picture(image: Image.Image) -> Reading:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    border = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3),
                             pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)])
    background_rgb = np.median(border, axis=0)
    far = np.sqrt(((pixels - background_rgb) ** 2).sum(axis=2)) > 80
    if far.mean() < MIN_SHAPE_FRACTION:
        return Reading(None, nearest_colour(background_rgb), None)
    shape_rgb = np.median(pixels[far], axis=0)
    # Each pixel belongs to whichever of the two colours it is nearer: the anti-aliased edge splits fairly.
    nearer_shape = ((pixels - shape_rgb) ** 2).sum(axis=2) < ((pixels - background_rgb) ** 2).sum(axis=2)
    return Reading(nearest_colour(shape_rgb), nearest_colour(background_rgb), shape_from_mask(nearer_shape))


def evaluation_prompts() -> list[tuple[str, str, str, bool]]:
    """(colour, shape, background, held out) for every combination with colour != background."""
    return [(c, s, b, is_held_out(c, s, b)) for c in COLOURS for s in SHAPES for b in COLOURS if b != c]


def prompt_for(colour: str, shape: str, background: str) -> str:
    return with_articles(f"a {colour} {shape} on a {background} background")


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
            reading = read_picture(result.image)
            images.append(result.image)
            rows.append({"held_out": held_out, "colour_ok": reading.colour == colour,
                         "background_ok": reading.background == background, "shape_ok": reading.shape == shape})
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
