"""`python launch.py txt2img` with the CompVis flags, end to end on a tiny model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import save_file

from modules.infotext.files import read_infotext
from modules.infotext.parse import parse_infotext
from tests.models.family_configs import clip_l_text, tiny_configs
from tests.nets.checkpoints import make_ldm_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    unet, vae, _ = tiny_configs()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    metadata = {"modelspec.resolution": "72x64"}
    save_file(make_ldm_checkpoint(unet, vae, clip_l_text(32, 2, 64), seed=5), str(path), metadata=metadata)
    return path


def launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "launch.py"), "txt2img", "--skip-install", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_compvis_flags_make_files_with_infotext(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = launch("--ckpt", str(checkpoint), "--prompt", "a red circle", "--n_samples", "2", "--n_iter", "2",
                  "--ddim_steps", "3", "--outdir", str(out), "--seed", "7", "--scale", "5",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    samples = sorted((out / "samples").iterdir())
    assert [p.name for p in samples] == ["00000-7.png", "00001-8.png", "00002-9.png", "00003-10.png"]
    assert sorted(p.name for p in out.glob("grid-*.png")) == ["grid-0000.png", "grid-0001.png"]
    fields = parse_infotext(read_infotext(samples[3]))
    assert (fields["Prompt"], fields["Seed"], fields["Steps"], fields["Sampler"]) == ("a red circle", "10", "3", "DDIM")
    assert (fields["CFG scale"], fields["Size"]) == ("5", "72x64")  # the model's native size from its metadata
    assert "[###" in done.stderr  # the progress bar


def test_fixed_code_repeats_the_seeds(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = launch("--ckpt", str(checkpoint), "--n_samples", "1", "--n_iter", "2", "--ddim_steps", "2", "--fixed_code",
                  "--skip_grid", "--plms", "--W", "64", "--H", "64", "--outdir", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first, second = sorted((out / "samples").iterdir())
    assert (first.name, second.name) == ("00000-42.png", "00001-42.png")
    assert first.read_bytes() == second.read_bytes()
    assert parse_infotext(read_infotext(first))["Sampler"] == "PLMS"


@pytest.mark.parametrize("flag, message", [("--laion400m", "LAION-400M"), ("--config=v1.yaml", "detected")])
def test_unsupported_compvis_flags_are_answered(flag: str, message: str, tmp_path: Path) -> None:
    done = launch(flag, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr


def test_latent_flags_must_match_the_model(checkpoint: Path, tmp_path: Path) -> None:
    done = launch("--ckpt", str(checkpoint), "--f", "8", cwd=tmp_path)
    assert done.returncode == 2 and "factor 2" in done.stderr


def test_bad_values_are_refused_with_the_field(checkpoint: Path, tmp_path: Path) -> None:
    done = launch("--ckpt", str(checkpoint), "--W", "68", "--H", "64", "--ddim_steps", "1", cwd=tmp_path)
    assert done.returncode == 2 and "width: must be a multiple of 8" in done.stderr


def test_img2img_from_an_init_image(checkpoint: Path, tmp_path: Path) -> None:
    init = tmp_path / "in.png"
    Image.new("RGB", (70, 66), (10, 200, 30)).save(init)
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "launch.py"), "img2img", "--skip-install", "--ckpt", str(checkpoint),
               "--init-img", str(init), "--strength", "0.5", "--n_samples", "1", "--n_iter", "1", "--ddim_steps", "4",
               "--outdir", str(out), "--prompt", "green"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (sample,) = (out / "samples").iterdir()
    with Image.open(sample) as image:
        assert image.size == (64, 64)  # the init image's size, down to a multiple of 8
    fields = parse_infotext(read_infotext(sample))
    assert (fields["Denoising strength"], fields["Sampler"], fields["Prompt"]) == ("0.5", "DDIM", "green")


def test_img2img_missing_init_image_is_a_clear_error(checkpoint: Path, tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "launch.py"), "img2img", "--skip-install", "--ckpt", str(checkpoint),
               "--init-img", str(tmp_path / "missing.png")]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "missing.png" in done.stderr
