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
from tests.models.fake_layouts import ldm_key_shapes, old_clip_layout
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


# ----- the files people have: old CLIP layout, EMA copies, half and 8-bit floats -----

def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "global_step": 470000}, path)
    return path


@pytest.mark.parametrize("name", ["old.ckpt", "old.safetensors"])
def test_sd1_file_without_text_model_level_loads(tmp_path: Path, name: str) -> None:
    state = make_ldm_checkpoint(*tiny_configs(), seed=4)
    position_ids = {"cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(77)[None]}
    old = old_clip_layout({**state, **position_ids})
    assert not any("text_model" in key for key in old)
    for module in ("embeddings.", "encoder.", "final_layer_norm."):
        assert any(key.startswith("cond_stage_model.transformer." + module) for key in old)
    model = load(_save(old, tmp_path / name))
    assert model.detected.family is ModelFamily.SD1
    text_state = {"cond_stage_model." + k: v for k, v in model.text_encoder.ldm_state_dict().items()}
    expected = {k: v for k, v in state.items() if k.startswith("cond_stage_model.")}
    assert text_state.keys() == expected.keys()
    assert all(torch.equal(text_state[k], expected[k]) for k in expected)


def test_ema_copy_is_ignored_for_the_regular_weights_and_said(tmp_path: Path, caplog) -> None:
    state = make_ldm_checkpoint(*tiny_configs(), seed=5)
    # LDM's LitEma names its shadow tensors after the UNet's parameters with the dots removed
    unet_keys = [k for k in state if k.startswith("model.diffusion_model.")]
    ema = {"model_ema." + k.removeprefix("model.").replace(".", ""): torch.full_like(state[k], 7.0) for k in unet_keys}
    ema |= {"model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(1000)}
    with caplog.at_level("WARNING"):
        model = load(_save({**state, **ema}, tmp_path / "ema.ckpt"))
    unet_state = model.unet.state_dict()
    assert all(torch.equal(unet_state[k.removeprefix("model.diffusion_model.")], state[k]) for k in unet_keys)
    notes = [r.getMessage() for r in caplog.records if "EMA" in r.getMessage()]
    assert len(notes) == 1 and "ema.ckpt" in notes[0] and "regular weights" in notes[0]

    caplog.clear()
    with caplog.at_level("WARNING"):
        load(_save({**state, "model_ema.decay": torch.tensor(0.9999)}, tmp_path / "counters-only.ckpt"))
    assert not [r for r in caplog.records if "EMA" in r.getMessage()]


@pytest.mark.parametrize("dtype, suffix", [
    (torch.float16, ".ckpt"), (torch.float16, ".safetensors"), (torch.bfloat16, ".ckpt"),
    (torch.bfloat16, ".safetensors"), (torch.float8_e4m3fn, ".safetensors"), (torch.float8_e5m2, ".safetensors"),
])
def test_reduced_precision_files_load_on_cpu_upcast(tmp_path: Path, dtype: torch.dtype, suffix: str) -> None:
    state = make_ldm_checkpoint(*tiny_configs(), seed=6)
    stored = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model = load(_save(stored, tmp_path / f"m{suffix}"))
    for net, prefix in ((model.unet, "model.diffusion_model."), (model.vae, "first_stage_model.")):
        assert all(p.dtype == torch.float32 for p in net.parameters())
        loaded = net.state_dict()
        for key in ("conv_in.weight", "input_blocks.0.0.weight", "encoder.conv_in.weight"):
            if key in loaded:
                assert torch.equal(loaded[key], stored[prefix + key].float())
    token = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
    text = model.text_encoder.ldm_state_dict()[token.removeprefix("cond_stage_model.")]
    assert text.dtype == torch.float32 and torch.equal(text, stored[token].float())
