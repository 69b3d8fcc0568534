"""Prompt matrix: the prompt split on ``|``, one image for every combination of its optional parts.

Written on the A1111 script API and loaded by the extension loader from the program's
``scripts/`` folder. ``script_args`` in A1111 v1.10.1's order: put variable parts at start of
prompt, use different seed for each picture, select prompt ("positive"/"negative"), select
joining char ("comma"/"space"), grid margins (px). The combinations are the engine's
(``modules.pipeline.prompt_matrix``); each is one generation of one image (batch size and count
are the matrix's), with the same seed unless "different seed" is on (then image i uses seed + i).
"""

from __future__ import annotations

from copy import copy

import gradio as gr

from modules import processing, scripts
from modules.extensions.script_args import process_each
from modules.pipeline.prompt_matrix import DELIMITERS, MARGIN_RANGE, PROMPT_TYPES, matrix_prompts, read_args


class Script(scripts.Script):
    def title(self):
        return "Prompt matrix"

    def ui(self, is_img2img):
        put_at_start = gr.Checkbox(False, label="Put variable parts at start of prompt",
                                   elem_id=self.elem_id("put_at_start"))
        different_seeds = gr.Checkbox(False, label="Use different seed for each picture",
                                      elem_id=self.elem_id("different_seeds"))
        prompt_type = gr.Radio(list(PROMPT_TYPES), value="positive", label="Select prompt",
                               elem_id=self.elem_id("prompt_type"))
        delimiter = gr.Radio(list(DELIMITERS), value="comma", label="Select joining char",
                             elem_id=self.elem_id("variations_delimiter"))
        margin = gr.Slider(*MARGIN_RANGE, value=0, step=2, label="Grid margins (px)", elem_id=self.elem_id("margin_size"))
        return [put_at_start, different_seeds, prompt_type, delimiter, margin]

    def plan(self, p, *args):
        """Each combination's own ``p``, in A1111's order; the seed is drawn once for all of them."""
        matrix = read_args(args)
        field = "prompt" if matrix.prompt_type == "positive" else "negative_prompt"
        prompts = matrix_prompts(getattr(p, field), matrix.put_at_start, DELIMITERS[matrix.variations_delimiter])
        processing.fix_seed(p)
        cells = []
        for index, prompt in enumerate(prompts):
            pc = copy(p)
            pc.styles, pc.override_settings = list(p.styles), dict(p.override_settings)
            pc.extra_generation_params = dict(p.extra_generation_params)
            setattr(pc, field, prompt)
            pc.seed = p.seed + (index if matrix.different_seeds else 0)
            pc.batch_size, pc.n_iter = 1, 1
            processing.check_processing(pc)  # every combination is checked before the first is made
            cells.append(pc)
        return cells

    def run(self, p, *args):
        return process_each(p, self.plan(p, *args))
