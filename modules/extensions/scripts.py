"""Scripts as A1111 models them: a selectable script replaces the generation (``run``), an
always-on script acts on every generation at the job's hook points (``process`` before the job,
then ``begin``, ``before_batch``, ``after_batch``, ``postprocess_image``, ``after_job`` while the
engine runs it; see ``modules/pipeline/hooks.py``).

The registry is held by the Runtime (one per process, passed explicitly); the API lists it
(``/sdapi/v1/scripts``, ``/script-info``) and runs ``script_name`` / ``alwayson_scripts``
through it. Titles are matched ignoring case, as A1111 matches ``script_name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from modules.pipeline.hooks import JobHooks

if TYPE_CHECKING:
    from modules.params import Txt2ImgParams
    from modules.pipeline.hooks import BatchRun, JobRun
    from modules.pipeline.generate import GeneratedImage, SaveOptions
    from modules.runtime import Runtime


class _AlwaysVisible:
    """The marker ``show()`` returns for an always-on script (A1111's ``scripts.AlwaysVisible``)."""

    def __repr__(self) -> str:
        return "ALWAYS_VISIBLE"


ALWAYS_VISIBLE = _AlwaysVisible()


class ScriptArgsError(ValueError):
    """Arguments a script cannot use; the message names the argument and why."""


@dataclass(frozen=True)
class ScriptArg:
    """One argument as ``/sdapi/v1/script-info`` describes it (A1111's ``ScriptArg``)."""

    label: str
    value: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None


def with_defaults(args: Sequence[Any], described: Sequence[ScriptArg]) -> list[Any]:
    """The args given, then the described defaults of those left out (as A1111's API fills them)."""
    return [*args, *(arg.value for arg in described[len(args):])]


class Script:
    """Base class. Subclasses override ``title`` and ``show``, and ``run`` or ``process``."""

    def title(self) -> str:
        raise NotImplementedError

    def show(self, is_img2img: bool) -> "bool | _AlwaysVisible":
        return True

    def args_info(self) -> list[ScriptArg]:
        return []

    def described_args(self, is_img2img: bool) -> list[ScriptArg]:
        """The args on that tab, as ``/sdapi/v1/script-info`` lists them."""
        return self.args_info()

    def run(self, runtime: "Runtime", params: "Txt2ImgParams", args: Sequence[Any], *,
            save: "SaveOptions | None" = None) -> list["GeneratedImage"]:
        """A selectable script's whole generation; ``save`` None = the saving settings."""
        raise NotImplementedError(f"{self.title()} is not a selectable script")

    def process(self, params: "Txt2ImgParams", args: Sequence[Any]) -> "Txt2ImgParams":
        """An always-on script's change to the parameters before the job (checked, then validated,
        when it is submitted); a ScriptArgsError names an argument it cannot use."""
        return params

    def hooks(self, params: "Txt2ImgParams", args: Sequence[Any]) -> JobHooks:
        """This script's hooks for one job; the args the request leaves out take their defaults."""
        return ScriptHooks(self, with_defaults(args, self.args_info()))

    # The hook points while the job runs; ``run`` and ``batch`` may be changed in place.
    def begin(self, run: "JobRun", args: Sequence[Any]) -> None:
        """Seeds and prompts of every image are fixed; nothing is sampled yet."""

    def before_batch(self, run: "JobRun", batch: "BatchRun", args: Sequence[Any]) -> None:
        """Before a batch is sampled (its prompts and seeds may still change)."""

    def after_batch(self, run: "JobRun", batch: "BatchRun", images: list, args: Sequence[Any]) -> None:
        """A batch's decoded images (the list may be changed in place)."""

    def postprocess_image(self, run: "JobRun", batch: "BatchRun", index: int, image: Any, args: Sequence[Any]) -> Any:
        """One image before its infotext is written and it is saved; returns the image to keep."""
        return image

    def after_job(self, run: "JobRun", results: list, args: Sequence[Any]) -> None:
        """Every finished image of the job."""

    def is_alwayson(self, is_img2img: bool) -> bool:
        return self.show(is_img2img) is ALWAYS_VISIBLE


class ScriptHooks(JobHooks):
    """One always-on script with its args, at the job's hook points."""

    def __init__(self, script: Script, args: Sequence[Any]):
        self.script, self.args = script, list(args)

    def before_job(self, params):
        return self.script.process(params, self.args)

    def begin(self, run):
        self.script.begin(run, self.args)

    def before_batch(self, run, batch):
        self.script.before_batch(run, batch, self.args)

    def after_batch(self, run, batch, images):
        self.script.after_batch(run, batch, images, self.args)

    def image(self, run, batch, index, image):
        return self.script.postprocess_image(run, batch, index, image, self.args)

    def after_job(self, run, results):
        self.script.after_job(run, results, self.args)


def _key(title: str) -> str:
    return title.strip().casefold()


class ScriptRegistry:
    def __init__(self) -> None:
        self._scripts: list[Script] = []

    def register(self, script: Script) -> None:
        """Adds ``script`` after those registered: the program's scripts/ folder loads first, in file
        order, so the "Script" dropdown lists the built-in scripts as A1111 does, then the extensions'."""
        if any(_key(s.title()) == _key(script.title()) for s in self._scripts):
            raise ValueError(f"a script titled {script.title()!r} is already registered")
        self._scripts.append(script)

    def scripts(self, is_img2img: bool) -> list[Script]:
        """Every script shown on that tab, selectable and always-on, in registration order."""
        return [s for s in self._scripts if s.show(is_img2img)]

    def titles(self, is_img2img: bool) -> list[str]:
        """The selectable scripts' titles (the "Script" dropdown)."""
        return [s.title() for s in self.scripts(is_img2img) if not s.is_alwayson(is_img2img)]

    def alwayson(self, is_img2img: bool) -> list[Script]:
        return [s for s in self.scripts(is_img2img) if s.is_alwayson(is_img2img)]

    def find(self, title: str, is_img2img: bool | None = None, *, alwayson: bool = False) -> Script:
        """The script with this title, ignoring case. ``is_img2img`` given: only scripts of that tab,
        selectable ones (or always-on ones with ``alwayson``). Unknown: KeyError listing the titles."""
        if is_img2img is None:
            candidates = list(self._scripts)
        elif alwayson:
            candidates = self.alwayson(is_img2img)
        else:
            candidates = [s for s in self.scripts(is_img2img) if not s.is_alwayson(is_img2img)]
        for script in candidates:
            if _key(script.title()) == _key(title):
                return script
        known = ", ".join(s.title() for s in candidates) or "none"
        raise KeyError(f"unknown script {title!r}; known: {known}")
