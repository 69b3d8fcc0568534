"""Values that are read again at every page load (settings, current checkpoint, UI defaults).

They are gathered into one load event so that the page can mark itself ready
(``<body data-sd-ready>``) once every value has arrived; a value typed before
then could otherwise be overwritten by a late answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr

# Returns {component: value or gr.update(...)} for the components it was registered with.
Loader = Callable[[], dict[Any, Any]]


@dataclass
class PageLoad:
    outputs: list = field(default_factory=list)
    loaders: list[Loader] = field(default_factory=list)

    def add(self, components: list, loader: Loader) -> None:
        self.outputs += components
        self.loaders.append(loader)

    def wire(self, blocks: gr.Blocks) -> None:
        def load() -> dict:
            updates: dict = {}
            for loader in self.loaders:
                updates.update(loader())
            return updates

        blocks.load(load, outputs=self.outputs, show_progress="hidden").then(
            None, js="() => { document.body.dataset.sdReady = '1'; }")
