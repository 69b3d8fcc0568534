"""Random-weight state dicts in the key layouts that released upscaler files use, written out
from those layouts here (not produced by the code under test), at tiny widths."""

from __future__ import annotations

import torch

_GEN = torch.Generator().manual_seed(0)


def _conv(out: int, inp: int, k: int = 3) -> dict[str, torch.Tensor]:
    return {"weight": torch.randn(out, inp, k, k, generator=_GEN) * (0.5 / (inp * k * k) ** 0.5),
            "bias": torch.randn(out, generator=_GEN) * 0.01}


def _put(state: dict, prefix: str, tensors: dict) -> None:
    for leaf, tensor in tensors.items():
        state[f"{prefix}.{leaf}"] = tensor


def _dense_block(state: dict, prefix: str, nf: int, gc: int, old: bool) -> None:
    for j in range(1, 6):
        name = f"{prefix}.conv{j}.0" if old else f"{prefix}.conv{j}"
        _put(state, name, _conv(nf if j == 5 else gc, nf + (j - 1) * gc))


def esrgan_old(nf: int = 8, nb: int = 1, gc: int = 4, steps: int = 2) -> dict[str, torch.Tensor]:
    """The original ESRGAN release ("RRDB_ESRGAN_x4.pth"): model.0, model.1.sub.*, model.3/6/8/10."""
    state: dict[str, torch.Tensor] = {}
    _put(state, "model.0", _conv(nf, 3))
    for i in range(nb):
        for k in (1, 2, 3):
            _dense_block(state, f"model.1.sub.{i}.RDB{k}", nf, gc, old=True)
    _put(state, f"model.1.sub.{nb}", _conv(nf, nf))
    for step in range(1, steps + 1):
        _put(state, f"model.{3 * step}", _conv(nf, nf))
    _put(state, f"model.{3 * steps + 2}", _conv(nf, nf))
    _put(state, f"model.{3 * steps + 4}", _conv(3, nf))
    return state


def esrgan_new(nf: int = 8, nb: int = 1, gc: int = 4, steps: int = 2, unshuffle: int = 1) -> dict[str, torch.Tensor]:
    """BasicSR's RRDBNet ("RealESRGAN_x4plus.pth"; x2plus feeds a 2x pixel-unshuffled input)."""
    state: dict[str, torch.Tensor] = {}
    _put(state, "conv_first", _conv(nf, 3 * unshuffle**2))
    for i in range(nb):
        for k in (1, 2, 3):
            _dense_block(state, f"body.{i}.rdb{k}", nf, gc, old=False)
    _put(state, "conv_body", _conv(nf, nf))
    for step in range(1, steps + 1):
        _put(state, f"conv_up{step}", _conv(nf, nf))
    _put(state, "conv_hr", _conv(nf, nf))
    _put(state, "conv_last", _conv(3, nf))
    return state


def old_to_new_by_hand(old: dict[str, torch.Tensor], steps: int) -> dict[str, torch.Tensor]:
    """The renaming spelled out, to check the loader's conversion against."""
    new = {}
    fixed = {0: "conv_first", 3 * steps + 2: "conv_hr", 3 * steps + 4: "conv_last"}
    fixed.update({3 * k: f"conv_up{k}" for k in range(1, steps + 1)})
    for key, tensor in old.items():
        parts = key.split(".")
        if len(parts) == 8:  # model.1.sub.i.RDBk.convj.0.leaf
            new[f"body.{parts[3]}.{parts[4].lower()}.{parts[5]}.{parts[7]}"] = tensor
        elif len(parts) == 5:  # model.1.sub.nb.leaf: the trunk's last conv
            new[f"conv_body.{parts[4]}"] = tensor
        else:
            new[f"{fixed[int(parts[1])]}.{parts[2]}"] = tensor
    return new


def compact(nf: int = 8, convs: int = 2, scale: int = 4) -> dict[str, torch.Tensor]:
    """SRVGGNetCompact ("realesr-general-x4v3.pth"): body.0 conv, body.1 PReLU, ..., last conv."""
    state: dict[str, torch.Tensor] = {}
    _put(state, "body.0", _conv(nf, 3))
    state["body.1.weight"] = torch.full((nf,), 0.25)
    for i in range(convs):
        _put(state, f"body.{2 * i + 2}", _conv(nf, nf))
        state[f"body.{2 * i + 3}.weight"] = torch.full((nf,), 0.25)
    _put(state, f"body.{2 * convs + 2}", _conv(3 * scale**2, nf))
    return state


def _swin_block(state: dict, prefix: str, dim: int, heads: int, window: int, ratio: int = 2) -> None:
    state[f"{prefix}.norm1.weight"] = torch.ones(dim)
    state[f"{prefix}.attn.relative_position_bias_table"] = torch.zeros((2 * window - 1) ** 2, heads)
    state[f"{prefix}.attn.relative_position_index"] = torch.zeros(window**2, window**2, dtype=torch.long)
    state[f"{prefix}.attn.qkv.weight"] = torch.zeros(3 * dim, dim)
    state[f"{prefix}.attn.proj.weight"] = torch.zeros(dim, dim)
    state[f"{prefix}.norm2.weight"] = torch.ones(dim)
    state[f"{prefix}.mlp.fc1.weight"] = torch.zeros(ratio * dim, dim)
    state[f"{prefix}.mlp.fc2.weight"] = torch.zeros(dim, ratio * dim)


def swinir(head: str, scale: int, dim: int = 12, features: int = 16) -> dict[str, torch.Tensor]:
    """SwinIR's key layout (official repo): classical SR ("pixelshuffle"), lightweight
    ("pixelshuffledirect"), real-world ("nearest+conv", 4x) and denoising (no upsampler)."""
    state: dict[str, torch.Tensor] = {"conv_first.weight": torch.zeros(dim, 3, 3, 3), "patch_embed.norm.weight": torch.ones(dim)}
    _swin_block(state, "layers.0.residual_group.blocks.0", dim, heads=2, window=4)
    state["layers.0.conv.weight"] = torch.zeros(dim, dim, 3, 3)
    state["norm.weight"] = torch.ones(dim)
    state["conv_after_body.weight"] = torch.zeros(dim, dim, 3, 3)
    _head(state, head, scale, dim, features)
    return state


def _head(state: dict, head: str, scale: int, dim: int, features: int) -> None:
    if head == "pixelshuffle":
        state["conv_before_upsample.0.weight"] = torch.zeros(features, dim, 3, 3)
        if scale == 3:
            state["upsample.0.weight"] = torch.zeros(9 * features, features, 3, 3)
        for i in range(scale.bit_length() - 1 if scale != 3 else 0):
            state[f"upsample.{2 * i}.weight"] = torch.zeros(4 * features, features, 3, 3)
        state["conv_last.weight"] = torch.zeros(3, features, 3, 3)
    elif head == "pixelshuffledirect":
        state["upsample.0.weight"] = torch.zeros(3 * scale**2, dim, 3, 3)
    elif head == "nearest+conv":
        state["conv_before_upsample.0.weight"] = torch.zeros(features, dim, 3, 3)
        state["conv_up1.weight"] = torch.zeros(features, features, 3, 3)
        state["conv_up2.weight"] = torch.zeros(features, features, 3, 3)
        state["conv_hr.weight"] = torch.zeros(features, features, 3, 3)
        state["conv_last.weight"] = torch.zeros(3, features, 3, 3)
    else:
        state["conv_last.weight"] = torch.zeros(3, dim, 3, 3)


def dat(scale: int, dim: int = 12, features: int = 16) -> dict[str, torch.Tensor]:
    """DAT's key layout (official repo, the names spandrel also checks for)."""
    state: dict[str, torch.Tensor] = {"conv_first.weight": torch.zeros(dim, 3, 3, 3),
                                      "before_RG.1.weight": torch.ones(dim), "before_RG.1.bias": torch.zeros(dim)}
    block = "layers.0.blocks.0"
    for name, shape in {"norm1.weight": (dim,), "norm2.weight": (dim,), "ffn.fc1.weight": (2 * dim, dim),
                        "ffn.sg.norm.weight": (dim,), "ffn.sg.conv.weight": (dim, 1, 3, 3), "ffn.fc2.weight": (dim, dim),
                        "attn.qkv.weight": (3 * dim, dim), "attn.proj.weight": (dim, dim),
                        "attn.attns.0.rpe_biases": (49, 2), "attn.attns.0.relative_position_index": (16, 16),
                        "attn.attns.0.pos.pos_proj.weight": (4, 2)}.items():
        state[f"{block}.{name}"] = torch.zeros(shape)
    state["norm.weight"] = torch.ones(dim)
    state["conv_after_body.weight"] = torch.zeros(dim, dim, 3, 3)
    _head(state, "pixelshuffle", scale, dim, features)
    return state
