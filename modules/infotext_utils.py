"""A1111 compatibility surface: ``modules.infotext_utils`` (also importable under its older name
``modules.generation_parameters_copypaste``): parsing infotext, thin over ``modules.infotext``."""

from __future__ import annotations

from modules.infotext.parse import parse_infotext

paste_fields: dict = {}
registered_param_bindings: list = []


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None) -> dict:
    """A1111's dict: "Prompt", "Negative prompt" and every field of the last line."""
    fields = dict(parse_infotext(x))
    for key in skip_fields or []:
        fields.pop(key, None)
    return fields


class ParamBinding:
    def __init__(self, paste_button, tabname, source_text_component=None, source_image_component=None,
                 source_tabname=None, override_settings_component=None, paste_field_names=None):
        self.paste_button, self.tabname = paste_button, tabname
        self.source_text_component, self.source_image_component = source_text_component, source_image_component
        self.source_tabname, self.override_settings_component = source_tabname, override_settings_component
        self.paste_field_names = paste_field_names or []


def register_paste_params_button(binding: ParamBinding) -> None:
    registered_param_bindings.append(binding)
