"""A1111's timestep samplers (DDIM, PLMS, UniPC): the walk they take, expressed over sigmas.

A1111 v1.10 runs these three in the variance-preserving (VP) latent z = x / sqrt(1 + sigma^2)
at training timesteps (``CompVisSampler`` in ``modules/sd_samplers_timesteps.py``, the loops
in ``sd_samplers_timesteps_impl.py`` and its port of UniPC's reference code,
``models/diffusion/uni_pc``), not over a k-diffusion sigma ladder that ends at 0:

- DDIM and PLMS walk the timesteps 1 + k * (T // steps) (clipped to T - 1) from the largest
  down to t = 1, one step between neighbours: len(timesteps) - 1 steps (19 for 20 steps,
  30 for 30), and the latent at t = 1 (sigma ~0.041 for SD) is decoded as it is.
- UniPC walks continuous time from model timestep T - 1 down to 0 in len(timesteps) steps,
  spaced as A1111's "UniPC skip type" setting says (``UNIPC_SKIP_TYPES``: evenly in time by
  default, evenly in its square root, or evenly in log SNR), reading the table linearly in
  log alpha between training timesteps; it ends at t = 0 (sigma ~0.029).
- txt2img starts from unit noise taken as the VP latent at the first timestep.
- img2img keeps t_enc = int(min(strength, 0.999) * steps) of the timesteps (the hires pass:
  steps - 1 of those for int(steps / min(strength, 0.999))): the init latent is noised to
  timesteps[t_enc] (z = sqrt(abar) x0 + sqrt(1 - abar) noise) and the walk
  starts from timesteps[t_enc - 1], taking that z as the VP latent there.

Divided by sqrt(abar), A1111's DDIM step (Song et al. 2021, eq. 12) is exactly an Euler step
(eta 0) or an ancestral step (eta > 0) between neighbouring sigmas, and PLMS and UniPC are
the same multistep formulas as over any ladder, so ``samplers.py`` runs them unchanged:
what this module supplies is A1111's ladder, where the walk starts and how its result is
turned back into the VP latent A1111 decodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from modules.sampling.schedules import LOG_ALPHA, timestep_to_sigma

DDIM_WALK = "ddim"  # DDIM and PLMS: integer timesteps
UNIPC_WALK = "unipc"  # UniPC: continuous time, spaced by its skip type
# The spacings of UniPC's reference code (``get_time_steps``), A1111's "UniPC skip type".
UNIPC_SKIP_TYPES = ("time_uniform", "time_quadratic", "logSNR")


def compvis_timesteps(steps: int, count: int) -> list[int]:
    """A1111's ``CompVisSampler.get_timesteps``: clip(range(0, T, T // steps) + 1, 0, T - 1),
    ascending (T = 1000 there; ``count`` here, the model's table length). More than
    ``steps`` of them when steps does not divide T: 31 for 30 steps."""
    if not 1 <= steps <= count:
        raise ValueError(f"steps must be between 1 and {count} for a {count}-timestep model, got {steps}")
    return [min(t + 1, count - 1) for t in range(0, count, count // steps)]


def ddim_walk(timesteps: list[int], model_sigmas: Tensor) -> Tensor:
    """The levels DDIM and PLMS visit: sigma at each timestep, largest first, no final 0."""
    return model_sigmas.double()[list(reversed(timesteps))]


def unipc_walk(steps: int, start_timestep: float, model_sigmas: Tensor, skip_type: str = "time_uniform") -> Tensor:
    """UniPC's ``steps + 1`` levels from model timestep ``start_timestep`` down to 0, the table
    read linearly in log alpha as its discrete NoiseScheduleVP does. The reference code spaces
    its continuous time t = (timestep + 1) / T between t_start and 1 / T: evenly
    ("time_uniform"), evenly in sqrt(t) ("time_quadratic"), or evenly in
    lambda = log(alpha / sigma_VP) = -log(sigma) ("logSNR", so evenly in log sigma here)."""
    count = len(model_sigmas)
    table = model_sigmas.double()
    if skip_type == "time_uniform":
        times = torch.linspace(float(start_timestep), 0.0, steps + 1, dtype=torch.float64)
    elif skip_type == "time_quadratic":
        roots = torch.linspace(math.sqrt((start_timestep + 1) / count), math.sqrt(1 / count), steps + 1,
                               dtype=torch.float64)
        times = roots**2 * count - 1
    elif skip_type == "logSNR":
        ends = timestep_to_sigma(torch.tensor([float(start_timestep), 0.0], dtype=torch.float64), table, LOG_ALPHA)
        return torch.linspace(float(ends[0].log()), float(ends[1].log()), steps + 1, dtype=torch.float64).exp()
    else:
        raise ValueError(f"UniPC skip type must be one of {', '.join(UNIPC_SKIP_TYPES)}, got {skip_type!r}")
    return timestep_to_sigma(times, table, LOG_ALPHA)


def txt2img_walk(
    kind: str, steps: int, model_sigmas: Tensor, discard_penultimate: bool = False, skip_type: str = "time_uniform"
) -> Tensor:
    """The whole walk for ``steps`` (A1111's "discard next-to-last sigma" asks its timesteps for
    one step more instead); ``skip_type``: UniPC's spacing."""
    timesteps = compvis_timesteps(steps + 1 if discard_penultimate else steps, len(model_sigmas))
    if kind == DDIM_WALK:
        return ddim_walk(timesteps, model_sigmas)
    if kind == UNIPC_WALK:
        return unipc_walk(len(timesteps), len(model_sigmas) - 1, model_sigmas, skip_type)
    raise ValueError(f"unknown timestep walk {kind!r}")


@dataclass(frozen=True, eq=False)
class WalkStart:
    """Where img2img starts a walk: the init latent noised to ``noise_sigma`` (x0 + noise_sigma *
    noise), times ``rescale``, is the sampler's x at ``sigmas[0]``. A one-level ``sigmas`` means
    no step: the start is the result."""

    sigmas: Tensor
    noise_sigma: float
    rescale: float


def img2img_walk(
    kind: str, steps: int, t_enc: int, model_sigmas: Tensor, discard_penultimate: bool = False,
    skip_type: str = "time_uniform",
) -> WalkStart:
    """A1111's img2img for a timestep sampler (``CompVisSampler.sample_img2img``) with the
    timesteps for ``steps`` and t_enc of them kept (``setup_img2img_steps``; int(min(strength,
    0.999) * steps) for img2img): noise to timesteps[t_enc], then walk from timesteps[t_enc - 1]
    (DDIM, PLMS: down the kept timesteps; UniPC: t_enc even steps down to 0). The noised VP
    latent sqrt(abar_enc) (x0 + sigma_enc noise) read as the VP latent at the first level is, in
    our x, (x0 + sigma_enc noise) times sqrt((1 + sigma_first^2) / (1 + sigma_enc^2)). With
    t_enc = 0 A1111's DDIM returns the noised latent (its UniPC fails there; here it returns the
    same)."""
    timesteps = compvis_timesteps(steps + 1 if discard_penultimate else steps, len(model_sigmas))
    noise_sigma = float(model_sigmas.double()[timesteps[t_enc]])
    if t_enc == 0:
        return WalkStart(torch.tensor([noise_sigma], dtype=torch.float64), noise_sigma, 1.0)
    if kind == DDIM_WALK:
        sigmas = ddim_walk(timesteps[:t_enc], model_sigmas)
    elif kind == UNIPC_WALK:
        sigmas = unipc_walk(t_enc, timesteps[t_enc - 1], model_sigmas, skip_type)
    else:
        raise ValueError(f"unknown timestep walk {kind!r}")
    rescale = math.sqrt((1 + float(sigmas[0]) ** 2) / (1 + noise_sigma**2))
    return WalkStart(sigmas, noise_sigma, rescale)


def vp_latent(x: Tensor, sigma: float) -> Tensor:
    """The VP latent A1111 returns for our x at level sigma: x / sqrt(1 + sigma^2)."""
    return x / math.sqrt(1 + sigma**2)


__all__ = [
    "DDIM_WALK", "UNIPC_SKIP_TYPES", "UNIPC_WALK", "WalkStart", "compvis_timesteps", "ddim_walk", "img2img_walk", "txt2img_walk",
    "unipc_walk", "vp_latent",
]
