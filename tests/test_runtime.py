"""The runtime end to end on tiny checkpoints on disk: list, load, switch, fail safely, replace the VAE."""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.config import parse_config
from modules.models.families import ModelFamily
from modules.models.safe_load import CheckpointError
from modules.params import ParamsError, Txt2ImgParams
from tests.models.family_configs import clip_l_text
from modules.runtime import NoCheckpointError, Runtime
from tests.nets.checkpoints import TINY_SD1_TEXT, TINY_SD1_UNET, TINY_SD1_VAE, make_ldm_checkpoint


def write_tiny_checkpoint(path: Path, seed: int) -> dict[str, torch.Tensor]:
    state = make_ldm_checkpoint(TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return state


def make_runtime(root: Path, *argv: str) -> Runtime:
    return Runtime(parse_config(["--data-dir", str(root), *argv], root), cuda_available=False)


@pytest.fixture()
def two_models(tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "Stable-diffusion"
    write_tiny_checkpoint(folder / "alpha.safetensors", seed=1)
    write_tiny_checkpoint(folder / "sub" / "beta.safetensors", seed=2)
    return tmp_path


def test_no_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoCheckpointError, match="Stable-diffusion"):
        make_runtime(tmp_path).acquire_model()


def test_lists_titles_and_loads_the_weights_from_the_file(two_models: Path) -> None:
    runtime = make_runtime(two_models)
    titles = [f.title for f in runtime.checkpoints()]
    assert [t.split(" [")[0] for t in titles] == ["alpha.safetensors", "sub/beta.safetensors"]
    model = runtime.acquire_model("sub/beta.safetensors")
    expected = make_ldm_checkpoint(TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT, seed=2)
    assert model.detected.family is ModelFamily.SD1
    loaded = model.unet.state_dict()
    for key in ("time_embed.0.weight", "out.2.weight"):
        assert torch.equal(loaded[key], expected[f"model.diffusion_model.{key}"])
    assert torch.equal(model.vae.state_dict()["decoder.conv_out.weight"], expected["first_stage_model.decoder.conv_out.weight"])


def test_switching_between_cached_models_reads_no_file(two_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = make_runtime(two_models)
    runtime.update_options({"sd_checkpoints_limit": 2})
    alpha, beta = runtime.acquire_model("alpha"), runtime.acquire_model("beta")
    import modules.models.load as load

    def no_disk(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached switch must not load from disk")

    monkeypatch.setattr(load, "load_state_dict", no_disk)
    started = time.perf_counter()
    assert runtime.set_default_checkpoint("alpha") is alpha
    assert runtime.set_default_checkpoint("beta") is beta
    assert time.perf_counter() - started < 0.3
    assert runtime.acquire_model().checkpoint.title == beta.checkpoint.title


def test_failed_load_keeps_the_previous_model(two_models: Path) -> None:
    folder = two_models / "models" / "Stable-diffusion"
    (folder / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": trunc")
    runtime = make_runtime(two_models)
    runtime.update_options({"sd_checkpoints_limit": 1})
    good = runtime.set_default_checkpoint("alpha")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        runtime.set_default_checkpoint("broken")
    assert runtime.acquire_model() is good
    assert runtime.options.current.sd_model_checkpoint == good.checkpoint.title


def test_default_persists_and_ckpt_flag_wins_at_start(two_models: Path) -> None:
    make_runtime(two_models).set_default_checkpoint("beta")
    assert make_runtime(two_models).resolve_checkpoint().name == "sub/beta.safetensors"
    alpha = two_models / "models" / "Stable-diffusion" / "alpha.safetensors"
    assert make_runtime(two_models, "--ckpt", str(alpha)).resolve_checkpoint().name == "alpha.safetensors"


def test_unknown_checkpoint_lists_the_available_ones(two_models: Path) -> None:
    with pytest.raises(KeyError, match="alpha.safetensors"):
        make_runtime(two_models).acquire_model("gamma")


def test_vae_file_replaces_the_checkpoints_vae(two_models: Path) -> None:
    other = make_ldm_checkpoint(TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT, seed=7)
    vae_state = {k.removeprefix("first_stage_model."): v for k, v in other.items() if k.startswith("first_stage_model.")}
    vae_dir = two_models / "models" / "VAE"
    vae_dir.mkdir(parents=True)
    save_file(vae_state, str(vae_dir / "other.safetensors"))
    runtime = make_runtime(two_models)
    own = runtime.acquire_model("alpha", vae_choice="None")
    replaced = runtime.acquire_model("alpha", vae_choice="other.safetensors")
    key = "decoder.conv_out.weight"
    assert torch.equal(replaced.vae.state_dict()[key], vae_state[key])
    assert not torch.equal(own.vae.state_dict()[key], vae_state[key])
    assert torch.equal(replaced.unet.state_dict()["out.2.weight"], own.unet.state_dict()["out.2.weight"])


def test_automatic_vae_picks_the_file_named_like_the_checkpoint(two_models: Path) -> None:
    other = make_ldm_checkpoint(TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT, seed=9)
    vae_state = {k: v for k, v in other.items() if k.startswith("first_stage_model.")}
    save_file(vae_state, str(two_models / "models" / "Stable-diffusion" / "alpha.vae.safetensors"))
    runtime = make_runtime(two_models)
    assert [f.name for f in runtime.checkpoints()] == ["alpha.safetensors", "sub/beta.safetensors"]
    model = runtime.acquire_model("alpha")
    assert model.vae_file is not None and model.vae_file.path.name == "alpha.vae.safetensors"
    key = "decoder.conv_out.weight"
    assert torch.equal(model.vae.state_dict()[key], vae_state[f"first_stage_model.{key}"])


def test_submit_validates_queues_and_saves(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "Stable-diffusion" / "sub"
    folder.mkdir(parents=True)
    state = make_ldm_checkpoint(TINY_SD1_UNET, TINY_SD1_VAE, clip_l_text(32, 2, 64), seed=4)  # the full vocabulary
    save_file(state, str(folder / "full.safetensors"))
    runtime = make_runtime(tmp_path)
    with pytest.raises(ParamsError, match="width"):
        runtime.submit(Txt2ImgParams(width=63))
    params = Txt2ImgParams(prompt="x", steps=2, width=64, height=64, batch_size=2, seed=5, checkpoint="full")
    results = runtime.submit(params).future.result(timeout=120)
    assert [r.seed for r in results] == [5, 6]
    assert all(r.path.is_file() and r.path.parent.parent.name == "txt2img-images" for r in results)
    assert "Model: sub_full" in results[0].infotext
    assert len(list((tmp_path / "outputs" / "txt2img-grids").rglob("grid-0000.png"))) == 1


def test_a_prompt_beyond_the_models_vocabulary_is_a_clear_error(two_models: Path) -> None:
    job = make_runtime(two_models).submit(Txt2ImgParams(prompt="zebra", steps=1, width=64, height=64))
    with pytest.raises(ValueError, match="knows 1000 tokens"):
        job.future.result(timeout=60)


def test_unknown_sampler_knob_is_refused() -> None:
    with pytest.raises(ParamsError, match="Euler a does not take s_churn"):
        Txt2ImgParams(sampler_name="Euler a", sampler_knobs=(("s_churn", 1.0),)).validate()


def test_submit_merges_styles_and_refuses_unknown_ones(two_models: Path) -> None:
    (two_models / "styles.csv").write_text("name,prompt,negative_prompt\nframed,framed {prompt},ugly\n", encoding="utf-8")
    runtime = make_runtime(two_models)
    assert runtime.with_styles(Txt2ImgParams(prompt="cat", styles=("framed",))).prompt == "framed cat"
    with pytest.raises(ParamsError, match="unknown style 'neon'; available: framed"):
        runtime.submit(Txt2ImgParams(prompt="cat", styles=("neon",)))


def test_switching_checkpoints_frees_the_evicted_models_tokenizer_at_once(two_models: Path) -> None:
    # transformers' CLIPTokenizer keeps its Rust backend in a reference cycle; before the cache
    # collected on eviction, each switch left one behind (megabytes each) until a rare full collection.
    runtime = make_runtime(two_models)
    runtime.update_options({"sd_checkpoints_limit": 1})
    was_enabled = gc.isenabled()
    gc.disable()  # only the cache's own collection may free it
    try:
        backend = weakref.ref(runtime.acquire_model("alpha.safetensors").tokenizer.backend_tokenizer)
        runtime.acquire_model("sub/beta.safetensors")
        assert backend() is None
    finally:
        if was_enabled:
            gc.enable()
