"""The per-step sampling path reads nothing back from the device and copies no host list to it.

On CUDA each such read (``.item()``, ``float(t)``, ``.tolist()``, ``.cpu()``) or
list-to-device copy waits for all queued GPU work, once per step. Here the
Python entry points of those operations raise from the end of the first step
on (the first step may build lookup tables; the ladder is read once before the
loop), through the sampler's update, the CFG denoiser and the UNet.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest
import torch
from safetensors.torch import save_file

from modules.config import DeviceFlags
from modules.device.policy import choose_device_policy
from modules.models.files import CheckpointFile
from modules.models.load import LoadedModel, load_model
from modules.pipeline.sampling_run import SamplingChoice, sample_txt2img_latents
from modules.sampling.noise import NoiseSpec
from tests.models.family_configs import clip_l_text, tiny_configs
from tests.nets.checkpoints import make_ldm_checkpoint

READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


class HostRead(AssertionError):
    pass


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    unet, vae, _ = tiny_configs()
    path = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    save_file(make_ldm_checkpoint(unet, vae, clip_l_text(width=32, layers=2, intermediate=64), seed=5), str(path))
    return load_model(CheckpointFile.from_file(path, path.name, "5" * 64), None,
                      choose_device_policy(DeviceFlags(), cuda_available=False))


@contextmanager
def host_reads_raise(active: list[bool]) -> Iterator[None]:
    """While ``active[0]``, a tensor read back to the host or ``torch.tensor`` raises HostRead."""
    originals = {name: getattr(torch.Tensor, name) for name in READS}
    original_tensor = torch.tensor

    def guarded(name, original):
        def call(*args, **kwargs):
            if active[0]:
                raise HostRead(f"Tensor.{name} on the per-step path")
            return original(*args, **kwargs)
        return call

    for name, original in originals.items():
        setattr(torch.Tensor, name, guarded(name, original))
    torch.tensor = guarded("torch.tensor", original_tensor)
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
        torch.tensor = original_tensor


def run(model: LoadedModel, sampler: str, prompt: str, guard: bool) -> torch.Tensor:
    active = [False]

    def after_step(_step) -> None:
        active[0] = guard  # from here to the end of sampling, every step is guarded

    spec = NoiseSpec(seeds=(3, 4), latent_shape=(4, 4, 4))
    choice = SamplingChoice(sampler_name=sampler, steps=4, cfg_scale=5.0)
    with host_reads_raise(active):
        latents = sample_txt2img_latents(model, [prompt] * 2, ["blurry"] * 2, spec, choice, after_step)
        active[0] = False
    return latents


@pytest.mark.parametrize("sampler", ["Euler a", "Euler", "Heun", "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM fast",
                                     "DDIM", "UniPC", "LCM", "LMS", "Restart"])
@pytest.mark.parametrize("prompt", ["a red circle", "[a red circle:a blue square:0.5] AND a cat :0.5"])
def test_sampling_steps_read_nothing_back_and_give_the_same_latents(model: LoadedModel, sampler: str,
                                                                    prompt: str) -> None:
    guarded = run(model, sampler, prompt, guard=True)
    assert torch.equal(guarded, run(model, sampler, prompt, guard=False))


def test_the_guard_catches_a_read(model: LoadedModel) -> None:
    with host_reads_raise([True]), pytest.raises(HostRead):
        float(torch.ones(()))
