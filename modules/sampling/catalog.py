"""The samplers and schedules users can pick, under AUTOMATIC1111's names.

Names, aliases, default schedules and flags follow A1111 v1.10
(``sd_samplers_kdiffusion``, ``sd_samplers_timesteps``, ``sd_samplers_lcm``,
``sd_schedulers``), in A1111's UI order. "Automatic" resolves to the sampler's
default schedule, or to the model's own ladder ("Uniform") when it has none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from modules.sampling import samplers as s
from modules.sampling import schedules as sch
from modules.sampling import timestep_walk as walk

# The sampler knob that spaces UniPC's timestep walk (A1111's "UniPC skip type").
WALK_SPACING = "skip_type"

SamplerFunction = Callable[..., Tensor]


# -- schedules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleOptions:
    """A1111's schedule settings: sigma range and rho overrides (None = the model's/schedule's
    own), and the Beta schedule's shape parameters."""

    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float | None = None
    beta_alpha: float = sch.BETA_SCHEDULE_ALPHA
    beta_beta: float = sch.BETA_SCHEDULE_BETA


ScheduleBuilder = Callable[[int, Tensor, ScheduleOptions], Tensor]


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule type: A1111's internal name, UI label, aliases and ladder builder
    (``build(steps, model_sigmas, options)``; None for Automatic)."""

    name: str
    label: str
    aliases: tuple[str, ...] = ()
    build: ScheduleBuilder | None = None

    @property
    def is_automatic(self) -> bool:
        return self.build is None


def _range(model_sigmas: Tensor, options: ScheduleOptions) -> tuple[float, float]:
    low = options.sigma_min if options.sigma_min is not None else float(model_sigmas[0])
    high = options.sigma_max if options.sigma_max is not None else float(model_sigmas[-1])
    return low, high


def _rho(options: ScheduleOptions, default: float) -> float:
    return options.rho if options.rho is not None else default


def _ranged(function: Callable[..., Tensor], with_table: bool = False) -> ScheduleBuilder:
    """Adapts a ladder function of (steps, [model_sigmas,] sigma_min, sigma_max)."""

    def build(steps: int, model_sigmas: Tensor, options: ScheduleOptions) -> Tensor:
        table = (model_sigmas,) if with_table else ()
        return function(steps, *table, *_range(model_sigmas, options))

    return build


def _karras(steps: int, model_sigmas: Tensor, options: ScheduleOptions) -> Tensor:
    return sch.karras_sigmas(steps, *_range(model_sigmas, options), rho=_rho(options, sch.KARRAS_RHO))


def _polyexponential(steps: int, model_sigmas: Tensor, options: ScheduleOptions) -> Tensor:
    return sch.polyexponential_sigmas(steps, *_range(model_sigmas, options), rho=_rho(options, 1.0))


def _beta(steps: int, model_sigmas: Tensor, options: ScheduleOptions) -> Tensor:
    return sch.beta_sigmas(steps, *_range(model_sigmas, options), options.beta_alpha, options.beta_beta)


def _table_only(function: Callable[[int, Tensor], Tensor]) -> ScheduleBuilder:
    return lambda steps, model_sigmas, options: function(steps, model_sigmas)


SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec("automatic", "Automatic"),
    ScheduleSpec("uniform", "Uniform", build=_table_only(sch.uniform_sigmas)),
    ScheduleSpec("karras", "Karras", build=_karras),
    ScheduleSpec("exponential", "Exponential", build=_ranged(sch.exponential_sigmas)),
    ScheduleSpec("polyexponential", "Polyexponential", build=_polyexponential),
    ScheduleSpec("sgm_uniform", "SGM Uniform", ("SGMUniform",), _ranged(sch.sgm_uniform_sigmas, with_table=True)),
    ScheduleSpec("kl_optimal", "KL Optimal", build=_ranged(sch.kl_optimal_sigmas)),
    ScheduleSpec("align_your_steps", "Align Your Steps", build=lambda steps, _table, _options: sch.align_your_steps_sigmas(steps)),
    ScheduleSpec("simple", "Simple", build=_table_only(sch.simple_sigmas)),
    ScheduleSpec("normal", "Normal", build=_ranged(sch.normal_sigmas, with_table=True)),
    ScheduleSpec("ddim", "DDIM", build=_table_only(sch.ddim_sigmas)),
    ScheduleSpec("beta", "Beta", build=_beta),
)


# -- samplers --------------------------------------------------------------------------------------

_CHURN = ("s_churn", "s_tmin", "s_tmax", "s_noise")
_ANCESTRAL = ("eta", "s_noise")


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler as A1111 lists it.

    ``default_schedule`` is the schedule name "Automatic" means for it (None: no
    default, A1111 then uses the model's own ladder and writes "Automatic" in the
    infotext). ``knobs`` are the keyword arguments ``function`` accepts besides
    ``noise`` and ``callback``; ``fixed_knobs`` are passed on every call.
    ``ancestral`` / ``sde``: adds fresh noise every step with its default eta.
    ``second_order``: A1111's flag for samplers that evaluate the model twice per step.
    ``uses_ensd``: A1111 records the eta noise seed delta for it.
    ``timestep_walk``: A1111 runs it in timestep space (DDIM, PLMS, UniPC; ``timestep_walk.py``):
    under Automatic it walks A1111's timesteps instead of a ladder to 0, starts from unscaled
    noise as the variance-preserving latent (x = noise * sqrt(1 + sigma_max^2) here,
    ``initial_noise_scale``) and returns the variance-preserving latent at its last level
    (``run_sampler``). ``ends_at_sigma_min``: it returns the latent at
    the ladder's last non-zero level rather than at 0 (DPM fast, DPM adaptive).
    ``lcm``: A1111 runs it over the LCM's own 50-timestep table with the LCM
    denoiser (``schedules.lcm_model_sigmas``, ``denoiser.LCMDenoiser``): its
    schedules are built from that table instead of the model's.
    """

    name: str
    aliases: tuple[str, ...]
    function: SamplerFunction
    default_schedule: str | None = None
    knobs: tuple[str, ...] = ()
    ancestral: bool = False
    sde: bool = False
    second_order: bool = False
    discard_penultimate_sigma: bool = False
    uses_ensd: bool = False
    timestep_walk: str | None = None
    ends_at_sigma_min: bool = False
    lcm: bool = False
    fixed_knobs: tuple[tuple[str, Any], ...] = ()  # (name, value) pairs passed on every call

    def __call__(self, denoiser: s.Denoiser, x: Tensor, sigmas: Tensor, **kwargs: Any) -> Tensor:
        """Runs the sampler: ``noise=`` and ``callback=`` as for the function, then any of ``knobs``."""
        fixed = dict(self.fixed_knobs)
        clash = sorted(set(kwargs) & set(fixed))
        if clash:
            raise ValueError(f"{self.name}: {', '.join(clash)} is fixed for this sampler")
        return self.function(denoiser, x, sigmas, **fixed, **kwargs)

    @property
    def vp_initial_noise(self) -> bool:
        return self.timestep_walk is not None


# Keyword arguments the pipeline passes, never the user: DPM fast's and adaptive's solve range
# in txt2img (``sampling_run.txt2img_solve_range``).
PIPELINE_KEYWORDS = ("sigma_range",)
_ADAPTIVE = ("eta", "s_noise", "order", "rtol", "atol", "h_init", "pcoeff", "icoeff", "dcoeff", "accept_safety")
_MIDPOINT = (("solver_type", "midpoint"),)
_HEUN = (("solver_type", "heun"),)

SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec("DPM++ 2M", ("k_dpmpp_2m",), s.sample_dpmpp_2m, "karras"),
    SamplerSpec(
        "DPM++ SDE", ("k_dpmpp_sde",), s.sample_dpmpp_sde, "karras", ("eta", "s_noise", "r"), sde=True, second_order=True
    ),
    SamplerSpec(
        "DPM++ 2M SDE", ("k_dpmpp_2m_sde",), s.sample_dpmpp_2m_sde, "exponential", _ANCESTRAL, sde=True, fixed_knobs=_MIDPOINT
    ),
    SamplerSpec(
        "DPM++ 2M SDE Heun",
        ("k_dpmpp_2m_sde_heun",),
        s.sample_dpmpp_2m_sde,
        "exponential",
        _ANCESTRAL,
        sde=True,
        fixed_knobs=_HEUN,
    ),
    SamplerSpec(
        "DPM++ 2S a",
        ("k_dpmpp_2s_a",),
        s.sample_dpmpp_2s_ancestral,
        "karras",
        _ANCESTRAL,
        ancestral=True,
        second_order=True,
        uses_ensd=True,
    ),
    SamplerSpec(
        "DPM++ 3M SDE",
        ("k_dpmpp_3m_sde",),
        s.sample_dpmpp_3m_sde,
        "exponential",
        _ANCESTRAL,
        sde=True,
        discard_penultimate_sigma=True,
    ),
    SamplerSpec(
        "Euler a", ("k_euler_a", "k_euler_ancestral"), s.sample_euler_ancestral, None, _ANCESTRAL, ancestral=True, uses_ensd=True
    ),
    SamplerSpec("Euler", ("k_euler",), s.sample_euler, None, _CHURN),
    SamplerSpec("LMS", ("k_lms",), s.sample_lms, None, ("order",)),
    SamplerSpec("Heun", ("k_heun",), s.sample_heun, None, _CHURN, second_order=True),
    SamplerSpec("DPM2", ("k_dpm_2",), s.sample_dpm_2, "karras", _CHURN, second_order=True, discard_penultimate_sigma=True),
    SamplerSpec(
        "DPM2 a",
        ("k_dpm_2_a",),
        s.sample_dpm_2_ancestral,
        "karras",
        _ANCESTRAL,
        ancestral=True,
        second_order=True,
        discard_penultimate_sigma=True,
        uses_ensd=True,
    ),
    SamplerSpec(
        "DPM fast", ("k_dpm_fast",), s.sample_dpm_fast, None, _ANCESTRAL, ancestral=True, uses_ensd=True, ends_at_sigma_min=True
    ),
    SamplerSpec(
        "DPM adaptive", ("k_dpm_ad",), s.sample_dpm_adaptive, None, _ADAPTIVE, ancestral=True, uses_ensd=True, ends_at_sigma_min=True
    ),
    SamplerSpec("Restart", ("restart",), s.sample_restart, "karras", ("s_noise",), second_order=True),
    # A1111's timestep samplers have no default schedule (their Automatic is their own walk).
    SamplerSpec("DDIM", ("ddim",), s.sample_ddim, None, ("eta",), timestep_walk=walk.DDIM_WALK),
    SamplerSpec("PLMS", ("plms",), s.sample_plms, None, timestep_walk=walk.DDIM_WALK),
    SamplerSpec(
        "UniPC", ("unipc",), s.sample_unipc, None, ("order", "variant", "lower_order_final", WALK_SPACING),
        timestep_walk=walk.UNIPC_WALK,
    ),
    SamplerSpec("LCM", ("k_lcm",), s.sample_lcm, lcm=True),
)


# -- lookup ----------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _index(entries: tuple[Any, ...], names: Callable[[Any], tuple[str, ...]]) -> Mapping[str, Any]:
    return MappingProxyType({_key(alias): entry for entry in entries for alias in names(entry)})


_SAMPLER_INDEX = _index(SAMPLERS, lambda spec: (spec.name, *spec.aliases))
_SCHEDULE_INDEX = _index(SCHEDULES, lambda spec: (spec.name, spec.label, *spec.aliases))
_LONGEST_SCHEDULE_LABEL = max(len(spec.label.split()) for spec in SCHEDULES)


def sampler_names() -> tuple[str, ...]:
    """The UI names, in A1111's order."""
    return tuple(spec.name for spec in SAMPLERS)


def schedule_labels() -> tuple[str, ...]:
    """The UI labels, in A1111's order."""
    return tuple(spec.label for spec in SCHEDULES)


def resolve_schedule(name: str) -> ScheduleSpec:
    """A schedule by label, internal name or alias, ignoring case ("Karras", "karras", "SGMUniform")."""
    spec = _SCHEDULE_INDEX.get(_key(name)) if isinstance(name, str) else None
    if spec is None:
        valid = ", ".join(f"{spec.label} ({spec.name})" for spec in SCHEDULES)
        raise ValueError(f"Schedule type: unknown schedule {name!r}; valid schedules: {valid}")
    return spec


def resolve_sampler(name: str) -> tuple[SamplerSpec, ScheduleSpec | None]:
    """A sampler by UI name or alias, ignoring case; a trailing schedule is split off, as A1111
    accepts old names: "DPM++ 2M Karras" -> (DPM++ 2M, Karras). The schedule is None when the
    name carries none."""
    key = _key(name) if isinstance(name, str) else ""
    if key in _SAMPLER_INDEX:
        return _SAMPLER_INDEX[key], None
    words = key.split(" ")
    for count in range(1, min(_LONGEST_SCHEDULE_LABEL, len(words) - 1) + 1):
        head, tail = " ".join(words[:-count]), " ".join(words[-count:])
        if head in _SAMPLER_INDEX and tail in _SCHEDULE_INDEX:
            return _SAMPLER_INDEX[head], _SCHEDULE_INDEX[tail]
    valid = ", ".join(f"{spec.name} ({', '.join(spec.aliases)})" for spec in SAMPLERS)
    raise ValueError(
        f"Sampler: unknown sampler {name!r}; valid samplers (aliases in brackets): {valid}. "
        f"A schedule may follow the name, e.g. 'DPM++ 2M Karras'"
    )


def effective_schedule(sampler: SamplerSpec, schedule: ScheduleSpec | None) -> ScheduleSpec:
    """What the schedule choice means for this sampler: Automatic (or none) becomes the
    sampler's default, or the model's own ladder ("uniform") when it has none."""
    if schedule is not None and not schedule.is_automatic:
        return schedule
    return resolve_schedule(sampler.default_schedule or "uniform")


def walk_spacing(knobs: Mapping[str, Any]) -> str:
    """UniPC's skip type among a job's sampler knobs: it shapes the walk (``sampler_sigmas``,
    ``img2img_start``), not the steps, so ``run_sampler`` does not pass it on."""
    return knobs.get(WALK_SPACING, "time_uniform")


def uses_timestep_walk(sampler: SamplerSpec, schedule: ScheduleSpec | None) -> bool:
    """Whether the sampler walks A1111's timesteps: a timestep sampler under Automatic. (A1111
    ignores the schedule for these three and writes none in the infotext; here a schedule picked
    explicitly gives them that sigma ladder down to 0 instead.)"""
    return sampler.timestep_walk is not None and (schedule is None or schedule.is_automatic)


def sampler_sigmas(
    sampler: SamplerSpec,
    schedule: ScheduleSpec | None,
    steps: int,
    model_sigmas: Tensor,
    options: ScheduleOptions = ScheduleOptions(),
    *,
    always_discard_penultimate: bool = False,
    skip_type: str = "time_uniform",
) -> Tensor:
    """The ladder a sampler walks for ``steps`` steps: ``steps`` sigmas and a final 0, or for
    DDIM, PLMS and UniPC under Automatic A1111's timestep walk (``timestep_walk.txt2img_walk``).

    For LCM the model's table is first narrowed to the LCM's 50 timesteps, as A1111 does.

    Samplers flagged ``discard_penultimate_sigma`` (DPM2, DPM2 a, DPM++ 3M SDE),
    or all of them with A1111's "always discard next-to-last sigma" setting, get a
    ladder built for steps + 1 with its next-to-last level removed, as A1111 does.
    """
    discard = sampler.discard_penultimate_sigma or always_discard_penultimate
    if uses_timestep_walk(sampler, schedule):
        assert sampler.timestep_walk is not None
        return walk.txt2img_walk(sampler.timestep_walk, steps, model_sigmas, discard, skip_type)
    builder = effective_schedule(sampler, schedule).build
    assert builder is not None  # effective_schedule never returns Automatic
    if sampler.lcm:
        model_sigmas = sch.lcm_model_sigmas(model_sigmas)
    ladder = builder(steps + 1 if discard else steps, model_sigmas, options)
    return torch.cat([ladder[:-2], ladder[-1:]]) if discard else ladder


@dataclass(frozen=True)
class Img2ImgSteps:
    """A1111's ``setup_img2img_steps``: the step count the ladder (or the timesteps) is built
    for, and t_enc, how many of its steps img2img keeps."""

    ladder_steps: int
    t_enc: int

    @classmethod
    def of(cls, steps: int, strength: float, *, fixed: bool = False) -> "Img2ImgSteps":
        """img2img: the ``steps`` ladder, t_enc = int(min(strength, 0.999) * steps). ``fixed`` (the
        hires pass, which A1111 always runs so, and its "img2img_fix_steps" setting): a ladder for
        int(steps / min(strength, 0.999)) steps, t_enc = steps - 1, so that about ``steps`` are
        taken whatever the strength. At strength 0 A1111 builds no ladder (its k-diffusion samplers
        return the image unchanged, its timestep samplers fail): ladder_steps 0, nothing to walk."""
        if not fixed:
            return cls(steps, int(min(strength, 0.999) * steps))
        if strength <= 0:
            return cls(0, 0)
        return cls(int(steps / min(strength, 0.999)), steps - 1)


def img2img_start(
    sampler: SamplerSpec, schedule: ScheduleSpec | None, full_ladder: Tensor, cut: Img2ImgSteps,
    model_sigmas: Tensor, *, always_discard_penultimate: bool = False, skip_type: str = "time_uniform",
) -> walk.WalkStart:
    """Where img2img starts, as A1111 cuts it: on a sigma ladder built for ``cut.ladder_steps``,
    ``full_ladder[ladder_steps - t_enc - 1:]`` (t_enc + 1 steps, so even strength 0 takes one step
    at the smallest sigma), the init latent noised to its first level; for a timestep walk,
    ``timestep_walk.img2img_walk``."""
    if uses_timestep_walk(sampler, schedule):
        assert sampler.timestep_walk is not None
        discard = sampler.discard_penultimate_sigma or always_discard_penultimate
        return walk.img2img_walk(sampler.timestep_walk, cut.ladder_steps, cut.t_enc, model_sigmas, discard, skip_type)
    sigmas = full_ladder[cut.ladder_steps - cut.t_enc - 1 :]
    return walk.WalkStart(sigmas, float(sigmas[0]), 1.0)


def run_sampler(sampler: SamplerSpec, denoiser: s.Denoiser, x: Tensor, sigmas: Tensor, **kwargs: Any) -> Tensor:
    """The sampler over ``sigmas`` as A1111 runs it: a timestep sampler returns the
    variance-preserving latent at its last level (x itself when that level is 0), and a
    one-level walk (A1111's DDIM and PLMS at 1 step, img2img at t_enc <= 1) takes no step."""
    last = float(sigmas[-1])  # read before sampling, not after the steps queued on the device
    kwargs.pop(WALK_SPACING, None)  # shaped ``sigmas`` already (``walk_spacing``)
    result = sampler(denoiser, x, sigmas, **kwargs) if len(sigmas) > 1 else x
    return walk.vp_latent(result, last) if sampler.vp_initial_noise else result


def initial_noise_scale(sampler: SamplerSpec, sigma_max: float, *, sgm_noise_multiplier: bool = False) -> float:
    """Factor for unit noise to start txt2img at ``sigma_max`` (= sigmas[0]).

    sigma_max for the k-diffusion-style samplers; sqrt(1 + sigma_max^2) for those
    A1111 starts from the unscaled variance-preserving latent (DDIM, PLMS, UniPC)
    or for all with A1111's "SGM noise multiplier" setting.
    """
    if sampler.vp_initial_noise or sgm_noise_multiplier:
        return math.sqrt(1.0 + sigma_max**2)
    return sigma_max


__all__ = [
    "SAMPLERS",
    "SCHEDULES",
    "SamplerSpec",
    "ScheduleOptions",
    "ScheduleSpec",
    "effective_schedule",
    "Img2ImgSteps",
    "img2img_start",
    "initial_noise_scale",
    "resolve_sampler",
    "resolve_schedule",
    "run_sampler",
    "sampler_names",
    "sampler_sigmas",
    "schedule_labels",
    "uses_timestep_walk",
]
