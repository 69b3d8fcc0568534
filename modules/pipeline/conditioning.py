"""Prompt text -> the context tensor the UNet cross-attends to.

CLIP's text encoder sees 77 positions: a start token, at most 75 prompt tokens
and an end token. Longer prompts are cut into 75-token chunks, each encoded on
its own and concatenated along the token axis (A1111's convention, so long
prompts behave as users expect). The prompt language (emphasis, scheduling,
embeddings) builds on these functions.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from modules.nets.text_encoders import TextEncoder

CHUNK_TOKENS = 75


def chunk_token_ids(token_ids: Sequence[int], *, bos: int, eos: int, pad: int) -> list[list[int]]:
    """Prompt token ids (no start/end) -> rows of 77 ids: BOS, <=75 tokens, EOS, padding.

    An empty prompt still gives one row, as CLIP encodes "" for an empty negative prompt.
    """
    chunks = [list(token_ids[i : i + CHUNK_TOKENS]) for i in range(0, len(token_ids), CHUNK_TOKENS)] or [[]]
    rows = []
    for chunk in chunks:
        body = chunk + [eos]
        rows.append([bos] + body + [pad] * (CHUNK_TOKENS + 1 - len(body)))
    return rows


def prompt_token_rows(tokenizer, text: str, pad: int) -> list[list[int]]:
    ids = tokenizer(text, add_special_tokens=False, truncation=False).input_ids
    return chunk_token_ids(ids, bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id, pad=pad)


def prompt_token_count(tokenizer, text: str) -> tuple[int, int]:
    """(tokens used, current limit) as the UI's counter shows it: the limit grows by 75 per chunk."""
    used = len(tokenizer(text, add_special_tokens=False, truncation=False).input_ids)
    return used, max(1, -(-used // CHUNK_TOKENS)) * CHUNK_TOKENS


def encode_prompts(
    text_encoder: TextEncoder, tokenizer, prompts: Sequence[str], clip_skip: int | None = None
) -> Tensor:
    """[len(prompts), 77 * chunks, width]. Prompts with fewer chunks are padded with
    the empty prompt's encoding so cond and uncond can share one batch (as A1111 does)."""
    pad = text_encoder.config.pad_token_id
    rows_per_prompt = [prompt_token_rows(tokenizer, prompt, pad) for prompt in prompts]
    empty = chunk_token_ids([], bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id, pad=pad)[0]
    chunks = max(len(rows) for rows in rows_per_prompt)
    rows = [row for prompt_rows in rows_per_prompt for row in prompt_rows + [empty] * (chunks - len(prompt_rows))]
    vocabulary = text_encoder.config.vocab_size
    largest = max(max(row) for row in rows)
    if largest >= vocabulary:
        raise ValueError(f"the model's text encoder knows {vocabulary} tokens, but the prompt needs token id {largest}")
    device = next(text_encoder.parameters()).device
    ids = torch.tensor(rows, dtype=torch.long, device=device)
    encoded = text_encoder.encode(ids, clip_skip)  # [prompts * chunks, 77, width]
    return encoded.reshape(len(prompts), chunks * encoded.shape[1], encoded.shape[2])
