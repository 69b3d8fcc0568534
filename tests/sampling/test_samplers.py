"""Every sampler of the catalog against a denoising problem with a closed-form answer.

The data are elementwise Gaussian (``analytic.GaussianData``), so the exact
denoiser, the exact probability-flow ODE solution and the exact data
distribution are known. Deterministic samplers must converge to the ODE
solution as steps grow, at their order; stochastic ones must produce the data
distribution. All of them must draw noise only from the per-image noise
source, be deterministic, and give image k of a batch bit-exactly as if it were
sampled alone.
"""

from __future__ import annotations

import math

import pytest
import torch

from modules.sampling import catalog
from modules.sampling import samplers as s
from modules.sampling.schedules import karras_sigmas
from tests.sampling.analytic import MODEL_SIGMAS, GaussianData, SeededNoise, start_noise

SPECS = {spec.name: spec for spec in catalog.SAMPLERS}

# Samplers that are deterministic ODE solvers once their eta is 0, with the
# order of accuracy they are expected to show at least (first or higher order).
ODE_ORDER = {
    "DPM++ 2M": 2,
    "DPM++ SDE": 2,
    "DPM++ 2M SDE": 2,
    "DPM++ 2M SDE Heun": 2,
    "DPM++ 2S a": 2,
    "DPM++ 3M SDE": 2,
    "Euler a": 1,
    "Euler": 1,
    "LMS": 2,
    "Heun": 2,
    "DPM2": 2,
    "DPM2 a": 2,
    "DPM fast": 2,
    "DDIM": 1,
    "PLMS": 2,
    "UniPC": 2,
}
# Restart (with restarts), LCM and DPM adaptive are covered by their own tests below.


def run(spec: catalog.SamplerSpec, denoiser, x, sigmas, seeds=(7,), **knobs):
    return spec(denoiser, x, sigmas, noise=SeededNoise(list(seeds), sigmas), **knobs)


def ode_error(name: str, steps: int) -> float:
    """Max error against the exact ODE solution, in units of the data std, float64 throughout.

    The ladder ends at sigma 1e-3 before 0, so the last jump to 0 adds < 1e-5.
    """
    spec = SPECS[name]
    data = GaussianData(dtype=torch.float64)
    sigmas = karras_sigmas(steps, 1e-3, 14.6).double()
    x = start_noise([3], dtype=torch.float64) * sigmas[0]
    knobs = {"eta": 0.0} if "eta" in spec.knobs else {}
    result = run(spec, data.denoise, x, sigmas, **knobs)
    end = float(sigmas[-2]) if spec.ends_at_sigma_min else 0.0
    return float((result - data.ode_solution(x, float(sigmas[0]), end)).abs().max()) / data.std


@pytest.mark.parametrize("name", sorted(ODE_ORDER))
def test_deterministic_samplers_converge_to_the_ode_solution_at_their_order(name):
    coarse, fine = ode_error(name, 16), ode_error(name, 64)
    order = ODE_ORDER[name]
    # Four times the steps must cut the error by at least 2^(2 * (order - 0.2)).
    assert coarse / fine >= 2 ** (2 * (order - 0.2)), f"{name}: error {coarse:.3g} -> {fine:.3g}"
    assert fine < (0.08 if order == 1 else 0.01), f"{name}: error {fine:.3g} at 64 steps"


def test_dpm_adaptive_error_follows_its_tolerance():
    spec, data = SPECS["DPM adaptive"], GaussianData(dtype=torch.float64)
    sigmas = karras_sigmas(10, 1e-3, 14.6).double()
    x = start_noise([3], dtype=torch.float64) * sigmas[0]
    exact = data.ode_solution(x, float(sigmas[0]), float(sigmas[-2]))
    errors, calls = [], []
    for rtol in (0.05, 0.0005):
        data.calls = 0
        result = run(spec, data.denoise, x, sigmas, eta=0.0, rtol=rtol, atol=rtol / 5)
        errors.append(float((result - exact).abs().max()) / data.std)
        calls.append(data.calls)
    assert errors[1] < errors[0] / 10 and errors[1] < 0.01, errors
    assert calls[1] > calls[0], "a tighter tolerance must take more model evaluations"


# -- stochastic samplers produce the data distribution -------------------------------------------

STOCHASTIC = [
    ("DPM++ SDE", {}, 60),
    ("DPM++ 2M SDE", {}, 60),
    ("DPM++ 2M SDE Heun", {}, 60),
    ("DPM++ 2S a", {}, 60),
    ("DPM++ 3M SDE", {}, 60),
    ("DPM2 a", {}, 60),
    ("DPM fast", {}, 60),
    ("DPM adaptive", {}, 20),
    ("Restart", {}, 40),
    ("Heun", {"s_churn": 10.0}, 60),
    ("DPM2", {"s_churn": 10.0}, 60),
    ("DDIM", {"eta": 1.0}, 240),
    ("Euler a", {}, 240),
    ("Euler", {"s_churn": 10.0}, 240),
]


def sample_statistics(name: str, knobs: dict, steps: int, denoiser=None) -> tuple[float, float, int]:
    """Mean and std of (result - mean) / std over 4096 elements, and the noise draws made.

    The start is an exact sample of the noisy marginal N(mean, std^2 + sigma_0^2).
    """
    spec, data = SPECS[name], GaussianData(shape=(4, 32, 32))
    sigmas = catalog.sampler_sigmas(spec, None, steps, MODEL_SIGMAS)
    x = data.mean + start_noise([5], (4, 32, 32)) * math.sqrt(data.std**2 + float(sigmas[0]) ** 2)
    noise = SeededNoise([5], sigmas)
    result = spec(denoiser or data.denoise, x, sigmas, noise=noise, **knobs)
    z = (result - data.mean) / data.std
    return float(z.mean()), float(z.std()), noise.draws


@pytest.mark.parametrize("name, knobs, steps", STOCHASTIC, ids=[f"{n}{k or ''}" for n, k, _ in STOCHASTIC])
def test_stochastic_samplers_produce_the_data_distribution(name, knobs, steps):
    mean, std, draws = sample_statistics(name, knobs, steps)
    assert draws > 0, f"{name} {knobs} drew no noise"
    # The sample mean/std of 4096 standard normals deviate by ~0.016 / ~0.011.
    assert abs(mean) < 0.06 and abs(std - 1) < 0.05, f"{name} {knobs}: mean {mean:.3f}, std {std:.3f}"


def test_first_order_stochastic_sampling_improves_with_steps():
    coarse = sample_statistics("Euler a", {}, 15)[1]
    fine = sample_statistics("Euler a", {}, 240)[1]
    assert abs(fine - 1) < abs(coarse - 1) / 3, (coarse, fine)


def test_lcm_is_exact_with_a_consistency_function():
    """With the true consistency function (the ODE's map to sigma 0), LCM sampling yields the
    data distribution at any step count (Song et al. 2023, multistep consistency sampling)."""
    data = GaussianData(shape=(4, 32, 32))

    def consistency(x, sigma):
        column = sigma.reshape(-1, 1, 1, 1).to(x.dtype)
        return data.mean + (x - data.mean) * (data.std / (data.std**2 + column**2) ** 0.5)

    for steps in (2, 8):
        mean, std, draws = sample_statistics("LCM", {}, steps, denoiser=consistency)
        assert draws == steps - 1
        assert abs(mean) < 0.06 and abs(std - 1) < 0.03, (steps, mean, std)


def test_restart_follows_its_plan_and_injects_noise_only_at_restarts():
    levels = catalog.sampler_sigmas(SPECS["Restart"], None, 40, MODEL_SIGMAS).tolist()
    plan = s.restart_plan(levels)
    # 40 steps: 40 - 2 * 10 main Karras steps, then two restart segments of 10 steps.
    assert len(plan) == 40
    jumps = [(a, b) for (_, a), (b, _) in zip(plan, plan[1:]) if b > a]
    assert len(jumps) == 2
    low, high = jumps[0]
    assert abs(low - s.RESTART_SIGMA_LOW) < 0.05 and abs(high - s.RESTART_SIGMA_HIGH) < 0.5
    assert s.restart_plan(levels[:11] + [0.0]) == list(zip(levels[:11], levels[1:11] + [0.0]))


# -- noise only from the noise source -----------------------------------------------------------

GLOBAL_DRAWS = ("randn", "rand", "randint", "normal", "randperm", "bernoulli", "multinomial", "poisson")
GLOBAL_LIKE = ("randn_like", "rand_like", "randint_like")
IN_PLACE = ("normal_", "uniform_", "random_", "bernoulli_", "exponential_", "cauchy_", "log_normal_", "geometric_")

ALL_CASES = [(spec.name, {}) for spec in catalog.SAMPLERS] + [
    ("Euler", {"s_churn": 5.0}),
    ("Heun", {"s_churn": 5.0}),
    ("DPM2", {"s_churn": 5.0}),
    ("DDIM", {"eta": 0.5}),
]


@pytest.fixture
def global_rng_forbidden(monkeypatch):
    """Every torch draw that could use the global generator raises unless given ``generator=``."""

    def forbid(name, original, needs_generator=True):
        def guarded(*args, **kwargs):
            if not needs_generator or kwargs.get("generator") is None:
                raise AssertionError(f"global RNG used: torch.{name}")
            return original(*args, **kwargs)

        return guarded

    for name in GLOBAL_DRAWS:
        monkeypatch.setattr(torch, name, forbid(name, getattr(torch, name)))
    for name in GLOBAL_LIKE:
        monkeypatch.setattr(torch, name, forbid(name, getattr(torch, name), needs_generator=False))
    for name in IN_PLACE:
        monkeypatch.setattr(torch.Tensor, name, forbid(name, getattr(torch.Tensor, name)))


def test_the_guard_catches_global_draws(global_rng_forbidden):
    with pytest.raises(AssertionError, match="global RNG"):
        torch.randn(3)
    with pytest.raises(AssertionError, match="global RNG"):
        torch.randn_like(torch.zeros(2))
    with pytest.raises(AssertionError, match="global RNG"):
        torch.zeros(2).normal_()
    assert torch.randn(2, generator=torch.Generator().manual_seed(0)).shape == (2,)


@pytest.mark.parametrize("name, knobs", ALL_CASES, ids=[f"{n}{k or ''}" for n, k in ALL_CASES])
def test_samplers_draw_only_from_the_noise_source(global_rng_forbidden, name, knobs):
    spec, data = SPECS[name], GaussianData()
    sigmas = catalog.sampler_sigmas(spec, None, 24, MODEL_SIGMAS)
    x = start_noise([1, 2]) * sigmas[0]
    noise = SeededNoise([1, 2], sigmas)
    result = spec(data.denoise, x, sigmas, noise=noise, **knobs)
    assert torch.isfinite(result).all()
    stochastic = spec.ancestral or spec.sde or name in ("Restart", "LCM") or any(knobs.values())
    if name == "DDIM" and not knobs:
        stochastic = False  # eta 0 by default
    assert (noise.draws > 0) == stochastic, f"{name} {knobs}: {noise.draws} draws"


# -- determinism and batch invariance -----------------------------------------------------------


@pytest.mark.parametrize("name, knobs", ALL_CASES, ids=[f"{n}{k or ''}" for n, k in ALL_CASES])
def test_image_k_of_a_batch_equals_image_k_alone_and_runs_repeat(name, knobs):
    spec, data = SPECS[name], GaussianData()
    sigmas = catalog.sampler_sigmas(spec, None, 24, MODEL_SIGMAS)
    seeds = [11, 12, 13]
    x = start_noise(seeds) * sigmas[0]
    batch = run(spec, data.denoise, x, sigmas, seeds=seeds, **knobs)
    again = run(spec, data.denoise, x, sigmas, seeds=seeds, **knobs)
    assert torch.equal(batch, again), f"{name}: two runs with the same noise differ"
    for k, seed in enumerate(seeds):
        alone = run(spec, data.denoise, x[k : k + 1], sigmas, seeds=[seed], **knobs)
        assert torch.equal(batch[k : k + 1], alone), f"{name}: image {k} differs from its single run"


def test_dpm_adaptive_gives_each_image_its_own_steps():
    """Images with very different content need different step counts; each one's result must
    still equal its single run, which a batch-wide error norm would break."""
    spec, data = SPECS["DPM adaptive"], GaussianData()
    sigmas = catalog.sampler_sigmas(spec, None, 10, MODEL_SIGMAS)
    x = start_noise([1, 2]) * sigmas[0]
    x[1] = x[1] * 40  # far from the data: larger errors, smaller steps
    batch = run(spec, data.denoise, x, sigmas, seeds=[1, 2])
    for k in range(2):
        assert torch.equal(batch[k : k + 1], run(spec, data.denoise, x[k : k + 1], sigmas, seeds=[k + 1]))


# -- progress and interruption ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPECS))
def test_callback_reports_each_step_and_can_interrupt(name):
    spec, data = SPECS[name], GaussianData()
    sigmas = catalog.sampler_sigmas(spec, None, 6, MODEL_SIGMAS)
    x = start_noise([1]) * sigmas[0]
    reports: list[s.SamplerStep] = []
    result = run(spec, data.denoise, x, sigmas, callback=reports.append)
    assert reports, f"{name}: no progress reported"
    assert all(0 <= r.index < r.total for r in reports)
    assert [r.index for r in reports] == sorted(r.index for r in reports)
    assert torch.equal(reports[-1].x, result)
    assert all(r.denoised.shape == x.shape and r.sigma > 0 for r in reports)

    def stop(step: s.SamplerStep):
        raise s.SamplingInterrupted(latest=step.x)

    data.calls = 0
    with pytest.raises(s.SamplingInterrupted) as stopped:
        run(spec, data.denoise, x, sigmas, callback=stop)
    assert torch.equal(stopped.value.latest, reports[0].x)
    assert data.calls <= 3, f"{name}: kept evaluating after the interrupt"


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sigmas, message",
    [
        (torch.tensor([[1.0, 0.0]]), "1-D"),
        (torch.tensor([1.0]), "at least 2"),
        (torch.tensor([1.0, 2.0, 0.0]), "strictly decrease"),
        (torch.tensor([1.0, 1.0, 0.0]), "strictly decrease"),
        (torch.tensor([1.0, float("nan"), 0.0]), "finite"),
        (torch.tensor([0.0, 0.0]), "start above 0"),
    ],
)
def test_bad_ladders_are_refused_with_a_reason(sigmas, message):
    data = GaussianData()
    with pytest.raises(ValueError, match=message):
        s.sample_euler(data.denoise, torch.zeros(1, *data.mean.shape), sigmas, noise=SeededNoise([1]))


@pytest.mark.parametrize(
    "function, knobs, message",
    [
        (s.sample_unipc, {"variant": "bh3"}, "variant"),
        (s.sample_unipc, {"order": 0}, "order"),
        (s.sample_lms, {"order": 0}, "order"),
        (s.sample_dpm_adaptive, {"order": 4}, "order"),
        (s.sample_dpmpp_2m_sde, {"solver_type": "rk4"}, "solver_type"),
        (s.sample_dpmpp_sde, {"r": 1.5}, "r must"),
    ],
)
def test_bad_knobs_are_refused_with_a_reason(function, knobs, message):
    data = GaussianData()
    sigmas = karras_sigmas(4, 0.03, 14.6)
    with pytest.raises(ValueError, match=message):
        function(data.denoise, torch.zeros(1, *data.mean.shape), sigmas, noise=SeededNoise([1]), **knobs)


def test_lms_weights_integrate_polynomials_exactly():
    """The order-k weights integrate any polynomial of degree < k through the nodes exactly."""
    levels = [14.6, 9.0, 5.5, 3.1, 1.2, 0.0]
    i = 3
    weights = s.lms_coefficients(levels, i, 4)
    nodes = [levels[i - j] for j in range(4)]
    for degree in range(4):
        quadrature = sum(w * node**degree for w, node in zip(weights, nodes))
        exact = (levels[i + 1] ** (degree + 1) - levels[i] ** (degree + 1)) / (degree + 1)
        assert math.isclose(quadrature, exact, rel_tol=1e-12, abs_tol=1e-12)


def test_dpm_fast_spends_exactly_its_evaluation_budget():
    for budget in range(1, 13):
        orders = s.dpm_fast_orders(budget)
        assert sum(orders) == budget and len(orders) == budget // 3 + 1
    data = GaussianData()
    sigmas = catalog.sampler_sigmas(SPECS["DPM fast"], None, 10, MODEL_SIGMAS)
    data.calls = 0
    run(SPECS["DPM fast"], data.denoise, start_noise([1]) * sigmas[0], sigmas)
    assert data.calls == 10


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_samplers_keep_everything_on_the_latents_device():
    for spec in catalog.SAMPLERS:
        sigmas = catalog.sampler_sigmas(spec, None, 24, MODEL_SIGMAS)
        x = start_noise([1, 2]) * sigmas[0]
        on_cpu = run(spec, GaussianData().denoise, x, sigmas, seeds=[1, 2])
        on_gpu = run(spec, GaussianData(device="cuda").denoise, x.cuda(), sigmas, seeds=[1, 2])
        assert on_gpu.device.type == "cuda" and bool(torch.isfinite(on_gpu).all()), spec.name
        if spec.name != "DPM adaptive":  # its accept/reject decisions may flip on rounding
            assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-4), spec.name
