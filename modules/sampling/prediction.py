"""What a denoising net predicts: a sampling value, so the samplers need nothing of model files."""

from __future__ import annotations

from enum import Enum


class Prediction(str, Enum):
    """What the UNet predicts: the noise (eps) or the velocity (v, Salimans & Ho 2022)."""

    EPS = "eps"
    V = "v"
