"""Loopback: img2img run ``loops`` times, each output the next input, with the denoising strength
moving from the form's value to a final one along a curve (A1111's ``scripts/loopback.py``).

Loop k (from 0) uses the initial strength at k = 0 and, after that,
``initial + (final - initial) * f(k / (loops - 1))`` with f = progress ("Linear"),
sin(progress * pi/2) ("Aggressive": moves early) or 1 - cos(progress * pi/2) ("Lazy": moves late).
"""

from __future__ import annotations

import math
from enum import Enum


class DenoisingCurve(Enum):
    AGGRESSIVE = "Aggressive"
    LINEAR = "Linear"
    LAZY = "Lazy"


def _shape(curve: DenoisingCurve, progress: float) -> float:
    if curve is DenoisingCurve.AGGRESSIVE:
        return math.sin(progress * math.pi / 2)
    if curve is DenoisingCurve.LAZY:
        return 1 - math.cos(progress * math.pi / 2)
    return progress


def loopback_strengths(loops: int, initial: float, final: float, curve: DenoisingCurve) -> list[float]:
    """The denoising strength of each loop, first to last."""
    if loops < 1:
        raise ValueError(f"loops must be at least 1, got {loops}")
    if loops == 1:
        return [initial]
    return [initial] + [initial + (final - initial) * _shape(curve, k / (loops - 1)) for k in range(1, loops)]


def loopback_seeds(seed: int, loops: int) -> list[int]:
    """Each loop's seed: the previous loop's plus one (A1111 sets ``p.seed = processed.seed + 1``)."""
    return [seed + k for k in range(loops)]
