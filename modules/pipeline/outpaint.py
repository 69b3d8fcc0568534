"""Image, mask and noise preparation for A1111's two outpainting scripts (numpy and Pillow only).

Poor man's outpainting (``scripts/poor_mans_outpainting.py``): the image is pasted on a larger
canvas (each chosen side grown by ``pixels``, the whole rounded up to a multiple of 64), a mask
marks the new border (white = redraw) minus a blur margin, and the canvas is redrawn tile by tile
where tiles reach outside the original.

Outpainting mk2 (``scripts/outpainting_mk_2.py``): one side at a time, the new strip is filled
with noise shaped like the image, so the sampler starts from plausible colours and textures:
the noise's spectrum takes the magnitude of the visible image's spectrum (raised to the
"fall-off" exponent ``noise_q``; lower = more fine detail) and its phase, and each colour
channel of the result is histogram-matched to the visible pixels. ``color_variation`` blends the
starting noise between grey (0) and fully coloured (1). The noise generator is seeded with 0,
as in A1111, so the same image gives the same fill and only the generation seed varies results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection

import numpy as np
from PIL import Image, ImageDraw

DIRECTIONS = ("left", "right", "up", "down")


@dataclass(frozen=True)
class Expansion:
    """Pixels added on each side, after rounding the canvas up to a multiple of 64."""

    left: int
    right: int
    up: int
    down: int
    width: int  # the canvas
    height: int


def expansion(width: int, height: int, pixels: int, directions: Collection[str]) -> Expansion:
    """A1111's split of the rounding between the two sides of each axis."""
    unknown = set(directions) - set(DIRECTIONS)
    if unknown:
        raise ValueError(f"unknown outpainting direction {', '.join(sorted(unknown))}; valid: {', '.join(DIRECTIONS)}")
    left, right, up, down = (pixels if side in directions else 0 for side in DIRECTIONS)
    target_w = math.ceil((width + left + right) / 64) * 64
    target_h = math.ceil((height + up + down) / 64) * 64
    if left:
        left = left * (target_w - width) // (left + right)
    if right:
        right = target_w - width - left
    if up:
        up = up * (target_h - height) // (up + down)
    if down:
        down = target_h - height - up
    return Expansion(left, right, up, down, target_w, target_h)


def _border_mask(e: Expansion, inset: int) -> Image.Image:
    """White canvas with the original's area black, shrunk by ``inset`` on each grown side."""
    mask = Image.new("L", (e.width, e.height), "white")
    ImageDraw.Draw(mask).rectangle((
        e.left + (inset if e.left else 0), e.up + (inset if e.up else 0),
        e.width - e.right - (inset if e.right else 0), e.height - e.down - (inset if e.down else 0)), fill="black")
    return mask


@dataclass(frozen=True)
class PoorMansCanvas:
    image: Image.Image  # the original on a black canvas
    mask: Image.Image  # what to redraw (inset by 2 x mask blur)
    latent_mask: Image.Image  # inset by mask blur / 2
    expansion: Expansion


def poor_mans_canvas(init: Image.Image, pixels: int, mask_blur: int, directions: Collection[str]) -> PoorMansCanvas:
    e = expansion(init.width, init.height, pixels, directions)
    image = Image.new("RGB", (e.width, e.height))
    image.paste(init, (e.left, e.up))
    return PoorMansCanvas(image, _border_mask(e, mask_blur * 2), _border_mask(e, mask_blur // 2), e)


def tile_needs_redraw(x: int, y: int, tile_w: int, tile_h: int, e: Expansion) -> bool:
    """A tile wholly inside the original is kept as it is (A1111 skips it)."""
    inside = x >= e.left and x + tile_w <= e.width - e.right and y >= e.up and y + tile_h <= e.height - e.down
    return not inside


def match_histograms(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per column (colour channel): each source value mapped to the reference value at the same
    quantile (classic histogram matching)."""
    matched = np.empty_like(source)
    for c in range(source.shape[1]):
        values, inverse, counts = np.unique(source[:, c], return_inverse=True, return_counts=True)
        ref_values, ref_counts = np.unique(reference[:, c], return_counts=True)
        quantiles = np.cumsum(counts) / source.shape[0]
        ref_quantiles = np.cumsum(ref_counts) / reference.shape[0]
        matched[:, c] = np.interp(quantiles, ref_quantiles, ref_values)[inverse]
    return matched


def _spectrum(data: np.ndarray) -> np.ndarray:
    """Centred, orthonormal 2-D spectrum of each channel."""
    return np.fft.fftshift(np.fft.fft2(data, axes=(0, 1), norm="ortho"), axes=(0, 1))


def _image_of(spectrum: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifft2(np.fft.ifftshift(spectrum, axes=(0, 1)), axes=(0, 1), norm="ortho"))


def matched_noise(image: np.ndarray, mask: np.ndarray, noise_q: float = 1.0, color_variation: float = 0.05,
                  seed: int = 0) -> np.ndarray:
    """``image`` [H, W, 3] in 0..1 with its ``mask`` [H, W] (1 = to fill) -> the image with the
    masked area replaced by noise that has the visible area's spectrum and colour histogram."""
    height, width, channels = image.shape
    visible = mask < 1e-3
    fill = mask > 1e-6
    windowed = image * (1.0 - mask[..., None])
    windowed = windowed / max(windowed.max(), 1e-8) + image.mean() * mask[..., None]
    source = _spectrum(windowed)
    magnitude = np.abs(source)
    phase = source / np.maximum(magnitude, 1e-12)
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, channels))
    noise = color_variation * noise + (1.0 - color_variation) * noise.mean(axis=2, keepdims=True)
    # a soft low-pass window (1 / ((x^2 + 1)(y^2 + 1)) over [-1, 1], stretched to the aspect)
    aspect = min(width, height)
    xs = (np.arange(width) / width * 2 - 1) * (width / aspect)
    ys = (np.arange(height) / height * 2 - 1) * (height / aspect)
    window = 1.0 / ((xs[None, :] ** 2 + 1) * (ys[:, None] ** 2 + 1))
    noise = _image_of(_spectrum(noise) * window[..., None])
    shaped = _image_of(np.abs(_spectrum(noise)) ** 2 * magnitude**noise_q * phase)
    shaped = (shaped - shaped.min()) / max(np.ptp(shaped), 1e-8)
    if fill.any() and visible.any():
        shaped[fill] = match_histograms(shaped[fill], image[visible])
    result = image * (1.0 - mask[..., None]) + shaped * mask[..., None]
    return np.clip(result, 0.0, 1.0)


@dataclass(frozen=True)
class Mk2Step:
    """One side's pass: what to generate from and where it goes back."""

    init: Image.Image  # the crop to redraw (original plus matched-noise strip)
    mask: Image.Image  # white = redraw
    latent_mask: Image.Image
    canvas: Image.Image  # the whole grown image (the result is pasted back into it)
    crop_box: tuple[int, int, int, int]
    final_size: tuple[int, int]  # the canvas is cut to this after pasting


def mk2_step(init: Image.Image, side: str, pixels: int, mask_blur: int, noise_q: float, color_variation: float,
             process_size: tuple[int, int]) -> Mk2Step:
    """Grow ``init`` by ``pixels`` on ``side``: the canvas (rounded up to 64), its matched noise,
    the mask inset by ``mask_blur``, and the generation-size crop at that side."""
    horizontal = side in ("left", "right")
    grow_w, grow_h = (pixels, 0) if horizontal else (0, pixels)
    res_w, res_h = init.width + grow_w, init.height + grow_h
    canvas_w, canvas_h = math.ceil(res_w / 64) * 64, math.ceil(res_h / 64) * 64
    canvas = Image.new("RGB", (canvas_w, canvas_h))
    canvas.paste(init, (grow_w if side == "left" else 0, grow_h if side == "up" else 0))
    mask = _side_mask((canvas_w, canvas_h), side, pixels, mask_blur, (res_w, res_h))
    noised = matched_noise(np.asarray(canvas, dtype=np.float64) / 255.0, np.asarray(mask, dtype=np.float64) / 255.0,
                           noise_q, color_variation)
    noised_image = Image.fromarray(np.clip(noised * 255.0, 0, 255).astype(np.uint8), "RGB")
    target_w = min(process_size[0], res_w) if horizontal else canvas_w
    target_h = min(process_size[1], res_h) if not horizontal else canvas_h
    box = (0 if side == "left" else canvas_w - target_w, 0 if side == "up" else canvas_h - target_h,
           target_w if side == "left" else canvas_w, target_h if side == "up" else canvas_h)
    latent = _side_mask((target_w, target_h), side, pixels, mask_blur * 2, (res_w, res_h))
    return Mk2Step(noised_image.crop(box), mask.crop(box), latent, noised_image, box, (res_w, res_h))


def _side_mask(size: tuple[int, int], side: str, pixels: int, inset: int, kept: tuple[int, int]) -> Image.Image:
    """White with a black rectangle over what stays (A1111's rectangle for one side)."""
    width, height = size
    mask = Image.new("L", size, "white")
    ImageDraw.Draw(mask).rectangle((
        pixels + inset if side == "left" else 0, pixels + inset if side == "up" else 0,
        width - pixels - inset if side == "right" else kept[0], height - pixels - inset if side == "down" else kept[1],
    ), fill="black")
    return mask


def mk2_paste_back(step: Mk2Step, generated: Image.Image) -> Image.Image:
    """The generated crop put back at its side of the canvas, cut to the grown size."""
    canvas = step.canvas.copy()
    canvas.paste(generated, (step.crop_box[0], step.crop_box[1]))
    return canvas.crop((0, 0, *step.final_size))
