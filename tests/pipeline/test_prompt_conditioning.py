"""The prompt language in the encoding and the sampling loop, on tiny CLIP encoders and a tiny model:
emphasis modes, chunking, comma back-tracking, BREAK, the token counter, per-step schedules, AND."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from modules.nets.text_encoders import TextEncoder
from modules.nets.tokenizer import build_clip_tokenizer
from modules.params import Txt2ImgParams
from modules.pipeline.conditioning import (
    CHUNK_TOKENS, PromptOptions, encode_prompts, plan_prompts, prompt_token_count, prompt_token_rows, tokenize_text,
)
from modules.infotext.parse import parse_infotext
from modules.pipeline.generate import generate_txt2img
from modules.pipeline.sampling_run import SamplingChoice, sample_img2img_latents, sample_txt2img_latents
from modules.sampling.denoiser import ScheduledCFGDenoiser
from modules.sampling.noise import NoiseSpec
from tests.models.family_configs import random_clip_l_encoder
from tests.pipeline.test_sampling_run import model  # noqa: F401  (module-scoped tiny model fixture)


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return random_clip_l_encoder(seed=3)


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def plain_encoding(encoder, tokenizer, text: str) -> torch.Tensor:
    """The unweighted encoding, built without the prompt language: token ids straight into the encoder."""
    rows = prompt_token_rows(tokenizer, text, encoder.config.pad_token_id)
    with torch.no_grad():
        return encoder.encode(torch.tensor(rows)).reshape(1, -1, encoder.config.hidden_size)


# ----- emphasis -----
def cat_weights(tokenizer, weight: float) -> torch.Tensor:
    """Per-position multipliers for "a cat sat": 1 except at "cat" (position 2, after BOS and "a")."""
    assert ids_of(tokenizer, "a cat sat") == ids_of(tokenizer, "a ") + ids_of(tokenizer, "cat") + ids_of(tokenizer, " sat")
    weights = torch.ones(1, 77)
    weights[0, 2] = weight
    return weights


def test_original_emphasis_scales_then_restores_the_mean(encoder, tokenizer) -> None:
    z = plain_encoding(encoder, tokenizer, "a cat sat")
    scaled = z * cat_weights(tokenizer, 1.5)[..., None]
    expected = scaled * (z.mean() / scaled.mean())
    with torch.no_grad():
        got = encode_prompts(encoder, tokenizer, ["a (cat:1.5) sat"])
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, z, atol=1e-3)
    assert got.mean().item() == pytest.approx(z.mean().item(), abs=1e-6)


def test_no_norm_only_scales(encoder, tokenizer) -> None:
    z = plain_encoding(encoder, tokenizer, "a cat sat")
    with torch.no_grad():
        got = encode_prompts(encoder, tokenizer, ["a (cat:1.5) sat"], options=PromptOptions(emphasis="No norm"))
    assert torch.allclose(got, z * cat_weights(tokenizer, 1.5)[..., None], atol=1e-6)


def test_square_brackets_divide_by_1_1(encoder, tokenizer) -> None:
    z = plain_encoding(encoder, tokenizer, "a cat sat")
    with torch.no_grad():
        got = encode_prompts(encoder, tokenizer, ["a [cat] sat"], options=PromptOptions(emphasis="No norm"))
    assert torch.allclose(got, z * cat_weights(tokenizer, 1 / 1.1)[..., None], atol=1e-6)


def test_ignore_drops_weights_and_none_reads_brackets_as_words(encoder, tokenizer) -> None:
    z = plain_encoding(encoder, tokenizer, "a cat sat")
    with torch.no_grad():
        ignored = encode_prompts(encoder, tokenizer, ["a (cat:1.5) sat"], options=PromptOptions(emphasis="Ignore"))
        literal = encode_prompts(encoder, tokenizer, ["a (cat:1.5) sat"], options=PromptOptions(emphasis="None"))
    assert torch.equal(ignored, z)
    assert torch.equal(literal, plain_encoding(encoder, tokenizer, "a (cat:1.5) sat"))


# ----- chunks -----
@pytest.mark.parametrize("words, positions", [(1, 77), (75, 77), (76, 154), (150, 154), (151, 231)])
def test_prompts_are_encoded_in_75_token_chunks(encoder, tokenizer, words: int, positions: int) -> None:
    with torch.no_grad():
        context = encode_prompts(encoder, tokenizer, ["cat " * words])
    assert context.shape == (1, positions, 32)


def test_chunks_are_encoded_separately_and_concatenated(encoder, tokenizer) -> None:
    with torch.no_grad():
        both = encode_prompts(encoder, tokenizer, ["red " * 75 + "blue"])
    assert torch.allclose(both[:, :77], plain_encoding(encoder, tokenizer, "red " * 75), atol=1e-6)
    assert torch.allclose(both[:, 77:], plain_encoding(encoder, tokenizer, "blue"), atol=1e-6)


def test_comma_backtracking_moves_the_words_after_the_last_comma(tokenizer) -> None:
    cat, dog, comma = ids_of(tokenizer, "cat")[0], ids_of(tokenizer, "dog")[0], ids_of(tokenizer, ",")[0]
    prompt = "cat " * 70 + ", " + "dog " * 10  # 70 + 1 + 10 = 81 tokens; the comma is 5 from the chunk's end
    chunks = tokenize_text(tokenizer, prompt).chunks
    assert len(chunks) == 2
    assert list(chunks[0].tokens[:71]) == [cat] * 70 + [comma]
    assert set(chunks[0].tokens[71:]) == {tokenizer.eos_token_id}  # padded after the comma
    assert list(chunks[1].tokens[:10]) == [dog] * 10
    plain = tokenize_text(tokenizer, prompt, PromptOptions(comma_padding_backtrack=0)).chunks
    assert list(plain[0].tokens) == [cat] * 70 + [comma] + [dog] * 4
    assert list(plain[1].tokens[:6]) == [dog] * 6


def test_a_comma_beyond_the_backtrack_window_is_ignored(tokenizer) -> None:
    dog = ids_of(tokenizer, "dog")[0]
    prompt = "cat " * 40 + ", " + "dog " * 40  # the comma is 34 tokens from the end of the first chunk
    chunks = tokenize_text(tokenizer, prompt).chunks
    assert list(chunks[0].tokens[41:]) == [dog] * 34
    chunks_wide = tokenize_text(tokenizer, prompt, PromptOptions(comma_padding_backtrack=40)).chunks
    assert list(chunks_wide[1].tokens[:40]) == [dog] * 40


def test_break_pads_the_chunk_and_starts_a_new_one(encoder, tokenizer) -> None:
    chunks = tokenize_text(tokenizer, "a BREAK b").chunks
    assert [len(c.tokens) for c in chunks] == [CHUNK_TOKENS, CHUNK_TOKENS]
    assert chunks[0].tokens[0] == ids_of(tokenizer, "a")[0] and set(chunks[0].tokens[1:]) == {tokenizer.eos_token_id}
    with torch.no_grad():
        context = encode_prompts(encoder, tokenizer, ["a BREAK b"])
    assert context.shape == (1, 154, 32)
    assert torch.allclose(context[:, :77], plain_encoding(encoder, tokenizer, "a"), atol=1e-6)
    assert torch.allclose(context[:, 77:], plain_encoding(encoder, tokenizer, "b"), atol=1e-6)


def test_clip_skip_takes_an_earlier_layer(encoder, tokenizer) -> None:
    rows = torch.tensor(prompt_token_rows(tokenizer, "a cat", encoder.config.pad_token_id))
    with torch.no_grad():
        skipped = encode_prompts(encoder, tokenizer, ["a cat"], clip_skip=2)
        expected = encoder.transformer.final_layer_norm(encoder.transformer(rows, output_hidden_states=True).hidden_states[-2])
    assert torch.allclose(skipped, expected, atol=1e-6)
    assert not torch.allclose(skipped, plain_encoding(encoder, tokenizer, "a cat"), atol=1e-3)


# ----- the token counter -----
@pytest.mark.parametrize("text, expected", [
    ("", (0, 75)),
    ("a cat", (2, 75)),
    ("a (cat:1.5) [[sat]]", (3, 75)),  # brackets and weights are not tokens
    ("cat " * 80, (80, 150)),
    ("a BREAK b", (76, 150)),  # BREAK pads the first chunk to 75
    ("a cat # a comment with many words", (2, 75)),
    ("a cat <lora:style:0.8>", (2, 75)),
    ("[cat:a dog on a mat:5]", (5, 75)),  # the longest text over the steps
    ("cat AND a dog on a mat", (5, 75)),  # the longest AND part
])
def test_token_counter(tokenizer, text: str, expected) -> None:
    assert prompt_token_count(tokenizer, text) == expected


def test_token_counter_reads_a_negative_prompt_whole(tokenizer) -> None:
    assert prompt_token_count(tokenizer, "cat AND dog", negative=True) == (3, 75)


# ----- per step -----
def recording_model(model, seen: list[torch.Tensor]):
    """The tiny model with a UNet that records the context of every call."""
    unet = model.unet

    def record(x, timesteps, context, **kwargs):
        seen.append(context.detach().clone())
        return unet(x, timesteps, context, **kwargs)
    return dataclasses.replace(model, unet=record)


def encoded(model, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return encode_prompts(model.text_encoder, model.tokenizer, texts)


def test_prompt_editing_switches_the_conditioning_at_the_expected_step(model) -> None:  # noqa: F811
    seen: list[torch.Tensor] = []
    spec = NoiseSpec(seeds=(1,), latent_shape=(4, 4, 4))
    choice = SamplingChoice(sampler_name="Euler", steps=5, cfg_scale=5.0)
    sample_txt2img_latents(recording_model(model, seen), ["[a cat:a dog:0.5]"], [""], spec, choice)
    cat, dog, empty = encoded(model, ["a cat", "a dog", ""])
    assert len(seen) == 5  # Euler: one batched call per step, [cond, uncond]
    # A1111: 0-based step k uses the text whose end step (int(0.5 * 5) = 2) is >= k.
    used = ["cat" if torch.equal(c[0], cat) else "dog" if torch.equal(c[0], dog) else "?" for c in seen]
    assert used == ["cat"] * 3 + ["dog"] * 2
    assert all(torch.equal(c[1], empty) for c in seen)


def test_alternation_changes_the_text_every_step(model) -> None:  # noqa: F811
    seen: list[torch.Tensor] = []
    spec = NoiseSpec(seeds=(1,), latent_shape=(4, 4, 4))
    sample_txt2img_latents(recording_model(model, seen), ["[cat|dog]"], [""], spec,
                           SamplingChoice(sampler_name="Euler", steps=4, cfg_scale=5.0))
    cat, dog = encoded(model, ["cat", "dog"])
    used = ["cat" if torch.equal(c[0], cat) else "dog" if torch.equal(c[0], dog) else "?" for c in seen]
    assert used == ["cat", "cat", "dog", "cat"]  # ends 1,2,3,...: step k takes the first end >= k


def test_hires_pass_schedule_uses_second_pass_fractions(model) -> None:  # noqa: F811
    seen: list[torch.Tensor] = []
    spec = NoiseSpec(seeds=(1,), latent_shape=(4, 4, 4))
    choice = SamplingChoice(sampler_name="Euler", steps=4, cfg_scale=5.0, first_pass_steps=10)
    # denoising strength 1 walks all 4 steps; 1.5 = half of the second pass: int(0.5 * 4) = 2.
    sample_img2img_latents(recording_model(model, seen), torch.zeros(1, 4, 4, 4), ["[a cat:a dog:1.5]"], [""],
                           spec, choice, 1.0)
    cat, dog = encoded(model, ["a cat", "a dog"])
    used = ["cat" if torch.equal(c[0], cat) else "dog" if torch.equal(c[0], dog) else "?" for c in seen]
    assert used == ["cat", "cat", "cat", "dog"]


def test_and_combines_sub_prompts_with_their_weights(model) -> None:  # noqa: F811
    seen: list[torch.Tensor] = []
    spec = NoiseSpec(seeds=(1,), latent_shape=(4, 4, 4))
    sample_txt2img_latents(recording_model(model, seen), ["a cat :0.7 AND a dog :0.3"], ["ugly"], spec,
                           SamplingChoice(sampler_name="Euler", steps=1, cfg_scale=5.0))
    cat, dog, ugly = encoded(model, ["a cat", "a dog", "ugly"])
    assert len(seen) == 1 and all(c.shape[0] == 3 for c in seen)  # both parts and the uncond in one call
    assert torch.equal(seen[0][0], cat) and torch.equal(seen[0][1], dog) and torch.equal(seen[0][2], ugly)


def test_composable_guidance_formula() -> None:
    class Source:
        table = torch.tensor([1.0, 2.0, 5.0, 0.25]).reshape(4, 1, 1)

        def rows_at(self, steps):
            return [0, 1, 2], [0, 0, 1], [0.5, 2.0, 1.0], [3, 3]

    def inner(x, sigma, context):  # denoised = the context's value, broadcast to the image
        return context.reshape(-1, 1, 1, 1).expand_as(x).clone()

    denoiser = ScheduledCFGDenoiser(inner, Source(), torch.tensor([2.0, 1.0, 0.0]), 3.0)
    out = denoiser(torch.zeros(2, 1, 2, 2), torch.tensor(2.0))
    u = 0.25
    assert torch.allclose(out[0], torch.full((1, 2, 2), u + 3 * (0.5 * (1 - u) + 2 * (2 - u))))
    assert torch.allclose(out[1], torch.full((1, 2, 2), u + 3 * (5 - u)))


def test_batch_images_follow_their_own_prompts(model) -> None:  # noqa: F811
    plan = plan_prompts(["[a:b:2]", "c AND d"], ["", "e"], 4)
    assert plan.texts == ("a", "b", "c", " d", "", "e")
    first_image = ((((2, 0), (4, 1)), 1.0),)
    second_image = ((((4, 2),), 1.0), (((4, 3),), 1.0))
    assert plan.cond == (first_image, second_image)
    assert plan.uncond == (((4, 4),), ((4, 5),))
    assert not plan.is_static and plan_prompts(["x"], ["y"], 4).is_static


def test_plain_prompt_gives_the_same_latents_as_plain_guidance(model) -> None:  # noqa: F811
    """A prompt without syntax and one whose syntax resolves to the same text agree bit for bit."""
    spec = NoiseSpec(seeds=(4,), latent_shape=(4, 4, 4))
    choice = SamplingChoice(sampler_name="Euler", steps=2, cfg_scale=6.0)
    plain = sample_txt2img_latents(model, ["a cat"], ["x"], spec, choice)
    edited = sample_txt2img_latents(model, ["a cat [:a dog:9]"], ["x"], spec, choice)  # switches after the run
    # "a cat " and "a cat" tokenize the same; the scheduled path (step-following CFG) gives the same result.
    assert torch.allclose(plain, edited, atol=1e-6)


def test_emphasis_field_in_infotext_only_when_not_original_and_bracketed(model) -> None:  # noqa: F811
    params = Txt2ImgParams(prompt="a (cat:1.2)", steps=1, width=8, height=8, seed=1)
    fields = parse_infotext(generate_txt2img(model, params, None, prompt_options=PromptOptions(emphasis="No norm"))[0].infotext)
    assert fields["Emphasis"] == "No norm"
    assert "Emphasis" not in parse_infotext(generate_txt2img(model, params, None)[0].infotext)
    plain = Txt2ImgParams(prompt="a cat", steps=1, width=8, height=8, seed=1)
    assert "Emphasis" not in parse_infotext(
        generate_txt2img(model, plain, None, prompt_options=PromptOptions(emphasis="No norm"))[0].infotext)
