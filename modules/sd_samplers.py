"""A1111 compatibility surface: ``modules.sd_samplers`` (``all_samplers``, ``all_samplers_map``,
``samplers``, ``visible_sampler_names``, ``set_samplers``, ``sample_to_image``, and
``create_sampler``, which refuses with the reason), built from our sampler catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modules.sampling import catalog


@dataclass(frozen=True)
class SamplerData:
    """A1111's ``SamplerData`` namedtuple fields: name, constructor, aliases, options."""

    name: str
    constructor: object = None
    aliases: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)


all_samplers = [SamplerData(spec.name, None, tuple(spec.aliases), {}) for spec in catalog.SAMPLERS]
all_samplers_map = {sampler.name: sampler for sampler in all_samplers}
samplers = all_samplers
samplers_for_img2img = all_samplers
samplers_map = {alias.lower(): s.name for s in all_samplers for alias in (s.name, *s.aliases)}


def visible_sampler_names() -> list[str]:
    return [s.name for s in all_samplers]


def find_sampler_config(name: str) -> SamplerData | None:
    return all_samplers_map.get(name) or all_samplers_map.get(samplers_map.get((name or "").lower(), ""))


def set_samplers() -> None:
    """The lists above are fixed by the catalog; A1111 rebuilds its hidden-sampler lists here."""


def create_sampler(name: str, model: Any = None) -> Any:
    """Refused with the reason: A1111 returns a sampler object that drives its CompVis model
    wrapper (``sampler.sample(p, x, conditioning, ...)``); here sampling runs inside the engine's
    job, which picks the sampler from ``p.sampler_name``. An unknown name is named first."""
    config = find_sampler_config(name)
    if config is None:
        raise ValueError(f"bad sampler name: {name!r}; known: {', '.join(visible_sampler_names())}")
    raise NotImplementedError(
        f"sd_samplers.create_sampler({config.name!r}): sampler objects are not exposed here; set "
        "p.sampler_name and call processing.process_images(p) (the engine samples inside the job)")


def sample_to_image(samples: Any, index: int = 0, approximation: Any = None) -> Any:
    """Latents [B, 4, h, w] -> the ``index``-th image decoded by the current model's full VAE."""
    from PIL import Image

    from modules.processing import decode_first_stage

    pixels = decode_first_stage(None, samples[index:index + 1])[0]
    array = ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array)
