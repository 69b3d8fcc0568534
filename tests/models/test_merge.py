"""The checkpoint merger on tiny checkpoints on disk, through the runtime and the tab's handler."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import modules.models.merge as merge_module
from modules.models.merge import MergeError, MergeMethod, MergeRequest
from tests.models.fake_layouts import old_clip_layout
from tests.models.family_configs import tiny_configs
from tests.nets.checkpoints import make_ldm_checkpoint
from tests.test_runtime import make_runtime
from webui.tabs.merger import merge_from_values

UNET, VAE, TEXT = tiny_configs()
MODELSPEC = {"modelspec.title": "alpha model", "modelspec.architecture": "stable-diffusion-v1"}


@pytest.fixture()
def library(tmp_path: Path):
    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    states = {}
    for name, seed in (("alpha", 1), ("beta", 2), ("gamma", 3)):
        states[name] = make_ldm_checkpoint(UNET, VAE, TEXT, seed=seed)
    states["alpha"]["model_ema.decay"] = torch.tensor(0.9999)  # a non-weight entry only A has
    save_file(states["alpha"], str(folder / "alpha.safetensors"), metadata=MODELSPEC)
    save_file(states["beta"], str(folder / "beta.safetensors"))
    save_file(states["gamma"], str(folder / "gamma.safetensors"))
    runtime = make_runtime(tmp_path)
    return runtime, states


def request(runtime, method: MergeMethod, multiplier: float, name: str, **changes) -> MergeRequest:
    files = {f.model_name: f for f in runtime.checkpoints()}
    return MergeRequest(files["alpha"], files["beta"], files["gamma"], method, multiplier, name, **changes)


def merged_state(runtime, *args, **changes) -> tuple[dict[str, torch.Tensor], Path]:
    merged = runtime.merge_checkpoints(request(runtime, *args, **changes))
    return load_file(str(merged.path)), merged.path


def test_weighted_sum_reproduces_a_and_b_at_the_ends_and_averages_in_the_middle(library) -> None:
    runtime, states = library
    at_zero, _ = merged_state(runtime, MergeMethod.WEIGHTED_SUM, 0.0, "zero")
    at_one, _ = merged_state(runtime, MergeMethod.WEIGHTED_SUM, 1.0, "one")
    half, _ = merged_state(runtime, MergeMethod.WEIGHTED_SUM, 0.5, "half")
    assert at_zero.keys() == states["alpha"].keys()
    for key, a in states["alpha"].items():
        assert torch.equal(at_zero[key], a), key
        assert torch.equal(at_one[key], states["beta"].get(key, a)), key  # the EMA entry only A has: A's
    keys = sorted(states["beta"])
    mean = (flat(states["alpha"], keys) + flat(states["beta"], keys)) / 2
    torch.testing.assert_close(flat(half, keys), mean, rtol=0, atol=1e-7)


def flat(state: dict[str, torch.Tensor], keys: list[str]) -> torch.Tensor:
    """The tensors of ``keys`` as one float64 vector (one comparison instead of one per key)."""
    return torch.cat([state[k].double().flatten() for k in keys])


def test_add_difference_and_half_precision(library) -> None:
    runtime, states = library
    merged, _ = merged_state(runtime, MergeMethod.ADD_DIFFERENCE, 0.4, "diff", save_as_half=True)
    keys = sorted(states["beta"])
    assert {merged[k].dtype for k in merged} == {torch.float16}
    expected = flat(states["alpha"], keys) + (flat(states["beta"], keys) - flat(states["gamma"], keys)) * 0.4
    torch.testing.assert_close(flat(merged, keys), expected.half().double(), rtol=1e-3, atol=1e-4)  # fp16 rounding


def test_recipe_metadata_and_the_result_is_listed_and_loads(library) -> None:
    runtime, states = library
    files = {f.model_name: f for f in runtime.checkpoints()}
    merged = runtime.merge_checkpoints(request(runtime, MergeMethod.WEIGHTED_SUM, 0.25, "mix.safetensors"))
    assert merged.path == runtime.config.ckpt_dirs[0] / "mix.safetensors"
    with safe_open(str(merged.path), framework="pt") as handle:
        metadata = handle.metadata()
    recipe = json.loads(metadata["sd_merge_recipe"])
    sha_a = hashlib.sha256(files["alpha"].path.read_bytes()).hexdigest()
    sha_b = hashlib.sha256(files["beta"].path.read_bytes()).hexdigest()
    assert recipe["type"] == "webui" and recipe["interp_method"] == "Weighted sum" and recipe["multiplier"] == 0.25
    assert (recipe["primary_model_hash"], recipe["secondary_model_hash"], recipe["tertiary_model_hash"]) == (sha_a, sha_b, None)
    models = json.loads(metadata["sd_merge_models"])
    assert set(models) == {sha_a, sha_b} and models[sha_a]["name"] == "alpha.safetensors"
    assert metadata["modelspec.architecture"] == "stable-diffusion-v1" and metadata["modelspec.title"] == "mix"
    assert merged.title in [f.title for f in runtime.checkpoints()]
    assert not merged.path.with_suffix(".yaml").exists()  # A has no config beside it to copy
    model = runtime.acquire_model(merged.title)
    key = "input_blocks.1.1.proj_in.weight"
    expected = states["alpha"][f"model.diffusion_model.{key}"] * 0.75 + states["beta"][f"model.diffusion_model.{key}"] * 0.25
    assert torch.equal(model.unet.state_dict()[key], expected)


def test_discarded_weights_and_a_baked_vae(library, tmp_path: Path) -> None:
    runtime, states = library
    vae_state = {k.removeprefix("first_stage_model."): v for k, v in make_ldm_checkpoint(UNET, VAE, TEXT, seed=9).items()
                 if k.startswith("first_stage_model.")}
    vae_state["loss.logvar"] = torch.zeros(())  # training-only entry a VAE file may carry
    (tmp_path / "models" / "VAE").mkdir(parents=True)
    save_file(vae_state, str(tmp_path / "models" / "VAE" / "fancy.safetensors"))
    vae = runtime.vae_files()[0]
    merged, _ = merged_state(runtime, MergeMethod.NO_INTERPOLATION, 0.3, "baked", bake_vae=vae,
                             discard_weights=r"^model_ema\.|decoder\.conv_out")
    assert not any(k.startswith("model_ema.") or "decoder.conv_out" in k for k in merged)
    for key, a in states["alpha"].items():
        if key in merged and key.startswith("first_stage_model."):
            assert torch.equal(merged[key], vae_state[key.removeprefix("first_stage_model.")]), key
        elif key in merged:
            assert torch.equal(merged[key], a), key
    assert sum(k.startswith("first_stage_model.") for k in merged) == len(vae_state) - 1 - 2  # loss, conv_out w/b


def test_inputs_are_read_tensor_by_tensor(library, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, _ = library

    def whole_file(*args: object, **kwargs: object) -> None:
        raise AssertionError("safetensors inputs must be read one tensor at a time")

    monkeypatch.setattr(merge_module, "load_state_dict", whole_file)
    merged, _ = merged_state(runtime, MergeMethod.ADD_DIFFERENCE, 1.0, "streamed")
    assert merged


def test_clear_errors(library) -> None:
    runtime, _ = library
    folder = runtime.config.ckpt_dirs[0]
    unet2, vae2, text2 = tiny_configs(sd2=True)
    save_file(make_ldm_checkpoint(unet2, vae2, text2, seed=5), str(folder / "other.safetensors"))
    save_file(make_ldm_checkpoint(dataclasses.replace(UNET, model_channels=64), VAE, TEXT, seed=6),
              str(folder / "wide.safetensors"))
    files = {f.model_name: f for f in runtime.checkpoints(refresh=True)}
    cases = [
        (MergeRequest(files["alpha"], files["other"]), "secondary", "other.safetensors .* is an SD2 model"),
        (MergeRequest(files["alpha"], files["wide"]), "secondary",
         r"different shapes \(\d+\): model.diffusion_model.input_blocks.0.0.bias \[32\] vs \[64\]"),
        (MergeRequest(files["alpha"], None), "secondary", "Weighted sum needs a secondary model"),
        (MergeRequest(files["alpha"], files["beta"], None, MergeMethod.ADD_DIFFERENCE), "tertiary", "needs a tertiary"),
        (MergeRequest(files["alpha"], files["beta"], discard_weights="(["), "discard_weights", "not a valid regular expression"),
        (MergeRequest(files["alpha"], files["beta"], custom_name="../up"), "custom_name", "not a plain file name"),
        (MergeRequest(files["alpha"], files["beta"], custom_name="beta"), "custom_name", "one of the merged files"),
    ]
    for merge_request, field, message in cases:
        with pytest.raises(MergeError, match=message) as raised:
            runtime.merge_checkpoints(merge_request)
        assert raised.value.field == field
    runtime.merge_checkpoints(MergeRequest(files["alpha"], files["beta"], custom_name="taken"))
    with pytest.raises(MergeError, match="taken.safetensors already exists"):
        runtime.merge_checkpoints(MergeRequest(files["alpha"], files["beta"], multiplier=0.9, custom_name="taken"))
    replaced = runtime.merge_checkpoints(MergeRequest(files["alpha"], files["beta"], multiplier=1.0,
                                                       custom_name="taken", overwrite=True))
    assert torch.equal(load_file(str(replaced.path))["model.diffusion_model.out.2.weight"],
                       load_file(str(files["beta"].path))["model.diffusion_model.out.2.weight"])


def test_tab_handler_reports_success_and_errors(library) -> None:
    runtime, _ = library
    titles = {f.model_name: f.title for f in runtime.checkpoints()}
    values = {"primary": titles["alpha"], "secondary": titles["beta"], "tertiary": "", "custom_name": "from tab",
              "multiplier": 0.5, "method": "Weighted sum", "save_as_half": False, "bake_vae": "None",
              "discard_weights": "", "overwrite": False}
    message = merge_from_values(runtime, values)
    assert message.startswith("Saved **from tab.safetensors [") and (runtime.config.ckpt_dirs[0] / "from tab.safetensors").is_file()
    assert "from tab.safetensors" in [f.name for f in runtime.checkpoints()]
    assert merge_from_values(runtime, values).startswith("**Merge failed** (custom name): ")
    failed = merge_from_values(runtime, {**values, "method": "Add difference", "custom_name": "x"})
    assert failed == "**Merge failed** (tertiary): Add difference needs a tertiary model (C)"
    assert "no checkpoint matches 'nope'" in merge_from_values(runtime, {**values, "secondary": "nope"})


def test_a_pickle_input_is_read_through_the_safe_loader(library) -> None:
    runtime, states = library
    torch.save(states["beta"], runtime.config.ckpt_dirs[0] / "pickled.ckpt")
    files = {f.name: f for f in runtime.checkpoints(refresh=True)}
    merged = runtime.merge_checkpoints(MergeRequest(files["alpha.safetensors"], files["pickled.ckpt"], multiplier=1.0,
                                                     custom_name="from pickle"))
    result = load_file(str(merged.path))
    assert all(torch.equal(result[k], v) for k, v in states["beta"].items())


def test_the_config_beside_an_input_is_copied(library) -> None:
    runtime, _ = library
    yaml_text = "model:\n  params:\n    parameterization: eps\n"
    (runtime.config.ckpt_dirs[0] / "beta.yaml").write_text(yaml_text)
    merged = runtime.merge_checkpoints(request(runtime, MergeMethod.WEIGHTED_SUM, 0.5, "with config"))
    assert merged.path.with_suffix(".yaml").read_text() == yaml_text


@pytest.mark.parametrize("old_role", ["primary", "secondary"])
@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_an_old_layout_sd1_file_merges_with_a_current_one(library, old_role: str, suffix: str) -> None:
    """An early SD1 file (CLIP keys without ``text_model.``) merges with a current one; the
    result is in the current layout and its text encoder is the weighted sum of the two."""
    runtime, states = library
    old_state = make_ldm_checkpoint(UNET, VAE, TEXT, seed=11)
    position_ids = {"cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(77)[None]}
    old_file = old_clip_layout({**old_state, **position_ids})
    assert not any("text_model" in key for key in old_file)
    path = runtime.config.ckpt_dirs[0] / f"early{suffix}"
    if suffix == ".safetensors":
        save_file(old_file, str(path))
    else:
        torch.save({"state_dict": old_file, "global_step": 470000}, path)
    files = {f.name: f for f in runtime.checkpoints(refresh=True)}
    old, new = files[path.name], files["beta.safetensors"]
    a_state, b_state = (old_state, states["beta"]) if old_role == "primary" else (states["beta"], old_state)
    a_file, b_file = (old, new) if old_role == "primary" else (new, old)
    merged = load_file(str(runtime.merge_checkpoints(MergeRequest(a_file, b_file, multiplier=0.3,
                                                                    custom_name="mixed layouts")).path))

    text_keys = sorted(k for k in states["beta"] if k.startswith("cond_stage_model."))
    assert text_keys and all(k.startswith("cond_stage_model.transformer.text_model.") for k in text_keys)
    assert not any(k.startswith("cond_stage_model.") and "text_model." not in k for k in merged)
    assert {k for k in merged if not k.endswith("position_ids")} == set(states["beta"])
    expected = flat(a_state, text_keys) * 0.7 + flat(b_state, text_keys) * 0.3
    torch.testing.assert_close(flat(merged, text_keys), expected, rtol=0, atol=1e-6)
    assert not torch.allclose(flat(merged, text_keys), flat(states["beta"], text_keys))  # both inputs count
    if old_role == "primary":  # A's non-weight entries are copied, renamed like its weights
        assert torch.equal(merged["cond_stage_model.transformer.text_model.embeddings.position_ids"], torch.arange(77)[None])
