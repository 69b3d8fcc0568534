"""The points at which a job's scripts act while the engine runs it, shaped after A1111's script
lifecycle (``modules/scripts.py`` in A1111 v1.10.1: ``before_process``, ``process``,
``before_process_batch``/``process_batch``, ``postprocess_batch``, ``postprocess_image``,
``postprocess``).

Every entry point (page, API, command line, a selectable script's cells) queues its job through
``Runtime.submit``, and the job's work runs these hooks, so a script changes the same job the
same way wherever it came from. The hooks see one mutable ``JobRun``: the parameters, every
image's prompt and seed, and the infotext fields that scripts add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image

    from modules.params import Txt2ImgParams
    from modules.results import GeneratedImage
    from modules.sampling.denoiser import GuidanceObserver
    from modules.sampling.noise import NoiseSpec


@dataclass
class JobRun:
    """One job while it runs: what its hooks read and may change.

    ``prompts``/``negative_prompts``/``seeds``/``subseeds`` hold one entry per image of the whole
    job (A1111's ``all_prompts``, ``all_seeds``); ``extra_generation_params`` are infotext fields
    written before "Version", in insertion order (A1111's ``p.extra_generation_params``).
    """

    params: "Txt2ImgParams"
    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    subseeds: list[int]
    extra_generation_params: dict[str, object] = field(default_factory=dict)
    # Watch (and may change) every guided model call of the job; a hook adds its own in ``begin``.
    guidance_observers: list["GuidanceObserver"] = field(default_factory=list)

    def batch(self, number: int) -> "BatchRun":
        size = self.params.batch_size
        part = slice(number * size, (number + 1) * size)
        return BatchRun(number, self.prompts[part], self.negative_prompts[part], self.seeds[part], self.subseeds[part])


@dataclass
class BatchRun:
    """One batch of a job: its number and its images' prompts and seeds (a hook may change them
    before the batch is sampled); ``noise`` is set by the engine from the seeds once they are final."""

    number: int
    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    subseeds: list[int]
    noise: "NoiseSpec | None" = None


@dataclass
class ImageSave:
    """One image about to be written (or just written): a hook may change the image, the path
    or the infotext stored in the file (A1111's ``ImageSaveParams``)."""

    image: "Image.Image"
    path: "Path"
    infotext: str


class JobHooks:
    """Hook points of one job; each does nothing unless overridden."""

    def absorb(self, other: "JobHooks") -> bool:
        """Take ``other``'s work into this one (hooks that share state per job); False = keep both."""
        return False

    def before_job(self, params: "Txt2ImgParams") -> "Txt2ImgParams":
        """Before seeds and prompts are fixed (A1111's ``before_process``): may return changed parameters."""
        return params

    def begin(self, run: JobRun) -> None:
        """Seeds and prompts are fixed, nothing is sampled yet (A1111's ``process``)."""

    def before_batch(self, run: JobRun, batch: BatchRun) -> None:
        """Before a batch is sampled (A1111's ``before_process_batch`` and ``process_batch``)."""

    def after_batch(self, run: JobRun, batch: BatchRun, images: list["Image.Image"]) -> None:
        """A batch's decoded images, which the hook may replace in place (A1111's ``postprocess_batch_list``)."""

    def image(self, run: JobRun, batch: BatchRun, index: int, image: "Image.Image") -> "Image.Image":
        """One image before its infotext is written and it is saved (A1111's ``postprocess_image``)."""
        return image

    def after_job(self, run: JobRun, results: list["GeneratedImage"]) -> None:
        """Every finished image (A1111's ``postprocess``); the list may be changed in place."""

    def before_save(self, run: JobRun, save: ImageSave) -> None:
        """An image is about to be written to ``save.path`` (A1111's ``before_image_saved``)."""

    def after_save(self, run: JobRun, save: ImageSave) -> None:
        """The image was written (A1111's ``image_saved``)."""


NO_HOOKS = JobHooks()


class HookChain(JobHooks):
    """Several hooks run in order, each seeing what the ones before it changed."""

    def __init__(self, hooks: Sequence[JobHooks]):
        self.hooks = tuple(hooks)

    def before_job(self, params):
        for hook in self.hooks:
            params = hook.before_job(params)
        return params

    def begin(self, run):
        for hook in self.hooks:
            hook.begin(run)

    def before_batch(self, run, batch):
        for hook in self.hooks:
            hook.before_batch(run, batch)

    def after_batch(self, run, batch, images):
        for hook in self.hooks:
            hook.after_batch(run, batch, images)

    def image(self, run, batch, index, image):
        for hook in self.hooks:
            image = hook.image(run, batch, index, image)
        return image

    def after_job(self, run, results):
        for hook in self.hooks:
            hook.after_job(run, results)

    def before_save(self, run, save):
        for hook in self.hooks:
            hook.before_save(run, save)

    def after_save(self, run, save):
        for hook in self.hooks:
            hook.after_save(run, save)


class ExtraFields(JobHooks):
    """A script's own infotext fields written into every image of a job (A1111's
    ``p.extra_generation_params``), so the saved files carry them too."""

    def __init__(self, fields: dict[str, object]):
        self.fields = fields

    def begin(self, run):
        run.extra_generation_params.update(self.fields)
