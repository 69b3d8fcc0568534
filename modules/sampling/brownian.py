"""Brownian-tree noise for the SDE samplers, drawn as AUTOMATIC1111 v1.10 draws it.

An SDE sampler needs the increments of one Brownian path W(sigma) between the
levels it visits, and DPM++ SDE asks for two overlapping increments per step
(to the intermediate level and to the next one), which must be correlated as a
single path makes them. A Brownian tree (Gaines & Lyons 1997, "Variable step
size control in the numerical solution of stochastic differential equations";
the torchsde ``BrownianTree`` of Li et al. 2020) answers any interval query of
one fixed path, deterministically, from a seed.

A1111 (through k-diffusion's ``BrownianTreeNoiseSampler``) builds one tree per
image, seeded with that image's seed (``p.all_seeds`` of the batch: seed + i, or
the shared seed of a variation run; ENSD plays no part), over
[smallest non-zero sigma, largest sigma] of the sampler's *full* ladder (for
img2img too, though sampling starts lower), and returns
``sign * (W(b) - W(a)) / sqrt(|b - a|)`` for a query from level ``a`` to ``b``:
unit variance, sign flipped when walking down. Its draws are float32 on the
RNG source's device ("RNG: CPU" draws on the CPU), which is what building the
tree in float32 on that device gives here.

With A1111's "Do not make DPM++ SDE deterministic across different batch sizes"
setting, there is one tree for the whole batch, so pictures depend on the batch. A1111
(k-diffusion) seeds it with ``torch.randint(0, 2**63 - 1, [])`` from torch's global CPU
generator, which A1111's ``ImageRNG`` has just seeded with the batch's last image seed
(its ``randn`` calls ``torch.manual_seed`` for every image it draws). The same number is
drawn here from a local generator seeded the same way (``batch_tree_entropy``).
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import torch
import torchsde
from torch import Tensor

from modules.sampling.noise import RngSource, generator_device

BROWNIAN_TOLERANCE = 1e-6
"""torchsde's default ``BrownianTree`` tolerance, which k-diffusion (hence A1111) keeps. torchsde
rounds every time it is given to that many decimals (6), the interval's ends included."""
_TIME_DIGITS = 6


class IncrementSource(Protocol):
    """What SDE samplers draw their noise from."""

    def between(self, x: Tensor, sigma: float, sigma_next: float) -> Tensor:
        """Unit-variance increment of each image's Brownian path from ``sigma`` to ``sigma_next``,
        shaped, placed and typed like ``x``."""
        ...


def ladder_range(sigmas: Tensor) -> tuple[float, float]:
    """(smallest non-zero, largest) level of a ladder: the interval A1111 builds its trees over."""
    positive = sigmas[sigmas > 0]
    if positive.numel() == 0:
        raise ValueError("sigmas: the ladder has no non-zero level to build a Brownian tree over")
    return float(positive.min()), float(sigmas.max())


def batch_tree_entropy(seeds: Sequence[int]) -> int:
    """The seed of the batch's one tree: what k-diffusion's ``torch.randint(0, 2**63 - 1, [])``
    draws from a CPU generator freshly seeded with the batch's last image seed."""
    generator = torch.Generator().manual_seed(int(seeds[-1]))
    return int(torch.randint(0, 2**63 - 1, [], generator=generator).item())


class BrownianNoise:
    """Brownian increments for one batch; implements ``IncrementSource``.

    ``per_image`` (the default, A1111's default): one tree per image seeded with
    its seed, so image k of a batch equals its seed sampled alone. Otherwise one
    tree over the whole batch, seeded with ``batch_tree_entropy(seeds)``. Trees are built on the
    first query (a one-step ladder never queries, and its range is a single point).
    """

    def __init__(
        self,
        seeds: Sequence[int],
        sigma_min: float,
        sigma_max: float,
        *,
        per_image: bool = True,
        source: RngSource = RngSource.CPU,
        device: torch.device | str = "cpu",
    ):
        if not seeds:
            raise ValueError("seeds: at least one image seed is needed")
        if not 0 < sigma_min <= sigma_max:
            raise ValueError(f"sigma range: need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
        self.seeds = tuple(int(seed) for seed in seeds)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.per_image = per_image
        self._tree_device = generator_device(source, torch.device(device))
        self._trees: list[torchsde.BrownianTree] | None = None
        self.queries = 0

    def between(self, x: Tensor, sigma: float, sigma_next: float) -> Tensor:
        if x.shape[0] != len(self.seeds):
            raise ValueError(
                f"between: tensor of shape {tuple(x.shape)} has a batch dimension that does not match "
                f"the {len(self.seeds)} image seed(s)"
            )
        self.queries += 1
        low, high = sorted((float(sigma), float(sigma_next)))
        sign = -1.0 if sigma > sigma_next else 1.0
        # torchsde clamps a query outside its (rounded) interval to the interval, with a warning;
        # levels a rounding away from the ends are clamped here to the same place, without one.
        low = max(low, round(self.sigma_min, _TIME_DIGITS))
        high = min(high, round(self.sigma_max, _TIME_DIGITS))
        trees = self._built(x)
        if self.per_image:
            increment = torch.stack([tree(low, high) for tree in trees])
        else:
            increment = trees[0](low, high)
        scale = sign / math.sqrt(abs(float(sigma_next) - float(sigma)))
        return (increment * scale).to(device=x.device, dtype=x.dtype)

    def _built(self, x: Tensor) -> list[torchsde.BrownianTree]:
        if self._trees is None:
            shape = tuple(x.shape[1:]) if self.per_image else tuple(x.shape)
            start = torch.zeros(shape, dtype=torch.float32, device=self._tree_device)
            seeds = self.seeds if self.per_image else (batch_tree_entropy(self.seeds),)
            self._trees = [
                torchsde.BrownianTree(self.sigma_min, start, self.sigma_max, entropy=seed, tol=BROWNIAN_TOLERANCE)
                for seed in seeds
            ]
        return self._trees
