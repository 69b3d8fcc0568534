"""Images on disk with their infotext: PNG ``parameters`` tEXt, JPEG/WebP EXIF UserComment,
atomic writes, and A1111's output names (``outputs/txt2img-images/YYYY-MM-DD/NNNNN-SEED.png``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import IO, Mapping

import piexif
import piexif.helper
from PIL import Image, PngImagePlugin

from modules.fileio import write_atomically

FORMATS = ("png", "jpg", "webp")
OUTPUT_KINDS = ("txt2img-images", "img2img-images", "txt2img-grids", "img2img-grids", "extras-images")
MAX_NAME_LENGTH = 128
PROMPT_WORDS = 8  # A1111's directories_max_prompt_words
_TOKEN = re.compile(r"\[(\w+)\]")
_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')
_NUMBERED = re.compile(r"^(\d{5})")


def save_image(image: Image.Image, path: Path, infotext: str | None, quality: int = 80) -> None:
    """Write ``image`` to ``path`` (format from the suffix) with the infotext embedded, atomically."""
    fmt = path.suffix.lower().lstrip(".").replace("jpeg", "jpg")
    if fmt not in FORMATS:
        raise ValueError(f"{path}: unsupported image format {fmt!r} (use one of {', '.join(FORMATS)})")
    write_atomically(path, lambda handle: _encode(image, handle, fmt, infotext, quality))


def _encode(image: Image.Image, handle: IO[bytes], fmt: str, infotext: str | None, quality: int) -> None:
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        for key, value in image.info.items():
            if isinstance(key, str) and isinstance(value, str) and key != "parameters":
                info.add_text(key, value)
        if infotext:
            info.add_text("parameters", infotext)
        image.save(handle, format="PNG", pnginfo=info)
        return
    exif = b""
    if infotext:
        comment = piexif.helper.UserComment.dump(infotext, encoding="unicode")
        exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})
    pil_format = "JPEG" if fmt == "jpg" else "WEBP"
    image.convert("RGB").save(handle, format=pil_format, quality=quality, exif=exif)


def read_text_chunks(image: Image.Image) -> dict[str, str]:
    """Every text item an image carries: PNG text chunks, and EXIF UserComment as ``parameters``."""
    chunks = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    exif = image.info.get("exif")
    if "parameters" not in chunks and exif:
        comment = piexif.load(exif).get("Exif", {}).get(piexif.ExifIFD.UserComment)
        if comment:
            try:
                chunks["parameters"] = piexif.helper.UserComment.load(comment)
            except ValueError:
                chunks["parameters"] = comment.decode("utf-8", errors="replace")
    return chunks


def read_infotext(source: Path | Image.Image) -> str | None:
    if isinstance(source, Image.Image):
        return read_text_chunks(source).get("parameters")
    with Image.open(source) as image:
        return read_text_chunks(image).get("parameters")


def next_file_number(folder: Path) -> int:
    """The next 5-digit counter in ``folder``: one past the highest existing ``NNNNN-`` prefix."""
    if not folder.is_dir():
        return 0
    numbers = [int(m.group(1)) for f in folder.iterdir() if (m := _NUMBERED.match(f.name))]
    return max(numbers, default=-1) + 1


def grid_path(outputs: Path, kind: str, date: str, fmt: str = "png", base: Path | None = None) -> Path:
    """``outputs/<kind>/<date>/grid-NNNN.<fmt>`` with the next free grid number (A1111's grid names);
    ``base`` replaces ``outputs/<kind>`` (the "Paths for saving" settings)."""
    folder = (base or outputs / kind) / date
    numbers = [int(f.name[5:9]) for f in folder.glob("grid-[0-9][0-9][0-9][0-9].*")] if folder.is_dir() else []
    return folder / f"grid-{max(numbers, default=-1) + 1:04d}.{fmt}"


def filename_tokens(
    *, seed: int, steps: int, cfg: float, sampler: str, model_name: str, model_hash: str, prompt: str,
    width: int, height: int, batch_number: int, now: dt.datetime,
) -> dict[str, str]:
    """Values of the common ``[token]`` names of A1111's filename patterns."""
    return {
        "seed": str(seed), "steps": str(steps), "cfg": f"{cfg:g}", "sampler": sampler, "model_name": model_name,
        "model_hash": model_hash, "date": now.strftime("%Y-%m-%d"), "datetime": now.strftime("%Y%m%d%H%M%S"),
        "prompt_words": " ".join(re.findall(r"[\w']+", prompt)[:PROMPT_WORDS]),
        "prompt_hash": hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8],
        "width": str(width), "height": str(height), "batch_number": str(batch_number),
    }


def expand_pattern(pattern: str, tokens: Mapping[str, str]) -> str:
    """Replace known ``[token]``s (unknown ones stay as written), then make the name file-system safe."""
    expanded = _TOKEN.sub(lambda m: tokens.get(m.group(1), m.group(0)), pattern)
    safe = _UNSAFE.sub("_", expanded).strip().rstrip(". ")
    return safe[:MAX_NAME_LENGTH]


def output_path(
    outputs: Path, kind: str, tokens: Mapping[str, str], pattern: str = "[seed]", fmt: str = "png", base: Path | None = None,
) -> Path:
    """``outputs/<kind>/<date>/NNNNN-<pattern>.<fmt>`` with the next free number in that folder;
    ``base`` replaces ``outputs/<kind>``."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r} (one of {', '.join(OUTPUT_KINDS)})")
    folder = (base or outputs / kind) / tokens["date"]
    name = expand_pattern(pattern, tokens) or tokens["seed"]
    return folder / f"{next_file_number(folder):05d}-{name}.{fmt}"
