"""A1111 infotext: the reference's three literal examples, written and read, and round trips."""

from __future__ import annotations

import random

import pytest

from modules.infotext.format import format_fields, format_infotext
from modules.infotext.parse import parse_infotext

# Literal examples from A1111 v1.10.1 (a1111-conventions §2), copied, not produced by our code.
EXAMPLE_TXT2IMG = """a cozy cabin in the woods, (snow:1.2), [blurry]
Negative prompt: lowres, watermark
Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 2389164790, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1"""

EXAMPLE_HIRES = """masterpiece, 1girl, <lora:add_detail:0.8>
Negative prompt: (worst quality:1.4), EasyNegative
Steps: 25, Sampler: Euler a, Schedule type: Automatic, CFG scale: 6.5, Seed: 42, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Variation seed: 1234, Variation seed strength: 0.3, Denoising strength: 0.45, Clip skip: 2, ENSD: 31337, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "EasyNegative: c74b4e810b03", Version: v1.10.1"""

EXAMPLE_INPAINT = """a red knitted hat
Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3141592653, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.75, Mask blur: 4, Inpaint area: Only masked, Masked area padding: 32, Version: v1.10.1"""


def test_txt2img_example_is_written_exactly() -> None:
    fields = {"Steps": 20, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": 7.0, "Seed": 2389164790,
              "Size": "512x512", "Model hash": "6ce0161689", "Model": "v1-5-pruned-emaonly", "Clip skip": None,
              "Version": "v1.10.1"}
    text = format_infotext("a cozy cabin in the woods, (snow:1.2), [blurry]", "lowres, watermark", fields)
    assert text == EXAMPLE_TXT2IMG


def test_inpaint_example_without_negative_prompt_is_written_exactly() -> None:
    fields = {"Steps": 20, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": 7, "Seed": 3141592653,
              "Size": "512x512", "Model hash": "6ce0161689", "Model": "v1-5-pruned-emaonly",
              "Denoising strength": 0.75, "Mask blur": 4, "Inpaint area": "Only masked", "Masked area padding": 32,
              "Version": "v1.10.1"}
    assert format_infotext("a red knitted hat", "", fields) == EXAMPLE_INPAINT


def test_hires_example_quotes_values_with_colons() -> None:
    fields = {"Lora hashes": "add_detail: 7c6bad76eb54", "TI hashes": "EasyNegative: c74b4e810b03", "Hires upscale": 2.0}
    assert format_fields(fields) == 'Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "EasyNegative: c74b4e810b03", Hires upscale: 2'


@pytest.mark.parametrize("example", [EXAMPLE_TXT2IMG, EXAMPLE_HIRES, EXAMPLE_INPAINT])
def test_examples_read_back_and_rewrite_identically(example: str) -> None:
    parsed = parse_infotext(example)
    derived = {k for k in parsed if k.endswith(("-1", "-2"))} | {"Prompt", "Negative prompt"}
    fields = {k: v for k, v in parsed.items() if k not in derived}
    assert format_infotext(parsed["Prompt"], parsed["Negative prompt"], fields) == example


def test_hires_example_fields() -> None:
    parsed = parse_infotext(EXAMPLE_HIRES)
    assert parsed["Prompt"] == "masterpiece, 1girl, <lora:add_detail:0.8>"
    assert parsed["Negative prompt"] == "(worst quality:1.4), EasyNegative"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768")
    assert parsed["Lora hashes"] == "add_detail: 7c6bad76eb54"
    assert (parsed["Clip skip"], parsed["ENSD"], parsed["Variation seed strength"]) == ("2", "31337", "0.3")


def test_a_prompt_alone_has_no_parameters() -> None:
    assert parse_infotext("just a prompt, with: two colons, here") == {
        "Prompt": "just a prompt, with: two colons, here", "Negative prompt": ""}


def test_multiline_prompt_and_negative_prompt() -> None:
    text = "line one\nline two\nNegative prompt: bad\nworse\nSteps: 5, Sampler: Euler, Seed: 1"
    parsed = parse_infotext(text)
    assert (parsed["Prompt"], parsed["Negative prompt"], parsed["Steps"]) == ("line one\nline two", "bad\nworse", "5")


def test_a_value_that_is_only_quoted_text_survives() -> None:
    parsed = parse_infotext(format_infotext("p", "", {"Steps": 1, "Seed": 2, "Model": '"quoted"'}))
    assert parsed["Model"] == '"quoted"'


ALPHABET = list("abc XYZ,:;\"'()[]{}<>|#é漢🙂-_/=") + ["\\", "\n"]


def random_text(rng: random.Random) -> str:
    text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 30)))
    # A prompt line starting with "Negative prompt:" would be read as the negative prompt, as in A1111.
    return text.replace("Negative prompt:", "Negative prompt;").strip() or "x"


@pytest.mark.parametrize("seed", range(200))
def test_round_trip_of_any_prompt_and_field_values(seed: int) -> None:
    rng = random.Random(seed)
    prompt, negative = random_text(rng), rng.choice(["", random_text(rng)])
    fields = {"Steps": rng.randint(1, 150), "Sampler": "DPM++ 2M SDE", "CFG scale": rng.choice([7.0, 6.5, 12.25]),
              "Seed": rng.randint(0, 2**32 - 1), "Size": f"{rng.randint(1, 64) * 8}x{rng.randint(1, 64) * 8}",
              "Model": random_text(rng).replace("\n", " "), "Extra note": random_text(rng)}
    parsed = parse_infotext(format_infotext(prompt, negative, fields))
    assert parsed["Prompt"] == prompt.strip()
    assert parsed["Negative prompt"] == negative.strip()
    for key, value in fields.items():
        expected = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        assert parsed[key] == expected, key
