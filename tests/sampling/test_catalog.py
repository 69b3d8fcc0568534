"""The sampler and schedule catalog against A1111's documented names, aliases and defaults.

The expected tables below are A1111 v1.10's, as documented in the project's
compatibility reference (sampler table and schedule table).
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from modules.sampling import catalog
from modules.sampling.schedules import karras_sigmas
from tests.sampling.analytic import MODEL_SIGMAS, GaussianData, SeededNoise, start_noise

# UI order, aliases and "Automatic" meaning, per A1111.
A1111_SAMPLERS = [
    ("DPM++ 2M", ["k_dpmpp_2m"], "karras"),
    ("DPM++ SDE", ["k_dpmpp_sde"], "karras"),
    ("DPM++ 2M SDE", ["k_dpmpp_2m_sde"], "exponential"),
    ("DPM++ 2M SDE Heun", ["k_dpmpp_2m_sde_heun"], "exponential"),
    ("DPM++ 2S a", ["k_dpmpp_2s_a"], "karras"),
    ("DPM++ 3M SDE", ["k_dpmpp_3m_sde"], "exponential"),
    ("Euler a", ["k_euler_a", "k_euler_ancestral"], None),
    ("Euler", ["k_euler"], None),
    ("LMS", ["k_lms"], None),
    ("Heun", ["k_heun"], None),
    ("DPM2", ["k_dpm_2"], "karras"),
    ("DPM2 a", ["k_dpm_2_a"], "karras"),
    ("DPM fast", ["k_dpm_fast"], None),
    ("DPM adaptive", ["k_dpm_ad"], None),
    ("Restart", ["restart"], "karras"),
    # sd_samplers_timesteps lists these with no options: no default schedule (their own walk)
    ("DDIM", ["ddim"], None),
    ("PLMS", ["plms"], None),
    ("UniPC", ["unipc"], None),
    ("LCM", ["k_lcm"], None),
]
A1111_SCHEDULES = [
    ("automatic", "Automatic"),
    ("uniform", "Uniform"),
    ("karras", "Karras"),
    ("exponential", "Exponential"),
    ("polyexponential", "Polyexponential"),
    ("sgm_uniform", "SGM Uniform"),
    ("kl_optimal", "KL Optimal"),
    ("align_your_steps", "Align Your Steps"),
    ("simple", "Simple"),
    ("normal", "Normal"),
    ("ddim", "DDIM"),
    ("beta", "Beta"),
]


def test_names_order_and_defaults_follow_a1111():
    assert catalog.sampler_names() == tuple(name for name, _, _ in A1111_SAMPLERS)
    assert catalog.schedule_labels() == tuple(label for _, label in A1111_SCHEDULES)
    for name, aliases, default in A1111_SAMPLERS:
        spec, schedule = catalog.resolve_sampler(name)
        assert (spec.name, schedule) == (name, None)
        assert list(spec.aliases) == aliases
        assert spec.default_schedule == default


def test_a1111_flags():
    flagged = {name: catalog.resolve_sampler(name)[0] for name, _, _ in A1111_SAMPLERS}
    assert {n for n, s in flagged.items() if s.discard_penultimate_sigma} == {"DPM2", "DPM2 a", "DPM++ 3M SDE"}
    assert {n for n, s in flagged.items() if s.sde} == {"DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"}
    assert {n for n, s in flagged.items() if s.uses_ensd} == {"DPM++ 2S a", "Euler a", "DPM2 a", "DPM fast", "DPM adaptive"}
    assert {n for n, s in flagged.items() if s.second_order} == {"DPM++ SDE", "DPM++ 2S a", "Heun", "DPM2", "DPM2 a", "Restart"}
    assert {n for n, s in flagged.items() if s.vp_initial_noise} == {"DDIM", "PLMS", "UniPC"}
    assert {n: s.timestep_walk for n, s in flagged.items() if s.timestep_walk} == {"DDIM": "ddim", "PLMS": "ddim", "UniPC": "unipc"}


@pytest.mark.parametrize("alias, name", [(a, n) for n, aliases, _ in A1111_SAMPLERS for a in aliases])
def test_aliases_resolve(alias, name):
    assert catalog.resolve_sampler(alias)[0].name == name
    assert catalog.resolve_sampler(alias.upper())[0].name == name


@pytest.mark.parametrize(
    "legacy, sampler, schedule",
    [
        ("DPM++ 2M Karras", "DPM++ 2M", "Karras"),
        ("DPM++ SDE Karras", "DPM++ SDE", "Karras"),
        ("DPM2 a Karras", "DPM2 a", "Karras"),
        ("DPM++ 2M SDE Exponential", "DPM++ 2M SDE", "Exponential"),
        ("DPM++ 2M SDE Heun Karras", "DPM++ 2M SDE Heun", "Karras"),
        ("dpm++  3m sde   exponential", "DPM++ 3M SDE", "Exponential"),
        ("Euler a SGM Uniform", "Euler a", "SGM Uniform"),
        ("Euler Align Your Steps", "Euler", "Align Your Steps"),
        ("k_euler karras", "Euler", "Karras"),
        ("UniPC sgm_uniform", "UniPC", "SGM Uniform"),
    ],
)
def test_a_trailing_schedule_is_split_off(legacy, sampler, schedule):
    spec, schedule_spec = catalog.resolve_sampler(legacy)
    assert (spec.name, schedule_spec.label) == (sampler, schedule)


def test_names_that_end_like_a_schedule_stay_whole():
    assert catalog.resolve_sampler("DDIM") == (catalog.resolve_sampler("ddim")[0], None)
    assert catalog.resolve_sampler("DPM++ 2M SDE Heun")[0].name == "DPM++ 2M SDE Heun"


@pytest.mark.parametrize("bad", ["Euler b", "DPM++ 9M", "", "Karras", "Euler Karras Karras"])
def test_unknown_sampler_lists_the_valid_names(bad):
    with pytest.raises(ValueError) as error:
        catalog.resolve_sampler(bad)
    message = str(error.value)
    assert repr(bad) in message and "Sampler" in message
    for name, aliases, _ in A1111_SAMPLERS:
        assert name in message and aliases[0] in message


@pytest.mark.parametrize("name, label", A1111_SCHEDULES)
def test_schedules_resolve_by_name_label_and_case(name, label):
    assert catalog.resolve_schedule(name).label == label
    assert catalog.resolve_schedule(label).name == name
    assert catalog.resolve_schedule(label.upper()).name == name


def test_schedule_alias_and_unknown_schedule():
    assert catalog.resolve_schedule("SGMUniform").name == "sgm_uniform"
    with pytest.raises(ValueError) as error:
        catalog.resolve_schedule("karas")
    message = str(error.value)
    assert "'karas'" in message and "Schedule type" in message
    for name, label in A1111_SCHEDULES:
        assert label in message and name in message


def test_automatic_means_the_default_or_the_model_ladder():
    automatic = catalog.resolve_schedule("Automatic")
    dpmpp, _ = catalog.resolve_sampler("DPM++ 2M")
    euler_a, _ = catalog.resolve_sampler("Euler a")
    assert catalog.effective_schedule(dpmpp, automatic).name == "karras"
    assert catalog.effective_schedule(dpmpp, None).name == "karras"
    assert catalog.effective_schedule(euler_a, automatic).name == "uniform"
    assert catalog.effective_schedule(euler_a, catalog.resolve_schedule("beta")).name == "beta"


def test_discarding_the_penultimate_sigma():
    dpm2, karras = catalog.resolve_sampler("DPM2 Karras")
    ladder = catalog.sampler_sigmas(dpm2, karras, 10, MODEL_SIGMAS)
    longer = karras_sigmas(11, float(MODEL_SIGMAS[0]), float(MODEL_SIGMAS[-1]))
    assert torch.equal(ladder, torch.cat([longer[:-2], longer[-1:]]))
    euler, _ = catalog.resolve_sampler("Euler")
    plain = catalog.sampler_sigmas(euler, karras, 10, MODEL_SIGMAS)
    assert torch.equal(plain, karras_sigmas(10, float(MODEL_SIGMAS[0]), float(MODEL_SIGMAS[-1])))
    forced = catalog.sampler_sigmas(euler, karras, 10, MODEL_SIGMAS, always_discard_penultimate=True)
    assert torch.equal(forced, ladder)


def test_schedule_options_override_range_rho_and_beta_shape():
    karras = catalog.resolve_schedule("karras")
    options = catalog.ScheduleOptions(sigma_min=0.1, sigma_max=10.0, rho=3.0)
    assert torch.equal(karras.build(8, MODEL_SIGMAS, options), karras_sigmas(8, 0.1, 10.0, rho=3.0))
    beta = catalog.resolve_schedule("beta")
    flat = beta.build(5, MODEL_SIGMAS, catalog.ScheduleOptions(sigma_min=1.0, sigma_max=5.0, beta_alpha=1.0, beta_beta=1.0))
    assert torch.allclose(flat, torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]))


@pytest.mark.parametrize("spec", catalog.SAMPLERS, ids=[spec.name for spec in catalog.SAMPLERS])
def test_knobs_are_the_functions_keyword_arguments(spec):
    parameters = inspect.signature(spec.function).parameters
    keyword = {name for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert {"noise", "callback"} <= keyword
    pipeline_set = set(catalog.PIPELINE_KEYWORDS) if spec.ends_at_sigma_min else set()
    walk_only = {catalog.WALK_SPACING}  # read by the timestep walk (run_sampler), never passed to the sampler
    assert (set(spec.knobs) - walk_only) | set(dict(spec.fixed_knobs)) == keyword - {"noise", "callback"} - pipeline_set
    assert not set(spec.knobs) & set(catalog.PIPELINE_KEYWORDS)


def test_fixed_knobs_apply_and_cannot_be_overridden():
    heun, _ = catalog.resolve_sampler("DPM++ 2M SDE Heun")
    midpoint, _ = catalog.resolve_sampler("DPM++ 2M SDE")
    data = GaussianData()
    sigmas = catalog.sampler_sigmas(heun, None, 6, MODEL_SIGMAS)
    x = start_noise([1]) * sigmas[0]
    a = heun(data.denoise, x, sigmas, noise=SeededNoise([1], sigmas))
    b = midpoint(data.denoise, x, sigmas, noise=SeededNoise([1], sigmas))
    assert not torch.equal(a, b), "the Heun variant must differ from the midpoint one"
    with pytest.raises(ValueError, match="solver_type is fixed"):
        heun(data.denoise, x, sigmas, noise=SeededNoise([1], sigmas), solver_type="midpoint")


def test_initial_noise_scale():
    dpmpp, _ = catalog.resolve_sampler("DPM++ 2M")
    ddim, _ = catalog.resolve_sampler("DDIM")
    assert catalog.initial_noise_scale(dpmpp, 14.6) == 14.6
    assert catalog.initial_noise_scale(ddim, 14.6) == pytest.approx(math.sqrt(1 + 14.6**2))
    assert catalog.initial_noise_scale(dpmpp, 14.6, sgm_noise_multiplier=True) == pytest.approx(math.sqrt(1 + 14.6**2))
