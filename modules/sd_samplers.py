"""A1111 compatibility surface: ``modules.sd_samplers`` (``all_samplers``, ``all_samplers_map``,
``samplers``, ``visible_sampler_names``), built from our sampler catalog."""

from __future__ import annotations

from dataclasses import dataclass, field

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
