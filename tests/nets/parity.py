"""Shared pieces of the parity tests: our nets and diffusers' nets from the same LDM checkpoint.

diffusers (a test-only oracle) converts the LDM-layout state dict with its own
``single_file_utils`` converters; we load the same dict through our loader's
strict paths. Tolerance: max |ours - theirs| / max |theirs| <= 1e-4 in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL as DiffusersAutoencoderKL
from diffusers import UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from torch import Tensor
from transformers import CLIPTextModel

from modules.models.load import split_checkpoint
from modules.nets.configs import TextEncoderConfig, TextEncoderLayout, UNetConfig, VAEConfig
from modules.nets.text_encoders import TextEncoder, clip_text_config
from modules.nets.unet import UNetModel
from modules.nets.vae import AutoencoderKL
from tests.nets.checkpoints import ldm_yaml_config, make_ldm_checkpoint

MAX_RELATIVE_DIFFERENCE = 1e-4


def relative_difference(ours: Tensor, theirs: Tensor) -> float:
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return ((ours.double() - theirs.double()).abs().max() / theirs.double().abs().max()).item()


@dataclass
class NetPair:
    ours: torch.nn.Module
    theirs: torch.nn.Module


@dataclass
class Family:
    unet: UNetConfig
    vae: VAEConfig
    text: TextEncoderConfig

    def checkpoint(self, seed: int = 0) -> dict[str, Tensor]:
        return make_ldm_checkpoint(self.unet, self.vae, self.text, seed=seed)

    def yaml(self) -> dict:
        return ldm_yaml_config(self.unet, self.vae, self.text)


def diffusers_unet(family: Family, checkpoint: dict[str, Tensor], heads_from_ours: bool = True) -> UNet2DConditionModel:
    config = sfu.create_unet_diffusers_config_from_ldm(family.yaml(), checkpoint)
    if heads_from_ours:
        # diffusers' "attention_head_dim" is the head count per level (legacy name); its
        # SD2 rule (channels // 64) gives 0 heads below 64 channels, ours at least 1.
        config["attention_head_dim"] = [family.unet.heads_at(family.unet.model_channels * m) for m in family.unet.channel_mult]
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    unet.load_state_dict(sfu.convert_ldm_unet_checkpoint(checkpoint, config), strict=True, assign=True)
    return unet.eval()


def diffusers_vae(family: Family, checkpoint: dict[str, Tensor]) -> DiffusersAutoencoderKL:
    config = sfu.create_vae_diffusers_config_from_ldm(family.yaml(), checkpoint)
    with torch.device("meta"):
        vae = DiffusersAutoencoderKL(**config)
    vae.load_state_dict(sfu.convert_ldm_vae_checkpoint(checkpoint, config), strict=True, assign=True)
    return vae.eval()


def diffusers_text_encoder(family: Family, checkpoint: dict[str, Tensor]) -> CLIPTextModel:
    """diffusers' SD2 text model keeps OpenCLIP-H's layers but the last (it conditions on the last one kept)."""
    config = clip_text_config(family.text)
    if family.text.layout is TextEncoderLayout.OPEN_CLIP:
        config.num_hidden_layers -= 1
    model = CLIPTextModel(config).eval()
    if family.text.layout is TextEncoderLayout.CLIP_L:
        converted = sfu.convert_ldm_clip_checkpoint(checkpoint)
    else:
        converted = sfu.convert_open_clip_checkpoint(model, checkpoint)
    converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    kept = {k: v for k, v in converted.items() if not _layer_index(k) >= config.num_hidden_layers}
    model.load_state_dict(kept, strict=True)
    return model


def unet_pair(family: Family, checkpoint: dict[str, Tensor]) -> NetPair:
    ours = UNetModel(family.unet).eval()
    ours.load_state_dict(split_checkpoint(checkpoint, Path("test")).unet, strict=True)
    return NetPair(ours, diffusers_unet(family, checkpoint))


def vae_pair(family: Family, checkpoint: dict[str, Tensor]) -> NetPair:
    ours = AutoencoderKL(family.vae).eval()
    ours.load_ldm_state_dict(split_checkpoint(checkpoint, Path("test")).vae)
    return NetPair(ours, diffusers_vae(family, checkpoint))


def text_pair(family: Family, checkpoint: dict[str, Tensor]) -> NetPair:
    ours = TextEncoder(family.text).eval()
    ours.load_ldm_state_dict(split_checkpoint(checkpoint, Path("test")).text_encoder)
    return NetPair(ours, diffusers_text_encoder(family, checkpoint))


def _layer_index(key: str) -> float:
    if not key.startswith("encoder.layers."):
        return -1
    return int(key.split(".")[2])


def latent_inputs(family: Family, size: int, seed: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, family.unet.in_channels, size, size, generator=generator)
    context = torch.randn(2, 77, family.unet.context_dim, generator=generator)
    return x, torch.tensor([17, 803]), context


def token_inputs(family: Family, seed: int = 2) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, family.text.vocab_size, (2, 77), generator=generator)


