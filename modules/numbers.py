"""The one check for numbers that reach the engine from outside (request fields, settings,
generation parameters): a real number, finite, and inside its range when it has one.

NaN compares false with everything, so a plain ``low <= x <= high`` lets no NaN through but
says nothing useful about it, and a field with no range would let NaN and infinity in (a NaN
eta reaches the sampler's square root). One function keeps the rule and its wording the same
wherever a number enters. No imports beyond the standard library: this module is light.
"""

from __future__ import annotations

import math
from typing import Any


def number_problem(value: Any, bounds: tuple[float, float] | None = None) -> str | None:
    """Why ``value`` is not an acceptable number (within ``bounds``, inclusive), or None when it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        where = f" between {bounds[0]:g} and {bounds[1]:g}" if bounds else ""
        return f"must be a finite number{where}, got {value}"
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        shown = f"{value:g}" if isinstance(value, float) else str(value)  # ints in full: seeds are large
        return f"must be between {bounds[0]:g} and {bounds[1]:g}, got {shown}"
    return None
