"""The demo dataset: seeded, held-out combinations never trained on, pictures readable by the evaluation."""

from __future__ import annotations

import random
from itertools import permutations

import numpy as np

from modules.demo.dataset import COLOURS, SHAPES, caption, is_held_out, make_dataset, random_sample, render
from modules.demo.evaluate import read_picture


def test_same_seed_same_data_other_seed_other_data() -> None:
    first, captions = make_dataset(64, 64, seed=3)
    again, captions_again = make_dataset(64, 64, seed=3)
    other, _ = make_dataset(64, 64, seed=4)
    assert np.array_equal(first, again) and captions == captions_again
    assert not np.array_equal(first, other)


def test_held_out_combinations_never_appear_but_every_pair_does() -> None:
    rng = random.Random(0)
    seen = {(s.colour, s.shape, s.background) for s in (random_sample(rng) for _ in range(20000))}
    assert not any(is_held_out(*combo) for combo in seen)
    held = [(c, s, b) for c, b in permutations(COLOURS, 2) for s in SHAPES if is_held_out(c, s, b)]
    assert 20 <= len(held) <= 40  # about one in eight of the 224
    for colour, shape, background in held:  # each pair of a held-out triple is still taught
        assert any(c == colour and s == shape for c, s, _ in seen)
        assert any(c == colour and b == background for c, _, b in seen)
        assert any(s == shape and b == background for _, s, b in seen)


def test_captions_name_the_attributes_and_some_are_empty() -> None:
    rng = random.Random(1)
    for _ in range(300):
        sample = random_sample(rng)
        text = caption(sample, rng)
        assert sample.colour in text and sample.shape in text and sample.background in text
        assert "a orange" not in text
        for word in (sample.size_word, sample.position_word):
            assert word is None or word in text
    _, captions = make_dataset(2000, 16, seed=2)
    assert 0.07 < captions.count("") / len(captions) < 0.13


def test_the_evaluation_reads_rendered_pictures_correctly() -> None:
    rng = random.Random(7)
    wrong = 0
    for _ in range(500):
        sample = random_sample(rng)
        reading = read_picture(render(sample, 64))
        wrong += (reading.colour, reading.background, reading.shape) != (sample.colour, sample.background, sample.shape)
    assert wrong <= 2


def test_an_empty_picture_has_no_shape() -> None:
    from PIL import Image

    reading = read_picture(Image.new("RGB", (64, 64), COLOURS["green"]))
    assert reading.background == "green" and reading.colour is None and reading.shape is None
