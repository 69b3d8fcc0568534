"""txt2img core on a tiny random model: sizes, determinism, batch invariance, guidance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.config import DeviceFlags
from modules.device.policy import choose_device_policy
from modules.models.files import CheckpointFile
from modules.models.load import LoadedModel, load_model
from modules.pipeline.sampling_run import SamplingChoice, latents_to_images, sample_txt2img_latents, sigma_ladder
from modules.sampling.noise import NoiseSpec
from modules.sampling.samplers import SamplerStep
from tests.models.family_configs import clip_l_text, tiny_configs
from tests.nets.checkpoints import make_ldm_checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    unet, vae, _ = tiny_configs()
    text = clip_l_text(width=32, layers=2, intermediate=64)  # full vocabulary: real prompts tokenize into it
    path = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    save_file(make_ldm_checkpoint(unet, vae, text, seed=8), str(path))
    return load_model(CheckpointFile.from_file(path, path.name, "3" * 64), None,
                      choose_device_policy(DeviceFlags(), cuda_available=False))


def run(model: LoadedModel, seeds: tuple[int, ...], prompt: str = "a red circle", negative: str = "",
        choice: SamplingChoice = SamplingChoice(steps=4), callback=None) -> torch.Tensor:
    spec = NoiseSpec(seeds=seeds, latent_shape=(4, 4, 4))
    return sample_txt2img_latents(model, [prompt] * len(seeds), [negative] * len(seeds), spec, choice, callback)


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M", "DPM++ SDE", "DDIM", "UniPC"])
def test_image_k_of_a_batch_equals_its_seed_alone(model: LoadedModel, sampler: str) -> None:
    choice = SamplingChoice(sampler_name=sampler, steps=3)
    batch = run(model, (100, 101, 102), choice=choice)
    alone = run(model, (101,), choice=choice)
    # The noise is bit-exact per image (tests/sampling); the net's batched CPU kernels
    # may round differently for another batch size, so the net's output agrees to float precision.
    assert torch.allclose(batch[1:2], alone, rtol=1e-4, atol=1e-4 * alone.abs().max().item())


def test_same_seed_same_latents_other_seed_other_latents(model: LoadedModel) -> None:
    assert torch.equal(run(model, (5,)), run(model, (5,)))
    assert not torch.allclose(run(model, (5,)), run(model, (6,)))


def test_prompt_and_negative_prompt_change_the_result(model: LoadedModel) -> None:
    base = run(model, (7,))
    assert not torch.allclose(base, run(model, (7,), prompt="a blue square"))
    assert not torch.allclose(base, run(model, (7,), negative="blurry"))


def test_cfg_scale_one_ignores_the_negative_prompt(model: LoadedModel) -> None:
    choice = SamplingChoice(steps=3, cfg_scale=1.0)
    assert torch.equal(run(model, (9,), choice=choice), run(model, (9,), negative="anything", choice=choice))


def test_progress_reports_every_step(model: LoadedModel) -> None:
    steps: list[SamplerStep] = []
    run(model, (1,), choice=SamplingChoice(sampler_name="Euler", steps=5), callback=steps.append)
    assert [s.index for s in steps] == [0, 1, 2, 3, 4] and all(s.total == 5 for s in steps)


def test_schedule_choice_changes_the_ladder(model: LoadedModel) -> None:
    karras = sigma_ladder(model, SamplingChoice(sampler_name="Euler", scheduler="Karras", steps=6))
    uniform = sigma_ladder(model, SamplingChoice(sampler_name="Euler", scheduler="Uniform", steps=6))
    assert karras.shape == uniform.shape == (7,)
    assert not torch.allclose(karras, uniform)


def test_decoded_images_have_the_requested_size(model: LoadedModel) -> None:
    images = latents_to_images(model, run(model, (3, 4)))
    assert [image.size for image in images] == [(8, 8), (8, 8)]  # tiny VAE downsamples by 2
    assert all(image.mode == "RGB" for image in images)
