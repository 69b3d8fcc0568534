"""Which model a checkpoint holds, and the sizes of its nets, read from key names and shapes.

The key layout is the CompVis latent-diffusion one (Rombach et al. 2022, "High-
Resolution Image Synthesis with Latent Diffusion Models"): the UNet under
``model.diffusion_model.``, the AutoencoderKL under ``first_stage_model.``, the
text encoder under ``cond_stage_model.``. Every size is read from a tensor
shape, so a small model with the same layout is detected by the same code.

Two things no shape carries are fixed per family, as the families define them:
- attention heads: SD1 (v1-inference.yaml) uses 8 heads per transformer
  whatever its width; SD2 (v2-inference*.yaml) uses 64-channel heads.
- the text encoder's activation, clip skip and pad token: CLIP ViT-L/14
  (quick_gelu, last layer, pads with <|endoftext|>) for SD1; OpenCLIP
  ViT-H/14 (gelu, penultimate layer, pads with 0) for SD2.

Everything else in a checkpoint that is not a weight of the three nets (EMA
copies, diffusion schedule buffers, ``position_ids``, OpenCLIP's
``text_projection``/``logit_scale``) is never read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import yaml
from safetensors import SafetensorError, safe_open

from modules.models.families import DetectedModel, ModelFamily, Prediction, UnknownModelLayoutError
from modules.models.safe_load import SAFETENSORS_SUFFIXES, corrupt_safetensors_error, load_state_dict
from modules.nets.configs import TextEncoderConfig, TextEncoderLayout, UNetConfig, VAEConfig

Shapes = Mapping[str, tuple[int, ...]]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "cond_stage_model.transformer.text_model."
OPEN_CLIP_PREFIX = "cond_stage_model.model."
PREDICTION_METADATA_KEY = "modelspec.prediction_type"

_SD1_HEADS = 8  # v1-inference.yaml: num_heads 8
_SD2_HEAD_CHANNELS = 64  # v2-inference.yaml: num_head_channels 64
_TEXT_HEAD_WIDTH = 64  # CLIP ViT-L/14 and OpenCLIP ViT-H/14 text towers: width / 64 heads
# LDM's DDPM class defaults to eps when its yaml sets no parameterization.
_LDM_DEFAULT_PARAMETERIZATION = "eps"
_PREDICTION_NAMES = {"eps": Prediction.EPS, "epsilon": Prediction.EPS, "v": Prediction.V, "v_prediction": Prediction.V}
_NON_SD_MARKERS = (
    ("conditioner.embedders.", "an SDXL-style layout (conditioner.embedders)"),
    (UNET_PREFIX + "label_emb.", "a class-embedding UNet (model.diffusion_model.label_emb, as in SDXL)"),
)
# Top-level module names of LDM and SDXL checkpoints; keys under them are counted per sub-module.
_CONTAINERS = ("model", "first_stage_model", "cond_stage_model", "conditioner")
# Entries of real checkpoints that belong to no net the loader builds (a buffer of the text model
# rebuilt at load, OpenCLIP's contrastive head): detection never reads them.
_NON_WEIGHT_KEYS = (
    CLIP_L_PREFIX + "embeddings.position_ids",
    OPEN_CLIP_PREFIX + "text_projection",
    OPEN_CLIP_PREFIX + "logit_scale",
    OPEN_CLIP_PREFIX + "attn_mask",
)
# Early SD1 files (made with transformers < 4.x's CLIPTextModel, whose modules sat directly under
# the model) lack the ``text_model.`` level; A1111 renames these three prefixes the same way.
_OLD_CLIP_L_PREFIX = "cond_stage_model.transformer."
_OLD_CLIP_L_MODULES = ("embeddings.", "encoder.", "final_layer_norm.")
_MAX_PREFIXES_SHOWN = 12
_MAX_SAMPLES_SHOWN = 6


def current_key(key: str) -> str:
    """``key`` in today's layout: an old-layout CLIP-L key gains its ``text_model.`` level."""
    if key.startswith(_OLD_CLIP_L_PREFIX):
        rest = key[len(_OLD_CLIP_L_PREFIX):]
        if rest.startswith(_OLD_CLIP_L_MODULES):
            return CLIP_L_PREFIX + rest
    return key


def with_current_keys(state: Mapping[str, object]) -> dict[str, object]:
    """A state dict (or key -> shape map) with every key in today's layout."""
    return {current_key(key): value for key, value in state.items()}


def read_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Key -> shape of every tensor in a checkpoint, and its safetensors metadata ({} for pickles).

    Safetensors are read from the header only; zip-format pickles are memory-mapped, so their
    tensor bytes are not read either.
    """
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        return {key: tuple(value.shape) for key, value in load_state_dict(path).items()}, {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
            return shapes, dict(handle.metadata() or {})
    except SafetensorError as error:
        raise corrupt_safetensors_error(path, error) from error


def detect_checkpoint(path: Path) -> DetectedModel:
    """Detect the model in a checkpoint file, using ``<stem>.yaml`` beside it if there is one."""
    path = Path(path)
    shapes, metadata = read_shapes(path)
    yaml_path = path.with_suffix(".yaml")
    try:
        sibling_yaml = yaml_path.read_text(encoding="utf-8") if yaml_path.is_file() else None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{yaml_path}: cannot read this config beside the checkpoint: {error}") from error
    try:
        return detect_family(shapes, metadata, sibling_yaml)
    except UnknownModelLayoutError as error:
        raise UnknownModelLayoutError(f"{path}: {error}") from error
    except ValueError as error:
        if sibling_yaml is None:
            raise
        raise ValueError(f"{yaml_path}: {error}") from error  # the sibling config is bad: name it


def detect_family(shapes: Shapes, metadata: Mapping[str, str] | None = None,
                  sibling_yaml: str | None = None) -> DetectedModel:
    """The family, prediction type and net sizes of an LDM-layout state dict, from shapes alone.

    Raises ``UnknownModelLayoutError`` (listing what was found) for any layout
    that is not SD1/SD2 or their inpainting variants.
    """
    shapes = {key: shape for key, shape in with_current_keys(shapes).items() if key not in _NON_WEIGHT_KEYS}
    _reject_other_architectures(shapes)
    text, text_reason = _text_encoder_config(shapes)
    vae = _vae_config(_under(shapes, VAE_PREFIX), shapes, "checkpoint")
    sd2 = text.layout is TextEncoderLayout.OPEN_CLIP
    unet, unet_reason = _unet_config(shapes, sd2)
    inpainting, channel_reason = _input_kind(unet, vae, shapes)
    if unet.context_dim != text.hidden_size:
        raise _layout_error(shapes, f"UNet cross-attention context dim {unet.context_dim} does not match "
                                    f"the text encoder width {text.hidden_size}")
    family = _family(sd2, inpainting)
    prediction, prediction_reason = _prediction(family, metadata or {}, sibling_yaml)
    reasons = (f"family {family.value}", text_reason, channel_reason, unet_reason, _heads_reason(sd2),
               _vae_reason(vae), prediction_reason)
    return DetectedModel(family=family, prediction=prediction, unet=unet, vae=vae, text_encoder=text, reasons=reasons)


def detect_vae_file(shapes: Shapes) -> VAEConfig:
    """The AutoencoderKL sizes of a standalone VAE file (keys with or without ``first_stage_model.``)."""
    prefixed = _under(shapes, VAE_PREFIX)
    return _vae_config(prefixed if prefixed else dict(shapes), shapes, "VAE file")


def _family(sd2: bool, inpainting: bool) -> ModelFamily:
    if sd2:
        return ModelFamily.SD2_INPAINT if inpainting else ModelFamily.SD2
    return ModelFamily.SD1_INPAINT if inpainting else ModelFamily.SD1


# ----- what was found: the text of every layout error -----

def _layout_error(shapes: Shapes, problem: str) -> UnknownModelLayoutError:
    return UnknownModelLayoutError(f"unknown model layout: {problem}. Found {_describe_found(shapes)}")


def _describe_found(shapes: Shapes) -> str:
    if not shapes:
        return "no tensors at all"
    groups: dict[str, list[str]] = {}
    for key in sorted(shapes):
        groups.setdefault(_key_group(key), []).append(key)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    listed = ", ".join(keys[0] if keys == [group] else f"{group}.* ({len(keys)})"
                       for group, keys in ordered[:_MAX_PREFIXES_SHOWN])
    if len(ordered) > _MAX_PREFIXES_SHOWN:
        listed += f", and {len(ordered) - _MAX_PREFIXES_SHOWN} more"
    samples = ", ".join(f"{keys[0]} {list(shapes[keys[0]])}" for _, keys in ordered[:_MAX_SAMPLES_SHOWN])
    return f"{len(shapes)} tensors; key prefixes: {listed}; sample keys: {samples}"


def _key_group(key: str) -> str:
    """The prefix a key is counted under: two levels inside the LDM containers, else one."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] in _CONTAINERS and len(parts) > 2 else parts[0]


def _reject_other_architectures(shapes: Shapes) -> None:
    for prefix, description in _NON_SD_MARKERS:
        if any(key.startswith(prefix) for key in shapes):
            raise _layout_error(shapes, f"{description} is not an SD1/SD2 checkpoint (not supported)")


# ----- shape access -----

def _under(shapes: Shapes, prefix: str) -> dict[str, tuple[int, ...]]:
    """The entries under ``prefix``, with the prefix removed."""
    return {key[len(prefix):]: shape for key, shape in shapes.items() if key.startswith(prefix)}


def _shape(part: Shapes, key: str, ndim: int, whole: Shapes, where: str) -> tuple[int, ...]:
    shape = part.get(key)
    if shape is None:
        raise _layout_error(whole, f"{where} has no {key}")
    if len(shape) != ndim:
        raise _layout_error(whole, f"{where} {key} has shape {list(shape)}, expected {ndim} dimensions")
    return tuple(shape)


def _indices(part: Shapes, pattern: str) -> list[int]:
    """Sorted distinct integers ``N`` of keys matching ``pattern`` (a regex with one ``(\\d+)`` group)."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in part if (m := regex.match(key))})


def _require_contiguous(indices: list[int], whole: Shapes, what: str) -> int:
    if not indices or indices != list(range(len(indices))):
        raise _layout_error(whole, f"{what} are not numbered 0..N-1 (found {indices[:20]})")
    return len(indices)


# ----- text encoder -----

def _text_encoder_config(shapes: Shapes) -> tuple[TextEncoderConfig, str]:
    clip_l, open_clip = _under(shapes, CLIP_L_PREFIX), _under(shapes, OPEN_CLIP_PREFIX)
    if clip_l and open_clip:
        raise _layout_error(shapes, "both a CLIP-L (cond_stage_model.transformer.text_model) and an OpenCLIP "
                                    "(cond_stage_model.model) text encoder")
    if clip_l:
        return _clip_l_config(clip_l, shapes)
    if open_clip:
        return _open_clip_config(open_clip, shapes)
    raise _layout_error(shapes, "no text encoder: neither cond_stage_model.transformer.text_model.* (CLIP-L, SD1) "
                                "nor cond_stage_model.model.* (OpenCLIP, SD2)")


def _clip_l_config(part: Shapes, whole: Shapes) -> tuple[TextEncoderConfig, str]:
    where = "CLIP-L text encoder"
    vocab, width = _shape(part, "embeddings.token_embedding.weight", 2, whole, where)
    positions = _shape(part, "embeddings.position_embedding.weight", 2, whole, where)[0]
    layers = _require_contiguous(_indices(part, r"encoder\.layers\.(\d+)\."), whole, f"{where} layers")
    intermediate = _shape(part, "encoder.layers.0.mlp.fc1.weight", 2, whole, where)[0]
    config = TextEncoderConfig(
        layout=TextEncoderLayout.CLIP_L, vocab_size=vocab, hidden_size=width, num_layers=layers,
        num_heads=max(1, width // _TEXT_HEAD_WIDTH), intermediate_size=intermediate, max_positions=positions,
        hidden_act="quick_gelu", default_clip_skip=1, pad_token_id=49407,
    )
    return config, f"text encoder: CLIP-L layout (HF CLIPTextModel keys), width {width}, {layers} layers -> SD1"


def _open_clip_config(part: Shapes, whole: Shapes) -> tuple[TextEncoderConfig, str]:
    where = "OpenCLIP text encoder"
    vocab, width = _shape(part, "token_embedding.weight", 2, whole, where)
    positions = _shape(part, "positional_embedding", 2, whole, where)[0]
    # The file holds every layer of the tower (24 for ViT-H); SD2 conditions on the penultimate
    # one, which is the default clip skip of 2, not a shorter model.
    layers = _require_contiguous(_indices(part, r"transformer\.resblocks\.(\d+)\."), whole, f"{where} resblocks")
    intermediate = _shape(part, "transformer.resblocks.0.mlp.c_fc.weight", 2, whole, where)[0]
    config = TextEncoderConfig(
        layout=TextEncoderLayout.OPEN_CLIP, vocab_size=vocab, hidden_size=width, num_layers=layers,
        num_heads=max(1, width // _TEXT_HEAD_WIDTH), intermediate_size=intermediate, max_positions=positions,
        hidden_act="gelu", default_clip_skip=2, pad_token_id=0,
    )
    return config, f"text encoder: OpenCLIP layout, width {width}, {layers} layers -> SD2"


# ----- VAE -----

def _vae_config(part: Shapes, whole: Shapes, what: str) -> VAEConfig:
    where = f"{what} VAE (first_stage_model)" if what == "checkpoint" else what
    if not any(key.startswith("encoder.") for key in part):
        raise _layout_error(whole, f"no VAE: {where} has no encoder.* weights")
    if any(key.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for key in part):
        raise _layout_error(whole, f"{where} uses the diffusers key layout (down_blocks/up_blocks), "
                                   "not the LDM one (down.N.block.M)")
    ch, in_channels = _shape(part, "encoder.conv_in.weight", 4, whole, where)[:2]
    levels = _require_contiguous(_indices(part, r"encoder\.down\.(\d+)\."), whole, f"{where} encoder levels")
    res_blocks = {_vae_level_blocks(part, level, whole, where) for level in range(levels)}
    if len(res_blocks) != 1:
        raise _layout_error(whole, f"{where} encoder levels have different block counts {sorted(res_blocks)}")
    widths = [_shape(part, f"encoder.down.{level}.block.0.conv2.weight", 4, whole, where)[0] for level in range(levels)]
    if any(width % ch for width in widths):
        raise _layout_error(whole, f"{where} level widths {widths} are not multiples of conv_in width {ch}")
    z_doubled = _shape(part, "encoder.conv_out.weight", 4, whole, where)[0]
    embed_doubled = _shape(part, "quant_conv.weight", 4, whole, where)[0]
    _shape(part, "post_quant_conv.weight", 4, whole, where)
    num_res_blocks = res_blocks.pop()
    out_ch = _check_vae_decoder(part, whole, where, levels, num_res_blocks)
    return VAEConfig(in_channels=in_channels, out_ch=out_ch, ch=ch, ch_mult=tuple(w // ch for w in widths),
                     num_res_blocks=num_res_blocks, z_channels=z_doubled // 2, embed_dim=embed_doubled // 2)


def _check_vae_decoder(part: Shapes, whole: Shapes, where: str, levels: int, num_res_blocks: int) -> int:
    """The decoder mirrors the encoder (one more block per level); returns its output channels."""
    decoder_levels = len(_indices(part, r"decoder\.up\.(\d+)\."))
    if decoder_levels != levels:
        raise _layout_error(whole, f"{where} decoder has {decoder_levels} levels, the encoder {levels}")
    for level in range(levels):
        blocks = _require_contiguous(_indices(part, rf"decoder\.up\.{level}\.block\.(\d+)\."),
                                     whole, f"{where} decoder.up.{level} blocks")
        if blocks != num_res_blocks + 1:
            raise _layout_error(whole, f"{where} decoder.up.{level} has {blocks} blocks, expected "
                                       f"{num_res_blocks + 1} for {num_res_blocks} per encoder level")
    return _shape(part, "decoder.conv_out.weight", 4, whole, where)[0]


def _vae_level_blocks(part: Shapes, level: int, whole: Shapes, where: str) -> int:
    indices = _indices(part, rf"encoder\.down\.{level}\.block\.(\d+)\.")
    return _require_contiguous(indices, whole, f"{where} encoder.down.{level} blocks")


def _vae_reason(vae: VAEConfig) -> str:
    return (f"VAE: ch {vae.ch}, ch_mult {vae.ch_mult}, {vae.num_res_blocks} res blocks, "
            f"z_channels {vae.z_channels} (encoder.conv_out / 2), embed_dim {vae.embed_dim} (quant_conv / 2)")


# ----- UNet -----

def _unet_config(shapes: Shapes, sd2: bool) -> tuple[UNetConfig, str]:
    part = _under(shapes, UNET_PREFIX)
    where = "UNet (model.diffusion_model)"
    if not part:
        raise _layout_error(shapes, "no UNet: no keys under model.diffusion_model.")
    model_channels, in_channels = _shape(part, "input_blocks.0.0.weight", 4, shapes, where)[:2]
    out_channels = _shape(part, "out.2.weight", 4, shapes, where)[0]
    levels = _unet_levels(part, shapes)
    channel_mult, num_res_blocks, attention = _level_sizes(levels, model_channels, shapes)
    depth, context_dim, linear = _transformer_sizes(part, shapes)
    _check_output_blocks(part, shapes, len(levels) * (num_res_blocks + 1))
    config = UNetConfig(
        in_channels=in_channels, out_channels=out_channels, model_channels=model_channels,
        channel_mult=channel_mult, num_res_blocks=num_res_blocks, attention_resolutions=attention,
        num_heads=-1 if sd2 else _SD1_HEADS, num_head_channels=_SD2_HEAD_CHANNELS if sd2 else -1,
        transformer_depth=depth, context_dim=context_dim, use_linear_in_transformer=linear,
    )
    reason = (f"UNet: model_channels {model_channels}, channel_mult {channel_mult}, {num_res_blocks} res blocks, "
              f"attention at {attention}, transformer depth {depth}, context {context_dim}, "
              f"{'linear' if linear else 'conv 1x1'} proj_in")
    return config, reason


def _unet_levels(part: Shapes, whole: Shapes) -> list[list[tuple[int, bool]]]:
    """Per resolution level, each ResBlock's (output width, followed by a SpatialTransformer)."""
    count = _require_contiguous(_indices(part, r"input_blocks\.(\d+)\."), whole, "UNet input_blocks")
    levels: list[list[tuple[int, bool]]] = [[]]
    for index in range(1, count):
        block = f"input_blocks.{index}."
        if block + "0.op.weight" in part:  # Downsample: a new level starts
            levels.append([])
        elif block + "0.in_layers.2.weight" in part:
            width = _shape(part, block + "0.in_layers.2.weight", 4, whole, "UNet")[0]
            levels[-1].append((width, block + "1.proj_in.weight" in part))
        else:
            raise _layout_error(whole, f"UNet {block[:-1]} is neither a ResBlock nor a Downsample")
    if any(not level for level in levels):
        raise _layout_error(whole, "UNet has a resolution level without ResBlocks")
    return levels


def _level_sizes(levels: list[list[tuple[int, bool]]], model_channels: int,
                 whole: Shapes) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    """channel_mult, num_res_blocks and attention_resolutions from the input side's ResBlocks."""
    counts = {len(level) for level in levels}
    if len(counts) != 1:
        raise _layout_error(whole, f"UNet levels have different ResBlock counts {[len(lv) for lv in levels]}")
    mults, attention = [], []
    for index, level in enumerate(levels):
        widths, attends = {w for w, _ in level}, {a for _, a in level}
        if len(widths) != 1 or len(attends) != 1 or next(iter(widths)) % model_channels:
            raise _layout_error(whole, f"UNet level {index} has ResBlock widths {sorted(widths)} and attention "
                                       f"{sorted(attends)}; expected one multiple of {model_channels} and one kind")
        mults.append(next(iter(widths)) // model_channels)
        if attends.pop():
            attention.append(2 ** index)  # the downsampling factor of the level, as the LDM yaml counts it
    # Listed largest factor first, as the LDM yaml files write them ([4, 2, 1]).
    return tuple(mults), counts.pop(), tuple(sorted(attention, reverse=True))


def _transformer_sizes(part: Shapes, whole: Shapes) -> tuple[int, int, bool]:
    """transformer_depth, context_dim and use_linear_in_transformer, the same in every SpatialTransformer."""
    prefixes = sorted({key[: key.index("proj_in.weight")] for key in part if key.endswith(".proj_in.weight")})
    if "middle_block.1." not in prefixes:
        raise _layout_error(whole, "UNet middle_block has no SpatialTransformer (middle_block.1.proj_in.weight)")
    sizes = {}
    for prefix in prefixes:
        depth = _require_contiguous(_indices(part, re.escape(prefix) + r"transformer_blocks\.(\d+)\."),
                                    whole, f"UNet {prefix}transformer_blocks")
        context = _shape(part, prefix + "transformer_blocks.0.attn2.to_k.weight", 2, whole, "UNet")[1]
        sizes[prefix] = (depth, context, len(part[prefix + "proj_in.weight"]) == 2)
    if len(set(sizes.values())) != 1:
        varied = ", ".join(f"{p[:-1]}: depth {d}, context {c}" for p, (d, c, _) in sizes.items())
        raise _layout_error(whole, f"UNet transformers differ in depth, context or projection ({varied})")
    return sizes["middle_block.1."]


def _check_output_blocks(part: Shapes, whole: Shapes, expected: int) -> None:
    count = len(_indices(part, r"output_blocks\.(\d+)\."))
    if count != expected:
        raise _layout_error(whole, f"UNet has {count} output_blocks; its input side implies {expected}")


def _input_kind(unet: UNetConfig, vae: VAEConfig, whole: Shapes) -> tuple[bool, str]:
    """Inpainting or not, from the UNet's input channels against the VAE's latent channels."""
    latent = vae.embed_dim
    if unet.out_channels != latent:
        raise _layout_error(whole, f"UNet out_channels {unet.out_channels} differ from the VAE latent "
                                   f"channels {latent}")
    if unet.in_channels == latent:
        return False, f"UNet in_channels {unet.in_channels} = latent channels -> txt2img model"
    if unet.in_channels == 2 * latent + 1:
        return True, (f"UNet in_channels {unet.in_channels} -> inpainting (latent {latent} + masked-image "
                      f"latent {latent} + mask 1)")
    raise _layout_error(whole, f"UNet in_channels {unet.in_channels} fit neither a txt2img model ({latent}) nor "
                               f"an inpainting model ({2 * latent + 1}) (e.g. instruct-pix2pix or depth models)")


def _heads_reason(sd2: bool) -> str:
    if sd2:
        return f"UNet heads: SD2 convention of {_SD2_HEAD_CHANNELS}-channel heads (shapes carry no head count)"
    return f"UNet heads: SD1 convention of {_SD1_HEADS} heads (shapes carry no head count)"


# ----- prediction type -----

def _prediction(family: ModelFamily, metadata: Mapping[str, str], sibling_yaml: str | None) -> tuple[Prediction, str]:
    """eps or v: safetensors ModelSpec metadata, else the sibling LDM yaml, else the family's default."""
    declared = metadata.get(PREDICTION_METADATA_KEY)
    if declared is not None:
        prediction = _prediction_named(declared, f"metadata {PREDICTION_METADATA_KEY}")
        return prediction, f"prediction {prediction.value}: safetensors metadata {PREDICTION_METADATA_KEY}={declared!r}"
    if sibling_yaml is not None:
        parameterization = _yaml_parameterization(sibling_yaml)
        prediction = _prediction_named(parameterization, "sibling .yaml parameterization")
        return prediction, f"prediction {prediction.value}: sibling .yaml parameterization {parameterization!r}"
    if family is ModelFamily.SD2:
        return Prediction.V, ("prediction v: no metadata or .yaml; SD2 fallback (the SD 2.x 768 checkpoints, "
                              "v2-inference-v.yaml, are v-prediction; add a .yaml for a 512 eps one)")
    why = "SD2 inpainting (512-inpainting-ema) is eps" if family is ModelFamily.SD2_INPAINT else "SD1 is eps"
    return Prediction.EPS, f"prediction eps: no metadata or .yaml; fallback: {why}"


def _prediction_named(value: str, source: str) -> Prediction:
    prediction = _PREDICTION_NAMES.get(value.strip().lower().replace("-", "_"))
    if prediction is None:
        raise UnknownModelLayoutError(
            f"{source} is {value!r}; supported prediction types: {', '.join(sorted(_PREDICTION_NAMES))}")
    return prediction


def _yaml_parameterization(text: str) -> str:
    """``model.params.parameterization`` of an LDM config; LDM's default (eps) when it is not set."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"sibling .yaml config is not valid YAML: {error}") from error
    model = config.get("model") if isinstance(config, dict) else None
    params = model.get("params") if isinstance(model, dict) else None
    value = params.get("parameterization") if isinstance(params, dict) else None
    return str(value) if value is not None else _LDM_DEFAULT_PARAMETERIZATION
