"""Backends on tiny random nets: each compiled component agrees with eager, the disk cache
saves the second conversion, and every failure runs eager with the reason told once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modules.device.openvino_backend import BackendUnavailable, CompileKey, OpenVINOCompiler
from modules.device.runners import (
    ComponentRunner, Notices, build_runners, eager_reasons, resolve_backend, weights_id,
)
from modules.nets.unet import UNetModel
from modules.nets.vae import AutoencoderKL
from tests.models.family_configs import random_clip_l_encoder, tiny_configs

ov = pytest.importorskip("openvino")  # a pinned runtime requirement: present wherever the suite runs


def relative(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


@pytest.fixture(scope="module")
def nets() -> tuple[UNetModel, AutoencoderKL]:
    unet_config, vae_config, _ = tiny_configs()
    torch.manual_seed(3)
    unet, vae = UNetModel(unet_config), AutoencoderKL(vae_config)
    # Random init leaves zero-initialised output convolutions in some layouts: give every weight a value.
    with torch.no_grad():
        for parameter in [*unet.parameters(), *vae.parameters()]:
            parameter.normal_(0, 0.2)
    return unet.eval().requires_grad_(False), vae.eval().requires_grad_(False)


def inputs(seed: int = 0, batch: int = 2, size: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 4, size, size, generator=generator), torch.tensor([500.5] * batch),
            torch.randn(batch, 5, 32, generator=generator))


def test_openvino_unet_and_vae_agree_with_eager_within_1e_3(nets, tmp_path: Path) -> None:
    unet, vae = nets
    runners = build_runners(unet, vae, "openvino", "a" * 64, tmp_path, Notices(lambda _: None))
    x, t, context = inputs()
    pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        assert relative(runners.unet(x, t, context), unet(x, t, context)) <= 1e-3
        assert relative(runners.vae_decode(x), vae.decode(x)) <= 1e-3
        assert relative(runners.vae_encode(pixels), vae.encode(pixels)) <= 1e-3
        # A second input of the same shape reuses the compiled model and still agrees.
        x2, t2, c2 = inputs(seed=5)
        t2 = torch.tensor([12.25, 900.0])
        assert relative(runners.unet(x2, t2, c2), unet(x2, t2, c2)) <= 1e-3
        # The denoiser passes the text conditioning by name.
        assert relative(runners.unet(x2, t2, context=c2), unet(x2, t2, context=c2)) <= 1e-3
    assert runners.unet.compiled_shapes == (((2, 4, 8, 8), (2,), (2, 5, 32)),)


def test_a_new_shape_compiles_again_and_agrees(nets, tmp_path: Path) -> None:
    unet, vae = nets
    compiler = OpenVINOCompiler(tmp_path)
    runners = build_runners(unet, vae, "openvino", "b" * 64, tmp_path, Notices(lambda _: None), compiler)
    with torch.inference_mode():
        for batch, size in ((1, 8), (2, 16)):
            x, t, context = inputs(batch=batch, size=size)
            assert relative(runners.unet(x, t, context), unet(x, t, context)) <= 1e-3
    assert compiler.conversions == 2


def test_the_disk_cache_avoids_a_second_conversion(nets, tmp_path: Path) -> None:
    unet, vae = nets
    x, t, context = inputs()
    first = OpenVINOCompiler(tmp_path)
    with torch.inference_mode():
        expected = first.compile(unet, (x, t, context), "c" * 64, "unet")(x, t, context)
    assert (first.conversions, first.cache_reads) == (1, 0)
    assert len(list(tmp_path.glob("unet-*.xml"))) == 1

    later_process = OpenVINOCompiler(tmp_path)  # a new start: nothing in memory, the same folder
    with torch.inference_mode():
        again = later_process.compile(unet, (x, t, context), "c" * 64, "unet")(x, t, context)
    assert (later_process.conversions, later_process.cache_reads) == (0, 1)
    assert torch.equal(again, expected)

    other_weights = OpenVINOCompiler(tmp_path)
    with torch.inference_mode():
        other_weights.compile(unet, (x, t, context), "d" * 64, "unet")
    assert other_weights.conversions == 1  # another checkpoint hash is another model


def test_cache_key_separates_shape_component_and_version() -> None:
    base = CompileKey("e" * 64, "unet", ((2, 4, 8, 8),), "2026.4.1")
    stems = {base.file_stem(), CompileKey("e" * 64, "unet", ((1, 4, 8, 8),), "2026.4.1").file_stem(),
             CompileKey("e" * 64, "vae-decoder", ((2, 4, 8, 8),), "2026.4.1").file_stem(),
             CompileKey("e" * 64, "unet", ((2, 4, 8, 8),), "2026.5.0").file_stem()}
    assert len(stems) == 4


def test_a_failed_compile_runs_eager_and_says_why_once() -> None:
    said: list[str] = []
    calls = []

    def failing(_inputs):
        calls.append(1)
        raise BackendUnavailable("the openvino package cannot be imported (test)")

    runner = ComponentRunner("UNet", lambda x: x * 2, failing, Notices(said.append))
    assert torch.equal(runner(torch.ones(2)), torch.full((2,), 2.0))
    assert torch.equal(runner(torch.ones(3)), torch.full((3,), 2.0))
    assert said == ["UNet: running eager PyTorch: the openvino package cannot be imported (test)"]
    assert len(calls) == 1  # not retried on every call


def test_an_unconvertible_module_falls_back_to_eager(tmp_path: Path) -> None:
    class HostSide(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Data-dependent Python control flow cannot become a static graph input of another shape.
            raise RuntimeError("cannot trace this")

    said: list[str] = []
    compiler = OpenVINOCompiler(tmp_path)
    runner = ComponentRunner("VAE decoder", lambda x: x + 1,
                             lambda inputs: compiler.compile(HostSide(), inputs, "f" * 64, "vae-decoder"),
                             Notices(said.append))
    assert torch.equal(runner(torch.zeros(1, 4)), torch.ones(1, 4))
    assert len(said) == 1 and said[0].startswith("VAE decoder: running eager PyTorch: OpenVINO could not convert")
    assert not list(tmp_path.glob("*.xml"))


def test_torch_backend_is_the_eager_nets(nets, tmp_path: Path) -> None:
    unet, vae = nets
    runners = build_runners(unet, vae, "torch", "a" * 64, tmp_path, Notices(lambda _: None))
    assert runners.unet is unet


def test_resolve_backend() -> None:
    assert resolve_backend("auto", is_cuda=True, unet_parameters=860_000_000) == "torch"
    assert resolve_backend("auto", is_cuda=False, unet_parameters=860_000_000) == "openvino"
    assert resolve_backend("auto", is_cuda=False, unet_parameters=5_000_000) == "torch"
    assert resolve_backend("openvino", is_cuda=True) == "torch"
    assert resolve_backend("compile", is_cuda=False) == "compile"
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tensorrt", is_cuda=False)


def test_weights_id_depends_on_checkpoint_and_vae() -> None:
    assert weights_id("a", None) != weights_id("a", "b") != weights_id("b", None)
    assert weights_id("a", None) == weights_id("a", None)


def test_eager_reasons_name_what_changes_the_nets() -> None:
    assert eager_reasons(False, False) == ()
    assert "LoRA" in eager_reasons(True, False)[0]
    assert "circular padding" in eager_reasons(False, True)[0]


def test_openvino_text_encoder_agrees_with_eager_and_is_cached_per_clip_skip(nets, tmp_path: Path) -> None:
    unet, vae = nets
    text_encoder = random_clip_l_encoder(seed=6).requires_grad_(False)
    compiler = OpenVINOCompiler(tmp_path)
    runners = build_runners(unet, vae, "openvino", "g" * 64, tmp_path, Notices(lambda _: None), compiler,
                            text_encoder=text_encoder)
    generator = torch.Generator().manual_seed(2)
    ids = torch.randint(0, text_encoder.config.vocab_size, (2, 77), generator=generator)
    vectors = torch.randn(2, 77, text_encoder.config.hidden_size, generator=generator)
    where = torch.zeros(2, 77, dtype=torch.bool)
    where[0, 3:5] = True  # a two-vector embedding in the first text
    with torch.inference_mode():
        for skip in (None, 2):
            assert relative(runners.text_encode(ids, skip), text_encoder.encode(ids, skip)) <= 1e-3
        embedded = runners.text_encode(ids, None, (vectors, where))
        assert relative(embedded, text_encoder.encode(ids, None, (vectors, where))) <= 1e-3
        assert not torch.allclose(embedded, text_encoder.encode(ids))  # the vectors were used
        other = torch.randint(0, text_encoder.config.vocab_size, (2, 77), generator=generator)
        assert relative(runners.text_encode(other), text_encoder.encode(other)) <= 1e-3
        assert runners.text_encode(ids).dtype == torch.float32
    assert compiler.conversions == 3  # skip 1, skip 2, skip 1 with embeddings; the second ids reuse skip 1
    assert len(list(tmp_path.glob("text-encoder-skip1-g*.xml"))) == 1

    later = OpenVINOCompiler(tmp_path)
    again = build_runners(unet, vae, "openvino", "g" * 64, tmp_path, Notices(lambda _: None), later,
                          text_encoder=text_encoder)
    with torch.inference_mode():
        assert relative(again.text_encode(ids), text_encoder.encode(ids)) <= 1e-3
    assert (later.conversions, later.cache_reads) == (0, 1)


def test_text_encoder_runner_leaves_a_bad_clip_skip_to_the_eager_error(nets, tmp_path: Path) -> None:
    unet, vae = nets
    text_encoder = random_clip_l_encoder(seed=6)
    said: list[str] = []
    runners = build_runners(unet, vae, "openvino", "h" * 64, tmp_path, Notices(said.append),
                            text_encoder=text_encoder)
    with pytest.raises(ValueError, match="clip skip must be between 1 and 2"):
        runners.text_encode(torch.zeros(1, 77, dtype=torch.long), 5)
    assert not list(tmp_path.glob("*.xml")) and not any("eager" in s for s in said)
