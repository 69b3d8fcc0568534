"""LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") at generation time.

A LoRA file holds, per adapted layer, a low-rank pair ``down`` [r, in] and ``up``
[out, r] (for convolutions ``down`` may carry the kernel, ``up`` is 1x1) and
optionally ``alpha``; the layer's weight becomes ``W + m * (alpha / r) * up @ down``
(``alpha / r`` is 1 when the file has no alpha), where ``m`` is the prompt tag's
multiplier for the text encoder or the UNet part. LoCon's Tucker form adds a
``mid`` kernel between a 1x1 ``down`` and a 1x1 ``up``.

The update is added into the affected weights in place for one job and the
original tensors of those layers only are put back afterwards (the tensor
objects themselves, so the model is bitwise what it was). The model object is
shared through the model cache: this is safe because jobs run one at a time on
the worker thread, and nothing else computes with a model while a job holds it.

Prompt tags follow A1111 (``<lora:name:te[:unet]>`` or ``te=``/``unet=``; the
default multiplier is the ``extra_networks_default_multiplier`` setting), and
so does the ``Lora hashes`` infotext field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from modules.models.safe_load import load_state_dict, read_safetensors_metadata
from modules.networks.lora_keys import TEXT_ENCODER, UNET, LayerRef, layer_names
from modules.networks.tags import ExtraNetworkTag, extract_extra_networks
from modules.params import ParamsError

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")
LORA_TAG_KINDS = ("lora", "lyco")  # A1111 reads <lyco:...> as a LoRA too
_SHORT_HASH = 12  # A1111's Lora shorthash length
_BLOCK = 1024 * 1024

# (component, pattern): how each LoRA format spells the parts of one adapted layer.
_KEY_FORMATS = (
    ("up", re.compile(r"^(.+)\.lora_up\.weight$")),  # kohya / A1111
    ("down", re.compile(r"^(.+)\.lora_down\.weight$")),
    ("mid", re.compile(r"^(.+)\.lora_mid\.weight$")),  # LoCon (Tucker)
    ("alpha", re.compile(r"^(.+)\.alpha$")),
    ("up", re.compile(r"^(.+)\.lora_B(?:\.default)?\.weight$")),  # PEFT
    ("down", re.compile(r"^(.+)\.lora_A(?:\.default)?\.weight$")),
    ("up", re.compile(r"^(.+)\.lora(?:_linear_layer)?\.up\.weight$")),  # diffusers LoRA layers
    ("down", re.compile(r"^(.+)\.lora(?:_linear_layer)?\.down\.weight$")),
)
# diffusers' attention processors name the projection inside the processor: ".processor.to_q_lora".
_ATTENTION_PROCESSOR = re.compile(r"^(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(up|down)\.weight$")


class LoraError(ValueError):
    """A LoRA file that cannot be applied to the model; the message names the file and the keys."""


@dataclass(frozen=True)
class LoraFile:
    name: str  # the file name without extension (what <lora:name> uses)
    alias: str  # ss_output_name from the file's metadata, else the name
    path: Path
    metadata: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class LoraRequest:
    """One ``<lora:...>`` tag resolved to a file, with its two multipliers."""

    file: LoraFile
    te_multiplier: float
    unet_multiplier: float
    shorthash: str  # for the infotext's "Lora hashes"


@dataclass(frozen=True)
class LowRankUpdate:
    """One adapted layer of a LoRA file: ``key`` is its name in the file (for messages)."""

    key: str
    up: Tensor
    down: Tensor
    mid: Tensor | None = None
    alpha: float | None = None

    @property
    def scale(self) -> float:
        return self.alpha / self.down.shape[0] if self.alpha is not None else 1.0

    def delta(self) -> Tensor:
        """``up @ down`` (or ``up * mid * down``) in fp32, shaped like a Linear or Conv2d weight."""
        up, down = self.up.float().flatten(1), self.down.float()
        if self.mid is not None:
            return torch.einsum("oa,abkl,bi->oikl", up, self.mid.float(), down.flatten(1))
        if down.dim() == 2:
            return up @ down
        return torch.einsum("or,rikl->oikl", up, down)


# ----- the files -----
class LoraLibrary:
    """The LoRA files under the LoRA folders (recursive), scanned on first use and on refresh,
    with their short hashes remembered by (path, size, mtime)."""

    def __init__(self, dirs: Sequence[Path]):
        self.dirs = tuple(Path(d) for d in dirs)
        self._lock = threading.Lock()
        self._files: list[LoraFile] | None = None
        self._hashes: dict[tuple[str, int, int], str] = {}

    def files(self, refresh: bool = False) -> list[LoraFile]:
        with self._lock:
            if refresh or self._files is None:
                self._files = [describe_lora_file(path) for path in scan_lora_paths(self.dirs)]
            return list(self._files)

    def find(self, name: str) -> LoraFile | None:
        """A1111 looks a tag's name up among the file names, then the aliases; a name not found
        rescans the folders once (a file added since the last scan is found without a refresh)."""
        for refresh in (False, True):
            files = self.files(refresh)
            found = next((f for f in files if f.name == name), None) or next((f for f in files if f.alias == name), None)
            if found is not None:
                return found
        return None

    def shorthash(self, file: LoraFile) -> str:
        stat = os.stat(file.path)
        key = (str(file.path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._hashes.get(key)
        if known is None:
            known = lora_hash(file)
            with self._lock:
                self._hashes[key] = known
        return known[:_SHORT_HASH]

    def requests_for(self, prompts: dict[str, str], default_multiplier: float) -> list[LoraRequest]:
        """The LoRAs the prompts' tags ask for (``prompts``: field name -> text). Unknown names and
        bad multipliers raise ParamsError naming the field, before anything is queued."""
        requests, problems = [], []
        for field_name, text in prompts.items():
            for tag in lora_tags(text):
                file = self.find(tag.name)
                if file is None:
                    available = ", ".join(sorted({f.alias for f in self.files()} | {f.name for f in self.files()}))
                    problems.append((field_name, f"unknown LoRA {tag.name!r}; available: {available or 'none'}"
                                     f" (LoRA folders: {', '.join(str(d) for d in self.dirs)})"))
                    continue
                try:
                    te, unet = tag_multipliers(tag, default_multiplier)
                except ValueError as error:
                    problems.append((field_name, f"LoRA {tag.name!r}: {error}"))
                    continue
                requests.append(LoraRequest(file, te, unet, self.shorthash(file)))
        if problems:
            raise ParamsError(problems)
        return requests


def scan_lora_paths(dirs: Sequence[Path]) -> list[Path]:
    """LoRA files under ``dirs`` (recursive, hidden files and folders skipped), each folder sorted by path."""
    found: list[Path] = []
    for root in dirs:
        for folder, subfolders, names in os.walk(root, followlinks=True):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            found += [Path(folder) / n for n in sorted(names)
                      if not n.startswith(".") and Path(n).suffix.lower() in LORA_SUFFIXES]
    unique = dict.fromkeys(Path(os.path.abspath(p)) for p in found)
    return list(unique)


def describe_lora_file(path: Path) -> LoraFile:
    metadata = {key: _decoded(value) for key, value in read_safetensors_metadata(path).items()}
    name = path.name[: -len(path.suffix)]
    alias = metadata.get("ss_output_name")
    return LoraFile(name=name, alias=str(alias) if alias else name, path=path, metadata=metadata)


def _decoded(value: str) -> object:
    """kohya writes some metadata values as JSON text (tag frequencies, dataset dirs); A1111 shows them decoded."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def lora_hash(file: LoraFile) -> str:
    """The hash A1111 records for a LoRA: the file's ``sshs_model_hash`` metadata when present, else
    for safetensors the sha256 of the tensor bytes after the header (kohya-ss' "addnet" hash, so that
    editing the metadata does not change it), else the sha256 of the whole file."""
    declared = file.metadata.get("sshs_model_hash")
    if isinstance(declared, str) and re.fullmatch(r"[0-9a-fA-F]{12,64}", declared):
        return declared.lower()
    digest = hashlib.sha256()
    with open(file.path, "rb") as handle:
        if file.path.suffix.lower() == ".safetensors":
            header_size = int.from_bytes(handle.read(8), "little")
            handle.seek(8 + header_size)
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# ----- prompt tags -----
def lora_tags(prompt: str) -> list[ExtraNetworkTag]:
    return [tag for tag in extract_extra_networks(prompt)[1] if tag.kind in LORA_TAG_KINDS]


def tag_multipliers(tag: ExtraNetworkTag, default: float) -> tuple[float, float]:
    """(text encoder, UNet) multipliers of ``<lora:name:te:unet>`` as A1111 reads them: te is the
    first argument (else the default), unet the second (else te); ``te=``/``unet=`` override."""
    def number(text: str, what: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"the {what} multiplier {text!r} is not a number") from None

    te = number(tag.positional[0], "text encoder") if tag.positional else default
    te = number(tag.named["te"], "text encoder") if "te" in tag.named else te
    unet = number(tag.positional[1], "UNet") if len(tag.positional) > 1 else te
    unet = number(tag.named["unet"], "UNet") if "unet" in tag.named else unet
    return te, unet


# ----- reading a file into layer updates -----
def group_lora_keys(state: dict[str, Tensor]) -> tuple[dict[str, dict[str, Tensor]], list[str]]:
    """(layer name as the file writes it -> {"up", "down", "mid", "alpha"}, keys of no known LoRA form)."""
    groups: dict[str, dict[str, Tensor]] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        processor = _ATTENTION_PROCESSOR.match(key)
        if processor:
            base, projection, part = processor.groups()
            layer = f"{base}.{projection}" + (".0" if projection == "to_out" else "")
            groups.setdefault(layer, {})[part] = tensor
            continue
        for part, pattern in _KEY_FORMATS:
            match = pattern.match(key)
            if match:
                groups.setdefault(match.group(1), {})[part] = tensor
                break
        else:
            unknown.append(key)
    return groups, unknown


def layer_lookup_name(layer: str) -> str | None:
    """A file's layer name -> the namespaced name ``lora_keys.layer_names`` knows; None for a
    second text encoder (SDXL), which SD1/SD2 models do not have."""
    for prefix, space in (("lora_unet_", "unet:"), ("lora_te1_", "te:"), ("lora_te_", "te:")):
        if layer.startswith(prefix):
            return space + layer[len(prefix):]
    if layer.startswith(("lora_te2_", "text_encoder_2.")):
        return None
    layer = layer.removeprefix("base_model.model.")
    if layer.startswith("text_encoder."):
        return "te:" + layer.removeprefix("text_encoder.")
    return "unet:" + layer.removeprefix("unet.")


def read_lora(path: Path, names: dict[str, LayerRef]) -> list[tuple[LayerRef, LowRankUpdate]]:
    """Every layer update of a LoRA file, matched to our layers. Keys that are not LoRA weights,
    or name no layer of this model, are an error that names them: a LoRA must never silently do less."""
    groups, unknown = group_lora_keys(load_state_dict(path))
    updates, unmatched, incomplete = [], [], []
    for layer, parts in groups.items():
        if "up" not in parts or "down" not in parts:
            incomplete.append(layer)
            continue
        lookup = layer_lookup_name(layer)
        ref = names.get(lookup) if lookup else None
        if ref is None:
            unmatched.append(layer)
            continue
        alpha = float(parts["alpha"]) if "alpha" in parts else None
        updates.append((ref, LowRankUpdate(layer, parts["up"], parts["down"], parts.get("mid"), alpha)))
    problems = []
    if unknown:
        problems.append(f"keys of an unsupported network type {_listed(unknown)}")
    if incomplete:
        problems.append(f"layers without both up and down weights {_listed(incomplete)}")
    if unmatched:
        problems.append(f"layers this model does not have (a LoRA for another model family?) {_listed(unmatched)}")
    if not problems and not updates:
        problems.append("it holds no LoRA weights")
    if problems:
        raise LoraError(f"LoRA {path.name}: " + "; ".join(problems))
    return updates


def _listed(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(sorted(keys)[:limit])
    return f"({len(keys)}): {shown}{', ...' if len(keys) > limit else ''}"


# ----- applying -----
def net_of(model, net: str) -> nn.Module:
    return model.unet if net == UNET else model.text_encoder


def _weight(model, ref: LayerRef) -> nn.Parameter:
    return net_of(model, ref.net).get_submodule(ref.path).weight


def plan_updates(model, requests: Sequence[LoraRequest]) -> dict[LayerRef, list[tuple[float, LowRankUpdate]]]:
    """(multiplier, update) per affected layer, every file read and every shape checked before any
    weight is touched, so a bad file leaves the model as it was."""
    names = layer_names(model.unet, model.text_encoder)
    plan: dict[LayerRef, list[tuple[float, LowRankUpdate]]] = {}
    for request in requests:
        for ref, update in read_lora(request.file.path, names):
            _check_shape(request.file, update, _weight(model, ref))
            multiplier = request.te_multiplier if ref.net == TEXT_ENCODER else request.unet_multiplier
            if multiplier != 0:
                plan.setdefault(ref, []).append((multiplier, update))
    return plan


def _check_shape(file: LoraFile, update: LowRankUpdate, weight: Tensor) -> None:
    kernel = (update.mid if update.mid is not None else update.down).shape[2:]
    out_features, in_features = update.up.shape[0], update.down.shape[1]
    count = out_features * in_features * (kernel.numel() if len(kernel) else 1)
    if out_features != weight.shape[0] or count != weight.numel():
        raise LoraError(f"LoRA {file.path.name}: layer {update.key} makes a [{out_features}, {in_features}"
                        f"{', ' + ', '.join(map(str, kernel)) if len(kernel) else ''}] update for a weight of "
                        f"shape {list(weight.shape)} (a LoRA for another model family?)")


def updated_weight(weight: Tensor, parts: Sequence[tuple[float, LowRankUpdate]]) -> Tensor:
    """``W + sum(m * scale * up @ down)``, accumulated in fp32, returned in the weight's dtype.
    A Linear update applied to a 1x1 convolution (or back) is reshaped: same numbers, other layout.
    Linear updates go through one fused ``addmm`` (no [out, in] temporary per LoRA)."""
    result = weight.to(torch.float32, copy=True)
    for multiplier, update in parts:
        factor = multiplier * update.scale
        up, down = update.up.to(weight.device, torch.float32), update.down.to(weight.device, torch.float32)
        if update.mid is None and up.dim() == down.dim() == result.dim() == 2:
            result.addmm_(up, down, alpha=factor)
            continue
        mid = None if update.mid is None else update.mid.to(weight.device, torch.float32)
        delta = LowRankUpdate(update.key, up, down, mid, update.alpha).delta()
        result.add_(delta.reshape(weight.shape), alpha=factor)
    return result.to(weight.dtype)


@contextmanager
def loras_applied(model, requests: Sequence[LoraRequest]) -> Iterator[dict[str, str]]:
    """Add the requested LoRAs into the model's weights for the duration of the block; yields the
    infotext fields (``Lora hashes``). The original tensors of the changed layers are put back
    afterwards (even on error or interrupt), so the model is then bitwise the base model again.

    Not reentrant and not for concurrent use of one model: callers run one job at a time per model.
    """
    if not requests:
        yield {}
        return
    plan = plan_updates(model, requests)
    originals: dict[LayerRef, Tensor] = {}
    try:
        with torch.no_grad():
            for ref, parts in plan.items():
                weight = _weight(model, ref)
                originals[ref] = weight.data
                weight.data = updated_weight(weight.data, parts)
        yield lora_infotext(requests)
    finally:
        for ref, original in originals.items():
            weight = _weight(model, ref)
            # An offload mode may have moved the layer meanwhile: the original follows it.
            weight.data = original.to(weight.device)


def lora_infotext(requests: Sequence[LoraRequest]) -> dict[str, str]:
    """A1111's ``Lora hashes: "alias: hash12, ..."`` (each LoRA once; ``:`` and ``,`` dropped from aliases)."""
    entries = {}
    for request in requests:
        alias = request.file.alias.replace(":", "").replace(",", "")
        entries.setdefault(alias, f"{alias}: {request.shorthash}")
    return {"Lora hashes": ", ".join(entries.values())}
