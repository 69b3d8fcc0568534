"""The Extensions tab: the folders in extensions/, each enabled or not (option ``disabled_extensions``)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from modules.extensions.startup import ExtensionSet
from modules.options import OptionsError
from modules.runtime import Runtime
from webui.tabs.page_load import PageLoad


def extension_folders(root: Path) -> list[str]:
    """Extension folder names, sorted (hidden and non-folder entries are not extensions)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def disabled_after(all_names: list[str], enabled: list[str], previously_disabled: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The new ``disabled_extensions``: unticked folders, plus disabled names whose folder is gone
    (so a folder put back stays disabled)."""
    gone = [name for name in previously_disabled if name not in all_names]
    return tuple(sorted({*gone, *(name for name in all_names if name not in enabled)}))


def state_table(found: ExtensionSet) -> str:
    """Markdown: each extension found at start, whether it loaded, and why it failed."""
    if not found.extensions:
        return "No extension was loaded at start."
    rows = ["| Extension | State | Error |", "|---|---|---|"]
    for extension in found.extensions:
        error = (extension.errors[-1].strip().splitlines() or [""])[-1] if extension.errors else ""
        rows.append(f"| {extension.name} | {found.state_of(extension)} | {error.replace('|', '/')} |")
    return "\n".join(rows)


def build_extensions_tab(page_load: PageLoad, runtime: Runtime) -> None:
    root = runtime.config.data_dir / "extensions"
    gr.Markdown(f"Extensions are the folders in `{root}`. Changes take effect after a restart.")
    gr.Markdown(state_table(runtime.extensions), elem_id="extensions_installed_html")
    names = extension_folders(root)
    disabled = set(runtime.options.current.disabled_extensions)
    enabled = gr.CheckboxGroup(names, value=[n for n in names if n not in disabled], label="Enabled",
                               elem_id="extensions_enabled")
    apply = gr.Button("Apply and save", variant="primary", elem_id="extensions_apply")
    message = gr.Markdown("", elem_id="extensions_result")

    def apply_clicked(chosen: list[str]) -> str:
        folders = extension_folders(root)
        new = disabled_after(folders, chosen or [], runtime.options.current.disabled_extensions)
        try:
            runtime.update_options({"disabled_extensions": list(new)})
        except OptionsError as error:
            return f"**Not saved:** {error}"
        return f"Saved. Disabled: {', '.join(new) or 'none'}. Restart to load or unload extensions."

    def current() -> dict:
        folders = extension_folders(root)
        off = set(runtime.options.current.disabled_extensions)
        return {enabled: gr.update(choices=folders, value=[n for n in folders if n not in off])}

    apply.click(apply_clicked, inputs=enabled, outputs=message)
    page_load.add([enabled], current)
