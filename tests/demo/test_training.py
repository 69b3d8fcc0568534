"""The trainer's pieces: the latent rescaling is exact, the preview factors fit, a short run writes an SD1 file,
the decoder phase sharpens reconstructions and touches nothing but the decoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from modules.demo.dataset import COLOURS, make_dataset
from modules.demo.model import DEMO_VAE
from modules.demo.train import (
    LATENT_SCALE, TrainingRecipe, encode_all, images_to_tensor, latent_rgb_factors, learning_rate_factor,
    normalise_latent_space, refine_checkpoint_decoder, refine_decoder, region_weights, round_trip_check, train,
)
from modules.models.detect import VAE_PREFIX, detect_checkpoint
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
                            warmup_steps=1, sample_every=2, decoder_steps=2, decoder_batch=4)
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
    assert set(summary["vae_round_trip"]) == {"shape_colour", "background", "shape", "l1"}
    assert set(summary["decoder_round_trip"]) == {"shape_colour", "background", "shape", "l1"}


def _reconstruction_error(vae: AutoencoderKL, images: np.ndarray) -> float:
    with torch.no_grad():
        pixels = images_to_tensor(images, torch.device("cpu"))
        return float(F.l1_loss(vae.decode(vae.encode_moments(pixels)[0]), pixels))


def test_the_decoder_phase_lowers_the_reconstruction_error_and_leaves_the_encoder_alone() -> None:
    torch.manual_seed(0)
    vae = AutoencoderKL(DEMO_VAE).eval()
    images, _ = make_dataset(8, 32, seed=3)
    encoder_before = {k: v.clone() for k, v in vae.state_dict().items() if not k.startswith(("decoder.", "post_quant"))}
    before = _reconstruction_error(vae, images)
    means, _ = encode_all(vae, images, torch.device("cpu"))
    recipe = TrainingRecipe(decoder_steps=80, decoder_batch=4, decoder_lr=2e-3, warmup_steps=1)
    # the posterior means alone (zero spread): the untrained encoder's wide posterior would only add noise
    refine_decoder(vae, images, (means, torch.zeros_like(means)), recipe, torch.device("cpu"),
                   torch.Generator().manual_seed(0))
    after = _reconstruction_error(vae, images)
    assert after < 0.9 * before, (before, after)  # 0.75 -> 0.60 here; an untouched decoder stays at 0.75
    assert all(torch.equal(v, vae.state_dict()[k]) for k, v in encoder_before.items())


def test_refining_a_checkpoint_changes_only_its_decoder_and_records_it(tmp_path: Path) -> None:
    recipe = TrainingRecipe(dataset_size=64, vae_steps=2, vae_batch=4, unet_steps=2, unet_batch=4,
                            warmup_steps=1, sample_every=100, decoder_steps=0)
    original = tmp_path / "demo.safetensors"
    train(recipe, original, tmp_path / "samples", torch.device("cpu"))
    refined = tmp_path / "refined.safetensors"
    refine_recipe = TrainingRecipe(dataset_size=64, decoder_steps=5, decoder_batch=4, warmup_steps=1)
    training = refine_checkpoint_decoder(original, refine_recipe, refined, torch.device("cpu"))
    before, after = load_file(original), load_file(refined)
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith((VAE_PREFIX + "decoder.", VAE_PREFIX + "post_quant_conv.")) for k in changed)
    assert {v.dtype for v in after.values()} == {torch.float16}
    recorded = json.loads(read_safetensors_metadata(refined)["demo.training"])
    assert recorded == training and [r["steps"] for r in recorded["decoder_refinements"]] == [5]
    assert set(recorded["decoder_refinements"][0]["round_trip"]) == {"shape_colour", "background", "shape", "l1"}
    assert recorded["recipe"]["unet_steps"] == 2  # the original run's record is kept
    assert read_safetensors_metadata(refined)["modelspec.title"] == read_safetensors_metadata(original)["modelspec.title"]


def test_refining_a_file_that_train_demo_did_not_write_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.safetensors"
    save_file({VAE_PREFIX + "decoder.conv_in.weight": torch.zeros(1)}, str(other))
    with pytest.raises(SystemExit, match="not a demo checkpoint"):
        refine_checkpoint_decoder(other, TrainingRecipe(), tmp_path / "out.safetensors", torch.device("cpu"))


def _square_picture(background: str, colour: str, side: int) -> Tensor:
    """A ``side`` x ``side`` square of ``colour`` in the middle of a 64x64 picture, as [1, 3, 64, 64] in [-1, 1]."""
    picture = np.full((64, 64, 3), COLOURS[background], dtype=np.uint8)
    start = (64 - side) // 2
    picture[start : start + side, start : start + side] = COLOURS[colour]
    return images_to_tensor(picture[None], torch.device("cpu"))


def test_balanced_weights_give_the_shape_as_much_weight_as_the_background() -> None:
    pixels = torch.cat([_square_picture("blue", "red", 16), _square_picture("white", "yellow", 40)])
    inside = torch.zeros(2, 1, 64, 64, dtype=torch.bool)
    inside[0, :, 24:40, 24:40], inside[1, :, 12:52, 12:52] = True, True
    for balance in (1.0, 0.5, 0.0):
        weights = region_weights(pixels, balance)
        torch.testing.assert_close(weights.mean(dim=(1, 2, 3)), torch.ones(2))  # same scale as plain L1
        shape_total = (weights * inside).sum(dim=(1, 2, 3))
        background_total = (weights * ~inside).sum(dim=(1, 2, 3))
        plain_shape_total = inside.sum(dim=(1, 2, 3)).float()  # uniform weights: the share of pixels
        expected = balance * 64 * 64 / 2 + (1 - balance) * plain_shape_total
        torch.testing.assert_close(shape_total, expected)
        torch.testing.assert_close(background_total, 64 * 64 - expected)


class _FakeAutoencoder(nn.Module):
    """Encodes to the pixels themselves and decodes through ``decode_fn``."""

    def __init__(self, decode_fn):
        super().__init__()
        self.decode_fn = decode_fn

    def encode_moments(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        return pixels, torch.zeros_like(pixels)

    def decode(self, latents: Tensor) -> Tensor:
        return self.decode_fn(latents)


def test_the_round_trip_check_reads_what_the_autoencoder_gives_back() -> None:
    perfect = round_trip_check(_FakeAutoencoder(lambda x: x), 64, torch.device("cpu"))
    assert perfect == {"shape_colour": 1.0, "background": 1.0, "shape": 1.0, "l1": 0.0}
    # A decoder that paints every picture in its corner colour keeps the background and loses the shape.
    flat = round_trip_check(_FakeAutoencoder(lambda x: x[:, :, :1, :1].expand_as(x)), 64, torch.device("cpu"))
    assert flat["background"] == 1.0 and flat["shape_colour"] == 0.0 and flat["shape"] == 0.0 and flat["l1"] > 0.05
    # Swapping red and blue channels changes most colours and no shape.
    swapped = round_trip_check(_FakeAutoencoder(lambda x: x.flip(1)), 64, torch.device("cpu"))
    assert swapped["shape"] == 1.0 and swapped["background"] < 0.8 and swapped["shape_colour"] < 0.8
