"""Noise schedules: the model's discrete schedule, and the sigma ladders samplers walk down.

Conventions follow Karras et al. 2022 ("Elucidating the Design Space of
Diffusion-Based Generative Models", EDM): a noisy latent is x = x0 + sigma * eps.
A DDPM model (Ho et al. 2020) trained on timesteps t = 0..T-1 with cumulative
products abar_t of (1 - beta_t) sees the noise level
sigma_t = sqrt((1 - abar_t) / abar_t) at timestep t.

Every ladder function returns a 1-D float32 tensor of ``steps`` decreasing
sigmas followed by a final 0, and matches what AUTOMATIC1111 v1.10 produces for
the schedule of the same name (``modules/sd_schedulers.py`` and k-diffusion's
``get_sigmas_*``); the few deliberate differences are stated per function.
``model_sigmas`` below is always the model's own table, ascending in t
(``sigmas_from_alphas_cumprod``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Stable Diffusion 1.x / 2.x training schedule (CompVis v1-inference.yaml and
# v2-inference*.yaml: linear_start 0.00085, linear_end 0.012, 1000 timesteps).
SD_BETA_START = 0.00085
SD_BETA_END = 0.012
SD_TRAIN_TIMESTEPS = 1000

# Align Your Steps (Sabour, Fidler & Kreis 2024, arXiv:2404.14507): the optimised
# 10-step sigmas NVIDIA published for Stable Diffusion 1.5 ("AlignYourSteps/howto").
AYS_SD15_SIGMAS = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)

KARRAS_RHO = 7.0  # Karras et al. 2022, section 3: rho = 7
BETA_SCHEDULE_ALPHA = 0.6  # Lee et al. 2024, "Beta Sampling is All You Need" (arXiv:2407.12173)
BETA_SCHEDULE_BETA = 0.6


# -- the model's discrete schedule -------------------------------------------------------------


def scaled_linear_alphas_cumprod(
    num_timesteps: int = SD_TRAIN_TIMESTEPS,
    beta_start: float = SD_BETA_START,
    beta_end: float = SD_BETA_END,
) -> Tensor:
    """abar_t of LDM's "linear" beta schedule (betas linear in sqrt space), float32.

    Rombach et al. 2022 (latent diffusion) define beta_t = (sqrt(b0) + t/(T-1) *
    (sqrt(b1) - sqrt(b0)))^2. Computed in float64 and stored as float32, as the
    LDM model stores its ``alphas_cumprod`` buffer.
    """
    if num_timesteps < 2:
        raise ValueError(f"num_timesteps must be at least 2, got {num_timesteps}")
    if not 0.0 < beta_start < beta_end < 1.0:
        raise ValueError(f"betas must satisfy 0 < beta_start < beta_end < 1, got {beta_start}, {beta_end}")
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


def sigmas_from_alphas_cumprod(alphas_cumprod: Tensor) -> Tensor:
    """sigma_t = sqrt((1 - abar_t) / abar_t): the EDM noise level of each timestep, ascending in t."""
    if alphas_cumprod.dim() != 1 or alphas_cumprod.numel() < 2:
        raise ValueError(f"alphas_cumprod must be a 1-D tensor of at least 2 entries, got {tuple(alphas_cumprod.shape)}")
    if not bool(((alphas_cumprod > 0) & (alphas_cumprod < 1)).all()):
        raise ValueError("alphas_cumprod must lie strictly between 0 and 1")
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def sd_model_sigmas() -> Tensor:
    """The 1000 sigmas of the SD1/SD2 training schedule (0.0292 at t=0 to 14.61 at t=999)."""
    return sigmas_from_alphas_cumprod(scaled_linear_alphas_cumprod())


# How a discrete-time model's table is read between training timesteps: linearly in log sigma
# (k-diffusion's DiscreteSchedule, A1111's k-diffusion samplers) or linearly in log alpha =
# 0.5 log abar = -0.5 log(1 + sigma^2) (the discrete NoiseScheduleVP of DPM-Solver's and UniPC's
# reference code, which A1111's UniPC port uses). Both agree at integer timesteps.
LOG_SIGMA = "log_sigma"
LOG_ALPHA = "log_alpha"


def _ascending_key(sigma: Tensor, space: str) -> Tensor:
    """The quantity interpolated linearly in t, as an increasing function of sigma."""
    if space == LOG_SIGMA:
        return sigma.log()
    if space == LOG_ALPHA:
        return 0.5 * torch.log1p(sigma**2)  # -log alpha
    raise ValueError(f"unknown interpolation space {space!r}; expected {LOG_SIGMA!r} or {LOG_ALPHA!r}")


def _sigma_of_key(key: Tensor, space: str) -> Tensor:
    return key.exp() if space == LOG_SIGMA else torch.expm1(2 * key).sqrt()


def timestep_to_sigma(timestep: Tensor | float, model_sigmas: Tensor, space: str = LOG_SIGMA) -> Tensor:
    """Noise level at a possibly fractional timestep: linear interpolation of log sigma
    (or of log alpha, ``space=LOG_ALPHA``).

    Discrete-time models are queried between their training timesteps this way
    (k-diffusion's DiscreteSchedule, which A1111 uses); t is clamped to [0, T-1].
    """
    dtype = torch.promote_types(model_sigmas.dtype, torch.float32)
    keys = _ascending_key(model_sigmas.to(dtype), space)
    t = torch.as_tensor(timestep, dtype=dtype, device=model_sigmas.device).clamp(0, len(model_sigmas) - 1)
    low = t.floor().long()
    high = t.ceil().long()
    weight = t - low.to(dtype)
    return _sigma_of_key((1 - weight) * keys[low] + weight * keys[high], space)


def sigma_to_timestep(sigma: Tensor | float, model_sigmas: Tensor, space: str = LOG_SIGMA) -> Tensor:
    """The inverse of ``timestep_to_sigma``: fractional timestep of a noise level.

    Finds the two training sigmas that bracket ``sigma`` and interpolates the
    index linearly in log sigma (or log alpha); levels outside the table clamp to 0 or T-1.
    """
    dtype = torch.promote_types(model_sigmas.dtype, torch.float32)
    keys = _ascending_key(model_sigmas.to(dtype), space)
    key = _ascending_key(torch.as_tensor(sigma, dtype=dtype, device=model_sigmas.device), space)
    flat = key.reshape(-1).contiguous()
    low = (torch.searchsorted(keys, flat, right=True) - 1).clamp(0, len(keys) - 2)
    weight = ((flat - keys[low]) / (keys[low + 1] - keys[low])).clamp(0, 1)
    weight = torch.nan_to_num(weight, nan=0.0)
    return (low.to(dtype) + weight).reshape(key.shape)


LCM_ORIGINAL_STEPS = 50  # Luo et al. 2023, "Latent Consistency Models": the skipping-step schedule of 50 timesteps


def lcm_stride(model_sigmas: Tensor) -> int:
    """Training timesteps between two of the LCM table's (20 for a 1000-step model)."""
    stride = len(model_sigmas) // LCM_ORIGINAL_STEPS
    if stride < 1:
        raise ValueError(f"LCM needs a model schedule of at least {LCM_ORIGINAL_STEPS} timesteps, got {len(model_sigmas)}")
    return stride


def lcm_model_sigmas(model_sigmas: Tensor) -> Tensor:
    """The 50 noise levels an LCM was distilled on, ascending: timesteps T-1, T-1-k, ..., k-1
    with k = T / 50 (999, 979, ..., 19 for SD), as A1111's LCM denoiser tables them. Its
    smallest level (t = 19) is ~0.1345 for SD, where the model's own table goes down to 0.0292."""
    stride = lcm_stride(model_sigmas)
    last = len(model_sigmas) - 1
    return model_sigmas[[last - k * stride for k in reversed(range(LCM_ORIGINAL_STEPS))]]


# -- ladders ------------------------------------------------------------------------------------

FLOAT32_LADDERS = """The model's own ladder (Uniform), Karras, Exponential and Polyexponential are computed
in float32 with k-diffusion's order of operations, as A1111 computes them, so their levels
equal A1111's to the bit. It matters for the SDE samplers: their Brownian trees answer at
the exact level asked, and a level one float32 step away changes the noise by ~3e-4."""


def uniform_sigmas(steps: int, model_sigmas: Tensor) -> Tensor:
    """The model's own ladder: timesteps evenly spaced from T-1 down to 0.

    A1111's "Uniform" and what "Automatic" gives a sampler without a default
    (k-diffusion ``DiscreteSchedule.get_sigmas``).
    """
    _check_steps(steps)
    timesteps = torch.linspace(len(model_sigmas) - 1, 0, steps, dtype=torch.float32)
    return _append_zero(timestep_to_sigma(timesteps, model_sigmas.float()))


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = KARRAS_RHO) -> Tensor:
    """Karras et al. 2022, eq. 5: sigma_i = (max^(1/rho) + i/(N-1) (min^(1/rho) - max^(1/rho)))^rho."""
    _check_steps(steps)
    _check_range(sigma_min, sigma_max)
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float32)  # float32: see FLOAT32_LADDERS
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return _append_zero((top + ramp * (bottom - top)) ** rho)


def exponential_sigmas(steps: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Sigmas evenly spaced in log sigma (a geometric progression) from sigma_max to sigma_min."""
    _check_steps(steps)
    _check_range(sigma_min, sigma_max)
    # float32: see FLOAT32_LADDERS
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float32).exp())


def polyexponential_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> Tensor:
    """log sigma = log sigma_min + r^rho (log sigma_max - log sigma_min), r from 1 to 0.

    rho = 1 (A1111's default) is the exponential ladder; larger rho spends more
    steps at low noise.
    """
    _check_steps(steps)
    _check_range(sigma_min, sigma_max)
    ramp = torch.linspace(1, 0, steps, dtype=torch.float32) ** rho  # float32: see FLOAT32_LADDERS
    return _append_zero((ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)).exp())


def sgm_uniform_sigmas(steps: int, model_sigmas: Tensor, sigma_min: float, sigma_max: float) -> Tensor:
    """Timesteps evenly spaced from t(sigma_max) towards t(sigma_min), excluding the end point.

    The spacing Stability's "sgm" code uses (steps+1 points, the last dropped in
    favour of 0): A1111's "SGM Uniform".
    """
    _check_steps(steps)
    _check_range(sigma_min, sigma_max)
    table = model_sigmas.double()
    start, end = float(sigma_to_timestep(sigma_max, table)), float(sigma_to_timestep(sigma_min, table))
    timesteps = torch.linspace(start, end, steps + 1, dtype=torch.float64)[:-1]
    return _append_zero(timestep_to_sigma(timesteps, table))


def kl_optimal_sigmas(steps: int, sigma_min: float, sigma_max: float) -> Tensor:
    """KL-optimal ladder (Sabour et al. 2024, arXiv:2404.14507): evenly spaced in arctan(sigma).

    sigma_i = tan((1 - i/N) atan(sigma_max) + (i/N) atan(sigma_min)) for i < N, then 0.
    A1111 returns the i = N point (sigma_min) as the final level instead of 0,
    leaving a residual noise of sigma_min; here the ladder ends at 0 like every other.
    """
    _check_steps(steps)
    _check_range(sigma_min, sigma_max)
    fraction = torch.arange(steps, dtype=torch.float64) / steps
    angles = fraction * math.atan(sigma_min) + (1 - fraction) * math.atan(sigma_max)
    return _append_zero(torch.tan(angles))


def align_your_steps_sigmas(steps: int, table: tuple[float, ...] = AYS_SD15_SIGMAS) -> Tensor:
    """The published Align Your Steps sigmas, log-linearly resampled to ``steps`` levels.

    NVIDIA's recipe: interpolate log sigma linearly over an evenly spaced
    parameter in [0, 1]. A1111 uses the SD1.5 table for every non-SDXL model.
    """
    _check_steps(steps)
    log_table = torch.tensor(table, dtype=torch.float64).log()
    knots = torch.linspace(0, 1, len(table), dtype=torch.float64)
    positions = torch.linspace(0, 1, steps, dtype=torch.float64)
    return _append_zero(_interpolate(positions, knots, log_table).exp())


def simple_sigmas(steps: int, model_sigmas: Tensor) -> Tensor:
    """Every (T/steps)-th training sigma from the top: sigma[T - 1 - floor(i T / steps)]."""
    _check_steps(steps)
    stride = len(model_sigmas) / steps
    picked = [float(model_sigmas[-(1 + int(i * stride))]) for i in range(steps)]
    return _append_zero(torch.tensor(picked, dtype=torch.float64))


def normal_sigmas(steps: int, model_sigmas: Tensor, sigma_min: float, sigma_max: float) -> Tensor:
    """Timesteps evenly spaced from t(sigma_max) to t(sigma_min) inclusive.

    With the model's own sigma_min/sigma_max this equals ``uniform_sigmas``; the
    two differ only when the range is overridden.
    """
    _check_steps(steps)
    _check_range(sigma_min, sigma_max)
    table = model_sigmas.double()
    start, end = float(sigma_to_timestep(sigma_max, table)), float(sigma_to_timestep(sigma_min, table))
    return _append_zero(timestep_to_sigma(torch.linspace(start, end, steps, dtype=torch.float64), table))


def ddim_sigmas(steps: int, model_sigmas: Tensor) -> Tensor:
    """A1111's "DDIM" schedule (``sd_schedulers.ddim_scheduler``): every training timestep
    1 + k * max(T // steps, 1) below T, largest first, read from the float32 table, then 0.

    That is the DDIM sampler's spacing (Song et al. 2021; t = 951, 901, ..., 1 for 20 steps), and
    when steps does not divide T it has more levels than steps (31 for 30), as in A1111;
    diffusers' DDIMScheduler ("leading" spacing, steps_offset=1) keeps the lowest ``steps``.
    """
    _check_steps(steps)
    count = len(model_sigmas)
    timesteps = list(range(1, count, max(count // steps, 1)))
    return _append_zero(model_sigmas.float()[list(reversed(timesteps))])


def beta_sigmas(
    steps: int,
    sigma_min: float,
    sigma_max: float,
    alpha: float = BETA_SCHEDULE_ALPHA,
    beta: float = BETA_SCHEDULE_BETA,
) -> Tensor:
    """Beta sampling (Lee et al. 2024): sigma = sigma_min + F^-1(1 - i/(N-1)) (sigma_max - sigma_min).

    F is the CDF of the Beta(alpha, beta) distribution; with alpha = beta = 0.6
    the steps crowd at both ends of the range. This is A1111 v1.10's formula
    (quantiles mapped linearly onto [sigma_min, sigma_max]).
    """
    _check_steps(steps)
    _check_range(sigma_min, sigma_max)
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"beta schedule alpha and beta must be positive, got {alpha}, {beta}")
    levels = [1 - i / (steps - 1) for i in range(steps)] if steps > 1 else [1.0]
    quantiles = torch.tensor([beta_quantile(p, alpha, beta) for p in levels], dtype=torch.float64)
    return _append_zero(sigma_min + quantiles * (sigma_max - sigma_min))


# -- the Beta distribution's quantile function --------------------------------------------------


def beta_quantile(p: float, alpha: float, beta: float) -> float:
    """F^-1(p) for Beta(alpha, beta): Newton's method on the regularized incomplete beta,
    kept inside a shrinking bisection bracket so it always converges."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a probability must lie in [0, 1], got {p}")
    if p in (0.0, 1.0):
        return p
    low, high, x = 0.0, 1.0, 0.5
    log_norm = math.lgamma(alpha) + math.lgamma(beta) - math.lgamma(alpha + beta)
    for _ in range(200):
        error = regularized_incomplete_beta(x, alpha, beta) - p
        if error > 0:
            high = x
        else:
            low = x
        density = math.exp((alpha - 1) * math.log(x) + (beta - 1) * math.log1p(-x) - log_norm)
        candidate = x - error / density if density > 0 else -1.0
        x_next = candidate if low < candidate < high else (low + high) / 2
        if abs(x_next - x) <= 1e-15 or high - low <= 1e-15:
            return x_next
        x = x_next
    return x


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the Beta(a, b) CDF, by its continued fraction (DLMF 8.17.22).

    The fraction converges fast for x < (a+1)/(a+b+2); above that the symmetry
    I_x(a, b) = 1 - I_{1-x}(b, a) (DLMF 8.17.4) is used.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - regularized_incomplete_beta(1.0 - x, b, a)
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    return math.exp(log_front) / a * _beta_continued_fraction(x, a, b)


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    """1 / (1 + d1 / (1 + d2 / (1 + ...))) of DLMF 8.17.22, by the modified Lentz method."""
    c = 1.0
    d = _nonzero(1.0 + _beta_fraction_term(1, x, a, b))
    d = 1.0 / d
    result = d
    for n in range(2, 2000):
        term = _beta_fraction_term(n, x, a, b)
        d = 1.0 / _nonzero(1.0 + term * d)
        c = _nonzero(1.0 + term / c)
        result *= c * d
        if n % 2 and abs(c * d - 1.0) < 1e-16:
            break
    return result


def _beta_fraction_term(n: int, x: float, a: float, b: float) -> float:
    """d_n of DLMF 8.17.22: d_{2m+1} = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)), d_{2m} = m(b-m)x / ((a+2m-1)(a+2m))."""
    m = n // 2
    if n % 2:
        return -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
    return m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))


def _nonzero(value: float) -> float:
    """Lentz's guard against a zero denominator."""
    return value if abs(value) > 1e-300 else 1e-300


# -- helpers ------------------------------------------------------------------------------------


def _interpolate(positions: Tensor, knots: Tensor, values: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (knots, values) at ``positions`` (knots ascending)."""
    index = (torch.searchsorted(knots, positions, right=True) - 1).clamp(0, len(knots) - 2)
    weight = ((positions - knots[index]) / (knots[index + 1] - knots[index])).clamp(0, 1)
    return values[index] + weight * (values[index + 1] - values[index])


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas.to(torch.float64), torch.zeros(1, dtype=torch.float64)]).to(torch.float32)


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def _check_range(sigma_min: float, sigma_max: float) -> None:
    if not (math.isfinite(sigma_min) and math.isfinite(sigma_max) and 0.0 < sigma_min <= sigma_max):
        raise ValueError(f"sigma range must satisfy 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
