"""A1111 compatibility surface: ``modules.images`` (``image_grid``, ``split_grid``,
``combine_grid``, ``flatten``, ``save_image``, ``save_image_with_geninfo``, ``resize_image``,
``read_info_from_image``, ``image_data``, ``sanitize_filename_part``, ``FilenameGenerator``,
``get_next_sequence_number``, ``GridAnnotation``, ``draw_grid_annotations``,
``draw_prompt_matrix``, ``get_font``, ``LANCZOS``), thin over ``modules.pipeline`` and
``modules.infotext``."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import os
import re
import string
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from modules.fileio import write_atomically
from modules.infotext.files import read_text_chunks
from modules.pipeline.grid import image_grid as _image_grid
from modules.pipeline.grid_legend import GridAnnotation, draw_grid_annotations, legend_font
from modules.pipeline.tile_grid import combine_grid, split_grid  # noqa: F401

LANCZOS = Image.Resampling.LANCZOS


def image_grid(imgs: list, batch_size: int = 1, rows: int | None = None) -> Image.Image:
    """A1111's signature; ``rows`` None or 0 lets the grid choose."""
    return _image_grid(imgs, rows or 0)


def flatten(img: Image.Image, bgcolor: str) -> Image.Image:
    """Composes an image with transparency over ``bgcolor``; opaque images pass unchanged but as RGB."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, bgcolor)
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def save_image(image: Image.Image, path: str, basename: str, seed=None, prompt=None, extension: str = "png",
               info: str | None = None, short_filename: bool = False, no_prompt: bool = False, grid: bool = False,
               pnginfo_section_name: str = "parameters", p=None, existing_info=None, forced_filename=None,
               suffix: str = "", save_to_dirs=None) -> tuple[str, None]:
    """Saves into ``path`` with the next free number (``NNNNN-seed-basename``), the infotext in PNG
    text (``existing_info`` items too) or JPEG/WebP EXIF; ``on_before_image_saved`` callbacks may
    change the image, file name and text items first, ``on_image_saved`` ones see the result.
    Returns (filename, None) as A1111 does (no text sidecar). An image of a job run here (``p``, or
    the ``Processed`` holding it, carries the job's saving options) is written by the engine
    instead, where the saving settings put grids or samples; nothing when that saving is off."""
    from modules import script_callbacks

    job = getattr(p, "p", p)
    if job is not None and hasattr(job, "save_options"):
        written = _save_job_image(image, info or "", job, seed, grid)
        return (str(written) if written else None), None
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if forced_filename:
        stem = forced_filename
    else:
        taken = [int(f.name.split("-")[0]) for f in folder.iterdir() if f.name.split("-")[0].isdigit()]
        stem = "-".join(filter(None, [f"{max(taken, default=-1) + 1:05d}", str(seed) if seed is not None else "", basename]))
    pnginfo = dict(existing_info or {})
    if info is not None:
        pnginfo[pnginfo_section_name] = info
    params = script_callbacks.ImageSaveParams(image, p, str(folder / f"{stem}{suffix}.{extension.lstrip('.')}"), pnginfo)
    script_callbacks.before_image_saved_callback(params)
    save_image_with_geninfo(params.image, params.pnginfo.get(pnginfo_section_name), params.filename,
                            existing_pnginfo=params.pnginfo, pnginfo_section_name=pnginfo_section_name)
    params.image.already_saved_as = params.filename
    script_callbacks.image_saved_callback(params)
    return params.filename, None


def save_image_with_geninfo(image: Image.Image, geninfo: str | None, filename: str, extension: str | None = None,
                            existing_pnginfo: dict | None = None, pnginfo_section_name: str = "parameters") -> None:
    """Writes ``image`` to ``filename`` with ``geninfo`` embedded (PNG text, or EXIF for JPEG/WebP)."""
    from modules.infotext.files import save_image as _save_with_infotext

    target = Path(filename)
    if extension:
        target = target.with_suffix(extension if extension.startswith(".") else f".{extension}")
    extra = {k: v for k, v in (existing_pnginfo or {}).items() if k != pnginfo_section_name}
    if target.suffix.lower() == ".png" and (extra or pnginfo_section_name != "parameters"):
        text = PngImagePlugin.PngInfo()
        for key, value in {**(existing_pnginfo or {}), **({pnginfo_section_name: geninfo} if geninfo else {})}.items():
            text.add_text(str(key), str(value))
        write_atomically(target, lambda handle: image.save(handle, format="PNG", pnginfo=text))
        return
    _save_with_infotext(image, target, geninfo)


# --- resizing -------------------------------------------------------------------------------------

def _resized(image: Image.Image, width: int, height: int, upscaler_name: str | None) -> Image.Image:
    """A1111's inner ``resize``: Lanczos, or the named upscaler when enlarging, then Lanczos to size."""
    if not upscaler_name or upscaler_name == "None" or image.mode == "L":
        return image.resize((width, height), resample=LANCZOS)
    if max(width / image.width, height / image.height) > 1.0:
        from modules import shared

        runtime = shared.bound_runtime()
        if runtime is None:
            raise RuntimeError(f"upscaler {upscaler_name!r} needs the web UI's runtime (not bound)")
        image = runtime.upscaling().resize(image.convert("RGB"), (width, height), upscaler_name)
    return image if image.size == (width, height) else image.resize((width, height), resample=LANCZOS)


def _default_upscaler() -> str | None:
    from modules import shared

    try:
        return shared.opts.upscaler_for_img2img
    except AttributeError:
        return None


def resize_image(resize_mode: int, im: Image.Image, width: int, height: int, upscaler_name: str | None = None) -> Image.Image:
    """A1111's img2img resize: 0 stretches to ``width`` x ``height``; 1 keeps the aspect ratio,
    covers the target and crops the excess around the centre; any other mode (2, and 3 as A1111's
    ``resize_image`` treats it) fits inside, centres, and fills the bars by stretching the image's
    outermost rows or columns. Sizes use A1111's integer arithmetic, so crops match its pixels."""
    upscaler_name = upscaler_name or _default_upscaler()
    if resize_mode == 0:
        return _resized(im, width, height, upscaler_name)
    ratio, src_ratio = width / height, im.width / im.height
    cover = resize_mode == 1
    if cover:
        src_w = width if ratio > src_ratio else im.width * height // im.height
        src_h = height if ratio <= src_ratio else im.height * width // im.width
    else:
        src_w = width if ratio < src_ratio else im.width * height // im.height
        src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = _resized(im, src_w, src_h, upscaler_name)
    result = Image.new("RGB", (width, height))
    result.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if not cover:
        _fill_bars(result, resized, ratio, src_ratio)
    return result


def _fill_bars(result: Image.Image, resized: Image.Image, ratio: float, src_ratio: float) -> None:
    """Stretches the first and last row (or column) of ``resized`` over the empty bars, as A1111."""
    width, height = result.size
    if ratio < src_ratio:
        bar = height // 2 - resized.height // 2
        if bar > 0:
            result.paste(resized.resize((width, bar), box=(0, 0, width, 0)), box=(0, 0))
            result.paste(resized.resize((width, bar), box=(0, resized.height, width, resized.height)),
                         box=(0, bar + resized.height))
    elif ratio > src_ratio:
        bar = width // 2 - resized.width // 2
        if bar > 0:
            result.paste(resized.resize((bar, height), box=(0, 0, 0, height)), box=(0, 0))
            result.paste(resized.resize((bar, height), box=(resized.width, 0, resized.width, height)),
                         box=(bar + resized.width, 0))


# --- reading infotext back ------------------------------------------------------------------------

_EXIF_KEYS = ("jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif", "loop", "background",
              "timestamp", "duration")


def read_info_from_image(image: Image.Image) -> tuple[str | None, dict]:
    """(infotext, the image's other text items) as A1111 returns them: PNG ``parameters``, or the
    EXIF UserComment of a JPEG/WebP (also listed as ``exif comment``)."""
    items = dict(image.info or {})
    geninfo = items.pop("parameters", None)
    if "exif" in items:
        comment = read_text_chunks(image).get("parameters") if geninfo is None else None
        if comment:
            items["exif comment"] = geninfo = comment
        for key in _EXIF_KEYS:
            items.pop(key, None)
    return geninfo, items


def image_data(data: bytes) -> tuple[str, None]:
    """The infotext of an image file's bytes, or the bytes as text when they are short UTF-8, or ''."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return read_info_from_image(image)[0] or "", None
    except (OSError, ValueError):  # not an image: A1111 then tries the bytes as text
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "", None
    return (text, None) if len(text) < 10000 else ("", None)


# --- file names -----------------------------------------------------------------------------------

invalid_filename_chars = '#<>:"/\\|?*\n\r\t'
invalid_filename_prefix = " "
invalid_filename_postfix = " ."
re_nonletters = re.compile(r"[\s" + re.escape(string.punctuation) + "]+")
re_pattern = re.compile(r"(.*?)(?:\[([^\[\]]+)\]|$)")
re_pattern_arg = re.compile(r"(.*)<([^>]*)>$")
max_filename_part_length = 128
NOTHING_AND_SKIP_PREVIOUS_TEXT = object()


def sanitize_filename_part(text: str | None, replace_spaces: bool = True) -> str | None:
    """A1111's rule: spaces to ``_`` (optionally), unsafe characters to ``_``, no leading space,
    at most 128 characters, no trailing space or dot."""
    if text is None:
        return None
    if replace_spaces:
        text = text.replace(" ", "_")
    text = text.translate({ord(c): "_" for c in invalid_filename_chars})
    text = text.lstrip(invalid_filename_prefix)[:max_filename_part_length]
    return text.rstrip(invalid_filename_postfix)


def _checkpoint_field(field: str) -> str:
    from modules import sd_models

    info = sd_models.select_checkpoint()
    return "" if info is None else str(getattr(info, field, "") or "")


class FilenameGenerator:
    """Expands A1111's ``[token]`` filename patterns (``[seed]``, ``[prompt_words]``,
    ``[datetime<%Y><tz>]``...) for ``p``, ``seed``, ``prompt`` and ``image``; unknown tokens stay."""

    default_time_format = "%Y%m%d%H%M%S"

    def __init__(self, p: Any, seed: Any, prompt: str | None, image: Image.Image | None, zip: bool = False,
                 basename: str = ""):
        self.p, self.seed, self.prompt, self.image = p, seed, prompt, image
        self.zip, self.basename = zip, basename
        self.replacements = {
            "basename": lambda: self.basename or NOTHING_AND_SKIP_PREVIOUS_TEXT,
            "seed": lambda: self.seed if self.seed is not None else "",
            "seed_first": lambda: self.seed if self.p is None else self.p.all_seeds[0],
            "steps": lambda: self.p and self.p.steps,
            "cfg": lambda: self.p and self.p.cfg_scale,
            "width": lambda: self.image.width,
            "height": lambda: self.image.height,
            "styles": lambda: self.p and sanitize_filename_part(
                ", ".join(s for s in self.p.styles if s != "None") or "None", replace_spaces=False),
            "sampler": lambda: self.p and sanitize_filename_part(self.p.sampler_name, replace_spaces=False),
            "sampler_scheduler": lambda: self.p and sanitize_filename_part(
                f"{self.p.sampler_name}_{self.p.scheduler}", replace_spaces=False),
            "scheduler": lambda: self.p and sanitize_filename_part(self.p.scheduler, replace_spaces=False),
            "model_hash": lambda: _checkpoint_field("shorthash"),
            "model_name": lambda: sanitize_filename_part(_checkpoint_field("model_name"), replace_spaces=False),
            "date": lambda: dt.datetime.now().strftime("%Y-%m-%d"),
            "datetime": self.datetime,
            "job_timestamp": lambda: getattr(self.p, "job_timestamp", dt.datetime.now().strftime("%Y%m%d%H%M%S")),
            "prompt_hash": lambda *args: self.string_hash(self.prompt, *args),
            "negative_prompt_hash": lambda *args: self.string_hash(self.p.negative_prompt, *args),
            "full_prompt_hash": lambda *args: self.string_hash(f"{self.p.prompt} {self.p.negative_prompt}", *args),
            "prompt": lambda: sanitize_filename_part(self.prompt),
            "prompt_no_styles": lambda: sanitize_filename_part(self.prompt, replace_spaces=False),
            "prompt_spaces": lambda: sanitize_filename_part(self.prompt, replace_spaces=False),
            "prompt_words": self.prompt_words,
            "batch_number": lambda: NOTHING_AND_SKIP_PREVIOUS_TEXT if self.p is None or self.p.batch_size == 1 or self.zip
            else getattr(self.p, "batch_index", 0) + 1,
            "batch_size": lambda: self.p.batch_size,
            "generation_number": lambda: NOTHING_AND_SKIP_PREVIOUS_TEXT
            if self.p is None or (self.p.n_iter == 1 and self.p.batch_size == 1) or self.zip
            else self.p.iteration * self.p.batch_size + getattr(self.p, "batch_index", 0) + 1,
            "none": lambda: "",
        }

    def prompt_words(self) -> str:
        from modules import shared

        words = [w for w in re_nonletters.split(self.prompt or "") if w] or ["empty"]
        limit = shared.opts.data.get("directories_max_prompt_words") or 8
        return sanitize_filename_part(" ".join(words[:limit]), replace_spaces=False)

    def datetime(self, *args: str) -> str:
        """``[datetime]``, ``[datetime<format>]``, ``[datetime<format><time zone>]``; a bad format or
        zone falls back to the default format or local time, as in A1111."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        time_format = args[0] if args and args[0] else self.default_time_format
        try:
            zone = ZoneInfo(args[1]) if len(args) > 1 else None
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        now = dt.datetime.now().astimezone(zone)
        try:
            text = now.strftime(time_format)
        except (ValueError, TypeError):
            text = now.strftime(self.default_time_format)
        return sanitize_filename_part(text, replace_spaces=False)

    def string_hash(self, text: str, *args: str) -> str:
        length = int(args[0]) if args and args[0] else 8
        return hashlib.sha256(text.encode()).hexdigest()[:length]

    def apply(self, x: str) -> str:
        result = ""
        for match in re_pattern.finditer(x):
            text, pattern = match.groups()
            if pattern is None:
                result += text
                continue
            pattern_args = []
            while (arg := re_pattern_arg.match(pattern)) is not None:
                pattern, value = arg.groups()
                pattern_args.insert(0, value)
            replace = self.replacements.get(pattern.lower())
            replacement = None
            if replace is not None:
                try:
                    replacement = replace(*pattern_args)
                except (AttributeError, TypeError, ValueError, LookupError, RuntimeError) as error:
                    # e.g. [steps] without a ``p``: A1111 reports it and keeps the token as written
                    print(f"Error adding [{pattern}] to filename: {error}")
            if replacement is NOTHING_AND_SKIP_PREVIOUS_TEXT:
                continue
            result += text + (str(replacement) if replacement is not None else f"[{pattern}]")
        return result


def get_next_sequence_number(path: str, basename: str) -> int:
    """The next number for files in ``path`` named ``[basename-]NNNNN...`` (0 in an empty folder)."""
    prefix = f"{basename}-" if basename else ""
    highest = -1
    for name in os.listdir(path):
        if name.startswith(prefix):
            first = os.path.splitext(name[len(prefix):])[0].split("-")[0]
            if first.isdigit():
                highest = max(highest, int(first))
    return highest + 1


# --- grid legends ---------------------------------------------------------------------------------

def get_font(fontsize: int):
    """The legend font (DejaVu Sans, bundled) at ``fontsize``; A1111 reads ``opts.font`` or Roboto."""
    return legend_font(int(fontsize))


def draw_prompt_matrix(im: Image.Image, width: int, height: int, all_prompts: list, margin: int = 0) -> Image.Image:
    """The prompt-matrix legend: the parts after the first split between columns and rows, each
    struck through where the cell leaves it out."""
    parts = all_prompts[1:]
    boundary = math.ceil(len(parts) / 2)
    horizontal, vertical = parts[:boundary], parts[boundary:]
    columns = [[GridAnnotation(x, bool(pos & (1 << i))) for i, x in enumerate(horizontal)] for pos in range(1 << len(horizontal))]
    rows = [[GridAnnotation(x, bool(pos & (1 << i))) for i, x in enumerate(vertical)] for pos in range(1 << len(vertical))]
    return draw_grid_annotations(im, width, height, columns, rows, margin)


def _save_job_image(image: Image.Image, info: str, job, seed, grid: bool) -> Path | None:
    """A script's own result (a grid, or an image it composed: outpainting, an upscale) written as
    the job's saving options say: grids to the grids folder, samples to the samples folder with the
    file-name pattern; nothing when that kind of saving is off."""
    from modules import shared
    from modules.extensions.script_args import save_sample, save_script_grid

    tab = "img2img" if hasattr(job, "init_images") else "txt2img"
    runtime = shared.bound_runtime()
    if grid:
        return save_script_grid(runtime, image, info, job.save_options, f"{tab}-grids")
    return save_sample(runtime, job, image, info, job.seed if seed is None else seed, job.save_options, f"{tab}-images")
