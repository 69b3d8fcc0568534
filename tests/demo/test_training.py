"""The trainer's pieces: the latent rescaling is exact, the preview factors fit, a short run writes an SD1 file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modules.demo.dataset import make_dataset
from modules.demo.model import DEMO_VAE
from modules.demo.train import (
    LATENT_SCALE, TrainingRecipe, encode_all, latent_rgb_factors, learning_rate_factor, normalise_latent_space, train,
)
from modules.models.detect import detect_checkpoint
from modules.models.families import ModelFamily, Prediction
from modules.models.safe_load import read_safetensors_metadata
from modules.nets.vae import AutoencoderKL
from modules.pipeline.preview import cheap_preview


def test_latent_rescaling_keeps_the_decoder_output_and_gives_unit_scaled_latents() -> None:
    torch.manual_seed(0)
    vae = AutoencoderKL(DEMO_VAE).eval()
    images, _ = make_dataset(48, 64, seed=1)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        before = vae.decode(vae.encode(pixels))
        means, _ = encode_all(vae, images, torch.device("cpu"))
        normalise_latent_space(vae, means)
        latents = vae.encode(pixels)
        after = vae.decode(latents)
    torch.testing.assert_close(after, before, atol=2e-4, rtol=1e-4)
    scaled = latents * LATENT_SCALE
    torch.testing.assert_close(scaled.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(scaled.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-3, rtol=0)


def test_preview_factors_reproduce_block_colours_of_a_linear_latent() -> None:
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(16, 4, 8, 8, generator=generator) * 0.3
    truth = torch.tensor([[0.5, 0.1, -0.2], [0.0, 0.4, 0.1], [0.2, -0.3, 0.6], [-0.1, 0.2, 0.0]])
    blocks = torch.einsum("nchw,cr->nrhw", latents, truth).clamp(-1, 1)
    images = ((blocks.repeat_interleave(8, 2).repeat_interleave(8, 3) + 1) * 127.5).round()
    images = images.permute(0, 2, 3, 1).to(torch.uint8).numpy()
    factors = latent_rgb_factors(latents, images)
    np.testing.assert_allclose(np.array(factors), truth.numpy(), atol=0.01)
    assert cheap_preview(latents[0], tuple(tuple(row) for row in factors)).size == (8, 8)


def test_learning_rate_warms_up_then_decays_to_a_tenth() -> None:
    assert learning_rate_factor(0, 100, 10) == 0.1
    assert learning_rate_factor(9, 100, 10) == 1.0
    assert abs(learning_rate_factor(100, 100, 10) - 0.1) < 1e-9
    assert learning_rate_factor(50, 100, 10) < learning_rate_factor(20, 100, 10)


def test_a_short_run_writes_an_sd1_checkpoint_with_modelspec(tmp_path: Path) -> None:
    recipe = TrainingRecipe(dataset_size=64, vae_steps=2, vae_batch=4, unet_steps=2, unet_batch=4,
                            warmup_steps=1, sample_every=2)
    out = tmp_path / "demo.safetensors"
    summary = train(recipe, out, tmp_path / "samples", torch.device("cpu"))
    detected = detect_checkpoint(out)
    assert detected.family is ModelFamily.SD1 and detected.prediction is Prediction.EPS
    assert len(detected.vae.ch_mult) == 4 and detected.vae.embed_dim == 4  # f = 8, 4 latent channels
    assert detected.text_encoder.vocab_size == 49408
    metadata = read_safetensors_metadata(out)
    assert metadata["modelspec.resolution"] == "64x64"
    assert metadata["modelspec.prediction_type"] == "epsilon"
    assert metadata["modelspec.title"] and metadata["modelspec.description"]
    assert len(eval(metadata["modelspec.latent_rgb_factors"])) == 4
    assert (tmp_path / "samples" / "step-000002.png").is_file()
    assert summary["recipe"]["unet_steps"] == 2
