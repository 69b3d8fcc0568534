"""Sample grids of a checkpoint file through the normal pipeline (training progress pictures)."""

from __future__ import annotations

from pathlib import Path

import torch

from modules.device.policy import choose_device_policy
from modules.config import DeviceFlags
from modules.models.files import CheckpointFile
from modules.models.hashing import sha256_file
from modules.models.load import LoadedModel, load_model
from modules.models.safe_load import declared_resolution
from modules.params import Txt2ImgParams
from modules.pipeline.generate import generate_txt2img
from modules.pipeline.grid import image_grid

SAMPLE_PROMPTS = (
    "a red circle on a blue background", "a yellow star on a purple background",
    "a white square on a black background", "a green triangle on an orange background",
    "blue star, yellow background", "a small purple circle on a white background",
    "a large orange square on a green background", "a black triangle on the left on a red background",
)


def load_checkpoint_file(path: Path, device: torch.device) -> LoadedModel:
    """A checkpoint file loaded as the app loads it (detection, strict loading, the device's dtypes)."""
    policy = choose_device_policy(DeviceFlags(use_cpu=device.type == "cpu"), device.type == "cuda")
    return load_model(CheckpointFile.from_file(path, path.name, sha256_file(path)), None, policy)


def native_resolution(path: Path, fallback: int = 512) -> tuple[int, int]:
    return declared_resolution(path) or (fallback, fallback)


def save_sample_grid(checkpoint: Path, out: Path, device: torch.device, seed: int = 1) -> None:
    model = load_checkpoint_file(checkpoint, device)
    width, height = native_resolution(checkpoint)
    images = []
    for prompt in SAMPLE_PROMPTS:
        params = Txt2ImgParams(prompt=prompt, width=width, height=height, seed=seed, steps=20, cfg_scale=7.0)
        images += [result.image for result in generate_txt2img(model, params.validate(), None)]
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, rows=2).save(out)
