"""Near misses: layouts that are almost SD1/SD2 are refused with a message naming the problem."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from modules.models.detect import detect_checkpoint, detect_family, detect_vae_file
from modules.models.families import UnknownModelLayoutError
from modules.nets.configs import VAEConfig
from tests.models.family_configs import tiny_configs, with_in_channels
from tests.models.fake_layouts import (
    checkpoint_extra_key_shapes, clip_l_key_shapes, ldm_key_shapes, vae_key_shapes, write_fake_checkpoint,
)


def _without(shapes: dict, prefix: str) -> dict:
    return {key: shape for key, shape in shapes.items() if not key.startswith(prefix)}


def _sd1() -> dict:
    return ldm_key_shapes(*tiny_configs())


def _refused(shapes: dict, *fragments: str) -> str:
    with pytest.raises(UnknownModelLayoutError) as caught:
        detect_family(shapes)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    return message


def test_message_lists_prefixes_counts_and_sample_shapes():
    shapes = _without(_sd1(), "model.diffusion_model.")
    message = _refused(shapes, "no UNet")
    vae_count = sum(key.startswith("first_stage_model.encoder.") for key in shapes)
    assert f"first_stage_model.encoder.* ({vae_count})" in message
    assert re.search(r"sample keys: .*first_stage_model\.encoder\.\S+ \[\d+(, \d+)*\]", message)
    assert f"{len(shapes)} tensors" in message


def test_no_text_encoder():
    _refused(_without(_sd1(), "cond_stage_model."), "no text encoder")


def test_pre_text_model_clip_keys_are_read_as_the_clip_l_encoder():
    # Old transformers saved CLIP without the text_model. level (early SD1 files): same encoder.
    shapes = _without(_sd1(), "cond_stage_model.")
    shapes.update({"cond_stage_model.transformer." + k: s for k, s in clip_l_key_shapes(tiny_configs()[2]).items()})
    assert detect_family(shapes) == detect_family(_sd1())


def test_other_modules_directly_under_the_transformer_are_still_refused():
    shapes = _without(_sd1(), "cond_stage_model.")
    shapes.update({"cond_stage_model.transformer.vision_model." + k: s
                   for k, s in clip_l_key_shapes(tiny_configs()[2]).items()})
    _refused(shapes, "no text encoder", "cond_stage_model.transformer.* (")


def test_two_text_encoders():
    shapes = _sd1()
    shapes.update(ldm_key_shapes(*tiny_configs(sd2=True)))
    _refused(shapes, "both a CLIP-L")


def test_sdxl_conditioner():
    shapes = _without(_sd1(), "cond_stage_model.")
    shapes.update({"conditioner.embedders.0.transformer." + k: s
                   for k, s in clip_l_key_shapes(tiny_configs()[2]).items()})
    _refused(shapes, "conditioner.embedders", "conditioner.embedders.* (")


def test_sdxl_label_embedding():
    shapes = _sd1()
    shapes["model.diffusion_model.label_emb.0.0.weight"] = (128, 2816)
    _refused(shapes, "label_emb")


@pytest.mark.parametrize("in_channels", [8, 5, 7])
def test_unet_input_channels_of_other_model_kinds(in_channels):
    _refused(ldm_key_shapes(*with_in_channels(tiny_configs(), in_channels)), f"UNet in_channels {in_channels}")


def test_missing_vae():
    _refused(_without(_sd1(), "first_stage_model."), "no VAE")


def test_diffusers_vae_layout():
    shapes = _without(_sd1(), "first_stage_model.")
    shapes["first_stage_model.encoder.down_blocks.0.resnets.0.conv1.weight"] = (32, 32, 3, 3)
    _refused(shapes, "diffusers key layout")


def test_context_dim_differs_from_text_width():
    unet, vae, text = tiny_configs()
    shapes = ldm_key_shapes(unet, vae, text)
    shapes.update(_without(ldm_key_shapes(replace(unet, context_dim=48), vae, text), "cond_stage_model."))
    _refused(shapes, "context dim 48", "text encoder width 32")


def test_transformer_depth_varies():
    shapes = _sd1()
    block = "model.diffusion_model.middle_block.1.transformer_blocks.0."
    shapes.update({k.replace(".transformer_blocks.0.", ".transformer_blocks.1."): s
                   for k, s in shapes.items() if k.startswith(block)})
    _refused(shapes, "transformers differ", "middle_block.1: depth 2")


def test_missing_output_block():
    shapes = _sd1()
    last = max(int(k.split(".")[3]) for k in shapes if k.startswith("model.diffusion_model.output_blocks."))
    _refused(_without(shapes, f"model.diffusion_model.output_blocks.{last}."), "output_blocks", f"implies {last + 1}")


def test_middle_block_without_transformer():
    _refused(_without(_sd1(), "model.diffusion_model.middle_block.1."), "middle_block has no SpatialTransformer")


def test_missing_unet_out_conv():
    _refused(_without(_sd1(), "model.diffusion_model.out.2."), "has no out.2.weight")


def test_wrong_rank_is_reported():
    shapes = _sd1()
    shapes["model.diffusion_model.input_blocks.0.0.weight"] = (32, 4)
    _refused(shapes, "input_blocks.0.0.weight has shape [32, 4], expected 4 dimensions")


def test_text_layers_with_a_gap():
    shapes = _without(_sd1(), "cond_stage_model.transformer.text_model.encoder.layers.0.")
    _refused(shapes, "layers are not numbered 0..N-1")


def test_empty_state_dict():
    _refused({}, "no tensors at all")


def test_file_errors_name_the_file(tmp_path):
    path = write_fake_checkpoint(tmp_path / "half.safetensors", _without(_sd1(), "model.diffusion_model."))
    with pytest.raises(UnknownModelLayoutError, match=r"half\.safetensors: unknown model layout: no UNet"):
        detect_checkpoint(path)


def test_vae_file_that_is_not_a_vae():
    shapes = clip_l_key_shapes(tiny_configs()[2])
    with pytest.raises(UnknownModelLayoutError, match="VAE file has no encoder"):
        detect_vae_file(shapes)


VAE_TWO_BLOCKS = VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=2)


def test_vae_file_with_a_missing_block():
    shapes = _without(vae_key_shapes(VAE_TWO_BLOCKS), "encoder.down.1.block.0.")
    with pytest.raises(UnknownModelLayoutError, match=r"encoder.down.1 blocks are not numbered"):
        detect_vae_file(shapes)


def test_vae_file_with_uneven_levels():
    shapes = _without(vae_key_shapes(VAE_TWO_BLOCKS), "encoder.down.1.block.1.")
    with pytest.raises(UnknownModelLayoutError, match=r"different block counts \[1, 2\]"):
        detect_vae_file(shapes)


def test_vae_decoder_that_does_not_match_the_encoder():
    shapes = _without(vae_key_shapes(VAE_TWO_BLOCKS), "decoder.up.1.")
    with pytest.raises(UnknownModelLayoutError, match=r"decoder has 1 levels, the encoder 2"):
        detect_vae_file(shapes)


def test_extras_alone_do_not_make_a_text_encoder():
    unet, vae, text = tiny_configs()
    shapes = _without(ldm_key_shapes(unet, vae, text), "cond_stage_model.")
    shapes.update(checkpoint_extra_key_shapes(ldm_key_shapes(unet, vae, text), text))
    message = _refused(shapes, "no text encoder")
    # EMA copies are counted as one group, not one prefix per parameter.
    ema_count = sum(key.startswith("model_ema.") for key in shapes)
    assert f"model_ema.* ({ema_count})" in message
