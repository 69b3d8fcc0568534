"""Grids of a batch's images (A1111 and CompVis save one per run)."""

from __future__ import annotations

import math
from typing import Sequence

from PIL import Image


def grid_rows(count: int, rows: int = 0) -> int:
    """``rows`` when given, else a near-square layout (A1111's automatic rows)."""
    if rows > 0:
        return min(rows, count)
    return max(1, round(math.sqrt(count)))


def image_grid(images: Sequence[Image.Image], rows: int = 0) -> Image.Image:
    if not images:
        raise ValueError("a grid needs at least one image")
    rows = grid_rows(len(images), rows)
    columns = math.ceil(len(images) / rows)
    width, height = images[0].size
    grid = Image.new("RGB", (columns * width, rows * height), "black")
    for index, image in enumerate(images):
        grid.paste(image, ((index % columns) * width, (index // columns) * height))
    return grid
