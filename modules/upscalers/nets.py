"""The two convolutional upscaler families we run ourselves, written from their papers with the
key names their released weights use, so a state dict loads with no conversion:

- RRDBNet (ESRGAN, Wang et al. 2018, "ESRGAN: Enhanced Super-Resolution Generative Adversarial
  Networks", §3.1): residual-in-residual dense blocks, residual scaling 0.2, nearest-neighbour 2x
  steps each followed by a conv and LeakyReLU(0.2). BasicSR's "new" key names; the original
  release's "old" names are renamed by ``esrgan_new_keys``.
- SRVGGNetCompact (Real-ESRGAN, Wang et al. 2021, the "compact" model): a plain conv/PReLU stack,
  a pixel shuffle, and the nearest-upsampled input added back.

Sizes (features, blocks, growth, steps) are read from the weights' shapes.
"""

from __future__ import annotations

import math
import re

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from modules.upscalers.detect import Architecture

_RESIDUAL_SCALE = 0.2  # ESRGAN §3.1: residual scaling keeps deep RRDB stacks stable


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


class ResidualDenseBlock(nn.Module):
    def __init__(self, features: int, growth: int):
        super().__init__()
        for j in range(1, 6):
            outputs = features if j == 5 else growth
            setattr(self, f"conv{j}", nn.Conv2d(features + (j - 1) * growth, outputs, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        found = [x]
        for j in range(1, 5):
            found.append(_lrelu(getattr(self, f"conv{j}")(torch.cat(found, 1))))
        return self.conv5(torch.cat(found, 1)) * _RESIDUAL_SCALE + x


class RRDB(nn.Module):
    def __init__(self, features: int, growth: int):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(features, growth)
        self.rdb2 = ResidualDenseBlock(features, growth)
        self.rdb3 = ResidualDenseBlock(features, growth)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * _RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, features: int, blocks: int, growth: int,
                 up_steps: int, unshuffle: int = 1):
        super().__init__()
        self.unshuffle = unshuffle
        self.conv_first = nn.Conv2d(in_channels * unshuffle**2, features, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(features, features, 3, padding=1)
        self.up_steps = up_steps
        for k in range(1, up_steps + 1):
            setattr(self, f"conv_up{k}", nn.Conv2d(features, features, 3, padding=1))
        self.conv_hr = nn.Conv2d(features, features, 3, padding=1)
        self.conv_last = nn.Conv2d(features, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for k in range(1, self.up_steps + 1):
            feat = _lrelu(getattr(self, f"conv_up{k}")(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(_lrelu(self.conv_hr(feat)))


class SRVGGNetCompact(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, features: int, convs: int, scale: int):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, padding=1), nn.PReLU(features)]
        for _ in range(convs):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.PReLU(features)]
        layers.append(nn.Conv2d(features, out_channels * scale**2, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = F.pixel_shuffle(self.body(x), self.scale)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


_OLD_BLOCK = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)")


def esrgan_new_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The original release's ``model.N`` names as BasicSR's names (same tensors, same order)."""
    if "model.0.weight" not in state:
        return state
    top = max(int(k.split(".")[1]) for k in state if re.fullmatch(r"model\.\d+\.(weight|bias)", k))
    steps = (top - 4) // 3
    blocks = max(int(m.group(1)) for k in state if (m := _OLD_BLOCK.fullmatch(k))) + 1
    renames = {"model.0": "conv_first", f"model.1.sub.{blocks}": "conv_body",
               f"model.{3 * steps + 2}": "conv_hr", f"model.{3 * steps + 4}": "conv_last"}
    renames.update({f"model.{3 * k}": f"conv_up{k}" for k in range(1, steps + 1)})
    converted = {}
    for key, tensor in state.items():
        if m := _OLD_BLOCK.fullmatch(key):
            converted[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = tensor
        else:
            prefix, _, leaf = key.rpartition(".")
            converted[f"{renames[prefix]}.{leaf}"] = tensor
    return converted


def build_rrdbnet(state: dict[str, Tensor]) -> RRDBNet:
    """An RRDBNet sized from ``state`` (new key names) with the weights loaded strictly."""
    features, first_in = state["conv_first.weight"].shape[:2]
    out_channels = state["conv_last.weight"].shape[0]
    unshuffle = math.isqrt(first_in // out_channels)
    blocks = len({k.split(".")[1] for k in state if k.startswith("body.")})
    growth = state["body.0.rdb1.conv1.weight"].shape[0]
    steps = len([k for k in state if re.fullmatch(r"conv_up\d+\.weight", k)])
    net = RRDBNet(first_in // unshuffle**2, out_channels, features, blocks, growth, steps, unshuffle)
    net.load_state_dict(state, strict=True)
    return net


def build_compact(state: dict[str, Tensor], scale: int) -> SRVGGNetCompact:
    features, in_channels = state["body.0.weight"].shape[:2]
    last = max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    out_channels = state[f"body.{last}.weight"].shape[0] // scale**2
    net = SRVGGNetCompact(in_channels, out_channels, features, (last - 2) // 2, scale)
    net.load_state_dict(state, strict=True)
    return net


def build_native(architecture: Architecture, state: dict[str, Tensor]) -> nn.Module | None:
    """Our own net for ``architecture``, or None when it is one we hand to spandrel."""
    if architecture.name == "ESRGAN":
        return build_rrdbnet(esrgan_new_keys(state))
    if architecture.name == "RealESRGAN compact":
        return build_compact(state, architecture.scale)
    return None
