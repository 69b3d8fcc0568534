"""Binds the generation controls to parameter fields: values dict -> params, params -> values.

Both generation tabs build their common controls (prompts, sampler, size, batch,
CFG, seed, script) here, keyed by the ``Txt2ImgParams`` field each one sets, so
a handler gets ``{field name: value}`` and the binding is plain data that can be
tested without a browser. The settings that travel with each job are folded in by
``modules.job_spec.job_params``, as for the API and the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import gradio as gr
from PIL import Image

from modules import script_callbacks
from modules.extensions.a1111_bridge import A1111Script
from modules.extensions.scripts import ScriptArg
from modules.infotext.apply import infotext_to_params
from modules.job_spec import job_params
from modules.infotext.parse import parse_infotext
from modules.options import Options
from modules.params import Img2ImgParams, InpaintFill, ParamsError, Txt2ImgParams
from modules.pipeline.images import ResizeMode
from modules.pipeline.upscale import UPSCALER_NAMES
from modules.sampling.catalog import sampler_names, schedule_labels

INT_FIELDS = frozenset({
    "steps", "width", "height", "n_iter", "batch_size", "seed", "subseed", "seed_resize_from_w", "seed_resize_from_h",
    "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "mask_blur", "inpaint_full_res_padding",
})
FLOAT_FIELDS = frozenset({"cfg_scale", "subseed_strength", "hr_scale", "denoising_strength", "scale_by"})
TXT2IMG_FIELDS = frozenset({
    "prompt", "negative_prompt", "sampler_name", "scheduler", "steps", "width", "height", "n_iter", "batch_size",
    "cfg_scale", "seed", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h", "enable_hr",
    "hr_upscaler", "hr_second_pass_steps", "denoising_strength", "hr_scale", "hr_resize_x", "hr_resize_y",
})
IMG2IMG_FIELDS = (TXT2IMG_FIELDS - {"enable_hr", "hr_upscaler", "hr_second_pass_steps", "hr_scale", "hr_resize_x",
                                    "hr_resize_y"}) | {"resize_mode", "mask_blur", "inpainting_mask_invert",
                                                       "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding"}
RESIZE_MODE_LABELS = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")
MASK_MODE_LABELS = ("Inpaint masked", "Inpaint not masked")
MASKED_CONTENT_LABELS = ("fill", "original", "latent noise", "latent nothing")
INPAINT_AREA_LABELS = ("Whole picture", "Only masked")
SCRIPT_NONE = "None"


# ----- values -> params (pure) -----

def _number(name: str, value: Any, kind: type) -> int | float:
    if value is None or isinstance(value, bool) or value == "":
        raise ParamsError([(name, "a number is required")])
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParamsError([(name, f"must be a number, got {value!r}")]) from None
    if kind is int:
        if number != int(number):
            raise ParamsError([(name, f"must be a whole number, got {value!r}")])
        return int(number)
    return number


def typed_values(values: Mapping[str, Any], wanted: frozenset[str]) -> dict[str, Any]:
    """The values of ``wanted`` fields with numbers as the dataclass expects them (sliders send floats)."""
    typed: dict[str, Any] = {}
    for name in wanted & set(values):
        value = values[name]
        if name in INT_FIELDS:
            value = _number(name, value, int)
        elif name in FLOAT_FIELDS:
            value = _number(name, value, float)
        typed[name] = value
    return typed


def seed_extras(values: Mapping[str, Any]) -> dict[str, Any]:
    """Variation seed and resize-seed-from apply only while "Extra" is ticked (A1111's seed.py)."""
    if values.get("seed_extra"):
        return {}
    return {"subseed": -1, "subseed_strength": 0.0, "seed_resize_from_w": 0, "seed_resize_from_h": 0}


def txt2img_params(values: Mapping[str, Any], options: Options, checkpoint: str | None = None) -> Txt2ImgParams:
    """Form values by field name -> the job's parameters (``job_params`` folds in the settings);
    a bad number raises ParamsError naming it."""
    return job_params("txt2img", {**typed_values(values, TXT2IMG_FIELDS), **seed_extras(values),
                                  **common_choices(values), "checkpoint": checkpoint}, options)


def common_choices(values: Mapping[str, Any]) -> dict[str, Any]:
    """The styles and the always-on scripts' args (``Form.named`` collects them)."""
    return {"styles": tuple(values.get("styles") or ()), "alwayson_scripts": tuple(values.get("alwayson_scripts") or ())}


def resized_size(image: Image.Image, scale: float) -> tuple[int, int]:
    """"Resize by": the init image's size times ``scale``, to a multiple of 8 (A1111 rounds the same way)."""
    return max(8, round(image.width * scale / 8) * 8), max(8, round(image.height * scale / 8) * 8)


def img2img_params(
    values: Mapping[str, Any], options: Options, init_images: tuple[Image.Image, ...], mask: Image.Image | None,
    checkpoint: str | None = None,
) -> Img2ImgParams:
    fields = {**typed_values(values, IMG2IMG_FIELDS), **seed_extras(values)}
    if values.get("resize_by") in ("by", "Resize by") and init_images:
        fields["width"], fields["height"] = resized_size(init_images[0], _number("scale_by", values.get("scale_by"), float))
    for name, enum, labels in (("resize_mode", ResizeMode, RESIZE_MODE_LABELS),
                               ("inpainting_fill", InpaintFill, MASKED_CONTENT_LABELS)):
        if name in fields:
            fields[name] = enum(_index(name, fields[name], labels))
    for name, labels in (("inpainting_mask_invert", MASK_MODE_LABELS), ("inpaint_full_res", INPAINT_AREA_LABELS)):
        if name in fields:
            fields[name] = bool(_index(name, fields[name], labels))
    return job_params("img2img", {**fields, **common_choices(values), "checkpoint": checkpoint,
                                  "init_images": init_images, "mask": mask}, options)


def _index(name: str, value: Any, labels: tuple[str, ...]) -> int:
    """A radio's choice as its index (the browser sends the label or, with type="index", the index)."""
    if isinstance(value, int) and 0 <= value < len(labels):
        return value
    if value in labels:
        return labels.index(value)
    raise ParamsError([(name, f"must be one of {', '.join(labels)}, got {value!r}")])


def hires_size_text(values: Mapping[str, Any]) -> str:
    """A1111's "from WxH to WxH" line under Hires. fix."""
    try:
        params = Txt2ImgParams(**{**{"width": 512, "height": 512}, **typed_values(values, TXT2IMG_FIELDS)})
        width, height = params.hires_size()
    except (ParamsError, ZeroDivisionError):
        return ""
    return f"from {params.width}x{params.height} to {width}x{height}"


# ----- params -> values (pure) -----

def params_to_values(params: Txt2ImgParams) -> dict[str, Any]:
    """The form values that show ``params`` (the inverse of ``txt2img_params``/``img2img_params``)."""
    wanted = IMG2IMG_FIELDS if isinstance(params, Img2ImgParams) else TXT2IMG_FIELDS
    values = {name: getattr(params, name) for name in wanted}
    values["styles"] = list(params.styles)
    values["seed_extra"] = params.subseed_strength > 0 or (params.seed_resize_from_w > 0 and params.seed_resize_from_h > 0)
    if isinstance(params, Img2ImgParams):
        values["resize_mode"] = RESIZE_MODE_LABELS[int(params.resize_mode)]
        values["inpainting_fill"] = MASKED_CONTENT_LABELS[int(params.inpainting_fill)]
        values["inpainting_mask_invert"] = MASK_MODE_LABELS[int(params.inpainting_mask_invert)]
        values["inpaint_full_res"] = INPAINT_AREA_LABELS[int(params.inpaint_full_res)]
    return values


def values_from_infotext(text: str, base: Txt2ImgParams) -> dict[str, Any]:
    """An infotext's fields as form values (A1111's paste): only what the text states changes.
    An unreadable value raises ValueError naming the field."""
    return values_from_fields(parse_infotext(text), base)


def values_from_fields(fields: Mapping[str, str], base: Txt2ImgParams) -> dict[str, Any]:
    """Parsed infotext fields as form values (``values_from_infotext`` after the parse)."""
    return params_to_values(infotext_to_params(fields, base))


# ----- components -----

@dataclass
class Form:
    """One tab's generation controls, by the field name each one sets."""

    tab: str
    components: dict[str, gr.components.Component] = field(default_factory=dict)
    alwayson: dict[str, list] = field(default_factory=dict)  # always-on script title -> [(arg, control)]
    # extension scripts' ``infotext_fields``: (control, infotext key or function of the fields)
    paste_fields: list[tuple[gr.components.Component, Any]] = field(default_factory=list)

    @property
    def inputs(self) -> set:
        return set(self.components.values()) | {control for controls in self.alwayson.values() for _, control in controls}

    def named(self, values: Mapping[Any, Any]) -> dict[str, Any]:
        """A handler's ``{component: value}`` as ``{field name: value}``, with the always-on
        scripts' args as ``alwayson_scripts`` (title, args) pairs."""
        named = {name: values[component] for name, component in self.components.items() if component in values}
        if self.alwayson:
            named["alwayson_scripts"] = tuple((title, tuple(script_arg_values(values, controls)))
                                              for title, controls in self.alwayson.items())
        return named

    def updates(self, values: Mapping[str, Any]) -> dict[gr.components.Component, Any]:
        return {self.components[name]: value for name, value in values.items() if name in self.components}

    def add(self, name: str, component: gr.components.Component) -> gr.components.Component:
        self.components[name] = component
        return component


def build_sampler_controls(form: Form, options: Options) -> None:
    with gr.Row():
        form.add("sampler_name", gr.Dropdown(list(sampler_names()), value=options.txt2img_default_sampler,
                                             label="Sampling method", elem_id=f"{form.tab}_sampling"))
        form.add("scheduler", gr.Dropdown(list(schedule_labels()), value="Automatic", label="Schedule type",
                                          elem_id=f"{form.tab}_scheduler"))
    form.add("steps", gr.Slider(1, 150, value=options.txt2img_default_steps, step=1, label="Sampling steps",
                                elem_id=f"{form.tab}_steps"))


def build_size_controls(form: Form) -> None:
    with gr.Row():
        with gr.Column(scale=4):
            width = form.add("width", gr.Slider(64, 2048, value=512, step=8, label="Width", elem_id=f"{form.tab}_width"))
            height = form.add("height", gr.Slider(64, 2048, value=512, step=8, label="Height", elem_id=f"{form.tab}_height"))
        swap = gr.Button("⇅", elem_id=f"{form.tab}_res_switch_btn", scale=0, min_width=40)
    swap.click(lambda w, h: (h, w), inputs=[width, height], outputs=[width, height], queue=False, show_progress="hidden")


def build_batch_and_cfg(form: Form, options: Options) -> None:
    with gr.Row():
        form.add("n_iter", gr.Slider(1, 100, value=1, step=1, label="Batch count", elem_id=f"{form.tab}_batch_count"))
        form.add("batch_size", gr.Slider(1, 8, value=1, step=1, label="Batch size", elem_id=f"{form.tab}_batch_size"))
    form.add("cfg_scale", gr.Slider(1, 30, value=options.txt2img_default_cfg_scale, step=0.5, label="CFG Scale",
                                    elem_id=f"{form.tab}_cfg_scale"))


def build_seed_controls(form: Form) -> tuple[gr.Button, gr.Button]:
    """Seed with 🎲 (random) and ♻️ (reuse; wired by the output panel), and the "Extra" group."""
    with gr.Row(elem_id=f"{form.tab}_seed_row"):
        seed = form.add("seed", gr.Number(-1, precision=0, label="Seed", elem_id=f"{form.tab}_seed", scale=4))
        random_seed = gr.Button("🎲", elem_id=f"{form.tab}_random_seed", scale=0, min_width=40)
        reuse_seed = gr.Button("♻️", elem_id=f"{form.tab}_reuse_seed", scale=0, min_width=40)
        extra = form.add("seed_extra", gr.Checkbox(False, label="Extra", elem_id=f"{form.tab}_subseed_show", scale=0, min_width=80))
    with gr.Group(visible=False, elem_id=f"{form.tab}_seed_extras") as extras:
        with gr.Row():
            subseed = form.add("subseed", gr.Number(-1, precision=0, label="Variation seed", elem_id=f"{form.tab}_subseed", scale=4))
            random_subseed = gr.Button("🎲", elem_id=f"{form.tab}_random_subseed", scale=0, min_width=40)
            reuse_subseed = gr.Button("♻️", elem_id=f"{form.tab}_reuse_subseed", scale=0, min_width=40)
            form.add("subseed_strength", gr.Slider(0, 1, value=0, step=0.01, label="Variation strength",
                                                   elem_id=f"{form.tab}_subseed_strength", scale=4))
        with gr.Row():
            form.add("seed_resize_from_w", gr.Slider(0, 2048, value=0, step=8, label="Resize seed from width",
                                                     elem_id=f"{form.tab}_seed_resize_from_w"))
            form.add("seed_resize_from_h", gr.Slider(0, 2048, value=0, step=8, label="Resize seed from height",
                                                     elem_id=f"{form.tab}_seed_resize_from_h"))
    extra.change(lambda on: gr.update(visible=on), inputs=extra, outputs=extras, queue=False, show_progress="hidden")
    random_seed.click(lambda: -1, outputs=seed, queue=False, show_progress="hidden")
    random_subseed.click(lambda: -1, outputs=subseed, queue=False, show_progress="hidden")
    return reuse_seed, reuse_subseed


def build_hires_controls(form: Form, model_upscalers: Sequence[str] = ()) -> None:
    """``model_upscalers``: the upscaler model files' names, listed after the built-in upscalers."""
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{form.tab}_hr"):
        form.add("enable_hr", gr.Checkbox(False, label="Enable Hires. fix", elem_id=f"{form.tab}_enable_hr"))
        with gr.Row():
            form.add("hr_upscaler", gr.Dropdown([*UPSCALER_NAMES, *model_upscalers], value="Latent", label="Upscaler",
                                                elem_id=f"{form.tab}_hr_upscaler"))
            form.add("hr_second_pass_steps", gr.Slider(0, 150, value=0, step=1, label="Hires steps",
                                                       elem_id=f"{form.tab}_hires_steps"))
            form.add("denoising_strength", gr.Slider(0, 1, value=0.7, step=0.01, label="Denoising strength",
                                                     elem_id=f"{form.tab}_denoising_strength"))
        with gr.Row():
            form.add("hr_scale", gr.Slider(1, 4, value=2, step=0.05, label="Upscale by", elem_id=f"{form.tab}_hr_scale"))
            form.add("hr_resize_x", gr.Slider(0, 2048, value=0, step=8, label="Resize width to", elem_id=f"{form.tab}_hr_resize_x"))
            form.add("hr_resize_y", gr.Slider(0, 2048, value=0, step=8, label="Resize height to", elem_id=f"{form.tab}_hr_resize_y"))
        size_info = gr.Markdown(hires_size_text({}), elem_id="txtimg_hr_finalres")
    names = ("width", "height", "hr_scale", "hr_resize_x", "hr_resize_y")
    sources = [form.components[name] for name in names]
    for source in sources:
        source.change(lambda *values: hires_size_text(dict(zip(names, values))), inputs=sources, outputs=size_info,
                      queue=False, show_progress="hidden")


def build_script_controls(form: Form, scripts: Any, is_img2img: bool) -> dict[str, list]:
    """The "Script" dropdown from the runtime's script registry, and each script's controls, shown
    while it is selected: an A1111 script's own ``ui()``, else controls made from its ``args_info()``.
    Returns {title: [(arg, control)]}."""
    titles = list(scripts.titles(is_img2img))
    script = form.add("script", gr.Dropdown([SCRIPT_NONE, *titles], value=SCRIPT_NONE, label="Script",
                                            elem_id="script_list"))
    controls: dict[str, list] = {}
    groups = []
    for number, title in enumerate(titles):
        chosen = scripts.find(title, is_img2img)
        with gr.Group(visible=False, elem_id=f"{form.tab}_script_{number}") as group:
            if isinstance(chosen, A1111Script):
                controls[title] = own_ui_controls(chosen, is_img2img)
            else:
                controls[title] = [(arg, script_arg_control(arg, f"{form.tab}_script_{number}_arg_{i}"))
                                   for i, arg in enumerate(chosen.args_info())]
        groups.append(group)
    if groups:
        script.change(lambda chosen: {g: gr.update(visible=chosen == t) for g, t in zip(groups, titles)}, inputs=script,
                      outputs=groups, queue=False, show_progress="hidden")
    build_alwayson_controls(form, scripts, is_img2img)
    return controls


def own_ui_controls(script: A1111Script, is_img2img: bool) -> list:
    """A selectable A1111 script's own ``ui(is_img2img)``, built here in the page (A1111 builds it
    inside the script's group under the dropdown): [(arg, control)] in ``ui()`` order, the order its
    ``run(p, *args)`` receives their values. A ``ui()`` that raises is reported and shows nothing."""
    from modules.extensions.a1111_bridge import report_failure

    try:
        made = script.instance_for(is_img2img).ui(is_img2img)
    except Exception:  # extension code: isolated, as A1111 isolates a failing ui()
        report_failure(script.instance_for(is_img2img), "ui")
        return []
    made = made if isinstance(made, (list, tuple)) else ([made] if made is not None else [])
    return [(ScriptArg(str(getattr(c, "label", "") or ""), getattr(c, "value", None)), c)
            for c in made if isinstance(c, gr.components.Component)]


def build_alwayson_controls(form: Form, scripts: Any, is_img2img: bool) -> None:
    """Each always-on script's controls in its own accordion (A1111 shows them under the
    generation controls); every job of the tab runs the script with their values."""
    for number, script in enumerate(scripts.alwayson(is_img2img)):
        if isinstance(script, A1111Script):
            continue  # an extension's script shows its own ui() (``add_rendered_scripts``)
        args = script.args_info()
        if not args:
            form.alwayson[script.title()] = []
            continue
        with gr.Accordion(script.title(), open=False, elem_id=f"{form.tab}_alwayson_{number}"):
            form.alwayson[script.title()] = [
                (arg, script_arg_control(arg, f"{form.tab}_alwayson_{number}_arg_{i}")) for i, arg in enumerate(args)]


def add_rendered_scripts(form: Form, rendered: Sequence[Any]) -> None:
    """Extension scripts' own ``ui()`` controls (``webui.extension_ui.add_alwayson_script_uis``): their
    values, in ``ui()`` order, are the script's args in every job of the tab, as in A1111."""
    for item in rendered:
        controls = [c for c in item.controls if isinstance(c, gr.components.Component)]
        form.alwayson[item.script.title()] = [
            (ScriptArg(str(getattr(c, "label", "") or ""), getattr(c, "value", None)), c) for c in controls]
        form.paste_fields += [(component, key) for component, key in getattr(item.script, "infotext_fields", None) or ()
                              if isinstance(component, gr.components.Component)]


def script_paste_updates(form: Form, fields: Mapping[str, str]) -> dict[gr.components.Component, Any]:
    """The values extension scripts' ``infotext_fields`` take from a pasted infotext, as A1111's paste
    gives them: a key (or a function of all fields) with no value leaves the control alone; a value
    is converted to the type of the control's current value ("False" is False for a checkbox); an
    update a function returns is used as it is."""
    updates: dict[gr.components.Component, Any] = {}
    for component, key in form.paste_fields:
        value = key(fields) if callable(key) else fields.get(key)
        if value is None:
            continue
        if isinstance(value, dict) and value.get("__type__") == "update":
            updates[component] = value
            continue
        current = getattr(component, "value", None)
        try:
            if isinstance(current, bool):
                value = value if isinstance(value, bool) else str(value).strip().lower() not in ("false", "0", "")
            elif current is not None and not isinstance(value, type(current)):
                value = type(current)(float(value)) if isinstance(current, int) else type(current)(value)
        except (TypeError, ValueError):
            continue  # A1111 leaves a control whose value does not convert unchanged too
        updates[component] = value
    return updates


def paste_updates(form: Form, text: str, base: Txt2ImgParams) -> dict[gr.components.Component, Any]:
    """↙️ / send-to: the form fields an infotext states, and the extension scripts' fields. Extensions'
    ``on_infotext_pasted(infotext, fields)`` see (and may change) the fields first, as in A1111.
    An unreadable value raises ValueError naming the field."""
    fields = parse_infotext(text)
    script_callbacks.infotext_pasted_callback(text, fields)
    return {**form.updates(values_from_fields(fields, base)), **script_paste_updates(form, fields)}


def script_arg_control(arg: Any, elem_id: str) -> gr.components.Component:
    """A control for one ``ScriptArg``: choices -> dropdown, bool -> checkbox, a range -> slider."""
    if arg.choices:
        return gr.Dropdown(list(arg.choices), value=arg.value, label=arg.label, elem_id=elem_id)
    if isinstance(arg.value, bool):
        return gr.Checkbox(arg.value, label=arg.label, elem_id=elem_id)
    if arg.minimum is not None and arg.maximum is not None:
        return gr.Slider(arg.minimum, arg.maximum, value=arg.value, step=arg.step or 1, label=arg.label, elem_id=elem_id)
    if isinstance(arg.value, (int, float)):
        return gr.Number(arg.value, label=arg.label, elem_id=elem_id)
    return gr.Textbox("" if arg.value is None else str(arg.value), label=arg.label, elem_id=elem_id)


def script_arg_values(values: Mapping[Any, Any], controls: list) -> list[Any]:
    """The script's positional args from its controls, with whole numbers where its defaults are ints
    (sliders send floats)."""
    args = []
    for arg, control in controls:
        value = values[control]
        if isinstance(arg.value, int) and not isinstance(arg.value, bool) and isinstance(value, float) and value.is_integer():
            value = int(value)
        args.append(value)
    return args
