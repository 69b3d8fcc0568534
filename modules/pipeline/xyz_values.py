"""X/Y/Z plot axis values, read as A1111's ``scripts/xyz_grid.py`` reads them.

A value list is CSV (so ``"a, b", c`` is two values), each item stripped. For whole-number axes
an item may be a range: ``1-5`` (1,2,3,4,5), ``1-10 (+2)`` (1,3,5,7,9: a step), ``1-10 [5]``
(five values spread evenly from 1 to 10, truncated to whole numbers: 1,3,5,7,10); decimal axes
take the same forms (``0.5-1.5 (+0.5)``, ``1-2 [3]``). Prompt order axes take every ordering of
the listed words. A value that does not convert is an error naming it.

Where A1111's regular expression has an unescaped ``.`` (any character) in decimal ranges, ours
means a decimal point.
"""

from __future__ import annotations

import csv
import io
import itertools
import random
import re
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import numpy as np

_INT = r"[+-]?\s*\d+"
_FLOAT = r"[+-]?\s*\d+(?:\.\d*)?"
_INT_STEP = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(([+-]\d+)\s*\))?\s*")
_INT_COUNT = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\[(\d+)\s*])?\s*")
_FLOAT_STEP = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\))?\s*")
_FLOAT_COUNT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\[(\d+(?:\.\d*)?)\s*])?\s*")
RANDOM_SEED_LIMIT = 4294967294  # A1111 draws -1 seeds from random.randrange(4294967294)
SEED_AXES = ("Seed", "Var. seed")


class AxisKind(Enum):
    INT = "int"
    FLOAT = "float"
    TEXT = "text"
    PERMUTATIONS = "permutations"  # prompt order: every ordering of the listed words


class AxisValueError(ValueError):
    """A value that cannot be used on its axis; the message names the value."""


def split_values(text: str) -> list[str]:
    """CSV items over every line, stripped (A1111's ``csv_string_to_list_strip``). A quote after
    the comma's space also opens a quoted value here (``a, "b, c"``); A1111's reader only takes
    ``a,"b, c"`` (what its own dropdown writes) and splits the other inside the quotes."""
    return [item.strip() for row in csv.reader(io.StringIO(text), skipinitialspace=True) for item in row]


def _number(text: str) -> str:
    return re.sub(r"\s+", "", text)  # "- 5" -> "-5"


def _expand_int(item: str) -> list[int | str]:
    if match := _INT_STEP.fullmatch(item):
        start, end = int(_number(match.group(1))), int(_number(match.group(2))) + 1
        return list(range(start, end, int(match.group(3)) if match.group(3) else 1))
    if match := _INT_COUNT.fullmatch(item):
        start, end = int(_number(match.group(1))), int(_number(match.group(2)))
        count = int(match.group(3)) if match.group(3) else 1
        return [int(x) for x in np.linspace(start, end, count).tolist()]
    return [item]


def _expand_float(item: str) -> list[float | str]:
    if match := _FLOAT_STEP.fullmatch(item):
        start, end = float(_number(match.group(1))), float(_number(match.group(2)))
        step = float(match.group(3)) if match.group(3) else 1.0
        return np.arange(start, end + step, step).tolist()
    if match := _FLOAT_COUNT.fullmatch(item):
        start, end = float(_number(match.group(1))), float(_number(match.group(2)))
        count = int(float(match.group(3))) if match.group(3) else 1
        return np.linspace(start, end, count).tolist()
    return [item]


def _converted(value: object, kind: AxisKind) -> int | float | str:
    try:
        if kind is AxisKind.INT:
            return int(value)
        if kind is AxisKind.FLOAT:
            return float(value)
    except ValueError:
        raise AxisValueError(f"{value!r} is not a {'whole number' if kind is AxisKind.INT else 'number'}") from None
    return value


def parse_axis_values(text: str, kind: AxisKind) -> list:
    """The values an axis's text stands for, in order."""
    items = split_values(text)
    if kind is AxisKind.PERMUTATIONS:
        return list(itertools.permutations(items))
    expanded: list = []
    for item in items:
        if kind is AxisKind.INT:
            expanded += _expand_int(item)
        elif kind is AxisKind.FLOAT:
            expanded += _expand_float(item)
        else:
            expanded.append(item)
    return [_converted(value, kind) for value in expanded]


def fix_seeds(values: Sequence, rng: random.Random) -> list:
    """Seed axes: -1 (or empty) becomes one random seed per cell, drawn before generating, so the
    grid's legend and infotext show the seeds used (A1111's ``fix_axis_seeds``)."""
    return [rng.randrange(RANDOM_SEED_LIMIT) if value in (None, "", -1) else value for value in values]


def replace_in_prompts(prompt: str, negative: str, search: str, replacement: str) -> tuple[str, str]:
    """Prompt S/R: the first value of the axis is what is searched; each value replaces it."""
    if search not in prompt and search not in negative:
        raise AxisValueError(f"Prompt S/R did not find {search!r} in the prompt or the negative prompt")
    return prompt.replace(search, replacement), negative.replace(search, replacement)


def reorder_prompt(prompt: str, order: Sequence[str]) -> str:
    """Prompt order: the listed words, wherever they stand in ``prompt``, put in ``order``
    (A1111's ``apply_order``: the slots keep their places, the words move between them)."""
    slots = sorted((prompt.find(token), token) for token in order)
    parts, rest = [], prompt
    for _, token in slots:
        at = rest.find(token)
        if at < 0:
            raise AxisValueError(f"Prompt order did not find {token!r} in the prompt")
        parts.append(rest[:at])
        rest = rest[at + len(token):]
    return "".join(part + token for part, token in zip(parts, order)) + rest


def loop_order(cost_x: float, cost_y: float, cost_z: float) -> tuple[str, str]:
    """Which axis to loop outermost and second, so a costly axis (a checkpoint: cost 1) changes
    as rarely as possible. A1111's rule: the axis strictly costlier than both others goes first
    (else z), and of the remaining two the costlier goes second (ties: the later-named one)."""
    costs = {"x": cost_x, "y": cost_y, "z": cost_z}
    for first in ("x", "y", "z"):
        others = [a for a in ("x", "y", "z") if a != first]
        if all(costs[first] > costs[o] for o in others):
            return first, others[0] if costs[others[0]] > costs[others[1]] else others[1]
    return "z", "y"


def format_label(label: str, value: object, with_label: bool = True) -> str:
    """A legend entry: ``CFG Scale: 7.5`` (decimals rounded to 8 places, as A1111 writes them)."""
    if isinstance(value, float):
        value = round(value, 8)
    if isinstance(value, tuple):
        return ", ".join(value)
    return f"{label}: {value}" if with_label else str(value)


@dataclass(frozen=True)
class GridBudget:
    max_megapixels: float = 200.0  # A1111's img_max_size_mp default

    def check(self, cells: int, width: int, height: int) -> None:
        megapixels = round(cells * width * height / 1_000_000)
        if megapixels >= self.max_megapixels:
            raise AxisValueError(f"the grid would be {megapixels} megapixels; the limit is {self.max_megapixels:g}")
