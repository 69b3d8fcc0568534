"""Net configs of the SD1/SD2 families: the real full sizes and small random ones.

A family fixes what no tensor shape can show (attention heads, the text
encoder's activation, clip skip and pad token); everything else varies freely,
so detection must recover it from shapes.
"""

from __future__ import annotations

import random
from dataclasses import replace

import torch

from modules.nets.configs import TextEncoderConfig, TextEncoderLayout, UNetConfig, VAEConfig
from modules.nets.text_encoders import TextEncoder

Configs = tuple[UNetConfig, VAEConfig, TextEncoderConfig]


def clip_l_text(width: int, layers: int, intermediate: int, vocab: int = 49408,
                positions: int = 77) -> TextEncoderConfig:
    return TextEncoderConfig(
        layout=TextEncoderLayout.CLIP_L, vocab_size=vocab, hidden_size=width, num_layers=layers,
        num_heads=max(1, width // 64), intermediate_size=intermediate, max_positions=positions,
        hidden_act="quick_gelu", default_clip_skip=1, pad_token_id=49407,
    )


def random_clip_l_encoder(seed: int) -> TextEncoder:
    """A tiny CLIP-L-layout text encoder with the full vocabulary (real token ids fit), random weights."""
    encoder = TextEncoder(clip_l_text(width=32, layers=2, intermediate=64)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return encoder


def open_clip_text(width: int, layers: int, intermediate: int, vocab: int = 49408,
                   positions: int = 77) -> TextEncoderConfig:
    return TextEncoderConfig(
        layout=TextEncoderLayout.OPEN_CLIP, vocab_size=vocab, hidden_size=width, num_layers=layers,
        num_heads=max(1, width // 64), intermediate_size=intermediate, max_positions=positions,
        hidden_act="gelu", default_clip_skip=2, pad_token_id=0,
    )


def sd15_configs(inpainting: bool = False) -> Configs:
    """Stable Diffusion 1.5 (v1-inference.yaml; CLIP ViT-L/14)."""
    unet = UNetConfig(
        in_channels=9 if inpainting else 4, out_channels=4, model_channels=320, channel_mult=(1, 2, 4, 4),
        num_res_blocks=2, attention_resolutions=(4, 2, 1), num_heads=8, num_head_channels=-1,
        transformer_depth=1, context_dim=768, use_linear_in_transformer=False,
    )
    vae = VAEConfig(ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, z_channels=4, embed_dim=4)
    return unet, vae, clip_l_text(width=768, layers=12, intermediate=3072)


def sd21_configs(inpainting: bool = False) -> Configs:
    """Stable Diffusion 2.1 (v2-inference-v.yaml; OpenCLIP ViT-H/14, all 24 layers as stored)."""
    unet = UNetConfig(
        in_channels=9 if inpainting else 4, out_channels=4, model_channels=320, channel_mult=(1, 2, 4, 4),
        num_res_blocks=2, attention_resolutions=(4, 2, 1), num_heads=-1, num_head_channels=64,
        transformer_depth=1, context_dim=1024, use_linear_in_transformer=True,
    )
    vae = VAEConfig(ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, z_channels=4, embed_dim=4)
    return unet, vae, open_clip_text(width=1024, layers=24, intermediate=4096)


def tiny_configs(sd2: bool = False, inpainting: bool = False) -> Configs:
    """The smallest sensible model of a family (GroupNorm-friendly widths of 32)."""
    text = (open_clip_text if sd2 else clip_l_text)(width=32, layers=2, intermediate=64, vocab=1000)
    unet = UNetConfig(
        in_channels=9 if inpainting else 4, out_channels=4, model_channels=32, channel_mult=(1, 2),
        num_res_blocks=1, attention_resolutions=(2, 1), transformer_depth=1, context_dim=32,
        **_unet_family_fields(sd2),
    )
    vae = VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=4, embed_dim=4)
    return unet, vae, text


def random_configs(rng: random.Random, sd2: bool, inpainting: bool) -> Configs:
    """A random model of the family: any number of levels, widths, depths and layers."""
    width = rng.choice((32, 64, 128))
    text_factory = open_clip_text if sd2 else clip_l_text
    text = text_factory(width=width, layers=rng.randint(1, 3), intermediate=width * rng.choice((2, 4)),
                        vocab=rng.choice((1000, 49408)), positions=rng.choice((77, 16)))
    vae = random_vae(rng)
    levels = rng.randint(1, 4)
    attention = tuple(sorted((2**level for level in range(levels) if rng.random() < 0.6), reverse=True))
    unet = UNetConfig(
        in_channels=2 * vae.embed_dim + 1 if inpainting else vae.embed_dim, out_channels=vae.embed_dim,
        model_channels=rng.choice((32, 64)), channel_mult=tuple(rng.randint(1, 4) for _ in range(levels)),
        num_res_blocks=rng.randint(1, 3), attention_resolutions=attention, transformer_depth=rng.randint(1, 2),
        context_dim=width, use_linear_in_transformer=rng.random() < 0.5, **_unet_family_fields(sd2),
    )
    return unet, vae, text


def random_vae(rng: random.Random) -> VAEConfig:
    z_channels = rng.choice((4, 8))
    return VAEConfig(
        ch=rng.choice((32, 64)), ch_mult=tuple(rng.randint(1, 4) for _ in range(rng.randint(1, 4))),
        num_res_blocks=rng.randint(1, 3), z_channels=z_channels, embed_dim=rng.choice((z_channels, 4)),
    )


def _unet_family_fields(sd2: bool) -> dict:
    if sd2:
        return {"num_heads": -1, "num_head_channels": 64}
    return {"num_heads": 8, "num_head_channels": -1}


def with_in_channels(configs: Configs, in_channels: int) -> Configs:
    unet, vae, text = configs
    return replace(unet, in_channels=in_channels), vae, text
