"""The built-in "X/Y/Z plot" script (A1111 ``scripts/xyz_grid.py``), txt2img and img2img.

script_args in A1111's order: X type, X values, X values (dropdown), Y type, Y values,
Y values (dropdown), Z type, Z values, Z values (dropdown), draw legend, include sub images,
include sub grids, keep -1 for seeds, vary seeds on X, on Y, on Z, grid margins (px), use
text inputs instead of dropdowns. An axis type is its label or its index in the tab's axis
list (A1111's dropdown sends the index: the list below, without the other tab's axes).

Every cell is one queued generation of one image; cells are generated so that the costliest
axis (checkpoint) changes least often (``loop_order``). Returned: the grid first (infotext:
the first cell's plus the axis description), then the sub-grids and the cells when asked.
An interrupt stops the plot; the finished cells keep their places and the rest stay black.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from modules.extensions.script_args import boolean, filled, number, run_job, save_script_grid
from modules.extensions.scripts import Script, ScriptArg, ScriptArgsError
from modules.options import OptionsError
from modules.params import Img2ImgParams
from modules.pipeline.grid_legend import xyz_grids
from modules.pipeline.xyz_values import (SEED_AXES, AxisKind, AxisValueError, GridBudget, fix_seeds, format_label,
                                         loop_order, parse_axis_values, reorder_prompt, replace_in_prompts,
                                         split_values)
from modules.sampling.catalog import resolve_sampler
from modules.sampling.noise import RngSource, resolve_seed

if TYPE_CHECKING:
    from modules.params import Txt2ImgParams
    from modules.pipeline.generate import GeneratedImage, SaveOptions
    from modules.runtime import Runtime

Apply = Callable[["Txt2ImgParams", Any, Sequence[Any]], "Txt2ImgParams"]


def _field(name: str) -> Apply:
    return lambda params, value, values: dataclasses.replace(params, **{name: value})


def _knob(name: str) -> Apply:
    def apply(params, value, values):
        knobs = dict(params.sampler_knobs)
        knobs[name] = value
        return dataclasses.replace(params, sampler_knobs=tuple(knobs.items()))
    return apply


def _prompt_sr(params, value, values):
    prompt, negative = replace_in_prompts(params.prompt, params.negative_prompt, values[0], value)
    return dataclasses.replace(params, prompt=prompt, negative_prompt=negative)


def _prompt_order(params, value, values):
    return dataclasses.replace(params, prompt=reorder_prompt(params.prompt, value))


def _styles(params, value, values):
    return dataclasses.replace(params, styles=tuple(s.strip() for s in value.split(",") if s.strip()))


def _size(params, value, values):
    try:
        width, height = (int(side) for side in value.lower().split("x"))
    except ValueError:
        raise AxisValueError(f"Size {value!r} is not WIDTHxHEIGHT") from None
    return dataclasses.replace(params, width=width, height=height)


def _rng(params, value, values):
    try:
        return dataclasses.replace(params, rng=RngSource(value))
    except ValueError:
        raise AxisValueError(f"RNG source {value!r}; valid: {', '.join(s.value for s in RngSource)}") from None


def _sampler(name: str) -> Apply:
    def apply(params, value, values):
        try:
            resolve_sampler(value)
        except ValueError:
            raise AxisValueError(f"unknown sampler {value!r}") from None
        return dataclasses.replace(params, **{name: value})
    return apply


def _img2img_field(name: str) -> Apply:
    def apply(params, value, values):
        if not isinstance(params, Img2ImgParams):
            raise AxisValueError(f"{name} applies to img2img only")
        return dataclasses.replace(params, **{name: value})
    return apply


@dataclass(frozen=True)
class Axis:
    label: str
    kind: AxisKind
    apply: Apply | None  # None: not available here (``missing`` says why)
    tab: bool | None = None  # None both tabs, False txt2img only, True img2img only
    cost: float = 0.0  # A1111's: the costliest axis is generated in the outermost loop
    labelled: bool = True  # legend "Label: value" (False: the value alone)
    has_choices: bool = False  # A1111 reads its values from the dropdown unless in text mode
    missing: str = ""


def _no(label: str, kind: AxisKind, why: str, tab: bool | None = None, has_choices: bool = False) -> Axis:
    return Axis(label, kind, None, tab, has_choices=has_choices, missing=why)


_NOT_HERE = "this engine has no such setting"
INT, FLOAT, TEXT = AxisKind.INT, AxisKind.FLOAT, AxisKind.TEXT
# A1111 v1.10.1's axis list, in its order (the API's indices count in this list, per tab).
AXES: tuple[Axis, ...] = (
    Axis("Nothing", TEXT, lambda params, value, values: params, labelled=False),
    Axis("Seed", INT, _field("seed")),
    Axis("Var. seed", INT, _field("subseed")),
    Axis("Var. strength", FLOAT, _field("subseed_strength")),
    Axis("Steps", INT, _field("steps")),
    Axis("Hires steps", INT, _field("hr_second_pass_steps"), tab=False),
    Axis("CFG Scale", FLOAT, _field("cfg_scale")),
    _no("Image CFG Scale", FLOAT, "instruct-pix2pix models are not supported", tab=True),
    Axis("Prompt S/R", TEXT, _prompt_sr, labelled=False),
    Axis("Prompt order", AxisKind.PERMUTATIONS, _prompt_order, labelled=False),
    Axis("Sampler", TEXT, _sampler("sampler_name"), tab=False, labelled=False, has_choices=True),
    _no("Hires sampler", TEXT, "the hires pass uses the first pass's sampler here", tab=False, has_choices=True),
    Axis("Sampler", TEXT, _sampler("sampler_name"), tab=True, labelled=False, has_choices=True),
    Axis("Checkpoint name", TEXT, _field("checkpoint"), cost=1.0, labelled=False, has_choices=True),
    _no("Negative Guidance minimum sigma", FLOAT, _NOT_HERE),
    Axis("Sigma Churn", FLOAT, _knob("s_churn")),
    Axis("Sigma min", FLOAT, _knob("s_tmin")),
    Axis("Sigma max", FLOAT, _knob("s_tmax")),
    Axis("Sigma noise", FLOAT, _knob("s_noise")),
    Axis("Schedule type", TEXT, _field("scheduler"), has_choices=True),
    _no("Schedule min sigma", FLOAT, _NOT_HERE),
    _no("Schedule max sigma", FLOAT, _NOT_HERE),
    _no("Schedule rho", FLOAT, _NOT_HERE),
    Axis("Eta", FLOAT, _knob("eta")),
    Axis("Clip skip", INT, _field("clip_skip")),
    Axis("Denoising", FLOAT, _field("denoising_strength")),
    Axis("Initial noise multiplier", FLOAT, _img2img_field("initial_noise_multiplier")),
    _no("Extra noise", FLOAT, _NOT_HERE),
    Axis("Hires upscaler", TEXT, _field("hr_upscaler"), tab=False, has_choices=True),
    _no("Cond. Image Mask Weight", FLOAT, _NOT_HERE, tab=True),
    Axis("VAE", TEXT, _field("vae"), cost=0.7, has_choices=True),
    Axis("Styles", TEXT, _styles, has_choices=True),
    _no("UniPC Order", INT, "the UniPC sampler is not available"),
    _no("Face restore", TEXT, "no face restorer is available (its model weights cannot be shipped)"),
    _no("Token merging ratio", FLOAT, _NOT_HERE),
    _no("Token merging ratio high-res", FLOAT, _NOT_HERE),
    _no("Always discard next-to-last sigma", TEXT, _NOT_HERE, has_choices=True),
    _no("SGM noise multiplier", TEXT, _NOT_HERE, has_choices=True),
    _no("Refiner checkpoint", TEXT, "refiner models are not supported", has_choices=True),
    _no("Refiner switch at", FLOAT, "refiner models are not supported"),
    Axis("RNG source", TEXT, _rng, has_choices=True),
    _no("FP8 mode", TEXT, _NOT_HERE, has_choices=True),
    Axis("Size", TEXT, _size),
)


def tab_axes(is_img2img: bool) -> list[Axis]:
    """The axes of one tab, in the order A1111's index counts them."""
    return [axis for axis in AXES if axis.tab is None or axis.tab == is_img2img]


def find_axis(name: str, choice: Any, is_img2img: bool) -> Axis:
    axes = tab_axes(is_img2img)
    if isinstance(choice, int) and not isinstance(choice, bool):
        if 0 <= choice < len(axes):
            axis = axes[choice]
        else:
            raise ScriptArgsError(f"{name} index {choice} is outside 0..{len(axes) - 1}")
    elif isinstance(choice, str):
        matches = [axis for axis in axes if axis.label.casefold() == choice.strip().casefold()]
        if not matches:
            raise ScriptArgsError(f"{name}: unknown axis {choice!r}; known: {', '.join(a.label for a in axes)}")
        axis = matches[0]
    else:
        raise ScriptArgsError(f"{name} must be an axis label or index, got {choice!r}")
    if axis.apply is None:
        raise ScriptArgsError(f"{name} {axis.label!r} is not available: {axis.missing}")
    return axis


def quoted(value: str) -> str:
    """An infotext value, quoted as A1111 quotes one that holds a comma, colon or quote."""
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ',:"\n') else value


@dataclass(frozen=True)
class PlotAxis:
    axis: Axis
    values: tuple
    text: str  # the values as given, for the infotext

    def labels(self) -> list[str]:
        if self.axis.label == "Nothing":
            return [""] * len(self.values)
        return [format_label(self.axis.label, v, self.axis.labelled) for v in self.values]


@dataclass(frozen=True)
class PlotOptions:
    draw_legend: bool = True
    include_lone_images: bool = False
    include_sub_grids: bool = False
    no_fixed_seeds: bool = False
    vary_seeds: tuple[bool, bool, bool] = (False, False, False)
    margin_size: int = 0


class XYZPlot(Script):
    returns_grid = True
    def title(self) -> str:
        return "X/Y/Z plot"

    def args_info(self) -> list[ScriptArg]:
        labels = tuple(dict.fromkeys(axis.label for axis in AXES if axis.apply is not None))
        axis_args = []
        for name, default in (("X", "Seed"), ("Y", "Nothing"), ("Z", "Nothing")):
            axis_args += [ScriptArg(f"{name} type", default, choices=labels), ScriptArg(f"{name} values", ""),
                          ScriptArg(f"{name} values (dropdown)", None)]
        return [*axis_args,
                ScriptArg("Draw legend", True), ScriptArg("Include Sub Images", False),
                ScriptArg("Include Sub Grids", False), ScriptArg("Keep -1 for seeds", False),
                ScriptArg("Vary seeds for X", False), ScriptArg("Vary seeds for Y", False),
                ScriptArg("Vary seeds for Z", False),
                ScriptArg("Grid margins (px)", 0, minimum=0, maximum=500, step=2),
                ScriptArg("Use text inputs instead of dropdowns", False)]

    def read(self, runtime: "Runtime | None", args: Sequence[Any], is_img2img: bool,
             rng: random.Random) -> tuple[list[PlotAxis], PlotOptions]:
        info = self.args_info()
        values = filled(self.title(), args, info)
        flags = [boolean(info[i].label, values[i]) for i in range(9, 16)]
        csv_mode = boolean(info[17].label, values[17])
        options = PlotOptions(*flags[:4], tuple(flags[4:7]), int(number(info[16].label, values[16], info[16], whole=True)))
        axes = []
        for offset, name in ((0, "X"), (3, "Y"), (6, "Z")):
            axis = find_axis(f"{name} type", values[offset], is_img2img)
            text, dropdown = values[offset + 1], values[offset + 2]
            if axis.has_choices and not csv_mode and dropdown:  # A1111 joins the dropdown's choices as CSV
                if not isinstance(dropdown, (list, tuple)):
                    raise ScriptArgsError(f"{name} values (dropdown) must be a list, got {dropdown!r}")
                text = ",".join(json.dumps(v) if "," in str(v) else str(v) for v in dropdown)
            if not isinstance(text, str):
                raise ScriptArgsError(f"{name} values must be text, got {text!r}")
            try:
                parsed = [""] if axis.label == "Nothing" else parse_axis_values(text, axis.kind)
            except AxisValueError as error:
                raise ScriptArgsError(f"{name} values: {error}") from None
            if not parsed:
                raise ScriptArgsError(f"{name} values: no value given for {axis.label}")
            if axis.label in SEED_AXES and not options.no_fixed_seeds:
                parsed = fix_seeds(parsed, rng)
            if axis.label == "Checkpoint name" and runtime is not None:
                parsed = [self._checkpoint(runtime, name, v) for v in parsed]
            axes.append(PlotAxis(axis, tuple(parsed), text))
        return axes, options

    @staticmethod
    def _checkpoint(runtime: "Runtime", name: str, value: str) -> str:
        try:
            return runtime.usable_checkpoint_title(value)
        except OptionsError as error:  # it names sd_model_checkpoint: say which axis instead
            raise ScriptArgsError(f"{name} values: {error.reason}") from None

    def cells(self, params: "Txt2ImgParams", axes: Sequence[PlotAxis], options: PlotOptions) -> dict[tuple, "Txt2ImgParams"]:
        """Each cell's parameters by (ix, iy, iz), each validated, in generation order."""
        x, y, z = axes
        base = params if options.no_fixed_seeds else dataclasses.replace(params, seed=resolve_seed(params.seed))
        base = dataclasses.replace(base, batch_size=1, n_iter=1)
        first, second = loop_order(x.axis.cost, y.axis.cost, z.axis.cost)
        third = next(a for a in "xyz" if a not in (first, second))
        sizes = {"x": len(x.values), "y": len(y.values), "z": len(z.values)}
        order = []
        for a in range(sizes[first]):
            for b in range(sizes[second]):
                for c in range(sizes[third]):
                    index = {first: a, second: b, third: c}
                    order.append((index["x"], index["y"], index["z"]))
        plan = {}
        for ix, iy, iz in order:
            cell = base
            try:
                for plot_axis, i in ((x, ix), (y, iy), (z, iz)):
                    cell = plot_axis.axis.apply(cell, plot_axis.values[i], plot_axis.values)
            except AxisValueError as error:
                raise ScriptArgsError(str(error)) from None
            seed_shift = ((ix if options.vary_seeds[0] else 0) + (iy * len(x.values) if options.vary_seeds[1] else 0)
                          + (iz * len(x.values) * len(y.values) if options.vary_seeds[2] else 0))
            if seed_shift and cell.seed != -1:
                cell = dataclasses.replace(cell, seed=cell.seed + seed_shift)
            plan[(ix, iy, iz)] = cell.validate()
        return plan

    def run(self, runtime: "Runtime", params: "Txt2ImgParams", args: Sequence[Any], *,
            save: "SaveOptions | None" = None) -> list["GeneratedImage"]:
        is_img2img = isinstance(params, Img2ImgParams)
        axes, options = self.read(runtime, args, is_img2img, random.Random())
        plan = self.cells(params, axes, options)
        GridBudget().check(len(plan), params.width, params.height)
        done: dict[tuple, GeneratedImage] = {}
        for key, cell in plan.items():
            images, interrupted = run_job(runtime, cell, save)
            if images:
                done[key] = images[0]
            if interrupted:
                break
        if not done:
            return []
        x, y, z = axes
        grids = xyz_grids({key: r.image for key, r in done.items()}, x.labels(), y.labels(), z.labels(),
                          options.draw_legend, options.margin_size)
        first = done.get((0, 0, 0)) or next(iter(done.values()))
        description = "".join(f", {name} Type: {a.axis.label}, {name} Values: {quoted(a.text)}"
                              for name, a in zip("XYZ", axes) if a.axis.label != "Nothing")
        infotext = first.infotext + description
        path = save_script_grid(runtime, grids.main, infotext, save, "img2img-grids" if is_img2img else "txt2img-grids")
        results = [dataclasses.replace(first, image=grids.main, infotext=infotext, path=path)]
        if options.include_sub_grids and len(grids.sub_grids) > 1:
            results += [dataclasses.replace(first, image=g, infotext=first.infotext + description, path=None)
                        for g in grids.sub_grids]
        if options.include_lone_images:
            results += [done[key] for key in sorted(done, key=lambda k: (k[2], k[1], k[0]))]
        return results
