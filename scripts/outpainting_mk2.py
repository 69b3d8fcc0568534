"""Outpainting mk2 (img2img): the picture grows on the chosen sides, each redrawn from noise
matched to the image.

Written on the A1111 script API and loaded by the extension loader from the program's
``scripts/`` folder. ``script_args`` in A1111 v1.10.1's order: info (ignored), pixels to expand,
mask blur, outpainting direction(s) (a list of "left", "right", "up", "down"), fall-off exponent
(lower = more detail), colour variation. One side at a time (in that order), the strip is filled
with noise matched to the image and redrawn by an inpaint generation of at most the form's size
(``modules.pipeline.outpaint``); the result grows by ``pixels`` on each chosen side.
"""

from __future__ import annotations

from copy import copy

import gradio as gr

from modules import images, processing, scripts, shared
from modules.extensions.script_args import directions_arg, number
from modules.extensions.scripts import ScriptArg
from modules.params import InpaintFill
from modules.pipeline.outpaint import DIRECTIONS, mk2_paste_back, mk2_step
from modules.processing import Processed, process_images
from modules.scripts import ScriptArgsError

PIXELS = ScriptArg("Pixels to expand", 128, minimum=8, maximum=256, step=8)
BLUR = ScriptArg("Mask blur", 8, minimum=0, maximum=64, step=1)
FALL_OFF = ScriptArg("Fall-off exponent (lower=higher detail)", 1.0, minimum=0.0, maximum=4.0, step=0.01)
VARIATION = ScriptArg("Color variation", 0.05, minimum=0.0, maximum=1.0, step=0.01)


def slider(arg, elem_id):
    return gr.Slider(arg.minimum, arg.maximum, value=arg.value, step=arg.step, label=arg.label, elem_id=elem_id)


class Script(scripts.Script):
    def title(self):
        return "Outpainting mk2"

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        info = gr.HTML("<p>Recommended settings: Sampling Steps: 80-100, Sampler: Euler a, Denoising strength: 0.8</p>")
        pixels = slider(PIXELS, self.elem_id("pixels"))
        blur = slider(BLUR, self.elem_id("mask_blur"))
        direction = gr.CheckboxGroup(list(DIRECTIONS), value=list(DIRECTIONS), label="Outpainting direction",
                                     elem_id=self.elem_id("direction"))
        fall_off = slider(FALL_OFF, self.elem_id("noise_q"))
        variation = slider(VARIATION, self.elem_id("color_variation"))
        return [info, pixels, blur, direction, fall_off, variation]

    @staticmethod
    def read_args(_info=None, pixels=128, mask_blur=8, direction=DIRECTIONS, noise_q=1.0, color_variation=0.05):
        return (int(number(PIXELS.label, pixels, PIXELS, whole=True)), int(number(BLUR.label, mask_blur, BLUR, whole=True)),
                directions_arg(direction), number("Fall-off exponent", noise_q, FALL_OFF),
                number(VARIATION.label, color_variation, VARIATION))

    def run(self, p, *args):
        pixels, blur, directions, noise_q, variation = self.read_args(*args)
        if not p.init_images:
            raise ScriptArgsError("Outpainting mk2 needs an init image")
        processing.fix_seed(p)
        image, last = p.init_images[0].convert("RGB"), None
        for side in directions:
            if shared.state.interrupted:
                return Processed(p, [])
            step = mk2_step(image, side, pixels, blur, noise_q, variation, (p.width, p.height))
            pc = copy(p)
            pc.init_images, pc.image_mask, pc.mask = [step.init], step.mask, None
            pc.width, pc.height, pc.resize_mode = step.init.width, step.init.height, 0
            pc.batch_size, pc.n_iter, pc.mask_blur = 1, 1, blur
            pc.inpainting_fill, pc.inpaint_full_res = int(InpaintFill.ORIGINAL), False
            pc.do_not_save_samples = True  # each side's crop is a step, not a result
            processed = process_images(pc)
            if not processed.images or shared.state.interrupted:
                return Processed(p, [])
            last = (processed.infotexts[0], processed.all_seeds[0])
            image = mk2_paste_back(step, processed.images[0].resize(step.init.size))
        text, seed = last
        if not p.do_not_save_samples:
            images.save_image(image, p.outpath_samples, "", seed, p.prompt, info=text, p=p)
        return Processed(p, [image], seed, text, all_seeds=[seed], infotexts=[text])
