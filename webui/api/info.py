"""The ``info`` JSON string of a generation response (A1111's ``Processed.js()`` keys)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Sequence

from modules.infotext.parse import parse_infotext
from modules.params import Txt2ImgParams
from modules.pipeline.generate import VERSION, GeneratedImage
from modules.sampling.catalog import resolve_sampler


def generation_info(params: Txt2ImgParams, results: Sequence[GeneratedImage], infotexts: Sequence[str],
                    index_of_first_image: int, now: dt.datetime) -> dict[str, Any]:
    """``infotexts`` are those of the returned images (a grid's first); the rest describes the images."""
    parsed = [parse_infotext(r.infotext) for r in results]
    first = parsed[0] if parsed else {}
    seeds = [r.seed for r in results]
    subseeds = [r.subseed for r in results]
    return {
        "prompt": params.prompt, "all_prompts": [p["Prompt"] for p in parsed],
        "negative_prompt": params.negative_prompt, "all_negative_prompts": [p["Negative prompt"] for p in parsed],
        "seed": seeds[0] if seeds else params.seed, "all_seeds": seeds,
        "subseed": subseeds[0] if subseeds else params.subseed, "all_subseeds": subseeds,
        "subseed_strength": params.subseed_strength, "width": params.width, "height": params.height,
        "sampler_name": resolve_sampler(params.sampler_name)[0].name, "cfg_scale": params.cfg_scale,
        "steps": params.steps, "batch_size": params.batch_size, "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": first.get("Model"), "sd_model_hash": first.get("Model hash"),
        "sd_vae_name": first.get("VAE"), "sd_vae_hash": first.get("VAE hash"),
        "seed_resize_from_w": params.seed_resize_from_w or -1, "seed_resize_from_h": params.seed_resize_from_h or -1,
        "denoising_strength": params.denoising_strength, "extra_generation_params": extra_fields(first),
        "index_of_first_image": index_of_first_image, "infotexts": list(infotexts), "styles": list(params.styles),
        "job_timestamp": now.strftime("%Y%m%d%H%M%S"), "clip_skip": params.clip_skip or 1,
        "is_using_inpainting_conditioning": False, "version": VERSION,
    }


_MAIN_KEYS = {"Prompt", "Negative prompt", "Steps", "Sampler", "CFG scale", "Seed", "Size", "Size-1", "Size-2",
              "Model hash", "Model", "VAE hash", "VAE", "Version"}


def extra_fields(parsed: dict[str, str]) -> dict[str, str]:
    """The infotext fields beyond the main ones (schedule type, denoising, hires, ...)."""
    return {key: value for key, value in parsed.items() if key not in _MAIN_KEYS and key[-2:] not in ("-1", "-2")}


def info_json(*args: Any) -> str:
    return json.dumps(generation_info(*args), ensure_ascii=False)
