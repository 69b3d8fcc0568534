"""Samplers and schedules against the diffusers schedulers that implement the same methods.

Both sides run the same analytic model (``analytic.GaussianData``): diffusers gets
its exact eps prediction, our samplers its exact x0 estimate. diffusers'
sigma-space schedulers (Euler, Heun, LMS, KDPM2) hold the EDM latent x; the
others (DDIM, PNDM, DPM-Solver, UniPC) hold the variance-preserving latent
x / sqrt(1 + sigma^2). States are compared after every completed step in the
variance-preserving scale, where they are O(1), to an absolute 1e-4 in float32.

diffusers settings that reproduce A1111's spacing:
- "Uniform" (the model's own ladder, A1111's Automatic for Euler/Heun/LMS/Euler a):
  timestep_spacing="linspace"; identical sigmas when (T-1)/(steps-1) is a whole
  number (diffusers interpolates sigma linearly, A1111 log-linearly, between timesteps);
- "Karras": use_karras_sigmas=True with timestep_spacing="linspace";
- "DDIM" (the schedule; DDIM and PLMS with it picked explicitly): timestep_spacing="leading",
  steps_offset=1; set_alpha_to_one=True makes the last step land on sigma 0;
- "SGM Uniform" (UniPC with it picked explicitly): UniPC's timestep_spacing="linspace"; identical
  when (T-1)/steps is a whole number.
Under Automatic, DDIM, PLMS and UniPC walk A1111's timesteps instead (test_timestep_oracle.py).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2DiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers import scheduling_lms_discrete

from modules.models.families import Prediction
from modules.sampling import samplers as s
from modules.sampling import schedules as sch
from modules.sampling.denoiser import DiscreteDenoiser
from tests.sampling.analytic import MODEL_SIGMAS, GaussianData, SeededNoise, start_noise

# diffusers' schedulers trip numpy 2 deprecation warnings thousands of times; they say nothing about us.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOLERANCE = 1e-4  # absolute, variance-preserving scale, float32
SD_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
SIGMA_MIN, SIGMA_MAX = float(MODEL_SIGMAS[0]), float(MODEL_SIGMAS[-1])
VP_SCHEDULERS = (DDIMScheduler, PNDMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler)
SEED = 3


def oracle_sigma(scheduler, timestep) -> float:
    """The noise level diffusers evaluates the model at for this call."""
    if isinstance(scheduler, (DDIMScheduler, PNDMScheduler)):
        abar = float(scheduler.alphas_cumprod[int(timestep)])
        return math.sqrt((1 - abar) / abar)
    if isinstance(scheduler, KDPM2DiscreteScheduler) and not scheduler.state_in_first_order:
        return float(scheduler.sigmas_interpol[scheduler.step_index])
    index = scheduler.step_index if scheduler.step_index is not None else 0
    return float(scheduler.sigmas[index])


def step_completed(scheduler, last_call: bool) -> bool:
    """False for diffusers' intermediate calls: the first half of a Heun/DPM2 step (the last
    step, to 0, has no second half), and PNDM's first call, which only predicts the point its
    second call corrects."""
    if isinstance(scheduler, (HeunDiscreteScheduler, KDPM2DiscreteScheduler)):
        return scheduler.state_in_first_order or last_call
    if isinstance(scheduler, PNDMScheduler):
        return scheduler.counter != 1
    return True


def run_diffusers(scheduler, x_edm: torch.Tensor, data: GaussianData, **step_kwargs) -> list[torch.Tensor]:
    """States after each completed step, in the scheduler's own representation."""
    vp = isinstance(scheduler, VP_SCHEDULERS)
    sample = x_edm / math.sqrt(1 + first_sigma(scheduler) ** 2) if vp else x_edm.clone()
    states = []
    for k, timestep in enumerate(scheduler.timesteps):
        model_input = scheduler.scale_model_input(sample, timestep)
        sigma = oracle_sigma(scheduler, timestep)
        eps = data.eps(model_input * math.sqrt(1 + sigma**2), sigma).to(torch.float32)
        sample = scheduler.step(eps, timestep, sample, **step_kwargs).prev_sample
        if step_completed(scheduler, last_call=k == len(scheduler.timesteps) - 1):
            states.append(sample)
    return states


def first_sigma(scheduler) -> float:
    if isinstance(scheduler, (DDIMScheduler, PNDMScheduler)):
        return oracle_sigma(scheduler, scheduler.timesteps[0])
    return float(scheduler.sigmas[0])


def oracle_ladder(scheduler) -> torch.Tensor:
    """diffusers' sigma ladder, one entry per step and a final level."""
    if isinstance(scheduler, (DDIMScheduler, PNDMScheduler)):
        steps = scheduler.timesteps if isinstance(scheduler, DDIMScheduler) else scheduler._timesteps[::-1]
        levels = [oracle_sigma(scheduler, t) for t in steps]
        final_abar = float(scheduler.final_alpha_cumprod)
        return torch.tensor(levels + [math.sqrt((1 - final_abar) / final_abar)])
    if isinstance(scheduler, (HeunDiscreteScheduler, KDPM2DiscreteScheduler)):
        return torch.unique_consecutive(scheduler.sigmas)  # they store each inner level twice
    return scheduler.sigmas.clone()


def run_ours(sampler, sigmas: torch.Tensor, x_edm: torch.Tensor, data: GaussianData, **knobs) -> list[tuple[float, torch.Tensor]]:
    """(level reached, latent) after each step."""
    states = []
    sampler(data.denoise, x_edm, sigmas, noise=SeededNoise([SEED]), callback=lambda step: states.append(step), **knobs)
    return [(float(sigmas[step.index + 1]), step.x) for step in states]


def assert_same_trajectory(ours, theirs, vp: bool) -> None:
    assert len(ours) == len(theirs), f"{len(ours)} steps against diffusers' {len(theirs)}"
    for k, ((level, x), other) in enumerate(zip(ours, theirs)):
        scale = math.sqrt(1 + level**2)
        ours_vp = x / scale
        theirs_vp = other if vp else other / scale
        gap = float((ours_vp - theirs_vp).abs().max())
        assert gap <= TOLERANCE, f"step {k}: max difference {gap:.3g} > {TOLERANCE}"


def compare(scheduler, steps: int, our_sigmas: torch.Tensor, sampler, knobs=None, step_kwargs=None) -> None:
    scheduler.set_timesteps(steps)
    theirs_ladder = oracle_ladder(scheduler)
    assert torch.allclose(our_sigmas.double(), theirs_ladder.double(), rtol=1e-5, atol=1e-6), (our_sigmas, theirs_ladder)
    data = GaussianData()
    x = start_noise([SEED]) * float(our_sigmas[0])
    theirs = run_diffusers(scheduler, x, data, **(step_kwargs or {}))
    ours = run_ours(sampler, our_sigmas, x, data, **(knobs or {}))
    assert_same_trajectory(ours, theirs, isinstance(scheduler, VP_SCHEDULERS))
    # The analytic problem must actually move the state: a far-from-trivial end point.
    assert float((ours[-1][1] - x).abs().max()) > 1.0


# -- sigma-space schedulers ---------------------------------------------------------------------


def test_euler_matches_euler_discrete_on_the_uniform_ladder():
    scheduler = EulerDiscreteScheduler(**SD_SCHEDULE, timestep_spacing="linspace")
    compare(scheduler, 10, sch.uniform_sigmas(10, MODEL_SIGMAS), s.sample_euler)


def test_euler_and_karras_sigmas_match_use_karras_sigmas():
    scheduler = EulerDiscreteScheduler(**SD_SCHEDULE, timestep_spacing="linspace", use_karras_sigmas=True)
    compare(scheduler, 12, sch.karras_sigmas(12, SIGMA_MIN, SIGMA_MAX), s.sample_euler)


def test_euler_ancestral_matches_with_a_shared_noise_sequence():
    scheduler = EulerAncestralDiscreteScheduler(**SD_SCHEDULE, timestep_spacing="linspace")
    generator = torch.Generator().manual_seed(SEED)  # the same stream SeededNoise([SEED]) draws
    compare(scheduler, 10, sch.uniform_sigmas(10, MODEL_SIGMAS), s.sample_euler_ancestral, step_kwargs={"generator": generator})


def test_heun_matches_heun_discrete():
    scheduler = HeunDiscreteScheduler(**SD_SCHEDULE, timestep_spacing="linspace")
    compare(scheduler, 10, sch.uniform_sigmas(10, MODEL_SIGMAS), s.sample_heun)


def test_dpm2_matches_kdpm2_discrete_with_karras_sigmas():
    scheduler = KDPM2DiscreteScheduler(**SD_SCHEDULE, timestep_spacing="linspace", use_karras_sigmas=True)
    compare(scheduler, 10, sch.karras_sigmas(10, SIGMA_MIN, SIGMA_MAX), s.sample_dpm_2)


def gauss_legendre_quad(function, start, end, **_ignored):
    """scipy.integrate.quad's call shape, by 8-point Gauss-Legendre (exact for the cubic
    Lagrange integrands diffusers' LMS asks for); scipy is not installed here."""
    nodes, weights = numpy.polynomial.legendre.leggauss(8)
    start, end = float(start), float(end)
    half, middle = (end - start) / 2, (end + start) / 2
    return sum(float(w) * float(function(half * n + middle)) for n, w in zip(nodes, weights)) * half, 0.0


def test_lms_matches_lms_discrete(monkeypatch):
    # The scheduler's module imports without scipy; only its integrator is missing.
    monkeypatch.setattr(scheduling_lms_discrete, "integrate", SimpleNamespace(quad=gauss_legendre_quad), raising=False)
    scheduler = scheduling_lms_discrete.LMSDiscreteScheduler(**SD_SCHEDULE, timestep_spacing="linspace")
    compare(scheduler, 10, sch.uniform_sigmas(10, MODEL_SIGMAS), s.sample_lms)


# -- variance-preserving schedulers ---------------------------------------------------------------


def test_dpmpp_2m_matches_dpm_solver_multistep_with_karras_sigmas():
    scheduler = DPMSolverMultistepScheduler(
        **SD_SCHEDULE, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True
    )
    compare(scheduler, 12, sch.karras_sigmas(12, SIGMA_MIN, SIGMA_MAX), s.sample_dpmpp_2m)


def ddim_scheduler(**extra):
    return DDIMScheduler(**SD_SCHEDULE, timestep_spacing="leading", steps_offset=1, set_alpha_to_one=True, clip_sample=False, **extra)


def test_ddim_matches_ddim_scheduler():
    compare(ddim_scheduler(), 20, sch.ddim_sigmas(20, MODEL_SIGMAS), s.sample_ddim)


def test_ddim_with_eta_matches_ddim_scheduler_noise_for_noise():
    generator = torch.Generator().manual_seed(SEED)
    compare(
        ddim_scheduler(), 10, sch.ddim_sigmas(10, MODEL_SIGMAS), s.sample_ddim, {"eta": 0.5}, {"eta": 0.5, "generator": generator}
    )


def test_plms_matches_pndm_without_runge_kutta_steps():
    scheduler = PNDMScheduler(**SD_SCHEDULE, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=True)
    compare(scheduler, 20, sch.ddim_sigmas(20, MODEL_SIGMAS), s.sample_plms)


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("order", [2, 3])
def test_unipc_matches_unipc_multistep(variant, order):
    # diffusers' bh1 computes B(h) * 0 = -inf * 0 = NaN on a final step to sigma 0, so bh1 is
    # compared on a ladder that ends at sigma_min (final_sigmas_type="sigma_min") instead.
    final = "zero" if variant == "bh2" else "sigma_min"
    scheduler = UniPCMultistepScheduler(
        **SD_SCHEDULE,
        solver_order=order,
        solver_type=variant,
        lower_order_final=True,
        timestep_spacing="linspace",
        final_sigmas_type=final,
    )
    sigmas = sch.sgm_uniform_sigmas(9, MODEL_SIGMAS, SIGMA_MIN, SIGMA_MAX)
    if final == "sigma_min":
        sigmas[-1] = SIGMA_MIN
    compare(scheduler, 9, sigmas, s.sample_unipc, {"order": order, "variant": variant})


# -- the v-prediction denoiser ------------------------------------------------------------------


def test_v_prediction_x0_matches_ddim_scheduler():
    scheduler = ddim_scheduler(prediction_type="v_prediction")
    scheduler.set_timesteps(20)
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(1, 4, 8, 8, generator=generator)
    v = torch.randn(1, 4, 8, 8, generator=generator)
    timestep = scheduler.timesteps[5]
    expected = scheduler.step(v, timestep, z).pred_original_sample
    abar = float(scheduler.alphas_cumprod[int(timestep)])
    sigma = math.sqrt((1 - abar) / abar)
    denoiser = DiscreteDenoiser.from_alphas_cumprod(lambda x, t: v, scheduler.alphas_cumprod, Prediction.V)
    result = denoiser(z * math.sqrt(1 + sigma**2), torch.tensor([sigma]))
    assert float((result - expected).abs().max()) <= TOLERANCE
