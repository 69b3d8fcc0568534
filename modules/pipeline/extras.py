"""The Extras tab's three sources (A1111's ``run_postprocessing``): one image, a batch of uploaded
files, every image in a directory; each run through the postprocessing registry.

Unlike A1111, which skips an unreadable file in a directory batch without a word, the run
names each skipped file and why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from PIL import Image, UnidentifiedImageError

from modules.infotext.files import output_path, save_image
from modules.pipeline.postprocess import PostprocessContext, PostprocessRegistry, postprocessing_text, with_source_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class ExtrasResult:
    image: Image.Image  # carries the source's text items plus "postprocessing"
    name: str | None  # the source file's stem (batches), None for a single image
    infotext: str  # the postprocessing fields


@dataclass(frozen=True)
class ExtrasRun:
    results: tuple[ExtrasResult, ...]
    skipped: tuple[tuple[str, str], ...]  # (file name, why)

    @property
    def infotext(self) -> str:
        """What A1111 shows under the gallery: the last image's postprocessing fields."""
        return self.results[-1].infotext if self.results else ""


def images_in_directory(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (A1111's ``shared.listfiles``)."""
    if not folder.is_dir():
        raise NotADirectoryError(f"input directory {folder} does not exist or is not a directory")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _opened(source: Image.Image | Path) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    with Image.open(source) as image:
        image.load()
        copy = image.copy()
        copy.info = dict(image.info)  # the text items (generation parameters) travel on
        return copy


def run_extras(registry: PostprocessRegistry, sources: Iterable[tuple[Image.Image | Path, str | None]],
               args: Mapping[str, Mapping[str, Any]], context: PostprocessContext) -> ExtrasRun:
    """Every source through every step; stops between images when the context says so."""
    results, skipped = [], []
    for source, name in sources:
        if context.should_stop():
            break
        try:
            image = _opened(source)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
            skipped.append((name or str(source), f"not a readable image ({error})"))
            continue
        pp = registry.run(image, args, context)
        results.append(ExtrasResult(with_source_text(pp.image, image, pp.info), name, postprocessing_text(pp.info)))
    return ExtrasRun(tuple(results), tuple(skipped))


def save_extras(run: ExtrasRun, outputs: Path, base: Path | None = None, fmt: str = "png",
                keep_names: bool = False, now: dt.datetime | None = None) -> list[Path]:
    """Each result under ``outputs/extras-images/<date>/`` (or ``base``), numbered as A1111 numbers
    them, or under the source's own name when ``keep_names`` (A1111's "use original name")."""
    now = now or dt.datetime.now()
    paths = []
    for result in run.results:
        tokens = {"date": now.strftime("%Y-%m-%d"), "seed": "extras"}
        path = output_path(outputs, "extras-images", tokens, "", fmt, base)
        if keep_names and result.name:
            path = path.with_name(f"{result.name}.{fmt}")
        save_image(result.image, path, result.image.info.get("parameters"))
        paths.append(path)
    return paths
