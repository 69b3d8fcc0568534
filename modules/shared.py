"""A1111 compatibility surface: ``modules.shared`` as extensions import it.

``opts`` (settings with attribute access, ``add_option``, ``onchange``), ``OptionInfo``,
``OptionHTML``, ``options_section``, ``cmd_opts`` and ``state``. These are module globals because
the ecosystem reads them as such (DESIGN §8); the app binds them to its one Runtime at start.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

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

    def interrupt(self) -> None:
        self.interrupted = True

    def skip(self) -> None:
        self.skipped = True

    def begin(self, job: str = "(unknown)") -> None:
        self.__init__()
        self.job = job

    def end(self) -> None:
        self.job = ""
        self.job_count = 0

    def nextjob(self) -> None:
        self.job_no += 1
        self.sampling_step = 0

    def set_current_image(self) -> None:
        """Live previews are drawn by our progress endpoint; nothing to do here."""


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
sd_model: Any = None
sd_upscalers: list = []
demo: Any = None
hide_dirs: dict = {}
parser = argparse.ArgumentParser(add_help=False)
prompt_styles: Any = None  # a PromptStyles once bound (A1111 fills it at start too)


class PromptStyles:
    """A1111's ``shared.prompt_styles``: ``styles`` (name -> style with ``prompt``,
    ``negative_prompt``), read from our styles file."""

    def __init__(self, path: Any):
        self.path = path
        self.reload()

    def reload(self) -> None:
        from modules.styles import read_styles
        self.styles = read_styles(self.path) if self.path.is_file() else {}


def reload_hypernetworks() -> None:
    """Hypernetworks are not supported (README); kept so extensions that call it do not fail."""


def listfiles(dirname: str) -> list[str]:
    import os
    return sorted(os.path.join(dirname, f) for f in os.listdir(dirname) if not f.startswith(".")) if os.path.isdir(dirname) else []


onchange_callbacks: list[Callable] = []


_bound: list = []  # the app's one Runtime, once bind_runtime is called at start


def bind_runtime(runtime: Any) -> None:
    """Called at server start: the compat modules (``sd_models``, ``hashes``, ``sd_hijack``) answer
    from this Runtime."""
    global prompt_styles
    _bound[:] = [runtime]
    prompt_styles = PromptStyles(runtime.config.styles_file)


def bound_runtime() -> Any:
    """The Runtime bound at start, or None (e.g. an extension imported outside the server)."""
    return _bound[0] if _bound else None
