"""A low-precision VAE decode that overflows to NaN is retried in fp32 when the policy allows it."""

from __future__ import annotations

import pytest
import torch

from modules.models.vae_decode import VAEPrecisionError, decode_latents, vae_dtype
from modules.nets.vae import AutoencoderKL
from tests.nets.checkpoints import TINY_SD1_TEXT, TINY_SD1_UNET, TINY_SD1_VAE, make_ldm_checkpoint


def tiny_vae(dtype: torch.dtype) -> AutoencoderKL:
    state = make_ldm_checkpoint(TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT, seed=3)
    vae = AutoencoderKL(TINY_SD1_VAE)
    vae.load_ldm_state_dict({k.removeprefix("first_stage_model."): v for k, v in state.items() if k.startswith("first_stage_model.")})
    return vae.to(dtype).eval()


# Latents this large push the fp16 activations past 65504 (inf, then NaN in the norms); fp32 copes.
OVERFLOWING = torch.full((1, 4, 4, 4), 3.0e4)


@torch.inference_mode()
def test_fp16_overflow_is_retried_in_fp32() -> None:
    reference = tiny_vae(torch.float32).decode(OVERFLOWING)
    assert not torch.isnan(reference).any()
    vae = tiny_vae(torch.float16)
    assert torch.isnan(vae.decode(OVERFLOWING.half())).any()  # the premise: fp16 alone fails
    images = decode_latents(vae, OVERFLOWING, retry_in_fp32=True)
    assert vae_dtype(vae) == torch.float32
    assert torch.allclose(images, reference, rtol=1e-4, atol=1e-3)


@torch.inference_mode()
def test_without_retry_the_nan_is_a_clear_error() -> None:
    with pytest.raises(VAEPrecisionError, match="--no-half-vae"):
        decode_latents(tiny_vae(torch.float16), OVERFLOWING, retry_in_fp32=False)


@torch.inference_mode()
def test_normal_decode_keeps_the_dtype() -> None:
    vae = tiny_vae(torch.float16)
    latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    images = decode_latents(vae, latents, retry_in_fp32=True)
    assert images.dtype == torch.float32 and vae_dtype(vae) == torch.float16
    assert torch.allclose(images, tiny_vae(torch.float32).decode(latents), atol=2e-2)
