"""An infotext's fields applied onto generation parameters (A1111's "paste" / ↙️ button).

Only what the text states is changed; everything else keeps the base's value.
"Model hash"/"Model" are not applied (A1111's default "disable_weights_auto_swap"):
the caller decides whether to switch checkpoints.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from modules.infotext.fields import read_back
from modules.params import Img2ImgParams, Txt2ImgParams

# Sampler knobs A1111 writes when they differ from the sampler's default, by their infotext names.
_KNOBS = {"Eta": "eta", "Eta DDIM": "eta", "Sigma churn": "s_churn", "Sigma tmin": "s_tmin", "Sigma tmax": "s_tmax",
          "Sigma noise": "s_noise"}
KNOB_NAMES = frozenset(_KNOBS.values())


def infotext_to_params(fields: Mapping[str, str], base: Txt2ImgParams) -> Txt2ImgParams:
    """``base`` with every field the infotext states; a value that cannot be read raises ValueError naming it."""
    changes = infotext_changes(fields, isinstance(base, Img2ImgParams))
    knobs = {name: changes.pop(name) for name in KNOB_NAMES & set(changes)}
    if knobs:
        changes["sampler_knobs"] = tuple({**dict(base.sampler_knobs), **knobs}.items())
    return dataclasses.replace(base, **changes)


def infotext_changes(fields: Mapping[str, str], is_img2img: bool) -> dict[str, object]:
    """The params fields an infotext states, by name (read through the one table,
    ``modules/infotext/fields.py``), and the sampler knobs it states by their own names (``eta``,
    ``s_churn``, ...); ValueError names a field that cannot be read."""
    changes = read_back(fields, is_img2img)
    for key, name in _KNOBS.items():
        if key in fields:
            try:
                changes[name] = float(fields[key])
            except ValueError as error:
                raise ValueError(f"infotext field {key!r}: cannot read {fields[key]!r}") from error
    return changes
