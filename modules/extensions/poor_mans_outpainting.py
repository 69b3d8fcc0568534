"""The built-in "Poor man's outpainting" script (A1111 ``scripts/poor_mans_outpainting.py``), img2img only.

script_args in A1111's order: pixels to expand, mask blur, masked content (index or name:
fill, original, latent noise, latent nothing), outpainting direction(s). The image is put on a
canvas grown on the chosen sides (rounded up to a multiple of 64), cut into tiles of the
form's size overlapping by ``pixels``, and every tile that reaches outside the original is
redrawn by an inpaint job with the border mask; the tiles are put back with blended seams.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

from modules.extensions.outpainting_mk2 import directions_arg
from modules.extensions.script_args import choice, filled, first_image, number, run_job, save_sample
from modules.extensions.scripts import Script, ScriptArg, ScriptArgsError
from modules.params import INPAINT_FILL_LABELS, InpaintFill
from modules.pipeline.generate import SaveOptions
from modules.pipeline.outpaint import DIRECTIONS, poor_mans_canvas, tile_needs_redraw
from modules.pipeline.tile_grid import combine_grid, split_grid
from modules.sampling.noise import resolve_seed

if TYPE_CHECKING:
    from modules.params import Img2ImgParams
    from modules.pipeline.generate import GeneratedImage
    from modules.runtime import Runtime

NO_SAVING = SaveOptions(images=False, grids=False)  # the tiles are parts, not results
FILLS = tuple(INPAINT_FILL_LABELS[fill] for fill in InpaintFill)


class PoorMansOutpainting(Script):
    def title(self) -> str:
        return "Poor man's outpainting"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def args_info(self) -> list[ScriptArg]:
        return [
            ScriptArg("Pixels to expand", 128, minimum=8, maximum=256, step=8),
            ScriptArg("Mask blur", 4, minimum=0, maximum=64, step=1),
            ScriptArg("Masked content", "fill", choices=FILLS),
            ScriptArg("Outpainting direction", ", ".join(DIRECTIONS)),
        ]

    def run(self, runtime: "Runtime", params: "Img2ImgParams", args: Sequence[Any], *,
            save: "SaveOptions | None" = None) -> list["GeneratedImage"]:
        info = self.args_info()
        pixels, blur, fill, directions = filled(self.title(), args, info)
        pixels = int(number("Pixels to expand", pixels, info[0], whole=True))
        blur = int(number("Mask blur", blur, info[1], whole=True))
        fill = InpaintFill(FILLS.index(choice("Masked content", fill, FILLS)))
        directions = directions_arg(directions)
        if pixels >= min(params.width, params.height):
            raise ScriptArgsError(f"Pixels to expand ({pixels}) must be smaller than the form's size "
                                  f"({params.width}x{params.height}): the tiles overlap by that much")
        canvas = poor_mans_canvas(first_image(self.title(), params), pixels, blur, directions)
        images = split_grid(canvas.image, params.width, params.height, pixels)
        masks = split_grid(canvas.mask, params.width, params.height, pixels)
        base = dataclasses.replace(params, seed=resolve_seed(params.seed), batch_size=1, n_iter=1, mask_blur=blur,
                                   inpainting_fill=fill, inpaint_full_res=False)
        redrawn, first = [], None
        for tile, mask in zip(images.tiles, masks.tiles):
            if not tile_needs_redraw(tile.x, tile.y, params.width, params.height, canvas.expansion):
                redrawn.append(tile.image)
                continue
            each = dataclasses.replace(base, init_images=(tile.image,), mask=mask.image.convert("L"))
            results, interrupted = run_job(runtime, each.validate(), NO_SAVING)
            if interrupted or not results:
                return results
            first = first or results[0]
            redrawn.append(results[0].image)
        result = combine_grid(images.with_images(redrawn))
        if first is None:
            return []
        path = save_sample(runtime, params, result, first.infotext, first.seed, save, "img2img-images")
        return [dataclasses.replace(first, image=result, path=path)]
