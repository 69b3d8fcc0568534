"""Overlapping tiles of an image and their recombination with blended seams (A1111's
``images.split_grid`` / ``combine_grid``), for SD upscale and poor man's outpainting: the image
is cut into tiles of the generation size that overlap by ``overlap`` pixels, each tile is
redrawn, and the tiles are put back with a linear cross-fade across each overlap (left to right
within a row, then top to bottom between rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    image: Image.Image


@dataclass(frozen=True)
class TileGrid:
    tile_width: int
    tile_height: int
    image_width: int
    image_height: int
    overlap: int
    rows: tuple[tuple[Tile, ...], ...]

    @property
    def tiles(self) -> list[Tile]:
        return [tile for row in self.rows for tile in row]

    def with_images(self, images: Sequence[Image.Image]) -> "TileGrid":
        """The same layout with the tiles' images replaced, in row-major order."""
        if len(images) != len(self.tiles):
            raise ValueError(f"{len(images)} images for {len(self.tiles)} tiles")
        it = iter(images)
        return replace(self, rows=tuple(tuple(replace(t, image=next(it)) for t in row) for row in self.rows))


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """A1111's positions: enough tiles, spread evenly, the last flush with the far edge."""
    count = math.ceil((length - overlap) / (tile - overlap)) if length > tile else 1
    step = (length - tile) / (count - 1) if count > 1 else 0
    return [min(int(i * step), max(length - tile, 0)) for i in range(count)]


def split_grid(image: Image.Image, tile_width: int = 512, tile_height: int = 512, overlap: int = 64) -> TileGrid:
    if not 0 <= overlap < min(tile_width, tile_height):
        raise ValueError(f"the overlap ({overlap}) must be smaller than the tile ({tile_width}x{tile_height})")
    rows = tuple(
        tuple(Tile(x, y, image.crop((x, y, x + tile_width, y + tile_height)))
              for x in _starts(image.width, tile_width, overlap))
        for y in _starts(image.height, tile_height, overlap))
    return TileGrid(tile_width, tile_height, image.width, image.height, overlap, rows)


def _ramp(length: int, across: int, horizontal: bool) -> Image.Image:
    """An "L" mask rising from 0 to 255 * (n-1)/n over ``length`` pixels (A1111's ramp)."""
    values = (np.arange(length, dtype=np.float32) * 255 / length).astype(np.uint8)
    array = np.repeat(values[None, :], across, 0) if horizontal else np.repeat(values[:, None], across, 1)
    return Image.fromarray(array, "L")


def combine_grid(grid: TileGrid) -> Image.Image:
    overlap = grid.overlap
    combined = Image.new("RGB", (grid.image_width, grid.image_height))
    for row in grid.rows:
        y, height = row[0].y, grid.tile_height
        line = Image.new("RGB", (grid.image_width, height))
        for tile in row:
            if tile.x == 0 or overlap == 0:
                line.paste(tile.image, (tile.x, 0))
                continue
            line.paste(tile.image.crop((0, 0, overlap, height)), (tile.x, 0), mask=_ramp(overlap, height, True))
            line.paste(tile.image.crop((overlap, 0, grid.tile_width, height)), (tile.x + overlap, 0))
        if y == 0 or overlap == 0:
            combined.paste(line, (0, y))
            continue
        combined.paste(line.crop((0, 0, line.width, overlap)), (0, y), mask=_ramp(overlap, line.width, False))
        combined.paste(line.crop((0, overlap, line.width, height)), (0, y + overlap))
    return combined


def batches(count: int, batch_size: int) -> list[range]:
    """Tile indices per generation batch (SD upscale redraws ``batch_size`` tiles at a time)."""
    return [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
