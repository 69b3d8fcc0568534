"""A1111 compatibility surface: ``modules.rng`` (``randn``, ``randn_like``, ``randn_without_seed``)."""

from __future__ import annotations

import torch


def randn(seed: int, shape, generator=None) -> torch.Tensor:
    """CPU noise from ``seed``, as our default RNG source draws it (A1111's ``RNG: CPU``)."""
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)))


def randn_like(x: torch.Tensor) -> torch.Tensor:
    return torch.randn(x.shape, dtype=x.dtype).to(x.device)


def randn_without_seed(shape, generator=None) -> torch.Tensor:
    return torch.randn(shape, generator=generator)
