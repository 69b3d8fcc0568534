"""The built-in "Loopback" script (A1111 ``scripts/loopback.py``), img2img only.

script_args in A1111's order: loops, final denoising strength, denoising strength curve
("Aggressive", "Linear", "Lazy"), append interrogated prompt at each iteration ("None" only: no
interrogator model can be shipped). Each loop is one queued img2img job whose input is the
previous loop's output and whose seed is the previous one's plus one; the strength moves from the
form's value to the final one along the curve (``modules/pipeline/loopback.py``). With one batch
every loop's image is returned; with a batch count n, the loops run n times from the form's image
and the last image of each run is returned (as A1111 does).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

from modules.extensions.script_args import choice, filled, first_image, number, run_job
from modules.extensions.scripts import Script, ScriptArg, ScriptArgsError
from modules.params import InpaintFill
from modules.pipeline.hooks import ExtraFields, HookChain
from modules.pipeline.loopback import DenoisingCurve, loopback_strengths
from modules.sampling.noise import resolve_seed

if TYPE_CHECKING:
    from modules.params import Img2ImgParams
    from modules.pipeline.generate import GeneratedImage, SaveOptions
    from modules.runtime import Runtime

INTERROGATION_CHOICES = ("None", "CLIP", "DeepBooru")


@dataclasses.dataclass(frozen=True)
class LoopbackArgs:
    loops: int
    final_denoising_strength: float
    curve: DenoisingCurve


class Loopback(Script):
    def title(self) -> str:
        return "Loopback"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def args_info(self) -> list[ScriptArg]:
        return [
            ScriptArg("Loops", 4, minimum=1, maximum=32, step=1),
            ScriptArg("Final denoising strength", 0.5, minimum=0, maximum=1, step=0.01),
            ScriptArg("Denoising strength curve", "Linear", choices=tuple(c.value for c in DenoisingCurve)),
            ScriptArg("Append interrogated prompt at each iteration", "None", choices=INTERROGATION_CHOICES),
        ]

    def read_args(self, args: Sequence[Any]) -> LoopbackArgs:
        info = self.args_info()
        loops, final, curve, interrogation = filled(self.title(), args, info)
        interrogation = choice(info[3].label, interrogation, INTERROGATION_CHOICES)
        if interrogation != "None":
            raise ScriptArgsError(f"{info[3].label}: interrogation is not available ({interrogation} needs "
                                  "model weights that are not shipped); use None")
        return LoopbackArgs(int(number(info[0].label, loops, info[0], whole=True)),
                            float(number(info[1].label, final, info[1])),
                            DenoisingCurve(choice(info[2].label, curve, info[2].choices)))

    def run(self, runtime: "Runtime", params: "Img2ImgParams", args: Sequence[Any], *,
            save: "SaveOptions | None" = None) -> list["GeneratedImage"]:
        from modules.runtime import PreparedJob  # the runtime imports the scripts' registry

        loop = self.read_args(args)
        original = first_image(self.title(), params)
        strengths = loopback_strengths(loop.loops, params.denoising_strength, loop.final_denoising_strength, loop.curve)
        fields = {"Final denoising strength": loop.final_denoising_strength, "Denoising curve": loop.curve.value}
        seed = resolve_seed(params.seed)
        base = dataclasses.replace(params, batch_size=1, n_iter=1)
        base.validate()  # a bad form is answered before anything is queued
        results: list[GeneratedImage] = []
        for _ in range(params.n_iter):
            image, each = original, base
            for strength in strengths:
                each = dataclasses.replace(each, init_images=(image,), denoising_strength=strength, seed=seed)
                prepared = runtime.prepare_job(each)
                job = PreparedJob(prepared.params, HookChain([prepared.hooks, ExtraFields(fields)]))
                images, interrupted = run_job(runtime, job, save)
                if interrupted or not images:
                    return results
                seed += 1  # A1111: p.seed = processed.seed + 1, across batches too
                image = images[0].image
                # after the first loop the mask redraws from the previous output ("original")
                each = dataclasses.replace(each, inpainting_fill=InpaintFill.ORIGINAL)
                if params.n_iter == 1:
                    results.append(images[0])
            if params.n_iter > 1:
                results.append(images[0])
        return results
