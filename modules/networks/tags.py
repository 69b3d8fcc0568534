"""Extra-network tags in prompts: ``<lora:name:te[:unet[:dyn]]>``, ``<hypernet:name:mult>``.

A1111 (``modules/extra_networks.py``) matches ``<(\\w+):([^>]+)>``, strips the
tags from the text that is encoded, keeps them in the infotext prompt, and
splits the arguments on ``:``; an argument ``key=value`` is named, the rest are
positional. We follow that so prompts written for A1111 mean the same here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

EXTRA_NETWORK_TAG = re.compile(r"<(\w+):([^>]+)>")


@dataclass(frozen=True)
class ExtraNetworkTag:
    kind: str  # "lora", "hypernet", ...
    name: str
    positional: tuple[str, ...] = ()  # the arguments after the name, in order
    named: Mapping[str, str] = field(default_factory=dict)  # key=value arguments (te=, unet=, dyn=)


def parse_tag(kind: str, body: str) -> ExtraNetworkTag:
    name, *arguments = body.split(":")
    positional = tuple(a for a in arguments if "=" not in a)
    named = dict(a.split("=", 1) for a in arguments if "=" in a)
    return ExtraNetworkTag(kind=kind, name=name.strip(), positional=positional, named=named)


def extract_extra_networks(prompt: str) -> tuple[str, list[ExtraNetworkTag]]:
    """(prompt without the tags, the tags in order of appearance)."""
    tags = [parse_tag(m.group(1), m.group(2)) for m in EXTRA_NETWORK_TAG.finditer(prompt)]
    return EXTRA_NETWORK_TAG.sub("", prompt), tags
