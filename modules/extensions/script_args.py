"""Reading A1111's positional ``script_args`` for the built-in scripts (``scripts/``): each value is
checked so a bad one is a ScriptArgsError naming it; and writing a script's own result where the
saving settings put it."""

from __future__ import annotations

from typing import Any, Sequence

from modules.extensions.scripts import ScriptArg, ScriptArgsError


def number(label: str, value: Any, arg: ScriptArg, whole: bool = False) -> float:
    """A number within the argument's bounds (a whole one when ``whole``)."""
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ScriptArgsError(f"{label} must be {'a whole number' if whole else 'a number'}, got {value!r}")
    if (arg.minimum is not None and value < arg.minimum) or (arg.maximum is not None and value > arg.maximum):
        raise ScriptArgsError(f"{label} must be from {arg.minimum:g} to {arg.maximum:g}, got {value!r}")
    return value


def boolean(label: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ScriptArgsError(f"{label} must be true or false, got {value!r}")
    return value


def choice(label: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices`` by name, or by index as A1111's ``type="index"`` radios send it."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices):
        return choices[value]
    if isinstance(value, str):
        for each in choices:
            if each.casefold() == value.strip().casefold():
                return each
    raise ScriptArgsError(f"{label} must be one of {', '.join(choices)}, got {value!r}")


def save_sample(runtime: Any, params: Any, image: Any, infotext: str, seed: int, save: Any, kind: str) -> Any:
    """A script's own result (one the jobs did not write: a combined or grown image) written as a
    sample of ``kind`` when saving is on; its path, else None."""
    import datetime as dt

    from modules.infotext.files import filename_tokens, output_path, save_image
    from modules.runtime import save_options_from

    save = save or save_options_from(runtime.options.current, runtime.config.data_dir)
    if not save.images:
        return None
    tokens = filename_tokens(seed=seed, steps=params.steps, cfg=params.cfg_scale, sampler=params.sampler_name,
                             model_name="", model_hash="", prompt=params.prompt, width=image.width,
                             height=image.height, batch_number=0, now=dt.datetime.now())
    path = output_path(runtime.config.outputs_dir, kind, tokens, save.pattern or "[seed]", save.fmt, save.folder(kind))
    save_image(image, path, infotext, save.quality)
    return path


def save_script_grid(runtime: Any, image: Any, infotext: str, save: Any, kind: str) -> Any:
    """A script's grid written to the grids folder of ``kind`` when grid saving is on; its path, else None."""
    import datetime as dt

    from modules.infotext.files import grid_path, save_image
    from modules.runtime import save_options_from

    save = save or save_options_from(runtime.options.current, runtime.config.data_dir)
    if not save.grids:
        return None
    path = grid_path(runtime.config.outputs_dir, kind, dt.date.today().strftime("%Y-%m-%d"), save.fmt, save.folder(kind))
    save_image(image, path, infotext, save.quality)
    return path


def directions_arg(value: Any) -> list[str]:
    """The outpainting sides chosen, in A1111's order (a list, or comma-separated text)."""
    from modules.pipeline.outpaint import DIRECTIONS

    chosen = [side.strip() for side in value.split(",") if side.strip()] if isinstance(value, str) else value
    if not isinstance(chosen, (list, tuple)) or not chosen:
        raise ScriptArgsError(f"Outpainting direction must be a non-empty list of {', '.join(DIRECTIONS)}, got {value!r}")
    unknown = [each for each in chosen if each not in DIRECTIONS]
    if unknown:
        raise ScriptArgsError(f"Outpainting direction: unknown {unknown!r}; valid: {', '.join(DIRECTIONS)}")
    return [side for side in DIRECTIONS if side in chosen]


def process_each(p: Any, cells: Sequence[Any]) -> Any:
    """Each prepared processing object through ``process_images`` in turn (until an interrupt),
    gathered into one ``Processed`` on ``p``: the images, prompts, seeds and infotexts in order."""
    from modules import shared
    from modules.processing import Processed, process_images

    images, prompts, seeds, infotexts = [], [], [], []
    for cell in cells:
        if shared.state.interrupted:
            break
        processed = process_images(cell)
        images += processed.images
        prompts += processed.all_prompts
        seeds += processed.all_seeds
        infotexts += processed.infotexts
    return Processed(p, images, seeds[0] if seeds else p.seed, infotexts[0] if infotexts else "",
                     all_prompts=prompts, all_seeds=seeds, infotexts=infotexts)
