"""A1111 compatibility surface: extension scripts (``modules.scripts.Script`` subclasses) run by
the engine's one job path.

An always-on A1111 script becomes an engine script whose hooks call A1111's lifecycle with one
mutable processing object ``p`` per job (``before_process`` and ``setup`` before the job,
``process`` once seeds and prompts are fixed, ``before_process_batch``/``process_batch`` per
batch, ``postprocess_batch``/``postprocess_batch_list`` on the decoded batch, ``postprocess_image``
per image, ``postprocess`` at the end), in A1111's order (``modules/scripts.py``, v1.10.1). A
selectable one runs its ``run(p, *args)``, whose ``process_images(p)`` queues the job through
``Runtime.submit`` like every other job. An extension's failure inside a hook is reported on the
console and the job goes on without that call, as A1111 isolates them.

Script args come from the script's ``ui()`` controls as A1111's API fills them: the values the
request gives, then each control's default for the rest.
"""

from __future__ import annotations

import dataclasses
import traceback
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from PIL import Image

from modules.extensions import a1111_job_callbacks
from modules.extensions.scripts import ALWAYS_VISIBLE, Script, ScriptArg, ScriptArgsError, with_defaults
from modules.job_spec import KNOB_FIELDS, job_params
from modules.options import OptionsError, option_names, validate_option
from modules.params import Img2ImgParams, Txt2ImgParams
from modules.pipeline.hooks import BatchRun, JobHooks, JobRun

if TYPE_CHECKING:
    from modules.pipeline.generate import GeneratedImage, SaveOptions
    from modules.runtime import Runtime

# The fields ``p`` and the params both have, by the same name (seed resize is mapped apart: A1111's -1
# "off" is our 0).
_COMMON = ("prompt", "negative_prompt", "seed", "subseed", "subseed_strength", "sampler_name", "scheduler",
           "batch_size", "n_iter", "steps", "cfg_scale", "width", "height", "tiling")
_TXT2IMG = ("enable_hr", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y")
_IMG2IMG = ("resize_mode", "mask_blur", "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding",
            "initial_noise_multiplier")


def report_failure(script: Any, method: str) -> None:
    """An extension script raised: reported on the console, and its extension disabled until the
    next start (shown as failed, with this error, in the Extensions tab)."""
    path = getattr(script, "filename", None)
    message = f"Error running {method} of the extension script {path or script}:\n{traceback.format_exc(limit=-4)}"
    print(message, flush=True)
    from modules import shared
    from modules.extensions.startup import disable_extension

    runtime = shared.bound_runtime()
    if runtime is not None and path:
        disable_extension(runtime, path, message)


def extension_disabled(script: Any) -> bool:
    """Whether the extension holding this script was disabled after an error in this run."""
    from modules import shared

    runtime, path = shared.bound_runtime(), getattr(script, "filename", None)
    extension = runtime.extensions.holding(path) if runtime is not None and path else None
    return extension is not None and not extension.enabled


# ----- params <-> p -----

def processing_for(params: Txt2ImgParams) -> Any:
    """A fresh A1111 ``p`` showing ``params``."""
    from modules import processing

    is_img2img = isinstance(params, Img2ImgParams)
    kind = processing.StableDiffusionProcessingImg2Img if is_img2img else processing.StableDiffusionProcessingTxt2Img
    values = {name: getattr(params, name) for name in (*_COMMON, *(_IMG2IMG if is_img2img else _TXT2IMG))}
    p = kind(**values, styles=list(params.styles), seed_resize_from_w=params.seed_resize_from_w or -1,
             seed_resize_from_h=params.seed_resize_from_h or -1, denoising_strength=params.denoising_strength)
    if is_img2img:
        p.init_images, p.image_mask = list(params.init_images), params.mask
        p.inpainting_mask_invert = int(params.inpainting_mask_invert)
    for name, value in params.sampler_knobs:
        setattr(p, name, value)
    p.alwayson_scripts = params.alwayson_scripts
    return p


def given_from(p: Any) -> dict[str, Any]:
    """The params fields ``p`` states (``job_params`` adds the settings)."""
    is_img2img = hasattr(p, "init_images")
    given = {name: getattr(p, name) for name in (*_COMMON, *(_IMG2IMG if is_img2img else _TXT2IMG)) if hasattr(p, name)}
    given["prompt"] = p.prompt if isinstance(p.prompt, str) else (p.prompt[0] if p.prompt else "")
    given["negative_prompt"] = p.negative_prompt if isinstance(p.negative_prompt, str) else (
        p.negative_prompt[0] if p.negative_prompt else "")
    given["styles"] = tuple(p.styles or ())
    given["seed_resize_from_w"] = max(p.seed_resize_from_w or 0, 0)
    given["seed_resize_from_h"] = max(p.seed_resize_from_h or 0, 0)
    if p.denoising_strength is not None:
        given["denoising_strength"] = p.denoising_strength
    given["hr_upscaler"] = given.get("hr_upscaler") or "Latent"
    given["alwayson_scripts"] = tuple(getattr(p, "alwayson_scripts", ()) or ())
    given.update({name: getattr(p, name) for name in sorted(KNOB_FIELDS) if getattr(p, name, None) is not None})
    if is_img2img:
        given["init_images"] = tuple(image.convert("RGB") for image in p.init_images)
        mask = p.image_mask if p.image_mask is not None else p.mask
        given["mask"] = mask.convert("L") if isinstance(mask, Image.Image) else None
        given["inpainting_mask_invert"] = bool(p.inpainting_mask_invert)
    return given


def params_from(runtime: "Runtime", p: Any) -> Txt2ImgParams:
    """``p`` as job parameters, with ``p.override_settings`` applied to this job only (checked as
    the API checks ``override_settings``)."""
    overrides = {}
    for key, value in (p.override_settings or {}).items():
        if key in option_names():
            try:
                validate_option(key, value)
                overrides[key] = runtime.resolved_setting(key, value)
            except OptionsError as error:
                raise ScriptArgsError(f"override_settings.{key}: {error.reason}") from None
    options = dataclasses.replace(runtime.options.current, **overrides)
    kind = "img2img" if hasattr(p, "init_images") else "txt2img"
    return job_params(kind, given_from(p), options, overrides.keys())


# ----- images as A1111 hands them to scripts -----

def to_tensor(image: Image.Image) -> torch.Tensor:
    """(C, H, W) floats in [0, 1], as A1111's decoded samples."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)


def to_image(value: Any) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    array = value.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
    return Image.fromarray(np.round(array * 255).astype(np.uint8) if array.dtype != np.uint8 else array)


# ----- the lifecycle -----

class A1111Lifecycle(JobHooks):
    """One job's A1111 always-on scripts, sharing one ``p`` as A1111's scripts do."""

    def __init__(self, calls: Sequence[tuple[Any, list]]):
        self.calls = list(calls)
        self.p: Any = None

    def absorb(self, other: JobHooks) -> bool:
        if not isinstance(other, A1111Lifecycle):
            return False
        self.calls += other.calls
        return True

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for script, script_args in self.calls:
            if extension_disabled(script):
                continue
            try:
                getattr(script, method)(self.p, *args, *script_args, **kwargs)
            except Exception:  # isolates an extension, as A1111 does
                report_failure(script, method)

    def before_job(self, params):
        self.p = processing_for(params)
        self.p.script_args = [arg for _, args in self.calls for arg in args]
        self._each("setup")
        self._each("before_process")
        return params

    def begin(self, run: JobRun) -> None:
        p = self.p
        p.all_prompts, p.all_negative_prompts = list(run.prompts), list(run.negative_prompts)
        p.all_seeds, p.all_subseeds = list(run.seeds), list(run.subseeds)
        p.seed, p.subseed = run.seeds[0], run.subseeds[0]
        p.extra_generation_params = {**p.extra_generation_params, **run.extra_generation_params}
        self._each("process")
        run.prompts[:], run.negative_prompts[:] = p.all_prompts, p.all_negative_prompts
        run.seeds[:], run.subseeds[:] = p.all_seeds, p.all_subseeds
        run.extra_generation_params.clear()
        run.extra_generation_params.update(p.extra_generation_params)
        a1111_job_callbacks.watch(run, p)

    def before_batch(self, run: JobRun, batch: BatchRun) -> None:
        self.p.iteration = batch.number
        self.p.prompts, self.p.negative_prompts = batch.prompts, batch.negative_prompts
        self.p.seeds, self.p.subseeds = batch.seeds, batch.subseeds
        kwargs = {"batch_number": batch.number, "prompts": batch.prompts, "seeds": batch.seeds,
                  "subseeds": batch.subseeds}
        self._each("before_process_batch", **kwargs)
        self._each("process_batch", **kwargs)
        self._sync_extra(run)

    def after_batch(self, run: JobRun, batch: BatchRun, images: list) -> None:
        from modules.scripts import PostprocessBatchListArgs

        samples = torch.stack([to_tensor(image) for image in images])
        self._each("postprocess_batch", images=samples, batch_number=batch.number)
        listed = PostprocessBatchListArgs(list(samples))
        self._each("postprocess_batch_list", listed, batch_number=batch.number)
        images[:] = [to_image(sample) for sample in listed.images]
        self._sync_extra(run)

    def image(self, run: JobRun, batch: BatchRun, index: int, image):
        from modules.scripts import PostprocessImageArgs

        self.p.batch_index = index
        args = PostprocessImageArgs(image)
        self._each("postprocess_image", args)
        self._sync_extra(run)
        return to_image(args.image)

    def after_job(self, run: JobRun, results: list) -> None:
        processed = processed_from(self.p, results)
        self._each("postprocess", processed)

    def _sync_extra(self, run: JobRun) -> None:
        """Fields a script added to ``p.extra_generation_params`` go into the infotext."""
        run.extra_generation_params.update(self.p.extra_generation_params)


def processed_from(p: Any, results: Sequence["GeneratedImage"]) -> Any:
    """A1111's ``Processed`` of a job's results."""
    from modules import processing

    seeds = [r.seed for r in results]
    return processing.Processed(
        p, [r.image for r in results], seed=seeds[0] if seeds else p.seed, info=results[0].infotext if results else "",
        subseed=results[0].subseed if results else p.subseed, all_prompts=list(p.all_prompts or [p.prompt]),
        all_negative_prompts=list(p.all_negative_prompts or [p.negative_prompt]), all_seeds=seeds,
        all_subseeds=[r.subseed for r in results], infotexts=[r.infotext for r in results],
    )


# ----- scripts as the engine's registry holds them -----

def control_args(script: Any, is_img2img: bool) -> list[ScriptArg]:
    """The script's args as A1111's API describes them: one per control its ``ui()`` returns (built in
    a throwaway Blocks, as A1111 builds them), with the control's label, value, range and choices."""
    import contextlib

    import gradio as gr  # the compat surface: extensions' ui() is Gradio code
    from gradio.context import Context

    # one throwaway Blocks for all the scripts (``register_scripts`` opens it): each Blocks builds an app
    throwaway = contextlib.nullcontext() if Context.root_block is not None else gr.Blocks()
    try:
        with throwaway:
            controls = script.ui(is_img2img) or []
    except Exception:
        report_failure(script, "ui")
        return []
    described = []
    for control in controls:
        choices = getattr(control, "choices", None)
        described.append(ScriptArg(
            str(getattr(control, "label", "") or ""), getattr(control, "value", None),
            getattr(control, "minimum", None), getattr(control, "maximum", None), getattr(control, "step", None),
            tuple(c[0] if isinstance(c, (tuple, list)) else c for c in choices) if choices else None))
    return described


class A1111Script(Script):
    """An extension's A1111 script class as one engine script: a txt2img and an img2img instance
    (A1111 makes one per tab), their args from their controls."""

    def __init__(self, instances: dict[bool, Any]):
        self.instances = instances  # is_img2img -> the A1111 script object shown on that tab
        self._args = {is_img2img: control_args(s, is_img2img) for is_img2img, s in instances.items()}
        first = next(iter(instances.values()))
        self._title = first.title()
        self.alwayson = bool(first.alwayson)

    def title(self) -> str:
        return self._title

    def show(self, is_img2img: bool):
        if is_img2img not in self.instances:
            return False
        return ALWAYS_VISIBLE if self.alwayson else True

    def args_info(self, is_img2img: bool = False) -> list[ScriptArg]:
        return self._args.get(is_img2img) or next(iter(self._args.values()))

    def instance(self, params: Txt2ImgParams) -> Any:
        return self.instances[isinstance(params, Img2ImgParams)]

    def described_args(self, is_img2img: bool) -> list[ScriptArg]:
        return self.args_info(is_img2img)

    def instance_for(self, is_img2img: bool) -> Any:
        """The A1111 script object of that tab (its ``ui()`` builds the tab's controls)."""
        return self.instances[is_img2img]

    def run(self, runtime: "Runtime", params: Txt2ImgParams, args: Sequence[Any], *,
            save: "SaveOptions | None" = None) -> list["GeneratedImage"]:
        """The selectable script's ``run(p, *args)``; its ``process_images(p)`` calls queue jobs."""
        from modules import shared

        bind_to(runtime)
        p = processing_for(params)
        p.save_options = save
        is_img2img = isinstance(params, Img2ImgParams)
        p.outpath_samples = str(runtime.config.outputs_dir / ("img2img-images" if is_img2img else "txt2img-images"))
        p.outpath_grids = str(runtime.config.outputs_dir / ("img2img-grids" if is_img2img else "txt2img-grids"))
        script = self.instance(params)
        if extension_disabled(script):
            raise ScriptArgsError(f"{self.title()}: its extension was disabled after an error (see the Extensions "
                                  "tab); restart the server to load it again")
        shared.state.begin(self._title)  # a fresh interrupt flag for this run, as A1111's each request
        try:
            processed = script.run(p, *with_defaults(args, self.args_info(is_img2img)))
        finally:
            shared.state.end()
        if processed is None:
            return []
        count = len(processed.images)
        grids = max(int(getattr(processed, "index_of_first_image", 0) or 0), 0)
        return getattr(processed, "generated", None) or [
            _generated(image, text, seed, number < grids) for number, (image, text, seed) in
            enumerate(zip(processed.images, _padded(processed.infotexts, processed.info, count),
                          _padded(processed.all_seeds, processed.seed, count)))]


def _padded(values: Sequence[Any] | None, fallback: Any, count: int) -> list[Any]:
    """One value per image: A1111's lists may be shorter than the images (a grid has no own seed)."""
    values = list(values or [])
    return values + [values[-1] if values else fallback] * (count - len(values))


def bind_to(runtime: "Runtime") -> None:
    """The compat modules' globals (``shared``, the checkpoint list) answer from ``runtime``: in the
    app it is already the one bound at start; a second Runtime (tests) is bound while it runs a script."""
    from modules import shared
    from modules.extensions.startup import bind_compat_surface

    if shared.bound_runtime() is not runtime:
        bind_compat_surface(runtime)


def _generated(image: Any, infotext: str, seed: int, is_grid: bool = False) -> "GeneratedImage":
    from modules.pipeline.generate import GeneratedImage

    return GeneratedImage(to_image(image), infotext, seed, -1, None, is_grid)


class A1111AlwaysOn(A1111Script):
    """An always-on A1111 script: the whole job's lifecycle goes through one ``A1111Lifecycle``."""

    def hooks(self, params: Txt2ImgParams, args: Sequence[Any]) -> A1111Lifecycle:
        described = self.args_info(isinstance(params, Img2ImgParams))
        return A1111Lifecycle([(self.instance(params), with_defaults(args, described))])


def register_scripts(runtime: "Runtime", scripts_data: Sequence[Any]) -> list[str]:
    """Each loaded A1111 script class as an engine script in ``runtime.scripts``; the titles added.
    A class whose instances fail or hide on both tabs is left out (its error is reported)."""
    from modules import scripts as a1111_scripts

    from modules import shared

    if shared.bound_runtime() is not runtime:
        shared.bind_runtime(runtime)
    import gradio as gr

    added = []
    with gr.Blocks():  # where every script's ui() is built to describe its args (``control_args``)
        for data in scripts_data:
            instances = {is_img2img: script for is_img2img in (False, True)
                         if (script := a1111_scripts.instantiate(data, is_img2img)) is not None}
            if not instances:
                continue
            kind = A1111AlwaysOn if next(iter(instances.values())).alwayson else A1111Script
            try:
                runtime.scripts.register(kind(instances))
                added.append(next(iter(instances.values())).title())
            except ValueError as error:  # a title already taken
                print(f"Extension script {data.path} not added: {error}", flush=True)
    return added


# ----- upscalers as A1111's ``shared.sd_upscalers`` lists them -----

class QueuedUpscaler:
    """``scaler`` of one ``shared.sd_upscalers`` entry: ``upscale(img, scale, path)`` runs the
    engine's upscaler in a queued job of its own, so a model takes its turn on the device with the
    generations."""

    def __init__(self, runtime: "Runtime", name: str):
        self.runtime, self.name = runtime, name

    def upscale(self, img: Image.Image, scale: float, selected_path: Any = None) -> Image.Image:
        from modules.upscalers.library import UPSCALER_NONE, target_size

        if self.name == UPSCALER_NONE:
            return img
        upscaling = self.runtime.upscaling()
        job = self.runtime.jobs.submit(lambda job: upscaling.resize(img, target_size(img, scale), self.name),
                                       max_waiting=self.runtime.options.current.queue_max_waiting,
                                       description=f"upscale: {self.name} x{scale:g}")
        try:
            return job.future.result()
        finally:
            self.runtime.jobs.forget(job)


def upscalers_of(runtime: "Runtime") -> list[Any]:
    """A1111's ``shared.sd_upscalers``: None, the resamplers, then the model files, as
    ``/sdapi/v1/upscalers`` lists them."""
    from modules.shared import UpscalerData

    return [UpscalerData(name, QueuedUpscaler(runtime, name)) for name in runtime.upscaler_library.names()]
