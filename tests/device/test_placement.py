"""--medvram / --lowvram placement on a tiny model: which net is on the compute device at each stage.

Without a GPU the compute device is a stand-in (``cpu:0``, a device distinct from
``cpu`` that tensors can still use) and moves are recorded instead of made: a
checking hook on every weight-bearing module asserts that, when it runs, the
piece that holds it was last moved to the compute device. The CUDA test makes
real moves and compares the images with the ones made without offloading.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from modules.config import DeviceFlags, parse_config
from modules.device.placement import CPU, Offload, Placement, choose_offload, plan_placement, unet_pieces
from modules.device.policy import choose_device_policy
from modules.models.files import CheckpointFile
from modules.models.load import LoadedModel, load_model
from modules.pipeline.sampling_run import SamplingChoice, latents_to_images, sample_txt2img_latents
from modules.sampling.noise import NoiseSpec
from tests.models.family_configs import clip_l_text, tiny_configs
from tests.nets.checkpoints import make_ldm_checkpoint

STAND_IN = torch.device("cpu", 0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> CheckpointFile:
    unet, vae, _ = tiny_configs()
    path = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    save_file(make_ldm_checkpoint(unet, vae, clip_l_text(width=32, layers=2, intermediate=64), seed=4), str(path))
    return CheckpointFile.from_file(path, path.name, "4" * 64)


def load(checkpoint: CheckpointFile, flags: DeviceFlags = DeviceFlags(), cuda: bool = False) -> LoadedModel:
    return load_model(checkpoint, None, choose_device_policy(flags, cuda_available=cuda))


def txt2img(model: LoadedModel, sampler: str = "Euler a") -> tuple[torch.Tensor, list]:
    spec = NoiseSpec(seeds=(11, 12), latent_shape=(4, 4, 4))
    latents = sample_txt2img_latents(model, ["a red circle"] * 2, ["blurry"] * 2, spec,
                                     SamplingChoice(sampler_name=sampler, steps=3))
    return latents, latents_to_images(model, latents)


class MoveLog:
    """Records moves instead of making them, and checks every weight-bearing module runs on the
    compute device: the nearest moved ancestor-or-self of the module was last moved there."""

    def __init__(self, nets: list[nn.Module]):
        self.moves: list[tuple[nn.Module, torch.device]] = []
        self.location: dict[int, torch.device] = {id(net): CPU for net in nets}
        self.parent: dict[int, nn.Module] = {}
        self.violations: list[str] = []
        self.most_resident = 0
        for net in nets:
            for owner in net.modules():
                for child in owner.children():
                    self.parent[id(child)] = owner
            for name, module in net.named_modules():
                if any(True for _ in module.parameters(recurse=False)):
                    module.register_forward_pre_hook(self._checker(f"{type(net).__name__}.{name}"))

    def move(self, module: nn.Module, device: torch.device) -> None:
        self.moves.append((module, device))
        self.location[id(module)] = device
        self.most_resident = max(self.most_resident, sum(d == STAND_IN for d in self.location.values()))

    def where(self, module: nn.Module) -> torch.device:
        while id(module) not in self.location:
            module = self.parent[id(module)]
        return self.location[id(module)]

    def _checker(self, name: str):
        def check(module: nn.Module, _args: tuple) -> None:
            if self.where(module) != STAND_IN:
                self.violations.append(name)
        return check


def with_recorded_placement(model: LoadedModel, mode: Offload) -> tuple[LoadedModel, MoveLog, Placement]:
    log = MoveLog([model.text_encoder, model.unet, model.vae])
    placement = plan_placement(mode, STAND_IN, model.unet, model.text_encoder, model.vae, move=log.move)
    return dataclasses.replace(model, placement=placement), log, placement


def test_offload_mode_from_flags() -> None:
    assert choose_offload(medvram=True, lowvram=False, is_cuda=True) is Offload.MEDVRAM
    assert choose_offload(medvram=True, lowvram=True, is_cuda=True) is Offload.LOWVRAM
    assert choose_offload(medvram=False, lowvram=False, is_cuda=True) is Offload.NONE
    assert choose_offload(medvram=True, lowvram=True, is_cuda=False) is Offload.NONE  # a CPU has nothing to offload
    flags = parse_config(["--medvram"], Path("/tmp")).device
    assert flags.medvram and not flags.lowvram
    assert choose_device_policy(flags, cuda_available=True).offload is Offload.MEDVRAM
    assert choose_device_policy(flags, cuda_available=False).offload is Offload.NONE


def test_no_offload_plans_nothing_and_registers_no_hook(checkpoint: CheckpointFile) -> None:
    model = load(checkpoint)
    assert model.placement is None
    assert plan_placement(Offload.NONE, STAND_IN, model.unet, model.text_encoder, model.vae) is None
    assert not any(m._forward_pre_hooks for m in model.unet.modules())


def test_medvram_brings_each_net_in_whole_at_its_stage_and_sends_the_last_one_back(checkpoint) -> None:
    plain = load(checkpoint)
    expected_latents, expected_images = txt2img(plain)
    model, log, placement = with_recorded_placement(load(checkpoint), Offload.MEDVRAM)
    latents, images = txt2img(model)
    assert log.violations == []
    names = {id(model.text_encoder): "text encoder", id(model.unet): "UNet", id(model.vae): "VAE"}
    assert [(names[id(m)], "in" if d == STAND_IN else "out") for m, d in log.moves] == [
        ("text encoder", "in"), ("text encoder", "out"), ("UNet", "in"), ("UNet", "out"), ("VAE", "in"),
    ]
    assert log.most_resident == 1 and placement.resident == "VAE"
    # Placement only: the math is untouched.
    assert torch.equal(latents, expected_latents)
    assert [i.tobytes() for i in images] == [i.tobytes() for i in expected_images]
    placement.offload_all()
    assert placement.resident is None and log.moves[-1] == (model.vae, CPU)


def test_lowvram_streams_unet_blocks_one_at_a_time_every_step(checkpoint) -> None:
    plain = load(checkpoint)
    expected_latents, _ = txt2img(plain, "Euler")
    model, log, placement = with_recorded_placement(load(checkpoint), Offload.LOWVRAM)
    latents, _ = txt2img(model, "Euler")
    assert log.violations == []
    assert log.most_resident == 1
    pieces = unet_pieces(model.unet)
    piece_modules = {id(p.modules[0]) for p in pieces}
    brought = [m for m, d in log.moves if d == STAND_IN and id(m) in piece_modules]
    # Every piece comes in once per UNet call (3 Euler steps, cond and uncond batched in one call).
    assert len(brought) == 3 * len(pieces)
    assert {id(m) for m in brought} == piece_modules
    # The UNet never comes in whole; the text encoder and the VAE do.
    assert all(m is not model.unet for m, _ in log.moves)
    assert (model.text_encoder, STAND_IN) in log.moves and (model.vae, STAND_IN) in log.moves
    assert torch.equal(latents, expected_latents)


def test_lowvram_pieces_cover_every_unet_weight(checkpoint) -> None:
    unet = load(checkpoint).unet
    in_pieces = {id(p) for piece in unet_pieces(unet) for p in piece.modules[0].parameters()}
    assert {id(p) for p in unet.parameters()} == in_pieces
    # The nets hold no weights of their own outside their children (a whole-net move is
    # brought by a child's call, so such weights would stay behind).
    model = load(checkpoint)
    for net in (model.unet, model.text_encoder, model.vae):
        assert not list(net.parameters(recurse=False)), type(net).__name__


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["medvram", "lowvram"])
def test_offload_on_cuda_gives_the_same_images_with_only_one_net_resident(checkpoint, mode: str) -> None:
    full = DeviceFlags(precision="full")
    expected_latents, _ = txt2img(load(checkpoint, full, cuda=True))
    model = load(checkpoint, dataclasses.replace(full, **{mode: True}), cuda=True)
    assert {p.device.type for p in model.unet.parameters()} == {"cpu"}
    latents, _ = txt2img(model)
    assert torch.allclose(latents, expected_latents, rtol=1e-4, atol=1e-5)
    # After the decode only the VAE is on the GPU.
    assert {p.device.type for p in model.vae.parameters()} == {"cuda"}
    assert {p.device.type for p in model.unet.parameters()} == {"cpu"}
    assert {p.device.type for p in model.text_encoder.parameters()} == {"cpu"}
