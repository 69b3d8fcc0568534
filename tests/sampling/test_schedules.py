"""Schedules: the SD training sigmas, timestep <-> sigma conversion, and every ladder type.

Expected values come from the published SD schedule, the documented A1111
constructions (recomputed here independently with numpy), closed forms, or
mpmath for the Beta distribution.
"""

from __future__ import annotations

import math

import mpmath
import numpy
import pytest
import torch

from modules.sampling import catalog
from modules.sampling import schedules as sch
from tests.sampling.analytic import MODEL_SIGMAS

T = len(MODEL_SIGMAS)
SIGMA_MIN, SIGMA_MAX = float(MODEL_SIGMAS[0]), float(MODEL_SIGMAS[-1])
BUILDABLE = [spec for spec in catalog.SCHEDULES if not spec.is_automatic]


def test_sd_training_sigmas_match_the_published_range():
    # SD1/SD2's well-known sigma range: 0.0292 at t=0 and 14.6146 at t=999.
    assert T == 1000
    assert math.isclose(SIGMA_MIN, 0.0291675, rel_tol=1e-5)
    assert math.isclose(SIGMA_MAX, 14.614642, rel_tol=1e-5)
    assert bool((MODEL_SIGMAS[1:] > MODEL_SIGMAS[:-1]).all())


def test_alphas_cumprod_follow_the_ldm_beta_schedule():
    betas = numpy.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    expected = numpy.cumprod(1 - betas)
    assert numpy.allclose(sch.scaled_linear_alphas_cumprod().numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("bad", [torch.tensor([0.5, 1.0]), torch.tensor([[0.5, 0.4]]), torch.tensor([0.0, 0.5])])
def test_bad_alphas_cumprod_are_refused(bad):
    with pytest.raises(ValueError, match="alphas_cumprod"):
        sch.sigmas_from_alphas_cumprod(bad)


def test_timestep_and_sigma_convert_both_ways():
    integer_steps = torch.tensor([0.0, 1.0, 500.0, 999.0])
    assert torch.allclose(sch.timestep_to_sigma(integer_steps, MODEL_SIGMAS), MODEL_SIGMAS[[0, 1, 500, 999]])
    assert torch.allclose(sch.sigma_to_timestep(MODEL_SIGMAS[[0, 1, 500, 999]], MODEL_SIGMAS), integer_steps)
    fractional = torch.tensor([0.25, 10.5, 998.75])
    assert torch.allclose(sch.sigma_to_timestep(sch.timestep_to_sigma(fractional, MODEL_SIGMAS), MODEL_SIGMAS), fractional, atol=1e-3)
    # Half way between two timesteps lies the geometric mean of their sigmas (log-sigma interpolation).
    midway = sch.timestep_to_sigma(torch.tensor(10.5, dtype=torch.float64), MODEL_SIGMAS.double())
    assert math.isclose(float(midway), math.sqrt(float(MODEL_SIGMAS[10]) * float(MODEL_SIGMAS[11])), rel_tol=1e-6)
    assert sch.sigma_to_timestep(torch.tensor([0.0, 1e-4, 100.0]), MODEL_SIGMAS).tolist() == [0.0, 0.0, 999.0]


# -- properties every ladder must have -----------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2, 7, 20, 30])
@pytest.mark.parametrize("spec", BUILDABLE, ids=[spec.name for spec in BUILDABLE])
def test_every_ladder_has_steps_levels_then_zero_starts_high_and_never_increases(spec, steps):
    ladder = spec.build(steps, MODEL_SIGMAS, catalog.ScheduleOptions())
    # A1111's DDIM schedule keeps every timestep of its stride: more levels when steps does not divide T
    levels = len(range(1, T, T // steps)) if spec.name == "ddim" else steps
    assert ladder.dtype == torch.float32 and ladder.shape == (levels + 1,)
    assert float(ladder[-1]) == 0.0
    assert bool((ladder[1:] <= ladder[:-1]).all()), ladder
    assert bool((ladder[:-1] > 0).all())
    # Near sigma_max: the DDIM spacing starts lowest, at 1 + (steps - 1) * floor(T / steps),
    # which is less than two strides below the top.
    lowest_start = float(MODEL_SIGMAS[max(0, T - 1 - 2 * math.ceil(T / steps))])
    assert lowest_start <= float(ladder[0]) <= SIGMA_MAX * 1.001


# -- each ladder against its definition -----------------------------------------------------------


def test_uniform_is_evenly_spaced_timesteps():
    # 10 steps: t = 999, 888, ..., 0 are whole timesteps, so the ladder is the training sigmas there.
    ladder = sch.uniform_sigmas(10, MODEL_SIGMAS)
    assert torch.allclose(ladder[:-1], MODEL_SIGMAS[list(range(999, -1, -111))])


def test_karras_follows_eq_5():
    ladder = sch.karras_sigmas(12, SIGMA_MIN, SIGMA_MAX).double()
    ramp = numpy.linspace(0, 1, 12)
    expected = (SIGMA_MAX ** (1 / 7) + ramp * (SIGMA_MIN ** (1 / 7) - SIGMA_MAX ** (1 / 7))) ** 7
    assert numpy.allclose(ladder[:-1].numpy(), expected, rtol=1e-6)
    assert ladder[0] == pytest.approx(SIGMA_MAX, rel=1e-6) and ladder[-2] == pytest.approx(SIGMA_MIN, rel=1e-6)


def test_exponential_and_polyexponential():
    ladder = sch.exponential_sigmas(9, SIGMA_MIN, SIGMA_MAX).double()
    ratios = ladder[1:-1] / ladder[:-2]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-5)
    # equal up to float32 rounding (both are computed in float32, as k-diffusion computes them)
    assert torch.allclose(sch.polyexponential_sigmas(9, SIGMA_MIN, SIGMA_MAX, rho=1.0),
                          sch.exponential_sigmas(9, SIGMA_MIN, SIGMA_MAX), rtol=1e-6, atol=0)
    steeper = sch.polyexponential_sigmas(9, SIGMA_MIN, SIGMA_MAX, rho=2.0)
    assert bool((steeper[1:-2] < ladder[1:-2].float()).all()), "rho > 1 moves levels towards sigma_min"


def test_sgm_uniform_drops_the_end_point():
    # 9 steps: t = 999 - 111 k for k < 9 (t = 0 dropped in favour of the final 0).
    ladder = sch.sgm_uniform_sigmas(9, MODEL_SIGMAS, SIGMA_MIN, SIGMA_MAX)
    assert torch.allclose(ladder[:-1], MODEL_SIGMAS[list(range(999, 0, -111))], rtol=1e-5)


def test_normal_equals_uniform_on_the_full_range_and_follows_an_override():
    assert torch.allclose(sch.normal_sigmas(8, MODEL_SIGMAS, SIGMA_MIN, SIGMA_MAX), sch.uniform_sigmas(8, MODEL_SIGMAS))
    narrowed = sch.normal_sigmas(8, MODEL_SIGMAS, 0.1, 5.0)
    assert narrowed[0] == pytest.approx(5.0, rel=1e-4) and narrowed[-2] == pytest.approx(0.1, rel=1e-4)


def test_kl_optimal_is_even_in_arctan():
    ladder = sch.kl_optimal_sigmas(10, SIGMA_MIN, SIGMA_MAX).double()
    angles = torch.atan(ladder[:-1])
    steps = angles[:-1] - angles[1:]
    assert torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-5)
    assert float(steps[0]) == pytest.approx((math.atan(SIGMA_MAX) - math.atan(SIGMA_MIN)) / 10, rel=1e-5)


def test_align_your_steps_uses_the_published_sd15_table():
    published = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
    assert numpy.allclose(sch.align_your_steps_sigmas(11)[:-1].numpy(), published, rtol=1e-6)
    resampled = sch.align_your_steps_sigmas(20)[:-1].double().numpy()
    expected = numpy.exp(numpy.interp(numpy.linspace(0, 1, 20), numpy.linspace(0, 1, 11), numpy.log(published[::-1])))[::-1]
    assert numpy.allclose(resampled, expected, rtol=1e-6)


def test_simple_takes_every_nth_training_sigma():
    ladder = sch.simple_sigmas(10, MODEL_SIGMAS)
    assert torch.equal(ladder[:-1], MODEL_SIGMAS[[999 - 100 * i for i in range(10)]])
    odd = sch.simple_sigmas(7, MODEL_SIGMAS)
    assert torch.equal(odd[:-1], MODEL_SIGMAS[[999 - int(i * 1000 / 7) for i in range(7)]])


def test_ddim_uses_the_ddim_sampler_timesteps():
    table = MODEL_SIGMAS.float()
    ladder = sch.ddim_sigmas(20, MODEL_SIGMAS)
    assert torch.equal(ladder[:-1], table[list(range(951, 0, -50))])  # A1111: 951, 901, ..., 1
    thirty = sch.ddim_sigmas(30, MODEL_SIGMAS)  # A1111 keeps all 31 timesteps of stride 33 below 1000
    assert torch.equal(thirty[:-1], table[[1 + 33 * k for k in reversed(range(31))]]) and thirty[-1] == 0
    assert len(sch.ddim_sigmas(1000, MODEL_SIGMAS)) == 1000  # stride 1: timesteps 999..1, then 0


def test_beta_quantiles_match_closed_forms_and_mpmath():
    # Beta(1, 1) is uniform, Beta(1/2, 1/2) the arcsine law: F^-1(p) = sin^2(pi p / 2).
    for p in (0.001, 0.2, 0.5, 0.93):
        assert sch.beta_quantile(p, 1.0, 1.0) == pytest.approx(p, abs=1e-12)
        assert sch.beta_quantile(p, 0.5, 0.5) == pytest.approx(math.sin(math.pi * p / 2) ** 2, abs=1e-12)
    for x in (1e-6, 0.05, 0.4, 0.77, 0.999):
        for a, b in ((0.6, 0.6), (2.5, 0.7), (5.0, 3.0)):
            expected = float(mpmath.betainc(a, b, 0, x, regularized=True))
            assert sch.regularized_incomplete_beta(x, a, b) == pytest.approx(expected, abs=1e-12)
    for p in (0.01, 0.3, 0.6, 0.99):
        x = sch.beta_quantile(p, 0.6, 0.6)
        assert float(mpmath.betainc(0.6, 0.6, 0, x, regularized=True)) == pytest.approx(p, abs=1e-10)


def test_beta_ladder_maps_quantiles_onto_the_sigma_range():
    ladder = sch.beta_sigmas(12, SIGMA_MIN, SIGMA_MAX).double()
    assert ladder[0] == pytest.approx(SIGMA_MAX, rel=1e-6) and ladder[-2] == pytest.approx(SIGMA_MIN, rel=1e-5)
    # alpha = beta: the quantiles are symmetric, so mirrored levels sum to sigma_min + sigma_max.
    assert torch.allclose(ladder[:-1] + ladder[:-1].flip(0), torch.full((12,), SIGMA_MIN + SIGMA_MAX, dtype=torch.float64), rtol=1e-5)
    uniform = sch.beta_sigmas(5, 1.0, 5.0, alpha=1.0, beta=1.0)
    assert torch.allclose(uniform, torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sch.karras_sigmas(0, 0.1, 10.0), "steps"),
        (lambda: sch.karras_sigmas(5, 10.0, 0.1), "sigma range"),
        (lambda: sch.exponential_sigmas(5, 0.0, 1.0), "sigma range"),
        (lambda: sch.karras_sigmas(5, 0.1, 10.0, rho=0.0), "rho"),
        (lambda: sch.beta_sigmas(5, 0.1, 10.0, alpha=-1.0), "alpha and beta"),
        (lambda: sch.uniform_sigmas(2.5, MODEL_SIGMAS), "steps"),
    ],
)
def test_bad_schedule_arguments_are_refused_with_a_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()
