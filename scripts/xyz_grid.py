"""X/Y/Z plot: one image per cell over up to three axes, drawn into one labelled grid.

Written on the A1111 script API, as an extension's script is, and loaded by the same loader from
the program's ``scripts/`` folder (where A1111 keeps its built-in scripts). Extensions add axes as
they do in A1111: they find this module through ``scripts.scripts_data`` (the class whose
``__module__`` is ``"xyz_grid.py"``) and append an ``AxisOption`` to its ``axis_options``.

``script_args`` in A1111 v1.10.1's order: X type, X values, X values (dropdown), the same for Y and
Z, draw legend, include sub images, include sub grids, keep -1 for seeds, vary seeds for X, Y, Z,
grid margins (px), use text inputs instead of dropdowns. An axis type is its index in the tab's
axis list (what A1111's dropdown sends) or its label.

The value syntax, seed fixing, loop order, the grid budget and the drawing of grids and legends
are the engine's (``modules.pipeline.xyz_values``, ``modules.pipeline.grid_legend``); this file
binds them to ``p``. Axes A1111 has and this engine cannot honour stay in the list (so indices
match A1111's) and are refused with the reason when chosen.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from collections import namedtuple
from copy import copy

import gradio as gr

from modules import images, processing, scripts, sd_models, sd_samplers, shared
from modules.extensions.script_args import boolean, number
from modules.extensions.scripts import ScriptArg
from modules.pipeline.grid_legend import xyz_grids
from modules.pipeline.xyz_values import (
    SEED_AXES, AxisKind, AxisValueError, GridBudget, fix_seeds, format_label, loop_order, parse_axis_values,
    reorder_prompt, replace_in_prompts, split_values,
)
from modules.processing import Processed, process_images
from modules.scripts import ScriptArgsError
from modules.ui_components import ToolButton

AxisInfo = namedtuple("AxisInfo", ["axis", "values"])
FILL_SYMBOL = "\U0001f4d2"  # 📒 fills the values with every choice


# ----- how an axis value changes ``p`` (A1111's names, which extensions call) -----

def apply_field(field):
    def apply(p, x, xs):
        setattr(p, field, x)
    return apply


def apply_override(field, boolean: bool = False):
    """The value as a per-job setting (``p.override_settings``), checked when the job is made."""
    def apply(p, x, xs):
        p.override_settings[field] = (str(x).strip().lower() == "true") if boolean else x
    return apply


def apply_prompt(p, x, xs):
    """Prompt S/R: the axis's first value is searched for; each value replaces it."""
    try:
        p.prompt, p.negative_prompt = replace_in_prompts(p.prompt, p.negative_prompt, xs[0], x)
    except AxisValueError as error:
        raise ScriptArgsError(str(error)) from None


def apply_order(p, x, xs):
    try:
        p.prompt = reorder_prompt(p.prompt, x)
    except AxisValueError as error:
        raise ScriptArgsError(str(error)) from None


def apply_checkpoint(p, x, xs):
    info = sd_models.get_closet_checkpoint_match(x)
    if info is None:
        raise ScriptArgsError(f"unknown checkpoint {x!r}")
    p.override_settings["sd_model_checkpoint"] = info.title


def apply_clip_skip(p, x, xs):
    p.override_settings["CLIP_stop_at_last_layers"] = x


def apply_vae(p, x, xs):
    p.override_settings["sd_vae"] = x


def apply_styles(p, x, xs):
    p.styles = [*p.styles, *(s.strip() for s in x.split(",") if s.strip())]


def apply_size(p, x, xs):
    try:
        p.width, p.height = (int(side) for side in x.lower().split("x"))
    except ValueError:
        raise ScriptArgsError(f"Size {x!r} is not WIDTHxHEIGHT") from None


def do_nothing(p, x, xs):
    pass


# ----- checks before anything is generated -----

def confirm_samplers(p, xs):
    for x in xs:
        if str(x).lower() not in sd_samplers.samplers_map:
            raise ScriptArgsError(f"unknown sampler {x!r}")


def confirm_checkpoints(p, xs):
    for x in xs:
        if sd_models.get_closet_checkpoint_match(x) is None:
            raise ScriptArgsError(f"unknown checkpoint {x!r}")


def confirm_range(min_val, max_val, axis_label):
    """A check that every value lies in [min_val, max_val]."""
    def confirm(p, xs):
        for x in xs:
            if not min_val <= x <= max_val:
                raise ScriptArgsError(f"{axis_label} value {x} is outside {min_val}..{max_val}")
    return confirm


def unavailable(why):
    """The check of an axis this engine cannot honour: choosing it is refused with ``why``."""
    def confirm(p, xs):
        raise ScriptArgsError(f"not available: {why}")
    return confirm


def confirm_img2img(p, xs):
    if not hasattr(p, "init_images"):
        raise ScriptArgsError("applies to img2img only")


# ----- legends -----

def format_value_add_label(p, opt, x):
    return format_label(opt.label, x, True)


def format_value(p, opt, x):
    return format_label(opt.label, x, False)


def format_value_join_list(p, opt, x):
    return ", ".join(x)


def format_nothing(p, opt, x):
    return ""


def format_remove_path(p, opt, x):
    return os.path.basename(x)


def str_permutations(x):
    """A type marker: the axis's values are every ordering of the listed words (Prompt order)."""
    return x


def boolean_choice(reverse: bool = False):
    def choices():
        return ["False", "True"] if reverse else ["True", "False"]
    return choices


def list_to_csv_string(data_list):
    """Values as one CSV line (quoted where they hold a comma or a quote), as the values text box takes them."""
    with io.StringIO() as out:
        csv.writer(out).writerow(data_list)
        return out.getvalue().strip()


def csv_string_to_list_strip(data_str):
    return split_values(data_str)


# ----- the axes -----

class AxisOption:
    def __init__(self, label, type, apply, format_value=format_value_add_label, confirm=None, cost=0.0, choices=None,
                 prepare=None):
        self.label = label
        self.type = type
        self.apply = apply
        self.format_value = format_value
        self.confirm = confirm
        self.cost = cost  # the costliest axis is the outermost loop (a checkpoint loads once per value)
        self.prepare = prepare
        self.choices = choices


class AxisOptionImg2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = True


class AxisOptionTxt2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = False


def _sampler_names():
    return [s.name for s in sd_samplers.samplers]


def _checkpoint_titles():
    return sorted(sd_models.checkpoints_list, key=str.casefold)


def _upscaler_names():
    from modules.pipeline.upscale import UPSCALER_NAMES
    return list(UPSCALER_NAMES)


def _vae_names():
    runtime = shared.bound_runtime()
    return ["Automatic", "None", *(f.name for f in runtime.vae_files())] if runtime is not None else ["Automatic", "None"]


def _style_names():
    return list(shared.prompt_styles.styles) if shared.prompt_styles is not None else []


def _schedule_labels():
    from modules.sampling.catalog import schedule_labels
    return list(schedule_labels())


_NOT_HERE = "this engine has no such setting"

# A1111 v1.10.1's axes, in its order: the dropdown's index counts in this list (per tab).
axis_options = [
    AxisOption("Nothing", str, do_nothing, format_value=format_nothing),
    AxisOption("Seed", int, apply_field("seed")),
    AxisOption("Var. seed", int, apply_field("subseed")),
    AxisOption("Var. strength", float, apply_field("subseed_strength")),
    AxisOption("Steps", int, apply_field("steps")),
    AxisOptionTxt2Img("Hires steps", int, apply_field("hr_second_pass_steps")),
    AxisOption("CFG Scale", float, apply_field("cfg_scale")),
    AxisOptionImg2Img("Image CFG Scale", float, do_nothing,
                      confirm=unavailable("instruct-pix2pix models are not supported")),
    AxisOption("Prompt S/R", str, apply_prompt, format_value=format_value),
    AxisOption("Prompt order", str_permutations, apply_order, format_value=format_value_join_list),
    AxisOptionTxt2Img("Sampler", str, apply_field("sampler_name"), format_value=format_value, confirm=confirm_samplers,
                      choices=_sampler_names),
    AxisOptionTxt2Img("Hires sampler", str, do_nothing, choices=_sampler_names,
                      confirm=unavailable("the hires pass uses the first pass's sampler here")),
    AxisOptionImg2Img("Sampler", str, apply_field("sampler_name"), format_value=format_value, confirm=confirm_samplers,
                      choices=_sampler_names),
    AxisOption("Checkpoint name", str, apply_checkpoint, format_value=format_remove_path, confirm=confirm_checkpoints,
               cost=1.0, choices=_checkpoint_titles),
    AxisOption("Negative Guidance minimum sigma", float, do_nothing, confirm=unavailable(_NOT_HERE)),
    AxisOption("Sigma Churn", float, apply_field("s_churn")),
    AxisOption("Sigma min", float, apply_field("s_tmin")),
    AxisOption("Sigma max", float, apply_field("s_tmax")),
    AxisOption("Sigma noise", float, apply_field("s_noise")),
    AxisOption("Schedule type", str, apply_field("scheduler"), choices=_schedule_labels),
    AxisOption("Schedule min sigma", float, do_nothing, confirm=unavailable(_NOT_HERE)),
    AxisOption("Schedule max sigma", float, do_nothing, confirm=unavailable(_NOT_HERE)),
    AxisOption("Schedule rho", float, do_nothing, confirm=unavailable(_NOT_HERE)),
    AxisOption("Eta", float, apply_field("eta")),
    AxisOption("Clip skip", int, apply_clip_skip),
    AxisOption("Denoising", float, apply_field("denoising_strength")),
    AxisOption("Initial noise multiplier", float, apply_field("initial_noise_multiplier"), confirm=confirm_img2img),
    AxisOption("Extra noise", float, do_nothing, confirm=unavailable(_NOT_HERE)),
    AxisOptionTxt2Img("Hires upscaler", str, apply_field("hr_upscaler"), choices=_upscaler_names),
    AxisOptionImg2Img("Cond. Image Mask Weight", float, do_nothing, confirm=unavailable(_NOT_HERE)),
    AxisOption("VAE", str, apply_vae, cost=0.7, choices=_vae_names),
    AxisOption("Styles", str, apply_styles, choices=_style_names),
    AxisOption("UniPC Order", int, apply_override("uni_pc_order"), cost=0.5),
    AxisOption("Face restore", str, do_nothing, format_value=format_value,
               confirm=unavailable("no face restorer is available (its model weights cannot be shipped)")),
    AxisOption("Token merging ratio", float, do_nothing, confirm=unavailable(_NOT_HERE)),
    AxisOption("Token merging ratio high-res", float, do_nothing, confirm=unavailable(_NOT_HERE)),
    AxisOption("Always discard next-to-last sigma", str, do_nothing, choices=boolean_choice(reverse=True),
               confirm=unavailable(_NOT_HERE)),
    AxisOption("SGM noise multiplier", str, do_nothing, choices=boolean_choice(reverse=True),
               confirm=unavailable(_NOT_HERE)),
    AxisOption("Refiner checkpoint", str, do_nothing, format_value=format_remove_path, cost=1.0,
               choices=_checkpoint_titles, confirm=unavailable("refiner models are not supported")),
    AxisOption("Refiner switch at", float, do_nothing, confirm=unavailable("refiner models are not supported")),
    AxisOption("RNG source", str, apply_override("randn_source"), choices=lambda: ["GPU", "CPU", "NV"]),
    AxisOption("FP8 mode", str, do_nothing, choices=lambda: ["Disable", "Enable for SDXL", "Enable"],
               confirm=unavailable(_NOT_HERE)),
    AxisOption("Size", str, apply_size),
]


def tab_axis_options(is_img2img):
    """The axes one tab offers, in the order its dropdown's index counts them."""
    return [opt for opt in axis_options if type(opt) is AxisOption or opt.is_img2img == is_img2img]


def find_axis_option(name, choice, options):
    """The axis an ``X type`` value names: its index in ``options`` or its label (any case)."""
    if isinstance(choice, int) and not isinstance(choice, bool):
        if 0 <= choice < len(options):
            return options[choice]
        raise ScriptArgsError(f"{name} index {choice} is outside 0..{len(options) - 1}")
    if isinstance(choice, str):
        for opt in options:
            if opt.label.casefold() == choice.strip().casefold():
                return opt
        raise ScriptArgsError(f"{name}: unknown axis {choice!r}; known: {', '.join(o.label for o in options)}")
    raise ScriptArgsError(f"{name} must be an axis label or index, got {choice!r}")


_KINDS = {int: AxisKind.INT, float: AxisKind.FLOAT, str_permutations: AxisKind.PERMUTATIONS}


def axis_values(opt, text, dropdown, csv_mode):
    """The values of one axis, parsed with A1111's syntax, then converted by the axis's type."""
    if opt.label == "Nothing":
        return [0], ""
    if opt.choices is not None and not csv_mode and dropdown:  # the dropdown's picks, as a CSV line
        if not isinstance(dropdown, (list, tuple)):
            raise ScriptArgsError(f"values (dropdown) must be a list, got {dropdown!r}")
        text = list_to_csv_string(dropdown)
    if not isinstance(text, str):
        raise ScriptArgsError(f"values must be text, got {text!r}")
    kind = _KINDS.get(opt.type, AxisKind.TEXT)
    try:
        values = opt.prepare(text) if opt.prepare is not None else parse_axis_values(text, kind)
        values = values if kind is not AxisKind.TEXT else [opt.type(v) for v in values]
    except (AxisValueError, ValueError, TypeError) as error:
        raise ScriptArgsError(str(error)) from None
    if not values:
        raise ScriptArgsError(f"no value given for {opt.label}")
    return values, text


class Script(scripts.Script):
    def title(self):
        return "X/Y/Z plot"

    def ui(self, is_img2img):
        options = tab_axis_options(is_img2img)
        labels = [opt.label for opt in options]
        rows = []
        for name, default in (("x", labels[1]), ("y", labels[0]), ("z", labels[0])):
            with gr.Row():
                kind = gr.Dropdown(labels, value=default, type="index", label=f"{name.upper()} type",
                                   elem_id=self.elem_id(f"{name}_type"))
                text = gr.Textbox(label=f"{name.upper()} values", lines=1, elem_id=self.elem_id(f"{name}_values"))
                picks = gr.Dropdown([], value=[], label=f"{name.upper()} values", visible=False, multiselect=True,
                                    interactive=True, elem_id=self.elem_id(f"{name}_values_dropdown"))
                fill = ToolButton(FILL_SYMBOL, visible=False, elem_id=f"xyz_grid_fill_{name}_tool_button")
            rows.append((kind, text, picks, fill))
        with gr.Row(elem_id=self.elem_id("options")):
            draw_legend = gr.Checkbox(True, label="Draw legend", elem_id=self.elem_id("draw_legend"))
            no_fixed_seeds = gr.Checkbox(False, label="Keep -1 for seeds", elem_id=self.elem_id("no_fixed_seeds"))
            vary = [gr.Checkbox(False, label=f"Vary seeds for {n}", elem_id=self.elem_id(f"vary_seeds_{n.lower()}"))
                    for n in "XYZ"]
            lone = gr.Checkbox(False, label="Include Sub Images", elem_id=self.elem_id("include_lone_images"))
            sub_grids = gr.Checkbox(False, label="Include Sub Grids", elem_id=self.elem_id("include_sub_grids"))
            margin = gr.Slider(0, 500, value=0, step=2, label="Grid margins (px)", elem_id=self.elem_id("margin_size"))
            csv_mode = gr.Checkbox(False, label="Use text inputs instead of dropdowns", elem_id=self.elem_id("csv_mode"))
        with gr.Row(elem_id=self.elem_id("swap_axes")):
            swaps = [gr.Button(f"Swap {a}/{b} axes", elem_id=f"{a.lower()}{b.lower()}_grid_swap_axes_button")
                     for a, b in (("X", "Y"), ("Y", "Z"), ("X", "Z"))]
        self._wire(options, rows, swaps, csv_mode)
        (x, xv, xd, _), (y, yv, yd, _), (z, zv, zd, _) = rows
        self.infotext_fields = ((x, "X Type"), (xv, "X Values"), (y, "Y Type"), (yv, "Y Values"),
                                (z, "Z Type"), (zv, "Z Values"))
        return [x, xv, xd, y, yv, yd, z, zv, zd, draw_legend, lone, sub_grids, no_fixed_seeds, *vary, margin, csv_mode]

    @staticmethod
    def _wire(options, rows, swaps, csv_mode):
        """Swap buttons exchange two axes (type and values); choosing an axis with choices shows its
        dropdown (or keeps the text box in text mode) and 📒 fills in every choice."""
        def swap(type_a, text_a, picks_a, type_b, text_b, picks_b):
            return options[type_b].label, text_b, picks_b, options[type_a].label, text_a, picks_a

        for button, (a, b) in zip(swaps, ((0, 1), (1, 2), (0, 2))):
            pair = [*rows[a][:3], *rows[b][:3]]
            button.click(swap, inputs=pair, outputs=pair, queue=False, show_progress="hidden")

        def select(axis, text, picks, text_mode):
            opt = options[axis] if isinstance(axis, int) and 0 <= axis < len(options) else options[0]
            choices = opt.choices() if opt.choices is not None else None
            if choices is None:
                return gr.update(visible=False), gr.update(visible=True, value=text), gr.update(visible=False)
            if text_mode:
                return (gr.update(visible=True), gr.update(visible=True, value=text or list_to_csv_string(picks or [])),
                        gr.update(visible=False, choices=choices, value=[]))
            kept = [v for v in (picks or split_values(text or "")) if v in choices]
            return gr.update(visible=True), gr.update(visible=False, value=""), gr.update(
                visible=True, choices=choices, value=kept)

        def fill(axis, text_mode):
            opt = options[axis] if isinstance(axis, int) and 0 <= axis < len(options) else options[0]
            if opt.choices is None:
                return gr.update(), gr.update()
            return (list_to_csv_string(opt.choices()), gr.update()) if text_mode else (gr.update(), opt.choices())

        for kind, text, picks, button in rows:
            kind.change(select, inputs=[kind, text, picks, csv_mode], outputs=[button, text, picks],
                        queue=False, show_progress="hidden")
            button.click(fill, inputs=[kind, csv_mode], outputs=[text, picks], queue=False, show_progress="hidden")

    def run(self, p, *args):
        axes, cells, (draw_legend, lone, sub_grids, margin) = self.plan(p, *args)
        return self.draw(p, axes, cells, draw_legend=draw_legend, lone=lone, sub_grids=sub_grids, margin=margin)

    def plan(self, p, x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type, z_values,
             z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_x,
             vary_seeds_y, vary_seeds_z, margin_size, csv_mode, *, rng=None, check=True):
        """The checked axes, each cell's ``p`` in generation order, and the drawing options; the
        seed of ``p`` is drawn once here (unless "Keep -1 for seeds"), so every cell shares it."""
        flags = [boolean(label, value) for label, value in (
            ("Draw legend", draw_legend), ("Include Sub Images", include_lone_images),
            ("Include Sub Grids", include_sub_grids), ("Keep -1 for seeds", no_fixed_seeds),
            ("Vary seeds for X", vary_seeds_x), ("Vary seeds for Y", vary_seeds_y), ("Vary seeds for Z", vary_seeds_z),
            ("Use text inputs instead of dropdowns", csv_mode))]
        margin = int(number("Grid margins (px)", margin_size, ScriptArg("Grid margins (px)", 0, 0, 500), whole=True))
        axes = self.read_axes(p, ((x_type, x_values, x_values_dropdown), (y_type, y_values, y_values_dropdown),
                                  (z_type, z_values, z_values_dropdown)), csv_mode=flags[7], keep_seeds=flags[3], rng=rng)
        if not flags[3]:
            processing.fix_seed(p)
        cells = plan_cells(p, axes, tuple(flags[4:7]))
        if check:
            for _, pc in cells:  # every cell is checked before the first is made
                processing.check_processing(pc)
        return axes, cells, (flags[0], flags[1], flags[2], margin)

    def read_axes(self, p, given, *, csv_mode=False, keep_seeds=False, rng=None):
        """(axis option, values, values text) for X, Y and Z, every value checked before any cell is made."""
        options = tab_axis_options(self.is_img2img)
        rng = rng or random.Random()
        axes = []
        for name, (kind, text, dropdown) in zip("XYZ", given):
            opt = find_axis_option(f"{name} type", kind, options)
            try:
                values, text = axis_values(opt, text, dropdown, csv_mode)
                if opt.confirm:
                    opt.confirm(p, values)
            except ScriptArgsError as error:
                raise ScriptArgsError(f"{name} values ({opt.label}): {error}") from None
            if opt.label in SEED_AXES and not keep_seeds:
                values = fix_seeds(values, rng)
            axes.append((opt, values, text))
        try:
            GridBudget().check(len(axes[0][1]) * len(axes[1][1]) * len(axes[2][1]), p.width, p.height)
        except AxisValueError as error:
            raise ScriptArgsError(str(error)) from None
        return axes

    def draw(self, p, axes, cells, *, draw_legend, lone, sub_grids, margin):
        """Generates the cells in order (an interrupt keeps the finished ones), then the grids."""
        done = {}
        for key, pc in cells:
            if shared.state.interrupted:
                break
            processed = process_images(pc)
            if processed.images:
                done[key] = (processed.images[0], processed.infotexts[0] if processed.infotexts else processed.info,
                             processed.all_seeds[0] if processed.all_seeds else pc.seed)
        if not done:
            return Processed(p, [])
        labels = [[opt.format_value(p, opt, v) for v in values] for opt, values, _ in axes]
        grids = xyz_grids({key: image for key, (image, _, _) in done.items()}, *labels, draw_legend, margin)
        _, first_text, first_seed = done.get((0, 0, 0)) or next(iter(done.values()))
        infotext = first_text + "".join(f", {name} Type: {opt.label}, {name} Values: {_quoted(text)}"
                                        for name, (opt, _, text) in zip("XYZ", axes) if opt.label != "Nothing")
        if not p.do_not_save_grid:
            images.save_image(grids.main, p.outpath_grids, "xyz_grid", seed=first_seed, prompt=p.prompt, info=infotext,
                              grid=True, p=p)
        shown = [(grids.main, infotext, first_seed)]
        if sub_grids and len(grids.sub_grids) > 1:
            shown += [(grid, infotext, first_seed) for grid in grids.sub_grids]
        grid_count = len(shown)
        if lone:
            shown += [done[key] for key in sorted(done, key=lambda k: (k[2], k[1], k[0]))]
        result = Processed(p, [image for image, _, _ in shown], seed=first_seed, info=infotext,
                           all_seeds=[seed for _, _, seed in shown], infotexts=[text for _, text, _ in shown])
        result.index_of_first_image = grid_count
        return result


def plan_cells(p, axes, vary_seeds=(False, False, False)):
    """Each cell's own ``p`` by (ix, iy, iz), in generation order: the costliest axis outermost."""
    (x_opt, xs, _), (y_opt, ys, _), (z_opt, zs, _) = axes
    first, second = loop_order(x_opt.cost, y_opt.cost, z_opt.cost)
    third = next(a for a in "xyz" if a not in (first, second))
    sizes = {"x": len(xs), "y": len(ys), "z": len(zs)}
    cells = []
    for a in range(sizes[first]):
        for b in range(sizes[second]):
            for c in range(sizes[third]):
                at = {first: a, second: b, third: c}
                cells.append(((at["x"], at["y"], at["z"]), _cell(p, axes, at["x"], at["y"], at["z"], vary_seeds)))
    return cells


def _cell(p, axes, ix, iy, iz, vary_seeds):
    pc = copy(p)
    pc.styles = list(p.styles)
    pc.override_settings = dict(p.override_settings)
    pc.extra_generation_params = dict(p.extra_generation_params)
    pc.batch_size, pc.n_iter = 1, 1  # one image per cell
    for (opt, values, _), i in zip(axes, (ix, iy, iz)):
        opt.apply(pc, values[i], values)
    (_, xs, _), (_, ys, _), _ = axes
    shift = ((ix if vary_seeds[0] else 0) + (iy * len(xs) if vary_seeds[1] else 0)
             + (iz * len(xs) * len(ys) if vary_seeds[2] else 0))
    if shift and pc.seed != -1:
        pc.seed += shift
    return pc


def _quoted(value):
    """An infotext value, quoted as A1111 quotes one that holds a comma, colon or quote."""
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ',:"\n') else value

