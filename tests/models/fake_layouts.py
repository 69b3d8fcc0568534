"""The LDM checkpoint key layout, generated from net configs: fake checkpoints for tests.

This is written from the CompVis latent-diffusion architecture description
(``ldm/modules/diffusionmodules/openaimodel.py`` UNetModel with ResBlock,
SpatialTransformer, Downsample and Upsample; ``diffusionmodules/model.py``
Encoder/Decoder of AutoencoderKL) and the text towers' documented parameter
names (Hugging Face ``CLIPTextModel``; OpenCLIP ``TextTransformer``). It is a
second description of the layout, independent of ``modules.models.detect``,
so that detection (and later the nets' ``state_dict()``) can be checked
against it.

Convention for attention widths: every SpatialTransformer has inner width =
its channel count (SD1: 8 heads of ch/8; SD2: ch/64 heads of 64), as in every
released SD1/SD2 checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from safetensors.torch import save_file

from modules.nets.configs import TextEncoderConfig, TextEncoderLayout, UNetConfig, VAEConfig

Shapes = dict[str, tuple[int, ...]]

DIFFUSION_TIMESTEPS = 1000  # length of the DDPM schedule buffers real checkpoints carry


def ldm_key_shapes(unet: UNetConfig, vae: VAEConfig, text: TextEncoderConfig) -> Shapes:
    """Every weight of the three nets, with its LDM key and shape (no EMA or schedule buffers)."""
    shapes: Shapes = {}
    shapes.update(_prefixed("model.diffusion_model.", unet_key_shapes(unet)))
    shapes.update(_prefixed("first_stage_model.", vae_key_shapes(vae)))
    if text.layout is TextEncoderLayout.CLIP_L:
        shapes.update(_prefixed("cond_stage_model.transformer.text_model.", clip_l_key_shapes(text)))
    else:
        shapes.update(_prefixed("cond_stage_model.model.", open_clip_key_shapes(text)))
    return shapes


def checkpoint_extra_key_shapes(layout: Mapping[str, tuple[int, ...]], text: TextEncoderConfig) -> Shapes:
    """The non-weight entries real LDM checkpoints also hold: EMA copy, DDPM buffers, text extras."""
    extras: Shapes = {"model_ema.decay": (), "model_ema.num_updates": ()}
    for key, shape in layout.items():
        if key.startswith("model.diffusion_model."):
            # LitEma stores each parameter under its name with the dots removed.
            extras["model_ema." + key[len("model."):].replace(".", "")] = shape
    for buffer in ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                   "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                   "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                   "posterior_mean_coef1", "posterior_mean_coef2", "lvlb_weights", "logvar"):
        extras[buffer] = (DIFFUSION_TIMESTEPS,)
    if text.layout is TextEncoderLayout.CLIP_L:
        extras["cond_stage_model.transformer.text_model.embeddings.position_ids"] = (1, text.max_positions)
    else:
        extras["cond_stage_model.model.text_projection"] = (text.hidden_size, text.hidden_size)
        extras["cond_stage_model.model.logit_scale"] = ()
    return extras


def old_clip_layout(state: Mapping[str, object]) -> dict[str, object]:
    """An early SD1 file's keys: CLIPTextModel's modules (embeddings, encoder, final_layer_norm)
    directly under ``cond_stage_model.transformer.``, without today's ``text_model.`` level."""
    new = "cond_stage_model.transformer.text_model."
    return {("cond_stage_model.transformer." + k[len(new):]) if k.startswith(new) else k: v for k, v in state.items()}


def write_fake_checkpoint(path: Path, shapes: Mapping[str, tuple[int, ...]],
                          metadata: Mapping[str, str] | None = None) -> Path:
    """Zero-filled tensors with these shapes: safetensors for ``.safetensors``, else a torch.save
    zip pickle in the Lightning style (``{"state_dict": ..., "global_step": ...}``)."""
    tensors = {key: torch.zeros(shape, dtype=_dtype_of(key)) for key, shape in shapes.items()}
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        save_file(tensors, str(path), metadata=dict(metadata) if metadata else None)
    else:
        torch.save({"state_dict": tensors, "global_step": 470000, "epoch": 6}, path)
    return path


def _dtype_of(key: str) -> torch.dtype:
    return torch.int64 if key.endswith("position_ids") else torch.float32


def _prefixed(prefix: str, shapes: Shapes) -> Shapes:
    return {prefix + key: shape for key, shape in shapes.items()}


# ----- building blocks: one torch module each -----

def _linear(shapes: Shapes, name: str, in_features: int, out_features: int, bias: bool = True) -> None:
    shapes[f"{name}.weight"] = (out_features, in_features)
    if bias:
        shapes[f"{name}.bias"] = (out_features,)


def _conv(shapes: Shapes, name: str, in_channels: int, out_channels: int, kernel: int) -> None:
    shapes[f"{name}.weight"] = (out_channels, in_channels, kernel, kernel)
    shapes[f"{name}.bias"] = (out_channels,)


def _norm(shapes: Shapes, name: str, channels: int) -> None:
    """GroupNorm or LayerNorm: an affine weight and bias per channel."""
    shapes[f"{name}.weight"] = (channels,)
    shapes[f"{name}.bias"] = (channels,)


# ----- UNet (openaimodel.UNetModel) -----

def _res_block(shapes: Shapes, name: str, in_ch: int, out_ch: int, emb_ch: int) -> None:
    _norm(shapes, f"{name}.in_layers.0", in_ch)  # GroupNorm, SiLU, conv
    _conv(shapes, f"{name}.in_layers.2", in_ch, out_ch, 3)
    _linear(shapes, f"{name}.emb_layers.1", emb_ch, out_ch)  # SiLU, linear
    _norm(shapes, f"{name}.out_layers.0", out_ch)  # GroupNorm, SiLU, dropout, conv
    _conv(shapes, f"{name}.out_layers.3", out_ch, out_ch, 3)
    if in_ch != out_ch:
        _conv(shapes, f"{name}.skip_connection", in_ch, out_ch, 1)


def _attention(shapes: Shapes, name: str, query_dim: int, context_dim: int) -> None:
    _linear(shapes, f"{name}.to_q", query_dim, query_dim, bias=False)
    _linear(shapes, f"{name}.to_k", context_dim, query_dim, bias=False)
    _linear(shapes, f"{name}.to_v", context_dim, query_dim, bias=False)
    _linear(shapes, f"{name}.to_out.0", query_dim, query_dim)


def _spatial_transformer(shapes: Shapes, name: str, channels: int, unet: UNetConfig) -> None:
    _norm(shapes, f"{name}.norm", channels)
    project = _linear if unet.use_linear_in_transformer else (lambda s, n, i, o: _conv(s, n, i, o, 1))
    project(shapes, f"{name}.proj_in", channels, channels)
    for depth in range(unet.transformer_depth):
        block = f"{name}.transformer_blocks.{depth}"
        _attention(shapes, f"{block}.attn1", channels, channels)
        _linear(shapes, f"{block}.ff.net.0.proj", channels, channels * 4 * 2)  # GEGLU: value and gate
        _linear(shapes, f"{block}.ff.net.2", channels * 4, channels)
        _attention(shapes, f"{block}.attn2", channels, unet.context_dim)
        for norm in ("norm1", "norm2", "norm3"):
            _norm(shapes, f"{block}.{norm}", channels)
    project(shapes, f"{name}.proj_out", channels, channels)


def unet_key_shapes(unet: UNetConfig) -> Shapes:
    shapes: Shapes = {}
    emb_ch = unet.model_channels * 4
    _linear(shapes, "time_embed.0", unet.model_channels, emb_ch)
    _linear(shapes, "time_embed.2", emb_ch, emb_ch)
    skip_widths, ch = _unet_input_side(shapes, unet, emb_ch)
    _res_block(shapes, "middle_block.0", ch, ch, emb_ch)
    _spatial_transformer(shapes, "middle_block.1", ch, unet)
    _res_block(shapes, "middle_block.2", ch, ch, emb_ch)
    ch = _unet_output_side(shapes, unet, emb_ch, skip_widths, ch)
    _norm(shapes, "out.0", ch)
    _conv(shapes, "out.2", ch, unet.out_channels, 3)
    return shapes


def _unet_input_side(shapes: Shapes, unet: UNetConfig, emb_ch: int) -> tuple[list[int], int]:
    _conv(shapes, "input_blocks.0.0", unet.in_channels, unet.model_channels, 3)
    skip_widths, ch, factor, index = [unet.model_channels], unet.model_channels, 1, 1
    for level, mult in enumerate(unet.channel_mult):
        for _ in range(unet.num_res_blocks):
            _res_block(shapes, f"input_blocks.{index}.0", ch, mult * unet.model_channels, emb_ch)
            ch = mult * unet.model_channels
            if factor in unet.attention_resolutions:
                _spatial_transformer(shapes, f"input_blocks.{index}.1", ch, unet)
            skip_widths.append(ch)
            index += 1
        if level != len(unet.channel_mult) - 1:
            _conv(shapes, f"input_blocks.{index}.0.op", ch, ch, 3)  # Downsample, stride 2
            skip_widths.append(ch)
            index += 1
            factor *= 2
    return skip_widths, ch


def _unet_output_side(shapes: Shapes, unet: UNetConfig, emb_ch: int, skip_widths: list[int], ch: int) -> int:
    factor, index = 2 ** (len(unet.channel_mult) - 1), 0
    for level, mult in reversed(list(enumerate(unet.channel_mult))):
        for block in range(unet.num_res_blocks + 1):
            out_ch = mult * unet.model_channels
            _res_block(shapes, f"output_blocks.{index}.0", ch + skip_widths.pop(), out_ch, emb_ch)
            ch, layer = out_ch, 1
            if factor in unet.attention_resolutions:
                _spatial_transformer(shapes, f"output_blocks.{index}.1", ch, unet)
                layer = 2
            if level and block == unet.num_res_blocks:
                _conv(shapes, f"output_blocks.{index}.{layer}.conv", ch, ch, 3)  # Upsample: nearest x2, conv
                factor //= 2
            index += 1
    return ch


# ----- VAE (AutoencoderKL: Encoder, Decoder, quant convs) -----

def _vae_res_block(shapes: Shapes, name: str, in_ch: int, out_ch: int) -> None:
    _norm(shapes, f"{name}.norm1", in_ch)
    _conv(shapes, f"{name}.conv1", in_ch, out_ch, 3)
    _norm(shapes, f"{name}.norm2", out_ch)
    _conv(shapes, f"{name}.conv2", out_ch, out_ch, 3)
    if in_ch != out_ch:
        _conv(shapes, f"{name}.nin_shortcut", in_ch, out_ch, 1)


def _vae_middle(shapes: Shapes, name: str, ch: int) -> None:
    _vae_res_block(shapes, f"{name}.block_1", ch, ch)
    _norm(shapes, f"{name}.attn_1.norm", ch)
    for projection in ("q", "k", "v", "proj_out"):
        _conv(shapes, f"{name}.attn_1.{projection}", ch, ch, 1)
    _vae_res_block(shapes, f"{name}.block_2", ch, ch)


def vae_key_shapes(vae: VAEConfig) -> Shapes:
    shapes: Shapes = {}
    _conv(shapes, "encoder.conv_in", vae.in_channels, vae.ch, 3)
    block_in = vae.ch
    for level, mult in enumerate(vae.ch_mult):
        for block in range(vae.num_res_blocks):
            _vae_res_block(shapes, f"encoder.down.{level}.block.{block}", block_in, vae.ch * mult)
            block_in = vae.ch * mult
        if level != len(vae.ch_mult) - 1:
            _conv(shapes, f"encoder.down.{level}.downsample.conv", block_in, block_in, 3)
    _vae_middle(shapes, "encoder.mid", block_in)
    _norm(shapes, "encoder.norm_out", block_in)
    _conv(shapes, "encoder.conv_out", block_in, 2 * vae.z_channels, 3)  # mean and log-variance
    _conv(shapes, "quant_conv", 2 * vae.z_channels, 2 * vae.embed_dim, 1)
    _conv(shapes, "post_quant_conv", vae.embed_dim, vae.z_channels, 1)
    _vae_decoder(shapes, vae)
    return shapes


def _vae_decoder(shapes: Shapes, vae: VAEConfig) -> None:
    block_in = vae.ch * vae.ch_mult[-1]
    _conv(shapes, "decoder.conv_in", vae.z_channels, block_in, 3)
    _vae_middle(shapes, "decoder.mid", block_in)
    for level in reversed(range(len(vae.ch_mult))):
        for block in range(vae.num_res_blocks + 1):
            _vae_res_block(shapes, f"decoder.up.{level}.block.{block}", block_in, vae.ch * vae.ch_mult[level])
            block_in = vae.ch * vae.ch_mult[level]
        if level != 0:
            _conv(shapes, f"decoder.up.{level}.upsample.conv", block_in, block_in, 3)
    _norm(shapes, "decoder.norm_out", block_in)
    _conv(shapes, "decoder.conv_out", block_in, vae.out_ch, 3)


# ----- text encoders -----

def clip_l_key_shapes(text: TextEncoderConfig) -> Shapes:
    """Hugging Face CLIPTextModel's ``text_model.*`` parameters."""
    width = text.hidden_size
    shapes: Shapes = {
        "embeddings.token_embedding.weight": (text.vocab_size, width),
        "embeddings.position_embedding.weight": (text.max_positions, width),
    }
    for layer in range(text.num_layers):
        name = f"encoder.layers.{layer}"
        for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(shapes, f"{name}.self_attn.{projection}", width, width)
        _norm(shapes, f"{name}.layer_norm1", width)
        _linear(shapes, f"{name}.mlp.fc1", width, text.intermediate_size)
        _linear(shapes, f"{name}.mlp.fc2", text.intermediate_size, width)
        _norm(shapes, f"{name}.layer_norm2", width)
    _norm(shapes, "final_layer_norm", width)
    return shapes


def open_clip_key_shapes(text: TextEncoderConfig) -> Shapes:
    """OpenCLIP's text tower as FrozenOpenCLIPEmbedder keeps it (the visual tower removed)."""
    width = text.hidden_size
    shapes: Shapes = {
        "token_embedding.weight": (text.vocab_size, width),
        "positional_embedding": (text.max_positions, width),
    }
    for layer in range(text.num_layers):
        name = f"transformer.resblocks.{layer}"
        _norm(shapes, f"{name}.ln_1", width)
        shapes[f"{name}.attn.in_proj_weight"] = (3 * width, width)  # q, k, v stacked (nn.MultiheadAttention)
        shapes[f"{name}.attn.in_proj_bias"] = (3 * width,)
        _linear(shapes, f"{name}.attn.out_proj", width, width)
        _norm(shapes, f"{name}.ln_2", width)
        _linear(shapes, f"{name}.mlp.c_fc", width, text.intermediate_size)
        _linear(shapes, f"{name}.mlp.c_proj", text.intermediate_size, width)
    _norm(shapes, "ln_final", width)
    return shapes
