"""Our UNet, VAE and text encoders compute what diffusers computes from the same LDM checkpoint.

Tolerance: max |ours - theirs| / max |theirs| <= 1e-4, fp32 on CPU. Reduced
configs of both layouts here; the full SD1.5 / SD2.1 sizes in test_parity_fullsize.py.
"""

from __future__ import annotations

import pytest
import torch

from tests.nets.checkpoints import TINY_SD1_TEXT, TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD2_TEXT, TINY_SD2_UNET, TINY_SD2_VAE
from tests.nets.parity import (
    MAX_RELATIVE_DIFFERENCE, Family, latent_inputs, relative_difference, text_pair, token_inputs, unet_pair, vae_pair,
)
from dataclasses import replace

SD1 = Family(TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT)
SD2 = Family(TINY_SD2_UNET, TINY_SD2_VAE, TINY_SD2_TEXT)
# SD2's real UNet projects with Linear layers; a deeper, three-level variant covers depth > 1 and 64-wide heads.
SD2_LINEAR = Family(
    replace(TINY_SD2_UNET, use_linear_in_transformer=True, model_channels=64, channel_mult=(1, 2, 2),
            attention_resolutions=(4, 2), transformer_depth=2),
    TINY_SD2_VAE, TINY_SD2_TEXT,
)
SD1_INPAINT = Family(replace(TINY_SD1_UNET, in_channels=9), TINY_SD1_VAE, TINY_SD1_TEXT)
FAMILIES = {"sd1": SD1, "sd2": SD2, "sd2-linear": SD2_LINEAR, "sd1-inpaint": SD1_INPAINT}


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("size", [8, 10])
@torch.inference_mode()
def test_unet(name: str, size: int) -> None:
    # 10 is not divisible by 2**levels: the upsampler must follow the skip's size.
    family = FAMILIES[name]
    pair = unet_pair(family, family.checkpoint())
    x, t, context = latent_inputs(family, size)
    theirs = pair.theirs(x, t, encoder_hidden_states=context).sample
    assert relative_difference(pair.ours(x, t, context), theirs) <= MAX_RELATIVE_DIFFERENCE


@pytest.mark.parametrize("name", ["sd1", "sd2"])
@torch.inference_mode()
def test_vae_encode_and_decode(name: str) -> None:
    family = FAMILIES[name]
    pair = vae_pair(family, family.checkpoint())
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    mean, logvar = pair.ours.encode_moments(image)
    posterior = pair.theirs.encode(image).latent_dist
    assert relative_difference(mean, posterior.mean) <= MAX_RELATIVE_DIFFERENCE
    assert relative_difference(logvar, posterior.logvar) <= MAX_RELATIVE_DIFFERENCE
    assert relative_difference(pair.ours.decode(mean), pair.theirs.decode(posterior.mean).sample) <= MAX_RELATIVE_DIFFERENCE


@torch.inference_mode()
def test_vae_sample_uses_the_callers_noise() -> None:
    pair = vae_pair(SD1, SD1.checkpoint())
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    mean, logvar = pair.ours.encode_moments(image)
    assert torch.allclose(pair.ours.encode(image, noise), mean + torch.exp(0.5 * logvar) * noise)
    assert torch.equal(pair.ours.encode(image), mean)


@pytest.mark.parametrize("clip_skip", [1, 2])
@torch.inference_mode()
def test_sd1_text_encoder(clip_skip: int) -> None:
    pair = text_pair(SD1, SD1.checkpoint())
    tokens = token_inputs(SD1)
    output = pair.theirs(input_ids=tokens, output_hidden_states=True)
    # Clip skip n: the n-th hidden state from the end, then the final LayerNorm.
    expected = output.last_hidden_state if clip_skip == 1 else pair.theirs.final_layer_norm(output.hidden_states[-clip_skip])
    assert relative_difference(pair.ours.encode(tokens, clip_skip), expected) <= MAX_RELATIVE_DIFFERENCE


@torch.inference_mode()
def test_sd2_text_encoder_conditions_on_the_penultimate_layer() -> None:
    # diffusers drops OpenCLIP's last layer and uses the rest's last hidden state.
    pair = text_pair(SD2, SD2.checkpoint())
    tokens = token_inputs(SD2)
    expected = pair.theirs(input_ids=tokens).last_hidden_state
    assert relative_difference(pair.ours.encode(tokens), expected) <= MAX_RELATIVE_DIFFERENCE
