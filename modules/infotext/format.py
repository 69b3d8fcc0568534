"""A1111's ``parameters`` infotext: the text every generated image carries.

Layout (A1111 v1.10 ``processing.create_infotext``)::

    {prompt}
    Negative prompt: {negative}        <- only when the negative prompt is not empty
    Key: value, Key: value, ...

Which keys appear, in which order, is decided by the caller (the pipeline's
field table); this module only writes them as A1111 does: a value whose text
holds ``,``, ``:``, ``"`` or a newline is JSON-quoted, a key whose value equals the
key is written alone (flag style), and ``None`` omits the key.
"""

from __future__ import annotations

import json
from typing import Mapping

NEGATIVE_PROMPT_PREFIX = "Negative prompt: "


def quote_value(value: object) -> str:
    """JSON-quote text holding ``,``, ``:`` or a newline (A1111's rule), and also text holding a
    double quote: A1111 writes that raw, and its own reader then mis-decodes a value like
    ``"x"``; quoting it keeps ``parse(format(v)) == v`` and A1111 still reads it correctly."""
    text = str(value)
    if any(c in text for c in ',\n:"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_value(value: object) -> str:
    """Numbers as A1111 writes form values: 7 for an integral float, 6.5 otherwise."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_fields(fields: Mapping[str, object]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = format_value(value)
        parts.append(key if text == key else f"{key}: {quote_value(text)}")
    return ", ".join(parts)


def format_infotext(prompt: str, negative_prompt: str, fields: Mapping[str, object]) -> str:
    lines = [prompt]
    if negative_prompt:
        lines.append(NEGATIVE_PROMPT_PREFIX + negative_prompt)
    lines.append(format_fields(fields))
    return "\n".join(lines).strip()
