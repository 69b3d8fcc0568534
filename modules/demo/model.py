"""The bundled model's sizes and how its weights become an SD1-layout checkpoint file.

The nets are the same classes that load user checkpoints (LDM UNet with
cross-attention, AutoencoderKL with f=8 and 4 latent channels, CLIPTextModel
with the real CLIP tokenizer), only narrower, so the saved file goes through
exactly the detection, loading and sampling path of any SD1 checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from modules.models.detect import UNET_PREFIX, VAE_PREFIX
from modules.nets.configs import TextEncoderConfig, TextEncoderLayout, UNetConfig, VAEConfig
from modules.nets.text_encoders import TextEncoder
from modules.nets.unet import UNetModel
from modules.nets.vae import AutoencoderKL

DEMO_TITLE = "Shapes demo"
DEMO_FILE_NAME = "shapes-demo.safetensors"
DEMO_DESCRIPTION = (
    "A small Stable Diffusion 1.x-layout model trained on procedurally drawn pictures of one shape "
    "(circle, square, triangle, star) in one of eight colours on a background of another colour. "
    "Try \"a yellow star on a purple background\"."
)

# VAE: four levels, so three downsamplings: f = 8 and 4 latent channels, as SD1's autoencoder.
# 64 channels at every level, not fewer at the top: SD's GroupNorms have 32 groups, and with 32
# channels the decoder's last norm (norm_out, just before conv_out) is a per-channel instance norm,
# which maps a flat region to the same value whatever its colour. Such a decoder can carry about one
# flat colour per picture (measured: 46% shape colour after the whole CPU recipe); two channels per
# group let it carry both. SD1 has four (128 channels); 64 keeps the file under 25 MB.
DEMO_VAE = VAEConfig(ch=64, ch_mult=(1, 1, 1, 1), num_res_blocks=1, z_channels=4, embed_dim=4)
# UNet: SD1's 8 heads per transformer (the count SD1 checkpoints are read with).
DEMO_UNET = UNetConfig(
    model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(1, 2, 4),
    num_heads=8, num_head_channels=-1, transformer_depth=1, context_dim=64,
)
# Text encoder: CLIP-L's layout and vocabulary (49408 tokens, QuickGELU), two narrow layers.
DEMO_TEXT = TextEncoderConfig(
    layout=TextEncoderLayout.CLIP_L, vocab_size=49408, hidden_size=64, num_layers=2, num_heads=1,
    intermediate_size=256, max_positions=77, hidden_act="quick_gelu", default_clip_skip=1, pad_token_id=49407,
)


def build_nets(
    generator: torch.Generator, unet: UNetConfig = DEMO_UNET, vae: VAEConfig = DEMO_VAE,
    text: TextEncoderConfig = DEMO_TEXT,
) -> tuple[UNetModel, AutoencoderKL, TextEncoder]:
    """The three nets, initialised from ``generator`` alone (the caller's global RNG state is kept)."""
    with torch.random.fork_rng(devices=[]):  # constructors draw default inits; ours replace them all below
        nets = UNetModel(unet), AutoencoderKL(vae), TextEncoder(text)
    for net in nets:
        initialise_weights(net, generator)
    return nets


@torch.no_grad()
def initialise_weights(net: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation drawn from an explicit generator: Linear and Conv weights and
    biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming uniform with a = sqrt(5)); embeddings
    N(0, 0.02) as CLIP initialises them (Radford et al. 2021); norms weight 1, bias 0."""
    done: set[int] = set()
    for module in net.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            bound = 1.0 / math.sqrt(module.weight[0].numel())
            for param in (module.weight, module.bias):
                if param is not None:
                    nn.init.uniform_(param, -bound, bound, generator=generator)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02, generator=generator)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            nn.init.ones_(module.weight), nn.init.zeros_(module.bias)
        else:
            continue
        done.update(id(p) for p in module.parameters(recurse=False))
    missed = [name for name, p in net.named_parameters() if id(p) not in done]
    if missed:
        raise TypeError(f"no initialisation rule for {missed[:5]}")


def checkpoint_state(unet: UNetModel, vae: AutoencoderKL, text_encoder: TextEncoder, dtype: torch.dtype) -> dict[str, Tensor]:
    """The three nets under their LDM key prefixes, as one SD1 checkpoint stores them."""
    state = {UNET_PREFIX + k: v for k, v in unet.state_dict().items()}
    state |= {VAE_PREFIX + k: v for k, v in vae.state_dict().items()}
    state |= {"cond_stage_model." + k: v for k, v in text_encoder.ldm_state_dict().items()}
    return {k: v.detach().to("cpu", dtype).contiguous() for k, v in sorted(state.items())}


def modelspec_metadata(resolution: int, preview_factors: list[list[float]], training: dict) -> dict[str, str]:
    """ModelSpec (Stability AI's safetensors metadata convention) plus the preview factors."""
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1",
        "modelspec.implementation": "https://github.com/CompVis/stable-diffusion",
        "modelspec.title": DEMO_TITLE,
        "modelspec.description": DEMO_DESCRIPTION,
        "modelspec.resolution": f"{resolution}x{resolution}",
        "modelspec.prediction_type": "epsilon",
        "modelspec.license": "CC0-1.0",
        "modelspec.latent_rgb_factors": json.dumps(preview_factors),
        "demo.training": json.dumps(training, sort_keys=True),
    }


def save_checkpoint(path: Path, state: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Write the safetensors file atomically (a temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    save_file(state, str(temporary), metadata=metadata)
    os.replace(temporary, path)
