"""Prompt styles: ``styles.csv`` (name, prompt, negative_prompt), as A1111 stores them.

A style's text containing ``{prompt}`` has the user's prompt put in its place;
otherwise the style is appended after a comma. Styles apply in order, to the
prompt and the negative prompt alike.

A1111's module of the same name is also answered here (its compatibility surface):
``PromptStyle``, ``StyleDatabase``, ``merge_prompts`` and ``apply_styles_to_prompt``, over the
functions below (``shared.prompt_styles`` is a ``StyleDatabase`` of the styles file).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

from modules.fileio import set_aside, write_bytes_atomically

PLACEHOLDER = "{prompt}"
COLUMNS = ("name", "prompt", "negative_prompt")
log = logging.getLogger(__name__)


class StylesFileError(ValueError):
    """styles.csv cannot be read as A1111's styles table (bad encoding, broken CSV, no name column)."""


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = ""
    negative_prompt: str = ""


def read_styles(path: Path) -> dict[str, Style]:
    """Styles by name; a missing file has none. Rows without a name are skipped."""
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise StylesFileError(f"{path}: not a readable styles table ({error})") from error
    if rows and "name" not in (reader.fieldnames or ()):
        raise StylesFileError(f"{path}: no 'name' column (expected columns {', '.join(COLUMNS)})")
    styles = {}
    for row in rows:
        name = (row.get("name") or "").strip()
        if name:
            styles[name] = Style(name, row.get("prompt") or "", row.get("negative_prompt") or "")
    return styles


def set_aside_unreadable_styles(path: Path) -> Path | None:
    """At start: a styles file that cannot be read is renamed aside (kept for the user) with a
    console line, so the page and the API start with no styles instead of failing on every use.
    Where it was moved, or None when the file is fine or absent."""
    try:
        read_styles(path)
        return None
    except StylesFileError as error:
        moved = set_aside(path)
        log.warning("Styles file unreadable: %s; moved it to %s and started with no styles", error, moved)
        return moved


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


def write_styles(path: Path, styles: dict[str, Style]) -> None:
    """Rewrite ``styles.csv`` atomically (a temporary file renamed over it), in A1111's column order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for style in styles.values():
        writer.writerow({"name": style.name, "prompt": style.prompt, "negative_prompt": style.negative_prompt})
    write_bytes_atomically(path, buffer.getvalue().encode("utf-8"))


def save_style(path: Path, style: Style) -> dict[str, Style]:
    """Add or replace the style of that name; returns every style. A blank name is refused."""
    name = style.name.strip()
    if not name:
        raise ValueError("style name: must not be empty")
    styles = {**read_styles(path), name: Style(name, style.prompt, style.negative_prompt)}
    write_styles(path, styles)
    return styles


def delete_style(path: Path, name: str) -> dict[str, Style]:
    """Remove the named style; returns the rest. An unknown name raises KeyError."""
    styles = read_styles(path)
    if name not in styles:
        raise KeyError(f"unknown style {name!r}")
    del styles[name]
    write_styles(path, styles)
    return styles


# --- A1111's names --------------------------------------------------------------------------------

class PromptStyle(NamedTuple):
    """A1111's style record: the file it came from is ``path``."""

    name: str
    prompt: str | None
    negative_prompt: str | None
    path: str | None = None


def merge_prompts(style_prompt: str, prompt: str) -> str:
    return merge_style_text(prompt, style_prompt)


def apply_styles_to_prompt(prompt: str, styles: Sequence[str]) -> str:
    """``prompt`` with each style text merged in order (texts, not names)."""
    for style in styles:
        prompt = merge_style_text(prompt, style)
    return prompt


class StyleDatabase:
    """A1111's ``shared.prompt_styles``: ``styles`` by name (``PromptStyle``), read from the styles
    files (the first one is where ``save_styles`` writes); unknown names apply as no style, as in A1111."""

    def __init__(self, paths: "str | Path | Sequence[str | Path]"):
        many = paths if isinstance(paths, (list, tuple)) else [paths]
        self.paths = [Path(p) for p in many]
        self.no_style = PromptStyle("None", "", "", None)
        self.styles: dict[str, PromptStyle] = {}
        self.reload()

    @property
    def path(self) -> Path:
        return self.paths[0]

    def reload(self) -> None:
        self.styles.clear()
        for path in self.paths:
            self.load_from_csv(path)

    def load_from_csv(self, path: "str | Path") -> None:
        for style in read_styles(Path(path)).values():
            self.styles[style.name] = PromptStyle(style.name, style.prompt, style.negative_prompt, str(path))

    def get_style_paths(self) -> set[str]:
        return {str(p) for p in self.paths}

    def get_style_prompts(self, styles: Sequence[str]) -> list[str]:
        return [self.styles.get(name, self.no_style).prompt for name in styles]

    def get_negative_style_prompts(self, styles: Sequence[str]) -> list[str]:
        return [self.styles.get(name, self.no_style).negative_prompt for name in styles]

    def apply_styles_to_prompt(self, prompt: str, styles: Sequence[str]) -> str:
        return apply_styles_to_prompt(prompt, self.get_style_prompts(styles))

    def apply_negative_styles_to_prompt(self, prompt: str, styles: Sequence[str]) -> str:
        return apply_styles_to_prompt(prompt, self.get_negative_style_prompts(styles))

    def save_styles(self, path: "str | Path | None" = None) -> None:
        """Writes every style (but "None") to ``path`` or the first styles file, atomically."""
        kept = {name: Style(name, s.prompt or "", s.negative_prompt or "") for name, s in self.styles.items() if name != "None"}
        write_styles(Path(path) if path else self.path, kept)
