"""Samplers: pure functions that walk a sigma ladder from noise down to an image.

Every sampler has one signature::

    sample_x(denoiser, x, sigmas, *, noise, callback=None, **knobs) -> Tensor

in the formulation of Karras et al. 2022 (EDM): a latent at noise level sigma
is x = x0 + sigma * eps, ``denoiser(x, sigma)`` returns its estimate of x0
(``sigma`` is a 1-D tensor with one level per image), ``x`` arrives already
scaled to ``sigmas[0]`` and ``sigmas`` ends with 0, or, for A1111's timestep walks
(``timestep_walk.py``), at a training level near the bottom (t = 1 or 0), where the result is x at that
level (the caller turns it into the latent A1111 decodes). The ODE they integrate is
dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, eq. 3).

Randomness: every draw is ``noise.randn_like(x)``, whose row k comes from image
k's own generator, except in the SDE samplers (DPM++ SDE, 2M SDE, 3M SDE), whose
noise is the increment of each image's Brownian path between two levels,
``noise.between(x, sigma, sigma_next)`` (``brownian.py``). Nothing touches the
global torch RNG, so image k of a batch equals the same seed sampled alone.
Draws happen where A1111's (k-diffusion's) samplers make them, so a stream shared
by several draws lines up with A1111's: samplers with a stochastic knob (eta,
s_churn) draw only when it is non-zero, and only at steps that end above
sigma = 0; Restart and LCM always draw; DPM adaptive draws on accepted steps only.

Per-step scalars are computed in Python floats from the ladder, so batched and
single-image runs do identical arithmetic on each image.

Progress: after each step ``callback`` (if given) receives a frozen
``SamplerStep``; to stop, it raises ``SamplingInterrupted``, which propagates
to the caller unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from modules.sampling.brownian import IncrementSource
from modules.sampling.noise import NoiseSource
from modules.sampling.schedules import karras_sigmas

Denoiser = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True, eq=False)
class SamplerStep:
    """What a sampler reports after step ``index`` of ``total`` (0-based)."""

    index: int
    total: int
    sigma: float  # the level this step started from
    x: Tensor  # the latent after the step
    denoised: Tensor  # the denoiser's x0 estimate at the start of the step


StepCallback = Callable[[SamplerStep], object]


class SamplingInterrupted(Exception):
    """Raised by a step callback to stop sampling; ``latest`` may carry the last latent."""

    def __init__(self, message: str = "sampling interrupted", latest: Tensor | None = None):
        super().__init__(message)
        self.latest = latest


# -- shared pieces -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Model:
    """The denoiser called at one noise level for the whole batch."""

    denoiser: Denoiser
    sigma_dtype: torch.dtype

    def __call__(self, x: Tensor, sigma: float) -> Tensor:
        levels = torch.full((x.shape[0],), sigma, dtype=self.sigma_dtype, device=x.device)
        return self.denoiser(x, levels)

    def at(self, x: Tensor, sigmas: Sequence[float]) -> Tensor:
        """The denoiser with one level per image."""
        return self.denoiser(x, _levels(x, sigmas, self.sigma_dtype))


def _prepare(denoiser: Denoiser, sigmas: Tensor) -> tuple[_Model, list[float]]:
    """Checks the ladder and returns it as floats, with the denoiser bound to its dtype."""
    if sigmas.dim() != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D tensor of at least 2 levels, got shape {tuple(sigmas.shape)}")
    levels = [float(value) for value in sigmas.tolist()]
    if not all(math.isfinite(level) and level >= 0 for level in levels):
        raise ValueError(f"sigmas must be finite and non-negative, got {levels}")
    if levels[0] <= 0 or any(later >= earlier for earlier, later in zip(levels, levels[1:])):
        raise ValueError(f"sigmas must start above 0 and strictly decrease, got {levels}")
    dtype = sigmas.dtype if sigmas.is_floating_point() else torch.float32
    return _Model(denoiser, dtype), levels


def _report(callback: StepCallback | None, index: int, total: int, sigma: float, x: Tensor, denoised: Tensor) -> None:
    if callback is not None:
        callback(SamplerStep(index=index, total=total, sigma=sigma, x=x, denoised=denoised))


def _euler_to(x: Tensor, denoised: Tensor, sigma: float, sigma_next: float) -> Tensor:
    """One Euler step of the probability-flow ODE from sigma to sigma_next.

    x + (sigma_next - sigma) * (x - D) / sigma = D + (sigma_next / sigma) (x - D).
    The same update is the deterministic DDIM step (Song et al. 2021) and the
    first-order data-prediction step of DPM-Solver++ (Lu et al. 2022b, eq. 5:
    (sigma_next / sigma) x - expm1(-h) D with h = log(sigma / sigma_next)), so
    the higher-order DPM-Solver++ samplers below call it with a corrected D.
    """
    return x + (x - denoised) * ((sigma_next - sigma) / sigma)


def _ancestral_split(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step from sigma to sigma_next.

    The DDPM/DDIM posterior step (Ho et al. 2020; Song et al. 2021, eq. 16 with
    eta) in EDM terms: move deterministically to sigma_down, then add fresh
    noise of std sigma_up, with sigma_down^2 + sigma_up^2 = sigma_next^2.
    """
    if eta == 0 or sigma_next == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - up**2), up


def _add_noise(x: Tensor, noise: NoiseSource, std: float) -> Tensor:
    return x + noise.randn_like(x) * std


def _churn(
    x: Tensor,
    sigma: float,
    steps: int,
    noise: NoiseSource,
    s_churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
) -> tuple[Tensor, float]:
    """Karras et al. 2022, Algorithm 2, lines 4-6: raise the level to sigma_hat = (1 + gamma) sigma.

    gamma = min(s_churn / N, sqrt(2) - 1) inside [s_tmin, s_tmax], else 0.
    A1111 (k-diffusion) draws a noise every step, used or not; with churn on, steps
    outside [s_tmin, s_tmax] draw too, so later steps see the same noise stream.
    """
    if s_churn <= 0:
        return x, sigma
    draw = noise.randn_like(x)
    gamma = min(s_churn / steps, math.sqrt(2) - 1) if s_tmin <= sigma <= s_tmax else 0.0
    if gamma <= 0:
        return x, sigma
    sigma_hat = sigma * (1 + gamma)
    return x + draw * (s_noise * math.sqrt(sigma_hat**2 - sigma**2)), sigma_hat


# -- Euler, Heun, DPM2 (Karras et al. 2022) --------------------------------------------------------


def sample_euler(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
) -> Tensor:
    """Euler's method on the probability-flow ODE, with optional churn (Karras et al. 2022, Alg. 2)."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    for i in range(steps):
        x, sigma_hat = _churn(x, levels[i], steps, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat)
        x = _euler_to(x, denoised, sigma_hat, levels[i + 1])
        _report(callback, i, steps, levels[i], x, denoised)
    return x


def sample_heun(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
) -> Tensor:
    """Heun's second-order method (Karras et al. 2022, Alg. 2); Euler for the final step to 0."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    for i in range(steps):
        x, sigma_hat = _churn(x, levels[i], steps, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat)
        x = _heun_to(model, x, denoised, sigma_hat, levels[i + 1])
        _report(callback, i, steps, levels[i], x, denoised)
    return x


def _heun_to(model: _Model, x: Tensor, denoised: Tensor, sigma: float, sigma_next: float) -> Tensor:
    """Trapezoidal correction of an Euler step (Karras et al. 2022, Alg. 1 lines 7-8)."""
    predicted = _euler_to(x, denoised, sigma, sigma_next)
    if sigma_next == 0:
        return predicted
    denoised_next = model(predicted, sigma_next)
    slope = (x - denoised) / sigma
    slope_next = (predicted - denoised_next) / sigma_next
    return x + (slope + slope_next) * ((sigma_next - sigma) / 2)


def sample_dpm_2(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
) -> Tensor:
    """Second-order midpoint steps in log sigma (DPM-Solver-2 of Lu et al. 2022, as framed by
    Karras et al. 2022): the slope is taken at the geometric mean of the two levels."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    for i in range(steps):
        x, sigma_hat = _churn(x, levels[i], steps, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat)
        x = _midpoint_to(model, x, denoised, sigma_hat, levels[i + 1])
        _report(callback, i, steps, levels[i], x, denoised)
    return x


def _midpoint_to(model: _Model, x: Tensor, denoised: Tensor, sigma: float, sigma_next: float) -> Tensor:
    """Euler to sqrt(sigma * sigma_next), slope there, full step with that slope; Euler to 0."""
    if sigma_next == 0:
        return _euler_to(x, denoised, sigma, sigma_next)
    sigma_mid = math.exp((math.log(sigma) + math.log(sigma_next)) / 2)
    x_mid = _euler_to(x, denoised, sigma, sigma_mid)
    denoised_mid = model(x_mid, sigma_mid)
    return x + (x_mid - denoised_mid) * ((sigma_next - sigma) / sigma_mid)


# -- ancestral samplers ---------------------------------------------------------------------------


def sample_euler_ancestral(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """Euler to sigma_down, then fresh noise up to sigma_next (ancestral sampling, Ho et al. 2020)."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    for i in range(steps):
        denoised = model(x, levels[i])
        down, up = _ancestral_split(levels[i], levels[i + 1], eta)
        x = _euler_to(x, denoised, levels[i], down)
        if levels[i + 1] > 0 and eta > 0:
            x = _add_noise(x, noise, s_noise * up)
        _report(callback, i, steps, levels[i], x, denoised)
    return x


def sample_dpm_2_ancestral(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """DPM2's midpoint step to sigma_down, then fresh noise up to sigma_next."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    for i in range(steps):
        denoised = model(x, levels[i])
        down, up = _ancestral_split(levels[i], levels[i + 1], eta)
        x = _midpoint_to(model, x, denoised, levels[i], down)
        if levels[i + 1] > 0 and eta > 0:
            x = _add_noise(x, noise, s_noise * up)
        _report(callback, i, steps, levels[i], x, denoised)
    return x


def sample_dpmpp_2s_ancestral(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """DPM-Solver++(2S) (Lu et al. 2022b, Alg. 1, r = 1/2) to sigma_down, then fresh noise."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    for i in range(steps):
        sigma = levels[i]
        denoised = model(x, sigma)
        down, up = _ancestral_split(sigma, levels[i + 1], eta)
        if down == 0:
            x = _euler_to(x, denoised, sigma, down)
        else:
            sigma_mid = math.sqrt(sigma * down)  # half way in lambda = -log sigma
            x_mid = _euler_to(x, denoised, sigma, sigma_mid)
            x = _euler_to(x, model(x_mid, sigma_mid), sigma, down)
        if levels[i + 1] > 0 and eta > 0:
            x = _add_noise(x, noise, s_noise * up)
        _report(callback, i, steps, sigma, x, denoised)
    return x


# -- DPM-Solver++ multistep and SDE samplers (Lu et al. 2022b) -------------------------------------


def sample_dpmpp_2m(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2) for uneven steps: the previous x0 estimate
    extrapolates the current one by the ratio r of the step sizes in lambda = -log sigma."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    previous: Tensor | None = None
    previous_h = 0.0
    for i in range(steps):
        sigma, sigma_next = levels[i], levels[i + 1]
        denoised = model(x, sigma)
        if sigma_next == 0:
            x = denoised
        else:
            h = math.log(sigma / sigma_next)
            blended = denoised
            if previous is not None:
                half_inverse_r = h / previous_h / 2  # 1 / (2r), r = h_previous / h
                blended = denoised * (1 + half_inverse_r) - previous * half_inverse_r
            x = _euler_to(x, blended, sigma, sigma_next)
            previous_h = h
        previous = denoised
        _report(callback, i, steps, sigma, x, denoised)
    return x


def sample_dpmpp_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: IncrementSource,
    callback: StepCallback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 0.5,
) -> Tensor:
    """Stochastic DPM-Solver++ single-step, second order (Lu et al. 2022b): an ancestral
    first-order step to the intermediate level sigma * e^(-r h), then the full step with the
    x0 estimates of both levels mixed 1 - 1/(2r) : 1/(2r), each step adding its own noise.

    The two noises are increments of one Brownian path per image, from sigma to the
    intermediate level and from sigma to the next one (``noise.between``), so they are
    correlated as A1111's Brownian tree makes them.
    """
    if not 0.0 < r < 1.0:
        raise ValueError(f"DPM++ SDE: r must lie strictly between 0 and 1, got {r}")
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    for i in range(steps):
        sigma, sigma_next = levels[i], levels[i + 1]
        denoised = model(x, sigma)
        if sigma_next == 0:
            x = _euler_to(x, denoised, sigma, sigma_next)
        else:
            sigma_mid = sigma * math.exp(-r * math.log(sigma / sigma_next))
            partial = noise.between(x, sigma, sigma_mid) if eta > 0 else None
            x_mid = _ancestral_euler(x, denoised, sigma, sigma_mid, eta, partial, s_noise)
            weight = 1 / (2 * r)
            blended = denoised * (1 - weight) + model(x_mid, sigma_mid) * weight
            full = noise.between(x, sigma, sigma_next) if eta > 0 else None
            x = _ancestral_euler(x, blended, sigma, sigma_next, eta, full, s_noise)
        _report(callback, i, steps, sigma, x, denoised)
    return x


def _ancestral_euler(
    x: Tensor, denoised: Tensor, sigma: float, sigma_next: float, eta: float, draw: Tensor | None, s_noise: float
) -> Tensor:
    """Euler to sigma_down, plus the given unit-variance ``draw`` scaled to sigma_up."""
    down, up = _ancestral_split(sigma, sigma_next, eta)
    x = _euler_to(x, denoised, sigma, down)
    return x if draw is None else x + draw * (s_noise * up)


def sample_dpmpp_2m_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: IncrementSource,
    callback: StepCallback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    solver_type: str = "midpoint",
) -> Tensor:
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b, appendix) with eta scaling the injected noise.

    Per step, with h = log(sigma / sigma_next) and g = (1 + eta) h:
    x <- (sigma_next / sigma) e^(-eta h) x + (1 - e^(-g)) D + correction
         + sigma_next sqrt(1 - e^(-2 eta h)) z,
    the second-order correction from the previous x0 estimate being the
    "midpoint" or the "heun" form of the multistep expansion.
    """
    if solver_type not in ("midpoint", "heun"):
        raise ValueError(f"DPM++ 2M SDE: solver_type must be 'midpoint' or 'heun', got {solver_type!r}")
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    previous: Tensor | None = None
    previous_h = 0.0
    for i in range(steps):
        sigma, sigma_next = levels[i], levels[i + 1]
        denoised = model(x, sigma)
        if sigma_next == 0:
            x = denoised
        else:
            h = math.log(sigma / sigma_next)
            x = _exponential_sde_base(x, denoised, sigma, sigma_next, h, eta)
            if previous is not None:
                decay = -math.expm1(-(1 + eta) * h)
                weight = 0.5 * decay if solver_type == "midpoint" else 1 - decay / ((1 + eta) * h)
                x = x + (denoised - previous) * (weight * h / previous_h)
            x = _sde_noise(x, noise, sigma, sigma_next, h, eta, s_noise)
            previous_h = h
        previous = denoised
        _report(callback, i, steps, sigma, x, denoised)
    return x


def _exponential_sde_base(
    x: Tensor, denoised: Tensor, sigma: float, sigma_next: float, h: float, eta: float
) -> Tensor:
    """First-order part of the data-prediction SDE step:
    (sigma_next / sigma) e^(-eta h) x + (1 - e^(-(1 + eta) h)) D."""
    return x * (sigma_next / sigma * math.exp(-eta * h)) + denoised * -math.expm1(-(1 + eta) * h)


def _sde_noise(
    x: Tensor, noise: IncrementSource, sigma: float, sigma_next: float, h: float, eta: float, s_noise: float
) -> Tensor:
    """The SDE step's noise, the path's increment over the step scaled to std
    sigma_next sqrt(1 - e^(-2 eta h)); none when eta = 0."""
    if eta <= 0:
        return x
    return x + noise.between(x, sigma, sigma_next) * (s_noise * sigma_next * math.sqrt(-math.expm1(-2 * eta * h)))


def sample_dpmpp_3m_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: IncrementSource,
    callback: StepCallback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """Third-order multistep SDE-DPM-Solver++ (Lu et al. 2022b): the first-order SDE step plus
    phi_2 and phi_3 terms (exponential-integrator phi functions, Hochbruck & Ostermann 2010)
    built from divided differences of the last three x0 estimates over uneven steps."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    history: list[tuple[Tensor, float]] = []  # (x0 estimate, step size h after it), newest last
    for i in range(steps):
        sigma, sigma_next = levels[i], levels[i + 1]
        denoised = model(x, sigma)
        if sigma_next == 0:
            x = denoised
        else:
            h = math.log(sigma / sigma_next)
            x = _exponential_sde_base(x, denoised, sigma, sigma_next, h, eta)
            x = x + _third_order_terms(denoised, history, h, (1 + eta) * h)
            x = _sde_noise(x, noise, sigma, sigma_next, h, eta, s_noise)
            history = (history + [(denoised, h)])[-2:]
        _report(callback, i, steps, sigma, x, denoised)
    return x


def _third_order_terms(
    denoised: Tensor, history: list[tuple[Tensor, float]], h: float, g: float
) -> Tensor | float:
    """phi_2 d1 - phi_3 d2 from up to two earlier x0 estimates (0 without history).

    phi_2 = 1 - (1 - e^-g)/g and phi_3 = phi_2/g - 1/2; d1 is the first derivative
    of D and d2 the second divided difference, in units of the current step h.
    d2 is half the second derivative, so this weight (the published
    DPM-Solver++(3M) one, which A1111 and diffusers use) makes the method second
    order on uneven steps rather than third; it is kept for A1111 parity.
    """
    if not history:
        return 0.0
    phi_2 = math.expm1(-g) / g + 1
    if len(history) == 1:
        (older, h_1), = history
        return (denoised - older) * (phi_2 * h / h_1)
    (oldest, h_2), (older, h_1) = history
    r0, r1 = h_1 / h, h_2 / h
    slope_0 = (denoised - older) / r0
    slope_1 = (older - oldest) / r1
    curvature = (slope_0 - slope_1) / (r0 + r1)
    d1 = slope_0 + curvature * r0
    return d1 * phi_2 - curvature * (phi_2 / g - 0.5)


# -- linear multistep ----------------------------------------------------------------------------


def sample_lms(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    order: int = 4,
) -> Tensor:
    """Linear multistep on the ODE in sigma (Karras et al. 2022's "LMS"): the slope history is
    interpolated by a Lagrange polynomial through the last ``order`` levels and integrated
    exactly over the step (Adams-Bashforth with uneven steps)."""
    if order < 1:
        raise ValueError(f"LMS: order must be at least 1, got {order}")
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    slopes: list[Tensor] = []  # newest last
    for i in range(steps):
        denoised = model(x, levels[i])
        slopes = (slopes + [(x - denoised) / levels[i]])[-order:]
        weights = lms_coefficients(levels, i, len(slopes))
        update = slopes[-1] * weights[0]
        for weight, slope in zip(weights[1:], reversed(slopes[:-1])):
            update = update + slope * weight
        x = x + update
        _report(callback, i, steps, levels[i], x, denoised)
    return x


def lms_coefficients(levels: Sequence[float], i: int, count: int) -> list[float]:
    """Integrals over [levels[i], levels[i+1]] of the Lagrange basis polynomials of the nodes
    levels[i], levels[i-1], ..., levels[i-count+1] (node j first), computed in closed form."""
    nodes = [levels[i - j] for j in range(count)]
    return [_integrate_basis(nodes, j, levels[i], levels[i + 1]) for j in range(count)]


def _integrate_basis(nodes: list[float], j: int, start: float, end: float) -> float:
    """Integral of prod_{k != j} (t - nodes[k]) / (nodes[j] - nodes[k]) from start to end."""
    coefficients = [1.0]  # polynomial in t, lowest degree first
    for k, node in enumerate(nodes):
        if k == j:
            continue
        scale = 1.0 / (nodes[j] - node)
        shifted = [0.0] + coefficients
        coefficients = [(high - node * low) * scale for high, low in zip(shifted, coefficients + [0.0])]
    antiderivative = [c / (power + 1) for power, c in enumerate(coefficients)]
    return sum(c * (end ** (p + 1) - start ** (p + 1)) for p, c in enumerate(antiderivative))


# -- DPM-Solver with fixed and adaptive step sizes (Lu et al. 2022a) -------------------------------


def sample_dpm_fast(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    sigma_range: tuple[float, float] | None = None,
) -> Tensor:
    """DPM-Solver "fast" (Lu et al. 2022a, section 3.4): the model-evaluation budget N = steps is
    spent on floor(N/3)+1 intervals evenly spaced in lambda = -log sigma, third-order steps
    with a second- and/or first-order tail, from sigmas[0] to the ladder's last non-zero level,
    or over ``sigma_range`` = (sigma_min, sigma_max) when given (A1111's txt2img solves over the
    model's whole range whatever the ladder; see ``solve_range``).

    Like A1111 it ends at sigma_min, not at 0; eta > 0 makes each
    step ancestral, as A1111 does with its default eta of 1.
    """
    model, levels = _prepare(denoiser, sigmas)
    sigma_min, sigma_max = solve_range(levels, sigma_range)
    if sigma_min == sigma_max:
        return sample_euler(denoiser, x, sigmas, noise=noise, callback=callback)
    orders = dpm_fast_orders(len(levels) - 1)
    lambdas = _even_split(-math.log(sigma_max), -math.log(sigma_min), len(orders))
    batch = x.shape[0]
    for i, order in enumerate(orders):
        sigma, sigma_next = math.exp(-lambdas[i]), math.exp(-lambdas[i + 1])
        target, up = _ancestral_target(sigma, sigma_next, sigma_min, eta)
        x, _, denoised = _dpm_solver_pair(model, x, [sigma] * batch, [target] * batch, order)
        if eta > 0:
            x = _add_noise(x, noise, s_noise * up)
        _report(callback, i, len(orders), sigma, x, denoised)
    return x


def solve_range(levels: list[float], sigma_range: tuple[float, float] | None) -> tuple[float, float]:
    """(sigma_min, sigma_max) for DPM fast and adaptive: ``sigma_range`` when given, else the
    ladder's last non-zero and first level."""
    if sigma_range is None:
        positive = [level for level in levels if level > 0]
        return positive[-1], positive[0]
    low, high = (float(value) for value in sigma_range)
    if not 0 < low <= high:
        raise ValueError(f"sigma_range: need 0 < sigma_min <= sigma_max, got {low}, {high}")
    return low, high


def dpm_fast_orders(evaluations: int) -> list[int]:
    """Orders of DPM-Solver-fast's steps for a budget of model evaluations (Lu et al. 2022a, 3.4)."""
    if evaluations < 1:
        raise ValueError(f"DPM fast needs at least one model evaluation, got {evaluations}")
    intervals = evaluations // 3 + 1
    if evaluations % 3 == 0:
        return [3] * (intervals - 2) + [2, 1]
    return [3] * (intervals - 1) + [evaluations % 3]


def _even_split(start: float, end: float, parts: int) -> list[float]:
    return [start + (end - start) * k / parts for k in range(parts + 1)]


def _ancestral_target(sigma: float, sigma_next: float, sigma_min: float, eta: float) -> tuple[float, float]:
    """Where a DPM-Solver step deterministically lands, and the noise std that then tops it up
    to sigma_next; the landing level never goes below the end of the integration range."""
    if eta <= 0:
        return sigma_next, 0.0
    down, _ = _ancestral_split(sigma, sigma_next, eta)
    target = max(sigma_min, down)
    return target, math.sqrt(max(sigma_next**2 - target**2, 0.0))


def _column(x: Tensor, values: Sequence[float]) -> Tensor:
    """Per-image scalars as a [B, 1, 1, ...] tensor that broadcasts against x."""
    return _levels(x, values, x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def _levels(x: Tensor, values: Sequence[float], dtype: torch.dtype) -> Tensor:
    """One value per image as a tensor on x's device. The same value for every image (all
    samplers but the adaptive one) is filled there; a host list would be copied over, and on
    CUDA such a copy waits for the queued work, once per step."""
    values = list(values)
    if all(value == values[0] for value in values):
        return torch.full((len(values),), values[0], dtype=dtype, device=x.device)
    return torch.tensor(values, dtype=dtype, device=x.device)


def _dpm_solver_pair(
    model: _Model, x: Tensor, sigma: Sequence[float], sigma_next: Sequence[float], order: int
) -> tuple[Tensor, Tensor | None, Tensor]:
    """One DPM-Solver-1/2/3 step (Lu et al. 2022a, Alg. 1, 4 and 5; eps form with alpha = 1 and
    lambda = -log sigma) with per-image levels. Returns the step of ``order``, the embedded
    step of order - 1 that shares its evaluations (None for order 1), and the first x0 estimate.

    sigma_next * expm1(h) is written sigma - sigma_next, the first-order (DDIM) drop.
    """
    h = [math.log(s / n) for s, n in zip(sigma, sigma_next)]
    drop = _column(x, [s - n for s, n in zip(sigma, sigma_next)])
    denoised = model.at(x, sigma)
    eps = (x - denoised) / _column(x, sigma)
    first = x - eps * drop
    if order == 1:
        return first, None, denoised
    r1 = 0.5 if order == 2 else 1 / 3
    sigma_1 = [s * math.exp(-r1 * hk) for s, hk in zip(sigma, h)]
    eps_1 = _eps(model, x - eps * _column(x, [s - s1 for s, s1 in zip(sigma, sigma_1)]), sigma_1)
    second = first - (eps_1 - eps) * (drop / (2 * r1))
    if order == 2:
        return second, first, denoised
    r2 = 2 / 3
    sigma_2 = [s * math.exp(-r2 * hk) for s, hk in zip(sigma, h)]
    bend = _column(x, [s2 * (r2 / r1) * (math.expm1(r2 * hk) / (r2 * hk) - 1) for s2, hk in zip(sigma_2, h)])
    u2 = x - eps * _column(x, [s - s2 for s, s2 in zip(sigma, sigma_2)]) - (eps_1 - eps) * bend
    tail = _column(x, [n / r2 * (math.expm1(hk) / hk - 1) for n, hk in zip(sigma_next, h)])
    return first - (_eps(model, u2, sigma_2) - eps) * tail, second, denoised


def _eps(model: _Model, x: Tensor, sigma: Sequence[float]) -> Tensor:
    """The noise estimate (x - D) / sigma, one level per image."""
    return (x - model.at(x, sigma)) / _column(x, sigma)


@dataclass(frozen=True)
class _StepSize:
    """Adaptive step-size state of one image: the next step h (in lambda) and the inverse
    errors of the last two accepted steps."""

    h: float
    history: tuple[float, float] | None = None


@dataclass(frozen=True)
class _StepControl:
    """PID step-size control on the inverse error (Soderlind 2003, "Digital filters in adaptive
    time-stepping"), with the 1 + atan(f - 1) limiter; integral-only by default, which is the
    classic h <- h * err^(-1/order) rule of Lu et al. 2022a, section 4."""

    gains: tuple[float, float, float]
    accept_safety: float

    def propose(self, state: _StepSize, error: float) -> tuple[bool, _StepSize]:
        inverse = 1 / (error + 1e-8)
        last, before = state.history or (inverse, inverse)
        factor = inverse ** self.gains[0] * last ** self.gains[1] * before ** self.gains[2]
        factor = 1 + math.atan(factor - 1)
        accepted = factor >= self.accept_safety
        history = (inverse, last) if accepted else (last, before)
        return accepted, _StepSize(state.h * factor, history)


# A guard against a step size that never lets the walk finish (e.g. a denoiser gone wild).
_MAX_ADAPTIVE_ATTEMPTS = 10_000


def sample_dpm_adaptive(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    order: int = 3,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.05,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
    dcoeff: float = 0.0,
    accept_safety: float = 0.81,
    sigma_range: tuple[float, float] | None = None,
) -> Tensor:
    """DPM-Solver with adaptive step size (Lu et al. 2022a, section 4): each attempt computes
    an order-``order`` step and its embedded lower-order step from the same evaluations, and
    their scaled difference decides acceptance and the next step size.

    Each image has its own step sizes and draws its ancestral noise on its own
    accepted steps only, so an image's result does not depend on its batch and a
    batch of one is A1111's picture. (A1111 shares one error norm, hence one
    accept/reject decision and one step size, across the batch.) Solves from the ladder's first
    to its last non-zero level, or over ``sigma_range`` as DPM fast, and ends there (not at 0),
    as A1111 does. ``callback`` reports progress as
    the fraction of the lambda range covered, so its index may repeat.
    """
    if order not in (2, 3):
        raise ValueError(f"DPM adaptive: order must be 2 or 3, got {order}")
    if atol <= 0 or rtol < 0:
        raise ValueError(f"DPM adaptive: tolerances must satisfy atol > 0 and rtol >= 0, got {atol}, {rtol}")
    model, levels = _prepare(denoiser, sigmas)
    sigma_min, sigma_max = solve_range(levels, sigma_range)
    if sigma_min == sigma_max:
        return sample_euler(denoiser, x, sigmas, noise=noise, callback=callback)
    gain_order = 1.5 if eta > 0 else order
    control = _StepControl(
        ((pcoeff + icoeff + dcoeff) / gain_order, -(pcoeff + 2 * dcoeff) / gain_order, dcoeff / gain_order),
        accept_safety,
    )
    walk = _AdaptiveWalk(-math.log(sigma_max), -math.log(sigma_min), x.shape[0], h_init)
    x_previous = x
    for _ in range(_MAX_ADAPTIVE_ATTEMPTS):
        if walk.finished:
            return x
        attempt = walk.plan(eta)
        x_high, x_low, denoised = _dpm_solver_pair(model, x, attempt.sigma, attempt.target, order)
        errors = [_scaled_error(x_low[k], x_high[k], x_previous[k], rtol, atol) for k in range(x.shape[0])]
        accepted = walk.advance(control, attempt, errors)
        if eta > 0 and any(accepted):
            # Only an accepted step draws (as k-diffusion): a rejected attempt leaves the stream alone.
            draw = noise.randn_like(x, rows=accepted)
            x_high = x_high + draw * _column(x, [s_noise * value for value in attempt.up])
        mask = _column(x, [1.0 if flag else 0.0 for flag in accepted]) > 0
        x, x_previous = torch.where(mask, x_high, x), torch.where(mask, x_low, x_previous)
        total = len(levels) - 1
        _report(callback, walk.progress_index(total), total, max(attempt.sigma), x, denoised)
    raise RuntimeError(f"DPM adaptive: sigma_min was not reached in {_MAX_ADAPTIVE_ATTEMPTS} attempts")


@dataclass(frozen=True)
class _Attempt:
    """One DPM adaptive attempt, per image: current sigma, the landing level of the
    deterministic step, the ancestral noise std, and the lambda reached if accepted."""

    sigma: tuple[float, ...]
    target: tuple[float, ...]
    up: tuple[float, ...]
    goal: tuple[float, ...]


class _AdaptiveWalk:
    """Per-image position in lambda = -log sigma and step-size state of DPM adaptive.

    Local to one sampler call. A finished image is given a harmless dummy step
    (one unit of lambda) whose result is discarded, so the batch stays together.
    """

    def __init__(self, start: float, end: float, batch: int, h_init: float):
        self.start, self.end = start, end
        self.position = [start] * batch
        self.states = [_StepSize(abs(h_init))] * batch

    @property
    def finished(self) -> bool:
        return not any(self._active(k) for k in range(len(self.position)))

    def _active(self, k: int) -> bool:
        return self.position[k] < self.end - 1e-5

    def plan(self, eta: float) -> _Attempt:
        rows = [self._plan_image(k, eta) for k in range(len(self.position))]
        sigma, target, up, goal = (tuple(column) for column in zip(*rows))
        return _Attempt(sigma, target, up, goal)

    def _plan_image(self, k: int, eta: float) -> tuple[float, float, float, float]:
        position = self.position[k]
        if not self._active(k):
            return math.exp(-position), math.exp(-position - 1.0), 0.0, position + 1.0
        goal = min(self.end, position + self.states[k].h)
        landing, std = _ancestral_target(math.exp(-position), math.exp(-goal), math.exp(-self.end), eta)
        return math.exp(-position), landing, std, goal

    def advance(self, control: _StepControl, attempt: _Attempt, errors: list[float]) -> list[bool]:
        """Feeds each active image's error to the controller; moves the accepted ones."""
        accepted = []
        for k, error in enumerate(errors):
            if not self._active(k):
                accepted.append(False)
                continue
            if not math.isfinite(error):
                raise RuntimeError(f"DPM adaptive: non-finite step error for image {k}; the denoiser returned NaN or inf")
            ok, self.states[k] = control.propose(self.states[k], error)
            if ok:
                self.position[k] = attempt.goal[k]
            accepted.append(ok)
        return accepted

    def progress_index(self, total: int) -> int:
        covered = min((p - self.start) / (self.end - self.start) for p in self.position)
        return max(0, min(total - 1, int(covered * total)))


def _scaled_error(x_low: Tensor, x_high: Tensor, x_previous: Tensor, rtol: float, atol: float) -> float:
    """RMS of the embedded-pair difference over the tolerance max(atol, rtol * max|x|) (Lu et al. 2022a, eq. 13)."""
    tolerance = (torch.maximum(x_low.abs(), x_previous.abs()) * rtol).clamp_min(atol)
    return float(torch.linalg.vector_norm((x_low - x_high) / tolerance)) / math.sqrt(x_low.numel())


# -- Restart (Xu et al. 2023) ------------------------------------------------------------------------

# The restart interval A1111 uses for Stable Diffusion: jump back from sigma ~0.1 to ~2.
RESTART_SIGMA_LOW = 0.1
RESTART_SIGMA_HIGH = 2.0


def sample_restart(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    s_noise: float = 1.0,
) -> Tensor:
    """Restart sampling (Xu et al. 2023, "Restart Sampling for Improving Generative Processes"):
    Heun ODE steps, and at the low end of the restart interval fresh noise that takes x back up
    to its high end, followed by Heun steps down again (the forward-backward cycle of Alg. 1).

    The plan follows A1111: below 20 steps no restart (plain Heun on ``sigmas``);
    from 20 steps, the ladder is rebuilt as Karras sigmas between sigmas[0] and
    the last non-zero level, with 9 restart steps done once (steps // 4 done
    twice from 36 steps) inside the same step budget.
    """
    model, levels = _prepare(denoiser, sigmas)
    plan = restart_plan(levels)
    reached: float | None = None
    for j, (sigma, sigma_next) in enumerate(plan):
        if reached is not None and reached < sigma:
            x = _add_noise(x, noise, s_noise * math.sqrt(sigma**2 - reached**2))
        denoised = model(x, sigma)
        x = _heun_to(model, x, denoised, sigma, sigma_next)
        _report(callback, j, len(plan), sigma, x, denoised)
        reached = sigma_next
    return x


def restart_plan(levels: Sequence[float]) -> list[tuple[float, float]]:
    """Every Heun step of Restart as (from, to) levels, restart segments included."""
    steps = len(levels) - 1
    if steps < 20:
        return list(zip(levels, levels[1:]))
    segment_steps, repeats = (steps // 4, 2) if steps >= 36 else (9, 1)
    main = karras_sigmas(steps - segment_steps * repeats, levels[-2], levels[0]).tolist()
    low, high = _nearest(main, RESTART_SIGMA_LOW), _nearest(main, RESTART_SIGMA_HIGH)
    plan = []
    for i in range(len(main) - 1):
        plan.append((main[i], main[i + 1]))
        if i + 1 == low and high < low:
            segment = karras_sigmas(segment_steps + 1, main[low], main[high]).tolist()[:-1]
            plan.extend(list(zip(segment, segment[1:])) * repeats)
    return plan


def _nearest(values: Sequence[float], target: float) -> int:
    """Index of the first value closest to target."""
    return min(range(len(values)), key=lambda k: abs(values[k] - target))


# -- timestep-based samplers, expressed over sigmas -------------------------------------------------


def sample_ddim(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    eta: float = 0.0,
) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12), over any sigma ladder.

    Dividing eq. 12 by sqrt(abar_prev) turns it into EDM form: x_next = D +
    sigma_down (x - D) / sigma + sigma_up z, where sigma_up = sigma_t(eta) /
    sqrt(abar_prev) of eq. 16 equals eta sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2)
    — an ancestral Euler step. eta = 0 (A1111's default) is deterministic.
    """
    return sample_euler_ancestral(denoiser, x, sigmas, noise=noise, callback=callback, eta=eta, s_noise=1.0)


# Adams-Bashforth weights for equal steps, newest slope first (PNDM, Liu et al. 2022, eq. 12).
_ADAMS_BASHFORTH = ((1.0,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


def sample_plms(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
) -> Tensor:
    """Pseudo linear multistep (PLMS, Liu et al. 2022, "Pseudo Numerical Methods for Diffusion
    Models"): DDIM's transfer step with the noise estimate replaced by an Adams-Bashforth blend
    of the last four, as if steps were equal; the first step blends the noise estimates at both
    ends of an Euler step (pseudo improved Euler). In EDM form eps = (x - D) / sigma and the
    transfer step is x + (sigma_next - sigma) eps."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    history: list[Tensor] = []  # earlier noise estimates, newest last
    for i in range(steps):
        sigma, sigma_next = levels[i], levels[i + 1]
        denoised = model(x, sigma)
        eps = (x - denoised) / sigma
        if history:
            blended = eps * _ADAMS_BASHFORTH[len(history)][0]
            for weight, older in zip(_ADAMS_BASHFORTH[len(history)][1:], reversed(history)):
                blended = blended + older * weight
        elif sigma_next > 0:
            x_end = x + eps * (sigma_next - sigma)
            blended = (eps + (x_end - model(x_end, sigma_next)) / sigma_next) / 2
        else:
            blended = eps
        x = x + blended * (sigma_next - sigma)
        history = (history + [eps])[-3:]
        _report(callback, i, steps, sigma, x, denoised)
    return x


def sample_lcm(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
) -> Tensor:
    """Multistep consistency sampling (Song et al. 2023; Luo et al. 2023, "Latent Consistency
    Models", Alg. 1): take the x0 estimate, then noise it afresh to the next level."""
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    for i in range(steps):
        denoised = model(x, levels[i])
        x = _add_noise(denoised, noise, levels[i + 1]) if levels[i + 1] > 0 else denoised
        _report(callback, i, steps, levels[i], x, denoised)
    return x


UNIPC_VARIANTS = ("bh1", "bh2", "vary_coeff")


def sample_unipc(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseSource,
    callback: StepCallback | None = None,
    order: int = 3,
    variant: str = "bh1",
    lower_order_final: bool = True,
) -> Tensor:
    """UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework"), data
    prediction, multistep: each new x0 estimate first corrects the previous step (UniC),
    then drives the next one (UniP), both of ``order`` (lower while warming up).

    ``variant`` picks the coefficients: "bh1" (B(h) = h, A1111's default) or "bh2"
    (B(h) = e^h - 1), solved from the order conditions, or "vary_coeff", the reference
    code's inverse-Vandermonde form (``_vary_coeff_weights``). With ``lower_order_final``
    the last steps drop to order 2 and 1 (A1111's and diffusers' default); a step that ends
    at sigma = 0 is always first order, where it returns the x0 estimate. Fewer steps than
    ``order`` lower the order to the steps (A1111's port stops with an error there).
    """
    if order < 1:
        raise ValueError(f"UniPC: order must be at least 1, got {order}")
    if variant not in UNIPC_VARIANTS:
        raise ValueError(f"UniPC: variant must be one of {', '.join(UNIPC_VARIANTS)}, got {variant!r}")
    model, levels = _prepare(denoiser, sigmas)
    steps = len(levels) - 1
    order = min(order, steps)  # A1111's port refuses more; this is the walk it takes at order = steps
    history: list[tuple[float, Tensor]] = []  # (lambda = -log sigma, x0 estimate), newest last
    start: tuple[Tensor, int] | None = None  # where the last prediction started, and its order
    for i in range(steps):
        sigma = levels[i]
        denoised = model(x, sigma)
        if start is not None:
            x = _unipc_update(start[0], history, -math.log(sigma), start[1], variant, newest=denoised)
        history = (history + [(-math.log(sigma), denoised)])[-order:]
        # the reference loop: orders 1 .. order-1 to warm up, then ``order``, or with
        # lower_order_final never more than the steps left
        step_order = i + 1 if i + 1 < order else (min(order, steps - i) if lower_order_final else order)
        start = (x, step_order)
        if levels[i + 1] == 0:
            x = denoised
        else:
            x = _unipc_update(x, history, -math.log(levels[i + 1]), step_order, variant, newest=None)
        _report(callback, i, steps, sigma, x, denoised)
    return x


def _unipc_update(
    x: Tensor, history: list[tuple[float, Tensor]], lambda_next: float, order: int, variant: str, newest: Tensor | None
) -> Tensor:
    """UniP (newest=None) or UniC (newest = the x0 estimate at lambda_next) from the last point
    of ``history`` to lambda_next, using ``order - 1`` earlier points of the history.

    x_next = (sigma_next / sigma) x - expm1(-h) D0 - B(h) sum_k rho_k D1_k, with D1_k the
    differences of the x0 estimates divided by r_k = (lambda_k - lambda_0) / h and rho solving
    the order conditions sum_k rho_k r_k^(n-1) = n! phi_(n+1)(h) h / B(h) (Zhao et al. 2023, eq. 8-10).
    """
    lambda_0, denoised_0 = history[-1]
    h = lambda_next - lambda_0
    x_next = x * math.exp(-h) - denoised_0 * math.expm1(-h)
    ratios, differences = [], []
    for lambda_k, denoised_k in reversed(history[len(history) - order : -1] if order > 1 else []):
        ratios.append((lambda_k - lambda_0) / h)
        differences.append((denoised_k - denoised_0) / ratios[-1])
    if newest is not None:
        ratios.append(1.0)
        differences.append(newest - denoised_0)
    if not differences:
        return x_next
    rhos, b_h = _unipc_weights(ratios, h, variant, corrector=newest is not None)
    correction = differences[0] * rhos[0]
    for rho, difference in zip(rhos[1:], differences[1:]):
        correction = correction + difference * rho
    return x_next - correction * b_h


def _unipc_weights(ratios: list[float], h: float, variant: str, corrector: bool) -> tuple[list[float], float]:
    """rho of UniP/UniC for the given r_k, and B(h); the order-2 predictor and the order-1
    corrector use rho = 1/2, as in the paper's reference implementation."""
    hh = -h  # data prediction integrates in -lambda
    if variant == "vary_coeff":
        return _vary_coeff_weights(ratios, hh, corrector), 1.0
    b_h = hh if variant == "bh1" else math.expm1(hh)
    if len(ratios) == 1:
        return [0.5], b_h
    phi = math.expm1(hh) / hh - 1
    factorial = 1
    matrix, rhs = [], []
    for n in range(1, len(ratios) + 1):
        matrix.append([r ** (n - 1) for r in ratios])
        rhs.append(phi * factorial / b_h)
        factorial *= n + 1
        phi = phi / hh - 1 / factorial
    return _solve(matrix, rhs), b_h


def _h_phis(hh: float, count: int) -> list[float]:
    """h phi_k(h) for k = 1 .. count: h phi_1 = e^hh - 1, h phi_(k+1) = h phi_k / hh - 1 / k!."""
    values, factorial = [math.expm1(hh)], 1
    for k in range(1, count):
        factorial *= k
        values.append(values[-1] / hh - 1 / factorial)
    return values


def _vary_coeff_weights(ratios: list[float], hh: float, corrector: bool) -> list[float]:
    """Weights of the differences D1_k for UniPC's "vary_coeff" variant (the reference code's
    ``multistep_uni_pc_vary_update``, which A1111's port keeps): with C[i][n] = r_i^n / (n+1)!
    and A = C^-1, the update subtracts sum_n h phi_(n+2) sum_k A[n][k] D1_k over the rows
    n < K - 1 (K = number of ratios). The corrector's newest difference (r = 1) is instead
    weighted h phi_(K+1) A[max(K-2, 0)][K-1]: the reference code reads that entry with its loop
    index left at the last row it visited, and this follows it so the pictures agree."""
    size = len(ratios)
    matrix = [[r**n / math.factorial(n + 1) for n in range(size)] for r in ratios]
    inverse_columns = [_solve(matrix, [1.0 if i == k else 0.0 for i in range(size)]) for k in range(size)]
    # inverse_columns[k][n] = A[n][k]
    h_phis = _h_phis(hh, size + 1)
    rows = size - 1 if corrector else size
    weights = [sum(h_phis[n + 1] * inverse_columns[k][n] for n in range(rows)) for k in range(size)]
    if corrector:
        weights[-1] = h_phis[size] * inverse_columns[-1][max(size - 2, 0)]
    return weights


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting for the small UniPC systems."""
    size = len(rhs)
    rows = [list(row) + [value] for row, value in zip(matrix, rhs)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(rows[r][column]))
        rows[column], rows[pivot] = rows[pivot], rows[column]
        if rows[column][column] == 0:
            raise ValueError("UniPC: singular order conditions; two levels of the ladder coincide")
        for r in range(column + 1, size):
            factor = rows[r][column] / rows[column][column]
            rows[r] = [a - factor * b for a, b in zip(rows[r], rows[column])]
    solution = [0.0] * size
    for r in reversed(range(size)):
        tail = sum(rows[r][c] * solution[c] for c in range(r + 1, size))
        solution[r] = (rows[r][size] - tail) / rows[r][r]
    return solution
