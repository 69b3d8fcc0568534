"""The Settings tab: the options in A1111's sections and labels, applied at once and saved to config.json.

Every setting here is read when a job is submitted (saving, previews, sampler
parameters, clip skip, VAE) or when the page loads (UI defaults), so applying
needs no restart.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import gradio as gr

from modules.options import Options, OptionsError
from modules.runtime import Runtime
from modules.sampling.catalog import sampler_names
from webui.tabs.page_load import PageLoad
from webui.top_bar import vae_choices

# section -> (option, label); labels are A1111's.
SECTIONS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "Saving images/grids": (
        ("samples_save", "Always save all generated images"),
        ("samples_format", "File format for images"),
        ("samples_filename_pattern", "Images filename pattern"),
        ("jpeg_quality", "Quality for saved jpeg and webp images"),
        ("grid_save", "Always save all generated image grids"),
    ),
    "Paths for saving": (
        ("outdir_samples", "Output directory for images; if empty, defaults to three directories below"),
        ("outdir_txt2img_samples", "Output directory for txt2img images"),
        ("outdir_img2img_samples", "Output directory for img2img images"),
        ("outdir_grids", "Output directory for grids; if empty, defaults to two directories below"),
        ("outdir_txt2img_grids", "Output directory for txt2img grids"),
        ("outdir_img2img_grids", "Output directory for img2img grids"),
    ),
    "Live previews": (
        ("live_previews_enable", "Show live previews of the created image"),
        ("show_progress_every_n_steps", "Live preview display period (steps; -1 = off)"),
        ("show_progress_type", "Live preview method"),
        ("live_preview_refresh_period", "Progressbar and preview update period (ms)"),
        ("show_progress_in_title", "Show generation progress in window title"),
    ),
    "Sampler parameters": (
        ("eta_ancestral", "Eta for k-diffusion samplers (ancestral and SDE noise multiplier)"),
        ("eta_ddim", "Eta for DDIM"),
        ("eta_noise_seed_delta", "Eta noise seed delta (ENSD)"),
        ("randn_source", "Random number generator source"),
        ("no_dpmpp_sde_batch_determinism", "Do not make DPM++ SDE deterministic across different batch sizes."),
        ("uni_pc_variant", "UniPC variant"),
        ("uni_pc_skip_type", "UniPC skip type"),
        ("uni_pc_order", "UniPC order"),
        ("uni_pc_lower_order_final", "UniPC lower order final"),
    ),
    "Stable Diffusion": (
        ("CLIP_stop_at_last_layers", "Clip skip"),
        ("sd_checkpoints_limit", "Maximum number of checkpoints loaded at the same time (0 = automatic)"),
        ("sd_vae", "SD VAE"),
        ("emphasis", "Emphasis mode"),
        ("comma_padding_backtrack", "Prompt word wrap length limit"),
        ("enable_prompt_comments", "Enable comments (# in prompts)"),
        ("extra_networks_default_multiplier", "Default multiplier for extra networks"),
    ),
    "User interface": (
        ("txt2img_default_sampler", "Default sampling method"),
        ("txt2img_default_steps", "Default sampling steps"),
        ("txt2img_default_cfg_scale", "Default CFG scale"),
    ),
    "Optimizations": (
        ("inference_backend", "Inference backend for the UNet, VAE and text encoder (auto: OpenVINO on a CPU for SD-size models)"),
        ("vae_tiling", "Decode and encode large images in tiles"),
        ("vae_tiling_min_pixels", "Tile images of more pixels than this (Automatic)"),
    ),
    "Upscaling": (
        ("ESRGAN_tile", "Tile size for ESRGAN upscalers (0 = no tiling)"),
        ("ESRGAN_tile_overlap", "Tile overlap for ESRGAN upscalers (low values = visible seam)"),
        ("SWIN_tile", "Tile size for SwinIR upscalers (0 = no tiling)"),
        ("SWIN_tile_overlap", "Tile overlap for SwinIR upscalers"),
        ("DAT_tile", "Tile size for DAT upscalers (0 = no tiling)"),
        ("DAT_tile_overlap", "Tile overlap for DAT upscalers"),
    ),
    "Server": (
        ("queue_max_waiting", "Jobs that may wait in the queue (more are refused until it shortens)"),
    ),
}
SLIDERS: Mapping[str, tuple[float, float, float]] = {
    "jpeg_quality": (1, 100, 1), "show_progress_every_n_steps": (-1, 32, 1), "eta_ancestral": (0, 1, 0.01),
    "eta_ddim": (0, 1, 0.01), "CLIP_stop_at_last_layers": (1, 12, 1), "txt2img_default_steps": (1, 150, 1),
    "txt2img_default_cfg_scale": (1, 30, 0.5), "comma_padding_backtrack": (0, 74, 1),
    "ESRGAN_tile": (0, 512, 16), "ESRGAN_tile_overlap": (0, 48, 1), "SWIN_tile": (0, 512, 16),
    "SWIN_tile_overlap": (0, 48, 1), "DAT_tile": (0, 512, 16), "DAT_tile_overlap": (0, 48, 1),
    "uni_pc_order": (1, 50, 1),
}
CHOICES: Mapping[str, tuple[str, ...]] = {
    "samples_format": ("png", "jpg", "webp"), "show_progress_type": ("Full", "Approx cheap"),
    "randn_source": ("CPU", "GPU"), "emphasis": ("Original", "No norm", "Ignore", "None"),
    "txt2img_default_sampler": sampler_names(),
    "inference_backend": ("auto", "torch", "openvino", "compile"), "vae_tiling": ("Automatic", "Always", "Never"),
    "uni_pc_variant": ("bh1", "bh2", "vary_coeff"), "uni_pc_skip_type": ("time_uniform", "time_quadratic", "logSNR"),
}
# Shown as a whole number where 0 means "automatic" (None in the options).
ZERO_IS_NONE = frozenset({"sd_checkpoints_limit"})


def to_display(name: str, value: Any) -> Any:
    return 0 if name in ZERO_IS_NONE and value is None else value


def option_changes(current: Options, values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the user changed, typed as the options expect (the browser sends floats for
    whole numbers and 0 for "automatic")."""
    defaults = {f.name: f.default for f in dataclasses.fields(Options)}
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name in ZERO_IS_NONE:
            value = None if not value else int(value)
        elif isinstance(defaults[name], int) and not isinstance(defaults[name], bool) and isinstance(value, float) \
                and value.is_integer():
            value = int(value)
        if value != getattr(current, name):
            changes[name] = value
    return changes


def section_elem_id(section: str) -> str:
    """A section's tab id in A1111's form, ``settings_<words joined by _>``."""
    return "settings_" + re.sub(r"[^a-z0-9]+", "_", section.lower()).strip("_")


def setting_elem_id(name: str) -> str:
    """A1111's ``setting_<key>``; the VAE also sits in the top row (A1111's quicksettings), which owns
    that id, so the copy here takes another one."""
    return "settings_page_sd_vae" if name == "sd_vae" else f"setting_{name}"


def _component(runtime: Runtime, name: str, label: str, value: Any):
    elem_id = setting_elem_id(name)
    if name == "sd_vae":
        return gr.Dropdown(vae_choices(runtime), value=value, label=label, elem_id=elem_id)
    if isinstance(value, bool):
        return gr.Checkbox(value, label=label, elem_id=elem_id)
    if name in CHOICES:
        return gr.Radio(list(CHOICES[name]), value=value, label=label, elem_id=elem_id) if len(CHOICES[name]) <= 4 \
            else gr.Dropdown(list(CHOICES[name]), value=value, label=label, elem_id=elem_id)
    if name in SLIDERS:
        low, high, step = SLIDERS[name]
        return gr.Slider(low, high, value=value, step=step, label=label, elem_id=elem_id)
    if isinstance(value, (int, float)) or name in ZERO_IS_NONE:
        return gr.Number(to_display(name, value), precision=0 if not isinstance(value, float) else None, label=label,
                         elem_id=elem_id)
    return gr.Textbox(value, label=label, elem_id=elem_id)


def build_settings_tab(page_load: PageLoad, runtime: Runtime) -> None:
    current = runtime.options.current
    components: dict[str, Any] = {}
    with gr.Row():
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_submit")
    message = gr.Markdown("", elem_id="settings_result")
    with gr.Tabs(elem_id="settings"):
        for section, entries in SECTIONS.items():
            with gr.Tab(section, elem_id=section_elem_id(section)):
                for name, label in entries:
                    components[name] = _component(runtime, name, label, getattr(current, name))

    def apply_clicked(values: dict) -> str:
        named = {name: values[component] for name, component in components.items()}
        try:
            changes = option_changes(runtime.options.current, named)
            if changes:
                runtime.update_options(changes)
        except (OptionsError, ValueError, TypeError) as error:
            return f"**Not applied:** {error}"
        if not changes:
            return "Nothing changed."
        return f"{len(changes)} setting(s) changed: {', '.join(sorted(changes))}. Saved to `{runtime.config.options_file}`."

    def current_values() -> dict:
        options = runtime.options.current
        updates = {components[name]: to_display(name, getattr(options, name)) for name in components}
        updates[components["sd_vae"]] = gr.update(choices=vae_choices(runtime), value=options.sd_vae)
        return updates

    apply.click(apply_clicked, inputs=set(components.values()), outputs=message)
    page_load.add(list(components.values()), current_values)
