"""The checkpoint merger (A1111's "Checkpoint Merger" tab): combine two or three checkpoints of one
family key by key and write the result as a safetensors file beside the other checkpoints.

- Weighted sum: ``A * (1 - M) + B * M`` (so M = 0 gives A and M = 1 gives B exactly).
- Add difference: ``A + (B - C) * M`` (graft what B learned over its base C onto A).
- No interpolation: A alone (to convert to fp16, bake in a VAE or drop weights).

Inputs are read one tensor at a time (safetensors ``safe_open``; pickles, which cannot be read
partially, are loaded whole through the safe loader) and the output is written one tensor at a
time, so memory holds a few tensors rather than three models. The file carries A1111's merge
metadata (``sd_merge_recipe``, ``sd_merge_models``) and A's ``modelspec.*`` fields.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Callable, Iterable

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from modules.fileio import write_atomically
from modules.models.detect import VAE_PREFIX, current_key, detect_checkpoint
from modules.models.files import CheckpointFile
from modules.models.load import NON_WEIGHT_KEYS
from modules.models.safe_load import SAFETENSORS_SUFFIXES, corrupt_safetensors_error, load_state_dict

# safetensors' dtype names (the format's header "dtype" field).
SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
_DTYPES_BY_NAME = {name: dtype for dtype, name in SAFETENSORS_DTYPES.items()}
_SHOWN_KEYS = 6


class MergeMethod(str, Enum):
    NO_INTERPOLATION = "No interpolation"
    WEIGHTED_SUM = "Weighted sum"
    ADD_DIFFERENCE = "Add difference"

    @property
    def inputs(self) -> int:
        """How many models the method combines."""
        return {MergeMethod.NO_INTERPOLATION: 1, MergeMethod.WEIGHTED_SUM: 2, MergeMethod.ADD_DIFFERENCE: 3}[self]


class MergeError(ValueError):
    """A merge that cannot be done; ``field`` names the input to fix (primary, secondary, custom_name, ...)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class MergeRequest:
    primary: CheckpointFile
    secondary: CheckpointFile | None = None
    tertiary: CheckpointFile | None = None
    method: MergeMethod = MergeMethod.WEIGHTED_SUM
    multiplier: float = 0.3  # A1111's default
    custom_name: str = ""
    save_as_half: bool = False
    bake_vae: CheckpointFile | None = None
    discard_weights: str = ""  # a regular expression; matching keys are left out
    overwrite: bool = False

    def models(self) -> list[CheckpointFile]:
        """The input checkpoints the method uses, A first."""
        return [m for m in (self.primary, self.secondary, self.tertiary)[: self.method.inputs] if m is not None]


class TensorSource:
    """Tensors of one checkpoint by key, read on demand (safetensors) or loaded once (pickles).

    Keys are in today's layout (an early SD1 file's CLIP keys gain their ``text_model.`` level, as
    the loader renames them), so an old-layout file merges with a current one and the output is
    written in the current layout.
    """

    def __init__(self, path: Path, stack: ExitStack):
        self.path = path
        self._handle = None
        self._tensors: dict[str, Tensor] | None = None
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            try:
                self._handle = stack.enter_context(safe_open(str(path), framework="pt"))
            except SafetensorError as error:
                raise corrupt_safetensors_error(path, error) from error
            self.metadata = dict(self._handle.metadata() or {})
        else:
            self._tensors = load_state_dict(path)
            self.metadata = {}
        stored = list(self._handle.keys()) if self._handle is not None else list(self._tensors)
        # today's key -> the key in the file; a key already in today's layout wins over a renamed one
        current = {key for key in stored if current_key(key) == key}
        self._stored = {current_key(key): key for key in stored if key in current or current_key(key) not in current}

    def keys(self) -> list[str]:
        return list(self._stored)

    def shape(self, key: str) -> tuple[int, ...]:
        if self._handle is not None:
            return tuple(self._handle.get_slice(self._stored[key]).get_shape())
        return tuple(self._tensors[self._stored[key]].shape)

    def dtype(self, key: str) -> torch.dtype:
        if self._handle is not None:
            return _DTYPES_BY_NAME[self._handle.get_slice(self._stored[key]).get_dtype()]
        return self._tensors[self._stored[key]].dtype

    def get(self, key: str) -> Tensor:
        stored = self._stored[key]
        return self._handle.get_tensor(stored) if self._handle is not None else self._tensors[stored]


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of the output: its key, shape and dtype, and whether it is combined from the inputs."""

    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    merged: bool


# ----- checks -----
def check_request(request: MergeRequest) -> re.Pattern | None:
    """The compiled discard pattern; a MergeError for a missing input, bad multiplier or bad pattern."""
    method = request.method
    if method.inputs >= 2 and request.secondary is None:
        raise MergeError("secondary", f"{method.value} needs a secondary model (B)")
    if method.inputs >= 3 and request.tertiary is None:
        raise MergeError("tertiary", f"{method.value} needs a tertiary model (C)")
    if not math.isfinite(request.multiplier):
        raise MergeError("multiplier", f"must be a finite number, got {request.multiplier}")
    if not request.discard_weights.strip():
        return None
    try:
        return re.compile(request.discard_weights)
    except re.error as error:
        raise MergeError("discard_weights", f"not a valid regular expression: {error}") from error


def check_families(models: list[CheckpointFile]):
    """The primary model's detection; a MergeError when an input is of another family than A."""
    detected = []
    for role, model in zip(("primary", "secondary", "tertiary"), models):
        try:
            detected.append(detect_checkpoint(model.path))
        except ValueError as error:
            raise MergeError(role, f"cannot read {model.title}: {error}") from error
    for role, model, found in zip(("secondary", "tertiary"), models[1:], detected[1:]):
        if found.family is not detected[0].family:
            raise MergeError(role, f"{model.title} is an {found.family.value} model but the primary model "
                             f"{models[0].title} is {detected[0].family.value}: only models of one family can be merged")
    return detected[0]


def output_name(request: MergeRequest, inpainting: bool) -> str:
    """The custom name, else A1111's generated one ("0.7(a) + 0.3(b)", "a + 0.5(b - c)", "a")."""
    custom = request.custom_name.strip()
    for suffix in (".safetensors", ".ckpt"):
        custom = custom.removesuffix(suffix)
    if custom and (re.search(r'[\\/:*?"<>|\x00-\x1f]', custom) or custom.startswith(".")):
        raise MergeError("custom_name", f"{custom!r} is not a plain file name (no folders, no leading dot, "
                         "none of \\ / : * ? \" < > |)")
    return (custom or default_name(request)) + (".inpainting" if inpainting else "") + ".safetensors"


def default_name(request: MergeRequest) -> str:
    a = request.primary.model_name
    m = round(request.multiplier, 2)
    if request.method is MergeMethod.WEIGHTED_SUM:
        return f"{round(1 - request.multiplier, 2)}({a}) + {m}({request.secondary.model_name})"
    if request.method is MergeMethod.ADD_DIFFERENCE:
        return f"{a} + {m}({request.secondary.model_name} - {request.tertiary.model_name})"
    return a


def check_output_path(path: Path, request: MergeRequest) -> None:
    inputs = {m.path.resolve() for m in request.models()} | ({request.bake_vae.path.resolve()} if request.bake_vae else set())
    if path.resolve() in inputs:
        raise MergeError("custom_name", f"{path.name} is one of the merged files; choose another name")
    if path.exists() and not request.overwrite:
        raise MergeError("custom_name", f"{path} already exists; choose another name or allow overwriting")


def _shown(items: list[str]) -> str:
    return f"({len(items)}): {', '.join(items[:_SHOWN_KEYS])}{', ...' if len(items) > _SHOWN_KEYS else ''}"


# ----- planning -----
def plan_tensors(sources: list[TensorSource], request: MergeRequest, discard: re.Pattern | None) -> list[PlannedTensor]:
    """Every tensor of A that is kept, with how it is made. B and C must hold each of A's weights
    with the same shape (keys named otherwise); entries that are not weights (EMA copies, the
    training schedule) and only A has are copied from A."""
    primary, others = sources[0], sources[1:]
    other_keys = [set(s.keys()) for s in others]
    planned, missing, mismatched = [], [], []
    for key in primary.keys():
        if discard is not None and discard.search(key):
            continue
        shape, dtype = primary.shape(key), primary.dtype(key)
        merged = bool(others) and dtype.is_floating_point
        if merged and not all(key in keys for keys in other_keys):
            if not NON_WEIGHT_KEYS.match(key):
                missing += [f"{key} (not in {s.path.name})" for s, keys in zip(others, other_keys) if key not in keys]
                continue
            merged = False
        if merged and any(s.shape(key) != shape for s in others):
            mismatched.append(f"{key} {list(shape)} vs " + " vs ".join(str(list(s.shape(key))) for s in others))
            continue
        if merged:
            dtype = _promoted([dtype, *(s.dtype(key) for s in others)])
        if request.save_as_half and dtype.is_floating_point:
            dtype = torch.float16
        planned.append(PlannedTensor(key, shape, dtype, merged))
    if missing or mismatched:
        problems = ([f"weights missing from another model {_shown(missing)}"] if missing else []) + \
                   ([f"weights of different shapes {_shown(mismatched)}"] if mismatched else [])
        raise MergeError("secondary", "the models do not have the same layout: " + "; ".join(problems))
    return planned


def _promoted(dtypes: Iterable[torch.dtype]) -> torch.dtype:
    result = None
    for dtype in dtypes:
        result = dtype if result is None else torch.promote_types(result, dtype)
    return result


def baked_vae(vae_file: CheckpointFile, planned: list[PlannedTensor], primary: TensorSource) -> dict[str, Tensor]:
    """The VAE file's weights under the checkpoint's ``first_stage_model.`` keys, shaped as the
    checkpoint's (old VAEs store attention as 1x1 convs, newer as linear layers: same numbers).
    It must fit A's VAE exactly; only the weights that are kept (not discarded) are returned."""
    wanted = {k: primary.shape(k) for k in primary.keys() if k.startswith(VAE_PREFIX) and not NON_WEIGHT_KEYS.match(k)}
    kept = {p.key for p in planned}
    state = {}
    for key, tensor in load_state_dict(vae_file.path).items():
        full = VAE_PREFIX + key.removeprefix(VAE_PREFIX)
        if not NON_WEIGHT_KEYS.match(key) and not NON_WEIGHT_KEYS.match(full):
            state[full] = tensor
    foreign = sorted(k for k in state if k not in wanted or state[k].numel() != math.prod(wanted[k]))
    lacking = sorted(k for k in wanted if k not in state)
    if foreign or lacking:
        problems = ([f"weights that do not fit the model's VAE {_shown(foreign)}"] if foreign else []) + \
                   ([f"none of the model's VAE weights {_shown(lacking)}"] if lacking else [])
        raise MergeError("bake_vae", f"{vae_file.title} does not fit this model: " + "; ".join(problems))
    return {key: tensor.reshape(wanted[key]) for key, tensor in state.items() if key in kept}


# ----- combining and writing -----
def combine(method: MergeMethod, multiplier: float, tensors: list[Tensor]) -> Tensor:
    """One merged tensor, computed in at least fp32. Written as ``A*(1-M) + B*M`` rather than a
    lerp so that M = 0 and M = 1 reproduce A and B bit for bit."""
    compute = _promoted([torch.float32, *(t.dtype for t in tensors)])
    a, *rest = (t.to(compute) for t in tensors)
    if method is MergeMethod.WEIGHTED_SUM:
        return a * (1 - multiplier) + rest[0] * multiplier
    if method is MergeMethod.ADD_DIFFERENCE:
        return a + (rest[0] - rest[1]) * multiplier
    return a


def write_safetensors(path: Path, planned: list[PlannedTensor], produce: Callable[[PlannedTensor], Tensor],
                      metadata: dict[str, str]) -> None:
    """Write a safetensors file tensor by tensor (the format: 8-byte little-endian header length,
    a JSON header of dtype/shape/byte offsets plus ``__metadata__``, then the raw little-endian
    tensor bytes in offset order), atomically: readers never see a partial file."""
    header: dict[str, object] = {}
    offset = 0
    for p in planned:
        size = math.prod(p.shape) * p.dtype.itemsize
        header[p.key] = {"dtype": SAFETENSORS_DTYPES[p.dtype], "shape": list(p.shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = metadata
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the tensor data starts 8-byte aligned

    def write(handle: IO[bytes]) -> None:
        handle.write(len(blob).to_bytes(8, "little"))
        handle.write(blob)
        for p in planned:
            tensor = produce(p).to(p.dtype).contiguous()
            if tuple(tensor.shape) != p.shape:
                raise MergeError("primary", f"{p.key}: produced shape {list(tensor.shape)}, expected {list(p.shape)}")
            handle.write(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())

    write_atomically(path, write)


def legacy_model_hash(path: Path) -> str:
    """A1111's pre-1.0 "model hash": sha256 of the 64 KiB at offset 1 MiB, first 8 hex digits."""
    with open(path, "rb") as handle:
        handle.seek(0x100000)
        return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]


def merge_metadata(request: MergeRequest, sources: list[TensorSource], inpainting: bool, path: Path) -> dict[str, str]:
    """A1111's merge metadata: ``sd_merge_recipe`` (how this file was made) and ``sd_merge_models``
    (every model that went into it, by sha256, including those of merged inputs), plus A's ModelSpec."""
    metadata = {k: v for k, v in sources[0].metadata.items() if k.startswith("modelspec.")}
    if "modelspec.title" in metadata:
        metadata["modelspec.title"] = path.name.removesuffix(".safetensors")
    models = request.models()
    recipe = {
        "type": "webui", "primary_model_hash": models[0].sha256,
        "secondary_model_hash": models[1].sha256 if len(models) > 1 else None,
        "tertiary_model_hash": models[2].sha256 if len(models) > 2 else None,
        "interp_method": request.method.value, "multiplier": request.multiplier,
        "save_as_half": request.save_as_half, "custom_name": request.custom_name,
        "bake_in_vae": request.bake_vae.title if request.bake_vae else "None",
        "discard_weights": request.discard_weights, "is_inpainting": inpainting, "is_instruct_pix2pix": False,
    }
    merged_models: dict[str, object] = {}
    for model, source in zip(models, sources):
        merged_models[model.sha256] = {"name": model.name, "legacy_hash": legacy_model_hash(model.path),
                                       "sd_merge_recipe": source.metadata.get("sd_merge_recipe")}
        try:
            merged_models.update(json.loads(source.metadata.get("sd_merge_models", "{}")))
        except ValueError:
            pass  # an input's own merge history is unreadable: record what is known
    return {**metadata, "sd_merge_recipe": json.dumps(recipe), "sd_merge_models": json.dumps(merged_models)}


def merge_checkpoints(request: MergeRequest, output_dir: Path) -> Path:
    """Merge as ``request`` says into ``output_dir``; returns the written file's path."""
    discard = check_request(request)
    models = request.models()
    inpainting = check_families(models).family.is_inpainting
    path = Path(output_dir) / output_name(request, inpainting)
    check_output_path(path, request)
    with ExitStack() as stack:
        sources = [TensorSource(m.path, stack) for m in models]
        planned = plan_tensors(sources, request, discard)
        vae = baked_vae(request.bake_vae, planned, sources[0]) if request.bake_vae else {}

        def produce(p: PlannedTensor) -> Tensor:
            if p.key in vae:
                return vae[p.key]
            if not p.merged:
                return sources[0].get(p.key)
            return combine(request.method, request.multiplier, [s.get(p.key) for s in sources])

        write_safetensors(path, planned, produce, merge_metadata(request, sources, inpainting, path))
    copy_config(models, path)
    return path


def copy_config(models: list[CheckpointFile], path: Path) -> None:
    """A1111's default "Copy config from: A, B or C": the first input's ``<stem>.yaml`` goes beside the
    result, so a v-prediction model described by its yaml is still read as one."""
    config = next((m.path.with_suffix(".yaml") for m in models if m.path.with_suffix(".yaml").is_file()), None)
    if config is not None:
        shutil.copyfile(config, path.with_suffix(".yaml"))
