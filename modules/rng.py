"""A1111 compatibility surface: ``modules.rng`` (``randn``, ``randn_like``, ``randn_without_seed``)."""

from __future__ import annotations

import torch

from modules.sampling.noise import system_entropy


def randn(seed: int, shape, generator=None) -> torch.Tensor:
    """CPU noise from ``seed``, as our default RNG source draws it (A1111's ``RNG: CPU``)."""
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)))


def randn_like(x: torch.Tensor) -> torch.Tensor:
    """Unseeded noise shaped like ``x``, from a generator seeded by the operating system: the
    engine never draws from torch's global generator, so a generation's images depend on its seeds only."""
    return torch.randn(x.shape, dtype=x.dtype, generator=_unseeded_generator()).to(x.device)


def randn_without_seed(shape, generator=None) -> torch.Tensor:
    return torch.randn(shape, generator=generator if generator is not None else _unseeded_generator())


def _unseeded_generator() -> torch.Generator:
    return torch.Generator("cpu").manual_seed(system_entropy())
