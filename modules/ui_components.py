"""A1111 compatibility surface: ``modules.ui_components``, thin Gradio wrappers that extension UIs
build with (``FormRow``, ``FormColumn``, ``FormGroup``, ``ToolButton``, ``ResizeHandleRow``,
``InputAccordion``, ``DropdownMulti``). Part of the compat surface, so it may import Gradio; the
engine never imports this module."""

from __future__ import annotations

import inspect
import itertools

import gradio as gr


class _SameFrontend:
    """Gradio picks the browser component by class name and serialises the props named in the
    class's ``__init__`` signature; a subclass keeps its Gradio base's for both."""

    def _gradio_base(self) -> type:
        return next(c for c in type(self).__mro__ if c.__module__.startswith("gradio."))

    def get_block_name(self) -> str:
        return self._gradio_base().__name__.lower()

    def get_block_class(self) -> str:
        return self._gradio_base().__name__.lower()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # props are read from the signature: show the base's
            base = next(c for c in cls.__mro__ if c.__module__.startswith("gradio."))
            cls.__init__.__signature__ = inspect.signature(base.__init__)


class FormRow(_SameFrontend, gr.Row):
    """A row of form fields (A1111 styles it with the ``form`` class)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("elem_classes", ["form"])
        super().__init__(*args, **kwargs)


class FormColumn(_SameFrontend, gr.Column):
    pass


class FormGroup(_SameFrontend, gr.Group):
    pass


class ResizeHandleRow(_SameFrontend, gr.Row):
    """A1111 adds a drag handle between the columns; here it is a plain row."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("elem_classes", ["resize-handle-row"])
        super().__init__(*args, **kwargs)


class ToolButton(_SameFrontend, gr.Button):
    """A small square button holding one symbol."""

    def __init__(self, value="", *args, **kwargs):
        kwargs.setdefault("elem_classes", ["tool"])
        super().__init__(value, *args, **kwargs)


class DropdownMulti(_SameFrontend, gr.Dropdown):
    """A dropdown that selects several values."""

    def __init__(self, *args, **kwargs):
        kwargs["multiselect"] = True
        super().__init__(*args, **kwargs)


_accordion_numbers = itertools.count()
_ACCORDION_KEYS = ("label", "visible", "elem_classes", "render")


class InputAccordion(_SameFrontend, gr.Checkbox):
    """An accordion whose open state is an input: the value is a hidden checkbox that follows the
    accordion. Used as ``with InputAccordion(False, label="My ext") as enabled: ...``."""

    def __init__(self, value: bool = False, **kwargs):
        self.accordion_id = kwargs.get("elem_id") or f"input-accordion-{next(_accordion_numbers)}"
        super().__init__(value, **{**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False})
        options = {k: v for k, v in kwargs.items() if k in _ACCORDION_KEYS}
        options.setdefault("label", "Accordion")
        self.accordion = gr.Accordion(open=bool(value), elem_id=self.accordion_id, **{
            **options, "elem_classes": ["input-accordion", *_as_list(options.get("elem_classes"))]})
        if gr.context.Context.root_block is not None:  # events need a Blocks being built
            self.accordion.expand(lambda: True, None, self, queue=False, show_progress="hidden")
            self.accordion.collapse(lambda: False, None, self, queue=False, show_progress="hidden")

    def extra(self) -> gr.Column:
        """A column beside the accordion's label, for extra controls (A1111 puts it in the header)."""
        return gr.Column(elem_id=f"{self.accordion_id}-extra", elem_classes=["input-accordion-extra"], min_width=0)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, *exc):
        self.accordion.__exit__(*exc)


def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
