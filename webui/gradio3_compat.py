"""A1111 compatibility surface: the Gradio 3 idioms that most A1111 extensions were written with,
kept working on the Gradio this app runs (DESIGN §8).

This is the only module allowed to adapt Gradio. ``install()`` runs once, before extensions are
imported and their ``ui()`` is built, and adds only what Gradio 3 had and later versions removed:

- ``gr.Textbox.update(value=..., visible=...)`` (every component and layout): Gradio 3's per-class
  ``update`` is the generic ``gr.update``, the dict a handler returns to change a component;
- ``component.style(...)``: Gradio 3's styling call, mapped to the constructor properties that
  replaced it (``grid`` → ``columns``, ``height``, ``container``, ``full_width`` → ``scale``,
  ``equal_height``, ``preview``, ``object_fit``); the others (``rounded``, ``margin``, ``border``,
  ``mobile_collapse``, ``size``) only styled Gradio 3's own CSS and are dropped;
- ``_js=`` on event listeners and ``Blocks.load``: renamed ``js=``; ``show_progress=True/False``
  becomes ``"full"``/``"hidden"``;
- ``gr.Box`` (now ``gr.Group``) and ``gr.Variable`` (now ``gr.State``);
- ``gr.Image(source=..., tool=..., shape=..., brush_radius=...)``: ``source`` becomes
  ``sources=[source]``; the sketch-tool keywords are dropped (the image is still an image input).

Nothing here changes how this app's own UI, written for current Gradio, behaves.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import gradio as gr
from gradio.blocks import Block, BlockContext, Blocks
from gradio.components.base import Component

# Gradio 3 ``.style()`` keywords and the property each became; None = no longer exists.
STYLE_PROPERTIES: dict[str, str | None] = {
    "grid": "columns", "height": "height", "container": "container", "equal_height": "equal_height",
    "preview": "preview", "object_fit": "object_fit", "full_width": "scale",
    "rounded": None, "margin": None, "border": None, "mobile_collapse": None, "size": None,
}
IMAGE_SKETCH_KEYWORDS = ("tool", "shape", "brush_radius", "brush_color", "mask_opacity", "invert_colors")
_MARK = "_gradio3_compat"


def install() -> None:
    """Adds the Gradio 3 idioms; a second call does nothing."""
    if getattr(gr, _MARK, False):
        return
    for cls in _block_classes():
        if "update" not in vars(cls) and not hasattr(cls, "update"):
            cls.update = staticmethod(_update)
        for name in _event_names(cls):
            if name in vars(cls):
                setattr(cls, name, _accepting_gradio3_keywords(vars(cls)[name]))
    Block.style = _style
    Blocks.load = _accepting_gradio3_keywords(Blocks.load)
    gr.Image.__init__ = _image_init(gr.Image.__init__)
    gr.Box = gr.Group
    gr.Variable = gr.State
    setattr(gr, _MARK, True)


def _update(**changes: Any) -> dict:
    return gr.update(**changes)


def _block_classes() -> list[type]:
    found, pending = [], [Component, BlockContext]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _event_names(cls: type) -> list[str]:
    return [event if isinstance(event, str) else event.event_name for event in getattr(cls, "EVENTS", ())]


def gradio3_listener_keywords(kwargs: dict[str, Any]) -> dict[str, Any]:
    """An event listener's Gradio 3 keywords in today's spelling."""
    kwargs = dict(kwargs)
    if "_js" in kwargs:
        kwargs["js"] = kwargs.pop("_js")
    if isinstance(kwargs.get("show_progress"), bool):
        kwargs["show_progress"] = "full" if kwargs["show_progress"] else "hidden"
    return kwargs


def _accepting_gradio3_keywords(listener: Callable) -> Callable:
    if getattr(listener, _MARK, False):
        return listener

    @functools.wraps(listener)
    def listen(*args: Any, **kwargs: Any) -> Any:
        return listener(*args, **gradio3_listener_keywords(kwargs))

    setattr(listen, _MARK, True)
    return listen


def _style(self: Block, **styles: Any) -> Block:
    """Gradio 3's ``.style(...)``: each keyword set as the property that replaced it, if the block
    has it; returns the block, so ``gr.Gallery(...).style(grid=4)`` still chains."""
    for key, value in styles.items():
        name = STYLE_PROPERTIES.get(key)
        if name == "scale" and isinstance(value, bool):
            value = 1 if value else None
        if name == "columns" and isinstance(value, (list, tuple)):
            value = value[-1]  # Gradio 3 took one count per breakpoint; the widest is the layout
        if name is not None and hasattr(self, name):
            setattr(self, name, value)
    return self


def _image_init(init: Callable) -> Callable:
    if getattr(init, _MARK, False):
        return init

    @functools.wraps(init)
    def image_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if "source" in kwargs:
            source = kwargs.pop("source")
            kwargs.setdefault("sources", [source] if source else None)
        for key in IMAGE_SKETCH_KEYWORDS:
            kwargs.pop(key, None)
        init(self, *args, **kwargs)

    setattr(image_init, _MARK, True)
    return image_init
