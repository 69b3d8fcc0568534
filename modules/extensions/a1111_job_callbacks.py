"""A1111 compatibility surface: the callbacks that act inside a job: ``on_cfg_denoiser`` /
``on_cfg_denoised`` / ``on_cfg_after_cfg``, called inside the engine's guided denoiser every step,
and ``on_before_image_saved`` / ``on_image_saved`` around each image written.

A1111 v1.10.1 (``modules/sd_samplers_cfg_denoiser.py``) calls them around each CFG model call:
``cfg_denoiser`` with the model's inputs (the conditional rows, then the unconditional ones, in
k-diffusion's sigma space) before the call, ``cfg_denoised`` with the model's x0 estimates for those
rows, and ``cfg_after_cfg`` with the guided result; each callback may replace the tensors of its
params object and the denoiser goes on with what it finds there. The engine offers the same three
points to any ``GuidanceObserver`` (``modules/sampling/denoiser.py``); this module is the observer
that turns them into A1111's params objects. It watches a job only when a callback is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from modules import script_callbacks
from modules.pipeline.hooks import ImageSave, JobHooks, JobRun
from modules.sampling.denoiser import GuidedCall

_KINDS = ("cfg_denoiser", "cfg_denoised", "cfg_after_cfg")


@dataclass
class DenoiserView:
    """What A1111's ``CFGDenoiserParams.denoiser`` offers the extensions that read it: the step, the
    total, and the processing object when the job has one (None for a job without A1111 scripts)."""

    step: int
    total_steps: int
    p: Any = None


class A1111Guidance:
    """The A1111 CFG callbacks as a guidance observer."""

    def __init__(self, p: Any = None):
        self.p = p

    def before_model(self, call: GuidedCall) -> None:
        image_cond = call.extra_inputs.get("c_concat")
        params = script_callbacks.CFGDenoiserParams(call.x, image_cond, call.sigma, call.step, call.steps,
                                                    call.cond, call.uncond, DenoiserView(call.step, call.steps, self.p))
        script_callbacks.cfg_denoiser_callback(params)
        call.x, call.sigma, call.cond, call.uncond = params.x, params.sigma, params.text_cond, params.text_uncond
        if image_cond is not None:
            call.extra_inputs["c_concat"] = params.image_cond

    def after_model(self, outputs: Tensor, call: GuidedCall) -> Tensor:
        params = script_callbacks.CFGDenoisedParams(outputs, call.step, call.steps)
        script_callbacks.cfg_denoised_callback(params)
        return params.x

    def after_guidance(self, denoised: Tensor, call: GuidedCall) -> Tensor:
        params = script_callbacks.AfterCFGCallbackParams(denoised, call.step, call.steps)
        script_callbacks.cfg_after_cfg_callback(params)
        return params.x


def cfg_callbacks_registered() -> bool:
    return any(script_callbacks.callback_map[f"callbacks_{kind}"] for kind in _KINDS)


class A1111JobCallbacks(JobHooks):
    """Added to every job once extensions are loaded: the job's guided calls are watched while any
    extension has a CFG callback registered (checked per job: callbacks come and go with reloads),
    and its saved images pass ``on_before_image_saved`` / ``on_image_saved`` (A1111's
    ``images.save_image``: the callbacks may change the image, the file name and the ``parameters``
    text written into the file)."""

    def begin(self, run: JobRun) -> None:
        watch(run)

    def before_save(self, run: JobRun, save: ImageSave) -> None:
        if not script_callbacks.callback_map["callbacks_before_image_saved"]:
            return
        params = self._params(run, save)
        script_callbacks.before_image_saved_callback(params)
        save.image, save.path = params.image, Path(params.filename)
        save.infotext = str(params.pnginfo.get("parameters", save.infotext))

    def after_save(self, run: JobRun, save: ImageSave) -> None:
        if script_callbacks.callback_map["callbacks_image_saved"]:
            script_callbacks.image_saved_callback(self._params(run, save))

    @staticmethod
    def _params(run: JobRun, save: ImageSave) -> Any:
        from modules.extensions.a1111_bridge import processing_for

        return script_callbacks.ImageSaveParams(save.image, processing_for(run.params), str(save.path),
                                                {"parameters": save.infotext})


def watch(run: JobRun, p: Any = None) -> None:
    """Watch the job's guided calls with the A1111 callbacks, once per job, while any is registered;
    ``p``: the job's processing object (the A1111 scripts' lifecycle passes it, and comes first)."""
    if cfg_callbacks_registered() and not any(isinstance(o, A1111Guidance) for o in run.guidance_observers):
        run.guidance_observers.append(A1111Guidance(p))


def model_loaded(model: Any) -> None:
    """A checkpoint was loaded from disk: ``on_model_loaded(sd_model)`` with A1111's view of it."""
    if script_callbacks.callback_map["callbacks_model_loaded"]:
        from modules.sd_models import view_of

        script_callbacks.model_loaded_callback(view_of(model))
