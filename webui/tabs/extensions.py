"""The Extensions tab, as A1111's: the installed extensions (remote, branch, commit, whether each
loaded), enable/disable with "Apply and restart UI", "Check for updates" and "Update", and
"Install from URL" (a git URL or a local path). The work is ``modules/extensions/manage.py``'s;
installing and updating are refused while the server is reachable from the network unless the
operator allowed it (``manage.may_install``)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from modules.extensions import manage
from modules.extensions.startup import ExtensionSet
from modules.options import OptionsError
from modules.runtime import Runtime
from webui.tabs.page_load import PageLoad

# Polls the page until the restarted server answers, then reloads it (only after a restart began).
AWAIT_RESTART_JS = """(message) => {
  if (!String(message).startsWith("Restarting")) { return; }
  const wait = (ms) => new Promise((done) => setTimeout(done, ms));
  (async () => {
    await wait(1500);
    for (let i = 0; i < 300; i++) {
      try { if ((await fetch(location.pathname, {cache: "no-store"})).ok) { location.reload(); return; } }
      catch (e) { /* still restarting */ }
      await wait(1000);
    }
  })();
}"""


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


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def installed_table(root: Path, found: ExtensionSet, disabled: tuple[str, ...]) -> str:
    """Markdown: each extension folder with its git data, whether it is enabled, and how it loaded
    at start (with the last line of its error)."""
    listed = manage.installed(root, disabled)
    if not listed:
        return f"No extension is installed in `{root}`."
    states = {e.name: e for e in found.extensions}
    rows = ["| Extension | URL | Branch | Version | Date | Enabled | At start |", "|---|---|---|---|---|---|---|"]
    for item in listed:
        loaded = states.get(item.name)
        state = found.state_of(loaded) if loaded else "not loaded (installed since start)"
        if loaded and loaded.errors:
            state += ": " + (loaded.errors[-1].strip().splitlines() or [""])[-1]
        rows.append(f"| {item.name} | {_cell(item.remote)} | {_cell(item.branch)} | {item.version} | "
                    f"{manage.commit_date_text(item.commit_date)} | {'yes' if item.enabled else 'no'} | {_cell(state)} |")
    return "\n".join(rows)


def build_extensions_tab(page_load: PageLoad, runtime: Runtime) -> None:
    root = runtime.config.data_dir / "extensions"
    refusal = manage.may_install(runtime.config)
    with gr.Tabs(elem_id="tabs_extensions"):
        with gr.Tab("Installed", id="extensions_installed_tab"):
            table, enabled = build_installed(page_load, runtime, root, refusal)
        with gr.Tab("Install from URL", id="extensions_install_tab"):
            build_install_from_url(runtime, root, refusal, table, enabled)


def enabled_ticks(runtime: Runtime, root: Path) -> tuple[list[str], list[str]]:
    """The extension folders, and those ticked "Enabled", as on disk and in the settings now."""
    folders = extension_folders(root)
    off = set(runtime.options.current.disabled_extensions)
    return folders, [n for n in folders if n not in off]


def enabled_choices(runtime: Runtime, root: Path) -> dict:
    folders, ticked = enabled_ticks(runtime, root)
    return gr.update(choices=folders, value=ticked)


def current_table(runtime: Runtime, root: Path) -> str:
    """The installed list now (git is asked per extension: built with the page and after each
    action, not at every page load)."""
    return installed_table(root, runtime.extensions, runtime.options.current.disabled_extensions)


def build_installed(page_load: PageLoad, runtime: Runtime, root: Path,
                    refusal: str | None) -> tuple[gr.Markdown, gr.CheckboxGroup]:
    gr.Markdown(f"Extensions are the folders in `{root}`.")
    table = gr.Markdown(current_table(runtime, root), elem_id="extensions_installed_html")
    folders, ticked = enabled_ticks(runtime, root)
    enabled = gr.CheckboxGroup(folders, value=ticked, label="Enabled", elem_id="extensions_enabled")
    with gr.Row():
        apply = gr.Button("Apply and restart UI", variant="primary", elem_id="extensions_apply")
        check = gr.Button("Check for updates", elem_id="extensions_check")
    updatable = gr.CheckboxGroup([], label="Update", elem_id="extensions_updatable", visible=False)
    update = gr.Button("Update selected", elem_id="extensions_update", visible=False)
    message = gr.Markdown("", elem_id="extensions_message")

    def apply_clicked(chosen: list[str]) -> tuple[str, str]:
        new = disabled_after(extension_folders(root), chosen or [], runtime.options.current.disabled_extensions)
        try:
            runtime.update_options({"disabled_extensions": list(new)})
        except OptionsError as error:
            return f"**Not saved:** {error}", gr.update()
        if not runtime.can_restart:
            return (f"Saved. Disabled: {', '.join(new) or 'none'}. Restart the server to load or unload extensions.",
                    current_table(runtime, root))
        runtime.restart_requested.set()
        return (f"Restarting with disabled: {', '.join(new) or 'none'}. The page reloads when the server is back.",
                gr.update())

    def check_clicked() -> tuple:
        if refusal:
            return f"**Refused:** {refusal}", gr.update(visible=False), gr.update(visible=False)
        lines, behind = [], []
        for item in manage.installed(root, runtime.options.current.disabled_extensions):
            try:
                result = manage.check_for_updates(item)
            except manage.ExtensionError as error:
                lines.append(f"- {item.name}: **{error}**")
                continue
            lines.append(f"- {item.name}: {result.message}")
            if result.behind:
                behind.append(item.name)
        found = bool(behind)
        return ("\n".join(lines) or "No extension is installed.",
                gr.update(choices=behind, value=behind, visible=found), gr.update(visible=found))

    def update_clicked(chosen: list[str]) -> tuple[str, str]:
        if refusal:
            return f"**Refused:** {refusal}", gr.update()
        lines = []
        by_name = {i.name: i for i in manage.installed(root, runtime.options.current.disabled_extensions)}
        for name in chosen or []:
            try:
                lines.append(f"- {name}: updated to {manage.update(by_name[name]).version}")
            except (manage.ExtensionError, KeyError) as error:
                lines.append(f"- {name}: **not updated:** {error}")
        note = "Apply and restart UI to load the new code." if lines else "Nothing was selected."
        return "\n".join([*lines, note]), current_table(runtime, root)

    apply.click(apply_clicked, inputs=enabled, outputs=[message, table]).then(None, inputs=message, js=AWAIT_RESTART_JS)
    check.click(check_clicked, outputs=[message, updatable, update])
    update.click(update_clicked, inputs=updatable, outputs=[message, table])

    page_load.add([enabled], lambda: {enabled: enabled_choices(runtime, root)})
    return table, enabled


def build_install_from_url(runtime: Runtime, root: Path, refusal: str | None, table: gr.Markdown,
                           enabled: gr.CheckboxGroup) -> None:
    if refusal:
        gr.Markdown(f"**{refusal}**", elem_id="extensions_install_refused")
    url = gr.Textbox(label="URL for extension's git repository, or a local path", elem_id="install_url")
    branch = gr.Textbox(label="Specific branch name (empty for the default)", elem_id="install_branch")
    name = gr.Textbox(label="Local directory name (empty for the repository's name)", elem_id="install_dirname")
    install = gr.Button("Install", variant="primary", elem_id="install_button")
    result = gr.Markdown("", elem_id="extension_install_result")

    def install_clicked(source: str, wanted_branch: str, folder: str) -> tuple:
        if refusal:
            return f"**Refused:** {refusal}", gr.update(), gr.update()
        lines: list[str] = []
        try:
            item = manage.install(root, source, folder, wanted_branch, report=lines.append)
        except manage.ExtensionError as error:
            return f"**Not installed:** {error}", gr.update(), gr.update()
        output = "\n\n```\n" + "\n".join(lines) + "\n```" if lines else ""
        table_now = current_table(runtime, root)
        return (f"Installed **{item.name}** ({item.branch or 'no branch'} {item.version}) into `{item.path}`. "
                f"Use \"Apply and restart UI\" on the Installed tab to load it.{output}", table_now,
                enabled_choices(runtime, root))

    install.click(install_clicked, inputs=[url, branch, name], outputs=[result, table, enabled])
