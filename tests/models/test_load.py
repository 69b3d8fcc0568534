"""The loader: prefix split, strict loading, tolerated non-weights, layouts cross-checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.config import DeviceFlags
from modules.device.policy import choose_device_policy
from modules.models.families import ModelFamily
from modules.models.files import CheckpointFile
from modules.models.load import CheckpointLayoutError, load_model, split_checkpoint
from tests.models.fake_layouts import ldm_key_shapes
from tests.models.family_configs import random_configs, tiny_configs
from tests.nets.checkpoints import ldm_shapes, make_ldm_checkpoint

import random


def load(path: Path):
    file = CheckpointFile.from_file(path, path.name, "1" * 64)
    return load_model(file, None, choose_device_policy(DeviceFlags(), cuda_available=False))


@pytest.mark.parametrize("seed", range(6))
def test_nets_have_exactly_the_independently_described_layout(seed: int) -> None:
    """Our nets' keys and shapes equal tests/models/fake_layouts.py, written from the LDM description."""
    rng = random.Random(seed)
    configs = random_configs(rng, sd2=seed % 2 == 1, inpainting=seed % 3 == 0)
    ours = {k: tuple(v) for k, v in ldm_shapes(*configs).items()}
    assert ours == {k: tuple(v) for k, v in ldm_key_shapes(*configs).items()}


@pytest.mark.parametrize("sd2, inpainting, family", [
    (False, False, ModelFamily.SD1), (False, True, ModelFamily.SD1_INPAINT),
    (True, False, ModelFamily.SD2), (True, True, ModelFamily.SD2_INPAINT),
])
def test_every_family_loads_from_a_file(tmp_path: Path, sd2: bool, inpainting: bool, family: ModelFamily) -> None:
    configs = tiny_configs(sd2=sd2, inpainting=inpainting)
    state = make_ldm_checkpoint(*configs, seed=2)
    save_file(state, str(tmp_path / "m.safetensors"))
    model = load(tmp_path / "m.safetensors")
    assert model.detected.family is family
    assert model.unet.config == configs[0]
    assert all(not p.is_meta and p.dtype == torch.float32 for p in model.unet.parameters())
    assert torch.equal(model.unet.state_dict()["input_blocks.0.0.weight"], state["model.diffusion_model.input_blocks.0.0.weight"])


def test_non_weight_entries_are_tolerated_and_the_schedule_is_kept(tmp_path: Path) -> None:
    state = make_ldm_checkpoint(*tiny_configs())
    alphas = torch.linspace(0.999, 0.01, 1000)
    extras = {"alphas_cumprod": alphas, "betas": torch.zeros(1000), "model_ema.decay": torch.tensor(0.999),
              "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(77)[None]}
    save_file({**state, **extras}, str(tmp_path / "m.safetensors"))
    model = load(tmp_path / "m.safetensors")
    assert torch.equal(model.alphas_cumprod, alphas)


def test_unexpected_top_level_key_is_an_error() -> None:
    state = {**make_ldm_checkpoint(*tiny_configs()), "mystery.weight": torch.zeros(1)}
    with pytest.raises(CheckpointLayoutError, match="mystery.weight"):
        split_checkpoint(state, Path("x.safetensors"))


def test_missing_unet_key_is_an_error_naming_the_file(tmp_path: Path) -> None:
    state = make_ldm_checkpoint(*tiny_configs())
    del state["model.diffusion_model.out.2.bias"]
    save_file(state, str(tmp_path / "cut.safetensors"))
    with pytest.raises(CheckpointLayoutError, match=r"(?s)cut.safetensors: \(UNet\).*out.2.bias"):
        load(tmp_path / "cut.safetensors")


def test_wrong_shape_is_an_error(tmp_path: Path) -> None:
    state = make_ldm_checkpoint(*tiny_configs())
    key = "first_stage_model.decoder.conv_out.bias"
    state[key] = torch.zeros(5)  # detection reads the encoder; the decoder's out conv must still fit
    save_file(state, str(tmp_path / "odd.safetensors"))
    with pytest.raises(CheckpointLayoutError, match="VAE"):
        load(tmp_path / "odd.safetensors")
