"""Detection recovers exactly the configs a layout was generated from, for every family."""

from __future__ import annotations

import random

import pytest

from modules.models.detect import detect_checkpoint, detect_family, detect_vae_file, read_shapes
from modules.models.families import ModelFamily, Prediction
from tests.models.family_configs import random_configs, random_vae, sd15_configs, sd21_configs, tiny_configs
from tests.models.fake_layouts import (
    checkpoint_extra_key_shapes, ldm_key_shapes, vae_key_shapes, write_fake_checkpoint,
)

FAMILIES = {
    (False, False): ModelFamily.SD1, (False, True): ModelFamily.SD1_INPAINT,
    (True, False): ModelFamily.SD2, (True, True): ModelFamily.SD2_INPAINT,
}


def _random_cases(count: int) -> list:
    rng = random.Random(7)
    return [(sd2, inpainting, random_configs(rng, sd2, inpainting))
            for index in range(count) for sd2, inpainting in [divmod(index % 4, 2)]]


@pytest.mark.parametrize("sd2, inpainting, configs", _random_cases(48))
def test_random_configs_round_trip(sd2, inpainting, configs):
    detected = detect_family(ldm_key_shapes(*configs))
    assert (detected.unet, detected.vae, detected.text_encoder) == configs
    assert detected.family is FAMILIES[(bool(sd2), bool(inpainting))]


@pytest.mark.parametrize("inpainting", [False, True])
def test_full_size_sd15_round_trip_from_shapes(inpainting):
    configs = sd15_configs(inpainting)
    detected = detect_family(ldm_key_shapes(*configs))
    assert (detected.unet, detected.vae, detected.text_encoder) == configs
    assert detected.family is (ModelFamily.SD1_INPAINT if inpainting else ModelFamily.SD1)
    assert detected.unet.heads_at(320) == 8
    assert detected.text_encoder.num_heads == 12


@pytest.mark.parametrize("inpainting", [False, True])
def test_full_size_sd21_round_trip_from_shapes(inpainting):
    configs = sd21_configs(inpainting)
    detected = detect_family(ldm_key_shapes(*configs))
    assert (detected.unet, detected.vae, detected.text_encoder) == configs
    assert detected.family is (ModelFamily.SD2_INPAINT if inpainting else ModelFamily.SD2)
    assert [detected.unet.heads_at(c) for c in (320, 640, 1280)] == [5, 10, 20]
    assert detected.text_encoder.num_heads == 16
    assert detected.text_encoder.num_layers == 24  # as many layers as the file holds
    assert detected.text_encoder.default_clip_skip == 2


def test_reasons_say_what_matched():
    reasons = " | ".join(detect_family(ldm_key_shapes(*sd21_configs(inpainting=True))).reasons)
    assert "OpenCLIP layout, width 1024, 24 layers" in reasons
    assert "in_channels 9 -> inpainting" in reasons
    assert "64-channel heads" in reasons
    reasons = " | ".join(detect_family(ldm_key_shapes(*sd15_configs())).reasons)
    assert "CLIP-L layout" in reasons and "width 768, 12 layers" in reasons
    assert "context 768" in reasons and "channel_mult (1, 2, 4, 4)" in reasons


@pytest.mark.parametrize("configs", [sd15_configs(), sd21_configs(inpainting=True)], ids=["sd15", "sd21-inpaint"])
def test_non_weight_extras_are_ignored(configs):
    shapes = ldm_key_shapes(*configs)
    shapes.update(checkpoint_extra_key_shapes(shapes, configs[2]))
    detected = detect_family(shapes)
    assert (detected.unet, detected.vae, detected.text_encoder) == configs


def test_family_conventions_are_fixed_per_family():
    sd1 = detect_family(ldm_key_shapes(*tiny_configs()))
    sd2 = detect_family(ldm_key_shapes(*tiny_configs(sd2=True)))
    assert (sd1.unet.num_heads, sd1.unet.num_head_channels) == (8, -1)
    assert (sd2.unet.num_heads, sd2.unet.num_head_channels) == (-1, 64)
    assert (sd1.text_encoder.hidden_act, sd1.text_encoder.default_clip_skip, sd1.text_encoder.pad_token_id) == (
        "quick_gelu", 1, 49407)
    assert (sd2.text_encoder.hidden_act, sd2.text_encoder.default_clip_skip, sd2.text_encoder.pad_token_id) == (
        "gelu", 2, 0)


# ----- prediction type -----

@pytest.mark.parametrize("value, expected", [
    ("epsilon", Prediction.EPS), ("eps", Prediction.EPS), ("v", Prediction.V), ("v_prediction", Prediction.V),
    ("V-Prediction", Prediction.V),
])
def test_prediction_from_modelspec_metadata(value, expected):
    # SD2 would fall back to v and SD1 to eps: use the family whose fallback differs from the metadata.
    configs = tiny_configs(sd2=expected is Prediction.EPS)
    detected = detect_family(ldm_key_shapes(*configs), {"modelspec.prediction_type": value})
    assert detected.prediction is expected
    assert any("modelspec.prediction_type" in reason for reason in detected.reasons)


V_YAML = "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    parameterization: \"v\"\n"
EPS_YAML = "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    linear_start: 0.00085\n"


def test_prediction_from_sibling_yaml():
    sd1 = ldm_key_shapes(*tiny_configs())
    detected = detect_family(sd1, {}, V_YAML)
    assert detected.prediction is Prediction.V
    assert any("sibling .yaml" in reason for reason in detected.reasons)
    # A yaml without parameterization means LDM's default, eps, even for SD2.
    assert detect_family(ldm_key_shapes(*tiny_configs(sd2=True)), {}, EPS_YAML).prediction is Prediction.EPS


def test_metadata_wins_over_yaml():
    detected = detect_family(ldm_key_shapes(*tiny_configs()), {"modelspec.prediction_type": "epsilon"}, V_YAML)
    assert detected.prediction is Prediction.EPS


@pytest.mark.parametrize("sd2, inpainting, expected", [
    (False, False, Prediction.EPS), (False, True, Prediction.EPS),
    (True, False, Prediction.V), (True, True, Prediction.EPS),
])
def test_prediction_fallback_per_family(sd2, inpainting, expected):
    detected = detect_family(ldm_key_shapes(*tiny_configs(sd2=sd2, inpainting=inpainting)))
    assert detected.prediction is expected
    assert any(reason.startswith(f"prediction {expected.value}: no metadata or .yaml") for reason in detected.reasons)


def test_unknown_prediction_value_is_rejected():
    with pytest.raises(ValueError, match="'flow'"):
        detect_family(ldm_key_shapes(*tiny_configs()), {"modelspec.prediction_type": "flow"})


# ----- files -----

def test_detect_checkpoint_from_safetensors_with_metadata(tmp_path):
    configs = tiny_configs(sd2=True, inpainting=True)
    path = write_fake_checkpoint(tmp_path / "tiny.safetensors", ldm_key_shapes(*configs),
                                 {"modelspec.prediction_type": "v"})
    detected = detect_checkpoint(path)
    assert (detected.unet, detected.vae, detected.text_encoder) == configs
    assert (detected.family, detected.prediction) == (ModelFamily.SD2_INPAINT, Prediction.V)


def test_detect_checkpoint_reads_the_sibling_yaml(tmp_path):
    path = write_fake_checkpoint(tmp_path / "tiny.safetensors", ldm_key_shapes(*tiny_configs()))
    assert detect_checkpoint(path).prediction is Prediction.EPS
    (tmp_path / "tiny.yaml").write_text(V_YAML, encoding="utf-8")
    assert detect_checkpoint(path).prediction is Prediction.V


def test_detect_checkpoint_names_a_broken_yaml(tmp_path):
    path = write_fake_checkpoint(tmp_path / "tiny.safetensors", ldm_key_shapes(*tiny_configs()))
    (tmp_path / "tiny.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="tiny.yaml.*not valid YAML"):
        detect_checkpoint(path)


def test_detect_checkpoint_from_lightning_pickle_with_extras(tmp_path):
    configs = tiny_configs()
    shapes = ldm_key_shapes(*configs)
    shapes.update(checkpoint_extra_key_shapes(shapes, configs[2]))
    path = write_fake_checkpoint(tmp_path / "tiny.ckpt", shapes)
    read, metadata = read_shapes(path)
    assert read == shapes and metadata == {}
    detected = detect_checkpoint(path)
    assert (detected.unet, detected.vae, detected.text_encoder) == configs


def test_read_shapes_of_safetensors(tmp_path):
    shapes = {"a.weight": (3, 2), "scalar": (), "b": (4, 1, 1, 1)}
    path = write_fake_checkpoint(tmp_path / "x.safetensors", shapes, {"modelspec.title": "x"})
    assert read_shapes(path) == (shapes, {"modelspec.title": "x"})


# ----- standalone VAE files -----

@pytest.mark.parametrize("seed", range(6))
def test_vae_file_round_trip_with_and_without_prefix(seed):
    vae = random_vae(random.Random(seed))
    bare = vae_key_shapes(vae)
    assert detect_vae_file(bare) == vae
    assert detect_vae_file({"first_stage_model." + k: s for k, s in bare.items()}) == vae


def test_vae_file_ignores_training_extras():
    _, vae, _ = sd15_configs()
    shapes = dict(vae_key_shapes(vae))
    shapes.update({"loss.logvar": (), "loss.discriminator.main.0.weight": (64, 3, 4, 4), "model_ema.decay": ()})
    assert detect_vae_file(shapes) == vae


def test_vae_from_a_full_checkpoint_file(tmp_path):
    configs = tiny_configs()
    path = write_fake_checkpoint(tmp_path / "full.safetensors", ldm_key_shapes(*configs))
    assert detect_vae_file(read_shapes(path)[0]) == configs[1]
