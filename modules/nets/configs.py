"""Size descriptions of the three nets of a Stable Diffusion checkpoint.

Every field is read from tensor shapes by ``modules.models.detect`` (never
assumed), so a small model with the real key layout is built by the same code
as a full-size one. Field names follow the CompVis/LDM configuration files
(``v1-inference.yaml``, ``v2-inference-v.yaml``) so they can be compared with
them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class UNetConfig:
    """The LDM ``UNetModel`` (``model.diffusion_model.*``)."""

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    # Downsampling factors (1, 2, 4, ...) of the levels that carry a spatial
    # transformer, as in the LDM yaml (``attention_resolutions: [4, 2, 1]``).
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    # SD1 fixes the head count (8); SD2 fixes the head width (64). Exactly one
    # of the two is positive, the other is -1, as in the LDM yaml.
    num_heads: int = 8
    num_head_channels: int = -1
    transformer_depth: int = 1
    context_dim: int = 768
    # SD2 uses Linear proj_in/proj_out in its transformers, SD1 1x1 convs.
    use_linear_in_transformer: bool = False

    def heads_at(self, channels: int) -> int:
        """Attention head count of a transformer with ``channels`` channels."""
        if self.num_head_channels > 0:
            return max(1, channels // self.num_head_channels)
        return self.num_heads


@dataclass(frozen=True)
class VAEConfig:
    """The LDM ``AutoencoderKL`` (``first_stage_model.*``)."""

    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4
    # The latent scale of SD1/SD2 (LDM paper, appendix: 1 / std of the latents).
    scale_factor: float = 0.18215


class TextEncoderLayout(str, Enum):
    """How the text encoder is stored in the checkpoint."""

    CLIP_L = "clip_l"  # SD1: cond_stage_model.transformer.text_model.* (HF CLIP)
    OPEN_CLIP = "open_clip"  # SD2: cond_stage_model.model.* (OpenCLIP)


@dataclass(frozen=True)
class TextEncoderConfig:
    """A CLIP text transformer, loaded as ``transformers.CLIPTextModel``."""

    layout: TextEncoderLayout = TextEncoderLayout.CLIP_L
    vocab_size: int = 49408
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_positions: int = 77
    # CLIP ViT-L/14 was trained with QuickGELU, OpenCLIP ViT-H/14 with GELU.
    hidden_act: str = "quick_gelu"
    # SD2 conditions on the penultimate layer (FrozenOpenCLIPEmbedder,
    # layer="penultimate"); SD1 on the last. "Clip skip" counts from here.
    default_clip_skip: int = 1
    # SD1's tokenizer pads with <|endoftext|> (49407), OpenCLIP's with 0.
    pad_token_id: int = 49407
