"""Upscalers for the hires pass: A1111's latent interpolation modes and the plain pixel resamplers.

Latent modes interpolate the latent itself (cheap, softer); pixel upscalers
decode, resize the image and encode again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from modules.params import UPSCALER_NAMES  # noqa: F401 - the names, re-exported where they are mapped


@dataclass(frozen=True)
class LatentMode:
    mode: str
    antialias: bool = False


# A1111's names (shared.latent_upscale_modes) -> torch interpolation.
LATENT_UPSCALE_MODES: Mapping[str, LatentMode] = {
    "Latent": LatentMode("bilinear"),
    "Latent (antialiased)": LatentMode("bilinear", antialias=True),
    "Latent (bicubic)": LatentMode("bicubic"),
    "Latent (bicubic antialiased)": LatentMode("bicubic", antialias=True),
    "Latent (nearest)": LatentMode("nearest"),
    "Latent (nearest-exact)": LatentMode("nearest-exact"),
}
PIXEL_UPSCALERS: Mapping[str, Image.Resampling] = {
    "Lanczos": Image.Resampling.LANCZOS,
    "Nearest": Image.Resampling.NEAREST,
}


def upscale_latents(latents: Tensor, size: tuple[int, int], name: str) -> Tensor:
    """``latents`` [B, C, h, w] -> [B, C, *size] with the named latent mode."""
    spec = LATENT_UPSCALE_MODES[name]
    if spec.mode in ("nearest", "nearest-exact"):
        return F.interpolate(latents, size=size, mode=spec.mode)
    return F.interpolate(latents, size=size, mode=spec.mode, antialias=spec.antialias)


def upscale_image(image: Image.Image, size: tuple[int, int], name: str) -> Image.Image:
    """``size`` is (width, height), as PIL counts."""
    return image.resize(size, PIXEL_UPSCALERS[name])
