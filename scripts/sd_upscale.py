"""SD upscale (img2img): upscale with a chosen upscaler, then redraw in overlapping tiles.

Written on the A1111 script API and loaded by the extension loader from the program's
``scripts/`` folder. ``script_args`` in A1111 v1.10.1's order: info (ignored), tile overlap (px),
upscaler (its index in ``shared.sd_upscalers`` = ``/sdapi/v1/upscalers``, as A1111's radio sends
it, or its name), scale factor. The image is upscaled ("None" keeps it as it is), cut into tiles
of the form's width x height that overlap, the tiles are redrawn by img2img ``batch_size`` at a
time, and put back with blended seams (``modules.pipeline.tile_grid``). As A1111: batch k of the
tiles starts at seed + k, and with a batch count n the whole image is redrawn n times, run r from
seed + r; one combined image per run.
"""

from __future__ import annotations

from copy import copy

import gradio as gr

from modules import images, processing, scripts, shared
from modules.extensions.script_args import choice, number
from modules.extensions.scripts import ScriptArg
from modules.pipeline.tile_grid import batches, combine_grid, split_grid
from modules.processing import Processed, process_images
from modules.scripts import ScriptArgsError

OVERLAP = ScriptArg("Tile overlap", 64, minimum=0, maximum=256, step=16)
SCALE = ScriptArg("Scale Factor", 2, minimum=0, maximum=4, step=0.05)


def upscaler_names():
    return [u.name for u in shared.sd_upscalers]


class Script(scripts.Script):
    def title(self):
        return "SD upscale"

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        info = gr.HTML("<p style=\"margin-bottom:0.75em\">Will upscale the image by the selected scale factor; "
                       "use width and height sliders to set tile size</p>")
        overlap = gr.Slider(OVERLAP.minimum, OVERLAP.maximum, value=OVERLAP.value, step=OVERLAP.step,
                            label=OVERLAP.label, elem_id=self.elem_id("overlap"))
        scale = gr.Slider(1.0, SCALE.maximum, value=2.0, step=SCALE.step, label=SCALE.label,
                          elem_id=self.elem_id("scale_factor"))
        names = upscaler_names()
        upscaler = gr.Radio(names, value=names[0] if names else None, label="Upscaler", type="index",
                            elem_id=self.elem_id("upscaler_index"))
        return [info, overlap, upscaler, scale]

    def read_args(self, p, _info=None, overlap=64, upscaler_index="None", scale_factor=2):
        """(overlap, upscaler, scale), each checked against the form's tile size and the upscalers."""
        overlap = int(number(OVERLAP.label, overlap, OVERLAP, whole=True))
        if overlap >= min(p.width, p.height):
            raise ScriptArgsError(f"{OVERLAP.label} ({overlap}) must be smaller than the tile, which is the form's "
                                  f"size ({p.width}x{p.height})")
        scale = float(number(SCALE.label, scale_factor, SCALE))
        if scale <= 0:
            raise ScriptArgsError(f"{SCALE.label} must be above 0, got {scale:g}")
        name = choice("Upscaler", upscaler_index, upscaler_names())
        return overlap, next(u for u in shared.sd_upscalers if u.name == name), scale

    def run(self, p, *args):
        overlap, upscaler, scale = self.read_args(p, *args)
        if not p.init_images:
            raise ScriptArgsError("SD upscale needs an init image")
        tile = copy(p)
        tile.image_mask = tile.mask = None
        processing.check_processing(tile)  # a bad form is answered before the upscale and the tiles
        processing.fix_seed(p)
        p.extra_generation_params = {**p.extra_generation_params, "SD upscale overlap": overlap,
                                     "SD upscale upscaler": upscaler.name}
        upscaled = upscaler.scaler.upscale(p.init_images[0].convert("RGB"), scale, upscaler.data_path)
        grid = split_grid(upscaled, p.width, p.height, overlap)
        shown = []
        for run_index in range(p.n_iter):
            redrawn = self.redraw(p, grid, p.seed + run_index)
            if redrawn is None:
                break
            (text, seed), tiles = redrawn
            combined = combine_grid(grid.with_images(tiles))
            if not p.do_not_save_samples:
                images.save_image(combined, p.outpath_samples, "", seed, p.prompt, info=text, p=p)
            shown.append((combined, text, seed))
        return Processed(p, [image for image, _, _ in shown], p.seed, shown[0][1] if shown else "",
                         all_seeds=[seed for _, _, seed in shown], infotexts=[text for _, text, _ in shown])

    @staticmethod
    def redraw(p, grid, seed):
        """Every tile redrawn, ``p.batch_size`` tiles per generation: ((the first tile's infotext and
        seed), every tile's image in order); None when interrupted."""
        tiles, redrawn, first = grid.tiles, [], None
        for batch_index, indices in enumerate(batches(len(tiles), p.batch_size)):
            if shared.state.interrupted:
                return None
            pc = copy(p)
            pc.init_images, pc.image_mask, pc.mask = [tiles[i].image for i in indices], None, None
            pc.batch_size, pc.n_iter, pc.seed = len(indices), 1, seed + batch_index
            pc.do_not_save_samples, pc.do_not_save_grid = True, True  # tiles are parts of a result
            processed = process_images(pc)
            if shared.state.interrupted or len(processed.images) != len(indices):
                return None
            first = first or (processed.infotexts[0], processed.all_seeds[0])
            redrawn += processed.images
        return first, redrawn
