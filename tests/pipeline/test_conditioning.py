"""Prompts -> context: 75-token chunks, start/end/padding ids, batching cond with uncond."""

from __future__ import annotations

import pytest
import torch

from modules.nets.text_encoders import TextEncoder
from modules.nets.tokenizer import build_clip_tokenizer
from modules.pipeline.conditioning import chunk_token_ids, encode_prompts, prompt_token_count
from tests.models.family_configs import random_clip_l_encoder


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return random_clip_l_encoder(seed=0)


def test_short_prompt_is_one_row_of_77() -> None:
    rows = chunk_token_ids([5, 6], bos=1, eos=2, pad=0)
    assert rows == [[1, 5, 6, 2] + [0] * 73]


def test_long_prompt_is_split_every_75_tokens() -> None:
    rows = chunk_token_ids(list(range(10, 160)), bos=1, eos=2, pad=2)
    assert [len(r) for r in rows] == [77, 77]
    assert rows[0][1:76] == list(range(10, 85)) and rows[0][76] == 2
    assert rows[1][1:76] == list(range(85, 160))


def test_empty_prompt_is_one_row() -> None:
    assert chunk_token_ids([], bos=1, eos=2, pad=2) == [[1] + [2] * 76]


def test_token_counter(tokenizer) -> None:
    assert prompt_token_count(tokenizer, "") == (0, 75)
    assert prompt_token_count(tokenizer, "a cat") == (2, 75)
    assert prompt_token_count(tokenizer, "cat " * 80) == (80, 150)


@torch.inference_mode()
def test_chunks_are_encoded_separately_and_concatenated(tokenizer, encoder) -> None:
    long_prompt = "red " * 75 + "blue"
    context = encode_prompts(encoder, tokenizer, [long_prompt])
    assert context.shape == (1, 154, 32)
    first = encode_prompts(encoder, tokenizer, ["red " * 75])
    second = encode_prompts(encoder, tokenizer, ["blue"])
    assert torch.allclose(context[:, :77], first, atol=1e-6)
    assert torch.allclose(context[:, 77:], second, atol=1e-6)


@torch.inference_mode()
def test_shorter_prompt_is_padded_with_the_empty_encoding(tokenizer, encoder) -> None:
    context = encode_prompts(encoder, tokenizer, ["cat " * 80, "dog"])
    assert context.shape == (2, 154, 32)
    assert torch.allclose(context[1, :77], encode_prompts(encoder, tokenizer, ["dog"])[0], atol=1e-6)
    assert torch.allclose(context[1, 77:], encode_prompts(encoder, tokenizer, [""])[0], atol=1e-6)
