"""Which super-resolution architecture a state dict holds, and its scale, read from key names and
shapes only (no tensor data is needed, so a safetensors header is enough).

Layouts (the key names the original repositories save):
- ESRGAN "old" (Wang et al. 2018, original release): ``model.0`` first conv, ``model.1.sub.N.RDBk.convj.0``
  residual-in-residual dense blocks, then per 2x step an (upsample, conv, act) triple flattened into
  ``model.3``, ``model.6``, ..., then two HR convs. The highest index is ``3 * steps + 4``.
- ESRGAN "new" (BasicSR's RRDBNet, Real-ESRGAN x4plus/x2plus): ``conv_first``, ``body.N.rdbk.convj``,
  ``conv_body``, ``conv_upK`` per 2x step, ``conv_hr``, ``conv_last``. x2plus/x1 feed a pixel-unshuffled
  input, so ``conv_first`` takes 4 or 16 times the colour channels and the net's scale is divided by 2 or 4.
- Real-ESRGAN compact (SRVGGNetCompact, Wang et al. 2021): ``body.0`` conv, PReLU, (conv, PReLU) x N,
  last conv with ``out * scale**2`` outputs followed by a pixel shuffle.
- SwinIR (Liang et al. 2021): ``layers.N.residual_group.blocks.M.attn.relative_position_bias_table``;
  scale from its upsampler: pixel-shuffle steps (``upsample.0/2/..``: 4x channels each, or one 9x for 3x),
  "pixelshuffledirect" (one conv to ``out * scale**2``), "nearest+conv" (``conv_up1/2``: 4x), or none (1x).
- DAT (Chen et al. 2023): ``before_RG`` and ``layers.N.blocks.M.attn.attns.K`` (dual aggregation);
  the same upsampler heads as SwinIR.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

Shapes = Mapping[str, tuple[int, ...]]


class UnknownArchitectureError(ValueError):
    """The keys match none of the layouts we read."""


@dataclass(frozen=True)
class Architecture:
    name: str  # "ESRGAN", "RealESRGAN compact", "SwinIR", "DAT"
    scale: int
    layout: str  # e.g. "old keys", "new keys", "pixelshuffle"
    reason: str  # the keys that decided it


def detect_architecture(shapes: Shapes) -> Architecture:
    for detector in (_esrgan_old, _esrgan_new, _compact, _swinir, _dat):
        found = detector(shapes)
        if found is not None:
            return found
    sample = ", ".join(sorted(shapes)[:5])
    raise UnknownArchitectureError(f"not an ESRGAN, Real-ESRGAN, SwinIR or DAT layout (first keys: {sample})")


def _indices(shapes: Shapes, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in shapes if (m := regex.fullmatch(key))})


def _esrgan_old(shapes: Shapes) -> Architecture | None:
    if "model.0.weight" not in shapes or not any(k.startswith("model.1.sub.") for k in shapes):
        return None
    top = max(_indices(shapes, r"model\.(\d+)\.weight"))
    steps = (top - 4) // 3
    return Architecture("ESRGAN", 2 ** steps, "old keys", f"model.1.sub.* blocks; last conv model.{top}")


def _esrgan_new(shapes: Shapes) -> Architecture | None:
    if "conv_first.weight" not in shapes or "body.0.rdb1.conv1.weight" not in shapes:
        return None
    steps = len(_indices(shapes, r"conv_up(\d+)\.weight"))
    in_channels = shapes["conv_first.weight"][1]
    out_channels = shapes["conv_last.weight"][0]
    unshuffle = math.isqrt(in_channels // out_channels)  # x2plus: 12 = 3 * 2**2 input channels
    return Architecture("ESRGAN", 2 ** steps // unshuffle, "new keys",
                        f"body.*.rdb* blocks; {steps} conv_up steps; {in_channels} input channels")


def _compact(shapes: Shapes) -> Architecture | None:
    first, act = shapes.get("body.0.weight"), shapes.get("body.1.weight")
    if first is None or len(first) != 4 or act is None or len(act) != 1 or "conv_first.weight" in shapes:
        return None
    last = max(_indices(shapes, r"body\.(\d+)\.weight"))
    out_channels = shapes[f"body.{last}.weight"][0]
    scale = math.isqrt(out_channels // first[1])
    return Architecture("RealESRGAN compact", scale, "SRVGGNetCompact",
                        f"body.0 conv + body.1 PReLU; body.{last} has {out_channels} outputs")


def _upsampler_scale(shapes: Shapes, in_channels: int) -> tuple[int, str]:
    """The scale of a SwinIR/DAT head (shared by both architectures)."""
    if "conv_up1.weight" in shapes:
        return 2 ** len(_indices(shapes, r"conv_up(\d+)\.weight")), "nearest+conv"
    if "conv_before_upsample.0.weight" in shapes:
        convs = [shapes[f"upsample.{i}.weight"][0] for i in _indices(shapes, r"upsample\.(\d+)\.weight")]
        features = shapes["conv_before_upsample.0.weight"][0]
        if convs == [9 * features]:
            return 3, "pixelshuffle"
        return 2 ** len(convs), "pixelshuffle"
    if "upsample.0.weight" in shapes:
        return math.isqrt(shapes["upsample.0.weight"][0] // in_channels), "pixelshuffledirect"
    return 1, "no upsampler"


def _swinir(shapes: Shapes) -> Architecture | None:
    if "layers.0.residual_group.blocks.0.attn.relative_position_bias_table" not in shapes:
        return None
    scale, head = _upsampler_scale(shapes, shapes["conv_first.weight"][1])
    return Architecture("SwinIR", scale, head, f"residual_group window attention; {head} head")


def _dat(shapes: Shapes) -> Architecture | None:
    if "before_RG.1.weight" not in shapes or not any(".attn.attns." in key for key in shapes):
        return None
    scale, head = _upsampler_scale(shapes, shapes["conv_first.weight"][1])
    return Architecture("DAT", scale, head, f"before_RG + dual aggregation attention; {head} head")
