"""Grids with labelled legends (A1111's ``images.draw_grid_annotations``, used by the X/Y/Z plot
and the prompt matrix): a band of column labels on top, row labels on the left, optional
margins between cells, text in DejaVu Sans (bundled, see data/LICENSE-DejaVuSans.txt).

We differ from A1111 where its sizes make text unreadable on small cells: A1111's font size is
(cell width + height) / 25, 5 px on 64x64 cells; ours is at least 12 px, and the left band is
at least as wide as the widest word in it, so wrapped row labels never spill out of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path(__file__).parent / "data" / "DejaVuSans.ttf"
MIN_FONT_SIZE = 12
ACTIVE_COLOUR = (0, 0, 0)
INACTIVE_COLOUR = (153, 153, 153)  # A1111's struck-through prompt-matrix parts


@dataclass(frozen=True)
class GridAnnotation:
    text: str = ""
    is_active: bool = True


@lru_cache(maxsize=16)
def legend_font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), size)


def legend_font_size(cell_width: int, cell_height: int) -> int:
    return max(MIN_FONT_SIZE, (cell_width + cell_height) // 25)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Words onto lines no wider than ``width`` (a single longer word keeps its own line)."""
    lines = [""]
    for word in text.split():
        joined = f"{lines[-1]} {word}".strip()
        if draw.textlength(joined, font=font) <= width:
            lines[-1] = joined
        else:
            lines.append(word)
    return lines


@dataclass(frozen=True)
class _Line:
    text: str
    active: bool
    width: int
    height: int


def _lines(draw, annotations: Sequence[GridAnnotation], font, width: float) -> list[_Line]:
    lines = []
    for annotation in annotations:
        for text in _wrap(draw, annotation.text, font, width):
            left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
            lines.append(_Line(text, annotation.is_active, right - left, bottom - top))
    return lines


def _block_height(lines: Sequence[_Line], spacing: int) -> int:
    return sum(line.height + spacing for line in lines) - spacing if lines else 0


def _draw_lines(draw, x: float, y: float, lines: Sequence[_Line], font, spacing: int) -> None:
    for line in lines:
        colour = ACTIVE_COLOUR if line.active else INACTIVE_COLOUR
        draw.multiline_text((x, y + line.height / 2), line.text, font=font, fill=colour, anchor="mm", align="center")
        if not line.active:
            middle = y + line.height // 2
            draw.line((x - line.width // 2, middle, x + line.width // 2, middle), fill=INACTIVE_COLOUR, width=max(1, spacing // 2))
        y += line.height + spacing


def draw_grid_annotations(grid: Image.Image, cell_width: int, cell_height: int,
                          columns: Sequence[Sequence[GridAnnotation]], rows: Sequence[Sequence[GridAnnotation]],
                          margin: int = 0) -> Image.Image:
    """``grid`` (cells edge to edge) with a label band on top (one entry per column) and on the
    left (one per row; no band when every row label is empty), cells ``margin`` pixels apart."""
    n_cols, n_rows = grid.width // cell_width, grid.height // cell_height
    if len(columns) != n_cols or len(rows) != n_rows:
        raise ValueError(f"{len(columns)}x{len(rows)} labels for a grid of {n_cols}x{n_rows} cells")
    size = legend_font_size(cell_width, cell_height)
    font, spacing = legend_font(size), size // 2
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    has_rows = any(a.text for labels in rows for a in labels)
    widest_word = max((measure.textlength(w, font=font) for labels in rows for a in labels for w in a.text.split()), default=0)
    pad_left = max(cell_width * 3 // 4, math.ceil(widest_word) + size) if has_rows else 0
    column_lines = [_lines(measure, labels, font, cell_width) for labels in columns]
    row_lines = [_lines(measure, labels, font, pad_left) for labels in rows]
    pad_top = max((_block_height(lines, spacing) for lines in column_lines), default=0) + spacing * 2
    result = Image.new("RGB", (grid.width + pad_left + margin * (n_cols - 1), grid.height + pad_top + margin * (n_rows - 1)), "white")
    for row in range(n_rows):
        for col in range(n_cols):
            cell = grid.crop((cell_width * col, cell_height * row, cell_width * (col + 1), cell_height * (row + 1)))
            result.paste(cell, (pad_left + (cell_width + margin) * col, pad_top + (cell_height + margin) * row))
    draw = ImageDraw.Draw(result)
    for col, lines in enumerate(column_lines):
        x = pad_left + (cell_width + margin) * col + cell_width / 2
        _draw_lines(draw, x, pad_top / 2 - _block_height(lines, spacing) / 2, lines, font, spacing)
    for row, lines in enumerate(row_lines):
        y = pad_top + (cell_height + margin) * row + cell_height / 2 - _block_height(lines, spacing) / 2
        _draw_lines(draw, pad_left / 2, y, lines, font, spacing)
    return result


def image_grid(images: Sequence[Image.Image], rows: int) -> Image.Image:
    """Images edge to edge, row-major, ``rows`` rows (A1111's ``image_grid`` with explicit rows)."""
    columns = math.ceil(len(images) / rows)
    width, height = images[0].size
    grid = Image.new("RGB", (columns * width, rows * height), "black")
    for index, image in enumerate(images):
        grid.paste(image, ((index % columns) * width, (index // columns) * height))
    return grid


@dataclass(frozen=True)
class XYZGrids:
    main: Image.Image  # the Z sub-grids side by side, titled by the Z labels
    sub_grids: tuple[Image.Image, ...]  # one X-by-Y grid per Z value


def xyz_grids(cells: Mapping[tuple[int, int, int], Image.Image], x_labels: Sequence[str], y_labels: Sequence[str],
              z_labels: Sequence[str], draw_legend: bool = True, margin: int = 0) -> XYZGrids:
    """The plot's grids from its cells by (ix, iy, iz). A cell that was not made (interrupted, or
    its generation failed) stays black, as in A1111, so the finished cells keep their places."""
    if not cells:
        raise ValueError("no cell of the plot was made")
    width, height = next(iter(cells.values())).size
    blank = Image.new("RGB", (width, height))
    subs = []
    for iz in range(len(z_labels)):
        images = [cells.get((ix, iy, iz), blank) for iy in range(len(y_labels)) for ix in range(len(x_labels))]
        grid = image_grid(images, rows=len(y_labels))
        if draw_legend:
            grid = draw_grid_annotations(grid, width, height, [[GridAnnotation(t)] for t in x_labels],
                                         [[GridAnnotation(t)] for t in y_labels], margin)
        subs.append(grid)
    main = image_grid(subs, rows=1)
    if draw_legend:
        main = draw_grid_annotations(main, subs[0].width, subs[0].height, [[GridAnnotation(t)] for t in z_labels],
                                     [[GridAnnotation()]])
    return XYZGrids(main, tuple(subs))
