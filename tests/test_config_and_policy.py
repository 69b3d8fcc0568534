"""Command-line flags -> AppConfig -> device policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modules.config import DeviceFlags, parse_config
from modules.device.policy import choose_device_policy


def test_defaults_bind_loopback_and_use_program_folders(tmp_path: Path) -> None:
    config = parse_config([], tmp_path)
    assert (config.server_name, config.port) == ("127.0.0.1", 7860)
    assert config.ckpt_dirs == (tmp_path.resolve() / "models" / "Stable-diffusion",)
    assert config.options_file == tmp_path.resolve() / "config.json"


def test_folder_flags(tmp_path: Path) -> None:
    extra = tmp_path / "more"
    ckpt = tmp_path / "one.safetensors"
    config = parse_config(
        ["--data-dir", str(tmp_path / "d"), "--ckpt-dir", str(extra), "--ckpt", str(ckpt), "--listen", "--port", "9000"],
        tmp_path,
    )
    assert config.models_dir == (tmp_path / "d" / "models").resolve()
    assert config.ckpt_dirs[1:] == (extra.resolve(),)
    assert config.ckpt_files == (ckpt.resolve(),)
    assert (config.server_name, config.port) == ("0.0.0.0", 9000)


@pytest.mark.parametrize("argv, expected", [(["--use-cpu", "all"], True), (["--use-cpu"], True), ([], False)])
def test_use_cpu(argv: list[str], expected: bool, tmp_path: Path) -> None:
    assert parse_config(argv, tmp_path).device.use_cpu is expected


def test_bad_flag_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--precision", "quarter"], tmp_path)
    assert "invalid choice" in capsys.readouterr().err


def test_cpu_is_fp32() -> None:
    policy = choose_device_policy(DeviceFlags(), cuda_available=False)
    assert policy.device.type == "cpu"
    assert {policy.unet_dtype, policy.text_encoder_dtype, policy.vae_dtype} == {torch.float32}


def test_use_cpu_wins_over_cuda() -> None:
    assert choose_device_policy(DeviceFlags(use_cpu=True), cuda_available=True).device.type == "cpu"


def test_cuda_defaults_to_half_with_vae_retry() -> None:
    policy = choose_device_policy(DeviceFlags(device_id=1), cuda_available=True)
    assert policy.device == torch.device("cuda", 1)
    assert (policy.unet_dtype, policy.vae_dtype, policy.vae_retry_in_fp32) == (torch.float16, torch.float16, True)


@pytest.mark.parametrize(
    "flags, unet, vae",
    [
        (DeviceFlags(bf16=True), torch.bfloat16, torch.bfloat16),
        (DeviceFlags(no_half=True), torch.float32, torch.float16),
        (DeviceFlags(no_half_vae=True), torch.float16, torch.float32),
        (DeviceFlags(precision="full"), torch.float32, torch.float32),
    ],
)
def test_cuda_precision_flags(flags: DeviceFlags, unet: torch.dtype, vae: torch.dtype) -> None:
    policy = choose_device_policy(flags, cuda_available=True)
    assert (policy.unet_dtype, policy.text_encoder_dtype, policy.vae_dtype) == (unet, unet, vae)
    assert policy.vae_retry_in_fp32 is (vae != torch.float32)
