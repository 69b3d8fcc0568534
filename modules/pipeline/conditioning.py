"""Prompt text -> the context tensors the UNet cross-attends to, per sampling step.

CLIP's text encoder sees 77 positions: a start token, at most 75 prompt tokens
and an end token. Longer prompts are cut into 75-token chunks, each encoded on
its own and concatenated along the token axis (A1111's convention, so long
prompts behave as users expect; a1111-conventions §6):

- a chunk that overflows moves the words after its last comma to the next chunk
  when that comma is within ``comma_padding_backtrack`` tokens of the end;
- ``BREAK`` pads the current chunk with end tokens and starts a new one;
- emphasis weights scale each token's output vector ("Original" then restores
  the chunk's mean, so only the relative weights matter);
- a textual inversion trigger word's tokens are replaced by its vectors at the
  text encoder's input.

``plan_prompts`` parses a batch's prompts once into per-step schedules of
distinct texts (prompt editing, alternation, AND); ``encode_plan`` encodes every
distinct text once; ``StepConditioning.at`` then picks each image's context for
the sampler step the denoiser is at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from modules.nets.text_encoders import TextEncoder
from modules.networks.embeddings import EmbeddingInfo, EmbeddingSet, used_embeddings_field
from modules.networks.tags import extract_extra_networks
from modules.pipeline.prompt_syntax import (
    BREAK_RUN, Emphasis, has_brackets, parse_emphasis, prompt_schedule, split_composable, strip_comments,
)

CHUNK_TOKENS = 75
COUNTER_STEPS = 20  # the step count the token counter assumes when none is given (A1111's default)


@dataclass(frozen=True)
class PromptOptions:
    """The settings that change how prompt text is read (frozen for one job)."""

    emphasis: str = Emphasis.ORIGINAL.value
    comma_padding_backtrack: int = 20
    strip_comments: bool = True
    embeddings: EmbeddingSet = field(default_factory=EmbeddingSet)


# ----- tokens -----
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


@dataclass(frozen=True)
class Chunk:
    """75 prompt positions (no BOS/EOS): token ids, emphasis weights, and the embeddings
    whose vectors replace the ids from a position on."""

    tokens: tuple[int, ...]
    weights: tuple[float, ...]
    fixes: tuple[tuple[int, EmbeddingInfo], ...] = ()


@dataclass(frozen=True)
class TokenizedText:
    chunks: tuple[Chunk, ...]
    token_count: int  # what the UI's counter shows as "used"
    used: tuple[EmbeddingInfo, ...]


def embedding_index(tokenizer, embeddings: Mapping[str, EmbeddingInfo]) -> dict[int, list[tuple[tuple[int, ...], EmbeddingInfo]]]:
    """First token id -> [(the name's token ids, embedding)], longest names first, so the
    longest trigger word that matches at a position wins."""
    index: dict[int, list[tuple[tuple[int, ...], EmbeddingInfo]]] = {}
    names = list(embeddings)
    for name, ids in zip(names, tokenizer(names, add_special_tokens=False, truncation=False).input_ids if names else []):
        if ids:
            index.setdefault(ids[0], []).append((tuple(ids), embeddings[name]))
    for candidates in index.values():
        candidates.sort(key=lambda candidate: -len(candidate[0]))
    return index


class _ChunkBuilder:
    """Fills 75-token chunks (A1111's tokenize_line rules; see the module docstring)."""

    def __init__(self, comma: int | None, backtrack: int, filler: int):
        self.comma, self.backtrack, self.filler = comma, backtrack, filler
        self.chunks: list[Chunk] = []
        self.tokens: list[int] = []
        self.weights: list[float] = []
        self.fixes: list[tuple[int, EmbeddingInfo]] = []
        self.last_comma = -1
        self.count = 0

    def close(self, last: bool = False) -> None:
        self.count += len(self.tokens) if last else CHUNK_TOKENS
        padding = CHUNK_TOKENS - len(self.tokens)
        self.chunks.append(Chunk(tuple(self.tokens + [self.filler] * padding),
                                 tuple(self.weights + [1.0] * padding), tuple(self.fixes)))
        self.tokens, self.weights, self.fixes, self.last_comma = [], [], [], -1

    def make_room(self, width: int) -> None:
        """Before adding ``width`` positions: start a new chunk when they do not fit, moving the
        words after a recent comma along (comma back-tracking)."""
        if len(self.tokens) + width <= CHUNK_TOKENS:
            return
        keep = self.last_comma + 1
        if len(self.tokens) == CHUNK_TOKENS and self.last_comma >= 0 and CHUNK_TOKENS - self.last_comma <= self.backtrack:
            moved = (self.tokens[keep:], self.weights[keep:], [(p - keep, e) for p, e in self.fixes if p >= keep])
            self.tokens, self.weights = self.tokens[:keep], self.weights[:keep]
            self.fixes = [(p, e) for p, e in self.fixes if p < keep]
            self.close()
            self.tokens, self.weights, self.fixes = list(moved[0]), list(moved[1]), moved[2]
            if len(self.tokens) + width <= CHUNK_TOKENS:
                return
        self.close()

    def add_token(self, token: int, weight: float) -> None:
        if token != self.comma:
            self.make_room(1)
        elif len(self.tokens) == CHUNK_TOKENS:
            self.close()
        if token == self.comma:
            self.last_comma = len(self.tokens)
        self.tokens.append(token)
        self.weights.append(weight)

    def add_embedding(self, embedding: EmbeddingInfo, weight: float) -> None:
        count = min(embedding.count, CHUNK_TOKENS)  # more than a chunk's worth cannot be placed
        self.make_room(count)
        self.fixes.append((len(self.tokens), embedding))
        self.tokens += [0] * count
        self.weights += [weight] * count


def tokenize_text(tokenizer, text: str, options: PromptOptions = PromptOptions(), index=None) -> TokenizedText:
    """One schedule-free text -> chunks with weights and embedding positions."""
    runs = parse_emphasis(text, options.emphasis)
    index = embedding_index(tokenizer, options.embeddings.loaded) if index is None else index
    comma = _comma_token(tokenizer)
    builder = _ChunkBuilder(comma, options.comma_padding_backtrack, tokenizer.eos_token_id)
    used: list[EmbeddingInfo] = []
    texts = [run_text for run_text, _ in runs]
    for (run_text, weight), ids in zip(runs, tokenizer(texts, add_special_tokens=False, truncation=False).input_ids):
        if (run_text, weight) == BREAK_RUN:
            builder.close()
            continue
        position = 0
        while position < len(ids):
            match = _embedding_at(ids, position, index)
            if match is None:
                builder.add_token(ids[position], weight)
                position += 1
                continue
            length, embedding = match
            builder.add_embedding(embedding, weight)
            used.append(embedding)
            position += length
    if builder.tokens or not builder.chunks:
        builder.close(last=True)
    return TokenizedText(tuple(builder.chunks), builder.count, tuple(used))


def _comma_token(tokenizer) -> int | None:
    """The id of a word-final comma in CLIP's BPE vocabulary (None if the vocabulary lacks it)."""
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    return None if comma is None or comma == tokenizer.unk_token_id else comma


def _embedding_at(ids: Sequence[int], position: int, index) -> tuple[int, EmbeddingInfo] | None:
    for name_ids, embedding in index.get(ids[position], ()):
        if tuple(ids[position : position + len(name_ids)]) == name_ids:
            return len(name_ids), embedding
    return None


def token_limit(used: int) -> int:
    return max(1, -(-used // CHUNK_TOKENS)) * CHUNK_TOKENS


def prompt_token_count(
    tokenizer, text: str, options: PromptOptions = PromptOptions(), *, steps: int = COUNTER_STEPS,
    negative: bool = False,
) -> tuple[int, int]:
    """(tokens used, current limit) as the UI's counter shows it (A1111: the largest count over
    the prompt's AND parts and schedule steps; weights and brackets are not tokens, BREAK pads
    its chunk, an embedding counts its vectors; the limit grows by 75 per chunk)."""
    if options.strip_comments:
        text = strip_comments(text)
    text, _ = extract_extra_networks(text)
    parts = [text] if negative else [part for part, _ in split_composable(text)]
    index = embedding_index(tokenizer, options.embeddings.loaded)
    texts = {variant for part in parts for _, variant in prompt_schedule(part, max(1, steps))}
    used = max(tokenize_text(tokenizer, variant, options, index).token_count for variant in texts)
    return used, token_limit(used)


# ----- the batch's plan: which text at which step -----
Schedule = tuple[tuple[int, int], ...]  # (end_step, index into PromptPlan.texts)


@dataclass(frozen=True)
class PromptPlan:
    """Distinct texts to encode, and for every image its AND parts (schedule, weight) and its
    negative prompt's schedule."""

    texts: tuple[str, ...]
    cond: tuple[tuple[tuple[Schedule, float], ...], ...]
    uncond: tuple[Schedule, ...]

    @property
    def is_static(self) -> bool:
        """One text per image for the whole run, weight 1: plain classifier-free guidance."""
        single = all(len(parts) == 1 and parts[0][1] == 1.0 and len(parts[0][0]) == 1 for parts in self.cond)
        return single and all(len(schedule) == 1 for schedule in self.uncond)


def clean_prompt(text: str, options: PromptOptions) -> str:
    """What the prompt language reads: comments and extra-network tags removed."""
    text = strip_comments(text) if options.strip_comments else text
    return extract_extra_networks(text)[0]


def plan_prompts(
    prompts: Sequence[str], negatives: Sequence[str], steps: int, options: PromptOptions = PromptOptions(),
    first_pass_steps: int | None = None,
) -> PromptPlan:
    """Parse once: ``steps`` is this pass's step count; ``first_pass_steps`` set = a hires pass."""
    texts: dict[str, int] = {}

    def schedule_of(text: str) -> Schedule:
        entries = prompt_schedule(text, first_pass_steps, steps) if first_pass_steps else prompt_schedule(text, steps)
        return tuple((end, texts.setdefault(variant, len(texts))) for end, variant in entries)

    cond = tuple(
        tuple((schedule_of(part), weight) for part, weight in split_composable(clean_prompt(prompt, options)))
        for prompt in prompts
    )
    uncond = tuple(schedule_of(clean_prompt(negative, options)) for negative in negatives)
    return PromptPlan(tuple(texts), cond, uncond)


def plan_infotext_fields(tokenizer, width: int, plans: Sequence[PromptPlan], options: PromptOptions) -> dict[str, object]:
    """``TI hashes`` (the embeddings the texts use) and ``Emphasis`` (when not Original and a
    text has brackets), as A1111 adds them; absent when they do not apply."""
    usable = options.embeddings.for_width(width).loaded
    index = embedding_index(tokenizer, usable)
    with_usable = PromptOptions(options.emphasis, options.comma_padding_backtrack, options.strip_comments,
                                EmbeddingSet(usable))
    texts = [text for plan in plans for text in plan.texts]
    used = [e for text in texts for e in tokenize_text(tokenizer, text, with_usable, index).used]
    fields: dict[str, object] = {}
    hashes = used_embeddings_field(used)
    if hashes:
        fields["TI hashes"] = hashes
    if options.emphasis != Emphasis.ORIGINAL.value and any(has_brackets(text) for text in texts):
        fields["Emphasis"] = options.emphasis
    return fields


# ----- encoding -----
def _row(chunk: Chunk, bos: int, eos: int, pad: int) -> list[int]:
    """BOS + 75 ids + EOS, with everything after the first EOS set to the pad id (SD2's pad is 0)."""
    row = [bos, *chunk.tokens, eos]
    if pad != eos and eos in row:
        first = row.index(eos)
        row = row[: first + 1] + [pad] * (len(row) - first - 1)
    return row


def apply_emphasis(z: Tensor, weights: Tensor, mode: str) -> Tensor:
    """z [rows, 77, width] scaled per token by weights [rows, 77]. "Original" restores each row's
    mean afterwards (A1111 takes the mean over its batch of texts; one text per row here)."""
    if mode in (Emphasis.IGNORE.value, Emphasis.NONE.value) or bool((weights == 1).all()):
        return z
    weights = weights.to(z)
    scaled = z * weights[..., None]
    if mode == Emphasis.NO_NORM.value:
        return scaled
    original_mean = z.mean(dim=(1, 2), keepdim=True)
    return scaled * (original_mean / scaled.mean(dim=(1, 2), keepdim=True))


def encode_texts(
    text_encoder: TextEncoder, tokenizer, texts: Sequence[str], clip_skip: int | None = None,
    options: PromptOptions = PromptOptions(), encode: Callable[..., Tensor] | None = None,
) -> tuple[Tensor, tuple[EmbeddingInfo, ...]]:
    """[len(texts), 77 * chunks, width] and the embeddings used. Texts with fewer chunks are
    padded with the empty prompt's encoding so all of them can share one batch. ``encode``:
    a compiled runner of ``text_encoder.encode`` (default: the eager method)."""
    width = text_encoder.config.hidden_size
    usable = options.embeddings.for_width(width).loaded
    index = embedding_index(tokenizer, usable)
    tokenized = [tokenize_text(tokenizer, text, options, index) for text in texts]
    empty = Chunk((tokenizer.eos_token_id,) * CHUNK_TOKENS, (1.0,) * CHUNK_TOKENS)
    chunks = max(len(t.chunks) for t in tokenized)
    flat = [c for t in tokenized for c in list(t.chunks) + [empty] * (chunks - len(t.chunks))]
    pad = text_encoder.config.pad_token_id
    rows = [_row(c, tokenizer.bos_token_id, tokenizer.eos_token_id, pad) for c in flat]
    vocabulary = text_encoder.config.vocab_size
    largest = max(max(row) for row in rows)
    if largest >= vocabulary:
        raise ValueError(f"the model's text encoder knows {vocabulary} tokens, but the prompt needs token id {largest}")
    device = next(text_encoder.parameters()).device
    ids = torch.tensor(rows, dtype=torch.long, device=device)
    encoded = (encode or text_encoder.encode)(ids, clip_skip, _input_vectors(flat, ids.shape, width))
    weights = torch.tensor([[1.0, *c.weights, 1.0] for c in flat])
    encoded = apply_emphasis(encoded, weights.to(encoded.device), options.emphasis)
    used = tuple(e for t in tokenized for e in t.used)
    return encoded.reshape(len(texts), chunks * encoded.shape[1], encoded.shape[2]), used


def _input_vectors(chunks: Sequence[Chunk], shape: torch.Size, width: int) -> tuple[Tensor, Tensor] | None:
    """(vectors [rows, 77, width], where [rows, 77]) for the positions embeddings fill, or None."""
    if not any(c.fixes for c in chunks):
        return None
    vectors = torch.zeros(*shape, width)
    where = torch.zeros(*shape, dtype=torch.bool)
    for row, chunk in enumerate(chunks):
        for position, embedding in chunk.fixes:
            start = position + 1  # after BOS
            count = min(embedding.count, CHUNK_TOKENS - position)
            vectors[row, start : start + count] = embedding.vectors[:count]
            where[row, start : start + count] = True
    return vectors, where


def encode_prompts(
    text_encoder: TextEncoder, tokenizer, prompts: Sequence[str], clip_skip: int | None = None,
    options: PromptOptions = PromptOptions(),
) -> Tensor:
    """[len(prompts), 77 * chunks, width] for schedule-free texts (emphasis, BREAK and
    embeddings applied)."""
    return encode_texts(text_encoder, tokenizer, prompts, clip_skip, options)[0]


@dataclass(frozen=True, eq=False)
class StepConditioning:
    """Every distinct text encoded once (``table``) and the plan that says which rows an image
    uses at a step. ``at`` serves the CFG denoiser."""

    table: Tensor  # [texts, tokens, width]
    plan: PromptPlan

    def static(self) -> tuple[Tensor, Tensor]:
        """(cond, uncond) per image, for a plan that is static."""
        cond = self.table[[parts[0][0][0][1] for parts in self.plan.cond]]
        return cond, self.table[[schedule[0][1] for schedule in self.plan.uncond]]

    def at(self, steps: Sequence[int]) -> tuple[Tensor, list[int], list[float], Tensor]:
        """For each image's 0-based step: (cond rows, the image of each row, each row's AND
        weight, uncond per image)."""
        rows, images, weights, uncond = self.rows_at(steps)
        return self.table[rows], images, weights, self.table[uncond]

    def rows_at(self, steps: Sequence[int]) -> tuple[list[int], list[int], list[float], list[int]]:
        """``at`` as row numbers of ``table``: (cond rows, the image of each, its AND weight,
        uncond row per image). Which images and weights the cond rows have does not depend on
        the step; only the rows do."""
        rows, images, weights = [], [], []
        for image, (parts, step) in enumerate(zip(self.plan.cond, steps)):
            for schedule, weight in parts:
                rows.append(_row_at(schedule, step))
                images.append(image)
                weights.append(weight)
        uncond = [_row_at(schedule, step) for schedule, step in zip(self.plan.uncond, steps)]
        return rows, images, weights, uncond


def _row_at(schedule: Schedule, step: int) -> int:
    for end, row in schedule:
        if step <= end:
            return row
    return schedule[-1][1]


def step_conditioning(
    text_encoder: TextEncoder, tokenizer, plan: PromptPlan, clip_skip: int | None, options: PromptOptions,
    dtype: torch.dtype | None = None, encode: Callable[..., Tensor] | None = None,
) -> StepConditioning:
    with torch.no_grad():
        table, _ = encode_texts(text_encoder, tokenizer, plan.texts, clip_skip, options, encode)
    return StepConditioning(table if dtype is None else table.to(dtype), plan)


def prompt_infotext_fields(
    text_encoder: TextEncoder, tokenizer, prompt: str, negative: str, options: PromptOptions, steps: int,
    hires_steps: int | None = None,
) -> dict[str, object]:
    """The infotext fields the prompt language adds for one generation (and its hires pass)."""
    plans = [plan_prompts([prompt], [negative], steps, options)]
    if hires_steps:
        plans.append(plan_prompts([prompt], [negative], hires_steps, options, first_pass_steps=steps))
    return plan_infotext_fields(tokenizer, text_encoder.config.hidden_size, plans, options)
