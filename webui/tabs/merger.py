"""The Checkpoint Merger tab (A1111's): pick A, B, C, a multiplier and a method, and write a new
checkpoint into the checkpoint folder; the result is listed in every checkpoint dropdown after a refresh."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from modules.models.files import find_checkpoint
from modules.models.merge import MergeError, MergeMethod, MergeRequest
from modules.models.safe_load import CheckpointError
from modules.runtime import VAE_NONE, Runtime

NO_MODEL = ""


@dataclass
class MergerTab:
    primary: gr.Dropdown
    secondary: gr.Dropdown
    tertiary: gr.Dropdown
    custom_name: gr.Textbox
    multiplier: gr.Slider
    method: gr.Radio
    save_as_half: gr.Checkbox
    bake_vae: gr.Dropdown
    discard_weights: gr.Textbox
    overwrite: gr.Checkbox
    refresh: gr.Button
    merge: gr.Button
    result: gr.Markdown

    def fields(self) -> dict[str, gr.components.Component]:
        """The inputs by the name ``merge_from_values`` reads them under."""
        names = ("primary", "secondary", "tertiary", "custom_name", "multiplier", "method", "save_as_half",
                 "bake_vae", "discard_weights", "overwrite")
        return {name: getattr(self, name) for name in names}


def request_from_values(runtime: Runtime, values: dict[str, object]) -> MergeRequest:
    """The form's values (by field name) as a MergeRequest; an unknown model is a MergeError naming its field."""
    def model(field: str, files):
        choice = str(values.get(field) or "").strip()
        if not choice:
            return None
        try:
            return runtime.hashed(find_checkpoint(files, choice))  # the recipe records each input's hash
        except KeyError as error:
            raise MergeError(field, str(error.args[0])) from error

    checkpoints = runtime.checkpoints()
    primary = model("primary", checkpoints)
    if primary is None:
        raise MergeError("primary", "choose the primary model (A)")
    vae_choice = str(values.get("bake_vae") or VAE_NONE)
    methods = {m.value: m for m in MergeMethod}
    method = methods.get(str(values.get("method") or MergeMethod.WEIGHTED_SUM.value))
    if method is None:
        raise MergeError("method", f"unknown interpolation method {values.get('method')!r}; one of {', '.join(methods)}")
    try:
        multiplier = float(values.get("multiplier", 0.3))
    except (TypeError, ValueError) as error:
        raise MergeError("multiplier", f"not a number: {values.get('multiplier')!r}") from error
    return MergeRequest(
        primary=primary, secondary=model("secondary", checkpoints), tertiary=model("tertiary", checkpoints),
        method=method, multiplier=multiplier, custom_name=str(values.get("custom_name") or ""),
        save_as_half=bool(values.get("save_as_half")),
        bake_vae=None if vae_choice == VAE_NONE else model("bake_vae", runtime.vae_files()),
        discard_weights=str(values.get("discard_weights") or ""), overwrite=bool(values.get("overwrite")),
    )


def merge_from_values(runtime: Runtime, values: dict[str, object]) -> str:
    """Run the merge; the Markdown to show: where the file went, or what is wrong and in which field."""
    try:
        merged = runtime.hashed(runtime.merge_checkpoints(request_from_values(runtime, values)))
    except MergeError as error:
        return f"**Merge failed** ({error.field.replace('_', ' ')}): {error.reason}"
    except (CheckpointError, OSError) as error:
        return f"**Merge failed:** {error}"
    return f"Saved **{merged.title}** to `{merged.path}`."


def checkpoint_choices(runtime: Runtime, refresh: bool = False) -> list[str]:
    return [f.title for f in runtime.checkpoints(refresh)]


def build_merger_tab(runtime: Runtime) -> MergerTab:
    titles = checkpoint_choices(runtime)
    vaes = [VAE_NONE, *(f.title for f in runtime.vae_files())]
    gr.Markdown("A merged model is written to the first checkpoint folder as `.safetensors`, with its recipe "
                "in the file's metadata.")
    with gr.Row():
        primary = gr.Dropdown(titles, value=titles[0] if titles else None, label="Primary model (A)", elem_id="modelmerger_primary_model_name")
        secondary = gr.Dropdown([NO_MODEL, *titles], value=NO_MODEL, label="Secondary model (B)", elem_id="modelmerger_secondary_model_name")
        tertiary = gr.Dropdown([NO_MODEL, *titles], value=NO_MODEL, label="Tertiary model (C)", elem_id="modelmerger_tertiary_model_name")
        refresh = gr.Button("Refresh", elem_id="modelmerger_refresh", scale=0)
    custom_name = gr.Textbox(label="Custom Name (Optional)", elem_id="modelmerger_custom_name")
    multiplier = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label="Multiplier (M) - set to 0 to get model A",
                           elem_id="modelmerger_interp_amount")
    method = gr.Radio([m.value for m in MergeMethod], value=MergeMethod.WEIGHTED_SUM.value,
                      label="Interpolation Method", elem_id="modelmerger_interp_method")
    with gr.Row():
        save_as_half = gr.Checkbox(label="Save as float16", elem_id="modelmerger_save_as_half")
        overwrite = gr.Checkbox(label="Overwrite an existing file of that name", elem_id="modelmerger_overwrite")
    bake_vae = gr.Dropdown(vaes, value=VAE_NONE, label="Bake in VAE", elem_id="modelmerger_bake_in_vae")
    discard_weights = gr.Textbox(label="Discard weights with matching name", placeholder="a regular expression",
                                 elem_id="modelmerger_discard_weights")
    merge = gr.Button("Merge", variant="primary", elem_id="modelmerger_merge")
    result = gr.Markdown("", elem_id="modelmerger_result")
    tab = MergerTab(primary, secondary, tertiary, custom_name, multiplier, method, save_as_half, bake_vae,
                    discard_weights, overwrite, refresh, merge, result)
    _wire(runtime, tab)
    return tab


def _wire(runtime: Runtime, tab: MergerTab) -> None:
    fields = tab.fields()
    by_component = {component: name for name, component in fields.items()}

    def refreshed_choices() -> list:
        titles = checkpoint_choices(runtime, refresh=True)
        vaes = [VAE_NONE, *(f.title for f in runtime.vae_files(refresh=True))]
        return [gr.update(choices=titles), gr.update(choices=[NO_MODEL, *titles]),
                gr.update(choices=[NO_MODEL, *titles]), gr.update(choices=vaes)]

    def merge_clicked(values: dict) -> list:
        message = merge_from_values(runtime, {by_component[c]: v for c, v in values.items()})
        return [message, *refreshed_choices()]

    lists = [tab.primary, tab.secondary, tab.tertiary, tab.bake_vae]
    tab.merge.click(merge_clicked, inputs=set(fields.values()), outputs=[tab.result, *lists])
    tab.refresh.click(refreshed_choices, outputs=lists, show_progress="hidden")
