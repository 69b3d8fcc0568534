"""Prompt matrix combinations (A1111 ``scripts/prompt_matrix.py`` semantics), pure.

The prompt is split on ``|``: the first part is in every image, and every combination of
the other parts (2**(n-1) of them, in binary counting order: none, the first, the second,
the first and second, ...) is one image. The script itself is ``scripts/prompt_matrix.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from modules.extensions.scripts import ScriptArgsError

PROMPT_TYPES = ("positive", "negative")
DELIMITERS = {"comma": ", ", "space": " "}
MARGIN_RANGE = (0, 500)


def matrix_prompts(prompt: str, put_at_start: bool = False, delimiter: str = ", ") -> list[str]:
    """Every prompt of the matrix, in A1111's order (combination number k holds part i+1 when bit i is set).

    As A1111, the variable parts lose surrounding spaces and commas; unlike it, the first part loses
    its trailing spaces too and empty parts are left out, so "a | b" gives "a, b", not "a , b".
    """
    first, *variable = prompt.split("|")
    first = first.strip()
    variable = [part.strip().strip(",").strip() for part in variable]
    prompts = []
    for combination in range(2 ** len(variable)):
        chosen = [part for bit, part in enumerate(variable) if combination & (1 << bit)]
        parts = [*chosen, first] if put_at_start else [first, *chosen]
        prompts.append(delimiter.join(part for part in parts if part))
    return prompts


@dataclasses.dataclass(frozen=True)
class MatrixArgs:
    put_at_start: bool = False
    different_seeds: bool = False
    prompt_type: str = "positive"
    variations_delimiter: str = "comma"
    margin_size: int = 0  # grid margin in px; accepted for compatibility, our grid has none


def read_args(args: Sequence[Any]) -> MatrixArgs:
    """A1111's positional script_args; missing trailing ones take their defaults."""
    names = [f.name for f in dataclasses.fields(MatrixArgs)]
    if len(args) > len(names):
        raise ScriptArgsError(f"Prompt matrix takes at most {len(names)} arguments ({', '.join(names)}), got {len(args)}")
    values = dict(zip(names, args))
    for name in ("put_at_start", "different_seeds"):
        if name in values and not isinstance(values[name], bool):
            raise ScriptArgsError(f"{name} must be true or false, got {values[name]!r}")
    if values.get("prompt_type", "positive") not in PROMPT_TYPES:
        raise ScriptArgsError(f"prompt_type must be one of {', '.join(PROMPT_TYPES)}, got {values['prompt_type']!r}")
    if values.get("variations_delimiter", "comma") not in DELIMITERS:
        raise ScriptArgsError(f"variations_delimiter must be one of {', '.join(DELIMITERS)}, "
                              f"got {values['variations_delimiter']!r}")
    margin = values.get("margin_size", 0)
    if isinstance(margin, bool) or not isinstance(margin, int) or not MARGIN_RANGE[0] <= margin <= MARGIN_RANGE[1]:
        raise ScriptArgsError(f"margin_size must be a whole number from {MARGIN_RANGE[0]} to {MARGIN_RANGE[1]}, got {margin!r}")
    return MatrixArgs(**values)
