"""Cheap live previews: a fixed linear map from the 4 latent channels to RGB, no VAE call.

The SD1/SD2 latent space is close to linear in colour; these factors are the
least-squares fit A1111 ships as its "Approx cheap" preview for SD1.x/2.x
latents (rows: latent channels; columns: R, G, B contributions).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

SD_LATENT_RGB_FACTORS = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)


def cheap_preview(latent: Tensor, factors: tuple[tuple[float, float, float], ...] = SD_LATENT_RGB_FACTORS) -> Image.Image:
    """One latent [C, h, w] -> an RGB image of h x w pixels."""
    weights = torch.tensor(factors, dtype=torch.float32, device=latent.device)
    if weights.shape[0] != latent.shape[0]:
        raise ValueError(f"preview factors are for {weights.shape[0]} latent channels, the latent has {latent.shape[0]}")
    rgb = torch.einsum("chw,cr->hwr", latent.float(), weights)
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(pixels))
