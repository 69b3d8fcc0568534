"""What the loaded extensions add to the page: their ``on_ui_tabs`` tabs, their
``javascript/*.js`` and ``style.css`` (in load order), and the ``on_app_started`` call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from modules import script_callbacks
from modules.extensions.a1111_bridge import report_failure
from modules.extensions.startup import ExtensionSet
from webui import gradio3_compat

STATIC = Path(__file__).resolve().parent / "static"


def a1111_page_helpers(settings: dict[str, Any]) -> str:
    """A1111's page helpers (``gradioApp``, ``onUiLoaded``, ...) and ``opts`` (the settings as the page
    was built, extensions' own included), before any extension script, as A1111's script.js is."""
    from modules import shared

    values = {**settings, **getattr(shared.opts, "data", {})}
    as_json = json.dumps(values, default=str).replace("</", "<\\/")
    helpers = (STATIC / "a1111_page.js").read_text(encoding="utf-8")
    return f"<script>window.opts = {as_json};\n{helpers}</script>"


def add_a1111_block_classes(blocks: gr.Blocks) -> None:
    """Gives every block of the page the class A1111 gives it (``gradio-textbox``, ``gradio-dropdown``,
    ``gradio-accordion``, ``gradio-button``..., plus ``multiselect``; A1111's modules/gradio_extensons.py),
    which extensions' scripts and styles select on (tagcomplete: ``.gradio-accordion``). Run once the page,
    extensions' controls included, is built and before it is served."""
    for block in blocks.blocks.values():
        classes = block.elem_classes or []
        classes = [classes] if isinstance(classes, str) else list(classes)
        marks = [f"gradio-{block.get_block_name()}"] + (["multiselect"] if getattr(block, "multiselect", False) else [])
        block.elem_classes = [*[m for m in marks if m not in classes], *classes]


def extension_scripts(found: ExtensionSet) -> str:
    """One inline ``<script>`` per JS file of each enabled extension, in load order (inline, so
    they run in that order, as A1111's ordered script tags do)."""
    tags = []
    for extension in found.enabled():
        for path in extension.files("javascript", ".js"):
            source = path.read_text(encoding="utf-8-sig").replace("</script", "<\\/script")
            tags.append(f"<script data-extension={extension.name!r} data-file={path.name!r}>\n{source}\n</script>")
    return "\n".join(tags)


def extension_styles(found: ExtensionSet) -> str:
    """The ``style.css`` of each enabled extension, in load order, after the page's own."""
    return "\n".join(e.stylesheet.read_text(encoding="utf-8-sig") for e in found.enabled() if e.stylesheet)


def extension_tabs(found: ExtensionSet) -> list[tuple]:
    """The (blocks, title, elem_id) of every ``on_ui_tabs`` callback, called before the page's own
    Blocks opens (as A1111 does: each builds its own ``gr.Blocks``); a callback that fails is
    reported (``script_callbacks.errors``, the console) and adds nothing."""
    if not found.loaded:
        return []
    with gradio3_compat.extension_ui():
        made = script_callbacks.ui_tabs_callback()
    tabs = [tab for tab in made if isinstance(tab, (tuple, list)) and len(tab) >= 3]
    for error in script_callbacks.errors:
        print(error)
    return tabs


def add_extension_tabs(tabs: list[tuple]) -> None:
    """Inside the main ``gr.Tabs``: one tab per extension tab, its Blocks rendered there."""
    for blocks, title, elem_id, *_ in tabs:
        with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}"):
            blocks.render()


def serve_extension_routes_first(app) -> None:
    """Routes an ``on_app_started`` callback added come after the page's mount at "/", which would
    answer them; the page's mount moves to the end so they are reachable."""
    from starlette.routing import Mount

    page = [r for r in app.router.routes if isinstance(r, Mount) and hasattr(r.app, "get_blocks")]
    app.router.routes[:] = [r for r in app.router.routes if r not in page] + page


def _setting_component(key: str, info, value):
    """The component an extension asked for (``component``/``component_args``), else one by the
    default's type, as A1111's settings page does."""
    args = info.component_args() if callable(info.component_args) else dict(info.component_args or {})
    common = {"label": info.label or key, "value": value, "elem_id": f"setting_{key}", "interactive": True}
    if info.component is not None:
        return info.component(**{**common, **args})
    if isinstance(info.default, bool):
        return gr.Checkbox(**common)
    if isinstance(info.default, (int, float)):
        return gr.Number(**common, **args)
    return gr.Textbox(**common, **args)


def add_extension_settings(settings_file) -> None:
    """The settings extensions declared (``on_ui_settings``), grouped by section, with an Apply
    button that saves them to ``settings_file``."""
    from modules import shared
    from modules.compat_options import OptionHTML

    opts = shared.opts
    if not opts.data_labels:
        return
    components = {}
    with gr.Accordion("Extensions' settings", open=False, elem_id="settings_extensions"):
        sections: dict[str, list[str]] = {}
        for key, info in opts.data_labels.items():
            title = info.section[1] if info.section and len(info.section) > 1 else "Other"
            sections.setdefault(title or "Other", []).append(key)
        for title, keys in sections.items():
            gr.Markdown(f"### {title}")
            for key in keys:
                info = opts.data_labels[key]
                if isinstance(info, OptionHTML):
                    gr.HTML(info.label)
                    continue
                components[key] = _setting_component(key, info, getattr(opts, key))
        apply = gr.Button("Apply extensions' settings", elem_id="settings_extensions_apply")
        message = gr.Markdown("", elem_id="settings_extensions_result")

    def apply_clicked(values: dict) -> str:
        changed = []
        for key, component in components.items():
            try:
                if opts.set(key, values[component]):
                    changed.append(key)
            except Exception as error:  # an extension's onchange: its failure is shown, the value kept
                return f"**Not applied:** {key}: {error}"
        opts.save(settings_file)
        return f"{len(changed)} setting(s) changed: {', '.join(changed) or 'none'}."

    apply.click(apply_clicked, inputs=set(components.values()), outputs=message)


@dataclass(frozen=True)
class RenderedScript:
    """An always-on extension script placed in a generation tab, and its controls in ``ui()`` order
    (the order A1111 delivers their values as the script's ``*args``)."""
    script: Any
    controls: tuple


def add_alwayson_script_uis(is_img2img: bool) -> tuple[RenderedScript, ...]:
    """Each loaded always-on (``scripts.AlwaysVisible``) script's ``ui(is_img2img)``, created in the
    page's Blocks context inside a group of its own, as A1111 does (the script makes its own accordion,
    as most do; a ``ui()`` that makes nothing leaves nothing on the page). A script whose ``show`` or
    ``ui`` raises is reported on the console and left out; the page keeps building."""
    from modules import scripts

    rendered = []
    tab = "img2img" if is_img2img else "txt2img"
    for data in scripts.scripts_data:
        script = scripts.instantiate(data, is_img2img)
        if script is None or not script.alwayson:
            continue
        group = gr.Group(elem_id=f"script_{tab}_{_slug(script.title())}")
        try:
            with group, gradio3_compat.extension_ui():
                controls = script.ui(is_img2img)
        except Exception:  # extension code: isolated, reported (its extension disabled), its group removed
            report_failure(script, "ui")
            group.unrender()
            continue
        if not group.children:
            group.unrender()
        controls = tuple(controls or ()) if isinstance(controls, (list, tuple)) else ((controls,) if controls else ())
        rendered.append(RenderedScript(script, controls))
    return tuple(rendered)


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in title.lower()).strip("_")
