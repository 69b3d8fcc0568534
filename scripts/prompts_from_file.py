"""Prompts from file or textbox: one generation per non-empty line, a plain prompt or A1111's
``--key value`` options (``--prompt "a cat" --steps 20 --seed 5``).

Written on the A1111 script API and loaded by the extension loader from the program's
``scripts/`` folder. ``script_args`` in A1111 v1.10.1's order: iterate seed every line, use same
random seed for all lines, insert prompts at the ("start"/"end" of the form's prompt), the list
of prompt inputs. Reading the lines and planning their seeds is the engine's
(``modules.pipeline.prompt_lines``); a line that cannot be read is an error naming it (A1111
prints a warning and uses the line as a prompt), and nothing is generated.
"""

from __future__ import annotations

import random
from copy import copy

import gradio as gr

from modules import processing, scripts
from modules.extensions.script_args import boolean, choice, process_each
from modules.pipeline.prompt_lines import PromptLineError, SeedPlan, line_seeds, parse_prompt_lines
from modules.sampling.catalog import resolve_sampler
from modules.scripts import ScriptArgsError

POSITIONS = ("start", "end")
# options A1111 reads that set nothing here: a display-only prompt, the old sampler index, and
# face restoration (refused by the line reader when asked for)
_IGNORED = ("prompt_for_display", "sampler_index", "restore_faces")


def sampler_name(name):
    """The canonical name of a sampler name or alias, or None when there is no such sampler."""
    try:
        return resolve_sampler(name)[0].name
    except ValueError:
        return None


def load_prompt_file(file):
    """An uploaded file's lines into the text box (the upload itself is cleared)."""
    if file is None:
        return None, gr.update()
    text = file.decode("utf-8-sig", errors="replace") if isinstance(file, bytes) else str(file)
    return None, "\n".join(line.strip() for line in text.splitlines())


def apply_line(p, options, seed, position):
    """A copy of ``p`` with one line's options; the line's prompt goes before ("start") or after
    ("end") the form's prompt, as A1111's "Insert prompts at the" does."""
    pc = copy(p)
    pc.styles = list(p.styles)
    pc.override_settings = dict(p.override_settings)
    pc.extra_generation_params = dict(p.extra_generation_params)
    pc.seed = seed
    for key, value in options.items():
        if key in _IGNORED:
            continue
        if key == "styles":
            pc.styles = [s.strip() for s in value.split(",") if s.strip()]
        elif key == "prompt" and p.prompt:
            pc.prompt = f"{value} {p.prompt}" if position == "start" else f"{p.prompt} {value}"
        else:
            setattr(pc, key, value)
    return pc


class Script(scripts.Script):
    def title(self):
        return "Prompts from file or textbox"

    def ui(self, is_img2img):
        iterate = gr.Checkbox(False, label="Iterate seed every line", elem_id=self.elem_id("checkbox_iterate"))
        same = gr.Checkbox(False, label="Use same random seed for all lines",
                           elem_id=self.elem_id("checkbox_iterate_batch"))
        position = gr.Radio(list(POSITIONS), value="start", label="Insert prompts at the",
                            elem_id=self.elem_id("prompt_position"))
        text = gr.Textbox(label="List of prompt inputs", lines=1, elem_id=self.elem_id("prompt_txt"))
        upload = gr.File(label="Upload prompt inputs", type="binary", elem_id=self.elem_id("file"))
        upload.change(load_prompt_file, inputs=[upload], outputs=[upload, text], show_progress="hidden")
        return [iterate, same, position, text]

    def plan(self, p, checkbox_iterate=False, checkbox_iterate_batch=False, prompt_position="start",
             prompt_txt="", *, rng=None):
        """Every line's own ``p``, in order; a line that cannot be read is refused before any is made."""
        seeds_plan = SeedPlan(boolean("Iterate seed every line", checkbox_iterate),
                              boolean("Use same random seed for all lines", checkbox_iterate_batch))
        position = choice("Insert prompts at the", prompt_position, POSITIONS)
        if not isinstance(prompt_txt, str):
            raise ScriptArgsError(f"List of prompt inputs must be text, got {prompt_txt!r}")
        try:
            lines = parse_prompt_lines(prompt_txt, sampler_name)
        except PromptLineError as error:
            raise ScriptArgsError(f"List of prompt inputs: {error}") from None
        if not lines:
            raise ScriptArgsError("List of prompt inputs: no prompt given (every line is empty)")
        seeds = line_seeds(lines, p.seed, p.batch_size, p.n_iter, seeds_plan, rng or random.Random())
        planned = [apply_line(p, options, seed, position) for options, seed in zip(lines, seeds)]
        for pc in planned:  # every line is checked before the first is made
            processing.check_processing(pc)
        return planned

    def run(self, p, *args):
        return process_each(p, self.plan(p, *args))
