"""The cheap preview is the linear colour map of the latent, pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.pipeline.preview import SD_LATENT_RGB_FACTORS, cheap_preview


def test_each_pixel_is_the_latent_times_the_factors() -> None:
    latent = torch.zeros(4, 2, 3)
    latent[0, 1, 2] = 1.0  # channel 0 only at one position
    image = np.asarray(cheap_preview(latent))
    assert image.shape == (2, 3, 3)
    expected = np.round((np.clip(np.array(SD_LATENT_RGB_FACTORS[0]), -1, 1) + 1) * 127.5)
    assert np.array_equal(image[1, 2], expected.astype(np.uint8))
    assert np.array_equal(image[0, 0], np.array([128, 128, 128], dtype=np.uint8))  # zero latent -> mid grey


def test_wrong_channel_count_is_refused() -> None:
    with pytest.raises(ValueError, match="4 latent channels, the latent has 8"):
        cheap_preview(torch.zeros(8, 2, 2))
