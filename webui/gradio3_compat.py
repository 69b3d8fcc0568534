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
  ``sources=[source]``; constructor keywords a component no longer takes are dropped, as A1111's
  own Gradio layer drops them (``tooltip`` included);
- ``visible=False`` in extensions' UI code (``extension_ui``): Gradio 3 still put such a block in the
  page, hidden, and extensions talk to their Python through hidden textboxes and buttons they find
  by element id (sd-dynamic-prompts' wildcards manager); current Gradio leaves it out unless it is
  ``visible="hidden"``, which is what it becomes;
- component hooks: ``script_callbacks.on_before_component``/``on_after_component`` callbacks, and
  the ``before_component``/``after_component`` methods (and ``on_before_component(callback,
  elem_id=...)`` registrations) of the scripts of the tab being built (``building_tab``), are
  called around every component's creation with its keyword arguments, as A1111 calls them.

Nothing here changes how this app's own UI, written for current Gradio, behaves.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import traceback
from typing import Any, Callable, Iterator

import gradio as gr
from gradio.blocks import Block, BlockContext, Blocks
from gradio.components.base import Component

from modules import script_callbacks

# Gradio 3 ``.style()`` keywords and the property each became; None = no longer exists.
STYLE_PROPERTIES: dict[str, str | None] = {
    "grid": "columns", "height": "height", "container": "container", "equal_height": "equal_height",
    "preview": "preview", "object_fit": "object_fit", "full_width": "scale",
    "rounded": None, "margin": None, "border": None, "mobile_collapse": None, "size": None,
}
_MARK = "_gradio3_compat"


def install() -> None:
    """Adds the Gradio 3 idioms; a second call does nothing."""
    if getattr(gr, _MARK, False):
        return
    for cls in _block_classes():
        if not hasattr(cls, "update"):
            cls.update = staticmethod(_update)
        for name in _event_names(cls):
            if name in vars(cls):
                setattr(cls, name, _accepting_gradio3_keywords(vars(cls)[name]))
        if "__init__" in vars(cls):
            cls.__init__ = _forgiving_init(cls.__init__)
    Block.style = _style
    Blocks.load = _accepting_gradio3_keywords(Blocks.load)
    Component.__init__ = _hooked_component_init(Component.__init__)
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


def _forgiving_init(init: Callable) -> Callable:
    """A constructor that takes Gradio 3's spelling: ``source`` as ``sources``, and keywords it no
    longer has dropped (A1111's layer does the same)."""
    if getattr(init, _MARK, False):
        return init
    accepted = inspect.signature(init).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())

    @functools.wraps(init)
    def forgiving(self: Any, *args: Any, **kwargs: Any) -> None:
        if _extension_depth and kwargs.get("visible") is False and "visible" in accepted:
            kwargs["visible"] = "hidden"
        if "source" in kwargs and "sources" in accepted and "source" not in accepted:
            source = kwargs.pop("source")
            kwargs.setdefault("sources", [source] if source else None)
        if not takes_any:
            kwargs = {key: value for key, value in kwargs.items() if key in accepted}
        init(self, *args, **kwargs)

    setattr(forgiving, _MARK, True)
    return forgiving


# How deep inside extensions' UI code the page build is (their ui(), their on_ui_tabs callbacks).
_extension_depth: list[None] = []


@contextlib.contextmanager
def extension_ui() -> Iterator[None]:
    """While extensions' code builds UI: blocks made with ``visible=False`` stay in the page, hidden."""
    _extension_depth.append(None)
    try:
        yield
    finally:
        _extension_depth.pop()


# The tab whose scripts get component hooks (A1111's ``scripts.scripts_current``): None outside
# txt2img and img2img, where only ``script_callbacks`` hooks are called.
_building: list[bool] = []


@contextlib.contextmanager
def building_tab(is_img2img: bool) -> Iterator[None]:
    _building.append(is_img2img)
    try:
        yield
    finally:
        _building.pop()


def _hooked_component_init(init: Callable) -> Callable:
    if getattr(init, "_component_hooks", False):
        return init

    @functools.wraps(init)
    def hooked(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("tooltip", None)
        _scripts_hook("before_component", self, kwargs)
        script_callbacks.before_component_callback(self, **kwargs)
        init(self, *args, **kwargs)
        script_callbacks.after_component_callback(self, **kwargs)
        _scripts_hook("after_component", self, kwargs)

    hooked._component_hooks = True  # type: ignore[attr-defined]
    return hooked


def _scripts_hook(method: str, component: Any, kwargs: dict) -> None:
    """The tab's scripts' ``before_component``/``after_component``, then the callbacks they
    registered for this element id; one that raises is reported and the page goes on."""
    if not _building:
        return
    from modules import scripts

    elem_id = kwargs.get("elem_id")
    for script in scripts.live_instances(_building[-1]):
        calls = [functools.partial(getattr(script, method), component, **kwargs)]
        registered = getattr(script, f"on_{method}_elem_id", None) or ()
        calls += [functools.partial(callback, scripts.OnComponent(component=component))
                  for wanted, callback in registered if wanted == elem_id]
        for call in calls:
            try:
                call()
            except Exception:  # extension code: isolated and reported
                print(f"Error in {method} of {script.filename}:\n{traceback.format_exc(limit=-3)}")
