"""A1111 compatibility surface: the ``on_cfg_denoiser`` / ``on_cfg_denoised`` /
``on_cfg_after_cfg`` callbacks, called inside the engine's guided denoiser every step.

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
from typing import Any

from torch import Tensor

from modules import script_callbacks
from modules.pipeline.hooks import JobHooks, JobRun
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


class A1111GuidanceHooks(JobHooks):
    """Added to every job once extensions are loaded: the job's guided calls are watched while any
    extension has a CFG callback registered (checked per job: callbacks come and go with reloads)."""

    def begin(self, run: JobRun) -> None:
        watch(run)


def watch(run: JobRun, p: Any = None) -> None:
    """Watch the job's guided calls with the A1111 callbacks, once per job, while any is registered;
    ``p``: the job's processing object (the A1111 scripts' lifecycle passes it, and comes first)."""
    if cfg_callbacks_registered() and not any(isinstance(o, A1111Guidance) for o in run.guidance_observers):
        run.guidance_observers.append(A1111Guidance(p))
