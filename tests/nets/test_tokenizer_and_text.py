"""The offline CLIP tokenizer gives the ids SD was trained with; text-encoder weights round-trip."""

from __future__ import annotations

import pytest
import torch

from modules.nets.text_encoders import TextEncoder
from modules.nets.tokenizer import build_clip_tokenizer
from tests.nets.checkpoints import TINY_SD1_TEXT, TINY_SD2_TEXT, make_ldm_checkpoint, TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD2_UNET, TINY_SD2_VAE


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


def test_known_ids(tokenizer) -> None:
    # Published ids of the CLIP tokenizer for this sentence (stack notes, checked against real SD pipelines).
    ids = tokenizer("a photograph of an astronaut riding a horse").input_ids
    assert ids == [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]


def test_vocabulary_and_special_tokens(tokenizer) -> None:
    assert len(tokenizer) == 49408
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (49406, 49407, 49407)
    assert tokenizer.model_max_length == 77
    # Lower-casing and punctuation splitting as CLIP does.
    assert tokenizer("Horse,HORSE").input_ids == tokenizer("horse , horse").input_ids


def test_open_clip_pads_with_zero() -> None:
    ids = build_clip_tokenizer(pad_token_id=0)("a cat", padding="max_length", max_length=8).input_ids
    assert ids[:4] == [49406, 320, 2368, 49407] and ids[4:] == [0, 0, 0, 0]


@pytest.mark.parametrize("configs", [(TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT), (TINY_SD2_UNET, TINY_SD2_VAE, TINY_SD2_TEXT)])
def test_text_encoder_weights_round_trip(configs) -> None:
    state = make_ldm_checkpoint(*configs, seed=5)
    text_state = {k.removeprefix("cond_stage_model."): v for k, v in state.items() if k.startswith("cond_stage_model.")}
    encoder = TextEncoder(configs[2])
    encoder.load_ldm_state_dict(text_state)
    back = encoder.ldm_state_dict()
    assert set(back) == set(text_state)
    assert all(torch.equal(back[k], text_state[k]) for k in text_state)


@pytest.mark.parametrize("configs", [(TINY_SD1_UNET, TINY_SD1_VAE, TINY_SD1_TEXT), (TINY_SD2_UNET, TINY_SD2_VAE, TINY_SD2_TEXT)])
def test_text_encoder_loading_is_strict(configs) -> None:
    state = make_ldm_checkpoint(*configs)
    text_state = {k.removeprefix("cond_stage_model."): v for k, v in state.items() if k.startswith("cond_stage_model.")}
    missing = dict(text_state)
    removed = sorted(missing)[3]
    del missing[removed]
    with pytest.raises(ValueError, match="missing"):
        TextEncoder(configs[2]).load_ldm_state_dict(missing)
    extra = {**text_state, "model.something_new.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="something_new"):
        TextEncoder(configs[2]).load_ldm_state_dict(extra)
    # Documented non-weights are dropped, not errors.
    tolerated = {**text_state, "model.text_projection": torch.zeros(2, 2), "model.logit_scale": torch.zeros(())}
    TextEncoder(configs[2]).load_ldm_state_dict(tolerated)


def test_clip_skip_out_of_range_is_refused() -> None:
    encoder = TextEncoder(TINY_SD1_TEXT)
    with pytest.raises(ValueError, match="clip skip must be between 1 and 2"):
        encoder.encode(torch.zeros(1, 77, dtype=torch.long), clip_skip=3)
