"""The built-in "SD upscale" script (A1111 ``scripts/sd_upscale.py``), img2img only.

script_args in A1111's order: info (a text block in the form, ignored), tile overlap (px),
upscaler (its index in ``/sdapi/v1/upscalers``, as A1111's radio sends it, or its name), scale
factor. The image is upscaled with that upscaler ("None" keeps it as it is, as in A1111), cut
into tiles of the form's width x height that overlap (``modules/pipeline/tile_grid.py``), the
tiles are redrawn by img2img ``batch_size`` at a time (one queued job per batch), and put back
with blended seams. As A1111: batch k of the tiles starts at seed + k, and with a batch count n
the whole image is redrawn n times, run r from seed + r; one combined image per run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any, Callable, Sequence

from modules.extensions.script_args import choice, filled, first_image, number, run_job, with_fields
from modules.extensions.scripts import Script, ScriptArg, ScriptArgsError
from modules.infotext.files import filename_tokens, output_path, save_image
from modules.infotext.parse import parse_infotext
from modules.pipeline.generate import SaveOptions
from modules.pipeline.tile_grid import TileGrid, batches, combine_grid, split_grid
from modules.sampling.noise import resolve_seed
from modules.upscalers.library import RESAMPLERS, UPSCALER_NONE, target_size

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image

    from modules.params import Img2ImgParams
    from modules.pipeline.generate import GeneratedImage
    from modules.runtime import Runtime

NO_SAVING = SaveOptions(images=False, grids=False)  # tiles are parts of a result, not results


@dataclasses.dataclass(frozen=True)
class SdUpscaleArgs:
    overlap: int
    upscaler: str
    scale_factor: float


class SdUpscale(Script):
    def __init__(self, upscaler_names: Callable[[], Sequence[str]] | None = None):
        """``upscaler_names``: the upscalers offered, in A1111's order (None first, so index 0 is
        None); without it the built-in ones."""
        self.upscaler_names = upscaler_names or (lambda: (UPSCALER_NONE, *RESAMPLERS))

    def title(self) -> str:
        return "SD upscale"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def args_info(self) -> list[ScriptArg]:
        return [
            ScriptArg("Info", None),
            ScriptArg("Tile overlap", 64, minimum=0, maximum=256, step=16),
            ScriptArg("Upscaler", UPSCALER_NONE, choices=tuple(self.upscaler_names())),  # a name or an index
            ScriptArg("Scale Factor", 2, minimum=0, maximum=4, step=1),
        ]

    def read_args(self, runtime: "Runtime", params: "Img2ImgParams", args: Sequence[Any]) -> SdUpscaleArgs:
        info = self.args_info()
        _, overlap, upscaler, scale = filled(self.title(), args, info)
        overlap = int(number(info[1].label, overlap, info[1], whole=True))
        if overlap >= min(params.width, params.height):
            raise ScriptArgsError(f"{info[1].label} ({overlap}) must be smaller than the tile, which is the form's "
                                  f"size ({params.width}x{params.height})")
        scale = float(number(info[3].label, scale, info[3]))
        if scale <= 0:
            raise ScriptArgsError(f"{info[3].label} must be above 0, got {scale:g}")
        return SdUpscaleArgs(overlap, choice(info[2].label, upscaler, info[2].choices), scale)

    def upscaled(self, runtime: "Runtime", image: "Image.Image", upscaler: str, scale: float) -> "Image.Image":
        """The image upscaled in a queued job of its own, so an upscaler model takes its turn on the
        device with the generations."""
        if upscaler == UPSCALER_NONE:
            return image
        upscaling = runtime.upscaling()
        job = runtime.jobs.submit(lambda job: upscaling.resize(image, target_size(image, scale), upscaler),
                                  max_waiting=runtime.options.current.queue_max_waiting,
                                  description=f"SD upscale: {upscaler} x{scale:g}")
        try:
            return job.future.result()
        finally:
            runtime.jobs.forget(job)

    def run(self, runtime: "Runtime", params: "Img2ImgParams", args: Sequence[Any], *,
            save: "SaveOptions | None" = None) -> list["GeneratedImage"]:
        chosen = self.read_args(runtime, params, args)
        image = first_image(self.title(), params)
        dataclasses.replace(params, init_images=(image,), mask=None).validate()  # answered before any queueing
        grid = split_grid(self.upscaled(runtime, image, chosen.upscaler, chosen.scale_factor),
                          params.width, params.height, chosen.overlap)
        fields = {"SD upscale overlap": chosen.overlap, "SD upscale upscaler": chosen.upscaler}
        seed = resolve_seed(params.seed)
        results: list[GeneratedImage] = []
        for run_index in range(params.n_iter):
            redrawn = self.redraw(runtime, params, grid, seed + run_index)
            if redrawn is None:
                break
            first, tiles = redrawn
            combined = combine_grid(grid.with_images(tiles))
            infotext = with_fields(first.infotext, fields)
            path = self.saved(runtime, params, combined, infotext, seed + run_index, save)
            results.append(dataclasses.replace(first, image=combined, infotext=infotext, path=path))
        return results

    def saved(self, runtime: "Runtime", params: "Img2ImgParams", image: "Image.Image", infotext: str, seed: int,
              save: "SaveOptions | None") -> "Path | None":
        """The combined image written as an img2img sample when saving is on (A1111 saves it, not the
        tiles); its path, else None."""
        from modules.runtime import save_options_from

        save = save or save_options_from(runtime.options.current, runtime.config.data_dir)
        if not save.images:
            return None
        written = parse_infotext(infotext)
        tokens = filename_tokens(seed=seed, steps=params.steps, cfg=params.cfg_scale, sampler=params.sampler_name,
                                 model_name=written.get("Model", ""), model_hash=written.get("Model hash", ""),
                                 prompt=params.prompt, width=image.width, height=image.height, batch_number=0,
                                 now=dt.datetime.now())
        path = output_path(runtime.config.outputs_dir, "img2img-images", tokens, save.pattern or "[seed]", save.fmt,
                           save.folder("img2img-images"))
        save_image(image, path, infotext, save.quality)
        return path

    def redraw(self, runtime: "Runtime", params: "Img2ImgParams", grid: TileGrid,
               seed: int) -> "tuple[GeneratedImage, list[Image.Image]] | None":
        """Every tile redrawn, one queued job per batch of tiles: (the first tile's result, every
        tile's image in order); None when a job was interrupted."""
        tiles = grid.tiles
        redrawn: list[GeneratedImage] = []
        for batch_index, indices in enumerate(batches(len(tiles), params.batch_size)):
            each = dataclasses.replace(params, init_images=tuple(tiles[i].image for i in indices), mask=None,
                                       batch_size=len(indices), n_iter=1, seed=seed + batch_index)
            images, interrupted = run_job(runtime, each, NO_SAVING)
            if interrupted or len(images) != len(indices):
                return None
            redrawn += images
        return redrawn[0], [r.image for r in redrawn]
