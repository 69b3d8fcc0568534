"""What the loaded extensions add to the page: their ``on_ui_tabs`` tabs, their
``javascript/*.js`` and ``style.css`` (in load order), and the ``on_app_started`` call."""

from __future__ import annotations

import gradio as gr

from modules import script_callbacks
from modules.extensions.startup import ExtensionSet


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
    tabs = [tab for tab in script_callbacks.ui_tabs_callback() if isinstance(tab, (tuple, list)) and len(tab) >= 3]
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
