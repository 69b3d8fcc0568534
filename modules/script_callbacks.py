"""A1111 compatibility surface: ``modules.script_callbacks`` as extensions import it.

Holds the registered callbacks (module-level, as the ecosystem expects, DESIGN §8) and calls
them; a callback that raises is reported and skipped, the others still run.
"""

from __future__ import annotations

import inspect
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

CALLBACK_KINDS = (
    "app_started", "model_loaded", "ui_tabs", "ui_train_tabs", "ui_settings", "before_ui", "after_component",
    "before_component", "before_image_saved", "image_saved", "image_grid", "cfg_denoiser", "cfg_denoised",
    "cfg_after_cfg", "infotext_pasted", "script_unloaded", "extra_noise", "list_optimizers", "list_unets",
    "before_token_counter",
)


@dataclass
class ScriptCallback:
    script: str
    callback: Callable
    name: str | None = None


callback_map: dict[str, list[ScriptCallback]] = {f"callbacks_{kind}": [] for kind in CALLBACK_KINDS}
errors: list[str] = []
# Told (file that registered the callback, error text) when a callback raises; the app disables
# the extension holding that file (``modules.extensions.startup.disable_extension``).
failure_listeners: list[Callable[[str, str], None]] = []


def _calling_script() -> str:
    """The file that registered the callback (A1111 records it to remove a script's callbacks)."""
    for frame in inspect.stack()[2:]:
        if frame.filename != __file__:
            return frame.filename
    return "unknown"


def _add(kind: str, callback: Callable, name: str | None = None) -> None:
    callback_map[f"callbacks_{kind}"].append(ScriptCallback(_calling_script(), callback, name))


def _call(kind: str, *args: Any, already_called: Sequence[Any] = ()) -> list[Any]:
    """Every callback of ``kind`` (but those in ``already_called``); one that raises is reported once and
    not called again until the next start (a per-step callback would otherwise fill the console with
    the same error)."""
    results = []
    for entry in [e for e in callback_map[f"callbacks_{kind}"] if not any(e is done for done in already_called)]:
        succeeded, result = _run(kind, entry, *args)
        if succeeded:
            results.append(result)
    return results


def _run(kind: str, entry: ScriptCallback, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """One callback; one that raises is reported (console, ``errors``, ``failure_listeners``) and
    dropped until the next start."""
    try:
        return True, entry.callback(*args, **kwargs)
    except Exception:  # the one broad catch: it isolates an extension (DESIGN §8)
        message = (f"Error in {kind} callback from {entry.script} (disabled until the next start):\n"
                   f"{traceback.format_exc()}")
        errors.append(message)
        print(message)
        entries = callback_map[f"callbacks_{kind}"]
        if entry in entries:
            entries.remove(entry)
        for listener in list(failure_listeners):
            listener(entry.script, message)
        return False, None


def remove_current_script_callbacks() -> None:
    script = _calling_script()
    for entries in callback_map.values():
        entries[:] = [e for e in entries if e.script != script]


def clear_callbacks() -> None:
    for entries in callback_map.values():
        entries.clear()
    failure_listeners.clear()


@dataclass
class ImageSaveParams:
    image: Any
    p: Any
    filename: str
    pnginfo: dict


@dataclass
class CFGDenoiserParams:
    x: Any
    image_cond: Any
    sigma: Any
    sampling_step: int
    total_sampling_steps: int
    text_cond: Any
    text_uncond: Any
    denoiser: Any = None


@dataclass
class CFGDenoisedParams:
    x: Any
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any = None


@dataclass
class AfterCFGCallbackParams:
    x: Any
    sampling_step: int
    total_sampling_steps: int


@dataclass
class BeforeComponentParams:
    component: Any
    kwargs: dict


def _registrar(kind: str) -> Callable:
    def register(callback: Callable, *, name: str | None = None) -> None:
        _add(kind, callback, name)
    register.__name__ = f"on_{kind}"
    register.__doc__ = f"Registers a callback for A1111's ``{kind}`` event."
    return register


def _caller(kind: str) -> Callable:
    def call(*args: Any) -> list[Any]:
        return _call(kind, *args)
    call.__name__ = f"{kind}_callback"
    return call


on_app_started = _registrar("app_started")
on_model_loaded = _registrar("model_loaded")
on_ui_tabs = _registrar("ui_tabs")
on_ui_train_tabs = _registrar("ui_train_tabs")
on_ui_settings = _registrar("ui_settings")
on_before_ui = _registrar("before_ui")
on_after_component = _registrar("after_component")
on_before_component = _registrar("before_component")
on_before_image_saved = _registrar("before_image_saved")
on_image_saved = _registrar("image_saved")
on_image_grid = _registrar("image_grid")
on_cfg_denoiser = _registrar("cfg_denoiser")
on_cfg_denoised = _registrar("cfg_denoised")
on_cfg_after_cfg = _registrar("cfg_after_cfg")
on_infotext_pasted = _registrar("infotext_pasted")
on_script_unloaded = _registrar("script_unloaded")
on_extra_noise = _registrar("extra_noise")
on_list_optimizers = _registrar("list_optimizers")
on_list_unets = _registrar("list_unets")
on_before_token_counter = _registrar("before_token_counter")

app_started_callback = _caller("app_started")
model_loaded_callback = _caller("model_loaded")
ui_settings_callback = _caller("ui_settings")
before_ui_callback = _caller("before_ui")
image_saved_callback = _caller("image_saved")
before_image_saved_callback = _caller("before_image_saved")
cfg_denoiser_callback = _caller("cfg_denoiser")
cfg_denoised_callback = _caller("cfg_denoised")
cfg_after_cfg_callback = _caller("cfg_after_cfg")
infotext_pasted_callback = _caller("infotext_pasted")
script_unloaded_callback = _caller("script_unloaded")


def ui_settings_callbacks_registered() -> list[Any]:
    """The ``on_ui_settings`` registrations so far (to call later only those added after them)."""
    return list(callback_map["callbacks_ui_settings"])


def ui_settings_callback_since(already_called: Sequence[Any]) -> list[Any]:
    """The ``on_ui_settings`` callbacks registered after ``already_called`` was taken."""
    return _call("ui_settings", already_called=already_called)


def ui_tabs_callback() -> list[tuple]:
    """Each ``on_ui_tabs`` callback returns a list of (blocks, title, elem_id); flattened here."""
    return [tab for tabs in _call("ui_tabs") if tabs for tab in tabs]


def before_component_callback(component: Any, **kwargs: Any) -> None:
    """Before a component is created; A1111 passes its keyword arguments as keywords."""
    for entry in list(callback_map["callbacks_before_component"]):
        _run("before_component", entry, component, **kwargs)


def after_component_callback(component: Any, **kwargs: Any) -> None:
    """A1111 passes the component's keyword arguments as keywords, not as one dict."""
    for entry in list(callback_map["callbacks_after_component"]):
        _run("after_component", entry, component, **kwargs)

