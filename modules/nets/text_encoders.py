"""CLIP text encoders as ``transformers.CLIPTextModel`` (Radford et al. 2021).

SD1 checkpoints store OpenAI CLIP ViT-L/14's text tower in Hugging Face layout
(``cond_stage_model.transformer.text_model.*``); SD2 checkpoints store
OpenCLIP ViT-H/14's (``cond_stage_model.model.*``, Cherti et al. 2023), whose
fused ``in_proj`` attention weights are split into q/k/v here. Both load
strictly: a missing or unexpected key is an error.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Mapping

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # transformers costs about 2 s to import: only when a text encoder is built
    from transformers import CLIPTextConfig

from modules.nets.configs import TextEncoderConfig, TextEncoderLayout

SD1_PREFIX = "transformer.text_model."
OPEN_CLIP_PREFIX = "model."
# Entries that are not text-tower weights and are dropped at load: HF's
# position-id buffer, OpenCLIP's image-text projection, logit scale and
# causal-mask buffer (recomputed by CLIPTextModel).
NON_WEIGHT_SUFFIXES = ("embeddings.position_ids", "text_projection", "logit_scale", "attn_mask")

_OPEN_CLIP_LAYER_NAMES = {
    "ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
}
_OPEN_CLIP_TOP_NAMES = {
    "token_embedding.weight": "embeddings.token_embedding.weight",
    "positional_embedding": "embeddings.position_embedding.weight",
    "ln_final.weight": "final_layer_norm.weight", "ln_final.bias": "final_layer_norm.bias",
}


def clip_text_config(config: TextEncoderConfig) -> CLIPTextConfig:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        max_position_embeddings=config.max_positions, hidden_act=config.hidden_act, layer_norm_eps=1e-5,
        # Only used for the pooled output, which SD does not condition on.
        bos_token_id=min(49406, config.vocab_size - 1), eos_token_id=min(49407, config.vocab_size - 1),
        pad_token_id=min(config.pad_token_id, config.vocab_size - 1),
    )


def open_clip_to_hf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """OpenCLIP text-tower keys (``model.`` stripped) -> CLIPTextModel keys; unknown keys pass through unchanged."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key in _OPEN_CLIP_TOP_NAMES:
            out[_OPEN_CLIP_TOP_NAMES[key]] = value
        elif key.startswith("transformer.resblocks."):
            index, rest = key.removeprefix("transformer.resblocks.").split(".", 1)
            out.update(_open_clip_layer_entry(f"encoder.layers.{index}.", rest, value))
        else:
            out[key] = value
    return out


def _open_clip_layer_entry(layer: str, rest: str, value: Tensor) -> dict[str, Tensor]:
    if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
        kind = rest.rsplit("_", 1)[1]  # "weight" or "bias"
        q, k, v = value.chunk(3, dim=0)
        return {f"{layer}self_attn.{name}_proj.{kind}": t for name, t in zip("qkv", (q, k, v))}
    module, kind = rest.rsplit(".", 1)
    return {f"{layer}{_OPEN_CLIP_LAYER_NAMES.get(module, module)}.{kind}": value}


def hf_to_open_clip(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of ``open_clip_to_hf`` (q/k/v fused back into ``in_proj``)."""
    top = {hf: oc for oc, hf in _OPEN_CLIP_TOP_NAMES.items()}
    layer_names = {hf: oc for oc, hf in _OPEN_CLIP_LAYER_NAMES.items()}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key in top:
            out[top[key]] = value
            continue
        index, rest = key.removeprefix("encoder.layers.").split(".", 1)
        module, kind = rest.rsplit(".", 1)
        prefix = f"transformer.resblocks.{index}."
        if module == "self_attn.q_proj":
            fused = [state[f"encoder.layers.{index}.self_attn.{n}_proj.{kind}"] for n in "qkv"]
            out[f"{prefix}attn.in_proj_{kind}"] = torch.cat(fused, dim=0)
        elif module not in ("self_attn.k_proj", "self_attn.v_proj"):
            out[f"{prefix}{layer_names[module]}.{kind}"] = value
    return out


class TextEncoder(nn.Module):
    """``cond_stage_model``: token ids -> per-token context for the UNet's cross-attention."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        from transformers import CLIPTextModel

        self.transformer = CLIPTextModel(clip_text_config(config))

    def load_ldm_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Strictly load the checkpoint's ``cond_stage_model.*`` entries (that prefix stripped)."""
        prefix = SD1_PREFIX if self.config.layout is TextEncoderLayout.CLIP_L else OPEN_CLIP_PREFIX
        weights = {k: v for k, v in state.items() if not k.endswith(NON_WEIGHT_SUFFIXES)}
        foreign = sorted(k for k in weights if not k.startswith(prefix))
        ours = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
        if self.config.layout is TextEncoderLayout.OPEN_CLIP:
            ours = open_clip_to_hf(ours)
        missing, unexpected = self.transformer.load_state_dict(ours, strict=False)
        problems = [f"missing {sorted(missing)}"] if missing else []
        problems += [f"unexpected {sorted(unexpected) + foreign}"] if unexpected or foreign else []
        if problems:
            raise ValueError(f"text encoder ({self.config.layout.value} layout): " + "; ".join(problems))

    def ldm_state_dict(self) -> dict[str, Tensor]:
        """The weights in checkpoint layout (without ``cond_stage_model.``): the inverse of loading."""
        state = self.transformer.state_dict()
        if self.config.layout is TextEncoderLayout.OPEN_CLIP:
            return {OPEN_CLIP_PREFIX + k: v for k, v in hf_to_open_clip(state).items()}
        return {SD1_PREFIX + k: v for k, v in state.items()}

    def encode(
        self, token_ids: Tensor, clip_skip: int | None = None, input_vectors: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Hidden states [B, T, width]. ``clip_skip`` n takes the n-th layer output from the end,
        then the final LayerNorm (A1111's "Clip skip"; SD2 conditions on n=2, the penultimate).
        ``input_vectors`` = (vectors [B, T, width], where [B, T]): token embeddings replaced at
        those positions before the transformer (textual inversion)."""
        skip = clip_skip or self.config.default_clip_skip
        if not 1 <= skip <= self.config.num_layers:
            raise ValueError(f"clip skip must be between 1 and {self.config.num_layers}, got {skip}")
        with self._token_embeddings_replaced(input_vectors):
            output = self.transformer(input_ids=token_ids, output_hidden_states=skip > 1)
        if skip == 1:
            return output.last_hidden_state
        return self.transformer.final_layer_norm(output.hidden_states[-skip])

    @contextmanager
    def _token_embeddings_replaced(self, input_vectors: tuple[Tensor, Tensor] | None) -> Iterator[None]:
        """A forward hook on the token-embedding table for one call: its output is what the
        transformer adds the position embeddings to, so replacing rows there is exactly
        "these positions have these input vectors"."""
        if input_vectors is None:
            yield
            return
        vectors, where = input_vectors

        def replace(_module: nn.Module, _inputs: tuple, looked_up: Tensor) -> Tensor:
            mask = where.to(looked_up.device)[..., None]
            return torch.where(mask, vectors.to(looked_up.device, looked_up.dtype), looked_up)

        handle = self.transformer.get_input_embeddings().register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()
