"""The fake LDM layout against an outside oracle: diffusers' LDM-checkpoint converters.

diffusers converts an LDM-layout checkpoint into its own models' keys; if our
generated layout were wrong anywhere (a missing skip connection, a misplaced
Upsample index, a wrong width), the converted dict would not match the shapes
of the diffusers model built from the same sizes. Tensors live on the meta
device, so the full-size layouts cost no memory.
"""

from __future__ import annotations

import random

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from transformers import CLIPTextConfig, CLIPTextModel

from modules.nets.configs import TextEncoderLayout
from tests.models.family_configs import random_configs, sd15_configs, sd21_configs, tiny_configs
from tests.models.fake_layouts import checkpoint_extra_key_shapes, ldm_key_shapes

# diffusers drops the last OpenCLIP layer of SD2 checkpoints by key name (resblocks.23):
# it conditions on the penultimate layer, so its model has one layer less than the file.
_SD2_FILE_LAYERS = 24


def _original_config(unet, vae) -> dict:
    """The parsed CompVis yaml that diffusers' converters read."""
    unet_params = dict(
        in_channels=unet.in_channels, out_channels=unet.out_channels, model_channels=unet.model_channels,
        attention_resolutions=list(unet.attention_resolutions), num_res_blocks=unet.num_res_blocks,
        channel_mult=list(unet.channel_mult), num_heads=8, transformer_depth=unet.transformer_depth,
        use_linear_in_transformer=unet.use_linear_in_transformer, context_dim=unet.context_dim,
    )
    ddconfig = dict(double_z=True, z_channels=vae.z_channels, resolution=256, in_channels=vae.in_channels,
                    out_ch=vae.out_ch, ch=vae.ch, ch_mult=list(vae.ch_mult), num_res_blocks=vae.num_res_blocks,
                    attn_resolutions=[], dropout=0.0)
    return {"model": {"params": {"unet_config": {"params": unet_params},
                                 "first_stage_config": {"params": {"embed_dim": vae.embed_dim, "ddconfig": ddconfig}}}}}


def _meta_checkpoint(configs) -> dict[str, torch.Tensor]:
    unet, vae, text = configs
    shapes = ldm_key_shapes(unet, vae, text)
    shapes.update(checkpoint_extra_key_shapes(shapes, text))
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def _assert_same_shapes(converted: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
    want = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    got = {key: tuple(value.shape) for key, value in converted.items()}
    assert sorted(set(want) - set(got)) == [], "keys the layout lacks"
    assert sorted(set(got) - set(want)) == [], "keys the layout has in excess"
    assert [key for key in want if want[key] != got[key]] == []


def _check_unet_and_vae(configs) -> None:
    unet, vae, _ = configs
    checkpoint = _meta_checkpoint(configs)
    original = _original_config(unet, vae)
    unet_config = sfu.create_unet_diffusers_config_from_ldm(original, checkpoint)
    unet_config["out_channels"] = unet.out_channels
    vae_config = sfu.create_vae_diffusers_config_from_ldm(original, checkpoint)
    with torch.device("meta"):
        unet_model, vae_model = UNet2DConditionModel(**unet_config), AutoencoderKL(**vae_config)
    _assert_same_shapes(sfu.convert_ldm_unet_checkpoint(dict(checkpoint), unet_config), unet_model)
    vae_part = {k[len("first_stage_model."):]: v for k, v in checkpoint.items() if k.startswith("first_stage_model.")}
    _assert_same_shapes(sfu.convert_ldm_vae_checkpoint(vae_part, vae_config), vae_model)


def _check_text_encoder(configs) -> None:
    text = configs[2]
    checkpoint = _meta_checkpoint(configs)
    layers = text.num_layers
    if text.layout is TextEncoderLayout.OPEN_CLIP and layers == _SD2_FILE_LAYERS:
        layers -= 1
    config = CLIPTextConfig(vocab_size=text.vocab_size, hidden_size=text.hidden_size, num_hidden_layers=layers,
                            intermediate_size=text.intermediate_size, num_attention_heads=text.num_heads,
                            max_position_embeddings=text.max_positions)
    with torch.device("meta"):
        model = CLIPTextModel(config)
    if text.layout is TextEncoderLayout.CLIP_L:
        converted = sfu.convert_ldm_clip_checkpoint(checkpoint)
    else:
        converted = sfu.convert_open_clip_checkpoint(model, checkpoint)
    # transformers 5 CLIPTextModel keys have no text_model. prefix; position_ids is a
    # non-persistent buffer and text_projection belongs to the projection model.
    converted = {k.removeprefix("text_model."): v for k, v in converted.items()
                 if not k.endswith("position_ids") and k != "text_projection.weight"}
    _assert_same_shapes(converted, model)


FULL_SIZE = [sd15_configs(), sd15_configs(inpainting=True), sd21_configs(), sd21_configs(inpainting=True)]


@pytest.mark.parametrize("configs", FULL_SIZE, ids=["sd15", "sd15-inpaint", "sd21", "sd21-inpaint"])
def test_full_size_layout_matches_diffusers(configs):
    _check_unet_and_vae(configs)
    _check_text_encoder(configs)


def _random_oracle_configs(count: int) -> list:
    rng = random.Random(20240611)
    picked = []
    while len(picked) < count:
        configs = random_configs(rng, sd2=len(picked) % 2 == 1, inpainting=len(picked) % 3 == 0)
        unet, vae, _ = configs
        # diffusers can only express embed_dim == z_channels and a first level of width
        # model_channels (its conv_in outputs block_out_channels[0]); LDM allows more.
        if vae.embed_dim == vae.z_channels and unet.channel_mult[0] == 1 and vae.ch_mult[0] == 1:
            picked.append(configs)
    return picked


@pytest.mark.parametrize("configs", [tiny_configs(), tiny_configs(sd2=True)] + _random_oracle_configs(10))
def test_small_layouts_match_diffusers(configs):
    _check_unet_and_vae(configs)
    _check_text_encoder(configs)


def test_full_sd15_has_the_published_tensor_counts():
    # Published counts for SD1.5: 686 UNet, 248 VAE and 196 CLIP-L parameters.
    unet, vae, text = sd15_configs()
    shapes = ldm_key_shapes(unet, vae, text)
    prefixes = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")
    assert [sum(k.startswith(p) for k in shapes) for p in prefixes] == [686, 248, 196]
    assert len(shapes) == 686 + 248 + 196
