"""The upscalers a user can pick: the built-in resamplers and the model files on disk.

Model files live in ``models/ESRGAN``, ``models/RealESRGAN``, ``models/SwinIR``, ``models/DAT``
(plus the folders given by ``--esrgan-models-path`` and its siblings), searched recursively like
checkpoints. Each file is listed under its file stem, as A1111 names ESRGAN models; when a stem
exists as both ``.safetensors`` and a pickle, the safetensors file is the one used.

Loading reads the weights with ``modules.models.safe_load`` (pickles only through
``torch.load(weights_only=True)``), tells the architecture from the key layout, and builds
ESRGAN (RRDBNet, old and new keys) and Real-ESRGAN compact nets itself; SwinIR, DAT and
anything else go to ``spandrel`` when it can be imported, else the load is refused with
the reason.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from PIL import Image
from torch import nn

from modules.models.safe_load import SAFETENSORS_SUFFIXES, CheckpointError, load_pickle_object, load_state_dict
from modules.upscalers.detect import Architecture, UnknownArchitectureError, detect_architecture
from modules.upscalers.nets import build_native
from modules.upscalers.tiling import upscale_with_net

# A1111's folder names under models/, and the settings that give each family's tiling.
MODEL_FOLDERS = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT")
MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
UPSCALER_NONE = "None"
RESAMPLERS: Mapping[str, Image.Resampling] = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}
MAX_PASSES = 3  # A1111's Upscaler.upscale applies the model at most three times
_SCALE_IN_NAME = re.compile(r"(\d)[xX]|[xX](\d)")  # "4x-UltraSharp", "RealESRGAN_x2plus"


class UpscalerError(ValueError):
    """An upscaler that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class TileSettings:
    """A1111's ``ESRGAN_tile``/``ESRGAN_tile_overlap`` (and SWIN_, DAT_): input pixels; 0 = no tiling."""

    tile: int = 192
    overlap: int = 8


@dataclass(frozen=True)
class UpscalerModelFile:
    name: str  # the file stem, unique in the list
    path: Path
    folder: str  # one of MODEL_FOLDERS

    @property
    def nominal_scale(self) -> int:
        """The scale the name states ("4x-...", "..._x2"), else 4 (A1111's UpscalerData default)."""
        match = _SCALE_IN_NAME.search(self.name)
        return int(match.group(1) or match.group(2)) if match else 4


@dataclass(frozen=True)
class LoadedUpscaler:
    net: nn.Module
    architecture: Architecture
    device: torch.device
    dtype: torch.dtype


def scan_upscaler_models(folders: Sequence[tuple[str, Sequence[Path]]]) -> list[UpscalerModelFile]:
    """Model files per (folder kind, directories), in a stable order; one entry per name."""
    found: dict[str, UpscalerModelFile] = {}
    for kind, directories in folders:
        for directory in directories:
            if not directory.is_dir():
                continue
            paths = sorted(p for p in directory.rglob("*") if p.suffix.lower() in MODEL_SUFFIXES and p.is_file())
            # safetensors first, so a pickle of the same stem never shadows it
            for path in sorted(paths, key=lambda p: (p.suffix.lower() != ".safetensors", str(p))):
                found.setdefault(path.stem, UpscalerModelFile(path.stem, path, kind))
    return sorted(found.values(), key=lambda f: (MODEL_FOLDERS.index(f.folder), f.name.lower()))


def read_upscaler_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an upscaler file. BasicSR/Real-ESRGAN pickles nest them under ``params_ema``
    (the EMA weights, preferred as Real-ESRGAN's own inference does) or ``params``."""
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return load_state_dict(path)
    loaded = load_pickle_object(path)
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict):
        raise CheckpointError(path, f"the pickle holds a {type(loaded).__name__}, not a dict of tensors")
    tensors = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(path, "the pickle holds no tensors")
    return tensors


def load_upscaler_model(path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedUpscaler:
    """Read ``path`` safely, tell its architecture, build the net in eval mode on ``device``."""
    state = read_upscaler_weights(path)
    shapes = {key: tuple(tensor.shape) for key, tensor in state.items()}
    try:
        architecture = detect_architecture(shapes)
        net = build_native(architecture, state)
    except UnknownArchitectureError:
        architecture, net = None, None
    if net is None:
        net, architecture = _load_with_spandrel(path, state, architecture)
    net = net.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return LoadedUpscaler(net, architecture, torch.device(device), dtype)


def _load_with_spandrel(path: Path, state: dict, detected: Architecture | None) -> tuple[nn.Module, Architecture]:
    what = detected.name if detected else "this architecture"
    try:
        import spandrel  # imported here: optional, and heavy (it imports every architecture it knows)
    except Exception as error:  # an ImportError, or a torchvision built for another torch failing inside it
        raise UpscalerError(f"{path.name}: {what} models are loaded through the spandrel package, which "
                            f"cannot be imported here ({type(error).__name__}: {error}); install "
                            f"spandrel with a torchvision built for this torch") from error
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as error:  # spandrel raises its own types for unsupported layouts
        raise UpscalerError(f"{path.name}: not an upscaler model spandrel knows ({error})") from error
    architecture = detected or Architecture(descriptor.architecture.name, descriptor.scale, "spandrel", "spandrel")
    return descriptor.model, architecture


class UpscalerLibrary:
    """The model files found and a small cache of loaded nets (the runtime owns one)."""

    def __init__(self, folders: Sequence[tuple[str, Sequence[Path]]], capacity: int = 1):
        self._folders = tuple((kind, tuple(dirs)) for kind, dirs in folders)
        self._files: list[UpscalerModelFile] | None = None
        self._loaded: OrderedDict[Path, LoadedUpscaler] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def files(self, refresh: bool = False) -> list[UpscalerModelFile]:
        with self._lock:
            if refresh or self._files is None:
                self._files = scan_upscaler_models(self._folders)
            return list(self._files)

    def names(self) -> tuple[str, ...]:
        """Every name a request may use, in A1111's order: None, the resamplers, then the models."""
        return (UPSCALER_NONE, *RESAMPLERS, *(f.name for f in self.files()))

    def model_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files())

    def find(self, name: str) -> UpscalerModelFile:
        for file in self.files():
            if file.name == name:
                return file
        raise UpscalerError(f"unknown upscaler {name!r}; valid: {', '.join(self.names())}")

    def loaded(self, file: UpscalerModelFile, device: torch.device | str, dtype: torch.dtype) -> LoadedUpscaler:
        with self._lock:
            if file.path in self._loaded:
                self._loaded.move_to_end(file.path)
                return self._loaded[file.path]
        try:
            model = load_upscaler_model(file.path, device, dtype)
        except CheckpointError as error:
            raise UpscalerError(f"{file.name}: {error.reason}") from error
        with self._lock:
            self._loaded[file.path] = model
            while len(self._loaded) > self._capacity:
                self._loaded.popitem(last=False)
        return model


def target_size(image: Image.Image, scale: float) -> tuple[int, int]:
    """A1111's ``Upscaler.upscale`` destination: the scaled size rounded down to a multiple of 8."""
    return max(8, int(image.width * scale // 8 * 8)), max(8, int(image.height * scale // 8 * 8))


def upscale_to(image: Image.Image, size: tuple[int, int], one_pass: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Apply ``one_pass`` (a model) until the image covers ``size`` (at most MAX_PASSES times, stopping
    when a pass changes nothing), then Lanczos to exactly ``size``."""
    width, height = size
    for _ in range(MAX_PASSES):
        if image.width >= width and image.height >= height:
            break
        before = image.size
        image = one_pass(image)
        if image.size == before:
            break
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class Upscaling:
    """How one named upscaler runs: settings and device, fixed for a request."""

    library: UpscalerLibrary
    tiles: Mapping[str, TileSettings]  # by folder kind
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32
    should_stop: Callable[[], bool] = lambda: False

    def resize(self, image: Image.Image, size: tuple[int, int], name: str) -> Image.Image:
        """``image`` (RGB) to ``size`` with the named upscaler ("None" returns it unchanged)."""
        if name == UPSCALER_NONE:
            return image
        if name in RESAMPLERS:
            return image.resize(size, RESAMPLERS[name])
        file = self.library.find(name)
        model = self.library.loaded(file, self.device, self.dtype)
        tiles = self.tiles.get(file.folder, TileSettings())

        def one_pass(current: Image.Image) -> Image.Image:
            return upscale_with_net(model.net, current, model.architecture.scale, tiles.tile, tiles.overlap,
                                    model.device, model.dtype, self.should_stop)

        return upscale_to(image.convert("RGB"), size, one_pass)


def tile_settings(options) -> dict[str, TileSettings]:
    """Per folder kind, from the settings (A1111 runs Real-ESRGAN with the ESRGAN tile settings)."""
    esrgan = TileSettings(options.ESRGAN_tile, options.ESRGAN_tile_overlap)
    return {"ESRGAN": esrgan, "RealESRGAN": esrgan, "SwinIR": TileSettings(options.SWIN_tile, options.SWIN_tile_overlap),
            "DAT": TileSettings(options.DAT_tile, options.DAT_tile_overlap)}
