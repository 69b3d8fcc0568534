"""Load a checkpoint file into nets on the device policy's device and dtypes.

The nets' attribute paths equal the checkpoint's key names, so loading is a
prefix split followed by a strict ``load_state_dict``: a missing or
unexpected key is an error, never silently ignored. Nets are built on the
``meta`` device and the file's tensors are assigned into them, so no time or
memory is spent on random initialisation that would be overwritten.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor, nn

from modules.device.placement import CPU, Offload, Placement, plan_placement
from modules.device.policy import DevicePolicy
from modules.device.runners import ModelRunners
from modules.models.detect import UNET_PREFIX, VAE_PREFIX, detect_checkpoint, detect_vae_file, with_current_keys
from modules.models.families import DetectedModel
from modules.models.files import CheckpointFile
from modules.models.safe_load import CheckpointError, load_state_dict, read_safetensors_metadata
from modules.models.vae_tiling import VAETiling
from modules.nets.text_encoders import TextEncoder
from modules.nets.configs import TextEncoderConfig, UNetConfig, VAEConfig
from modules.nets.tokenizer import build_clip_tokenizer
from modules.nets.unet import UNetModel
from modules.nets.vae import AutoencoderKL, vae_state_with_conv_attention

log = logging.getLogger(__name__)

TEXT_ENCODER_PREFIX = "cond_stage_model."
EMA_PREFIX = "model_ema."
# Entries real checkpoints carry that are not weights of the three nets:
# the DDPM training schedule buffers (Ho et al. 2020), EMA copies and counters,
# and the autoencoder's training loss (LPIPS + discriminator).
NON_WEIGHT_KEYS = re.compile(
    r"^(model_ema\.|betas$|alphas_cumprod(_prev)?$|sqrt_|log_one_minus_alphas_cumprod$|posterior_"
    r"|lvlb_weights$|logvar$|first_stage_model\.loss\.)"
)


@dataclass(frozen=True)
class ModelKey:
    """What identifies a loaded model: the checkpoint file and the VAE file that replaced its own."""

    checkpoint: CheckpointFile
    vae: CheckpointFile | None = None


@dataclass(frozen=True)
class CheckpointParts:
    unet: dict[str, Tensor]
    vae: dict[str, Tensor]
    text_encoder: dict[str, Tensor]
    # The schedule the model was trained with, when the file carries it.
    alphas_cumprod: Tensor | None


@dataclass(frozen=True, eq=False)
class LoadedModel:
    checkpoint: CheckpointFile
    vae_file: CheckpointFile | None
    detected: DetectedModel
    unet: UNetModel
    vae: AutoencoderKL
    text_encoder: TextEncoder
    tokenizer: object  # transformers.CLIPTokenizer
    policy: DevicePolicy
    alphas_cumprod: Tensor | None
    # The live preview's latent -> RGB map when the file declares its own (else SD's is used).
    preview_factors: tuple[tuple[float, float, float], ...] | None = None
    # How a job runs the nets: compiled runners (OpenVINO, torch.compile) or None for the eager
    # nets above, and when the VAE works in tiles. The runtime sets both per job.
    runners: ModelRunners | None = None
    vae_tiling: VAETiling = VAETiling()
    # --medvram / --lowvram: which nets are on the GPU now (None: all of them stay there).
    placement: Placement | None = None

    def unet_call(self):
        return self.unet if self.runners is None else self.runners.unet

    def vae_decode_call(self):
        return self.vae.decode if self.runners is None else self.runners.vae_decode

    def vae_encode_call(self):
        return self.vae.encode if self.runners is None else self.runners.vae_encode

    def text_encode_call(self):
        """``text_encoder.encode`` or the backend's runner for it (same signature)."""
        if self.runners is None or self.runners.text_encode is None:
            return self.text_encoder.encode
        return self.runners.text_encode


class CheckpointLayoutError(CheckpointError):
    """The file's keys do not fit the nets its layout was detected as."""


def split_checkpoint(state: Mapping[str, Tensor], source: Path) -> CheckpointParts:
    parts: dict[str, dict[str, Tensor]] = {UNET_PREFIX: {}, VAE_PREFIX: {}, TEXT_ENCODER_PREFIX: {}}
    unexpected = []
    for key, tensor in with_current_keys(state).items():
        prefix = next((p for p in parts if key.startswith(p)), None)
        if prefix is not None and not NON_WEIGHT_KEYS.match(key):
            parts[prefix][key[len(prefix):]] = tensor
        elif prefix is None and not NON_WEIGHT_KEYS.match(key):
            unexpected.append(key)
    if unexpected:
        raise CheckpointLayoutError(source, f"unexpected keys {_sample(unexpected)}")
    alphas = state.get("alphas_cumprod")
    return CheckpointParts(
        parts[UNET_PREFIX], parts[VAE_PREFIX], parts[TEXT_ENCODER_PREFIX],
        alphas.float() if alphas is not None else None,
    )


def holds_ema_weights(state: Mapping[str, Tensor]) -> bool:
    """Whether the file carries an EMA copy of the UNet (LDM training's ``model_ema.*`` tensors,
    not only its ``decay``/``num_updates`` counters)."""
    return any(key.startswith(EMA_PREFIX) and key not in (EMA_PREFIX + "decay", EMA_PREFIX + "num_updates")
               for key in state)


def _sample(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return f"({len(keys)}): {shown}{', ...' if len(keys) > limit else ''}"


def load_strictly(net: nn.Module, state: Mapping[str, Tensor], source: Path, part: str) -> None:
    """Assign ``state`` into ``net`` (built on meta); every key must match both ways."""
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointLayoutError(source, f"({part}) {error}") from error
    left_on_meta = [name for name, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if left_on_meta:
        raise CheckpointLayoutError(source, f"({part}) not filled by the file {_sample(left_on_meta)}")


def build_unet(config: UNetConfig, state: Mapping[str, Tensor], source: Path) -> UNetModel:
    with torch.device("meta"):
        unet = UNetModel(config)
    load_strictly(unet, state, source, "UNet")
    return unet


def build_vae(config: VAEConfig, state: Mapping[str, Tensor], source: Path) -> AutoencoderKL:
    with torch.device("meta"):
        vae = AutoencoderKL(config)
    load_strictly(vae, vae_state_with_conv_attention(state), source, "VAE")
    return vae


def build_text_encoder(config: TextEncoderConfig, state: Mapping[str, Tensor], source: Path) -> TextEncoder:
    encoder = TextEncoder(config)
    try:
        encoder.load_ldm_state_dict(state)
    except ValueError as error:
        raise CheckpointLayoutError(source, f"(text encoder) {error}") from error
    return encoder


def load_vae_file(vae_file: CheckpointFile, latent_channels: int) -> AutoencoderKL:
    state = load_state_dict(vae_file.path)
    state = {k.removeprefix(VAE_PREFIX): v for k, v in state.items() if not NON_WEIGHT_KEYS.match(k)}
    config = detect_vae_file({k: tuple(v.shape) for k, v in state.items()})
    if config.embed_dim != latent_channels:
        raise CheckpointLayoutError(
            vae_file.path, f"a VAE with {config.embed_dim} latent channels cannot serve a model with {latent_channels}"
        )
    return build_vae(config, state, vae_file.path)


def load_model(checkpoint: CheckpointFile, vae_file: CheckpointFile | None, policy: DevicePolicy) -> LoadedModel:
    source = checkpoint.path
    detected = detect_checkpoint(source)
    state = load_state_dict(source)
    if holds_ema_weights(state):
        # A1111's configs set use_ema: False, so the UNet's EMA copy is never loaded there either.
        log.warning("%s holds EMA weights (model_ema.*); using its regular weights (model.*), as A1111 does",
                    source.name)
    parts = split_checkpoint(state, source)
    unet = build_unet(detected.unet, parts.unet, source)
    text_encoder = build_text_encoder(detected.text_encoder, parts.text_encoder, source)
    if vae_file is None:
        vae = build_vae(detected.vae, parts.vae, source)
    else:
        vae = load_vae_file(vae_file, detected.vae.embed_dim)
    # Offloaded nets wait on the CPU; the placement brings each in when it runs.
    home = policy.device if policy.offload is Offload.NONE else CPU
    for net, dtype in ((unet, policy.unet_dtype), (text_encoder, policy.text_encoder_dtype), (vae, policy.vae_dtype)):
        net.to(device=home, dtype=dtype).eval().requires_grad_(False)
    tokenizer = build_clip_tokenizer(pad_token_id=detected.text_encoder.pad_token_id)
    return LoadedModel(
        checkpoint, vae_file, detected, unet, vae, text_encoder, tokenizer, policy, parts.alphas_cumprod,
        declared_preview_factors(source, detected.vae.embed_dim),
        placement=plan_placement(policy.offload, policy.device, unet, text_encoder, vae),
    )


def declared_preview_factors(path: Path, channels: int) -> tuple[tuple[float, float, float], ...] | None:
    """``modelspec.latent_rgb_factors`` (a JSON list of one [R, G, B] row per latent channel), when
    present and well formed; a malformed entry is ignored, as it only affects live previews."""
    text = read_safetensors_metadata(path).get("modelspec.latent_rgb_factors")
    try:
        rows = tuple(tuple(float(v) for v in row) for row in json.loads(text)) if text else None
    except (ValueError, TypeError):
        return None
    if rows is None or len(rows) != channels or any(len(row) != 3 for row in rows):
        return None
    return rows
