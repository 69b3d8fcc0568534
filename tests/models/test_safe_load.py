"""Loading checkpoints never runs code from the file, and bad files get errors that name them."""

from __future__ import annotations

import os
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.models.safe_load import (
    CheckpointError, CorruptCheckpointError, UnsafeCheckpointError, load_state_dict, read_safetensors_metadata,
)


class _RunsShellCommand:
    """Unpickling this calls os.system: the classic malicious-checkpoint payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _OpensFileForWriting:
    """Unpickling this calls open(marker, "w"), which creates the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _weights() -> dict[str, torch.Tensor]:
    return {"model.diffusion_model.out.2.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
            "first_stage_model.quant_conv.bias": torch.ones(8)}


def _assert_same(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(loaded) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value)


# ----- good files -----

def test_safetensors(tmp_path):
    save_file(_weights(), str(tmp_path / "m.safetensors"))
    _assert_same(load_state_dict(tmp_path / "m.safetensors"), _weights())


def test_suffix_is_case_insensitive(tmp_path):
    save_file(_weights(), str(tmp_path / "m.SafeTensors"))
    _assert_same(load_state_dict(tmp_path / "m.SafeTensors", device=torch.device("cpu")), _weights())


def test_lightning_pickle_is_unwrapped_and_non_tensors_dropped(tmp_path):
    torch.save({"state_dict": _weights(), "global_step": 840000, "epoch": 3}, tmp_path / "m.ckpt")
    _assert_same(load_state_dict(tmp_path / "m.ckpt"), _weights())


def test_doubly_nested_state_dict(tmp_path):
    torch.save({"state_dict": {"state_dict": {**_weights(), "step": 5}}}, tmp_path / "m.pt")
    _assert_same(load_state_dict(tmp_path / "m.pt"), _weights())


def test_bare_dict_of_tensors_in_every_pickle_suffix(tmp_path):
    for suffix in (".ckpt", ".pt", ".pth", ".bin"):
        torch.save(_weights(), tmp_path / f"m{suffix}")
        _assert_same(load_state_dict(tmp_path / f"m{suffix}"), _weights())


def test_legacy_torch_format(tmp_path):
    torch.save({"state_dict": _weights()}, tmp_path / "old.ckpt", _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(tmp_path / "old.ckpt")
    _assert_same(load_state_dict(tmp_path / "old.ckpt"), _weights())


def test_safetensors_metadata(tmp_path):
    metadata = {"modelspec.prediction_type": "v", "modelspec.title": "tiny"}
    save_file(_weights(), str(tmp_path / "m.safetensors"), metadata=metadata)
    assert read_safetensors_metadata(tmp_path / "m.safetensors") == metadata
    save_file(_weights(), str(tmp_path / "plain.safetensors"))
    assert read_safetensors_metadata(tmp_path / "plain.safetensors") == {}
    torch.save(_weights(), tmp_path / "m.ckpt")
    assert read_safetensors_metadata(tmp_path / "m.ckpt") == {}


# ----- malicious pickles -----

def _write_zip_pickle(path: Path, payload: object) -> None:
    torch.save({"state_dict": {**_weights(), "trap": payload}}, path)


def _write_raw_pickle(path: Path, payload: object) -> None:
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": {"trap": payload}}, handle, protocol=2)


def _write_legacy_torch(path: Path, payload: object) -> None:
    torch.save({"state_dict": {**_weights(), "trap": payload}}, path, _use_new_zipfile_serialization=False)


@pytest.mark.parametrize("write", [_write_zip_pickle, _write_raw_pickle, _write_legacy_torch],
                         ids=["torch-zip", "raw-pickle", "torch-legacy"])
@pytest.mark.parametrize("payload, global_name", [(_RunsShellCommand, "system"), (_OpensFileForWriting, "open")],
                         ids=["os.system", "open"])
def test_malicious_pickle_is_refused_without_running(tmp_path, write, payload, global_name):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    write(path, payload(marker))
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_state_dict(path)
    assert not marker.exists(), "unpickling ran the payload"
    message = str(caught.value)
    assert "evil.ckpt" in message
    assert caught.value.global_name is not None and caught.value.global_name.endswith(global_name)
    assert caught.value.global_name in message
    assert "may run code when opened by other tools" in message
    assert ".safetensors" in message and "trusted" in message
    assert isinstance(caught.value, CheckpointError) and isinstance(caught.value, ValueError)


# ----- damaged files -----

def test_truncated_safetensors(tmp_path):
    save_file(_weights(), str(tmp_path / "full.safetensors"))
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 16])
    with pytest.raises(CorruptCheckpointError, match=r"cut\.safetensors.*truncated"):
        load_state_dict(tmp_path / "cut.safetensors")
    with pytest.raises(CorruptCheckpointError, match=r"cut\.safetensors"):
        read_safetensors_metadata(tmp_path / "cut.safetensors")


@pytest.mark.parametrize("name", ["empty.safetensors", "empty.ckpt", "empty.pt"])
def test_zero_byte_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match=name.replace(".", r"\.")):
        load_state_dict(tmp_path / name)


@pytest.mark.parametrize("text", ["hello, this is a README\n", "(dp0\nS'a'\np1\nI1\ns.", "{\"a\": 1}"])
def test_text_file_renamed_ckpt(tmp_path, text):
    (tmp_path / "notes.ckpt").write_text(text, encoding="utf-8")
    with pytest.raises(CorruptCheckpointError, match=r"notes\.ckpt: not a PyTorch checkpoint"):
        load_state_dict(tmp_path / "notes.ckpt")


def test_text_file_renamed_safetensors(tmp_path):
    (tmp_path / "notes.safetensors").write_text("just some text that is not a header", encoding="utf-8")
    with pytest.raises(CorruptCheckpointError, match=r"notes\.safetensors"):
        load_state_dict(tmp_path / "notes.safetensors")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_pickle(tmp_path, legacy):
    torch.save({"state_dict": _weights()}, tmp_path / "full.ckpt", _use_new_zipfile_serialization=not legacy)
    data = (tmp_path / "full.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=r"cut\.ckpt: damaged or truncated"):
        load_state_dict(tmp_path / "cut.ckpt")


def test_pickle_without_tensors(tmp_path):
    torch.save({"global_step": 3}, tmp_path / "empty.ckpt")
    with pytest.raises(CheckpointError, match=r"empty\.ckpt: the pickle holds no tensors.*global_step"):
        load_state_dict(tmp_path / "empty.ckpt")


def test_pickle_of_a_single_tensor(tmp_path):
    torch.save(torch.ones(3), tmp_path / "one.pt")
    with pytest.raises(CheckpointError, match=r"one\.pt: the pickle holds a Tensor, not a dict"):
        load_state_dict(tmp_path / "one.pt")


def test_unsupported_suffix(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x01")
    with pytest.raises(CheckpointError, match=r"model\.onnx: unsupported file type '\.onnx'"):
        load_state_dict(tmp_path / "model.onnx")


# ----- CompVis's Lightning release checkpoints -----

def _lightning_imported() -> bool:
    return any(name.split(".")[0] == "pytorch_lightning" for name in sys.modules)


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "torch-legacy"])
@pytest.mark.parametrize("scalar_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_compvis_release_checkpoint_loads_with_inert_stand_ins(tmp_path, zip_format, scalar_module):
    from tests.models import pickle_forge
    payload = pickle_forge.compvis_release_payload(_weights())
    payload["global_step"] = pickle_forge.numpy_scalar(470000, scalar_module)
    path = tmp_path / "sd-v1-4.ckpt"
    pickle_forge.forge(path, payload, zip_format=zip_format)
    # the file really names the globals the weights-only unpickler refuses by default
    with pytest.raises(pickle.UnpicklingError, match="pytorch_lightning|numpy"):
        torch.load(path, weights_only=True)
    allowances_before = set(torch.serialization.get_safe_globals())

    _assert_same(load_state_dict(path), _weights())

    assert not _lightning_imported()
    assert set(torch.serialization.get_safe_globals()) == allowances_before, "stand-ins leaked past the load"
    with pytest.raises(pickle.UnpicklingError):  # and torch.load alone still refuses the file
        torch.load(path, weights_only=True)


def test_stood_in_globals_run_nothing_when_called(tmp_path):
    from tests.models.pickle_forge import MODEL_CHECKPOINT, Call, GlobalRef, forge
    marker = tmp_path / "pwned"
    payload = {"state_dict": _weights(),
               "callback": Call(MODEL_CHECKPOINT, (f"touch {marker}",), {"__class__": "os.system"}),
               "dtype": Call(GlobalRef("numpy", "dtype"), (f"touch {marker}",), ("anything",))}
    forge(tmp_path / "m.ckpt", payload)
    _assert_same(load_state_dict(tmp_path / "m.ckpt"), _weights())
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("pytorch_lightning.callbacks.model_checkpoint", "EarlyStopping"),
    ("pytorch_lightning.callbacks", "model_checkpoint"),
    ("pytorch_lightning", "Trainer"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "load"),
    ("numpy.core.multiarray.scalar", "__globals__"),
    ("os", "system"),
])
def test_any_other_global_beside_the_stand_ins_is_still_refused(tmp_path, module, name):
    from tests.models.pickle_forge import Call, GlobalRef, compvis_release_payload, forge
    marker = tmp_path / "pwned"
    payload = compvis_release_payload(_weights())
    payload["trap"] = Call(GlobalRef(module, name), (f"touch {marker}",))
    forge(tmp_path / "crafted.ckpt", payload)
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_state_dict(tmp_path / "crafted.ckpt")
    assert caught.value.global_name == f"{module}.{name}"
    assert "crafted.ckpt" in str(caught.value)
    assert not marker.exists()
