"""Full-size SD1.5 and SD2.1 architectures: a random-weight checkpoint file written at test time
is detected and loaded by our loader, and every net matches diffusers converted from the same file.

Tolerance: max |ours - theirs| / max |theirs| <= 1e-4, fp32 on CPU, at small
spatial sizes (latent 8x8, image 64x64) so the test stays in seconds.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from modules.config import DeviceFlags
from modules.device.policy import choose_device_policy
from modules.models.families import ModelFamily, Prediction
from modules.models.files import CheckpointFile
from modules.models.load import LoadedModel, load_model
from tests.nets.checkpoints import SD15_TEXT, SD15_UNET, SD15_VAE, SD21_TEXT, SD21_UNET, SD21_VAE
from tests.nets.parity import (
    MAX_RELATIVE_DIFFERENCE, Family, diffusers_text_encoder, diffusers_unet, diffusers_vae, latent_inputs,
    relative_difference, token_inputs,
)

pytestmark = pytest.mark.fullsize

CASES = {
    "sd15": (Family(SD15_UNET, SD15_VAE, SD15_TEXT), ModelFamily.SD1),
    "sd21": (Family(SD21_UNET, SD21_VAE, SD21_TEXT), ModelFamily.SD2),
}


def write_checkpoint(family: Family, path: Path) -> None:
    # Stored in fp16 as released checkpoints are; both sides compute in fp32 from the same values.
    save_file({k: v.half() for k, v in family.checkpoint(seed=11).items()}, str(path))
    gc.collect()


def load_ours(path: Path) -> LoadedModel:
    checkpoint = CheckpointFile.from_file(path, path.name, "0" * 64)
    return load_model(checkpoint, None, choose_device_policy(DeviceFlags(), cuda_available=False))


@pytest.mark.parametrize("name", CASES)
@torch.inference_mode()
def test_full_size_checkpoint_loads_and_matches_diffusers(name: str, tmp_path: Path) -> None:
    family, expected_family = CASES[name]
    path = tmp_path / f"{name}.safetensors"
    write_checkpoint(family, path)
    ours = load_ours(path)
    assert ours.detected.family is expected_family
    assert (ours.detected.unet, ours.detected.vae, ours.detected.text_encoder) == (family.unet, family.vae, family.text)
    if expected_family is ModelFamily.SD2:
        assert ours.detected.prediction is Prediction.V  # the documented fallback for SD2 without metadata
    state = {k: v.float() for k, v in load_file(str(path)).items()}

    x, t, context = latent_inputs(family, size=8)
    theirs = diffusers_unet(family, state, heads_from_ours=False)  # full size: diffusers' own head rule
    assert relative_difference(ours.unet(x, t, context), theirs(x, t, encoder_hidden_states=context).sample) <= MAX_RELATIVE_DIFFERENCE
    del theirs
    gc.collect()

    vae = diffusers_vae(family, state)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 2 - 1
    mean, _ = ours.vae.encode_moments(image)
    assert relative_difference(mean, vae.encode(image).latent_dist.mean) <= MAX_RELATIVE_DIFFERENCE
    assert relative_difference(ours.vae.decode(mean), vae.decode(mean).sample) <= MAX_RELATIVE_DIFFERENCE

    tokens = token_inputs(family)
    text = diffusers_text_encoder(family, state)
    assert relative_difference(ours.text_encoder.encode(tokens), text(input_ids=tokens).last_hidden_state) <= MAX_RELATIVE_DIFFERENCE
