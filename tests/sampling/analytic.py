"""A denoising problem with a closed-form answer, and per-image noise for sampler tests.

Data: every element of x0 is independent Gaussian, x0 ~ N(mean, std^2). Then
x = x0 + sigma * eps ~ N(mean, std^2 + sigma^2) and the exact denoiser is
E[x0 | x] = mean + std^2 / (std^2 + sigma^2) (x - mean). Its probability-flow
ODE dx/dsigma = (x - D) / sigma = (x - mean) sigma / (std^2 + sigma^2) is solved
by x(sigma) - mean proportional to sqrt(std^2 + sigma^2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from modules.sampling.brownian import BrownianNoise, ladder_range
from modules.sampling.schedules import sd_model_sigmas

MODEL_SIGMAS = sd_model_sigmas()
SHAPE = (4, 8, 8)


class GaussianData:
    """Elementwise Gaussian data with a fixed, non-trivial mean pattern."""

    def __init__(
        self, shape: tuple[int, ...] = SHAPE, std: float = 0.5, dtype: torch.dtype = torch.float32, device: str = "cpu"
    ):
        count = math.prod(shape)
        self.mean = torch.linspace(-1.0, 1.5, count, dtype=dtype).reshape(shape).to(device)
        self.std = std
        self.calls = 0

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The exact x0 estimate; ``sigma`` holds one level per image."""
        self.calls += 1
        assert sigma.dim() == 1 and sigma.shape[0] == x.shape[0], f"sigma must be [batch], got {tuple(sigma.shape)}"
        column = sigma.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        shrink = self.std**2 / (self.std**2 + column**2)
        return self.mean + (x - self.mean) * shrink

    def eps(self, x: Tensor, sigma: float) -> Tensor:
        """The exact noise prediction (x - D) / sigma at one level for the whole batch."""
        levels = torch.full((x.shape[0],), sigma, dtype=torch.float64)
        return (x - self.denoise(x, levels)) / sigma

    def ode_solution(self, x_start: Tensor, sigma_start: float, sigma_end: float) -> Tensor:
        """Where the probability-flow ODE carries x_start from sigma_start to sigma_end."""
        ratio = math.sqrt(self.std**2 + sigma_end**2) / math.sqrt(self.std**2 + sigma_start**2)
        return self.mean + (x_start - self.mean) * ratio


class SeededNoise:
    """The NoiseSource contract: row k of every draw comes from image k's own generator; and,
    given the ladder, the SDE samplers' IncrementSource: one Brownian tree per image seed over
    the ladder's range (``brownian.BrownianNoise``, as the pipeline builds it)."""

    def __init__(self, seeds: list[int] | tuple[int, ...], sigmas: Tensor | None = None):
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.brownian = None if sigmas is None else BrownianNoise(list(seeds), *ladder_range(sigmas))
        self.draws = 0

    def between(self, x: Tensor, sigma: float, sigma_next: float) -> Tensor:
        assert self.brownian is not None, "an SDE sampler needs SeededNoise(seeds, sigmas)"
        self.draws += 1
        return self.brownian.between(x, sigma, sigma_next)

    def randn_like(self, x: Tensor, rows=None) -> Tensor:
        assert x.shape[0] == len(self.generators), "batch and generators disagree"
        self.draws += 1
        flags = [True] * len(self.generators) if rows is None else list(rows)
        shape = tuple(x.shape[1:])
        drawn = [
            torch.randn(shape, generator=g, dtype=torch.float32) if flag else torch.zeros(shape)
            for g, flag in zip(self.generators, flags)
        ]
        return torch.stack(drawn).to(device=x.device, dtype=x.dtype)


def start_noise(seeds: list[int] | tuple[int, ...], shape: tuple[int, ...] = SHAPE, dtype=torch.float32) -> Tensor:
    """Unit initial noise per image, from generators separate from the step noise."""
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(10_000 + seed)) for seed in seeds]
    return torch.stack(rows).to(dtype)
