"""A1111 compatibility surface: ``modules.shared`` as extensions import it.

``opts`` (settings with attribute access, ``add_option``, ``onchange``), ``OptionInfo``,
``OptionHTML``, ``options_section``, ``cmd_opts``, ``state``, ``device``, ``prompt_styles``,
``list_checkpoint_tiles``, ``refresh_checkpoints``, ``list_samplers``, ``walk_files``,
``natural_sort_key``, ``html``/``html_path`` and the feature flags A1111 keeps here. These are
module globals because the ecosystem reads them as such (DESIGN §8); the app binds them to its
one Runtime at start.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import time
from typing import Any, Callable, Iterator

from modules import devices as _devices
from modules.compat_options import OptionHTML, OptionInfo, Options, options_section  # noqa: F401


class State:
    """The progress fields extensions read and set (A1111's ``shared.state``)."""

    def __init__(self) -> None:
        self.interrupted = False
        self.skipped = False
        self.job = ""
        self.job_count = 0
        self.job_no = 0
        self.sampling_step = 0
        self.sampling_steps = 0
        self.textinfo: str | None = None
        self.current_image = None
        self.current_latent = None
        self.current_image_sampling_step = 0
        self.id_live_preview = 0
        self.stopping_generation = False
        self.job_timestamp = "0"
        self.time_start: float | None = None
        self.server_start = time.time()

    def interrupt(self) -> None:
        self.interrupted = True

    def stop_generating(self) -> None:
        self.stopping_generation = True

    def dict(self) -> dict:
        """The progress fields A1111's ``/internal/progress`` reports."""
        return {"skipped": self.skipped, "interrupted": self.interrupted, "stopping_generation": self.stopping_generation,
                "job": self.job, "job_count": self.job_count, "job_timestamp": self.job_timestamp,
                "job_no": self.job_no, "sampling_step": self.sampling_step, "sampling_steps": self.sampling_steps}

    def skip(self) -> None:
        self.skipped = True

    def begin(self, job: str = "(unknown)") -> None:
        server_start = self.server_start
        self.__init__()
        self.job, self.server_start = job, server_start
        self.job_timestamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
        self.time_start = time.time()

    def end(self) -> None:
        self.job = ""
        self.job_count = 0

    def nextjob(self) -> None:
        self.job_no += 1
        self.sampling_step = 0

    def set_current_image(self) -> None:
        """Live previews are drawn by our progress endpoint; nothing to do here."""

    def do_set_current_image(self) -> None:
        """As ``set_current_image``."""

    def assign_current_image(self, image: Any) -> None:
        self.current_image = image
        self.id_live_preview += 1


class TotalTQDM:
    """A1111's whole-job progress bar; our progress is reported by the job, so these do nothing."""

    def reset(self) -> None: ...
    def update(self) -> None: ...
    def updateTotal(self, new_total: int) -> None: ...  # noqa: N802 - A1111's name
    def clear(self) -> None: ...


class UpscalerData:
    """One of ``sd_upscalers`` as extensions read it: ``name``, ``data_path`` and ``scaler`` (whose
    ``upscale(img, scale, data_path)`` runs the engine's upscaler)."""

    def __init__(self, name: str, scaler: Any, data_path: str | None = None):
        self.name, self.scaler, self.data_path = name, scaler, data_path
        self.model_path = data_path


opts = Options()
cmd_opts = argparse.Namespace()

state = State()
total_tqdm = TotalTQDM()
sd_upscalers: list = []
demo: Any = None
hide_dirs: dict = {}
parser = argparse.ArgumentParser(add_help=False)
prompt_styles: Any = None  # a styles.StyleDatabase once bound (A1111 fills it at start too)
device = _devices.device
weight_load_location = None
batch_cond_uncond = True
parallel_processing_allowed = True
xformers_available = False
hypernetworks: dict = {}  # hypernetworks are not supported (README): none is ever loaded
loaded_hypernetworks: list = []
face_restorers: list = []
interrogator: Any = None
clip_model: Any = None
mem_mon: Any = None
settings_components: Any = None
tab_names: list = []
progress_print_out = sys.stdout
latent_upscale_default_mode = "Latent"


def reload_hypernetworks() -> None:
    """Hypernetworks are not supported (README); kept so extensions that call it do not fail."""


def listfiles(dirname: str) -> list[str]:
    return sorted(os.path.join(dirname, f) for f in os.listdir(dirname) if not f.startswith(".")) if os.path.isdir(dirname) else []


def natural_sort_key(text: str, regex: re.Pattern = re.compile(r"([0-9]+)")) -> list:
    """Sorts "img2" before "img10": digit runs compare as numbers, the rest case-insensitively."""
    return [int(part) if part.isdigit() else part.lower() for part in regex.split(text)]


def walk_files(path: str, allowed_extensions: Any = None) -> Iterator[str]:
    """Every file under ``path`` (following links), folders and files in natural order; with
    ``allowed_extensions`` (e.g. {".png"}) only those suffixes, case-insensitively; hidden folders
    are walked too (A1111's default, ``list_hidden_files`` on)."""
    if not os.path.exists(path):
        return
    allowed = {e.lower() for e in allowed_extensions} if allowed_extensions is not None else None
    for root, _, files in sorted(os.walk(path, followlinks=True), key=lambda item: natural_sort_key(item[0])):
        for filename in sorted(files, key=natural_sort_key):
            if allowed is None or os.path.splitext(filename)[1].lower() in allowed:
                yield os.path.join(root, filename)


def html_path(filename: str) -> str:
    from modules import paths
    return os.path.join(paths.script_path, "html", filename)


def html(filename: str) -> str:
    """The text of ``html/<filename>`` of the program, or '' when there is none."""
    path = html_path(filename)
    return open(path, encoding="utf8").read() if os.path.exists(path) else ""


def list_checkpoint_tiles(use_short: bool = False) -> list[str]:
    """The checkpoint titles the model dropdown lists."""
    from modules import sd_models
    return sd_models.checkpoint_tiles(use_short)


def refresh_checkpoints() -> None:
    """Re-reads the checkpoint folders (the Runtime's list)."""
    from modules import sd_models
    sd_models.list_models()


def list_samplers() -> list:
    from modules import sd_samplers
    return sd_samplers.all_samplers


onchange_callbacks: list[Callable] = []


_bound: list = []  # the app's one Runtime, once bind_runtime is called at start


def bind_runtime(runtime: Any) -> None:
    """Called at server start: the compat modules (``sd_models``, ``hashes``, ``sd_hijack``) answer
    from this Runtime."""
    from modules.styles import StyleDatabase

    global prompt_styles
    _bound[:] = [runtime]
    prompt_styles = StyleDatabase([runtime.config.styles_file])


def __getattr__(name: str) -> Any:
    """``shared.sd_model``: the model the latest job or switch used, seen as A1111's object
    (``sd_models.SdModelView``); None before any model is loaded or outside the app."""
    if name == "sd_model":
        runtime = bound_runtime()
        model = runtime.last_model if runtime is not None else None
        if model is None:
            return None
        from modules.sd_models import view_of

        return view_of(model)
    raise AttributeError(f"module 'modules.shared' has no attribute {name!r}")


def bound_runtime() -> Any:
    """The Runtime bound at start, or None (e.g. an extension imported outside the server)."""
    return _bound[0] if _bound else None
