"""Pickles that name arbitrary globals, written without importing or defining what they name.

``torch.save`` is given a pickle module whose Pickler writes a ``GlobalRef`` as a bare
GLOBAL opcode (module and name as text, pickle protocol 2), so a test can build a file
that looks like CompVis's Lightning release checkpoints (or a crafted one) on a machine
without pytorch_lightning, and with whatever numpy module path it wants.
"""

from __future__ import annotations

import pickle
import types
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class GlobalRef:
    """A global by module and name; pickles as that GLOBAL and nothing else."""

    module: str
    name: str

    @property
    def __name__(self) -> str:  # save_reduce reads the callable's name
        return self.name

    def __call__(self, *args: object) -> None:  # save_reduce requires a callable
        raise AssertionError("a GlobalRef is only written, never called")


@dataclass(frozen=True)
class Call:
    """Pickles as ``function(*args)``, then BUILD with ``state`` when given."""

    function: GlobalRef
    args: tuple
    state: object = None

    def __reduce__(self):
        return (self.function, self.args) if self.state is None else (self.function, self.args, self.state)


class _ForgingPickler(pickle._Pickler):  # the pure-Python pickler lets save() be extended
    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, GlobalRef):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
            return
        super().save(obj, save_persistent_id)


FORGING_PICKLE = types.SimpleNamespace(Pickler=_ForgingPickler, dump=pickle.dump, __name__="forging_pickle")


def numpy_scalar(value: int, scalar_module: str = "numpy.core.multiarray") -> Call:
    """A numpy int64 as numpy 1.x pickles it: scalar(dtype('i8', False, True) + state, raw bytes)."""
    dtype = Call(GlobalRef("numpy", "dtype"), ("i8", False, True), (3, "<", None, None, None, -1, -1, 0))
    return Call(GlobalRef(scalar_module, "scalar"), (dtype, value.to_bytes(8, "little", signed=True)))


MODEL_CHECKPOINT = GlobalRef("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")


def compvis_release_payload(state_dict: dict[str, torch.Tensor]) -> dict:
    """The top level of CompVis's sd-v1-*.ckpt: weights plus Lightning's bookkeeping."""
    return {
        "epoch": numpy_scalar(6),
        "global_step": numpy_scalar(470000),
        "pytorch-lightning_version": "1.4.2",
        "callbacks": {MODEL_CHECKPOINT: {"monitor": None, "best_model_score": None,
                                         "best_model_path": "", "current_score": None, "dirpath": "logs"}},
        "state_dict": state_dict,
    }


def forge(path: Path, payload: object, zip_format: bool = True) -> None:
    torch.save(payload, path, pickle_module=FORGING_PICKLE, _use_new_zipfile_serialization=zip_format)
