"""Random-weight checkpoints in the LDM layout, and the CompVis config diffusers' converters read.

Weights are drawn from a seeded generator (never the global RNG), scaled by
1/sqrt(fan-in) so activations stay O(1) through the nets and comparisons are
meaningful. Keys and shapes come from our nets built on the meta device; that
they are the real layout is checked independently (tests/models/fake_layouts.py
and diffusers' converters, which raise on a missing key).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from modules.nets.configs import TextEncoderConfig, TextEncoderLayout, UNetConfig, VAEConfig
from modules.nets.text_encoders import TextEncoder
from modules.nets.unet import UNetModel
from modules.nets.vae import AutoencoderKL
from tests.models.family_configs import sd15_configs, sd21_configs, tiny_configs

SD15_UNET, SD15_VAE, SD15_TEXT = sd15_configs()
SD21_UNET, SD21_VAE, SD21_TEXT = sd21_configs()
TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT = tiny_configs(sd2=False)
TINY_SD2_UNET, TINY_SD2_VAE, TINY_SD2_TEXT = tiny_configs(sd2=True)


def ldm_shapes(unet: UNetConfig, vae: VAEConfig, text: TextEncoderConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        nets = {
            "model.diffusion_model.": UNetModel(unet).state_dict(),
            "first_stage_model.": AutoencoderKL(vae).state_dict(),
            "cond_stage_model.": TextEncoder(text).ldm_state_dict(),
        }
    return {prefix + key: value.shape for prefix, state in nets.items() for key, value in state.items()}


def random_tensor(key: str, shape: torch.Size, generator: torch.Generator) -> Tensor:
    noise = torch.randn(shape, generator=generator)
    if len(shape) == 1:
        # Norm scales near 1, biases and norm shifts small.
        return 1.0 + 0.1 * noise if key.endswith(("norm.weight", "norm1.weight", "norm2.weight", "norm3.weight",
                                                  "norm_out.weight", "ln_1.weight", "ln_2.weight", "ln_final.weight",
                                                  "layer_norm1.weight", "layer_norm2.weight",
                                                  "final_layer_norm.weight", "in_layers.0.weight",
                                                  "out_layers.0.weight", "out.0.weight")) else 0.02 * noise
    if "embedding" in key:
        return 0.02 * noise
    fan_in = math.prod(shape[1:])
    return noise / math.sqrt(fan_in)


def make_ldm_checkpoint(
    unet: UNetConfig, vae: VAEConfig, text: TextEncoderConfig, seed: int = 0
) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: random_tensor(key, shape, generator) for key, shape in sorted(ldm_shapes(unet, vae, text).items())}


def ldm_yaml_config(unet: UNetConfig, vae: VAEConfig, text: TextEncoderConfig) -> dict:
    """The parsed CompVis ``v1-inference.yaml`` / ``v2-inference.yaml`` equivalent for these sizes."""
    unet_params = {
        "image_size": 32, "in_channels": unet.in_channels, "out_channels": unet.out_channels,
        "model_channels": unet.model_channels, "attention_resolutions": list(unet.attention_resolutions),
        "num_res_blocks": unet.num_res_blocks, "channel_mult": list(unet.channel_mult),
        "transformer_depth": unet.transformer_depth, "context_dim": unet.context_dim,
        "use_linear_in_transformer": unet.use_linear_in_transformer, "use_checkpoint": False, "legacy": False,
    }
    if unet.num_head_channels > 0:
        unet_params["num_head_channels"] = unet.num_head_channels
    else:
        unet_params["num_heads"] = unet.num_heads
    ddconfig = {
        "double_z": True, "z_channels": vae.z_channels, "resolution": 256, "in_channels": vae.in_channels,
        "out_ch": vae.out_ch, "ch": vae.ch, "ch_mult": list(vae.ch_mult), "num_res_blocks": vae.num_res_blocks,
        "attn_resolutions": [], "dropout": 0.0,
    }
    embedder = (
        "ldm.modules.encoders.modules.FrozenCLIPEmbedder" if text.layout is TextEncoderLayout.CLIP_L
        else "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder"
    )
    return {"model": {"params": {
        "scale_factor": vae.scale_factor,
        "unet_config": {"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel", "params": unet_params},
        "first_stage_config": {"params": {"embed_dim": vae.embed_dim, "ddconfig": ddconfig}},
        "cond_stage_config": {"target": embedder},
    }}}
