"""The latent-diffusion UNet of Stable Diffusion (Rombach et al. 2022, "High-Resolution
Image Synthesis with Latent Diffusion Models"; UNet of Ho et al. 2020 / Dhariwal &
Nichol 2021 with spatial transformers for text conditioning).

Attribute paths equal the checkpoint keys after ``model.diffusion_model.``, so a
checkpoint loads with a plain strict ``load_state_dict``. Every convolution is
a plain ``nn.Conv2d`` so seamless tiling can switch ``padding_mode``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.nets.attention import CrossAttention
from modules.nets.configs import UNetConfig

# GroupNorm with 32 groups throughout, as in the LDM code and the checkpoints' training.
NORM_GROUPS = 32


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) in LDM's order: cosines first, then sines."""
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device) * (-math.log(max_period) / half)
    args = timesteps.float()[:, None] * torch.exp(exponent)[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in fp32 whatever the input dtype (fp16 variance overflows)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            return super().forward(x)
        out = F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        return out.to(x.dtype)


def norm(channels: int, eps: float = 1e-5) -> GroupNorm32:
    return GroupNorm32(NORM_GROUPS, channels, eps=eps)


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding (keys in_layers, emb_layers, out_layers)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int):
        super().__init__()
        self.in_layers = nn.Sequential(norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            norm(out_channels), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb)[:, :, None, None].to(h.dtype)
        return self.skip_connection(x) + self.out_layers(h)


class GEGLU(nn.Module):
    """Gated GELU feed-forward input (Shazeer 2020, "GLU Variants Improve Transformer")."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention over the text context, feed-forward; pre-LayerNorm residuals."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int):
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, head_dim)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, heads, head_dim, context_dim=context_dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Transformer over the H*W positions of a feature map (SD1: 1x1-conv projections, SD2: linear)."""

    def __init__(self, channels: int, heads: int, depth: int, context_dim: int, linear: bool):
        super().__init__()
        self.linear = linear
        self.norm = norm(channels, eps=1e-6)
        make_proj = (lambda: nn.Linear(channels, channels)) if linear else (lambda: nn.Conv2d(channels, channels, 1))
        self.proj_in = make_proj()
        head_dim = channels // heads
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(channels, heads, head_dim, context_dim) for _ in range(depth)
        )
        self.proj_out = make_proj()

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x)
        if not self.linear:
            h = self.proj_in(h)
        h = h.flatten(2).transpose(1, 2)  # [B, H*W, C]
        if self.linear:
            h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, context)
        if self.linear:
            h = self.proj_out(h)
        h = h.transpose(1, 2).reshape(batch, channels, height, width)
        if not self.linear:
            h = self.proj_out(h)
        return x + h


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        # ``size`` (the matching skip's size) handles latents not divisible by
        # 2**levels, where doubling would overshoot the encoder's size by one.
        if size is None:
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class TimestepEmbedSequential(nn.ModuleList):
    """One UNet block: layers applied in order, each given what it needs (emb or context)."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor, upsample_size: tuple[int, int] | None = None) -> Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, Upsample):
                x = layer(x, upsample_size)
            else:
                x = layer(x)
        return x


class UNetModel(nn.Module):
    """``model.diffusion_model``: predicts the noise (or v) of a latent at a timestep, given text context."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        mc = config.model_channels
        emb_dim = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential([nn.Conv2d(config.in_channels, mc, 3, padding=1)])])
        skip_channels = self._build_input_blocks(emb_dim)
        ch = mc * config.channel_mult[-1]
        self.middle_block = TimestepEmbedSequential(
            [ResBlock(ch, emb_dim, ch), self._transformer(ch), ResBlock(ch, emb_dim, ch)]
        )
        self.output_blocks = nn.ModuleList()
        self._build_output_blocks(emb_dim, skip_channels)
        out_ch = mc * config.channel_mult[0]
        self.out = nn.Sequential(norm(out_ch), nn.SiLU(), nn.Conv2d(out_ch, config.out_channels, 3, padding=1))

    def _transformer(self, channels: int) -> SpatialTransformer:
        c = self.config
        return SpatialTransformer(
            channels, c.heads_at(channels), c.transformer_depth, c.context_dim, c.use_linear_in_transformer
        )

    def _build_input_blocks(self, emb_dim: int) -> list[int]:
        c = self.config
        ch, factor, skip_channels = c.model_channels, 1, [c.model_channels]
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * c.model_channels)]
                ch = mult * c.model_channels
                if factor in c.attention_resolutions:
                    layers.append(self._transformer(ch))
                self.input_blocks.append(TimestepEmbedSequential(layers))
                skip_channels.append(ch)
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential([Downsample(ch)]))
                skip_channels.append(ch)
                factor *= 2
        return skip_channels

    def _build_output_blocks(self, emb_dim: int, skip_channels: list[int]) -> None:
        c = self.config
        ch = c.model_channels * c.channel_mult[-1]
        factor = 2 ** (len(c.channel_mult) - 1)
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for index in range(c.num_res_blocks + 1):
                layers: list[nn.Module] = [ResBlock(ch + skip_channels.pop(), emb_dim, c.model_channels * mult)]
                ch = c.model_channels * mult
                if factor in c.attention_resolutions:
                    layers.append(self._transformer(ch))
                if level and index == c.num_res_blocks:
                    layers.append(Upsample(ch))
                    factor //= 2
                self.output_blocks.append(TimestepEmbedSequential(layers))

    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor) -> Tensor:
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(x.dtype))
        skips = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, context)
            skips.append(h)
        h = self.middle_block(h, emb, context)
        for block in self.output_blocks:
            h = torch.cat([h, skips.pop()], dim=1)
            upsample_size = tuple(skips[-1].shape[-2:]) if skips else None
            h = block(h, emb, context, upsample_size)
        return self.out(h)
