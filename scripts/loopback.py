"""Loopback (img2img): each loop redraws the previous loop's output.

Written on the A1111 script API and loaded by the extension loader from the program's
``scripts/`` folder. ``script_args`` in A1111 v1.10.1's order: loops, final denoising strength,
denoising strength curve ("Aggressive", "Linear", "Lazy"), append interrogated prompt at each
iteration ("None" only: no interrogator model can be shipped). Each loop is one img2img
generation whose input is the previous output and whose seed is the previous one's plus one; the
strength moves from the form's value to the final one along the curve
(``modules.pipeline.loopback``). With one batch every loop's image is returned; with a batch
count n, the loops run n times from the form's image and the last image of each run is returned.
"""

from __future__ import annotations

from copy import copy

import gradio as gr

from modules import processing, scripts, shared
from modules.extensions.script_args import choice, number
from modules.extensions.scripts import ScriptArg
from modules.params import InpaintFill
from modules.pipeline.loopback import DenoisingCurve, loopback_strengths
from modules.processing import Processed, process_images
from modules.scripts import ScriptArgsError

INTERROGATION_CHOICES = ("None", "CLIP", "DeepBooru")
CURVES = tuple(curve.value for curve in DenoisingCurve)
LOOPS = ScriptArg("Loops", 4, minimum=1, maximum=32, step=1)
FINAL = ScriptArg("Final denoising strength", 0.5, minimum=0, maximum=1, step=0.01)


class Script(scripts.Script):
    def title(self):
        return "Loopback"

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        loops = gr.Slider(LOOPS.minimum, LOOPS.maximum, value=LOOPS.value, step=1, label=LOOPS.label,
                          elem_id=self.elem_id("loops"))
        final = gr.Slider(FINAL.minimum, FINAL.maximum, value=FINAL.value, step=0.01, label=FINAL.label,
                          elem_id=self.elem_id("final_denoising_strength"))
        curve = gr.Dropdown(list(CURVES), value="Linear", label="Denoising strength curve",
                            elem_id=self.elem_id("denoising_curve"))
        interrogate = gr.Dropdown(list(INTERROGATION_CHOICES), value="None",
                                  label="Append interrogated prompt at each iteration",
                                  elem_id=self.elem_id("append_interrogation"))
        return [loops, final, curve, interrogate]

    @staticmethod
    def read_args(loops=4, final_denoising_strength=0.5, denoising_curve="Linear", append_interrogation="None"):
        """(loops, final strength, curve), each checked; interrogation is refused with the reason."""
        label = "Append interrogated prompt at each iteration"
        if choice(label, append_interrogation, INTERROGATION_CHOICES) != "None":
            raise ScriptArgsError(f"{label}: interrogation is not available ({append_interrogation} needs "
                                  "model weights that are not shipped); use None")
        return (int(number(LOOPS.label, loops, LOOPS, whole=True)), float(number(FINAL.label, final_denoising_strength, FINAL)),
                DenoisingCurve(choice("Denoising strength curve", denoising_curve, CURVES)))

    def run(self, p, *args):
        loops, final, curve = self.read_args(*args)
        if not p.init_images:
            raise ScriptArgsError("Loopback needs an init image")
        strengths = loopback_strengths(loops, p.denoising_strength, final, curve)
        processing.check_processing(p)  # a bad form is answered before anything is generated
        processing.fix_seed(p)
        p.extra_generation_params = {**p.extra_generation_params, "Final denoising strength": final,
                                     "Denoising curve": curve.value}
        original, seed, runs = p.init_images[0].convert("RGB"), p.seed, p.n_iter
        shown = []
        for _ in range(runs):
            image, each, last = original, copy(p), None
            each.batch_size, each.n_iter = 1, 1
            for strength in strengths:
                if shared.state.interrupted:
                    return self._processed(p, shown)
                each = copy(each)
                each.init_images, each.denoising_strength, each.seed = [image], strength, seed
                processed = process_images(each)
                if not processed.images:
                    return self._processed(p, shown)
                last = (processed.images[0], processed.infotexts[0], processed.all_seeds[0])
                seed += 1  # A1111: the next loop's seed is this one's plus one, across batches too
                image = last[0]
                each.inpainting_fill = int(InpaintFill.ORIGINAL)  # later loops redraw from the previous output
                if runs == 1:
                    shown.append(last)
            if runs > 1 and last is not None:
                shown.append(last)
        return self._processed(p, shown)

    @staticmethod
    def _processed(p, shown):
        return Processed(p, [image for image, _, _ in shown], shown[0][2] if shown else p.seed,
                         shown[0][1] if shown else "", all_seeds=[seed for _, _, seed in shown],
                         infotexts=[text for _, text, _ in shown])
