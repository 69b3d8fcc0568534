""""Prompts from file or textbox": one job per non-empty line, either a plain prompt or A1111's
command-line style options (``--prompt "a cat" --steps 20 --seed 5``), as its
``scripts/prompts_from_file.py`` reads them: ``--prompt`` and ``--negative_prompt`` take every
word up to the next ``--option``; every other option takes one value, typed per option.

We differ where A1111 is silent or unsafe: a line it cannot read (unknown option, missing or
mistyped value, unbalanced quote) is an error naming the line, where A1111 prints a warning
and uses the whole line as the prompt; output folders (``--outpath_samples``/``--outpath_grids``)
are refused, since only the operator chooses where files are written; ``--restore_faces true``
is refused because no face restorer can be shipped.
"""

from __future__ import annotations

import random
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

RANDOM_SEED_LIMIT = 4294967294  # A1111: random.randrange(4294967294)


def _boolean(text: str) -> bool:
    return text == "true"  # A1111: anything else is False


# A1111's option names and how their value is read.
OPTION_TYPES: Mapping[str, Callable[[str], Any]] = {
    "prompt_for_display": str, "prompt": str, "negative_prompt": str, "styles": str,
    "seed": int, "subseed_strength": float, "subseed": int, "seed_resize_from_h": int, "seed_resize_from_w": int,
    "sampler_index": int, "sampler_name": str, "batch_size": int, "n_iter": int, "steps": int, "cfg_scale": float,
    "width": int, "height": int, "restore_faces": _boolean, "tiling": _boolean,
    "do_not_save_samples": _boolean, "do_not_save_grid": _boolean,
}
_REFUSED = {
    "outpath_samples": "output folders are chosen by the operator's settings, not by a prompt line",
    "outpath_grids": "output folders are chosen by the operator's settings, not by a prompt line",
    "sd_model": "not a per-line option (A1111 refuses it too); choose the checkpoint in the form",
}
_WORDS_OPTIONS = ("prompt", "negative_prompt")


class PromptLineError(ValueError):
    """A line that cannot be read; the message names the line number and the reason."""

    def __init__(self, number: int, line: str, reason: str):
        super().__init__(f"line {number} ({line[:60]!r}): {reason}")
        self.number = number
        self.reason = reason


def parse_options(line: str, resolve_sampler: Callable[[str], str | None] = lambda name: name) -> dict[str, Any]:
    """One line's ``--key value`` options; ValueError with the reason when it cannot be read.
    ``resolve_sampler`` maps a sampler name or alias to its canonical name (None = unknown)."""
    args = shlex.split(line)
    found: dict[str, Any] = {}
    position = 0
    while position < len(args):
        arg = args[position]
        if not arg.startswith("--"):
            raise ValueError(f"expected an --option, got {arg!r}")
        key = arg[2:]
        if position + 1 >= len(args):
            raise ValueError(f"missing value for {arg}")
        if key in _WORDS_OPTIONS:
            words = [args[position + 1]]
            position += 2
            while position < len(args) and not args[position].startswith("--"):
                words.append(args[position])
                position += 1
            found[key] = " ".join(words)
            continue
        if key in _REFUSED:
            raise ValueError(f"{arg}: {_REFUSED[key]}")
        if key not in OPTION_TYPES:
            raise ValueError(f"unknown option {arg}; known: {', '.join('--' + k for k in OPTION_TYPES)}")
        found[key] = _typed(key, args[position + 1], resolve_sampler)
        position += 2
    return found


def _typed(key: str, text: str, resolve_sampler: Callable[[str], str | None]) -> Any:
    try:
        value = OPTION_TYPES[key](text)
    except ValueError:
        kind = {int: "a whole number", float: "a number"}.get(OPTION_TYPES[key], "valid")
        raise ValueError(f"--{key} must be {kind}, got {text!r}") from None
    if key == "sampler_name":
        value = resolve_sampler(text)
        if value is None:
            raise ValueError(f"--sampler_name: unknown sampler {text!r}")
    if key == "restore_faces" and value:
        raise ValueError("--restore_faces: no face restorer is available (its model weights cannot be shipped)")
    return value


def parse_prompt_lines(text: str, resolve_sampler: Callable[[str], str | None] = lambda name: name) -> list[dict[str, Any]]:
    """Each non-empty line's options (a line without ``--`` is just the prompt)."""
    jobs = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if "--" not in line:
            jobs.append({"prompt": line})
            continue
        try:
            jobs.append(parse_options(line, resolve_sampler))
        except ValueError as error:  # shlex's "No closing quotation" included
            raise PromptLineError(number, line, str(error)) from None
    return jobs


@dataclass(frozen=True)
class SeedPlan:
    iterate_every_line: bool = False  # "Iterate seed every line"
    same_seed_for_all: bool = False  # "Use same random seed for all lines"


def line_seeds(jobs: Sequence[Mapping[str, Any]], seed: int, batch_size: int, n_iter: int, plan: SeedPlan,
               rng: random.Random) -> list[int]:
    """The seed each line starts from unless it sets ``--seed`` itself. With either box ticked a
    -1 seed is drawn once; "iterate" then moves on by the form's images per line
    (batch size x batch count), as A1111 does."""
    if (plan.iterate_every_line or plan.same_seed_for_all) and seed == -1:
        seed = rng.randrange(RANDOM_SEED_LIMIT)
    seeds = []
    for job in jobs:
        seeds.append(job.get("seed", seed))
        if plan.iterate_every_line:
            seed += batch_size * n_iter
    return seeds
