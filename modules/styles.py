"""Prompt styles: ``styles.csv`` (name, prompt, negative_prompt), as A1111 stores them.

A style's text containing ``{prompt}`` has the user's prompt put in its place;
otherwise the style is appended after a comma. Styles apply in order, to the
prompt and the negative prompt alike.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = ""
    negative_prompt: str = ""


def read_styles(path: Path) -> dict[str, Style]:
    """Styles by name; a missing file has none. Rows without a name are skipped."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    styles = {}
    for row in rows:
        name = (row.get("name") or "").strip()
        if name:
            styles[name] = Style(name, row.get("prompt") or "", row.get("negative_prompt") or "")
    return styles


def merge_style_text(text: str, style_text: str) -> str:
    if not style_text:
        return text
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, text)
    return f"{text}, {style_text}" if text else style_text


def apply_styles(prompt: str, negative_prompt: str, names: Sequence[str], styles: dict[str, Style]) -> tuple[str, str]:
    """(prompt, negative prompt) with the named styles merged in; an unknown name raises KeyError listing the known ones."""
    for name in names:
        if name not in styles:
            known = ", ".join(sorted(styles)) or "none (no styles.csv)"
            raise KeyError(f"unknown style {name!r}; available: {known}")
        prompt = merge_style_text(prompt, styles[name].prompt)
        negative_prompt = merge_style_text(negative_prompt, styles[name].negative_prompt)
    return prompt, negative_prompt
