"""Reading checkpoint tensors without ever running code from the file.

``.safetensors`` files are a JSON header plus raw tensor bytes (the format has
no code path). ``.ckpt``/``.pt``/``.pth``/``.bin`` files are Python pickles,
and unpickling can call any function the file names; they are opened only
through ``torch.load(weights_only=True)``, whose unpickler accepts tensors and
plain containers and refuses every other global. Nothing here turns that off.

The one widening: CompVis's own release ``.ckpt`` files (sd-v1-*.ckpt, trained with
PyTorch Lightning) also pickle Lightning's ``ModelCheckpoint`` class (the key of the
saved callback state) and numpy scalars (``global_step``, ``epoch``). Those few names,
and no others, resolve to inert stand-ins defined here: nothing of Lightning or numpy
is imported or called, and the values they stand for are dropped with the other
non-tensor entries.
"""

from __future__ import annotations

import pickle
import re
import struct
import threading
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

# What torch.load raises on a damaged file, depending on where the damage is.
_DAMAGE_ERRORS = (
    RuntimeError, EOFError, KeyError, IndexError, ValueError, TypeError,
    AttributeError, OverflowError, struct.error, zipfile.BadZipFile,
)
_ZIP_MAGIC = b"PK\x03\x04"
# pickle opcode PROTO followed by a protocol number: how every binary pickle starts
# (torch.save's legacy format writes protocol 2, see the pickle module's PROTO opcode).
_PICKLE_PROTO = 0x80
_WEIGHTS_ONLY_REFUSAL = "Weights only load failed"
_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL ([\w.]+[\w])")
_REASON_IN_MESSAGE = re.compile(r"(Unsupported[^\n]*|Trying to load[^\n]*)")


class _ForeignGlobalStandIn:
    """What a stood-in global unpickles to: accepts any arguments and state, keeps nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


class LightningModelCheckpointStandIn(_ForeignGlobalStandIn):
    """Stands for ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``, which Lightning
    1.x checkpoints use as the key of the callback's saved state (a class, never called)."""


class NumpyDtypeStandIn(_ForeignGlobalStandIn):
    """Stands for ``numpy.dtype``, rebuilt as the first argument of a pickled numpy scalar."""


class NumpyScalarStandIn(_ForeignGlobalStandIn):
    """Stands for ``numpy.core.multiarray.scalar`` (a numpy int or float such as ``global_step``):
    the value is not decoded, since only tensors are kept from a checkpoint."""


# The exact global names (module + "." + qualified name, as the pickle's GLOBAL opcode spells
# them) of CompVis's release checkpoints. numpy 2 writes the scalar under numpy._core.
_STAND_INS = (
    (LightningModelCheckpointStandIn, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
    (NumpyDtypeStandIn, "numpy.dtype"),
    (NumpyScalarStandIn, "numpy.core.multiarray.scalar"),
    (NumpyScalarStandIn, "numpy._core.multiarray.scalar"),
)
# torch keeps weights-only allowances in one process-wide set; the lock keeps two loads from
# adding and removing the stand-ins under each other.
_STAND_IN_LOCK = threading.Lock()


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class UnsafeCheckpointError(CheckpointError):
    """A pickle that needs more than tensors and plain containers to unpickle."""

    def __init__(self, path: Path, reason: str, global_name: str | None = None):
        super().__init__(path, reason)
        self.global_name = global_name


class CorruptCheckpointError(CheckpointError):
    """A truncated, empty or garbage file, or one that is not the format its name says."""


def load_state_dict(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint file, by key, on ``device``.

    Pickles are unwrapped the way Stable Diffusion checkpoints are nested: a
    top-level ``state_dict`` entry (Lightning checkpoints, sometimes nested
    twice) holds the weights, and non-tensor entries (``global_step``,
    ``epoch``) are dropped.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _load_safetensors(path, device)
    if suffix in PICKLE_SUFFIXES:
        return _tensors_of(path, _load_pickle(path, device))
    raise CheckpointError(path, f"unsupported file type {path.suffix!r}; expected one of "
                          f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)}")


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (e.g. ModelSpec fields); {} for other files."""
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        return {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except SafetensorError as error:
        raise corrupt_safetensors_error(path, error) from error


def declared_resolution(path: Path) -> tuple[int, int] | None:
    """(width, height) from ModelSpec's ``modelspec.resolution`` ("WxH"), when the file declares one."""
    width, _, height = read_safetensors_metadata(path).get("modelspec.resolution", "").partition("x")
    return (int(width), int(height)) if width.strip().isdigit() and height.strip().isdigit() else None


def _load_safetensors(path: Path, device: str | torch.device) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=str(device))
    except SafetensorError as error:
        raise corrupt_safetensors_error(path, error) from error


def corrupt_safetensors_error(path: Path, error: Exception) -> CorruptCheckpointError:
    """The error for a safetensors file whose header or size is wrong."""
    return CorruptCheckpointError(
        path, f"not a valid safetensors file ({error}); it may be truncated (an interrupted "
        "download) or not a safetensors file at all")


def _load_pickle(path: Path, device: str | torch.device) -> object:
    is_zip = _check_pickle_container(path)
    try:
        # mmap needs torch.save's zip format; the legacy raw-pickle format is read whole.
        with _STAND_IN_LOCK, torch.serialization.safe_globals(list(_STAND_INS)):
            return torch.load(path, map_location=device, weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as error:
        if _WEIGHTS_ONLY_REFUSAL in str(error):
            raise _unsafe(path, str(error)) from error
        raise _corrupt_pickle(path, error) from error
    except _DAMAGE_ERRORS as error:
        raise _corrupt_pickle(path, error) from error


def _check_pickle_container(path: Path) -> bool:
    """True for torch's zip format, False for a raw binary pickle; anything else is refused unread."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(_ZIP_MAGIC):
        return True
    if len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5:
        return False
    what = "is empty" if not head else "starts like neither a zip archive nor a binary pickle (protocol 2+)"
    raise CorruptCheckpointError(
        path, f"not a PyTorch checkpoint: the file {what} (truncated download, or another "
        "kind of file renamed)")


def _corrupt_pickle(path: Path, error: BaseException) -> CorruptCheckpointError:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CorruptCheckpointError(
        path, f"damaged or truncated PyTorch checkpoint ({type(error).__name__}: {detail})")


def _unsafe(path: Path, torch_message: str) -> UnsafeCheckpointError:
    global_match = _GLOBAL_IN_MESSAGE.search(torch_message)
    global_name = global_match.group(1) if global_match else None
    reason_match = _REASON_IN_MESSAGE.search(torch_message)
    if global_name:
        what = f"it needs the Python global {global_name!r}, which is neither a tensor nor a plain container"
    else:
        detail = f" ({reason_match.group(1).strip()})" if reason_match else ""
        what = f"the weights-only unpickler refused it{detail}: it needs more than tensors and plain containers"
    return UnsafeCheckpointError(path, (
        f"refused to open this pickle checkpoint: {what}. "
        "Opening such a file can run arbitrary code, and this file may run code when "
        "opened by other tools that unpickle it without restriction. If you trust its source, "
        "convert it to .safetensors in an isolated, trusted environment (a throw-away container "
        "or VM without your data), for example: python -c \"import torch, safetensors.torch as s; "
        "d = torch.load('IN.ckpt', weights_only=False); d = d.get('state_dict', d); "
        "s.save_file({k: v.contiguous() for k, v in d.items() if isinstance(v, torch.Tensor)}, "
        "'OUT.safetensors')\"; or download a .safetensors release of the model."), global_name)


def _tensors_of(path: Path, loaded: object) -> dict[str, torch.Tensor]:
    while isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise CheckpointError(path, f"the pickle holds a {type(loaded).__name__}, not a dict of tensors")
    tensors = {key: value for key, value in loaded.items()
               if isinstance(key, str) and isinstance(value, torch.Tensor)}
    if not tensors:
        raise CheckpointError(path, "the pickle holds no tensors (top-level keys: "
                              f"{', '.join(map(str, list(loaded)[:10])) or 'none'})")
    return tensors


def load_pickle_object(path: Path, device: str | torch.device = "cpu") -> object:
    """The unpickled object of a ``.pt``/``.bin`` file as it is (nested dicts, numbers and strings
    kept), through the same weights-only loader and error messages as ``load_state_dict``."""
    return _load_pickle(Path(path), device)
