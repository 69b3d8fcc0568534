"""User settings (``config.json`` in the data dir): typed, validated, persisted atomically.

Field names are the AUTOMATIC1111 option keys, so the API's ``/options`` and
existing ``config.json`` files map onto them directly. Unknown keys found in
a file are kept and written back (another tool's or a newer version's
settings are not ours to drop).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from modules.compat_options import OptionHTML, OptionInfo, options_section  # noqa: F401 - A1111's modules.options names
from modules.fileio import set_aside, write_bytes_atomically
from modules.numbers import number_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    sd_model_checkpoint: str | None = None  # title; None = the first one found
    sd_vae: str = "Automatic"  # "Automatic", "None", or a VAE file name
    # How many checkpoints stay loaded; None = automatic (1 on CUDA, 2 on CPU when RAM allows).
    sd_checkpoints_limit: int | None = None
    CLIP_stop_at_last_layers: int = 1
    # Saving images/grids
    samples_save: bool = True  # save every generated image (the API asks per request instead)
    samples_format: str = "png"
    jpeg_quality: int = 80  # also WebP quality
    samples_filename_pattern: str = ""  # "" = [seed]; tokens as in A1111 ([seed], [prompt_spaces], ...)
    grid_save: bool = True
    save_incomplete_images: bool = False
    # Paths for saving ("" = outputs/<kind> under the data dir)
    outdir_samples: str = ""
    outdir_txt2img_samples: str = ""
    outdir_img2img_samples: str = ""
    outdir_grids: str = ""
    outdir_txt2img_grids: str = ""
    outdir_img2img_grids: str = ""
    # Live previews
    live_previews_enable: bool = True
    show_progress_every_n_steps: int = 10
    show_progress_type: str = "Approx cheap"  # "Full" decodes with the VAE
    live_preview_refresh_period: int = 1000  # ms between progress polls in the browser
    show_progress_in_title: bool = True
    interrupt_after_current: bool = True
    # Sampler parameters
    eta_ancestral: float = 1.0
    eta_ddim: float = 0.0
    eta_noise_seed_delta: int = 0
    randn_source: str = "CPU"
    no_dpmpp_sde_batch_determinism: bool = False
    # UniPC (A1111's "Sampler parameters"): B(h) variant, spacing of its walk, order, lower-order last steps
    uni_pc_variant: str = "bh1"
    uni_pc_skip_type: str = "time_uniform"
    uni_pc_order: int = 3
    uni_pc_lower_order_final: bool = True
    # Prompts (Stable Diffusion section)
    comma_padding_backtrack: int = 20
    emphasis: str = "Original"
    enable_prompt_comments: bool = True
    extra_networks_default_multiplier: float = 1.0
    # User interface defaults
    txt2img_default_sampler: str = "DPM++ 2M"
    txt2img_default_steps: int = 20
    txt2img_default_cfg_scale: float = 7.0
    # Upscaling: tile size and overlap in input pixels per upscaler family (A1111's names; 0 = no tiling)
    ESRGAN_tile: int = 192
    ESRGAN_tile_overlap: int = 8
    SWIN_tile: int = 192
    SWIN_tile_overlap: int = 8
    DAT_tile: int = 192
    DAT_tile_overlap: int = 8
    # Server: how many jobs may wait behind the running one; more are refused (HTTP 503, Retry-After)
    queue_max_waiting: int = 100
    api_max_request_mb: int = 32  # a request body larger than this is refused (HTTP 413)
    # Performance: how the UNet, VAE and text encoder run ("auto" = OpenVINO on a CPU, eager PyTorch on CUDA;
    # the --backend flag wins), and when the VAE decodes/encodes in tiles (above this many pixels)
    inference_backend: str = "auto"
    vae_tiling: str = "Automatic"
    vae_tiling_min_pixels: int = 1024 * 1024
    # Extensions: folder names in extensions/ that are not loaded
    disabled_extensions: tuple[str, ...] = ()


class OptionsError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_NULLABLE = {"sd_model_checkpoint", "sd_checkpoints_limit"}
_RANGES: Mapping[str, tuple[float, float]] = {
    "sd_checkpoints_limit": (1, 16), "CLIP_stop_at_last_layers": (1, 12), "jpeg_quality": (1, 100),
    "show_progress_every_n_steps": (-1, 1000), "live_preview_refresh_period": (100, 60000),
    "eta_ancestral": (0, 1), "eta_ddim": (0, 1), "eta_noise_seed_delta": (0, 2**32 - 1),
    "comma_padding_backtrack": (0, 74), "extra_networks_default_multiplier": (-10, 10),
    "txt2img_default_steps": (1, 150), "txt2img_default_cfg_scale": (1, 30), "queue_max_waiting": (1, 100000),
    "api_max_request_mb": (1, 4096), "vae_tiling_min_pixels": (64 * 64, 16384 * 16384),
    "ESRGAN_tile": (0, 512), "ESRGAN_tile_overlap": (0, 48), "SWIN_tile": (0, 512), "SWIN_tile_overlap": (0, 48),
    "DAT_tile": (0, 512), "DAT_tile_overlap": (0, 48), "uni_pc_order": (1, 50),
}
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "samples_format": ("png", "jpg", "jpeg", "webp"),
    "show_progress_type": ("Full", "Approx cheap"),
    "randn_source": ("CPU", "GPU", "NV"),
    "emphasis": ("Original", "No norm", "Ignore", "None"),
    "inference_backend": ("auto", "torch", "openvino", "compile"),
    "vae_tiling": ("Automatic", "Always", "Never"),
    "uni_pc_variant": ("bh1", "bh2", "vary_coeff"),
    "uni_pc_skip_type": ("time_uniform", "time_quadratic", "logSNR"),
}


def _field_types() -> dict[str, tuple[type, ...]]:
    """Each option's accepted types, from the dataclass defaults (a float field also takes an int)."""
    types: dict[str, tuple[type, ...]] = {}
    for field in dataclasses.fields(Options):
        default = field.default
        kind = (str,) if default is None or field.name == "sd_model_checkpoint" else (type(default),)
        if field.name == "sd_checkpoints_limit":
            kind = (int,)
        if kind == (float,):
            kind = (float, int)
        if kind == (tuple,):
            kind = (tuple, list)  # JSON has lists
        types[field.name] = kind + ((type(None),) if field.name in _NULLABLE else ())
    return types


_FIELD_TYPES: Mapping[str, tuple[type, ...]] = _field_types()
# Settings that name folders to write into: only the operator chooses them (A1111's restricted
# options): never per request, and not at all from a server reachable from the network.
PATH_OPTIONS = frozenset(name for name in _FIELD_TYPES if name.startswith("outdir_"))


def option_names() -> tuple[str, ...]:
    return tuple(_FIELD_TYPES)


def validate_option(field: str, value: Any) -> None:
    types = _FIELD_TYPES.get(field)
    if types is None:
        raise OptionsError(field, "unknown option")
    is_bool_field = types[0] is bool
    if isinstance(value, bool) != is_bool_field or not isinstance(value, types):
        raise OptionsError(field, f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}")
    reason = number_problem(value, _RANGES.get(field)) if isinstance(value, (int, float)) and not is_bool_field else None
    if reason:
        raise OptionsError(field, reason)
    choices = _CHOICES.get(field)
    if choices and value not in choices:
        raise OptionsError(field, f"must be one of {', '.join(choices)}, got {value!r}")


class OptionsStore:
    """The current options and their file. Thread-safe; every update is saved before it returns."""

    def __init__(self, path: Path):
        self._path = path
        self._lock = threading.Lock()
        self._foreign: dict[str, Any] = {}
        self.set_aside_to: Path | None = None  # where an unreadable file was moved at start
        self._current = self._read()

    @property
    def current(self) -> Options:
        return self._current

    def update(self, changes: Mapping[str, Any]) -> Options:
        for field, value in changes.items():
            validate_option(field, value)
        with self._lock:
            self._current = dataclasses.replace(self._current, **changes)
            self._save()
            return self._current

    def _read(self) -> Options:
        if not self._path.exists():
            return Options()
        try:
            stored = json.loads(self._path.read_text(encoding="utf-8"))
        except OSError as error:
            raise OptionsError(str(self._path), f"cannot read settings file: {error}") from error
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError: a torn or foreign file
            return self._set_aside(f"not valid JSON ({error})")
        if not isinstance(stored, dict):
            return self._set_aside(f"holds a JSON {type(stored).__name__}, not an object of settings")
        known = {f.name for f in dataclasses.fields(Options)}
        self._foreign = {k: v for k, v in stored.items() if k not in known}
        ours = {k: v for k, v in stored.items() if k in known}
        for field, value in ours.items():
            validate_option(field, value)
        return Options(**ours)

    def _set_aside(self, reason: str) -> Options:
        """A settings file that cannot be parsed does not stop the start: it is renamed aside (kept
        for the user) and the defaults are used; a console line says where it went and why."""
        self.set_aside_to = set_aside(self._path)
        log.warning("Settings file %s is unreadable: %s; moved it to %s and started with default settings",
                    self._path, reason, self.set_aside_to)
        return Options()

    def _save(self) -> None:
        data = {**self._foreign, **dataclasses.asdict(self._current)}
        write_bytes_atomically(self._path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
