"""Running an upscaler net over an image tile by tile, so a 4x model on a large image fits memory.

Tiles overlap by ``overlap`` input pixels; in the overlap the outputs are blended (A1111's
``images.combine_grid`` blends linearly across the whole overlap in pixel space; we give the
outer quarter of each tile's side no weight and ramp over the middle half, so a tile's border,
where its net saw padding instead of image, does not reach the result: tiled and whole agree
exactly when the overlap is at least four times the net's receptive radius). Positions follow A1111's ``split_grid``: as many tiles as needed,
spread evenly, the last one flush with the far edge. Tile size 0 runs the image whole.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

Net = Callable[[Tensor], Tensor]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with tiles of ``tile`` overlapping by at least ``overlap``."""
    if tile <= 0 or length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [min(int(i * step), length - tile) for i in range(count)]


def _rising(length: int) -> Tensor:
    """Weights across an overlap of ``length`` output pixels: 0 over the outer quarter (the tile's
    border, where its net saw zero padding instead of the image), a linear ramp over the middle
    half, 1 over the inner quarter. The other tile's falling ramp is the mirror image, so the two
    weights sum to 1 at every pixel."""
    position = torch.arange(length, dtype=torch.float32) + 0.5
    return ((position - length / 4) / (length / 2)).clamp(0, 1)


def _ramp(size: int, before: int, after: int) -> Tensor:
    """Weights along one tile axis, rising over the ``before`` pixels shared with the previous tile
    and falling over the ``after`` pixels shared with the next."""
    weight = torch.ones(size)
    if before:
        weight[:before] = _rising(before)
    if after:
        weight[size - after:] = torch.minimum(weight[size - after:], _rising(after).flip(0))
    return weight


def _overlaps(starts: list[int], tile: int, scale: int) -> list[tuple[int, int]]:
    """Per tile: how many output pixels it shares with the previous and the next tile."""
    shared = []
    for i, start in enumerate(starts):
        before = (starts[i - 1] + tile - start) * scale if i > 0 else 0
        after = (start + tile - starts[i + 1]) * scale if i + 1 < len(starts) else 0
        shared.append((max(before, 0), max(after, 0)))
    return shared


@torch.no_grad()
def upscale_tensor_tiled(net: Net, image: Tensor, scale: int, tile: int, overlap: int,
                         should_stop: Callable[[], bool] = lambda: False) -> Tensor:
    """``image`` [1, C, H, W] in 0..1 -> [1, C', H*scale, W*scale]."""
    _, _, height, width = image.shape
    tile_h, tile_w = (min(tile, height), min(tile, width)) if tile > 0 else (height, width)
    ys, xs = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
    total: Tensor | None = None
    weights = torch.zeros(1, 1, height * scale, width * scale, device=image.device)
    for y, (y_before, y_after) in zip(ys, _overlaps(ys, tile_h, scale)):
        for x, (x_before, x_after) in zip(xs, _overlaps(xs, tile_w, scale)):
            if should_stop():
                raise InterruptedError("upscaling stopped")
            out = net(image[:, :, y:y + tile_h, x:x + tile_w]).float()
            if total is None:
                total = torch.zeros(1, out.shape[1], height * scale, width * scale, device=image.device)
            ramp = (_ramp(tile_h * scale, y_before, y_after)[:, None] * _ramp(tile_w * scale, x_before, x_after)[None])
            ramp = ramp.to(out.device)
            region = (slice(None), slice(None), slice(y * scale, (y + tile_h) * scale), slice(x * scale, (x + tile_w) * scale))
            total[region] += out * ramp
            weights[region] += ramp
    return total / weights


def image_to_tensor(image: Image.Image, device: torch.device | str, dtype: torch.dtype) -> Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].to(device=device, dtype=dtype)


def tensor_to_image(tensor: Tensor) -> Image.Image:
    array = tensor[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.round(array * 255.0).astype(np.uint8), "RGB")


def upscale_with_net(net: Net, image: Image.Image, scale: int, tile: int, overlap: int,
                     device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                     should_stop: Callable[[], bool] = lambda: False) -> Image.Image:
    """One pass of the net over ``image`` (RGB in, RGB out, ``scale`` times larger)."""
    out = upscale_tensor_tiled(lambda t: net(t.to(dtype)), image_to_tensor(image, device, dtype), scale, tile,
                               overlap, should_stop)
    return tensor_to_image(out)
