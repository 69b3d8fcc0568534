"""What detection tells about a checkpoint: its family and the nets' sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from modules.nets.configs import TextEncoderConfig, UNetConfig, VAEConfig
from modules.sampling.prediction import Prediction  # noqa: F401 - re-exported: a family's prediction type


class ModelFamily(str, Enum):
    SD1 = "SD1"
    SD1_INPAINT = "SD1 inpainting"
    SD2 = "SD2"
    SD2_INPAINT = "SD2 inpainting"

    @property
    def is_inpainting(self) -> bool:
        return self in (ModelFamily.SD1_INPAINT, ModelFamily.SD2_INPAINT)


@dataclass(frozen=True)
class DetectedModel:
    """The result of detection: family, prediction type, net sizes, and why."""

    family: ModelFamily
    prediction: Prediction
    unet: UNetConfig
    vae: VAEConfig
    text_encoder: TextEncoderConfig
    reasons: tuple[str, ...] = field(default=())


class UnknownModelLayoutError(ValueError):
    """The keys and shapes match no family we can load; the message lists what was found."""
