"""Jobs through the runtime with --backend openvino on a tiny checkpoint: the image matches eager's,
the converted nets land in the data dir's cache, and a job that changes the nets runs eager."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import pytest
from safetensors.torch import save_file

from modules.config import parse_config
from modules.params import Txt2ImgParams
from modules.runtime import Runtime
from tests.models.family_configs import clip_l_text
from tests.nets.checkpoints import TINY_SD1_UNET, TINY_SD1_VAE, make_ldm_checkpoint

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("backend")
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    save_file(make_ldm_checkpoint(TINY_SD1_UNET, TINY_SD1_VAE, clip_l_text(32, 2, 64), seed=4),
              str(folder / "tiny.safetensors"))
    return root


def generate(runtime: Runtime) -> np.ndarray:
    params = Txt2ImgParams(prompt="a red circle", steps=3, width=64, height=64, seed=5)
    result = runtime.submit(params, save=None).future.result(timeout=300)
    return np.asarray(result[0].image, dtype=np.int16)


def test_openvino_jobs_match_eager_and_cache_their_conversions(root: Path) -> None:
    eager = Runtime(parse_config(["--data-dir", str(root), "--backend", "torch"], root), cuda_available=False)
    fast = Runtime(parse_config(["--data-dir", str(root), "--backend", "openvino"], root), cuda_available=False)
    expected, got = generate(eager), generate(fast)
    runners = fast.runners_for(fast.acquire_model(), "openvino")
    assert runners.unet.compiled_shapes  # it did run compiled
    assert runners.text_encode.runner_for(1, embeddings=False).compiled_shapes  # the text encoder too
    assert np.abs(got - expected).max() <= 2  # 8-bit pixels: fp32 reordering moves a value by a level at most
    cached = sorted(p.name.split("-")[0] for p in (root / "cache" / "openvino").glob("*.xml"))
    assert cached == ["text", "unet", "vae"]


def test_auto_keeps_small_models_eager(root: Path) -> None:
    runtime = Runtime(parse_config(["--data-dir", str(root)], root), cuda_available=False)
    model = runtime.acquire_model()
    assert runtime.backend_for(model) == "torch"
    assert runtime.job_model(model).runners is None


def test_a_job_that_changes_the_nets_runs_eager_and_says_why(root: Path) -> None:
    runtime = Runtime(parse_config(["--data-dir", str(root), "--compile"], root), cuda_available=False)
    model = runtime.acquire_model()
    assert runtime.job_model(model, ("LoRA weights are patched into the eager UNet for this job",)).runners is None
    assert runtime.job_model(model, ("LoRA weights are patched into the eager UNet for this job",)).runners is None
    assert runtime.notices.said == ("compile: this job runs eager PyTorch: LoRA weights are patched into the eager UNet for this job",)
    assert runtime.job_model(model).runners is not None


def test_compile_conflicting_with_backend_is_refused(root: Path) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--compile", "--backend", "openvino"], root)


def test_offloaded_models_run_eager_under_compile_and_say_why(root: Path) -> None:
    from modules.device.placement import Offload, plan_placement

    runtime = Runtime(parse_config(["--data-dir", str(root), "--compile"], root), cuda_available=False)
    model = runtime.acquire_model()
    offloaded = dataclasses.replace(model, placement=plan_placement(
        Offload.MEDVRAM, torch.device("cpu"), model.unet, model.text_encoder, model.vae, move=lambda *_: None))
    try:
        assert runtime.job_model(offloaded).runners is None
        said = "compile: this job runs eager PyTorch: --medvram moves the weights between devices"
        assert runtime.notices.said == (said,)
    finally:
        offloaded.placement.remove()
