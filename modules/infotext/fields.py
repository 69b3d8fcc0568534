"""The one table of infotext fields: each entry says how a field is written from a job's parameters
and how it is read back into them, so writing (``modules/pipeline``) and reading (``apply.py``,
A1111's paste) cannot drift apart. Entries are in A1111's key order (a1111-conventions §2);
``None`` from a writer leaves the field out, as A1111 omits default values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from modules.params import INPAINT_FILL_LABELS, Img2ImgParams, InpaintFill, Txt2ImgParams
from modules.sampling.catalog import resolve_sampler, resolve_schedule
from modules.sampling.noise import RngSource

VERSION = "v0.1.0"  # written as the last field, as A1111 writes its release tag


@dataclass(frozen=True)
class ImageContext:
    """What an image's infotext says beyond its parameters: its own seeds and the model files."""

    seed: int
    subseed: int
    model_hash: str | None = None
    model_name: str | None = None
    vae_hash: str | None = None
    vae_name: str | None = None


Writer = Callable[[Txt2ImgParams, ImageContext], object]
Reader = Callable[[Mapping[str, str]], dict[str, object]]


@dataclass(frozen=True)
class InfotextField:
    key: str
    write: Writer
    read: Reader | None = None  # None: informational only (hashes, Version), never applied
    section: str = "common"  # "common", "hires" (txt2img's second pass) or "img2img"


def _value(key: str, name: str, convert: Callable[[str], object]) -> Reader:
    def read(fields: Mapping[str, str]) -> dict[str, object]:
        return {name: convert(fields[key])} if key in fields else {}
    return read


def _pair(key: str, first: str, second: str) -> Reader:
    """A ``WxH`` field, read from the parser's ``Key-1``/``Key-2`` split."""
    def read(fields: Mapping[str, str]) -> dict[str, object]:
        return {first: int(fields[f"{key}-1"]), second: int(fields[f"{key}-2"])} if f"{key}-1" in fields else {}
    return read


def _sampler(fields: Mapping[str, str]) -> dict[str, object]:
    """A1111 also writes "DPM++ 2M Karras" (sampler + schedule in one name) in older files."""
    if "Sampler" not in fields:
        return {}
    sampler, schedule = resolve_sampler(fields["Sampler"])
    changes: dict[str, object] = {"sampler_name": sampler.name}
    if schedule is not None and "Schedule type" not in fields:
        changes["scheduler"] = schedule.label
    return changes


def schedule_label(params: Txt2ImgParams) -> str:
    """What A1111 writes as "Schedule type": the chosen one, else the sampler's default, else Automatic."""
    sampler, named = resolve_sampler(params.sampler_name)
    if params.scheduler != "Automatic":
        return resolve_schedule(params.scheduler).label
    if named is not None:
        return named.label
    return resolve_schedule(sampler.default_schedule).label if sampler.default_schedule else "Automatic"


def uses_denoising(params: Txt2ImgParams) -> bool:
    """img2img always denoises from an image; txt2img only in the hires pass."""
    return params.enable_hr or isinstance(params, Img2ImgParams)


def _variation(p: Txt2ImgParams) -> bool:
    return p.subseed_strength > 0


def _seed_resize(p: Txt2ImgParams) -> bool:
    return p.seed_resize_from_w > 0 and p.seed_resize_from_h > 0


def _hires_resized(p: Txt2ImgParams) -> bool:
    return bool(p.hr_resize_x or p.hr_resize_y)


def _hires_size(p: Txt2ImgParams) -> str:
    width, height = p.hires_size()
    return f"{width}x{height}"


_FILLS_BY_LABEL = {label: fill for fill, label in INPAINT_FILL_LABELS.items()}

FIELDS: tuple[InfotextField, ...] = (
    InfotextField("Steps", lambda p, c: p.steps, _value("Steps", "steps", int)),
    InfotextField("Sampler", lambda p, c: resolve_sampler(p.sampler_name)[0].name, _sampler),
    InfotextField("Schedule type", lambda p, c: schedule_label(p), _value("Schedule type", "scheduler", str)),
    InfotextField("CFG scale", lambda p, c: p.cfg_scale, _value("CFG scale", "cfg_scale", float)),
    InfotextField("Seed", lambda p, c: c.seed, _value("Seed", "seed", int)),
    InfotextField("Size", lambda p, c: f"{p.width}x{p.height}", _pair("Size", "width", "height")),
    InfotextField("Model hash", lambda p, c: c.model_hash),
    InfotextField("Model", lambda p, c: c.model_name),  # not applied: A1111's "disable_weights_auto_swap"
    InfotextField("VAE hash", lambda p, c: c.vae_hash),
    InfotextField("VAE", lambda p, c: c.vae_name),
    InfotextField("Variation seed", lambda p, c: c.subseed if _variation(p) else None,
                  _value("Variation seed", "subseed", int)),
    InfotextField("Variation seed strength", lambda p, c: p.subseed_strength if _variation(p) else None,
                  _value("Variation seed strength", "subseed_strength", float)),
    InfotextField("Seed resize from",
                  lambda p, c: f"{p.seed_resize_from_w}x{p.seed_resize_from_h}" if _seed_resize(p) else None,
                  _pair("Seed resize from", "seed_resize_from_w", "seed_resize_from_h")),
    InfotextField("Denoising strength", lambda p, c: p.denoising_strength if uses_denoising(p) else None,
                  _value("Denoising strength", "denoising_strength", float)),
    InfotextField("Clip skip", lambda p, c: p.clip_skip if p.clip_skip and p.clip_skip > 1 else None,
                  _value("Clip skip", "clip_skip", int)),
    InfotextField("ENSD", lambda p, c: p.eta_noise_seed_delta if p.eta_noise_seed_delta and
                  resolve_sampler(p.sampler_name)[0].uses_ensd else None,
                  _value("ENSD", "eta_noise_seed_delta", int)),
    InfotextField("RNG", lambda p, c: p.rng.value if p.rng.value != "GPU" else None,
                  _value("RNG", "rng", RngSource.from_label)),
    InfotextField("Tiling", lambda p, c: "True" if p.tiling else None, _value("Tiling", "tiling", lambda v: v == "True")),
    # txt2img's hires pass (A1111's extra_generation_params, after the main fields)
    InfotextField("Hires upscale", lambda p, c: None if _hires_resized(p) else p.hr_scale,
                  _value("Hires upscale", "hr_scale", float), "hires"),
    InfotextField("Hires resize", lambda p, c: _hires_size(p) if _hires_resized(p) else None,
                  _pair("Hires resize", "hr_resize_x", "hr_resize_y"), "hires"),
    InfotextField("Hires steps", lambda p, c: p.hr_second_pass_steps or None,
                  _value("Hires steps", "hr_second_pass_steps", int), "hires"),
    InfotextField("Hires upscaler", lambda p, c: p.hr_upscaler, _value("Hires upscaler", "hr_upscaler", str), "hires"),
    # img2img's (inpainting's only with a mask), after the common fields
    InfotextField("Mask blur", lambda p, c: p.mask_blur if p.mask is not None else None,
                  _value("Mask blur", "mask_blur", int), "img2img"),
    InfotextField("Mask mode", lambda p, c: "Inpaint not masked" if p.mask is not None and p.inpainting_mask_invert
                  else None, _value("Mask mode", "inpainting_mask_invert", lambda v: v == "Inpaint not masked"), "img2img"),
    InfotextField("Masked content", lambda p, c: INPAINT_FILL_LABELS[p.inpainting_fill]
                  if p.mask is not None and p.inpainting_fill != InpaintFill.ORIGINAL else None,
                  _value("Masked content", "inpainting_fill", lambda v: _FILLS_BY_LABEL[v]), "img2img"),
    InfotextField("Inpaint area", lambda p, c: "Only masked" if p.mask is not None and p.inpaint_full_res else None,
                  _value("Inpaint area", "inpaint_full_res", lambda v: v == "Only masked"), "img2img"),
    InfotextField("Masked area padding", lambda p, c: p.inpaint_full_res_padding
                  if p.mask is not None and p.inpaint_full_res else None,
                  _value("Masked area padding", "inpaint_full_res_padding", int), "img2img"),
    InfotextField("Noise multiplier", lambda p, c: p.initial_noise_multiplier if p.initial_noise_multiplier != 1.0
                  else None, _value("Noise multiplier", "initial_noise_multiplier", float), "img2img"),
)
# The sampler knobs' infotext names. A1111 writes a knob only when it differs from the sampler's
# default (its ``Sampler.initialize``): eta as "Eta" for k-diffusion samplers, "Eta DDIM" for DDIM's
# timestep walk; a job's ``sampler_knobs`` never holds a knob at its neutral value.
KNOB_KEYS = {"s_churn": "Sigma churn", "s_tmin": "Sigma tmin", "s_tmax": "Sigma tmax", "s_noise": "Sigma noise"}
ETA_KEYS = ("Eta", "Eta DDIM")


def written_knobs(sampler_knobs: tuple[tuple[str, object], ...], is_ddim: bool) -> dict[str, object]:
    """The job's eta and churn knobs as infotext fields. UniPC's (its order, variant, skip type,
    lower order final: A1111 settings) are not written, as A1111's ``create_infotext`` writes
    none of them."""
    return {(ETA_KEYS[is_ddim] if name == "eta" else KNOB_KEYS[name]): value for name, value in sampler_knobs
            if name == "eta" or name in KNOB_KEYS}


def read_knobs(fields: Mapping[str, str]) -> dict[str, float]:
    """The sampler knobs an infotext states, by their own names (``eta``, ``s_churn``, ...)."""
    names = {**{key: "eta" for key in ETA_KEYS}, **{key: name for name, key in KNOB_KEYS.items()}}
    knobs = {}
    for key, name in names.items():
        if key in fields:
            try:
                knobs[name] = float(fields[key])
            except ValueError as error:
                raise ValueError(f"infotext field {key!r}: cannot read {fields[key]!r}") from error
    return knobs


HIRES_KEYS = tuple(f.key for f in FIELDS if f.section == "hires")
# What A1111's reader assumes for a parameters line that omits these keys (A1111 writes them only
# when they differ): an infotext without "RNG" was made with GPU noise.
OMITTED_MEANS = {"RNG": "GPU", "Clip skip": "1"}


def written(params: Txt2ImgParams, context: ImageContext, section: str) -> dict[str, object]:
    """The fields of one section, in order; omitted ones left out."""
    if section == "hires" and not params.enable_hr:
        return {}
    values = {f.key: f.write(params, context) for f in FIELDS if f.section == section}
    return {key: value for key, value in values.items() if value is not None}


def read_back(fields: Mapping[str, str], is_img2img: bool) -> dict[str, object]:
    """The params fields the infotext states; ValueError names a field that cannot be read."""
    if "Steps" in fields:  # a parameters line was present
        fields = {**OMITTED_MEANS, **fields}
    sections = {"common", "img2img"} if is_img2img else {"common", "hires"}
    # The prompts are the text above the parameters line (``format_infotext`` writes them there).
    changes: dict[str, object] = {name: fields[key] for key, name in (("Prompt", "prompt"),
                                                                       ("Negative prompt", "negative_prompt"))
                                  if key in fields}
    for entry in FIELDS:
        if entry.read is None or entry.section not in sections:
            continue
        try:
            changes.update(entry.read(fields))
        except (ValueError, KeyError) as error:
            raise ValueError(f"infotext field {entry.key!r}: cannot read {fields.get(entry.key)!r}") from error
    if not is_img2img and any(key in fields for key in HIRES_KEYS):
        changes["enable_hr"] = True
    return changes
