"""Reading A1111 infotexts back (``infotext_utils.parse_generation_parameters``).

The last line is the parameters line only when it holds at least three
``Key: value`` pairs; lines before ``Negative prompt:`` are the prompt, that
line and the rest the negative prompt. Quoted values are JSON-decoded;
``WxH`` values also appear split as ``Key-1`` / ``Key-2``. Values stay strings,
as A1111 keeps them; typed conversion belongs to whoever applies them.
"""

from __future__ import annotations

import json
import re

from modules.infotext.format import NEGATIVE_PROMPT_PREFIX

# A1111's key/value pattern: a word-started key, then a JSON string or anything up to a comma.
PARAMETER = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
SIZE_VALUE = re.compile(r"^(\d+)x(\d+)$")
MIN_PARAMETERS_ON_LAST_LINE = 3


def parse_fields(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, raw in PARAMETER.findall(line):
        value = raw.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # A1111 keeps a malformed quoted value as written
        fields[key] = value
        size = SIZE_VALUE.match(value)
        if size:
            fields[f"{key}-1"], fields[f"{key}-2"] = size.group(1), size.group(2)
    return fields


def parse_infotext(text: str) -> dict[str, str]:
    """{"Prompt", "Negative prompt", and every Key of the parameters line}."""
    lines = text.strip().split("\n")
    fields: dict[str, str] = {}
    if len(PARAMETER.findall(lines[-1])) >= MIN_PARAMETERS_ON_LAST_LINE:
        fields = parse_fields(lines.pop())
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in lines:
        if negative_lines or line.startswith(NEGATIVE_PROMPT_PREFIX.strip()):
            negative_lines.append(line)
        else:
            prompt_lines.append(line)
    negative = "\n".join(negative_lines)
    negative = negative[len(NEGATIVE_PROMPT_PREFIX.strip()):].strip() if negative else ""
    return {"Prompt": "\n".join(prompt_lines).strip(), "Negative prompt": negative, **fields}
