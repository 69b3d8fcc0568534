"""A1111 compatibility surface: ``modules.images`` (``image_grid``, ``split_grid``,
``combine_grid``, ``flatten``, ``save_image``), thin over ``modules.pipeline``."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, PngImagePlugin

from modules.pipeline.grid import image_grid as _image_grid
from modules.pipeline.tile_grid import combine_grid, split_grid  # noqa: F401


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
    """Saves into ``path`` with the next free number, the infotext in PNG ``parameters``;
    returns (filename, None) as A1111 does (no text sidecar). An image of a job run here (``p``, or
    the ``Processed`` holding it, carries the job's saving options) is written by the engine
    instead, where the saving settings put grids or samples; nothing when that saving is off."""
    job = getattr(p, "p", p)
    if job is not None and hasattr(job, "save_options"):
        written = _save_job_image(image, info or "", job, seed, grid)
        return (str(written) if written else None), None
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if forced_filename:
        stem = forced_filename
    else:
        taken = [int(p.name.split("-")[0]) for p in folder.iterdir() if p.name.split("-")[0].isdigit()]
        stem = "-".join(filter(None, [f"{max(taken, default=-1) + 1:05d}", str(seed) if seed is not None else "", basename]))
    filename = folder / f"{stem}{suffix}.{extension}"
    kwargs = {}
    if info and extension.lower() == "png":
        text = PngImagePlugin.PngInfo()
        text.add_text(pnginfo_section_name, info)
        kwargs["pnginfo"] = text
    image.save(filename, **kwargs)
    return str(filename), None


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
