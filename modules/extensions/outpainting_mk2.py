"""The built-in "Outpainting mk2" script (A1111 ``scripts/outpainting_mk_2.py``), img2img only.

script_args in A1111's order: info (ignored), pixels to expand, mask blur, outpainting
direction(s) (a list of "left", "right", "up", "down"), fall-off exponent (lower = more
detail), colour variation. One side at a time (in that order), the strip is filled with noise
matched to the image (``modules/pipeline/outpaint.py``) and redrawn by an img2img inpaint job
of at most the form's size; the result grows by ``pixels`` on each chosen side.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

from modules.extensions.script_args import filled, first_image, number, run_job, save_sample
from modules.extensions.scripts import Script, ScriptArg, ScriptArgsError
from modules.params import InpaintFill
from modules.pipeline.generate import SaveOptions
from modules.pipeline.outpaint import DIRECTIONS, mk2_paste_back, mk2_step
from modules.sampling.noise import resolve_seed

if TYPE_CHECKING:
    from modules.params import Img2ImgParams
    from modules.pipeline.generate import GeneratedImage
    from modules.runtime import Runtime


NO_SAVING = SaveOptions(images=False, grids=False)  # each side's crop is a step, not a result


def directions_arg(value: Any) -> list[str]:
    """The chosen sides in A1111's order (the page's text box sends them comma-separated)."""
    chosen = [side.strip() for side in value.split(",") if side.strip()] if isinstance(value, str) else value
    if not isinstance(chosen, (list, tuple)) or not chosen:
        raise ScriptArgsError(f"Outpainting direction must be a non-empty list of {', '.join(DIRECTIONS)}, got {value!r}")
    unknown = [each for each in chosen if each not in DIRECTIONS]
    if unknown:
        raise ScriptArgsError(f"Outpainting direction: unknown {unknown!r}; valid: {', '.join(DIRECTIONS)}")
    return [side for side in DIRECTIONS if side in chosen]


class OutpaintingMk2(Script):
    def title(self) -> str:
        return "Outpainting mk2"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def args_info(self) -> list[ScriptArg]:
        return [
            ScriptArg("Info", None),
            ScriptArg("Pixels to expand", 128, minimum=8, maximum=256, step=8),
            ScriptArg("Mask blur", 8, minimum=0, maximum=64, step=1),
            ScriptArg("Outpainting direction", ", ".join(DIRECTIONS)),
            ScriptArg("Fall-off exponent (lower=higher detail)", 1.0, minimum=0.0, maximum=4.0, step=0.01),
            ScriptArg("Color variation", 0.05, minimum=0.0, maximum=1.0, step=0.01),
        ]

    def read(self, args: Sequence[Any]) -> tuple[int, int, list[str], float, float]:
        info = self.args_info()
        _, pixels, blur, directions, noise_q, variation = filled(self.title(), args, info)
        return (int(number("Pixels to expand", pixels, info[1], whole=True)),
                int(number("Mask blur", blur, info[2], whole=True)), directions_arg(directions),
                number("Fall-off exponent", noise_q, info[4]), number("Color variation", variation, info[5]))

    def run(self, runtime: "Runtime", params: "Img2ImgParams", args: Sequence[Any], *,
            save: "SaveOptions | None" = None) -> list["GeneratedImage"]:
        pixels, blur, directions, noise_q, variation = self.read(args)
        image = first_image(self.title(), params)
        base = dataclasses.replace(params, seed=resolve_seed(params.seed), batch_size=1, n_iter=1, mask_blur=blur,
                                   inpainting_fill=InpaintFill.ORIGINAL, inpaint_full_res=False)
        last = None
        for side in directions:
            step = mk2_step(image, side, pixels, blur, noise_q, variation, (params.width, params.height))
            each = dataclasses.replace(base, init_images=(step.init,), mask=step.mask,
                                       width=step.init.width, height=step.init.height, resize_mode=0)
            images, interrupted = run_job(runtime, each.validate(), NO_SAVING)
            if interrupted or not images:
                return images
            last = images[0]
            image = mk2_paste_back(step, last.image.resize(step.init.size))
        path = save_sample(runtime, params, image, last.infotext, last.seed, save, "img2img-images")
        return [dataclasses.replace(last, image=image, path=path)]
