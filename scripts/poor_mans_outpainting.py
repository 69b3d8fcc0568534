"""Poor man's outpainting (img2img): the picture grows on the chosen sides, redrawn tile by tile.

Written on the A1111 script API and loaded by the extension loader from the program's
``scripts/`` folder. ``script_args`` in A1111 v1.10.1's order: pixels to expand, mask blur,
masked content (index or name: fill, original, latent noise, latent nothing), outpainting
direction(s). The image is put on a canvas grown on the chosen sides (rounded up to a multiple of
64), cut into tiles of the form's size overlapping by ``pixels``, and every tile that reaches
outside the original is redrawn by an inpaint generation with the border mask; the tiles are put
back with blended seams (``modules.pipeline.outpaint``, ``modules.pipeline.tile_grid``).
"""

from __future__ import annotations

from copy import copy

import gradio as gr

from modules import images, processing, scripts, shared
from modules.extensions.script_args import choice, directions_arg, number
from modules.extensions.scripts import ScriptArg
from modules.params import INPAINT_FILL_LABELS, InpaintFill
from modules.pipeline.outpaint import DIRECTIONS, poor_mans_canvas, tile_needs_redraw
from modules.pipeline.tile_grid import combine_grid, split_grid
from modules.processing import Processed, process_images
from modules.scripts import ScriptArgsError

FILLS = tuple(INPAINT_FILL_LABELS[fill] for fill in InpaintFill)
PIXELS = ScriptArg("Pixels to expand", 128, minimum=8, maximum=256, step=8)
BLUR = ScriptArg("Mask blur", 4, minimum=0, maximum=64, step=1)


class Script(scripts.Script):
    def title(self):
        return "Poor man's outpainting"

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        pixels = gr.Slider(PIXELS.minimum, PIXELS.maximum, value=PIXELS.value, step=PIXELS.step, label=PIXELS.label,
                           elem_id=self.elem_id("pixels"))
        blur = gr.Slider(BLUR.minimum, BLUR.maximum, value=BLUR.value, step=BLUR.step, label=BLUR.label,
                         elem_id=self.elem_id("mask_blur"))
        fill = gr.Radio(list(FILLS), value="fill", label="Masked content", type="index", elem_id=self.elem_id("inpainting_fill"))
        direction = gr.CheckboxGroup(list(DIRECTIONS), value=list(DIRECTIONS), label="Outpainting direction",
                                     elem_id=self.elem_id("direction"))
        return [pixels, blur, fill, direction]

    def run(self, p, pixels=128, mask_blur=4, inpainting_fill="fill", direction=DIRECTIONS):
        pixels = int(number(PIXELS.label, pixels, PIXELS, whole=True))
        blur = int(number(BLUR.label, mask_blur, BLUR, whole=True))
        fill = InpaintFill(FILLS.index(choice("Masked content", inpainting_fill, FILLS)))
        directions = directions_arg(direction)
        if pixels >= min(p.width, p.height):
            raise ScriptArgsError(f"Pixels to expand ({pixels}) must be smaller than the form's size "
                                  f"({p.width}x{p.height}): the tiles overlap by that much")
        if not p.init_images:
            raise ScriptArgsError("Poor man's outpainting needs an init image")
        canvas = poor_mans_canvas(p.init_images[0].convert("RGB"), pixels, blur, directions)
        tiles = split_grid(canvas.image, p.width, p.height, pixels)
        masks = split_grid(canvas.mask, p.width, p.height, pixels)
        processing.fix_seed(p)
        redrawn, first = [], None
        for tile, mask in zip(tiles.tiles, masks.tiles):
            if not tile_needs_redraw(tile.x, tile.y, p.width, p.height, canvas.expansion):
                redrawn.append(tile.image)
                continue
            if shared.state.interrupted:
                return Processed(p, [])
            pc = copy(p)
            pc.init_images, pc.image_mask, pc.mask = [tile.image], mask.image.convert("L"), None
            pc.batch_size, pc.n_iter, pc.mask_blur = 1, 1, blur
            pc.inpainting_fill, pc.inpaint_full_res = int(fill), False
            pc.do_not_save_samples = True  # the tiles are parts, not results
            processed = process_images(pc)
            if not processed.images or shared.state.interrupted:
                return Processed(p, [])
            first = first or (processed.infotexts[0], processed.all_seeds[0])
            redrawn.append(processed.images[0])
        if first is None:
            return Processed(p, [])
        result = combine_grid(tiles.with_images(redrawn))
        text, seed = first
        if not p.do_not_save_samples:
            images.save_image(result, p.outpath_samples, "", seed, p.prompt, info=text, p=p)
        return Processed(p, [result], seed, text, all_seeds=[seed], infotexts=[text])
