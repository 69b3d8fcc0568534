"""Tiled VAE decode/encode: tiles cover the image, blending is exact for a local map, and on a tiny
VAE the tiled result stays close to the full one."""

from __future__ import annotations

import pytest
import torch

from modules.models.vae_tiling import VAETiling, feather, tile_starts, tiled_decode, tiled_encode
from modules.nets.vae import AutoencoderKL
from tests.models.family_configs import tiny_configs


@pytest.mark.parametrize("length,tile,overlap", [(64, 64, 16), (100, 64, 16), (130, 32, 8), (257, 64, 16)])
def test_tiles_are_equal_cover_the_length_and_overlap_enough(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_feather_ramps_and_never_reaches_zero() -> None:
    weights = feather(10, 3, torch.device("cpu"))
    assert weights.min() > 0 and weights.max() == 1
    assert torch.equal(weights, weights.flip(0))
    assert weights[0] < weights[1] < weights[2] < weights[3] == 1


def test_a_local_map_is_reassembled_exactly() -> None:
    """Blending cannot be the error source: for a per-pixel map every tile agrees where they overlap."""
    def local(z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(torch.tanh(z[:, :3] * 2), scale_factor=8, mode="nearest")

    latents = torch.randn(2, 4, 40, 24, generator=torch.Generator().manual_seed(0))
    tiling = VAETiling(mode="Always", tile=16, overlap=4)
    assert torch.allclose(tiled_decode(local, latents, tiling, 8), local(latents), atol=1e-6)


def test_tiled_encode_of_a_local_map_is_exact() -> None:
    def pooled(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 8)

    pixels = torch.rand(1, 3, 200, 136, generator=torch.Generator().manual_seed(1))
    tiling = VAETiling(mode="Always", tile=8, overlap=2)
    assert torch.allclose(tiled_encode(pooled, pixels, tiling, 8), pooled(pixels), atol=1e-6)


@pytest.fixture(scope="module")
def bundled():
    """The bundled model: its trained VAE (a random VAE's decode is not smooth enough to say anything)."""
    from pathlib import Path

    from modules.config import DeviceFlags
    from modules.device.policy import choose_device_policy
    from modules.models.files import CheckpointFile
    from modules.models.load import load_model

    path = Path(__file__).resolve().parents[2] / "models" / "Stable-diffusion" / "shapes-demo.safetensors"
    return load_model(CheckpointFile.from_file(path, path.name, "0" * 64), None,
                      choose_device_policy(DeviceFlags(), cuda_available=False))


@pytest.fixture(scope="module")
def vae(bundled) -> AutoencoderKL:
    return bundled.vae


def test_the_pipeline_tiles_above_the_threshold_only(bundled) -> None:
    import dataclasses

    from modules.pipeline.sampling_run import images_to_latents, latents_to_images

    y, x = torch.meshgrid(torch.linspace(-1, 1, 256), torch.linspace(-1, 1, 256), indexing="ij")
    image = torch.stack([x, y, ((x**2 + y**2) < 0.3).float() * 2 - 1])[None]
    with torch.inference_mode():
        latents = bundled.vae.encode(image) * bundled.detected.vae.scale_factor
    whole = latents_to_images(dataclasses.replace(bundled, vae_tiling=VAETiling(mode="Never")), latents)[0]
    small_tiles = VAETiling(mode="Automatic", min_pixels=128 * 128, tile=16, overlap=8)
    tiled = latents_to_images(dataclasses.replace(bundled, vae_tiling=small_tiles), latents)[0]
    below = latents_to_images(dataclasses.replace(bundled, vae_tiling=VAETiling(min_pixels=256 * 256, tile=16)), latents)[0]
    as_array = lambda image: torch.tensor(list(image.getdata()), dtype=torch.float32)  # noqa: E731
    assert torch.equal(as_array(below), as_array(whole))  # 256x256 is not above the threshold: decoded whole
    difference = (as_array(tiled) - as_array(whole)).abs()
    assert 0 < float(difference.mean()) < 0.03 * 255  # the whole-image-statistics test above: 0.04 on [-1, 1]
    encoded = images_to_latents(dataclasses.replace(bundled, vae_tiling=small_tiles), [whole])
    assert encoded.shape == (1, 4, 32, 32)


def test_whole_image_statistics_bring_tiled_decode_close_to_full(vae: AutoencoderKL) -> None:
    y, x = torch.meshgrid(torch.linspace(-1, 1, 256), torch.linspace(-1, 1, 256), indexing="ij")
    image = torch.stack([x, y, ((x**2 + y**2) < 0.3).float() * 2 - 1])[None]  # gradients and a disc
    tiling = VAETiling(mode="Always", tile=16, overlap=8)
    with torch.inference_mode():
        latents = vae.encode(image)
        full = vae.decode(latents)
        naive = tiled_decode(vae.decode, latents, tiling, 8)
        tiled = tiled_decode(vae.decode, latents, tiling, 8, net=vae)
        again = vae.decode(latents)
        encoded = tiled_encode(vae.encode, image, tiling, 8, net=vae)
    assert tiled.shape == full.shape and encoded.shape == latents.shape
    naive_error, error = float((naive - full).abs().mean()), float((tiled - full).abs().mean())
    print(f"bundled VAE 256x256 in 128-pixel tiles, mean |tiled - full| on [-1, 1]: per-tile statistics "
          f"{naive_error:.4f}, whole-image {error:.4f}, max {float((tiled - full).abs().max()):.3f}")
    assert error < naive_error / 3
    assert error < 0.05
    assert float((encoded - latents).abs().mean()) < 0.1 * float(latents.abs().mean())
    assert torch.equal(again, full)  # the hooks are gone afterwards


def test_automatic_tiles_only_above_the_threshold() -> None:
    tiling = VAETiling()
    assert not tiling.applies(1024 * 1024) and tiling.applies(1024 * 1024 + 1)
    assert VAETiling(mode="Always").applies(1) and not VAETiling(mode="Never").applies(10**9)
