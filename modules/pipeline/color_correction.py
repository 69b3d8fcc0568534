"""img2img's colour correction (A1111's "Apply color correction to img2img results to match
original colors"): each CIELAB channel of the result histogram-matched to the source image, then
the result's own luminosity put back, so only hue and saturation move towards the source.

The luminosity step is the "luminosity" blend mode of the W3C Compositing and Blending Level 1
spec (section 10.2: ``SetLum(Cb, Lum(Cs))`` with ``ClipColor``), which is what A1111's
``blendLayers(..., BlendType.LUMINOSITY)`` computes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageCms

from modules.pipeline.outpaint import match_histograms

LUMA = np.array([0.3, 0.59, 0.11])  # the W3C spec's Lum() weights


def _transforms():
    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    return ImageCms.buildTransform(srgb, lab, "RGB", "LAB"), ImageCms.buildTransform(lab, srgb, "LAB", "RGB")


def lab_target(image: Image.Image) -> np.ndarray:
    """The image in 8-bit CIELAB, H x W x 3: what a result is corrected towards."""
    to_lab, _ = _transforms()
    return np.asarray(ImageCms.applyTransform(image.convert("RGB"), to_lab))


def correct_colours(target: np.ndarray, image: Image.Image) -> Image.Image:
    """``image`` with its CIELAB histograms matched to ``target``'s and its own luminosity kept."""
    to_lab, to_rgb = _transforms()
    rgb = image.convert("RGB")
    lab = np.asarray(ImageCms.applyTransform(rgb, to_lab)).reshape(-1, 3).astype(np.float64)
    matched = match_histograms(lab, target.reshape(-1, 3).astype(np.float64))
    matched = np.clip(matched, 0, 255).round().astype(np.uint8).reshape(rgb.height, rgb.width, 3)
    recoloured = np.asarray(ImageCms.applyTransform(Image.fromarray(matched, "LAB"), to_rgb)) / 255.0
    blended = with_luminosity(recoloured, np.asarray(rgb) / 255.0)
    return Image.fromarray((blended * 255.0).round().astype(np.uint8), "RGB")


def with_luminosity(colour: np.ndarray, source: np.ndarray) -> np.ndarray:
    """W3C ``SetLum(colour, Lum(source))``: colour's hue and saturation, source's luminosity,
    brought back into 0..1 by ``ClipColor`` (which keeps the luminosity)."""
    c = colour + (source @ LUMA - colour @ LUMA)[..., None]
    lum = (c @ LUMA)[..., None]
    low, high = c.min(axis=-1, keepdims=True), c.max(axis=-1, keepdims=True)
    below = lum + (c - lum) * lum / np.where(lum - low == 0, 1, lum - low)
    c = np.where(low < 0, below, c)
    above = lum + (c - lum) * (1 - lum) / np.where(high - lum == 0, 1, high - lum)
    c = np.where(high > 1, above, c)
    return np.clip(c, 0.0, 1.0)
