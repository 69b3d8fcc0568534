"""Postprocessing ("Extras"): an ordered registry of steps run over one image, each adding its
fields to the image's postprocessing infotext, as A1111's ``scripts_postprocessing`` does.

A step has a ``name`` (A1111's script name: "Upscale", "GFPGAN", "CodeFormer"), an ``order``
(lower runs first; A1111's upscale is 1000) and ``process(pp, args, context)``, which may replace
``pp.image`` and add to ``pp.info``. A1111's ``ScriptPostprocessing`` class is the same shape, so
an extension's step can be wrapped into this registry unchanged.

Output text items, as A1111 writes them (``modules/postprocessing.py``): the source's own
items (``parameters`` and the rest) are kept, and ``postprocessing`` holds the steps' fields,
``"Postprocess upscale by: 2, Postprocess upscaler: Lanczos"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

from PIL import Image

from modules.infotext.format import format_value, quote_value
from modules.upscalers.library import UPSCALER_NONE, UpscalerError, Upscaling

POSTPROCESSING_KEY = "postprocessing"
EXTRAS_KEY = "extras"  # A1111 saves the same text again under the section name "extras"


class PostprocessError(ValueError):
    """A step's argument that cannot be used; ``field`` names it."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class PostprocessedImage:
    """The image as the steps hand it on (A1111's ``PostprocessedImage``): steps replace
    ``image`` and add their fields to ``info`` in order."""

    image: Image.Image
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PostprocessContext:
    upscaling: Upscaling
    should_stop: Callable[[], bool] = lambda: False


class PostprocessStep(Protocol):
    name: str
    order: int

    def process(self, pp: PostprocessedImage, args: Mapping[str, Any], context: PostprocessContext) -> None: ...


def postprocessing_text(info: Mapping[str, Any]) -> str:
    """A1111's join: ``key: value`` (quoted when needed), a bare key when key and value are equal.
    Numbers are written as our other infotext fields are (2.0 as ``2``)."""
    return ", ".join(key if key == value else f"{key}: {quote_value(format_value(value))}" for key, value in info.items()
                     if value is not None)


class PostprocessRegistry:
    def __init__(self, steps: Sequence[PostprocessStep] = ()):
        self._steps: list[PostprocessStep] = []
        for step in steps:
            self.register(step)

    @classmethod
    def with_builtins(cls) -> "PostprocessRegistry":
        return cls([UpscaleStep(), FaceRestorerRefusal("GFPGAN", 2000, "gfpgan_visibility"),
                    FaceRestorerRefusal("CodeFormer", 3000, "codeformer_visibility")])

    def register(self, step: PostprocessStep) -> None:
        if any(existing.name == step.name for existing in self._steps):
            raise ValueError(f"a postprocessing step named {step.name!r} is already registered")
        self._steps.append(step)
        self._steps.sort(key=lambda s: (s.order, s.name))

    @property
    def steps(self) -> tuple[PostprocessStep, ...]:
        return tuple(self._steps)

    def run(self, image: Image.Image, args: Mapping[str, Mapping[str, Any]], context: PostprocessContext) -> PostprocessedImage:
        """Every step in order over ``image`` (RGB), with its arguments by step name ({} when absent)."""
        unknown = sorted(set(args) - {step.name for step in self._steps})
        if unknown:
            raise PostprocessError("script_args", f"no postprocessing step named {', '.join(unknown)}; "
                                                  f"known: {', '.join(s.name for s in self._steps)}")
        pp = PostprocessedImage(image.convert("RGB"))
        for step in self._steps:
            if context.should_stop():
                raise InterruptedError("postprocessing stopped")
            step.process(pp, args.get(step.name, {}), context)
        return pp


def with_source_text(result: Image.Image, source: Image.Image, info: Mapping[str, Any]) -> Image.Image:
    """``result`` carrying the source's text items plus the postprocessing fields (when any)."""
    texts = {k: v for k, v in source.info.items() if isinstance(k, str) and isinstance(v, str)}
    text = postprocessing_text(info)
    if text:
        texts[POSTPROCESSING_KEY] = text
        texts[EXTRAS_KEY] = text
    result.info = texts
    return result


def limit_to_side(width: float, height: float, limit: int) -> tuple[int, int]:
    """Shrink (width, height) so the longer side is at most ``limit``, keeping the aspect
    (A1111's ``limit_size_by_one_dimention``); 0 = no limit."""
    if limit and height > width and height > limit:
        return int(limit * width // height), limit
    if limit and width > limit:
        return limit, int(limit * height // width)
    return int(width), int(height)


@dataclass(frozen=True)
class UpscaleArgs:
    """A1111's "Upscale" postprocessing arguments, by their names there."""

    upscale_enabled: bool = True
    upscale_mode: int = 0  # 0 = scale by ``upscale_by``, 1 = scale to width x height
    upscale_by: float = 2.0
    max_side_length: int = 0
    upscale_to_width: int = 512
    upscale_to_height: int = 512
    upscale_crop: bool = True
    upscaler_1_name: str = UPSCALER_NONE
    upscaler_2_name: str = UPSCALER_NONE
    upscaler_2_visibility: float = 0.0

    @classmethod
    def from_mapping(cls, args: Mapping[str, Any]) -> "UpscaleArgs":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(args) - known)
        if unknown:
            raise PostprocessError(unknown[0], f"not an Upscale argument; known: {', '.join(sorted(known))}")
        return cls(**args)


SCALE_BY_RANGE = (0.05, 8.0)  # A1111's sliders: 1..8 on the Extras tab, 0.05..8 for "Simple Upscale"
MAX_TARGET_SIDE = 8192


def upscale_problems(a: UpscaleArgs, names: Sequence[str]) -> list[tuple[str, str]]:
    problems = []
    for field_name in ("upscaler_1_name", "upscaler_2_name"):
        if getattr(a, field_name) not in names:
            problems.append((field_name, f"unknown upscaler {getattr(a, field_name)!r}; valid: {', '.join(names)}"))
    if a.upscale_mode not in (0, 1):
        problems.append(("upscale_mode", f"must be 0 (scale by) or 1 (scale to), got {a.upscale_mode}"))
    if a.upscale_mode == 0 and not SCALE_BY_RANGE[0] <= a.upscale_by <= SCALE_BY_RANGE[1]:
        problems.append(("upscale_by", f"must be between {SCALE_BY_RANGE[0]:g} and {SCALE_BY_RANGE[1]:g}, got {a.upscale_by}"))
    for field_name in ("upscale_to_width", "upscale_to_height"):
        if a.upscale_mode == 1 and not 8 <= getattr(a, field_name) <= MAX_TARGET_SIDE:
            problems.append((field_name, f"must be between 8 and {MAX_TARGET_SIDE}, got {getattr(a, field_name)}"))
    if not 0 <= a.max_side_length <= MAX_TARGET_SIDE:
        problems.append(("max_side_length", f"must be between 0 and {MAX_TARGET_SIDE}, got {a.max_side_length}"))
    if not 0.0 <= a.upscaler_2_visibility <= 1.0:
        problems.append(("upscaler_2_visibility", f"must be between 0 and 1, got {a.upscaler_2_visibility}"))
    return problems


# The most pixels one upscaled image (or its intermediate before the crop) may have: the same
# bound as an image decoded from a request, so a 1x512 strip "scaled to 512x512" (a 512x262144
# intermediate, 134 megapixels) is refused before any work instead of exhausting memory.
MAX_UPSCALED_PIXELS = 50_000_000


@dataclass(frozen=True)
class UpscalePlan:
    """The sizes one upscale will use: ``size`` is what the upscaler makes (before a crop)."""

    size: tuple[int, int]
    mode: int
    crop: bool
    target: tuple[int, int]
    scale_field: str  # the argument that decided the scale, for a message naming it


def plan_upscale(image_size: tuple[int, int], a: UpscaleArgs) -> UpscalePlan:
    """A1111's sizes: "scale to" scales by the larger of the two ratios (so the crop covers the
    canvas), "scale by" is shrunk by ``max_side_length``; the result is rounded down to a
    multiple of 8 (``Upscaler.upscale``)."""
    image_width, image_height = image_size
    mode, crop = a.upscale_mode, a.upscale_crop
    width, height = a.upscale_to_width, a.upscale_to_height
    if mode == 1:
        scale = max(width / image_width, height / image_height)
        field = "upscale_to_width" if width / image_width >= height / image_height else "upscale_to_height"
    else:
        scale, field = a.upscale_by, "upscale_by"
        if a.max_side_length and max(image_size) * scale > a.max_side_length:
            mode, crop = 1, False
            width, height = limit_to_side(image_width * scale, image_height * scale, a.max_side_length)
            scale = max(width / image_width, height / image_height)
    size = (max(8, int(image_width * scale // 8 * 8)), max(8, int(image_height * scale // 8 * 8)))
    return UpscalePlan(size, mode, crop, (width, height), field)


def upscale_size_problems(image_sizes: Sequence[tuple[int, int]], a: UpscaleArgs) -> list[tuple[str, str]]:
    """The upscale argument that would make an image over MAX_UPSCALED_PIXELS, checked before any work."""
    if not a.upscale_enabled or a.upscaler_1_name == UPSCALER_NONE:
        return []
    for index, image_size in enumerate(image_sizes):
        plan = plan_upscale(image_size, a)
        if plan.size[0] * plan.size[1] > MAX_UPSCALED_PIXELS:
            return [(plan.scale_field, f"upscaling image {index} ({image_size[0]}x{image_size[1]}) this way makes a "
                                       f"{plan.size[0]}x{plan.size[1]} image, more than {MAX_UPSCALED_PIXELS} pixels")]
    return []


class UpscaleStep:
    """A1111's ``ScriptPostprocessingUpscale``: upscaler 1, optionally blended with upscaler 2."""

    name = "Upscale"
    order = 1000

    def process(self, pp: PostprocessedImage, args: Mapping[str, Any], context: PostprocessContext) -> None:
        a = UpscaleArgs.from_mapping(args)
        problems = upscale_problems(a, context.upscaling.library.names()) or upscale_size_problems([pp.image.size], a)
        if problems:
            raise PostprocessError(*problems[0])
        if not a.upscale_enabled or a.upscaler_1_name == UPSCALER_NONE:
            return
        first = self._upscale(pp, a, a.upscaler_1_name, context)
        pp.info["Postprocess upscaler"] = a.upscaler_1_name
        if a.upscaler_2_name != UPSCALER_NONE and a.upscaler_2_visibility > 0:
            second = self._upscale(pp, a, a.upscaler_2_name, context)
            first = Image.blend(first, second.convert(first.mode), a.upscaler_2_visibility)
            pp.info["Postprocess upscaler 2"] = a.upscaler_2_name
        pp.image = first

    @staticmethod
    def _upscale(pp: PostprocessedImage, a: UpscaleArgs, name: str, context: PostprocessContext) -> Image.Image:
        """One upscaler over the step's input, with A1111's fields and sizes: the scaled size is
        rounded down to a multiple of 8 (``Upscaler.upscale``); "scale to" with crop pastes the
        result centred on a canvas of exactly the asked size."""
        image = pp.image
        plan = plan_upscale(image.size, a)
        (width, height), size = plan.target, plan.size
        if a.upscale_mode == 1:
            pp.info["Postprocess upscale to"] = f"{width}x{height}"
        else:
            pp.info["Postprocess upscale by"] = a.upscale_by
            if plan.mode == 1:
                pp.info["Max side length"] = a.max_side_length
        try:
            result = context.upscaling.resize(image, size, name)
        except UpscalerError as error:
            raise PostprocessError("upscaler_1_name" if name == a.upscaler_1_name else "upscaler_2_name", str(error)) from error
        if plan.mode == 1 and plan.crop:
            canvas = Image.new("RGB", (width, height))
            canvas.paste(result, (width // 2 - result.width // 2, height // 2 - result.height // 2))
            result = canvas
            pp.info["Postprocess crop to"] = f"{width}x{height}"
        return result


class FaceRestorerRefusal:
    """GFPGAN and CodeFormer need a face detector and restoration weights (facexlib's RetinaFace,
    GFPGANv1.4.pth / codeformer.pth) that this program cannot ship; asking for either is
    refused with that reason instead of being silently skipped."""

    def __init__(self, name: str, order: int, visibility_arg: str):
        self.name, self.order, self._visibility_arg = name, order, visibility_arg

    def process(self, pp: PostprocessedImage, args: Mapping[str, Any], context: PostprocessContext) -> None:
        if args.get("enable", True) and args.get(self._visibility_arg, 0):
            raise PostprocessError(self._visibility_arg, f"no face restorer is available ({self.name}): it needs "
                                   "face-detection and restoration model weights that cannot be shipped with this program")
