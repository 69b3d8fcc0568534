"""styles.csv: the {prompt} placeholder, appending, order, and unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from modules.styles import Style, apply_styles, read_styles

STYLES = {
    "frame": Style("frame", "a painting of {prompt}, framed", "photo"),
    "sharp": Style("sharp", "sharp focus", "blurry, {prompt}"),
    "empty": Style("empty"),
}


def test_placeholder_and_append_apply_in_order() -> None:
    prompt, negative = apply_styles("a cat", "dog", ["frame", "sharp", "empty"], STYLES)
    assert prompt == "a painting of a cat, framed, sharp focus"
    assert negative == "blurry, dog, photo"


def test_style_on_an_empty_prompt_is_the_style_alone() -> None:
    assert apply_styles("", "", ["sharp"], STYLES) == ("sharp focus", "blurry, ")


def test_unknown_style_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown style 'neon'; available: empty, frame, sharp"):
        apply_styles("x", "", ["neon"], STYLES)


def test_reads_a1111_styles_csv(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text('name,prompt,negative_prompt\n"Cinematic","{prompt}, film grain, ""35mm""",lowres\n,,\n', encoding="utf-8")
    assert read_styles(path) == {"Cinematic": Style("Cinematic", '{prompt}, film grain, "35mm"', "lowres")}
    assert read_styles(tmp_path / "missing.csv") == {}
