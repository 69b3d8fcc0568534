"""Which layer of our nets a LoRA key addresses.

LoRA files name their target layers in one of three ways:

- kohya-ss / A1111 (``lora_unet_<path>``, ``lora_te_<path>``): the module path
  with every ``.`` replaced by ``_``. For the UNet the path is the diffusers
  one (``down_blocks_0_attentions_0_...``, what kohya trains against) or,
  in older files, the LDM one (``input_blocks_1_1_...``); for the text
  encoder it is the Hugging Face CLIP path (``text_model_encoder_layers_0_...``).
- diffusers / PEFT (``unet.<path>.lora_A.weight``, ``text_encoder.<path>...``):
  dotted diffusers paths.

Our nets keep the LDM names, so every module gets the names it can be called
by (LDM and diffusers, dotted and underscored), and the diffusers names are
built from the UNet's own block structure (diffusers' ``UNet2DConditionModel``
layout: ``down_blocks.i.{resnets,attentions}.j``, ``downsamplers.0``,
``mid_block``, ``up_blocks.i``, ``upsamplers.0``), so any model size maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from torch import nn

from modules.nets.unet import Downsample, ResBlock, SpatialTransformer, UNetModel, Upsample

UNET = "unet"
TEXT_ENCODER = "text_encoder"

# LDM ResBlock sub-layer -> diffusers ResnetBlock2D sub-layer.
_RESNET_NAMES = {
    "in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut",
}
_TOP_NAMES = {
    "time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
    "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out",
}
# Where the text encoder's CLIPTextModel sits in our TextEncoder.
TEXT_MODEL_ATTRIBUTE = "transformer"


@dataclass(frozen=True)
class LayerRef:
    """A weight-bearing layer: which net (``unet`` or ``text_encoder``) and its attribute path there."""

    net: str
    path: str


def _block_prefixes(unet: UNetModel) -> Iterator[tuple[str, str]]:
    """(LDM prefix, diffusers prefix) for every ResBlock, SpatialTransformer and resampler of the UNet."""
    per_level = unet.config.num_res_blocks
    for index, block in enumerate(unet.input_blocks):
        if index == 0:
            continue
        level, position = divmod(index - 1, per_level + 1)
        for slot, layer in enumerate(block):
            yield from _layer_prefix(f"input_blocks.{index}.{slot}", layer, f"down_blocks.{level}", position,
                                     "downsamplers.0.conv")
    kinds = {ResBlock: "resnets", SpatialTransformer: "attentions"}
    counts = {"resnets": 0, "attentions": 0}
    for slot, layer in enumerate(unet.middle_block):
        kind = kinds[type(layer)]
        yield f"middle_block.{slot}", f"mid_block.{kind}.{counts[kind]}"
        counts[kind] += 1
    for index, block in enumerate(unet.output_blocks):
        level, position = divmod(index, per_level + 1)
        for slot, layer in enumerate(block):
            yield from _layer_prefix(f"output_blocks.{index}.{slot}", layer, f"up_blocks.{level}", position,
                                     "upsamplers.0.conv")


def _layer_prefix(ldm: str, layer: nn.Module, block: str, position: int, resampler: str) -> Iterator[tuple[str, str]]:
    if isinstance(layer, ResBlock):
        yield ldm, f"{block}.resnets.{position}"
    elif isinstance(layer, SpatialTransformer):
        yield ldm, f"{block}.attentions.{position}"
    elif isinstance(layer, Downsample):
        yield f"{ldm}.op", f"{block}.{resampler}"
    elif isinstance(layer, Upsample):
        yield f"{ldm}.conv", f"{block}.{resampler}"


def diffusers_unet_names(unet: UNetModel) -> dict[str, str]:
    """LDM module path -> diffusers module path, for every Linear and Conv2d of the UNet."""
    prefixes = dict(_block_prefixes(unet))
    names: dict[str, str] = {}
    for path, module in unet.named_modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            continue
        if path in _TOP_NAMES:
            names[path] = _TOP_NAMES[path]
            continue
        owner = max((p for p in prefixes if path == p or path.startswith(p + ".")), key=len, default=None)
        if owner is None:
            continue
        rest = path[len(owner) + 1:]
        rest = _RESNET_NAMES.get(rest, rest)
        names[path] = prefixes[owner] + (f".{rest}" if rest else "")
    return names


def layer_names(unet: UNetModel, text_encoder: nn.Module) -> dict[str, LayerRef]:
    """Every name a LoRA may use for a layer -> the layer.

    Keys are namespaced: ``unet:<dotted or underscored path>`` and
    ``te:<dotted or underscored path>`` (paths as Hugging Face's
    ``CLIPTextModel`` of transformers 4 names them, starting ``text_model.``).
    """
    names: dict[str, LayerRef] = {}
    for ldm, diffusers in diffusers_unet_names(unet).items():
        ref = LayerRef(UNET, ldm)
        for path in (ldm, diffusers):
            names[f"unet:{path}"] = ref
            names[f"unet:{path.replace('.', '_')}"] = ref
    clip = getattr(text_encoder, TEXT_MODEL_ATTRIBUTE)
    for path, module in clip.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            ref = LayerRef(TEXT_ENCODER, f"{TEXT_MODEL_ATTRIBUTE}.{path}")
            # LoRA files name CLIP layers from the ``text_model`` level; some transformers
            # versions nest the layers under that attribute, others hold them directly.
            named = path if path.startswith("text_model.") else f"text_model.{path}"
            names[f"te:{named}"] = ref
            names[f"te:{named.replace('.', '_')}"] = ref
    return names
