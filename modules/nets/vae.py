"""The KL-regularised autoencoder of Stable Diffusion (Rombach et al. 2022, section 3.1;
VQGAN-style encoder/decoder of Esser et al. 2021), downsampling by 2**(levels-1).

Attribute paths equal the checkpoint keys after ``first_stage_model.``. The
decoder's ``up`` list is indexed like the LDM code (``up[0]`` is the
full-resolution level, built last), so keys match without renaming.
Scaling latents by ``VAEConfig.scale_factor`` is the caller's job.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.nets.configs import VAEConfig
from modules.nets.unet import norm

# LDM's autoencoder normalises with eps 1e-6 (the UNet uses 1e-5).
VAE_NORM_EPS = 1e-6


class VAEResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = norm(in_channels, VAE_NORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = norm(out_channels, VAE_NORM_EPS)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        shortcut = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return shortcut + h


class VAEAttention(nn.Module):
    """Single-head self-attention over positions, with 1x1-conv projections (keys q, k, v, proj_out)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = norm(channels, VAE_NORM_EPS)
        self.q, self.k, self.v = (nn.Conv2d(channels, channels, 1) for _ in range(3))
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x)

        def positions(t: Tensor) -> Tensor:
            return t.reshape(batch, 1, channels, height * width).transpose(2, 3)

        out = F.scaled_dot_product_attention(positions(self.q(h)), positions(self.k(h)), positions(self.v(h)))
        out = out.transpose(2, 3).reshape(batch, channels, height, width)
        return x + self.proj_out(out)


class VAEDownsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        # LDM pads asymmetrically (right/bottom only) before the stride-2 conv.
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class VAEUpsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class VAEMid(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = VAEResnetBlock(channels, channels)
        self.attn_1 = VAEAttention(channels)
        self.block_2 = VAEResnetBlock(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class VAELevel(nn.Module):
    """One resolution level: ``block`` (resnets), empty ``attn`` (SD uses none), optional resampler."""

    def __init__(self, blocks: list[VAEResnetBlock], resample: nn.Module | None, resample_name: str):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList()
        self.resample_name = resample_name
        if resample is not None:
            self.add_module(resample_name, resample)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.block:
            x = block(x)
        resample = getattr(self, self.resample_name, None)
        return resample(x) if resample is not None else x


class Encoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(c.in_channels, c.ch, 3, padding=1)
        self.down = nn.ModuleList()
        channels = c.ch
        for level, mult in enumerate(c.ch_mult):
            out = c.ch * mult
            blocks = [VAEResnetBlock(channels if i == 0 else out, out) for i in range(c.num_res_blocks)]
            last = level == len(c.ch_mult) - 1
            self.down.append(VAELevel(blocks, None if last else VAEDownsample(out), "downsample"))
            channels = out
        self.mid = VAEMid(channels)
        self.norm_out = norm(channels, VAE_NORM_EPS)
        self.conv_out = nn.Conv2d(channels, 2 * c.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        channels = c.ch * c.ch_mult[-1]
        self.conv_in = nn.Conv2d(c.z_channels, channels, 3, padding=1)
        self.mid = VAEMid(channels)
        levels: list[VAELevel] = []
        for level in reversed(range(len(c.ch_mult))):
            out = c.ch * c.ch_mult[level]
            blocks = [VAEResnetBlock(channels if i == 0 else out, out) for i in range(c.num_res_blocks + 1)]
            levels.insert(0, VAELevel(blocks, VAEUpsample(out) if level else None, "upsample"))
            channels = out
        self.up = nn.ModuleList(levels)
        self.norm_out = norm(channels, VAE_NORM_EPS)
        self.conv_out = nn.Conv2d(channels, c.out_ch, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


# Mid-attention projections that some VAE files store as Linear ([C, C]) rather than 1x1 conv ([C, C, 1, 1]).
_ATTENTION_PROJECTIONS = (".attn_1.q.weight", ".attn_1.k.weight", ".attn_1.v.weight", ".attn_1.proj_out.weight")


def vae_state_with_conv_attention(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {
        key: value[:, :, None, None] if key.endswith(_ATTENTION_PROJECTIONS) and value.ndim == 2 else value
        for key, value in state.items()
    }


class AutoencoderKL(nn.Module):
    """``first_stage_model``: images in [-1, 1] <-> unscaled latents."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * config.z_channels, 2 * config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    def load_ldm_state_dict(self, state: Mapping[str, Tensor], assign: bool = False) -> None:
        """Strictly load checkpoint-layout keys (prefix stripped), accepting Linear-shaped attention weights."""
        self.load_state_dict(vae_state_with_conv_attention(state), strict=True, assign=assign)

    def encode_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of the diagonal Gaussian posterior q(z|x)."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        # LDM clamps the log-variance for numerical safety.
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        """The posterior's mean, or a sample ``mean + std * noise`` when the caller supplies noise."""
        mean, logvar = self.encode_moments(x)
        if noise is None:
            return mean
        return mean + torch.exp(0.5 * logvar) * noise.to(mean)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(z))
