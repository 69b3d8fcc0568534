"""The bundled model's training data: seeded pictures of one coloured shape on a coloured background.

Every sample is drawn from its attributes (shape, colour, background colour,
and optionally a size or a position word) and captioned in one of several
phrasings, so the model learns the words rather than one sentence pattern.
Some (colour, shape, background) combinations are held out of training so the
evaluation can show that the model composes words it has only seen apart.
Shapes are drawn at 4x and downsampled, which gives anti-aliased edges.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 165, 50),
    "blue": (35, 65, 225),
    "yellow": (245, 220, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "purple": (135, 40, 185),
    "orange": (250, 140, 20),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = {"small": 0.17, "large": 0.34}  # radius as a fraction of the image side
POSITIONS = {  # centre as fractions of (width, height)
    "on the left": (0.3, 0.5), "on the right": (0.7, 0.5),
    "at the top": (0.5, 0.3), "at the bottom": (0.5, 0.7), "in the center": (0.5, 0.5),
}
TEMPLATES = (
    "a {desc} on a {bg} background",
    "{desc}, {bg} background",
    "{bg} background with a {desc}",
    "a {desc} against a {bg} background",
    "a picture of a {desc} on a {bg} background",
    "{desc} on {bg}",
)
SUPERSAMPLE = 4
EMPTY_CAPTION_RATE = 0.1  # lets classifier-free guidance learn the unconditional model (Ho & Salimans 2022)


@dataclass(frozen=True)
class ShapeSample:
    shape: str
    colour: str
    background: str
    size_word: str | None = None
    position_word: str | None = None
    radius: float = 0.25  # fraction of the side
    centre: tuple[float, float] = (0.5, 0.5)  # fractions of (width, height)


def is_held_out(colour: str, shape: str, background: str) -> bool:
    """One (colour, shape, background) in eight is never trained on; every pair of the
    three still occurs in training, since for fixed (colour, shape) at most one background qualifies."""
    index = list(COLOURS).index
    return (index(colour) + 3 * SHAPES.index(shape) + 5 * index(background)) % 8 == 0


def random_sample(rng: random.Random) -> ShapeSample:
    """A training sample with a held-in combination; a size word, a position word, or neither."""
    while True:
        colour, background = rng.sample(list(COLOURS), 2)
        shape = rng.choice(SHAPES)
        if not is_held_out(colour, shape, background):
            break
    kind = rng.random()
    if kind < 0.25:
        size_word = rng.choice(list(SIZES))
        radius = SIZES[size_word] * rng.uniform(0.92, 1.08)
        return ShapeSample(shape, colour, background, size_word=size_word, radius=radius, centre=_jitter(rng, 0.04))
    if kind < 0.5:
        position_word = rng.choice(list(POSITIONS))
        x, y = POSITIONS[position_word]
        jx, jy = _jitter(rng, 0.03)
        return ShapeSample(shape, colour, background, position_word=position_word,
                           radius=rng.uniform(0.16, 0.2), centre=(x + jx - 0.5, y + jy - 0.5))
    return ShapeSample(shape, colour, background, radius=rng.uniform(0.22, 0.3), centre=_jitter(rng, 0.06))


def _jitter(rng: random.Random, amount: float) -> tuple[float, float]:
    return 0.5 + rng.uniform(-amount, amount), 0.5 + rng.uniform(-amount, amount)


def caption(sample: ShapeSample, rng: random.Random) -> str:
    desc = " ".join(w for w in (sample.size_word, sample.colour, sample.shape, sample.position_word) if w)
    text = rng.choice(TEMPLATES).format(desc=desc, bg=sample.background)
    return with_articles(text)


def with_articles(text: str) -> str:
    """"a" before a vowel sound becomes "an" (of our words, only "orange" starts with one)."""
    return re.sub(r"\ba (?=orange\b)", "an ", text)


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Vertices of an upright shape with circumradius ``r`` (None for a circle)."""
    if shape == "square":
        h = r / math.sqrt(2)
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        return [(cx + r * math.cos(a), cy - r * math.sin(a)) for a in (math.pi / 2, 7 * math.pi / 6, 11 * math.pi / 6)]
    if shape == "star":  # five points; the inner radius of a regular pentagram is 0.382 R
        return [
            (cx + rr * math.cos(math.pi / 2 + k * math.pi / 5), cy - rr * math.sin(math.pi / 2 + k * math.pi / 5))
            for k, rr in ((k, r if k % 2 == 0 else 0.382 * r) for k in range(10))
        ]
    return None


def render(sample: ShapeSample, size: int) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), COLOURS[sample.background])
    draw = ImageDraw.Draw(image)
    cx, cy = sample.centre[0] * big, sample.centre[1] * big
    r = sample.radius * big
    polygon = shape_polygon(sample.shape, cx, cy, r)
    fill = COLOURS[sample.colour]
    if polygon is None:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon(polygon, fill=fill)
    return image.resize((size, size), Image.Resampling.BOX)


def make_dataset(count: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``count`` images as uint8 [N, size, size, 3] and their captions ("" for the unconditional share)."""
    rng = random.Random(seed)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    captions = []
    for i in range(count):
        sample = random_sample(rng)
        images[i] = np.asarray(render(sample, size))
        captions.append("" if rng.random() < EMPTY_CAPTION_RATE else caption(sample, rng))
    return images, captions
