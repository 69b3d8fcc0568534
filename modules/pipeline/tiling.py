"""Seamless tiling: circular padding in every convolution, so the image wraps at its edges."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from modules.models.load import LoadedModel


def _convolutions(model: LoadedModel) -> list[nn.Conv2d]:
    return [m for net in (model.unet, model.vae) for m in net.modules() if isinstance(m, nn.Conv2d)]


@contextmanager
def seamless_tiling(model: LoadedModel, enabled: bool) -> Iterator[None]:
    """Switch the UNet's and VAE's convolutions to circular padding for the block, then restore them."""
    if not enabled:
        yield
        return
    convolutions = _convolutions(model)
    previous = [conv.padding_mode for conv in convolutions]
    for conv in convolutions:
        conv.padding_mode = "circular"
    try:
        yield
    finally:
        for conv, mode in zip(convolutions, previous):
            conv.padding_mode = mode
