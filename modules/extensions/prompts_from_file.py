"""The built-in "Prompts from file or textbox" script (A1111 ``scripts/prompts_from_file.py``).

script_args in A1111's order: iterate seed every line, same random seed for all lines, insert
prompts at the ("start"/"end" of the form's prompt), the text. Each non-empty line is one
queued generation with the form's parameters and that line's ``--key value`` options
(``modules/pipeline/prompt_lines.py``); a line that cannot be read is an error naming it, and
nothing is queued.
"""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Any, Sequence

from modules.extensions.script_args import boolean, choice, filled
from modules.extensions.scripts import Script, ScriptArg, ScriptArgsError
from modules.pipeline.prompt_lines import PromptLineError, SeedPlan, line_seeds, parse_prompt_lines
from modules.sampling.catalog import resolve_sampler

if TYPE_CHECKING:
    from modules.params import Txt2ImgParams
    from modules.pipeline.generate import GeneratedImage, SaveOptions
    from modules.runtime import Runtime

POSITIONS = ("start", "end")
# A1111 option names that are ours under another name, or have no field here.
_RENAMED = {"styles": None, "prompt_for_display": None, "do_not_save_samples": None, "do_not_save_grid": None,
            "sampler_index": None, "restore_faces": None}


def _sampler_name(name: str) -> str | None:
    try:
        return resolve_sampler(name)[0].name
    except ValueError:
        return None


def line_params(params: "Txt2ImgParams", options: dict[str, Any], seed: int, position: str) -> "Txt2ImgParams":
    """The form's parameters with one line's options; the line's prompt goes before ("start") or
    after ("end") the form's prompt, as A1111's "Insert prompts at the" does."""
    changes = {key: value for key, value in options.items() if key not in _RENAMED}
    if options.get("styles"):
        changes["styles"] = tuple(s.strip() for s in options["styles"].split(",") if s.strip())
    if "prompt" in options and params.prompt:
        pair = (options["prompt"], params.prompt) if position == "start" else (params.prompt, options["prompt"])
        changes["prompt"] = " ".join(pair)
    changes.setdefault("seed", seed)
    return dataclasses.replace(params, **changes)


class PromptsFromFile(Script):
    def title(self) -> str:
        return "Prompts from file or textbox"

    def args_info(self) -> list[ScriptArg]:
        return [
            ScriptArg("Iterate seed every line", False),
            ScriptArg("Use same random seed for all lines", False),
            ScriptArg("Insert prompts at the", "start", choices=POSITIONS),
            ScriptArg("List of prompt inputs", ""),
        ]

    def plan(self, params: "Txt2ImgParams", args: Sequence[Any], rng: random.Random) -> list["Txt2ImgParams"]:
        """Every line's parameters, each validated, before anything is queued."""
        iterate, same, position, text = filled(self.title(), args, self.args_info())
        plan = SeedPlan(boolean("Iterate seed every line", iterate), boolean("Use same random seed for all lines", same))
        position = choice("Insert prompts at the", position, POSITIONS)
        if not isinstance(text, str):
            raise ScriptArgsError(f"List of prompt inputs must be text, got {text!r}")
        try:
            lines = parse_prompt_lines(text, _sampler_name)
        except PromptLineError as error:
            raise ScriptArgsError(f"List of prompt inputs: {error}") from None
        if not lines:
            raise ScriptArgsError("List of prompt inputs: no prompt given (every line is empty)")
        seeds = line_seeds(lines, params.seed, params.batch_size, params.n_iter, plan, rng)
        jobs = [line_params(params, options, seed, position) for options, seed in zip(lines, seeds)]
        for each in jobs:
            each.validate()
        return jobs

    def run(self, runtime: "Runtime", params: "Txt2ImgParams", args: Sequence[Any], *,
            save: "SaveOptions | None" = None) -> list["GeneratedImage"]:
        results: list[GeneratedImage] = []
        for each in self.plan(params, args, random.Random()):
            job = runtime.submit(each, save=save)
            results += job.future.result()
            if job.interrupted:
                break
        return results
