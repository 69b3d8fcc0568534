"""A job's parameters, put together in one place for every entry point (page, API, command line).

The order is A1111's: the parameters' own defaults, then the settings that travel with each job
(clip skip, ENSD, noise source, SDE determinism, the sampler's eta), then the fields the caller
gives (a request's own field wins over a setting), then the settings a request overrides for
itself only (``override_settings``). Nothing else folds settings into a job; ``Runtime.submit``
then validates and resolves it once.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping

from modules.options import Options
from modules.params import Img2ImgParams, Txt2ImgParams
from modules.sampling.catalog import resolve_sampler
from modules.sampling.noise import RngSource

# Setting -> the params field it fills for each job (A1111 reads these settings while it samples).
SETTING_TO_PARAM = {
    "CLIP_stop_at_last_layers": "clip_skip", "eta_noise_seed_delta": "eta_noise_seed_delta",
    "randn_source": "rng", "no_dpmpp_sde_batch_determinism": "sde_batch_determinism",
    "sd_model_checkpoint": "checkpoint", "sd_vae": "vae",
}
# Settings a job follows only when a request overrides them: otherwise the job takes the default
# checkpoint and VAE as they are when it runs (``None``), so a change of default applies to queued jobs.
OVERRIDE_ONLY = frozenset({"sd_model_checkpoint", "sd_vae"})
# A1111's sampler knobs and the value at which they do nothing (s_tmax 0 means "no upper bound").
NEUTRAL_KNOBS = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0}
KNOB_FIELDS = frozenset({"eta", *NEUTRAL_KNOBS})
# A1111's eta settings: DDIM's ("eta_ddim", neutral 0) and the ancestral/SDE samplers' ("eta_ancestral", neutral 1).
DDIM_LIKE = frozenset({"DDIM"})
# A1111's UniPC settings, as the knobs of our UniPC (``sample_unipc`` and its walk's spacing).
UNIPC_SETTINGS = {"uni_pc_order": "order", "uni_pc_variant": "variant", "uni_pc_lower_order_final": "lower_order_final",
                  "uni_pc_skip_type": "skip_type"}


def setting_value(key: str, options: Options) -> Any:
    """The params value a setting gives a job."""
    value = getattr(options, key)
    if key == "randn_source":
        return RngSource.from_label(value)
    if key == "no_dpmpp_sde_batch_determinism":
        return not value
    return value


def sampler_knobs(sampler_name: str, given: Mapping[str, Any], options: Options) -> tuple[tuple[str, Any], ...]:
    """eta and the churn knobs the sampler takes (A1111 passes each knob only to a sampler whose
    function accepts it, and clients such as webuiapi send all of them every time): a given eta
    wins over the eta setting; a knob at its neutral value is left out."""
    try:
        sampler, _ = resolve_sampler(sampler_name)
    except ValueError:
        return ()  # validate() names the sampler
    knobs: dict[str, Any] = {}
    if "eta" in sampler.knobs:
        is_ddim = sampler.name in DDIM_LIKE
        eta = given.get("eta")
        if eta is None:
            eta = options.eta_ddim if is_ddim else options.eta_ancestral
        if eta != (0.0 if is_ddim else 1.0):
            knobs["eta"] = eta
    for name, neutral in NEUTRAL_KNOBS.items():
        value = given.get(name)
        if name in sampler.knobs and value is not None and value != neutral:
            knobs[name] = value
    defaults = Options()
    for key, name in UNIPC_SETTINGS.items():
        if name in sampler.knobs and getattr(options, key) != getattr(defaults, key):
            knobs[name] = getattr(options, key)
    return tuple(knobs.items())


def job_params(
    kind: str, given: Mapping[str, Any], options: Options, overridden: Collection[str] = (),
) -> Txt2ImgParams:
    """The parameters of one txt2img or img2img job (not yet validated).

    ``given``: params fields the caller sets, plus the sampler knobs by A1111's names (``eta``,
    ``s_churn``, ...). ``options``: the settings for this job, with the request's overrides already
    applied; ``overridden``: the setting keys the request overrides (they win over ``given``).
    """
    params_type = Img2ImgParams if kind == "img2img" else Txt2ImgParams
    from_settings = {param: setting_value(key, options) for key, param in SETTING_TO_PARAM.items()
                     if key not in OVERRIDE_ONLY}
    overrides = {SETTING_TO_PARAM[key]: setting_value(key, options) for key in overridden if key in SETTING_TO_PARAM}
    fields = {**from_settings, **{k: v for k, v in given.items() if k not in KNOB_FIELDS}, **overrides}
    sampler_name = fields.get("sampler_name", params_type.sampler_name)
    if "sampler_knobs" not in given:
        fields["sampler_knobs"] = sampler_knobs(sampler_name, given, options)
    return params_type(**fields)
