"""An infotext's fields applied onto generation parameters (A1111's "paste" / ↙️ button).

Only what the text states is changed; everything else keeps the base's value.
"Model hash"/"Model" are not applied (A1111's default "disable_weights_auto_swap"):
the caller decides whether to switch checkpoints.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from modules.infotext.fields import read_back, read_knobs
from modules.job_spec import KNOB_FIELDS
from modules.params import Img2ImgParams, Txt2ImgParams

def infotext_to_params(fields: Mapping[str, str], base: Txt2ImgParams) -> Txt2ImgParams:
    """``base`` with every field the infotext states; a value that cannot be read raises ValueError naming it."""
    changes = infotext_changes(fields, isinstance(base, Img2ImgParams))
    knobs = {name: changes.pop(name) for name in KNOB_FIELDS & set(changes)}
    if knobs:
        changes["sampler_knobs"] = tuple({**dict(base.sampler_knobs), **knobs}.items())
    return dataclasses.replace(base, **changes)


def infotext_changes(fields: Mapping[str, str], is_img2img: bool) -> dict[str, object]:
    """The params fields an infotext states, by name (read through the one table,
    ``modules/infotext/fields.py``), and the sampler knobs it states by their own names (``eta``,
    ``s_churn``, ...); ValueError names a field that cannot be read."""
    return {**read_back(fields, is_img2img), **read_knobs(fields)}
