"""Decoding latents under the device policy's VAE precision.

The SD VAE's decoder activations exceed fp16's range on some latents, giving
NaN images. When the policy allows it, a NaN decode is retried in fp32 and the
VAE stays in fp32 afterwards (one overflow predicts more on the same model).
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import Tensor

from modules.nets.vae import AutoencoderKL

log = logging.getLogger(__name__)


class VAEPrecisionError(RuntimeError):
    """The decode produced NaN and no fp32 retry was allowed."""


class NonFiniteLatentsError(RuntimeError):
    """Sampling produced NaN or infinite latents: no VAE precision can decode those."""


def vae_dtype(vae: AutoencoderKL) -> torch.dtype:
    return next(vae.parameters()).dtype


def decode_latents(vae: AutoencoderKL, latents: Tensor, retry_in_fp32: bool,
                   decode: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Unscaled latents -> fp32 images in [-1, 1] (values as decoded, not clamped). ``decode``
    (default ``vae.decode``): a compiled or tiled decode of the same VAE."""
    if not torch.isfinite(latents).all():
        raise NonFiniteLatentsError("sampling produced NaN or infinite values; lower the CFG scale or use "
                                    "other sampler settings (eta, s_noise, s_churn)")
    dtype = vae_dtype(vae)
    images = (decode or vae.decode)(latents.to(dtype))
    if not torch.isnan(images).any():
        return images.float()
    if dtype == torch.float32:
        raise VAEPrecisionError("the VAE decode produced NaN in float32: the latents are outside what this VAE "
                                "can decode")
    if not retry_in_fp32:
        raise VAEPrecisionError(f"the VAE decode in {dtype} produced NaN; run with --no-half-vae")
    log.warning("VAE decode in %s produced NaN: converting the VAE to float32 and decoding again", dtype)
    vae.to(torch.float32)
    return vae.decode(latents.float())
