"""The demo dataset: seeded, held-out combinations never trained on, pictures readable by the evaluation."""

from __future__ import annotations

import math
import random
from itertools import permutations

import numpy as np
from PIL import Image, ImageDraw

from modules.demo.dataset import (
    COLOURS, SHAPES, ShapeSample, caption, is_held_out, make_dataset, random_sample, render,
)
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


def drawn(polygon: list[tuple[float, float]] | None, colour: str, background: str, speck: bool = False) -> Image.Image:
    """A 64x64 picture drawn at 4x and box-filtered down, as the dataset draws; ``polygon`` in 64-pixel units,
    None for a circle of radius 14 at the centre; ``speck`` adds a 2x2 dot of the shape colour near a corner."""
    image = Image.new("RGB", (256, 256), COLOURS[background])
    draw = ImageDraw.Draw(image)
    if polygon is None:
        draw.ellipse((72, 72, 184, 184), fill=COLOURS[colour])
    else:
        draw.polygon([(4 * x, 4 * y) for x, y in polygon], fill=COLOURS[colour])
    if speck:
        draw.rectangle((212, 212, 219, 219), fill=COLOURS[colour])
    return image.resize((64, 64), Image.Resampling.BOX)


def test_a_star_with_blunt_points_is_still_a_star() -> None:
    # A generator's star often has fatter arms than the pentagram (inner radius 0.5 R instead of 0.38 R):
    # it fills 43% of its box, as much as a triangle, but stays concave.
    points = [(32 + (16 if k % 2 == 0 else 8) * math.cos(math.pi / 2 + k * math.pi / 5),
               32 - (16 if k % 2 == 0 else 8) * math.sin(math.pi / 2 + k * math.pi / 5)) for k in range(10)]
    assert read_picture(drawn(points, "white", "orange")).shape == "star"


def test_a_square_with_pinched_sides_is_still_a_square() -> None:
    # Each side's midpoint pulled 2 of 24 pixels inwards: the square fills 84% of its box, like a circle.
    a, b, m = 20.0, 44.0, 32.0
    points = [(a, a), (m, a + 2), (b, a), (b - 2, m), (b, b), (m, b - 2), (a, b), (a + 2, m)]
    reading = read_picture(drawn(points, "red", "green"))
    assert (reading.shape, reading.colour, reading.background) == ("square", "red", "green")


def test_a_stray_speck_does_not_change_the_shape() -> None:
    assert read_picture(drawn(None, "blue", "purple", speck=True)).shape == "circle"
    triangle = [(32, 16), (18, 40), (46, 40)]
    assert read_picture(drawn(triangle, "black", "white", speck=True)).shape == "triangle"


def test_close_palette_colours_are_told_apart_when_softened() -> None:
    # Yellow and orange are the closest pair (81 apart); a generated picture pulls them nearer still.
    triangle = [(32, 16), (18, 40), (46, 40)]
    sharp = drawn(triangle, "yellow", "orange")
    softened = Image.blend(sharp, Image.new("RGB", (64, 64), COLOURS["orange"]), 0.2)
    reading = read_picture(softened)
    assert (reading.colour, reading.background, reading.shape) == ("yellow", "orange", "triangle")


def test_every_training_picture_has_background_at_its_top_left_pixel() -> None:
    """The autoencoder's loss tells shape from background by that pixel."""
    rng = random.Random(7)
    samples = [random_sample(rng) for _ in range(400)]
    # the largest size word at its largest jitter and offset, for every shape
    samples += [ShapeSample(s, "red", "blue", radius=0.34 * 1.08, centre=(0.46, 0.46)) for s in SHAPES]
    for sample in samples:
        assert tuple(np.asarray(render(sample, 64))[0, 0]) == COLOURS[sample.background], sample
