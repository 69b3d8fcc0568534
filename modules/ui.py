"""A1111 compatibility surface: ``modules.ui`` (``create_refresh_button`` and the symbol
constants extensions read). Part of the compat surface, so it may import Gradio."""

from __future__ import annotations

from typing import Callable

import gradio as gr

from modules.ui_components import ToolButton

# A1111's button symbols
random_symbol = "\U0001f3b2\ufe0f"  # 🎲️
reuse_symbol = "\u267b\ufe0f"  # ♻️
paste_symbol = "\u2199\ufe0f"  # ↙
refresh_symbol = "\U0001f504"  # 🔄
save_style_symbol = "\U0001f4be"  # 💾
apply_style_symbol = "\U0001f4cb"  # 📋
clear_prompt_symbol = "\U0001f5d1\ufe0f"  # 🗑️
extra_networks_symbol = "\U0001F3B4"  # 🎴
switch_values_symbol = "\U000021C5"  # ⇅
restore_progress_symbol = "\U0001F300"  # 🌀
detect_image_size_symbol = "\U0001F4D0"  # 📐


def plaintext_to_html(text: str, classname: str | None = None) -> str:
    import html
    lines = "<br>\n".join(html.escape(line) for line in text.split("\n"))
    return f"<p class='{classname}'>{lines}</p>" if classname else f"<p>{lines}</p>"


def create_refresh_button(refresh_component, refresh_method: Callable[[], None],
                          refreshed_args: dict | Callable[[], dict], elem_id: str) -> ToolButton:
    """A button that calls ``refresh_method``, then updates each component in ``refresh_component``
    (one or a list) with ``refreshed_args`` (a dict, or a function returning one, e.g. new choices)."""
    components = refresh_component if isinstance(refresh_component, list) else [refresh_component]

    def refresh():
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        updates = [gr.update(**(args or {})) for _ in components]
        return updates if len(updates) > 1 else updates[0]

    button = ToolButton(value=refresh_symbol, elem_id=elem_id)
    button.click(fn=refresh, inputs=[], outputs=components)
    return button
