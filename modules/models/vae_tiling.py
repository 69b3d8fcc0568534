"""Tiled VAE decode and encode: large images in overlapping tiles, blended where they overlap.

The VAE's cost and memory grow with the image (its mid-block attention is
quadratic in the number of latent pixels: a 1024x1024 image's 128x128 latent
is a 16384x16384 attention matrix per head). In tiles of a fixed size the peak
memory is that of one tile, whatever the image size.

Every tile has the same size (the starts are spread evenly so the last tile
ends at the edge), so a compiled decoder serves all of them with one shape.
Overlaps are blended with weights that ramp linearly from the tile's edge
(feathering), so no seam shows where tiles meet. Not bit-equal to a full
decode: GroupNorm statistics and attention are per tile, which is why tiling
is used only for images above a size threshold (or after an out-of-memory).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

TILING_MODES = ("Automatic", "Always", "Never")


@dataclass(frozen=True)
class VAETiling:
    mode: str = "Automatic"
    # Automatic tiles an image of more pixels than this (a 1024x1024 image is decoded whole).
    min_pixels: int = 1024 * 1024
    tile: int = 64  # latent pixels (512 image pixels at f=8)
    overlap: int = 16

    def applies(self, image_pixels: int) -> bool:
        return self.mode == "Always" or (self.mode == "Automatic" and image_pixels > self.min_pixels)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of equal tiles covering ``length`` with neighbours overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    count = math.ceil((length - overlap) / (tile - overlap))
    count = max(count, 2)
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def feather(size: int, ramp: int, device: torch.device) -> Tensor:
    """1-D blending weights: a linear ramp over ``ramp`` samples at each end, 1 in between (never 0,
    so a pixel covered by one tile only keeps that tile's value after normalising)."""
    position = torch.arange(size, device=device, dtype=torch.float32)
    if ramp <= 0:
        return torch.ones(size, device=device)
    distance = torch.minimum(position, size - 1 - position) + 1
    return (distance / (ramp + 1)).clamp(max=1.0)


def tiled_apply(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, overlap: int, scale: float,
                unit: int = 1) -> Tensor:
    """``fn`` over overlapping tiles of ``x`` (N, C, H, W) whose outputs are ``scale`` times the size
    of their input tile (8 for a decode, 1/8 for an encode), blended into one output. Tile starts
    are multiples of ``unit`` (an encode's tiles must start on whole latent pixels)."""
    height, width = x.shape[-2:]
    rows, cols = ([start * unit for start in tile_starts(length // unit, tile // unit, overlap // unit)]
                  for length in (height, width))
    tile_h, tile_w = min(tile, height), min(tile, width)
    out_h, out_w = round(height * scale), round(width * scale)
    ramp = max(round(overlap * scale) // 2, 0)
    total: Tensor | None = None
    weight_sum = torch.zeros(1, 1, out_h, out_w, device=x.device)
    for top in rows:
        for left in cols:
            piece = fn(x[..., top:top + tile_h, left:left + tile_w]).float()
            o_top, o_left = round(top * scale), round(left * scale)
            p_h, p_w = piece.shape[-2:]
            weight = feather(p_h, ramp, x.device)[:, None] * feather(p_w, ramp, x.device)[None, :]
            if total is None:
                total = torch.zeros(piece.shape[0], piece.shape[1], out_h, out_w, device=x.device)
            total[..., o_top:o_top + p_h, o_left:o_left + p_w] += piece * weight
            weight_sum[..., o_top:o_top + p_h, o_left:o_left + p_w] += weight
    assert total is not None
    return total / weight_sum


@contextmanager
def whole_image_group_norms(net: nn.Module, preview: Callable[[], Tensor] | None) -> Iterator[None]:
    """GroupNorms that normalise every tile with the whole image's statistics instead of the tile's.

    A tile's own mean and variance differ from the image's (a sky tile is all blue), which shifts
    its colours: the largest error of naive tiling. The statistics are taken once from ``preview``,
    the whole image run through ``net`` at low resolution (the statistics of a smooth field barely
    depend on resolution), then each GroupNorm's output is recomputed with them while tiling.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    if preview is None or not norms:
        yield
        return
    stats: dict[nn.GroupNorm, tuple[Tensor, Tensor]] = {}

    def record(norm: nn.GroupNorm, inputs: tuple[Tensor, ...], _output: Tensor) -> None:
        grouped = inputs[0].float().reshape(inputs[0].shape[0], norm.num_groups, -1)
        stats[norm] = (grouped.mean(-1), grouped.var(-1, unbiased=False))

    def apply(norm: nn.GroupNorm, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        x = inputs[0]
        mean, var = stats[norm]
        grouped = x.float().reshape(x.shape[0], norm.num_groups, -1)
        normed = ((grouped - mean[..., None]) / torch.sqrt(var[..., None] + norm.eps)).reshape(x.shape)
        if norm.affine:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            normed = normed * norm.weight.float().reshape(shape) + norm.bias.float().reshape(shape)
        return normed.to(output.dtype)

    handles = [norm.register_forward_hook(record) for norm in norms]
    try:
        preview()
    finally:
        for handle in handles:
            handle.remove()
    handles = [norm.register_forward_hook(apply) for norm in norms]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def low_resolution(x: Tensor, side: int, unit: int) -> Tensor:
    """``x`` shrunk (area average) so its longer side is about ``side``, in whole multiples of ``unit``."""
    height, width = x.shape[-2:]
    shrink = max(height, width) / side
    if shrink <= 1:
        return x
    size = [max(unit, round(length / shrink / unit) * unit) for length in (height, width)]
    return torch.nn.functional.interpolate(x.float(), size=size, mode="area").to(x.dtype)


def tiled_decode(decode: Callable[[Tensor], Tensor], latents: Tensor, tiling: VAETiling, factor: int,
                 net: nn.Module | None = None) -> Tensor:
    """``net`` (the eager VAE behind ``decode``): its GroupNorms use the whole image's statistics."""
    if max(latents.shape[-2:]) <= tiling.tile:
        return decode(latents)  # one tile is the whole image
    preview = None if net is None else (lambda: decode(low_resolution(latents, tiling.tile, 1)))
    with whole_image_group_norms(net, preview) if net is not None else _nothing():
        return tiled_apply(decode, latents, tiling.tile, tiling.overlap, float(factor))


def tiled_encode(encode: Callable[[Tensor], Tensor], pixels: Tensor, tiling: VAETiling, factor: int,
                 net: nn.Module | None = None) -> Tensor:
    """Pixels in tiles of ``tiling.tile * factor`` (a multiple of ``factor``, so tiles map onto whole latents)."""
    tile, overlap = tiling.tile * factor, tiling.overlap * factor
    if max(pixels.shape[-2:]) <= tile:
        return encode(pixels)
    preview = None if net is None else (lambda: encode(low_resolution(pixels, tile, factor)))
    with whole_image_group_norms(net, preview) if net is not None else _nothing():
        return tiled_apply(encode, pixels, tile, overlap, 1.0 / factor, unit=factor)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
