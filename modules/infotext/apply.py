"""An infotext's fields applied onto generation parameters (A1111's "paste" / ↙️ button).

Only what the text states is changed; everything else keeps the base's value.
"Model hash"/"Model" are not applied (A1111's default "disable_weights_auto_swap"):
the caller decides whether to switch checkpoints.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

from modules.params import INPAINT_FILL_LABELS, Img2ImgParams, Txt2ImgParams
from modules.sampling.catalog import resolve_sampler
from modules.sampling.noise import RngSource

# infotext key -> (params field, converter)
_SIMPLE: Mapping[str, tuple[str, Callable[[str], object]]] = {
    "Prompt": ("prompt", str), "Negative prompt": ("negative_prompt", str), "Steps": ("steps", int),
    "Schedule type": ("scheduler", str), "CFG scale": ("cfg_scale", float), "Seed": ("seed", int),
    "Size-1": ("width", int), "Size-2": ("height", int), "Variation seed": ("subseed", int),
    "Variation seed strength": ("subseed_strength", float), "Seed resize from-1": ("seed_resize_from_w", int),
    "Seed resize from-2": ("seed_resize_from_h", int), "Clip skip": ("clip_skip", int),
    "ENSD": ("eta_noise_seed_delta", int), "RNG": ("rng", RngSource.from_label),
    "Tiling": ("tiling", lambda v: v == "True"), "Denoising strength": ("denoising_strength", float),
    "Hires upscale": ("hr_scale", float), "Hires steps": ("hr_second_pass_steps", int),
    "Hires upscaler": ("hr_upscaler", str), "Hires resize-1": ("hr_resize_x", int),
    "Hires resize-2": ("hr_resize_y", int),
}
_IMG2IMG: Mapping[str, tuple[str, Callable[[str], object]]] = {
    "Mask blur": ("mask_blur", int), "Masked area padding": ("inpaint_full_res_padding", int),
    "Inpaint area": ("inpaint_full_res", lambda v: v == "Only masked"),
    "Mask mode": ("inpainting_mask_invert", lambda v: v == "Inpaint not masked"),
    "Masked content": ("inpainting_fill", lambda v: {label: fill for fill, label in INPAINT_FILL_LABELS.items()}[v]),
    "Noise multiplier": ("initial_noise_multiplier", float),
}
# Sampler knobs A1111 writes when they differ from the sampler's default, by their infotext names.
_KNOBS = {"Eta": "eta", "Eta DDIM": "eta", "Sigma churn": "s_churn", "Sigma tmin": "s_tmin", "Sigma tmax": "s_tmax",
          "Sigma noise": "s_noise"}
KNOB_NAMES = frozenset(_KNOBS.values())
_HIRES_KEYS = ("Hires upscale", "Hires resize", "Hires upscaler", "Hires steps")
# What A1111's reader assumes for a parameters line that omits these keys (A1111 writes them
# only when they differ): an infotext without "RNG" was made with GPU noise.
_OMITTED_MEANS = {"RNG": "GPU", "Clip skip": "1"}


def infotext_to_params(fields: Mapping[str, str], base: Txt2ImgParams) -> Txt2ImgParams:
    """``base`` with every field the infotext states; a value that cannot be read raises ValueError naming it."""
    changes = infotext_changes(fields, isinstance(base, Img2ImgParams))
    knobs = {name: changes.pop(name) for name in KNOB_NAMES & set(changes)}
    if knobs:
        changes["sampler_knobs"] = tuple({**dict(base.sampler_knobs), **knobs}.items())
    return dataclasses.replace(base, **changes)


def infotext_changes(fields: Mapping[str, str], is_img2img: bool) -> dict[str, object]:
    """The params fields an infotext states, by name, and the sampler knobs it states by their own
    names (``eta``, ``s_churn``, ...); ValueError names a field that cannot be read."""
    table = {**_SIMPLE, **(_IMG2IMG if is_img2img else {})}
    if "Steps" in fields:  # a parameters line was present
        fields = {**_OMITTED_MEANS, **fields}
    changes: dict[str, object] = {}
    for key, (name, convert) in table.items():
        if key in fields:
            try:
                changes[name] = convert(fields[key])
            except (ValueError, KeyError) as error:
                raise ValueError(f"infotext field {key!r}: cannot read {fields[key]!r}") from error
    for key, name in _KNOBS.items():
        if key in fields:
            try:
                changes[name] = float(fields[key])
            except ValueError as error:
                raise ValueError(f"infotext field {key!r}: cannot read {fields[key]!r}") from error
    if "Sampler" in fields:
        sampler, schedule = resolve_sampler(fields["Sampler"])  # "DPM++ 2M Karras" = sampler + schedule
        changes["sampler_name"] = sampler.name
        if schedule is not None and "Schedule type" not in fields:
            changes["scheduler"] = schedule.label
    if any(key in fields for key in _HIRES_KEYS) and not is_img2img:
        changes["enable_hr"] = True
    return changes
